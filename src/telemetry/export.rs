//! Span export: a bounded queue the request path only ever `try_send`s
//! to, and a thread of its own that batches the queue and POSTs each
//! batch with opentelemetry-otlp's OTLP/HTTP exporter (over wxgate's
//! reqwest, so `tracing.ca_file` is trusted like `wechat.ca_file`).
//!
//! Not the SDK's `BatchSpanProcessor`: it drops spans when full too, but
//! counts them nowhere an operator can read, and its export thread polls
//! the exporter outside any tokio runtime, where reqwest cannot run. Here
//! a full queue is `wxgate_trace_spans_total{result="dropped"}`, so a
//! collector that is down or slow costs requests nothing but spans, and
//! memory stays at [`QUEUE`] spans at most.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use opentelemetry::Context;
use opentelemetry_http::{HttpClient, HttpError};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};
use tokio::sync::{mpsc, oneshot};

use crate::metrics::SpanMetrics;

/// Spans waiting for export, at most: ~1 KB each.
pub(super) const QUEUE: usize = 4096;
/// Spans per OTLP request, at most.
const BATCH: usize = 512;
/// How long a span waits for its batch to fill before it is sent anyway.
const BATCH_DELAY: Duration = Duration::from_secs(1);
/// One export's bound: past it the batch counts as failed.
pub(super) const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The SDK's processor: hands each ended, sampled span to the queue.
#[derive(Debug)]
pub(super) struct Queue {
    spans: mpsc::Sender<SpanData>,
    metrics: SpanMetrics,
}

impl SpanProcessor for Queue {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        // Never waits: a full queue drops the span and counts it.
        if self.spans.try_send(span).is_err() {
            self.metrics.dropped.inc();
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        // The export thread is stopped by `Exporting::stop`, which awaits it.
        Ok(())
    }
}

/// The export thread, until [`Exporting::stop`].
pub(super) struct Exporting {
    stop: Option<oneshot::Sender<()>>,
    stopped: Option<oneshot::Receiver<()>>,
}

impl Exporting {
    /// Sends what is queued, then ends the thread; waits `within` at most.
    pub(super) async fn stop(mut self, within: Duration) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(stopped) = self.stopped.take() {
            let _ = tokio::time::timeout(within, stopped).await;
        }
    }
}

/// The queue and the thread that empties it into `exporter`.
pub(super) fn start<E: SpanExporter + 'static>(
    mut exporter: E,
    resource: &Resource,
    metrics: SpanMetrics,
) -> std::io::Result<(Queue, Exporting)> {
    exporter.set_resource(resource);
    let (sender, receiver) = mpsc::channel(QUEUE);
    let (stop, stop_received) = oneshot::channel();
    let (done, stopped) = oneshot::channel();
    let counters = metrics.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("wxgate-otlp".to_owned())
        .spawn(move || {
            runtime.block_on(run(exporter, receiver, stop_received, counters));
            let _ = done.send(());
        })?;
    Ok((
        Queue {
            spans: sender,
            metrics,
        },
        Exporting {
            stop: Some(stop),
            stopped: Some(stopped),
        },
    ))
}

/// Batches: up to [`BATCH`] spans, or what came within [`BATCH_DELAY`] of
/// a batch's first span. One export at a time; while it runs the queue
/// fills, and past [`QUEUE`] spans are dropped (counted by [`Queue`]).
async fn run<E: SpanExporter>(
    exporter: E,
    mut spans: mpsc::Receiver<SpanData>,
    mut stop: oneshot::Receiver<()>,
    metrics: SpanMetrics,
) {
    let mut failing = false;
    loop {
        let first = tokio::select! {
            span = spans.recv() => span,
            _ = &mut stop => None,
        };
        let Some(first) = first else { break };
        let mut batch = Vec::with_capacity(BATCH);
        batch.push(first);
        let deadline = tokio::time::sleep(BATCH_DELAY);
        tokio::pin!(deadline);
        while batch.len() < BATCH {
            tokio::select! {
                span = spans.recv() => match span {
                    Some(span) => batch.push(span),
                    None => break,
                },
                _ = &mut deadline => break,
            }
        }
        export(&exporter, batch, &metrics, &mut failing).await;
    }
    // Stopping: what is queued goes in one last round of batches.
    let mut rest = Vec::new();
    while let Ok(span) = spans.try_recv() {
        rest.push(span);
        if rest.len() == BATCH {
            export(&exporter, std::mem::take(&mut rest), &metrics, &mut failing).await;
        }
    }
    if !rest.is_empty() {
        export(&exporter, rest, &metrics, &mut failing).await;
    }
}

async fn export<E: SpanExporter>(
    exporter: &E,
    batch: Vec<SpanData>,
    metrics: &SpanMetrics,
    failing: &mut bool,
) {
    let count = batch.len() as u64;
    let result = tokio::time::timeout(EXPORT_TIMEOUT, exporter.export(batch)).await;
    match result {
        Ok(Ok(())) => {
            metrics.exported.inc_by(count);
            if std::mem::take(failing) {
                tracing::info!("span export works again");
            }
        }
        failed => {
            metrics.failed.inc_by(count);
            // Once per run of failures: a collector down for an hour is one line.
            if !std::mem::replace(failing, true) {
                let error = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => format!("no answer within {EXPORT_TIMEOUT:?}"),
                };
                tracing::warn!(%error, spans = count, "span export failed; spans are dropped until the collector answers (wxgate_trace_spans_total)");
            }
        }
    }
}

/// opentelemetry-http's client trait over wxgate's reqwest 0.12 (the
/// crate's own reqwest support is for another reqwest version).
#[derive(Debug)]
pub(super) struct Client(pub(super) reqwest::Client);

impl HttpClient for Client {
    fn send_bytes<'a, 'b>(
        &'a self,
        request: http::Request<Bytes>,
    ) -> Pin<Box<dyn Future<Output = Result<http::Response<Bytes>, HttpError>> + Send + 'b>>
    where
        'a: 'b,
        Self: 'b,
    {
        Box::pin(async move {
            let request = reqwest::Request::try_from(request)?;
            let response = self.0.execute(request).await?;
            let mut answer = http::Response::builder().status(response.status().as_u16());
            if let Some(headers) = answer.headers_mut() {
                *headers = response.headers().clone();
            }
            // The exporter reads a partial-success answer from it.
            let body = response.bytes().await?;
            Ok(answer.body(body)?)
        })
    }
}
