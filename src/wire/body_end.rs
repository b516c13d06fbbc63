//! Streamed bodies that act once, when they end: [`Watched`].
//!
//! Two uses, one mechanism:
//! - The request body ([`BodyEnd`]) says when it has been sent in full. The
//!   upstream timeout must not count the time a client spends uploading: a
//!   1 GiB `wx.uploadFile` over a slow link is not a slow backend. As in
//!   Envoy, the timer starts once the request body has ended (or failed),
//!   so the timeout measures only the backend's own think time.
//! - The response body hands its upstream connection back to the pool when
//!   it has been read to the end (see `proxy::pool`).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::oneshot;

use crate::wire::body_idle::RequestBody;

/// What to do when a body ends: `clean` is false when it failed.
pub trait AtEnd {
    /// Runs the action; `clean` is false when the body failed.
    fn at_end(self, clean: bool);
}

/// `inner`, running its action the first time it is seen to end.
pub struct Watched<B, A: AtEnd> {
    inner: B,
    action: Option<A>,
}

impl<B: Body, A: AtEnd> Watched<B, A> {
    /// Watches `inner`, running `action` when it ends.
    pub fn new(inner: B, action: A) -> Self {
        Self {
            inner,
            action: Some(action),
        }
    }

    /// Runs the action now if the body has no more to send (no body, say).
    pub fn end_if_done(&mut self) {
        if self.inner.is_end_stream() {
            self.end(true);
        }
    }

    /// Drops the action unrun.
    pub fn forget(&mut self) {
        self.action = None;
    }

    fn end(&mut self, clean: bool) {
        if let Some(action) = self.action.take() {
            action.at_end(clean);
        }
    }
}

impl<B: Body<Data = Bytes> + Unpin, A: AtEnd + Unpin> Body for Watched<B, A> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let poll = Pin::new(&mut self.inner).poll_frame(cx);
        match &poll {
            Poll::Ready(None) => self.end(true),
            Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream() => self.end(true),
            Poll::Ready(Some(Err(_))) => self.end(false),
            _ => {}
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The request body as sent upstream; its sender fires when it has ended.
pub type BodyEnd = Watched<RequestBody, Option<oneshot::Sender<()>>>;

impl AtEnd for Option<oneshot::Sender<()>> {
    fn at_end(self, _clean: bool) {
        if let Some(ended) = self {
            let _ = ended.send(());
        }
    }
}

/// Wraps `inner`; the receiver completes when the body has ended.
/// `None` when there is no body to wait for (most GETs): no channel.
pub fn body_end(inner: RequestBody) -> (BodyEnd, Option<oneshot::Receiver<()>>) {
    if inner.is_end_stream() {
        return (Watched::new(inner, None), None);
    }
    let (tx, rx) = oneshot::channel();
    (Watched::new(inner, Some(tx)), Some(rx))
}
