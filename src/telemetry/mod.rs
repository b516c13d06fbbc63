//! Distributed tracing (`[tracing]`): OpenTelemetry spans of each request
//! and of what it waits on, exported with OTLP over HTTP.
//!
//! Opt-in: with no endpoint configured there is no tracer, the request
//! path pays a look at an empty current context per would-be span, and
//! W3C headers pass through as the client sent them
//! (`wire::trace_context`). With one, the
//! SDK's parent-based sampler follows a client's sampled flag and records
//! `tracing.sampling_ratio` of new traces; ended spans go to a bounded
//! queue and a thread of their own (`export`), never waited for.
//!
//! The tracer is the app's, not a process global (tests run several
//! gateways in one process, traced or not): the request's span carries it
//! in its context, where code deep in the domain, which holds no app
//! handle, finds it.

mod export;
mod span;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::trace::TracerProvider;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};

pub use opentelemetry::KeyValue;
pub use opentelemetry::trace::SpanKind;
pub use opentelemetry_sdk::trace::SdkTracer as Tracer;
pub use span::{Answered, RequestSpan, Span, annotate, bounded, current_trace_id, propagate};

use crate::config::{OtlpProtocol, TracingConfig, trusting};
use crate::metrics::SpanMetrics;

/// Set once any app in the process starts tracing: until then no request
/// is traced, and a would-be span costs one load instead of a look at the
/// thread's current context (a request path with tracing off is hot).
static STARTED: AtomicBool = AtomicBool::new(false);

/// Whether a request of this process may be traced (false: none is).
#[inline]
pub fn started() -> bool {
    STARTED.load(Ordering::Relaxed)
}

/// Span export, running: stopped (what is queued sent) when wxgate ends.
pub struct Tracing {
    tracer: SdkTracer,
    provider: SdkTracerProvider,
    exporting: export::Exporting,
}

/// Why tracing could not start.
#[derive(Debug, thiserror::Error)]
pub enum TracingError {
    /// The HTTP client for the collector.
    #[error("cannot build the OTLP client: {0}")]
    Client(#[from] reqwest::Error),
    /// The exporter refused its configuration.
    #[error("cannot build the OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    /// The export thread.
    #[error("cannot start the span export thread: {0}")]
    Thread(#[from] std::io::Error),
}

impl Tracing {
    /// Starts export to `config.endpoint`; spans count into `metrics`.
    pub fn start(config: &TracingConfig, metrics: SpanMetrics) -> Result<Self, TracingError> {
        let client = trusting(reqwest::Client::builder(), config.ca_file.as_ref())?
            .timeout(export::EXPORT_TIMEOUT)
            .connect_timeout(Duration::from_secs(3))
            .build()?;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(export::Client(client))
            .with_endpoint(config.endpoint.as_str())
            .with_protocol(match config.protocol {
                OtlpProtocol::Protobuf => Protocol::HttpBinary,
                OtlpProtocol::Json => Protocol::HttpJson,
            })
            .with_timeout(export::EXPORT_TIMEOUT)
            .build()?;
        let resource = Resource::builder()
            .with_service_name(config.service_name.clone())
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build();
        let (queue, exporting) = export::start(exporter, &resource, metrics)?;
        let provider = SdkTracerProvider::builder()
            .with_span_processor(queue)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                config.sampling_ratio,
            ))))
            .with_resource(resource)
            .build();
        STARTED.store(true, Ordering::Relaxed);
        Ok(Self {
            tracer: provider.tracer("wxgate"),
            provider,
            exporting,
        })
    }

    /// What starts the requests' spans.
    pub fn tracer(&self) -> &SdkTracer {
        &self.tracer
    }

    /// Sends the spans still queued (for `within` at most) and stops.
    pub async fn stop(self, within: Duration) {
        self.exporting.stop(within).await;
        let _ = self.provider.shutdown();
    }
}
