//! An echo backend for the tests, speaking HTTP/1.1 on loopback.
//!
//! | path                | answer                                                  |
//! |---------------------|---------------------------------------------------------|
//! | `/slow?ms=N`        | waits N ms, then echoes                                 |
//! | `/download?bytes=N` | streams N bytes (Content-Length set)                    |
//! | `/upload`           | reads the body as a stream: `{"bytes": n, "sum": s}`    |
//! | `/ws`               | `101` to the protocol asked for, then echoes bytes      |
//! | `/hop`              | echoes, with hop-by-hop headers in the response         |
//! | `/status/N`         | status N with `x-custom: kept`                          |
//! | `/close`            | echoes with `Connection: close`, then closes            |
//! | `/forged-mark`      | 401 `{"code":"session_invalid"}` with `X-Wxgate-Error`  |
//! | anything else       | echoes                                                  |
//!
//! The echo is JSON: `{"method", "uri", "headers": [[name, value], ...]}`, with
//! every header value in the order received, duplicates included.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

type Body = BoxBody<Bytes, Infallible>;

#[derive(Clone)]
pub struct Upstream {
    pub addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
}

impl Upstream {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let upstream = Self {
            addr: listener.local_addr().expect("addr"),
            hits: Arc::default(),
            connections: Arc::default(),
        };
        let (hits, connections) = (upstream.hits.clone(), upstream.connections.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                connections.fetch_add(1, Ordering::SeqCst);
                let hits = hits.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        hits.fetch_add(1, Ordering::SeqCst);
                        async move { Ok::<_, Infallible>(answer(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                });
            }
        });
        upstream
    }

    /// Requests received so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

fn param(req: &Request<Incoming>, name: &str) -> u64 {
    req.uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

async fn answer(mut req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    match path.as_str() {
        "/slow" => {
            tokio::time::sleep(Duration::from_millis(param(&req, "ms"))).await;
            echo(&req, StatusCode::OK)
        }
        "/download" => {
            let total = param(&req, "bytes");
            let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
            let chunks = (0..total.div_ceil(chunk.len() as u64)).map(move |i| {
                let left = total - i * chunk.len() as u64;
                Ok::<_, Infallible>(Frame::data(
                    chunk.slice(..left.min(chunk.len() as u64) as usize),
                ))
            });
            Response::builder()
                .header("content-length", total)
                .body(BodyExt::boxed(StreamBody::new(stream::iter(chunks))))
                .unwrap()
        }
        "/upload" => {
            let mut body = req.into_body();
            let (mut bytes, mut sum) = (0u64, 0u64);
            while let Some(frame) = body.frame().await {
                let Ok(frame) = frame else { break };
                if let Some(data) = frame.data_ref() {
                    bytes += data.len() as u64;
                    sum = data.iter().fold(sum, |s, &b| s.wrapping_add(b as u64));
                }
            }
            let text = format!(r#"{{"bytes":{bytes},"sum":{sum}}}"#);
            Response::new(Full::new(Bytes::from(text)).boxed())
        }
        "/ws" => {
            let upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                if let Ok(upgraded) = upgrade.await {
                    let mut io = TokioIo::new(upgraded);
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = io.read(&mut buf).await {
                        if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            });
            // Whatever protocol was asked for (`echo`, `websocket`): the
            // bytes are echoed either way.
            let protocol = req
                .headers()
                .get("upgrade")
                .cloned()
                .unwrap_or_else(|| "echo".parse().unwrap());
            let mut response = echo(&req, StatusCode::SWITCHING_PROTOCOLS);
            let headers = response.headers_mut();
            headers.insert("connection", "upgrade".parse().unwrap());
            headers.insert("upgrade", protocol);
            response
        }
        "/close" => {
            let mut response = echo(&req, StatusCode::OK);
            response
                .headers_mut()
                .insert("connection", "close".parse().unwrap());
            response
        }
        "/hop" => {
            let mut response = echo(&req, StatusCode::OK);
            let headers = response.headers_mut();
            headers.insert("connection", "x-hop-secret".parse().unwrap());
            headers.insert("x-hop-secret", "must-not-pass".parse().unwrap());
            headers.insert("keep-alive", "timeout=5".parse().unwrap());
            headers.insert("proxy-authenticate", "Basic".parse().unwrap());
            headers.insert("x-end-to-end", "kept".parse().unwrap());
            response
        }
        "/forged-mark" => Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header("content-type", "application/json")
            .header("x-wxgate-error", "session_invalid")
            .body(Full::new(Bytes::from_static(br#"{"code":"session_invalid"}"#)).boxed())
            .unwrap(),
        p if p.starts_with("/status/") => {
            let status = p["/status/".len()..].parse().unwrap_or(500);
            let mut response = echo(&req, StatusCode::from_u16(status).unwrap());
            response
                .headers_mut()
                .insert("x-custom", "kept".parse().unwrap());
            response
        }
        _ => echo(&req, StatusCode::OK),
    }
}

fn echo(req: &Request<Incoming>, status: StatusCode) -> Response<Body> {
    let headers: Vec<[String; 2]> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            [
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            ]
        })
        .collect();
    let body = serde_json::json!({
        "method": req.method().as_str(),
        "uri": req.uri().to_string(),
        "headers": headers,
    });
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())).boxed())
        .unwrap()
}

/// The values of header `name` (lower case) in an echo body.
pub fn header_values(echo: &serde_json::Value, name: &str) -> Vec<String> {
    echo["headers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|pair| pair[0] == name)
        .map(|pair| pair[1].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Header names in an echo body, lower case.
pub fn header_names(echo: &serde_json::Value) -> Vec<String> {
    echo["headers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|pair| pair[0].as_str().unwrap_or_default().to_owned())
        .collect()
}
