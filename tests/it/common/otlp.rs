//! An OTLP/HTTP collector of the test's own (`POST /v1/traces`): it keeps
//! every request's media type and body, and reads OTLP/JSON payloads with
//! serde_json into flat [`SpanRecord`]s — an independent reading of what
//! wxgate's exporter wrote (OTLP's JSON mapping: ids as hex strings, span
//! kinds as numbers). `hanging()` accepts and never answers: a collector
//! that is up but stuck.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::Response;
use http_body_util::{BodyExt, Full};
use tokio::net::TcpListener;

/// OTLP's span kinds (`SpanKind` in trace.proto).
pub const INTERNAL: i64 = 1;
pub const SERVER: i64 = 2;
pub const CLIENT: i64 = 3;

#[derive(Clone)]
pub struct Collector {
    pub addr: SocketAddr,
    /// (content-type, body) of every export.
    received: Arc<Mutex<Vec<(String, Bytes)>>>,
}

/// One span, as the collector read it.
#[derive(Debug, Clone)]
pub struct SpanRecord {
    pub service: String,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    pub name: String,
    pub kind: i64,
    pub attributes: serde_json::Map<String, serde_json::Value>,
    /// `status.code`: 2 is an error.
    pub status: i64,
}

impl SpanRecord {
    /// An attribute's value, whatever its type, as text (OTLP/JSON writes
    /// 64-bit ints as strings).
    pub fn attr(&self, key: &str) -> Option<String> {
        let value = self.attributes.get(key)?;
        let inner = value.as_object()?.values().next()?;
        Some(match inner {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }
}

impl Collector {
    pub async fn start() -> Self {
        Self::serve(true).await
    }

    /// Takes each request and never answers it.
    pub async fn hanging() -> Self {
        Self::serve(false).await
    }

    async fn serve(answers: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind collector");
        let collector = Self {
            addr: listener.local_addr().expect("addr"),
            received: Arc::default(),
        };
        let received = collector.received.clone();
        super::serve(listener, move |request| {
            let received = received.clone();
            async move {
                let media = request
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let path_ok = request.uri().path() == "/v1/traces";
                let body = request
                    .into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                if !answers {
                    std::future::pending::<()>().await;
                }
                assert!(path_ok, "spans are POSTed to /v1/traces");
                let json = media.starts_with("application/json");
                received.lock().unwrap().push((media.clone(), body));
                Response::builder()
                    .header("content-type", media)
                    // An empty ExportTraceServiceResponse, either way.
                    .body(Full::new(Bytes::from_static(if json {
                        b"{}"
                    } else {
                        b""
                    })))
                    .unwrap()
            }
        });
        collector
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every export so far: (content-type, body).
    pub fn received(&self) -> Vec<(String, Bytes)> {
        self.received.lock().unwrap().clone()
    }

    /// Every span of the JSON exports so far.
    pub fn spans(&self) -> Vec<SpanRecord> {
        let mut spans = Vec::new();
        for (_, body) in self.received() {
            let payload: serde_json::Value =
                serde_json::from_slice(&body).expect("an OTLP/JSON payload");
            for resource in payload["resourceSpans"].as_array().expect("resourceSpans") {
                let service = resource["resource"]["attributes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|a| a["key"] == "service.name")
                    .and_then(|a| a["value"]["stringValue"].as_str())
                    .unwrap_or_default()
                    .to_owned();
                for scope in resource["scopeSpans"].as_array().expect("scopeSpans") {
                    for span in scope["spans"].as_array().expect("spans") {
                        let attributes = span["attributes"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|a| {
                                (
                                    a["key"].as_str().unwrap_or_default().to_owned(),
                                    a["value"].clone(),
                                )
                            })
                            .collect();
                        let text = |key: &str| span[key].as_str().unwrap_or_default().to_owned();
                        spans.push(SpanRecord {
                            service: service.clone(),
                            trace_id: text("traceId"),
                            span_id: text("spanId"),
                            parent_span_id: text("parentSpanId"),
                            name: text("name"),
                            kind: span["kind"].as_i64().unwrap_or_default(),
                            attributes,
                            status: span["status"]["code"].as_i64().unwrap_or_default(),
                        });
                    }
                }
            }
        }
        spans
    }
}
