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
pub struct OverloadLayer {
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
    #[project = BoundedProj]
    pub enum Bounded<F> {
        Admitted { #[pin] future: F, _permit: OwnedSemaphorePermit },
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
