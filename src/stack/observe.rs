//! The outermost layer: every request's id, its one log line and metrics,
//! and panic containment — one layer, because each of these as a layer of
//! its own (tower-http's SetRequestId, PropagateRequestId, CatchPanic, and
//! an access log) moved the request and the response once more, kept the
//! id in an extension map allocated per message and boxed every body; this
//! one keeps the id and the log line's facts in its own future.
//!
//! - **Request id** (`wire::request_id::settle`): the client's when
//!   acceptable, else a fresh one; the upstream sees it, the response
//!   carries it (unless the backend set its own), the log line names it.
//! - **Log line and metrics** for every answer the stack gives — the app's
//!   and the layers' that answer by themselves (overload, rate limit,
//!   panic). The layers below hand it an [`Answer`]: the response, and
//!   beside it the app's [`Handled`](crate::response::Handled) and the error answered, kept out of
//!   the response's extensions (a map allocated per message).
//!   The line's level says who must act: error for an operator fault or a
//!   bug, warn for any other 5xx, info otherwise.
//! - **Panics** in the app's call or future become 500 `internal` (the
//!   panic's text in the log only); the worker and the connection keep
//!   serving.
//!
//! No header is ever logged (the line names its fields), so none needs
//! marking as sensitive.

use std::any::Any;
use std::convert::Infallible;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::header::Entry;
use http::{HeaderValue, Method, Request, Response, Uri};
use pin_project_lite::pin_project;
use tower::{BoxError, Layer, Service};

use crate::app::App;
use crate::domain::session::{BoundId, UserRecord};
use crate::metrics::{InFlight, Outcome};
use crate::response::{Answer, Body, HttpError};
use crate::telemetry::{Answered, RequestSpan};
use crate::wire::describe;
use crate::wire::request_id::{self, HEADER};
use crate::wire::sent::Sent;
use crate::wire::trace_context::{self, TraceId};

#[derive(Clone)]
/// The outermost layer: request id, the log line and the metrics.
pub struct ObserveLayer {
    /// The app whose metrics and ids it uses.
    pub app: Arc<App>,
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Observe<S> {
        Observe {
            inner,
            app: self.app.clone(),
        }
    }
}

#[derive(Clone)]
/// The service [`ObserveLayer`] makes.
pub struct Observe<S> {
    inner: S,
    app: Arc<App>,
}

impl<S, B> Service<Request<B>> for Observe<S>
where
    S: Service<Request<B>, Response = Answer>,
    S::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Observed<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Readiness errors are answered in `call`, where there is a request.
        match self.inner.poll_ready(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(_) => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, mut request: Request<B>) -> Observed<S::Future> {
        // One pass over the client's headers for what this layer reads.
        let sent = Sent::of(request.headers());
        let request_id = request_id::settle(
            request.headers_mut(),
            sent.request_id,
            self.app.request_ids(),
        );
        // Tracing on: the request's span (the client's W3C headers taken
        // in); off: those headers checked and passed on.
        let (trace, trace_id) =
            match RequestSpan::start(&mut request, sent.traceparent, self.app.tracer()) {
                Some(span) => {
                    let id = span.trace_id();
                    (Some(Box::new(span)), Some(id))
                }
                None if sent.traceparent => (None, trace_context::settle(request.headers_mut())),
                None => (None, None),
            };
        let line = Line {
            trace,
            trace_id,
            started: Instant::now(),
            _in_flight: self.app.metrics().in_flight(),
            method: request.method().clone(),
            uri: request.uri().clone(),
            request_id,
            app: self.app.clone(),
        };
        let inner = match catch_unwind(AssertUnwindSafe(|| self.inner.call(request))) {
            Ok(future) => State::Running { future },
            Err(panic) => State::Panicked {
                text: Some(panic_text(panic)),
            },
        };
        Observed {
            inner,
            line: Some(line),
        }
    }
}

pin_project! {
    /// The inner service's future, and the log line it ends with.
    pub struct Observed<F> {
        #[pin]
        inner: State<F>,
        line: Option<Line>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Running { #[pin] future: F },
        /// The call itself panicked: there is no future to poll.
        Panicked { text: Option<String> },
    }
}

impl<F, E> Future for Observed<F>
where
    F: Future<Output = Result<Answer, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // The request's span is current while its future runs: what it
        // waits on starts child spans (`telemetry::Span`).
        let _current = this
            .line
            .as_ref()
            .and_then(|line| line.trace.as_deref())
            .map(RequestSpan::attach);
        let answer = match this.inner.project() {
            StateProj::Running { future } => {
                match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
                    Ok(Poll::Pending) => return Poll::Pending,
                    Ok(Poll::Ready(Ok(answer))) => answer,
                    Ok(Poll::Ready(Err(e))) => Answer::error(layer_error(e.into())),
                    Err(panic) => panicked(panic_text(panic)),
                }
            }
            StateProj::Panicked { text } => panicked(text.take().unwrap_or_default()),
        };
        // A panicked future is never polled again: there is one answer.
        Poll::Ready(Ok(match this.line.take() {
            Some(line) => line.write(answer),
            None => answer.response, // polled again after completion: nothing left to log
        }))
    }
}

/// What the line needs of the request, taken before it moves on.
struct Line {
    started: Instant,
    _in_flight: InFlight,
    method: Method,
    uri: Uri,
    request_id: HeaderValue,
    /// The W3C trace the request is in.
    trace_id: Option<TraceId>,
    /// Its span, with tracing on (boxed: off, a pointer's room).
    trace: Option<Box<RequestSpan>>,
    app: Arc<App>,
}

impl Line {
    fn write(self, answer: Answer) -> Response<Body> {
        let elapsed = self.started.elapsed();
        let Answer {
            mut response,
            handled,
            error,
        } = answer;
        let mut outcome = handled.outcome;
        // wxgate's own routes answer on fixed paths; a proxied or refused
        // request's path may be anything (not a span name).
        let own_route = !matches!(
            outcome,
            Outcome::Authenticated | Outcome::Public | Outcome::Rejected
        );
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
        let request_id = self.request_id.to_str().unwrap_or("-");
        let trace_id = self
            .trace_id
            .as_ref()
            .and_then(|id| std::str::from_utf8(id).ok());
        macro_rules! log_line {
            ($level:ident) => {
                tracing::$level!(
                    method = %method,
                    path,
                    status = status.as_u16(),
                    latency_ms = elapsed.as_secs_f64() * 1000.0,
                    outcome = outcome.as_str(),
                    request_id,
                    trace_id,
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
        if let Some(audited) = handled.audit.as_deref() {
            crate::audit::Event {
                action: audited.action,
                result: error.as_ref().map_or("ok", HttpError::code),
                app,
                openid: user.map(UserRecord::openid),
                user_id: user.and_then(UserRecord::user_id).map(BoundId::as_str),
                client_ip: Some(audited.client_ip),
                request_id: Some(request_id),
                trace_id,
                detail: None,
            }
            .record();
        }
        if let Some(trace) = self.trace {
            trace.end(Answered {
                status: status.as_u16(),
                route: own_route.then_some(path),
                path,
                outcome: outcome.as_str(),
                error: error.as_ref().map(HttpError::code),
                app,
                request_id,
            });
        }
        // On every answer, unless the backend gave one of its own.
        if let Entry::Vacant(vacant) = response.headers_mut().entry(&HEADER) {
            vacant.insert(self.request_id);
        }
        response
    }
}

/// The error a layer returned instead of a response.
fn layer_error(e: BoxError) -> HttpError {
    HttpError::Internal(describe(&*e))
}

/// A handler panicked: 500 `internal`, the panic's text for the log only.
fn panicked(text: String) -> Answer {
    Answer::error(HttpError::Internal(format!("a handler panicked: {text}")))
}

fn panic_text(panic: Box<dyn Any + Send + 'static>) -> String {
    match panic.downcast::<String>() {
        Ok(text) => *text,
        Err(panic) => panic
            .downcast_ref::<&str>()
            .map_or("a panic without a message", |text| *text)
            .to_owned(),
    }
}
