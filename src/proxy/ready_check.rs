//! Whether a backend can serve, for `/readyz` (`ready_check`): a sidecar's
//! pod must not turn Ready while its app is still starting (a JVM not yet
//! listening), and the app, listening on 127.0.0.1 as advised, cannot be
//! probed by the kubelet itself. `"tcp"`: a connection is accepted;
//! `"/path"`: `GET /path` answers 2xx or 3xx (hyper's client reads it).
//! Each check is bounded by one second, on a connection of its own (never
//! the pool's), asked with `Connection: close` and read to its end, so the
//! connection closes cleanly: a probe dropped mid-answer is a reset in the
//! backend's log at every probe.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, header};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::pool::Tls;
use crate::config::ReadyCheck;

const LIMIT: Duration = Duration::from_secs(1);
/// A health answer's body is small; a larger one is not read to its end.
const BODY_LIMIT: usize = 64 * 1024;

/// `Ok` when the backend at `address` (`host:port`) passes `check`, else
/// why not. An `https://` upstream (`tls`) is asked over TLS, verified as
/// its requests are.
pub(super) async fn probe(
    address: &str,
    host: &str,
    check: &ReadyCheck,
    tls: Option<&Tls>,
) -> Result<(), String> {
    match tokio::time::timeout(LIMIT, attempt(address, host, check, tls)).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {LIMIT:?}")),
    }
}

async fn attempt(
    address: &str,
    host: &str,
    check: &ReadyCheck,
    tls: Option<&Tls>,
) -> Result<(), String> {
    let stream = TcpStream::connect(address)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let ReadyCheck::Http(path) = check else {
        return Ok(());
    };
    match tls {
        None => get(stream, host, path).await,
        Some(tls) => {
            let stream = tls
                .connect(stream)
                .await
                .map_err(|e| format!("TLS failed: {e}"))?;
            get(stream, host, path).await
        }
    }
}

/// `GET path` on `stream`: 2xx or 3xx is ready.
async fn get<Io>(stream: Io, host: &str, path: &str) -> Result<(), String>
where
    Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    // hyper's HTTP/1 client on this one connection: the answer is parsed
    // as the proxy's own pool parses it.
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("cannot speak HTTP: {e}"))?;
    let driven = tokio::spawn(connection);
    let request = Request::get(path)
        .header(header::HOST, host)
        .header(header::USER_AGENT, "wxgate-ready-check")
        .header(header::CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("cannot make GET {path}: {e}"))?;
    let answered = match sender.send_request(request).await {
        Ok(response) => {
            let code = response.status().as_u16();
            // To its end, then hyper closes the connection (`close`).
            let read = Limited::new(response.into_body(), BODY_LIMIT)
                .collect()
                .await;
            drop(sender);
            if read.is_ok() {
                let _ = driven.await;
            } else {
                driven.abort();
            }
            Ok(code)
        }
        Err(e) => {
            driven.abort();
            Err(e)
        }
    };
    match answered {
        Ok(200..=399) => Ok(()),
        Ok(code) => Err(format!("GET {path} answered {code}")),
        Err(e) => Err(format!("GET {path} gave no HTTP answer: {e}")),
    }
}
