//! Request-body idle timeout: a request body that sends no bytes for
//! `server.body_idle_timeout` ends with [`BodyError::Idle`].
//!
//! Why: a client trickling its body (one byte a second, or nothing at all
//! after the headers) would otherwise hold its request, and the backend
//! connection the body is streamed to, for as long as it likes. hyper's
//! header-read timeout covers only the head. As nginx's
//! `client_body_timeout`, the clock measures the gap between reads, not the
//! whole upload, so a large `wx.uploadFile` over a slow link is fine.
//!
//! The error surfaces where the body is read: a handler reading it answers
//! 408 `request_timeout`, and so does the proxy when no response has started
//! (see `proxy::forward`); otherwise the request just ends.
//!
//! The timer exists only while the body is waiting for the client: a body
//! that has ended (most GETs) never allocates one.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep};
use tower::{Layer, Service};

/// The request body every handler reads.
pub type RequestBody = IdleTimeout<Incoming>;

#[derive(Debug, thiserror::Error)]
/// Why reading a request body failed: hyper's error, or the idle timeout.
#[allow(missing_docs)] // each variant's `#[error]` text describes it
pub enum BodyError {
    #[error(transparent)]
    Read(#[from] hyper::Error),
    #[error("the request body sent nothing for {0:?}")]
    Idle(Duration),
}

impl BodyError {
    /// The request-body error behind `e`, if `e` or one of its causes is one:
    /// then the client, not the upstream, made the exchange fail.
    pub fn in_chain<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a BodyError> {
        let mut current = Some(e);
        while let Some(e) = current {
            if let Some(body) = e.downcast_ref::<BodyError>() {
                return Some(body);
            }
            current = e.source();
        }
        None
    }

    /// The idle timeout, if `e` or one of its causes is one.
    pub fn idle_in(e: &(dyn std::error::Error + 'static)) -> Option<Duration> {
        match Self::in_chain(e) {
            Some(BodyError::Idle(timeout)) => Some(*timeout),
            _ => None,
        }
    }
}

/// A request body that fails once it sends nothing for `timeout`.
pub struct IdleTimeout<B> {
    inner: B,
    timeout: Duration,
    /// Armed while the body waits for the client; allocated at the first wait.
    timer: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl<B> IdleTimeout<B> {
    /// `inner`, ended after `timeout` without a byte.
    pub fn new(inner: B, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            timer: None,
            armed: false,
        }
    }
}

impl<B> Body for IdleTimeout<B>
where
    B: Body<Data = Bytes, Error = hyper::Error> + Unpin,
{
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            this.armed = false;
            return Poll::Ready(frame.map(|f| f.map_err(BodyError::Read)));
        }
        let timeout = this.timeout;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if !this.armed {
            // From now: the clock runs only while the body waits.
            timer.as_mut().reset(Instant::now() + timeout);
            this.armed = true;
        }
        ready!(timer.as_mut().poll(cx));
        this.armed = false;
        Poll::Ready(Some(Err(BodyError::Idle(this.timeout))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Wraps every request body in [`IdleTimeout`].
#[derive(Clone)]
pub struct BodyIdleLayer {
    /// `server.body_idle_timeout`.
    pub timeout: Duration,
}

impl<S> Layer<S> for BodyIdleLayer {
    type Service = BodyIdle<S>;

    fn layer(&self, inner: S) -> BodyIdle<S> {
        BodyIdle {
            inner,
            timeout: self.timeout,
        }
    }
}

#[derive(Clone)]
/// The service [`BodyIdleLayer`] makes: `inner` with every request body wrapped.
pub struct BodyIdle<S> {
    inner: S,
    timeout: Duration,
}

impl<S, B> Service<Request<B>> for BodyIdle<S>
where
    S: Service<Request<IdleTimeout<B>>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> S::Future {
        let timeout = self.timeout;
        self.inner
            .call(request.map(|body| IdleTimeout::new(body, timeout)))
    }
}
