//! The request stack: each concern a tower layer, composed with
//! `ServiceBuilder` once per connection and served to hyper through
//! [`PerConnection`], which calls it in place instead of cloning it per
//! request (hyper-util's adapter clones the whole stack for every request).
//! Outermost first:
//!
//! | layer | from | what it does |
//! |---|---|---|
//! | [`observe`] | ours | the request id, the one log line and metrics, panics → 500 |
//! | [`overload`] | ours | `server.max_in_flight` per worker → 503 `overloaded`, at once |
//! | [`body_idle`] | ours | a silent request body ends (408) |
//! | `App::handle` | `app` | routes, sessions, login, proxy |
//!
//! The overload bound sheds at once instead of queueing: a request past
//! the bound is answered 503 `overloaded` with `Retry-After` while the ones
//! in flight complete. It sits outside the body timeout, so a slow body
//! holds its slot until it ends. The login rate limit is the login route's
//! own (`endpoints::login_limit`): no other request pays for it.
//!
//! Every layer is ready at once (none waits for capacity: the overload
//! bound answers in `call`), which is what lets one stack per connection
//! be called in place.

pub mod observe;
pub mod overload;

use std::cell::RefCell;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use http::{Request, Response};
use hyper::body::Incoming;
use tokio::sync::Semaphore;
use tower::{Service, ServiceBuilder};

use crate::app::App;
use crate::proxy::Peer;
use crate::response::{Answer, Body, HttpError};
use crate::wire::body_idle::{self, RequestBody};

/// What one worker's connections share: its bound on requests in flight.
#[derive(Clone)]
pub struct Worker {
    in_flight: Arc<Semaphore>,
}

impl Worker {
    /// A worker answering at most `max_in_flight` requests at once.
    pub fn new(max_in_flight: usize) -> Self {
        Self {
            in_flight: Arc::new(Semaphore::new(max_in_flight)),
        }
    }
}

/// What serves one connection: the whole stack.
pub trait ConnectionService:
    Service<
        Request<Incoming>,
        Response = Response<Body>,
        Error = Infallible,
        Future: Send + 'static,
    > + Send
    + 'static
{
}

impl<S> ConnectionService for S where
    S: Service<
            Request<Incoming>,
            Response = Response<Body>,
            Error = Infallible,
            Future: Send + 'static,
        > + Send
        + 'static
{
}

/// A connection's stack as hyper calls it (`&self`, one request at a time
/// on an HTTP/1 connection): called in place, never cloned.
pub struct PerConnection<S>(RefCell<S>);

impl<S: ConnectionService> PerConnection<S> {
    /// Serves with `stack`.
    pub fn new(stack: S) -> Self {
        Self(RefCell::new(stack))
    }
}

impl<S: ConnectionService> hyper::service::Service<Request<Incoming>> for PerConnection<S> {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = PerRequest<S::Future>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        // hyper's HTTP/1 dispatcher calls one request at a time; the future
        // returned owns what it needs, so the borrow ends here.
        let Ok(mut stack) = self.0.try_borrow_mut() else {
            return PerRequest::Busy;
        };
        // Every layer is ready at once (see the module doc).
        match stack.poll_ready(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(Ok(())) => PerRequest::Called {
                future: stack.call(request),
            },
            Poll::Ready(Err(never)) => match never {},
            Poll::Pending => PerRequest::Busy,
        }
    }
}

pin_project_lite::pin_project! {
    /// A request's future, or the answer of a stack that was busy.
    // pin_project_lite takes no doc comment on a variant's field.
    #[allow(missing_docs)]
    #[project = PerRequestProj]
    pub enum PerRequest<F> {
        /// The stack's future.
        Called { #[pin] future: F },
        /// Never met: the stack was busy or not ready.
        Busy,
    }
}

impl<F> std::future::Future for PerRequest<F>
where
    F: std::future::Future<Output = Result<Response<Body>, Infallible>>,
{
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            PerRequestProj::Called { future } => future.poll(cx),
            PerRequestProj::Busy => Poll::Ready(Ok(HttpError::Overloaded.into_response())),
        }
    }
}

/// The app's service for one connection, inside the whole stack.
pub fn connection(app: &Arc<App>, peer: Peer, worker: &Worker) -> impl ConnectionService {
    let inner = {
        let (app, peer) = (app.clone(), Arc::new(peer));
        tower::service_fn(move |request| {
            // Boxed: every layer above returns this future by value inside
            // its own, and moving a 4 KB future through each of them cost
            // more (memcpy) than one allocation does. Made in its box, not
            // moved there: `Box::pin` copied all 4 KB of it, 418
            // instructions per request (callgrind), and an async block
            // around `handle` copied it again when first polled.
            let handled = Box::new_uninit();
            Box::into_pin(Box::write(
                handled,
                app.clone().handle(request, peer.clone()),
            ))
        })
    };
    layered(app, worker, inner)
}

/// `inner` inside the whole stack (tests wrap services of their own).
pub fn layered<S>(app: &Arc<App>, worker: &Worker, inner: S) -> impl ConnectionService
where
    S: Service<Request<RequestBody>, Response = Answer, Error = Infallible> + Send + 'static,
    S::Future: Send + 'static,
{
    ServiceBuilder::new()
        .layer(observe::ObserveLayer { app: app.clone() })
        .layer(overload::OverloadLayer {
            in_flight: worker.in_flight.clone(),
        })
        .layer(body_idle::BodyIdleLayer {
            timeout: app.body_idle_timeout(),
        })
        .service(inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::StatusCode;
    use http_body_util::{BodyExt, Empty};
    use hyper_util::rt::TokioIo;
    use tokio::net::{TcpListener, TcpStream};

    #[tokio::test]
    async fn a_panicking_handler_answers_500_and_the_connection_keeps_serving() {
        let config = crate::Config::parse(
            "[upstream]\nurl = \"http://127.0.0.1:9\"\n\
             [wechat]\nmode = \"mock\"\nappid = \"wx0\"\n\
             [server]\nlisten = \"127.0.0.1:0\"\n",
            &|_| None,
        )
        .unwrap();
        let app = Arc::new(App::new(&config).unwrap());
        let inner = tower::service_fn(|request: Request<RequestBody>| async move {
            assert_ne!(request.uri().path(), "/boom", "a bug in a handler");
            Ok::<_, Infallible>(crate::response::Answer {
                response: crate::response::empty(StatusCode::NO_CONTENT),
                handled: crate::response::Handled::from(crate::metrics::Outcome::Authenticated),
                error: None,
            })
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let worker = Worker::new(8);
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let service = PerConnection::new(layered(&app, &worker, inner));
            let served = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
            served.unwrap();
        });

        // Both requests on one connection: the panic must not end it.
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(connection);
        let get = |path: &str| {
            Request::get(path)
                .header("host", "x")
                .body(Empty::<Bytes>::new())
                .unwrap()
        };
        let response = sender.send_request(get("/boom")).await.unwrap();
        assert_eq!(response.status(), 500);
        assert!(response.headers().contains_key("x-request-id"));
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["code"], "internal");
        assert!(!json["message"].as_str().unwrap().contains("bug"), "{json}");

        sender.ready().await.unwrap();
        let response = sender.send_request(get("/fine")).await.unwrap();
        assert_eq!(response.status(), 204);
    }
}
