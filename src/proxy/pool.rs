//! Keep-alive connections to the upstream, one idle stack per worker thread.
//!
//! Why not hyper-util's pooled `Client`, which the first versions used:
//! counted with callgrind, its pool (a mutex-guarded map keyed by scheme
//! and authority, SipHashed at every checkout and return, plus its
//! bookkeeping) was about a seventh of the instructions wxgate spent on a
//! proxied request. Each worker thread here runs its own runtime, so its
//! idle connections are a plain stack: no lock, no hashing, the warmest
//! connection reused first.
//!
//! (Under a work-stealing runtime, as `Server::run` in the tests uses, a
//! request may end on another thread than it began on; its connection then
//! joins that thread's stack. `main` always runs one runtime per thread.)
//!
//! A connection goes back on the stack only when its exchange is over: the
//! request body sent in full before the answer came, and the response body
//! read to the end ([`ResponseBody`]). So a pooled connection is idle, or
//! about to be once its driver task runs, and waiting for it to be ready
//! never means waiting behind someone else's upload. One abandoned
//! mid-body, answered early, or upgraded is dropped, and hyper closes it.
//!
//! A pooled connection that the upstream closed while it sat idle (the
//! keep-alive race) hands the request back unsent, and the next connection,
//! or a new one, takes it: a request is never sent twice. (A race hyper
//! cannot see, the upstream closing after the request went out, still ends
//! in a 502, as with any proxy that does not retry non-idempotent requests.)

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::config::UpstreamTls;

use crate::wire::body_end::{AtEnd, BodyEnd, Watched};
use crate::wire::body_idle::BodyError;
use crate::wire::describe;

/// An idle connection unused this long is not reused (the upstream may be
/// about to close it); as hyper-util's default.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Idle connections kept per thread and upstream; more are closed.
const MAX_IDLE: usize = 256;

struct Idle {
    sender: SendRequest<BodyEnd>,
    since: Instant,
}

thread_local! {
    /// This thread's idle connections, per upstream (by `Pool::id`).
    static IDLE: RefCell<Vec<(u64, Vec<Idle>)>> = const { RefCell::new(Vec::new()) };
}

/// HTTP/1.1 on `io`, driven by a task of its own.
async fn handshake<Io>(io: Io) -> Result<SendRequest<BodyEnd>, SendError>
where
    Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| SendError::Connect(describe(&e)))?;
    tokio::spawn(async move {
        if let Err(e) = connection.with_upgrades().await {
            tracing::debug!(error = %e, "upstream connection ended with an error");
        }
    });
    Ok(sender)
}

/// Why a request did not reach the upstream or got no answer.
#[derive(Debug, thiserror::Error)]
pub(super) enum SendError {
    #[error("cannot connect to the upstream: {0}")]
    Connect(String),
    #[error("connecting to the upstream timed out after {0:?}")]
    ConnectTimeout(Duration),
    #[error("{0}")]
    Exchange(String),
    /// The client's request body went silent (`server.body_idle_timeout`):
    /// the client's doing, not the upstream's.
    #[error("the request body sent nothing for {0:?}")]
    BodyIdle(Duration),
    /// The client's request body could not be read (bad chunked framing, say):
    /// the client's doing too.
    #[error("{0}")]
    ClientBody(String),
}

impl SendError {
    fn exchange(e: &hyper::Error) -> Self {
        match BodyError::in_chain(e) {
            Some(BodyError::Idle(timeout)) => Self::BodyIdle(*timeout),
            Some(read @ BodyError::Read(_)) => Self::ClientBody(describe(read)),
            None => Self::Exchange(describe(e)),
        }
    }
}

pub(super) struct Pool {
    id: u64,
    /// `host:port`, resolved at each new connection.
    address: String,
    connect_timeout: Duration,
    /// An `https://` upstream: connections are TLS (`UpstreamTls`).
    tls: Option<Tls>,
}

/// How an `https://` upstream's connections are opened.
pub(super) struct Tls {
    connector: TlsConnector,
    server_name: ServerName<'static>,
}

impl Tls {
    pub(super) fn new(tls: &UpstreamTls) -> Self {
        Self {
            connector: TlsConnector::from(tls.client.clone()),
            server_name: tls.server_name.clone(),
        }
    }

    /// `stream`, with the TLS handshake done.
    pub(super) async fn connect(
        &self,
        stream: TcpStream,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        self.connector
            .connect(self.server_name.clone(), stream)
            .await
    }
}

impl Pool {
    pub(super) fn new(address: String, connect_timeout: Duration, tls: Option<Tls>) -> Self {
        // Idle stacks are per thread and keyed by pool: the id tells apart
        // the upstreams of the several apps a test process runs.
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            address,
            connect_timeout,
            tls,
        }
    }

    /// How its connections do TLS, for an `https://` upstream.
    pub(super) fn tls(&self) -> Option<&Tls> {
        self.tls.as_ref()
    }

    /// Sends `request` on a pooled connection, or a new one.
    pub(super) async fn send(
        &self,
        mut request: Request<BodyEnd>,
    ) -> Result<Response<ResponseBody>, SendError> {
        while let Some(mut sender) = self.checkout() {
            if sender.ready().await.is_err() {
                continue; // closed meanwhile
            }
            match sender.try_send_request(request).await {
                Ok(response) => return Ok(self.returning(response, sender)),
                Err(mut e) => match e.take_message() {
                    Some(unsent) => request = unsent,
                    None => return Err(SendError::exchange(e.error())),
                },
            }
        }
        // Boxed: rare, and its future would otherwise weigh on every request's.
        let mut sender = Box::pin(self.connect()).await?;
        match sender.send_request(request).await {
            Ok(response) => Ok(self.returning(response, sender)),
            Err(e) => Err(SendError::exchange(&e)),
        }
    }

    /// The newest idle connection still open; closed and stale ones are dropped.
    fn checkout(&self) -> Option<SendRequest<BodyEnd>> {
        IDLE.with_borrow_mut(|pools| {
            let idle = &mut pools.iter_mut().find(|(id, _)| *id == self.id)?.1;
            while let Some(conn) = idle.pop() {
                if !conn.sender.is_closed() && conn.since.elapsed() < IDLE_TIMEOUT {
                    return Some(conn.sender);
                }
            }
            None
        })
    }

    async fn connect(&self) -> Result<SendRequest<BodyEnd>, SendError> {
        // The connect timeout bounds the TLS handshake too.
        let opened = async {
            let stream = TcpStream::connect(&self.address)
                .await
                .map_err(|e| SendError::Connect(e.to_string()))?;
            let _ = stream.set_nodelay(true);
            match &self.tls {
                None => handshake(stream).await,
                Some(tls) => {
                    let stream = tls.connect(stream).await.map_err(|e| {
                        SendError::Connect(format!("TLS with the upstream failed: {e}"))
                    })?;
                    handshake(stream).await
                }
            }
        };
        tokio::time::timeout(self.connect_timeout, opened)
            .await
            .map_err(|_| SendError::ConnectTimeout(self.connect_timeout))?
    }

    fn returning(
        &self,
        response: Response<Incoming>,
        sender: SendRequest<BodyEnd>,
    ) -> Response<ResponseBody> {
        let upgraded = response.status() == http::StatusCode::SWITCHING_PROTOCOLS;
        response.map(|body| {
            let mut body = Watched::new(
                body,
                GiveBack {
                    pool: self.id,
                    sender,
                },
            );
            if upgraded {
                body.forget(); // the connection now belongs to the tunnel
            }
            body
        })
    }
}

/// The upstream's response body; at its clean end, its connection goes
/// back to this thread's idle stack.
pub type ResponseBody = Watched<Incoming, GiveBack>;

pub struct GiveBack {
    pool: u64,
    sender: SendRequest<BodyEnd>,
}

impl AtEnd for GiveBack {
    fn at_end(self, clean: bool) {
        if !clean {
            return; // a failed body: the connection is not reused
        }
        IDLE.with_borrow_mut(|pools| {
            if !pools.iter().any(|(pool, _)| *pool == self.pool) {
                pools.push((self.pool, Vec::new()));
            }
            if let Some((_, idle)) = pools.iter_mut().find(|(pool, _)| *pool == self.pool)
                && idle.len() < MAX_IDLE
            {
                idle.push(Idle {
                    sender: self.sender,
                    since: Instant::now(),
                });
            }
        });
    }
}

/// Settles the connection once the response head is in: `request_sent`
/// says whether the request body had ended by then. If not, the connection
/// is not reused; if the response has no body (a 204), it goes back now.
pub(super) fn head_received(body: &mut ResponseBody, request_sent: bool) {
    if request_sent {
        body.end_if_done();
    } else {
        body.forget();
    }
}
