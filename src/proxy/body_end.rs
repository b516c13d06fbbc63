//! A request body that says when it has been sent in full.
//!
//! The upstream timeout must not count the time a client spends uploading:
//! a 1 GiB `wx.uploadFile` over a slow link is not a slow backend. As in
//! Envoy, the timer starts once the request body has ended (or failed), so
//! the timeout measures only the backend's own think time.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::sync::oneshot;

pub struct BodyEnd {
    inner: Incoming,
    ended: Option<oneshot::Sender<()>>,
}

impl BodyEnd {
    /// Wraps `inner`; the receiver completes when the body has ended.
    /// `None` when there is no body to wait for (most GETs): no channel.
    pub fn new(inner: Incoming) -> (Self, Option<oneshot::Receiver<()>>) {
        if inner.is_end_stream() {
            return (Self { inner, ended: None }, None);
        }
        let (tx, rx) = oneshot::channel();
        let body = Self {
            inner,
            ended: Some(tx),
        };
        (body, Some(rx))
    }

    fn signal(&mut self) {
        if let Some(tx) = self.ended.take() {
            let _ = tx.send(());
        }
    }
}

impl Body for BodyEnd {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let poll = Pin::new(&mut self.inner).poll_frame(cx);
        match &poll {
            Poll::Ready(None | Some(Err(_))) => self.signal(),
            Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream() => self.signal(),
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
