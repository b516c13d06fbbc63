//! Spans exported with OTLP (`[tracing]`) to a collector of the test's own
//! (`common::otlp`, reading OTLP/JSON with serde_json): a login with
//! binding and a proxied request, each one trace with its parent/child
//! links; the client's trace joined, a malformed traceparent replaced; the
//! backend and the binding endpoint told the span they are children of;
//! the sampler following the client; the `OTEL_…` variables and protobuf;
//! a collector down or stuck costing requests nothing (bounded, counted).

use std::time::Duration;

use crate::common::binding::BindingDouble;
use crate::common::otlp::{CLIENT, Collector, INTERNAL, SERVER, SpanRecord};
use crate::common::upstream::header_values;
use crate::common::{
    Gate, GateConfig, SECRET, Upstream, WeChatDouble, closed_port, eventually, json, metric, until,
};

const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

fn traceparent(flags: &str) -> String {
    format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-{flags}")
}

/// WeChat, the backend and the collector, each a double of the test's own.
async fn doubles() -> (WeChatDouble, Upstream, Collector) {
    (
        WeChatDouble::start().await,
        Upstream::start().await,
        Collector::start().await,
    )
}

fn traced(wechat: &WeChatDouble, upstream: &Upstream, collector: &Collector) -> GateConfig {
    let mut config = GateConfig::new(wechat, upstream);
    config
        .set("tracing", "endpoint", &format!("\"{}\"", collector.url()))
        .set("tracing", "protocol", "\"http/json\"");
    config
}

/// A proxied request in the client's (sampled) trace.
async fn in_client_trace(gate: &Gate, session: &str) {
    let response = gate
        .get("/orders", session)
        .header("traceparent", traceparent("01"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

/// The spans of `trace`, once `count` of them have arrived.
async fn trace_of(collector: &Collector, trace: &str, count: usize) -> Vec<SpanRecord> {
    eventually(
        Duration::from_secs(15),
        format!("{count} spans of trace {trace} reach the collector"),
        || {
            let spans: Vec<_> = collector
                .spans()
                .into_iter()
                .filter(|s| s.trace_id == trace)
                .collect();
            async move { (spans.len() >= count).then_some(spans) }
        },
    )
    .await
}

fn one<'a>(spans: &'a [SpanRecord], name: &str) -> &'a SpanRecord {
    let found: Vec<_> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(found.len(), 1, "one span named {name:?} in {spans:#?}");
    found[0]
}

/// The trace's server span (the request's own; the upstream span is a
/// client span of the same name, `GET`, as HTTP's conventions name both).
fn server_span(spans: &[SpanRecord]) -> &SpanRecord {
    let found: Vec<_> = spans.iter().filter(|s| s.kind == SERVER).collect();
    assert_eq!(found.len(), 1, "one server span in {spans:#?}");
    found[0]
}

/// `00-trace-parent-flags` → (trace, parent, flags).
fn parts(traceparent: &str) -> (String, String, String) {
    let fields: Vec<_> = traceparent.split('-').collect();
    assert_eq!(fields.len(), 4, "{traceparent}");
    (fields[1].into(), fields[2].into(), fields[3].into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_with_binding_and_a_proxied_request_are_traced_parent_to_child() {
    let (wechat, upstream, collector) = doubles().await;
    let binding = BindingDouble::start().await;
    let mut config = traced(&wechat, &upstream, &collector);
    config.set("binding", "url", &format!("\"{}\"", binding.url()));
    let gate = config.start().await;

    // A login without a traceparent: a trace of its own.
    let session = gate.login("tia").await;
    let bound = binding.traceparents();
    let (login_trace, binding_parent, flags) = parts(
        bound[0]
            .as_deref()
            .expect("the binding endpoint hears a traceparent"),
    );
    assert_eq!(flags, "01");
    let login = trace_of(&collector, &login_trace, 3).await;
    let server = one(&login, "POST /login");
    assert_eq!(server.kind, SERVER);
    assert_eq!(server.parent_span_id, "", "a new trace starts at the login");
    assert_eq!(server.attr("http.route").as_deref(), Some("/login"));
    assert_eq!(
        server.attr("http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(
        server.attr("wxgate.app").as_deref(),
        Some(crate::common::APPID)
    );
    assert_eq!(server.service, "wxgate");
    let exchange = one(&login, "GET /sns/jscode2session");
    assert_eq!(exchange.kind, CLIENT);
    assert_eq!(exchange.parent_span_id, server.span_id);
    assert_eq!(
        exchange.attr("server.address").as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(
        exchange.attr("server.port"),
        Some(wechat.addr.port().to_string())
    );
    let bind = one(&login, "POST binding");
    assert_eq!(bind.kind, CLIENT);
    assert_eq!(bind.parent_span_id, server.span_id);
    assert_eq!(bind.attr("wxgate.binding.result").as_deref(), Some("bound"));
    assert_eq!(
        binding_parent, bind.span_id,
        "the endpoint is the binding span's child"
    );

    // A proxied request in the client's trace.
    let echo = json(
        gate.get("/orders", &session)
            .header("traceparent", traceparent("01"))
            .header("tracestate", "congo=t61rcWkgMzE"),
    )
    .await;
    let sent = header_values(&echo, "traceparent");
    assert_eq!(sent.len(), 1, "{sent:?}");
    let (trace, backend_parent, flags) = parts(&sent[0]);
    assert_eq!((trace.as_str(), flags.as_str()), (CLIENT_TRACE, "01"));
    assert_ne!(backend_parent, CLIENT_SPAN, "re-parented to wxgate's span");
    assert_eq!(
        header_values(&echo, "tracestate"),
        ["congo=t61rcWkgMzE"],
        "the client's tracestate goes on"
    );
    let proxied = trace_of(&collector, CLIENT_TRACE, 3).await;
    let server = server_span(&proxied);
    assert_eq!(server.name, "GET");
    assert_eq!(
        server.parent_span_id, CLIENT_SPAN,
        "a child of the client's span"
    );
    assert_eq!(server.attr("url.path").as_deref(), Some("/orders"));
    assert_eq!(server.attr("http.request.method").as_deref(), Some("GET"));
    assert_eq!(
        server.attr("http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(server.attr("client.address").as_deref(), Some("127.0.0.1"));
    let lookup = one(&proxied, "session lookup");
    assert_eq!(lookup.kind, INTERNAL);
    assert_eq!(lookup.parent_span_id, server.span_id);
    assert_eq!(lookup.attr("wxgate.session.found").as_deref(), Some("true"));
    let upstream_span = proxied
        .iter()
        .find(|s| s.kind == CLIENT)
        .expect("the upstream span");
    assert_eq!(upstream_span.name, "GET");
    assert_eq!(upstream_span.parent_span_id, server.span_id);
    assert_eq!(
        upstream_span.span_id, backend_parent,
        "the backend's parent"
    );
    assert_eq!(
        upstream_span.attr("server.port"),
        Some(upstream.addr.port().to_string())
    );
    assert_eq!(
        upstream_span.attr("http.response.status_code").as_deref(),
        Some("200")
    );

    // A backend's 503: an error on the upstream (client) span, and on the
    // request's (a 5xx it answers).
    let response = gate
        .get("/status/503", &session)
        .header(
            "traceparent",
            format!("00-{}-{CLIENT_SPAN}-01", "a".repeat(32)),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let failed = trace_of(&collector, &"a".repeat(32), 3).await;
    let upstream_span = failed.iter().find(|s| s.kind == CLIENT).unwrap();
    assert_eq!(upstream_span.attr("error.type").as_deref(), Some("503"));
    assert_eq!(upstream_span.status, 2, "an error status");
    assert_eq!(
        server_span(&failed)
            .attr("http.response.status_code")
            .as_deref(),
        Some("503")
    );

    // No secret anywhere in what the collector received.
    let key = wechat.current_key("tia");
    let everything: String = collector
        .received()
        .iter()
        .map(|(_, body)| String::from_utf8_lossy(body).into_owned())
        .collect();
    for secret in [session.as_str(), key.as_str(), SECRET, "tia"] {
        assert!(!everything.contains(secret), "{secret} in an exported span");
    }
    gate.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_traceparent_is_replaced_by_a_new_trace() {
    let (wechat, upstream, collector) = doubles().await;
    let gate = traced(&wechat, &upstream, &collector).start().await;
    let session = gate.login("uma").await;
    for malformed in [
        "00-not-a-trace".to_owned(),
        traceparent("01").to_uppercase(),
        format!("00-{}-{CLIENT_SPAN}-01", "0".repeat(32)),
    ] {
        let echo = json(
            gate.get("/orders", &session)
                .header("traceparent", &malformed)
                .header("tracestate", "congo=t61rcWkgMzE"),
        )
        .await;
        let sent = header_values(&echo, "traceparent");
        assert_eq!(sent.len(), 1, "{malformed}: {sent:?}");
        let (trace, _, flags) = parts(&sent[0]);
        assert_ne!(sent[0], malformed);
        assert!(
            trace.len() == 32 && trace != CLIENT_TRACE && trace != "0".repeat(32),
            "{trace}"
        );
        assert_eq!(flags, "01");
        assert!(header_values(&echo, "tracestate").is_empty());
        let spans = trace_of(&collector, &trace, 3).await;
        assert_eq!(
            server_span(&spans).parent_span_id,
            "",
            "a root: {malformed}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sampler_records_the_ratio_of_new_traces_and_follows_the_client() {
    let (wechat, upstream, collector) = doubles().await;
    let mut config = traced(&wechat, &upstream, &collector);
    config.set("tracing", "sampling_ratio", "0.0");
    let gate = config.start().await;
    let session = gate.login("vic").await;
    // Not recorded: still one trace for the backend, marked unsampled.
    let echo = json(gate.get("/orders", &session)).await;
    let (unsampled, _, flags) = parts(&header_values(&echo, "traceparent")[0]);
    assert_eq!(flags, "00");
    // The client records this one: so does wxgate, whatever its ratio.
    let echo = json(
        gate.get("/orders", &session)
            .header("traceparent", traceparent("01")),
    )
    .await;
    assert_eq!(parts(&header_values(&echo, "traceparent")[0]).2, "01");
    trace_of(&collector, CLIENT_TRACE, 3).await;
    // Spans leave in the order they end: the unsampled request's would be here.
    let spans = collector.spans();
    assert!(
        spans.iter().all(|s| s.trace_id == CLIENT_TRACE),
        "{unsampled}: {spans:#?}"
    );
    // And a client's unsampled trace stays unrecorded, passed on as such.
    let echo = json(
        gate.get("/orders", &session)
            .header("traceparent", traceparent("00")),
    )
    .await;
    let (trace, _, flags) = parts(&header_values(&echo, "traceparent")[0]);
    assert_eq!((trace.as_str(), flags.as_str()), (CLIENT_TRACE, "00"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standard_variables_choose_the_collector_and_the_service_in_protobuf() {
    let (wechat, upstream, collector) = doubles().await;
    let mut config = GateConfig::new(&wechat, &upstream);
    config
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.url())
        .env("OTEL_SERVICE_NAME", "orders-gateway");
    let gate = config.start().await;
    let session = gate.login("wes").await;
    in_client_trace(&gate, &session).await;
    let (media, body) = eventually(
        Duration::from_secs(15),
        "the collector receives a protobuf export with the client's trace",
        || {
            let found = collector.received().into_iter().find(|(_, body)| {
                // A trace id is 16 raw bytes in protobuf.
                let id: Vec<u8> = (0..16)
                    .map(|i| u8::from_str_radix(&CLIENT_TRACE[2 * i..2 * i + 2], 16).unwrap())
                    .collect();
                body.windows(16).any(|w| w == id.as_slice())
            });
            async move { found }
        },
    )
    .await;
    assert_eq!(media, "application/x-protobuf");
    let has = |text: &str| body.windows(text.len()).any(|w| w == text.as_bytes());
    assert!(has("orders-gateway"), "OTEL_SERVICE_NAME is the service");
    assert!(has("service.name"));
    assert!(!has(&session));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_stuck_or_down_costs_requests_nothing_and_drops_are_counted() {
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    // Stuck: it takes the first export and never answers it.
    let stuck = Collector::hanging().await;
    let gate = traced(&wechat, &upstream, &stuck).start().await;
    let session = gate.login("xia").await;
    // Three spans each (request, session lookup, upstream): 6,000, past the
    // queue (4,096) and the one batch in flight (512) by at least 1,392.
    let requests = 2_000;
    let answered = tokio::time::timeout(Duration::from_secs(120), async {
        for _ in 0..requests {
            let response = gate.get("/orders", &session).send().await.unwrap();
            assert_eq!(response.status(), 200);
        }
    })
    .await;
    assert!(answered.is_ok(), "requests waited for the stuck collector");
    let text = gate.metrics().await;
    let dropped = metric(&text, r#"wxgate_trace_spans_total{result="dropped"}"#);
    assert!(dropped >= 1_392.0, "dropped {dropped}");
    assert_eq!(
        metric(&text, r#"wxgate_trace_spans_total{result="exported"}"#),
        0.0
    );
    drop(gate);

    // Down: nothing listens; the exports fail, counted, and requests go on.
    let down = closed_port().await;
    let mut config = GateConfig::new(&wechat, &upstream);
    config.set("tracing", "endpoint", &format!("\"http://{down}\""));
    let gate = config.start().await;
    let session = gate.login("yan").await;
    for _ in 0..10 {
        let response = gate.get("/orders", &session).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    until("the failed exports are counted", || async {
        let text = gate.metrics().await;
        // The login's spans and the ten requests' three each.
        metric(&text, r#"wxgate_trace_spans_total{result="failed"}"#) >= 32.0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_gateway_sends_the_spans_still_queued() {
    let (wechat, upstream, collector) = doubles().await;
    let gate = traced(&wechat, &upstream, &collector).start().await;
    let session = gate.login("zoe").await;
    in_client_trace(&gate, &session).await;
    // Within the batch's second: nothing sent yet, unless the stop sends it.
    gate.stop().await;
    let spans = collector.spans();
    let of_request = spans.iter().filter(|s| s.trace_id == CLIENT_TRACE).count();
    assert_eq!(of_request, 3, "{spans:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_request_s_long_path_is_cut_in_its_span() {
    // The export queue is bounded in spans; each span is bounded too, so a
    // flood of long paths cannot grow it past a few MiB.
    let (wechat, upstream, collector) = doubles().await;
    let gate = traced(&wechat, &upstream, &collector).start().await;
    let long = format!("/{}", "a".repeat(10_000));
    let trace = "b".repeat(32);
    let response = gate
        .http
        .get(gate.url(&long))
        .header("traceparent", format!("00-{trace}-{CLIENT_SPAN}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let spans = trace_of(&collector, &trace, 1).await;
    let path = server_span(&spans).attr("url.path").unwrap();
    assert_eq!(path.len(), 512, "{}", path.len());
    assert!(long.starts_with(&path));
}
