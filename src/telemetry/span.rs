//! The spans of a request: its server span ([`RequestSpan`], started by
//! the stack's observe layer) and the spans of what it waits on ([`Span`]:
//! the session lookup, WeChat, binding, decrypt, the access token, the
//! upstream), each a child of the span current where it starts.
//!
//! The current span travels the way OpenTelemetry's Rust API carries it:
//! the request's context (its span and the app's tracer) is attached while
//! its future is polled (observe does that), so code deep in the domain
//! starts a child without a parameter for it. With tracing off nothing is
//! attached and every `Span::start` finds an empty current context.
//!
//! Attributes follow OpenTelemetry's HTTP semantic conventions
//! (`http.request.method`, `url.path`, `http.response.status_code`,
//! `server.address`, `error.type`…). None ever holds a secret, a session
//! id, a code, a query string or a phone number: paths and names only.

use std::borrow::Cow;
use std::future::Future;
use std::io::Write;

use futures_util::future::Either;
use http::{HeaderMap, HeaderValue, Method, Request, Version};
use opentelemetry::context::{FutureExt, WithContext};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::SdkTracer;

use crate::wire::trace_context::{self, TRACEPARENT, TRACESTATE};

/// A request's server span, from its head to its answer.
pub struct RequestSpan {
    /// The request's context: its span, and a client's parent behind it.
    cx: Context,
    /// Its name until the route is known (`{method} {route}` then).
    method: Method,
}

/// What ends a request's span.
pub struct Answered<'a> {
    /// The answer's status.
    pub status: u16,
    /// wxgate's own route (a fixed path), for `http.route` and the name;
    /// `None` for a proxied or refused request, whose path may be anything.
    pub route: Option<&'a str>,
    /// The path every decision took, canonical.
    pub path: &'a str,
    /// What the request was (the log line's `outcome`).
    pub outcome: &'static str,
    /// wxgate's error code, when it answered one.
    pub error: Option<&'static str>,
    /// The app of its user or login.
    pub app: Option<&'a str>,
    /// Its request id.
    pub request_id: &'a str,
}

impl RequestSpan {
    /// The request's span (`None` when tracing is off), a child of the
    /// client's `traceparent` when that is well-formed. The client's
    /// `traceparent` and `tracestate` are taken out: the upstream's are
    /// written afresh, with the upstream span as their parent.
    /// `sent_traceparent`: the client sent one (`wire::sent`), so there is
    /// something to take.
    pub fn start<B>(
        request: &mut Request<B>,
        sent_traceparent: bool,
        tracer: Option<&SdkTracer>,
    ) -> Option<Self> {
        let tracer = tracer?;
        let sent = sent_traceparent
            .then(|| trace_context::take(request.headers_mut()))
            .flatten();
        let parent = match sent {
            Some(sent) => Context::new().with_remote_span_context(SpanContext::new(
                TraceId::from_bytes(sent.trace_id),
                SpanId::from_bytes(sent.parent_id),
                TraceFlags::new(sent.flags),
                true,
                // §3.3.1: an invalid tracestate is dropped, the traceparent kept.
                sent.state
                    .and_then(|state| state.parse::<TraceState>().ok())
                    .unwrap_or_default(),
            )),
            None => Context::new(),
        };
        let method = request.method();
        let version = match request.version() {
            Version::HTTP_2 => "2",
            Version::HTTP_10 => "1.0",
            _ => "1.1",
        };
        let span = tracer
            .span_builder(method.as_str().to_owned())
            .with_kind(SpanKind::Server)
            .with_attributes([
                KeyValue::new("http.request.method", method.as_str().to_owned()),
                KeyValue::new("network.protocol.version", version),
            ])
            .start_with_context(tracer, &parent);
        Some(Self {
            cx: parent.with_span(span).with_value(Traced(tracer.clone())),
            method: method.clone(),
        })
    }

    /// Its trace id, as W3C writes it, for the log line.
    pub fn trace_id(&self) -> trace_context::TraceId {
        hex(self.cx.span().span_context().trace_id())
    }

    /// Makes the request's span current while the guard lives (each poll).
    pub fn attach(&self) -> opentelemetry::ContextGuard {
        self.cx.clone().attach()
    }

    /// Ends the span with what the answer was.
    pub fn end(self, answered: Answered<'_>) {
        let span = self.cx.span();
        if !span.is_recording() {
            return;
        }
        let mut attributes = vec![
            KeyValue::new("url.path", bounded(answered.path)),
            KeyValue::new("http.response.status_code", i64::from(answered.status)),
            KeyValue::new("wxgate.outcome", answered.outcome),
            KeyValue::new("wxgate.request_id", answered.request_id.to_owned()),
        ];
        if let Some(route) = answered.route {
            attributes.push(KeyValue::new("http.route", route.to_owned()));
            span.update_name(format!("{} {route}", self.method));
        }
        if let Some(app) = answered.app {
            attributes.push(KeyValue::new("wxgate.app", app.to_owned()));
        }
        if let Some(code) = answered.error {
            attributes.push(KeyValue::new("wxgate.error", code));
        }
        // Server spans: a 5xx is an error, a 4xx the client's (semconv).
        if answered.status >= 500 {
            // wxgate's code, else the backend's status (semconv's fallback).
            let error_type = match answered.error {
                Some(code) => code.to_owned(),
                None => answered.status.to_string(),
            };
            attributes.push(KeyValue::new("error.type", error_type));
            span.set_status(Status::error(""));
        }
        span.set_attributes(attributes);
        span.end();
    }
}

/// The context value that says a request is traced, and by what.
#[derive(Clone)]
struct Traced(SdkTracer);

/// `f` of the current context and its tracer, when a request is traced.
#[inline]
fn traced<T>(f: impl FnOnce(&Context, &SdkTracer) -> Option<T>) -> Option<T> {
    if !super::started() {
        return None;
    }
    Context::map_current(|cx| cx.get::<Traced>().and_then(|traced| f(cx, &traced.0)))
}

/// The trace of the request being served, with tracing on: for what is
/// written deep in the domain (an audit event), which holds no request.
pub fn current_trace_id() -> Option<trace_context::TraceId> {
    traced(|cx, _| {
        let context = cx.span().span_context().clone();
        context.is_valid().then(|| hex(context.trace_id()))
    })
}

/// Adds `attributes` to the current request's span, when it records.
pub fn annotate(attributes: impl FnOnce() -> Vec<KeyValue>) {
    traced(|cx, _| {
        let span = cx.span();
        span.is_recording()
            .then(|| span.set_attributes(attributes()))
    });
}

/// A span of something a request waits on; ended when dropped.
pub struct Span {
    /// `Some` when a trace is recording: the context with this span
    /// (boxed: held across an await on the hot path, a pointer's room).
    cx: Option<Box<Context>>,
}

impl Span {
    /// A child of the current span, or nothing (tracing off, no request
    /// current — a start-up check —, or a trace not sampled).
    /// `describe` (its name and attributes) runs only for a recorded span.
    #[inline]
    pub fn start(
        kind: SpanKind,
        describe: impl FnOnce() -> (Cow<'static, str>, Vec<KeyValue>),
    ) -> Self {
        let cx = traced(|parent, tracer| {
            let sampled = parent.span().span_context().is_sampled();
            sampled.then(|| {
                let (name, attributes) = describe();
                let span = tracer
                    .span_builder(name)
                    .with_kind(kind)
                    .with_attributes(attributes)
                    .start_with_context(tracer, parent);
                Box::new(parent.with_span(span))
            })
        });
        Self { cx }
    }

    /// Whether it records: attributes worth building.
    pub fn records(&self) -> bool {
        self.cx.is_some()
    }

    /// Adds an attribute.
    pub fn set(&self, attribute: KeyValue) {
        if let Some(cx) = &self.cx {
            cx.span().set_attribute(attribute);
        }
    }

    /// Marks it failed: `error.type` (a code, never a message with values).
    pub fn fail(&self, error_type: impl Into<opentelemetry::Value>) {
        if let Some(cx) = &self.cx {
            let span = cx.span();
            span.set_attribute(KeyValue::new("error.type", error_type));
            span.set_status(Status::error(""));
        }
    }

    /// `future` with this span current, so its own spans are this one's children.
    pub fn wrap<F: Future>(&self, future: F) -> Either<WithContext<F>, F> {
        match &self.cx {
            Some(cx) => Either::Left(future.with_context(Context::clone(cx))),
            None => Either::Right(future),
        }
    }
}

impl Drop for Span {
    #[inline]
    fn drop(&mut self) {
        if let Some(cx) = &self.cx {
            cx.span().end();
        }
    }
}

/// Writes the W3C headers for the next hop: its parent is `span`'s when
/// it records, else the current request's; nothing with tracing off (the
/// client's own headers then went on as they came, `trace_context`).
#[inline]
pub fn propagate(span: &Span, headers: &mut HeaderMap) {
    if span.cx.is_none() && !super::started() {
        return;
    }
    let write = |cx: &Context, headers: &mut HeaderMap| {
        let span = cx.span();
        let context = span.span_context();
        if !context.is_valid() {
            return;
        }
        let value = format!(
            "00-{}-{}-{:02x}",
            context.trace_id(),
            context.span_id(),
            context.trace_flags().to_u8()
        );
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(&TRACEPARENT, value);
        }
        let state = context.trace_state().header();
        match HeaderValue::from_str(&state) {
            Ok(value) if !state.is_empty() => {
                headers.insert(&TRACESTATE, value);
            }
            _ => {
                headers.remove(&TRACESTATE);
            }
        }
    };
    match &span.cx {
        Some(cx) => write(cx, headers),
        None => {
            traced(|cx, _| {
                write(cx, headers);
                Some(())
            });
        }
    }
}

/// The longest text a request puts in an attribute (its path): the
/// export queue is bounded in spans, and this bounds each span, so a
/// flood of long paths cannot grow it past a few MiB.
const ATTRIBUTE_MAX: usize = 512;

/// `text` cut to [`ATTRIBUTE_MAX`] bytes (at a character boundary).
pub fn bounded(text: &str) -> String {
    let mut end = text.len().min(ATTRIBUTE_MAX);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// `id` as W3C writes it: 32 lower-case hex digits.
fn hex(id: TraceId) -> trace_context::TraceId {
    let mut out = [b'0'; 32];
    // 32 digits always fit: the write cannot fail.
    let _ = write!(&mut out[..], "{id:032x}");
    out
}
