//! Keep-alive connections to the upstream, one idle stack per worker thread.
//! An HTTP/1.1 client connection drives one of its own
//! (`proxy::affinity`); the stack serves the others and the first request
//! of each.
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
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::task::AbortHandle;
use tokio_rustls::TlsConnector;

use super::affinity::Affinity;

use crate::config::UpstreamTls;

use crate::wire::body_end::{AtEnd, BodyEnd, Watched};
use crate::wire::body_idle::BodyError;
use crate::wire::describe;

/// An idle connection unused this long is not reused (the upstream may be
/// about to close it); as hyper-util's default.
pub(super) const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Idle connections kept per thread and upstream; more are closed.
const MAX_IDLE: usize = 256;

/// What reads and writes one upstream connection: polled by a task of its
/// own ([`Kept`]) or by a client connection's (`affinity::beside`).
pub(super) type Driver = Pin<Box<dyn Future<Output = ()> + Send>>;

struct Idle {
    sender: SendRequest<BodyEnd>,
    since: Instant,
    kept: Kept,
}

/// A driver polled by a task of its own until a client connection adopts
/// it: a pooled connection notices at once when the upstream closes it.
struct Kept {
    driver: Arc<Mutex<Option<Driver>>>,
    task: AbortHandle,
}

impl Kept {
    fn new(driver: Driver) -> Self {
        let driver = Arc::new(Mutex::new(Some(driver)));
        let polled = driver.clone();
        let task = tokio::spawn(std::future::poll_fn(move |cx| {
            let Ok(mut slot) = polled.lock() else {
                return Poll::Ready(());
            };
            let Some(driver) = slot.as_mut() else {
                return Poll::Ready(());
            };
            let poll = driver.as_mut().poll(cx);
            if poll.is_ready() {
                *slot = None;
            }
            poll
        }));
        Self {
            driver,
            task: task.abort_handle(),
        }
    }

    /// The driver, its task stopped; `None` if the connection has ended.
    fn adopt(self) -> Option<Driver> {
        let driver = self.driver.lock().ok()?.take();
        self.task.abort();
        driver
    }
}

thread_local! {
    /// This thread's idle connections, per upstream (by `Pool::id`).
    static IDLE: RefCell<Vec<(u64, Vec<Idle>)>> = const { RefCell::new(Vec::new()) };
}

/// HTTP/1.1 on `io`, and what drives it.
async fn handshake<Io>(io: Io) -> Result<(SendRequest<BodyEnd>, Driver), SendError>
where
    Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| SendError::Connect(describe(&e)))?;
    let driver = Box::pin(async move {
        if let Err(e) = connection.with_upgrades().await {
            tracing::debug!(error = %e, "upstream connection ended with an error");
        }
    });
    Ok((sender, driver))
}

/// A client connection's upstream connection, idle, joins this thread's
/// stack for `pool` with a task of its own (or closes if the stack is full).
pub(super) fn park(pool: u64, sender: SendRequest<BodyEnd>, driver: Driver) {
    push(pool, sender, Kept::new(driver));
}

fn push(pool: u64, sender: SendRequest<BodyEnd>, kept: Kept) {
    IDLE.with_borrow_mut(|pools| {
        if !pools.iter().any(|(id, _)| *id == pool) {
            pools.push((pool, Vec::new()));
        }
        if let Some((_, idle)) = pools.iter_mut().find(|(id, _)| *id == pool)
            && idle.len() < MAX_IDLE
        {
            idle.push(Idle {
                sender,
                since: Instant::now(),
                kept,
            });
        }
    });
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

    /// Sends `request` on the client connection's own upstream connection
    /// (`affinity`, when its task drives one), a pooled one, or a new one.
    pub(super) async fn send(
        &self,
        mut request: Request<BodyEnd>,
        affinity: Option<&Arc<Affinity>>,
    ) -> Result<Response<ResponseBody>, SendError> {
        let affinity = affinity.filter(|affinity| affinity.is_driven());
        if let Some(affinity) = affinity
            && let Some(mut sender) = affinity.take(self.id)
            && sender.ready().await.is_ok()
        {
            match sender.try_send_request(request).await {
                Ok(response) => {
                    let home = Home::Affine(affinity.clone());
                    return Ok(self.returning(response, sender, home));
                }
                Err(mut e) => match e.take_message() {
                    Some(unsent) => request = unsent,
                    None => return Err(SendError::exchange(e.error())),
                },
            }
        }
        // Boxed: once per client connection at most (with affinity), and
        // its future would otherwise weigh on every request's.
        Box::pin(self.send_pooled(request, affinity)).await
    }

    /// Sends on a pooled connection, or a new one; either becomes the
    /// client connection's own if `affinity` can take it.
    async fn send_pooled(
        &self,
        mut request: Request<BodyEnd>,
        affinity: Option<&Arc<Affinity>>,
    ) -> Result<Response<ResponseBody>, SendError> {
        let affinity = affinity.filter(|affinity| affinity.claims(self.id));
        while let Some(idle) = self.checkout() {
            let (mut sender, home) = match affinity {
                Some(affinity) => match idle.kept.adopt() {
                    Some(driver) => {
                        affinity.install(self.id, driver);
                        (idle.sender, Home::Affine(affinity.clone()))
                    }
                    None => continue, // it ended meanwhile
                },
                None => (idle.sender, Home::Kept(idle.kept)),
            };
            if sender.ready().await.is_err() {
                continue; // closed meanwhile
            }
            match sender.try_send_request(request).await {
                Ok(response) => return Ok(self.returning(response, sender, home)),
                Err(mut e) => match e.take_message() {
                    Some(unsent) => request = unsent,
                    None => return Err(SendError::exchange(e.error())),
                },
            }
        }
        let (mut sender, driver) = self.connect().await?;
        let home = match affinity {
            Some(affinity) => {
                affinity.install(self.id, driver);
                Home::Affine(affinity.clone())
            }
            None => Home::Kept(Kept::new(driver)),
        };
        match sender.send_request(request).await {
            Ok(response) => Ok(self.returning(response, sender, home)),
            Err(e) => Err(SendError::exchange(&e)),
        }
    }

    /// The newest idle connection still open; closed and stale ones are dropped.
    fn checkout(&self) -> Option<Idle> {
        IDLE.with_borrow_mut(|pools| {
            let idle = &mut pools.iter_mut().find(|(id, _)| *id == self.id)?.1;
            while let Some(conn) = idle.pop() {
                if !conn.sender.is_closed() && conn.since.elapsed() < IDLE_TIMEOUT {
                    return Some(conn);
                }
            }
            None
        })
    }

    async fn connect(&self) -> Result<(SendRequest<BodyEnd>, Driver), SendError> {
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
        home: Home,
    ) -> Response<ResponseBody> {
        let upgraded = response.status() == http::StatusCode::SWITCHING_PROTOCOLS;
        response.map(|body| {
            let mut body = Watched::new(
                body,
                GiveBack {
                    pool: self.id,
                    sender,
                    home,
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
/// back to where it came from: the client connection's own, or this
/// thread's idle stack.
pub type ResponseBody = Watched<Incoming, GiveBack>;

/// Where a response's connection goes when its body ends cleanly.
pub struct GiveBack {
    pool: u64,
    sender: SendRequest<BodyEnd>,
    home: Home,
}

/// Who drives a connection between its exchanges.
enum Home {
    /// A client connection's task (`affinity::beside`).
    Affine(Arc<Affinity>),
    /// A task of its own, in the idle stack.
    Kept(Kept),
}

impl AtEnd for GiveBack {
    fn at_end(self, clean: bool) {
        if !clean {
            return; // a failed body: the connection is not reused
        }
        match self.home {
            Home::Affine(affinity) => affinity.give_back(self.pool, self.sender),
            Home::Kept(kept) => push(self.pool, self.sender, kept),
        }
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
