//! `server.max_in_flight`: requests one worker handles at once. Past the
//! bound a request is answered 503 `overloaded` (with `Retry-After`) at
//! once — shed, never queued — while the ones in flight complete.
//!
//! tower's `LoadShed` over `GlobalConcurrencyLimit` did the same in two
//! layers, and left a queued acquire behind in a service that is not
//! cloned per request (the stack is one per connection): a permit handed
//! to it would sit unused until that connection's next request. Here a
//! permit is taken without waiting, or not at all, and is held by the
//! request's future until the response head is out.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Request;
use pin_project_lite::pin_project;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::{Layer, Service};

use crate::response::{Answer, HttpError};

#[derive(Clone)]
/// Answers `503 overloaded` at once past the worker's limit.
pub struct OverloadLayer {
    /// The worker's slots (`server.max_in_flight`).
    pub in_flight: Arc<Semaphore>,
}

impl<S> Layer<S> for OverloadLayer {
    type Service = Overload<S>;

    fn layer(&self, inner: S) -> Overload<S> {
        Overload {
            inner,
            in_flight: self.in_flight.clone(),
        }
    }
}

#[derive(Clone)]
/// The service [`OverloadLayer`] makes.
pub struct Overload<S> {
    inner: S,
    in_flight: Arc<Semaphore>,
}

impl<S, B> Service<Request<B>> for Overload<S>
where
    S: Service<Request<B>, Response = Answer>,
{
    type Response = Answer;
    type Error = S::Error;
    type Future = Bounded<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Bounded<S::Future> {
        match self.in_flight.clone().try_acquire_owned() {
            Ok(permit) => Bounded::Admitted {
                future: self.inner.call(request),
                _permit: permit,
            },
            Err(_) => Bounded::Shed,
        }
    }
}

pin_project! {
    /// A request admitted with its slot, or shed.
    // pin_project_lite takes no doc comment on a variant's field.
    #[allow(missing_docs)]
    #[project = BoundedProj]
    pub enum Bounded<F> {
        /// Served, holding one of the worker's slots until done.
        Admitted { #[pin] future: F, _permit: OwnedSemaphorePermit },
        /// Answered `503 overloaded` at once.
        Shed,
    }
}

impl<F, E> Future for Bounded<F>
where
    F: Future<Output = Result<Answer, E>>,
{
    type Output = Result<Answer, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            BoundedProj::Admitted { future, .. } => future.poll(cx),
            BoundedProj::Shed => Poll::Ready(Ok(Answer::error(HttpError::Overloaded))),
        }
    }
}
