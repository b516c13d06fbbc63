//! Serving one accepted connection until it ends or the drain asks it to:
//! HTTP/1.1 (with upgrades) on a cleartext port, HTTP/2 when a TLS
//! handshake chose `h2` by ALPN, and, with `server.h2c = true`, either one
//! on a cleartext port (HTTP/2 with prior knowledge, for an ingress that
//! speaks h2c to its backends; hyper-util's auto builder sniffs the
//! preface, which costs every request a little, hence opt-in).
//!
//! HTTP/2 goes through the same stack as HTTP/1.1: each stream is one call
//! of the connection's stack, so every rule (the identity strip, the
//! canonical path, the routes, `server.max_in_flight` per worker) holds
//! per request. Per connection, at most [`MAX_STREAMS`] streams are open
//! at once (`SETTINGS_MAX_CONCURRENT_STREAMS`) and a header block is at
//! most [`MAX_HEADER_LIST`] bytes; extended CONNECT (RFC 8441) is not
//! offered, so WebSockets stay on HTTP/1.1. The drain sends `GOAWAY`:
//! streams open finish, no new ones start.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use crate::stack::{ConnectionService, PerConnection};
use crate::wire::connection_timer::HeadTimer;

/// Streams one HTTP/2 connection may have open at once (RFC 9113 §5.1.2;
/// Envoy's and nginx's default is 100 and 128).
pub(crate) const MAX_STREAMS: u32 = 100;
/// The largest request head: an HTTP/2 header block (uncompressed), an
/// HTTP/1.1 head (its read buffer). Envoy's default is 60 KiB.
pub(crate) const MAX_HEADER_LIST: u32 = 64 * 1024;
/// The longest a client may take to send a request head (HTTP/1.1).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How this listener's connections are spoken to.
#[derive(Clone)]
pub(super) struct Protocols {
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
    /// `server.h2c`: a cleartext connection may be HTTP/2 too.
    h2c: bool,
}

impl Protocols {
    pub(super) fn new(h2c: bool) -> Self {
        let mut http1 = http1::Builder::new();
        // The head's buffer bounds its size: one limit for both versions.
        http1
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .max_buf_size(MAX_HEADER_LIST as usize);
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .max_concurrent_streams(MAX_STREAMS)
            .max_header_list_size(MAX_HEADER_LIST);
        Self { http1, http2, h2c }
    }

    /// A cleartext connection: HTTP/1.1, or (`h2c`) whichever it speaks.
    pub(super) async fn plain<Io, S>(
        self,
        io: Io,
        service: PerConnection<S>,
        draining: watch::Receiver<()>,
    ) where
        Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        S: ConnectionService,
    {
        if self.h2c {
            let mut auto = auto::Builder::new(TokioExecutor::new());
            auto.http1()
                .timer(HeadTimer::default())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .max_buf_size(MAX_HEADER_LIST as usize);
            auto.http2()
                .timer(TokioTimer::new())
                .max_concurrent_streams(MAX_STREAMS)
                .max_header_list_size(MAX_HEADER_LIST);
            let connection = auto.serve_connection_with_upgrades(TokioIo::new(io), service);
            return until_drained(connection, draining, |c| c.graceful_shutdown()).await;
        }
        self.http1(io, service, draining).await;
    }

    /// A connection whose TLS handshake is done: HTTP/2 if ALPN chose it.
    pub(super) async fn negotiated<Io, S>(
        self,
        io: tokio_rustls::server::TlsStream<Io>,
        service: PerConnection<S>,
        draining: watch::Receiver<()>,
    ) where
        Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        S: ConnectionService,
    {
        if io.get_ref().1.alpn_protocol() == Some(b"h2") {
            let connection = self.http2.serve_connection(TokioIo::new(io), service);
            return until_drained(connection, draining, |c| c.graceful_shutdown()).await;
        }
        self.http1(io, service, draining).await;
    }

    async fn http1<Io, S>(
        mut self,
        io: Io,
        service: PerConnection<S>,
        draining: watch::Receiver<()>,
    ) where
        Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        S: ConnectionService,
    {
        // Each connection's header-read timeout on its own shared timer.
        let connection = self
            .http1
            .timer(HeadTimer::default())
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades();
        until_drained(connection, draining, |c| c.graceful_shutdown()).await;
    }
}

/// Runs `connection` to its end; when the drain begins, `shutdown` asks it
/// to finish: idle HTTP/1.1 keep-alive connections close now, busy ones
/// after their current response; HTTP/2 sends `GOAWAY`.
async fn until_drained<C, E>(
    connection: C,
    mut draining: watch::Receiver<()>,
    shutdown: impl FnOnce(Pin<&mut C>),
) where
    C: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let mut connection = std::pin::pin!(connection);
    let ended = tokio::select! {
        biased;
        ended = connection.as_mut() => ended,
        _ = draining.changed() => {
            shutdown(connection.as_mut());
            connection.await
        }
    };
    if let Err(e) = ended {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}
