//! The request stack: each concern a tower layer, composed with
//! `ServiceBuilder` once per connection and served through hyper-util's
//! tower adapter. Outermost first:
//!
//! | layer | from | what it does |
//! |---|---|---|
//! | `keep_acceptable` (MapRequest) | `request_id` | drops an odd client `X-Request-Id` |
//! | SetRequestId | tower-http, our `MakeId` | gives the request its id (upstream sees it) |
//! | PropagateRequestId | tower-http | puts the id on every response |
//! | SetSensitiveRequestHeaders | tower-http | session header, `Authorization`, `Cookie` |
//! | [`access_log`] | ours | the one log line and metrics; layer errors → JSON |
//! | CatchPanic | tower-http | a panic → 500 `internal`; the worker keeps serving |
//! | [`login_rate`] | ours, on governor | `POST /login` per client IP → 429 |
//! | LoadShed + GlobalConcurrencyLimit | tower | `server.max_in_flight` per worker → 503 `overloaded` |
//! | [`body_idle`] | ours | a silent request body ends (408) |
//! | `App::handle` | `app` | routes, sessions, login, proxy |
//!
//! The overload bound sheds at once instead of queueing: a request past
//! the bound is answered 503 `overloaded` with `Retry-After` while the ones
//! in flight complete. It sits inside the rate limit, so 429s cost no slot,
//! and outside the body timeout, so a slow body holds its slot until it ends.

pub mod access_log;
pub mod client_ip;
pub mod login_rate;

use std::any::Any;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderName, Request, Response, header};
use hyper::body::Incoming;
use tokio::sync::Semaphore;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::load_shed::LoadShedLayer;
use tower::{BoxError, Service, ServiceBuilder};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;

use crate::app::App;
use crate::proxy::Peer;
use crate::response::Body;
use crate::response::HttpError;
use crate::wire::body_idle::{self, RequestBody};
use crate::wire::request_id::{self, MakeId};

/// The body of every response the stack gives (CatchPanic boxes them).
pub type BoxBody = tower_http::body::UnsyncBoxBody<Bytes, BoxError>;

/// What one worker's connections share: its bound on requests in flight.
#[derive(Clone)]
pub struct Worker {
    in_flight: Arc<Semaphore>,
}

impl Worker {
    pub fn new(max_in_flight: usize) -> Self {
        Self {
            in_flight: Arc::new(Semaphore::new(max_in_flight)),
        }
    }
}

/// What serves one connection: the whole stack, as hyper-util's adapter needs it.
pub trait ConnectionService:
    Service<
        Request<Incoming>,
        Response = Response<BoxBody>,
        Error = Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + 'static
{
}

impl<S> ConnectionService for S where
    S: Service<
            Request<Incoming>,
            Response = Response<BoxBody>,
            Error = Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + 'static
{
}

/// The app's service for one connection, inside the whole stack.
pub fn connection(app: &Arc<App>, peer: Peer, worker: &Worker) -> impl ConnectionService {
    let client = peer.ip();
    let inner = {
        let (app, peer) = (app.clone(), Arc::new(peer));
        tower::service_fn(move |request| {
            let (app, peer) = (app.clone(), peer.clone());
            // Boxed: every layer above returns this future by value inside
            // its own, and moving a 4 KB future through each of them cost
            // more (memcpy) than one allocation does.
            Box::pin(async move { Ok::<_, Infallible>(app.handle(request, &peer).await) })
        })
    };
    layered(app, client, worker, inner)
}

/// `inner` inside the whole stack (tests wrap services of their own).
pub fn layered<S>(
    app: &Arc<App>,
    client: IpAddr,
    worker: &Worker,
    inner: S,
) -> impl ConnectionService
where
    S: Service<Request<RequestBody>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let sensitive: [HeaderName; 3] = [app.session_header(), header::AUTHORIZATION, header::COOKIE];
    ServiceBuilder::new()
        .map_request(request_id::keep_acceptable::<Incoming>)
        .layer(SetRequestIdLayer::new(
            request_id::HEADER.clone(),
            MakeId(app.request_ids()),
        ))
        .layer(PropagateRequestIdLayer::new(request_id::HEADER.clone()))
        .layer(SetSensitiveRequestHeadersLayer::new(sensitive))
        .layer(access_log::AccessLogLayer { app: app.clone() })
        .layer(CatchPanicLayer::custom(answer_panic as fn(_) -> _))
        .layer(login_rate::LoginRateLayer {
            app: app.clone(),
            peer: client,
        })
        .layer(LoadShedLayer::new())
        .layer(GlobalConcurrencyLimitLayer::with_semaphore(
            worker.in_flight.clone(),
        ))
        .layer(body_idle::BodyIdleLayer {
            timeout: app.body_idle_timeout(),
        })
        .service(inner)
}

/// A handler panicked: 500 `internal`, the panic's text for the log only.
fn answer_panic(panic: Box<dyn Any + Send + 'static>) -> Response<Body> {
    let text = match panic.downcast::<String>() {
        Ok(text) => *text,
        Err(panic) => panic
            .downcast_ref::<&str>()
            .map_or("a panic without a message", |text| *text)
            .to_owned(),
    };
    HttpError::Internal(format!("a handler panicked: {text}")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;
    use http_body_util::{BodyExt, Empty};
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;
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
            Ok::<_, Infallible>(crate::response::empty(StatusCode::NO_CONTENT))
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let worker = Worker::new(8);
        tokio::spawn(async move {
            let (stream, peer) = listener.accept().await.unwrap();
            let service = TowerToHyperService::new(layered(&app, peer.ip(), &worker, inner));
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
