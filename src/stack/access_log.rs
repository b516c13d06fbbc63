//! The request's one log line and its metrics, for every answer the stack
//! gives — the app's, and those of the layers that answer by themselves
//! (overload, rate limit, panic).
//!
//! Errors become responses in one function, [`HttpError::into_response`],
//! which leaves the error in the response's extensions; the app leaves the
//! request's [`Outcome`] there too. This layer reads both back for the line,
//! and turns the one error a layer returns instead of a response
//! (`LoadShed`'s overload) into its answer, so nothing reaches hyper as an
//! error. The line's level says who must act: error for an operator fault
//! or a bug, warn for any other 5xx, info otherwise.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use http::{HeaderValue, Method, Request, Response, Uri};
use pin_project_lite::pin_project;
use tower::{BoxError, Layer, Service};
use tower_http::request_id::RequestId;

use super::BoxBody;
use crate::app::App;
use crate::domain::session::{BoundId, UserRecord};
use crate::metrics::InFlight;
use crate::metrics::Outcome;
use crate::response::Handled;
use crate::response::HttpError;
use crate::wire::describe;

#[derive(Clone)]
pub struct AccessLogLayer {
    pub app: Arc<App>,
}

impl<S> Layer<S> for AccessLogLayer {
    type Service = AccessLog<S>;

    fn layer(&self, inner: S) -> AccessLog<S> {
        AccessLog {
            inner,
            app: self.app.clone(),
        }
    }
}

#[derive(Clone)]
pub struct AccessLog<S> {
    inner: S,
    app: Arc<App>,
}

impl<S, B> Service<Request<B>> for AccessLog<S>
where
    S: Service<Request<B>, Response = Response<BoxBody>, Error = BoxError>,
{
    type Response = Response<BoxBody>;
    type Error = Infallible;
    type Future = Logged<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Readiness errors are answered in `call`, where there is a request.
        match self.inner.poll_ready(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(_) => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, request: Request<B>) -> Logged<S::Future> {
        let line = Line {
            started: Instant::now(),
            _in_flight: self.app.metrics().in_flight(),
            method: request.method().clone(),
            uri: request.uri().clone(),
            request_id: request
                .extensions()
                .get::<RequestId>()
                .map(|id| id.header_value().clone()),
            app: self.app.clone(),
        };
        Logged {
            inner: self.inner.call(request),
            line: Some(line),
        }
    }
}

pin_project! {
    pub struct Logged<F> {
        #[pin]
        inner: F,
        line: Option<Line>,
    }
}

impl<F> Future for Logged<F>
where
    F: Future<Output = Result<Response<BoxBody>, BoxError>>,
{
    type Output = Result<Response<BoxBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let response = result.unwrap_or_else(|e| boxed(layer_error(e).into_response()));
        Poll::Ready(Ok(match this.line.take() {
            Some(line) => line.write(response),
            None => response, // polled again after completion: nothing left to log
        }))
    }
}

/// What the line needs of the request, taken before it moves on.
struct Line {
    started: Instant,
    _in_flight: InFlight,
    method: Method,
    uri: Uri,
    request_id: Option<HeaderValue>,
    app: Arc<App>,
}

impl Line {
    fn write(self, mut response: Response<BoxBody>) -> Response<BoxBody> {
        let elapsed = self.started.elapsed();
        let error = response.extensions_mut().remove::<HttpError>();
        let handled = response
            .extensions_mut()
            .remove::<Handled>()
            .unwrap_or(Handled::from(Outcome::Rejected));
        let mut outcome = handled.outcome;
        // Forward-auth: the request asked about, not the auth route itself;
        // else the canonical path every decision took.
        let (method, path) = match (handled.asked.as_deref(), handled.path.as_deref()) {
            (Some((method, path)), _) => (method, path.as_str()),
            (None, Some(path)) => (&self.method, path),
            (None, None) => (&self.method, self.uri.path()),
        };
        let user = handled.user.as_deref();
        let app = handled.app.as_deref().or(user.map(UserRecord::appid));
        let status = response.status();
        let metrics = self.app.metrics();
        if outcome == Outcome::Login {
            metrics.login(error.as_ref().map_or("ok", HttpError::code), app);
        }
        if status.is_server_error() {
            outcome = Outcome::Error;
        }
        metrics.request(outcome, status.as_u16(), elapsed);
        let request_id = self.request_id.as_ref().and_then(|id| id.to_str().ok());
        macro_rules! log_line {
            ($level:ident) => {
                tracing::$level!(
                    method = %method,
                    path,
                    status = status.as_u16(),
                    latency_ms = elapsed.as_secs_f64() * 1000.0,
                    outcome = outcome.as_str(),
                    request_id = request_id.unwrap_or("-"),
                    app,
                    openid = user.map(UserRecord::openid),
                    user_id = user.and_then(UserRecord::user_id).map(BoundId::as_str),
                    forward_auth = handled.asked.is_some().then_some(true),
                    code = error.as_ref().map(HttpError::code),
                    error = error.as_ref().map(tracing::field::display),
                    "request"
                )
            };
        }
        match &error {
            Some(e) if e.is_operator_fault() => log_line!(error),
            Some(_) if status.is_server_error() => log_line!(warn),
            _ => log_line!(info),
        }
        response
    }
}

/// The error a layer returned instead of a response.
fn layer_error(e: BoxError) -> HttpError {
    if e.is::<tower::load_shed::error::Overloaded>() {
        HttpError::Overloaded
    } else {
        HttpError::Internal(describe(&*e))
    }
}

fn boxed(response: Response<crate::response::Body>) -> Response<BoxBody> {
    response.map(BoxBody::new)
}
