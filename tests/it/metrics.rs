//! The admin port: Prometheus metrics that move with traffic, and probes.

use crate::common::redis::RedisServer;
use crate::common::{GateConfig, Upstream, WeChatDouble, metric};

const AUTHENTICATED_2XX: &str = r#"wxgate_requests_total{outcome="authenticated",status="2xx"}"#;
const REJECTED_4XX: &str = r#"wxgate_requests_total{outcome="rejected",status="4xx"}"#;
const ERROR_5XX: &str = r#"wxgate_requests_total{outcome="error",status="5xx"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_prometheus_text_and_move_with_traffic() {
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let gate = GateConfig::new(&wechat, &upstream).start().await;

    let response = gate
        .http
        .get(gate.admin_url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let before = response.text().await.unwrap();
    assert!(before.ends_with("# EOF\n"), "{before}");
    assert!(
        before.contains("# TYPE wxgate_requests counter"),
        "{before}"
    );
    let version = concat!(
        "wxgate_build_info{version=\"",
        env!("CARGO_PKG_VERSION"),
        "\"} 1"
    );
    assert!(before.contains(version), "{before}");
    assert_eq!(metric(&before, AUTHENTICATED_2XX), 0.0);
    assert_eq!(metric(&before, "wxgate_sessions_live"), 0.0);

    let id = gate.login("mia").await;
    for _ in 0..3 {
        assert_eq!(gate.get("/orders", &id).send().await.unwrap().status(), 200);
    }
    let unknown = "0".repeat(43);
    assert_eq!(
        gate.get("/orders", &unknown).send().await.unwrap().status(),
        401
    );
    let bad_code = gate.post_login(r#"{"code":"err:40029"}"#).await;
    assert_eq!(bad_code.status(), 400);

    let after = gate.metrics().await;
    assert_eq!(metric(&after, AUTHENTICATED_2XX), 3.0, "{after}");
    assert_eq!(metric(&after, REJECTED_4XX), 1.0, "{after}");
    assert_eq!(
        metric(
            &after,
            r#"wxgate_logins_total{result="ok",app="wxtestappid0001"}"#
        ),
        1.0
    );
    assert_eq!(
        metric(
            &after,
            r#"wxgate_logins_total{result="code_invalid",app="wxtestappid0001"}"#
        ),
        1.0
    );
    let calls = |result: &str| {
        metric(
            &after,
            &format!(
                r#"wxgate_wechat_api_calls_total{{app="wxtestappid0001",api="jscode2session",result="{result}"}}"#
            ),
        )
    };
    assert_eq!((calls("ok"), calls("40029")), (1.0, 1.0), "{after}");
    assert_eq!(
        metric(
            &after,
            r#"wxgate_wechat_request_duration_seconds_count{api="jscode2session",app="wxtestappid0001"}"#
        ),
        2.0
    );
    assert_eq!(
        metric(
            &after,
            r#"wxgate_upstream_duration_seconds_count{upstream="/"}"#
        ),
        3.0
    );
    assert_eq!(
        metric(
            &after,
            r#"wxgate_request_duration_seconds_count{outcome="authenticated"}"#
        ),
        3.0
    );
    let lookups = |result: &str| {
        metric(
            &after,
            &format!(r#"wxgate_session_lookups_total{{layer="memory",result="{result}"}}"#),
        )
    };
    assert_eq!((lookups("hit"), lookups("miss")), (3.0, 1.0), "{after}");
    assert_eq!(metric(&after, "wxgate_sessions_live"), 1.0);
    // Only the /metrics request itself is in flight, and it is on the admin port.
    assert_eq!(metric(&after, "wxgate_requests_in_flight"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_and_errors_are_counted() {
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let mut config = GateConfig::new(&wechat, &upstream);
    config.set("routes", "public", r#"["/slow", "/status"]"#);
    let gate = config.start().await;

    let slow = tokio::spawn(gate.http.get(gate.url("/slow?ms=1500")).send());
    crate::common::until("never in flight", || async {
        metric(&gate.metrics().await, "wxgate_requests_in_flight") >= 1.0
    })
    .await;
    assert_eq!(slow.await.unwrap().unwrap().status(), 200);
    assert_eq!(
        metric(&gate.metrics().await, "wxgate_requests_in_flight"),
        0.0
    );

    let failing = gate.http.get(gate.url("/status/503")).send().await.unwrap();
    assert_eq!(failing.status(), 503);
    assert_eq!(metric(&gate.metrics().await, ERROR_5XX), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_port_serves_probes_and_nothing_else() {
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let gate = GateConfig::new(&wechat, &upstream).start().await;
    assert_ne!(gate.admin.port(), gate.addr.port());

    for (path, status) in [("/healthz", 200), ("/readyz", 200)] {
        let response = gate.http.get(gate.admin_url(path)).send().await.unwrap();
        assert_eq!(response.status(), status, "{path}");
    }
    crate::common::assert_error(
        gate.http
            .get(gate.admin_url("/orders"))
            .send()
            .await
            .unwrap(),
        404,
        "not_found",
    )
    .await;
    crate::common::assert_error(
        gate.http
            .post(gate.admin_url("/metrics"))
            .send()
            .await
            .unwrap(),
        405,
        "method_not_allowed",
    )
    .await;
    // The proxy port does not answer /metrics itself: it is an ordinary
    // protected path there.
    crate::common::assert_error(
        gate.http.get(gate.url("/metrics")).send().await.unwrap(),
        401,
        "session_invalid",
    )
    .await;
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_lookups_and_errors_are_counted_by_layer() {
    let mut redis = RedisServer::start();
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let mut config = GateConfig::new(&wechat, &upstream);
    config
        .redis(&redis.url())
        .set("session", "local_ttl", "\"1m\"");
    let (a, b) = (config.start().await, config.start().await);
    a.until_ready().await;
    b.until_ready().await;

    let id = a.login("nils").await;
    // A login tells every replica its user changed; one heard during B's
    // first read would rightly undo that read's cache insert (the fleet's
    // read tickets), so B reads once it has heard it.
    crate::common::until("B never heard the login", || async {
        metric(&b.metrics().await, "wxgate_store_revocations_heard_total") >= 1.0
    })
    .await;
    for _ in 0..2 {
        assert_eq!(b.get("/orders", &id).send().await.unwrap().status(), 200);
    }
    let text = b.metrics().await;
    let lookups = |layer: &str, result: &str| {
        metric(
            &text,
            &format!(r#"wxgate_session_lookups_total{{layer="{layer}",result="{result}"}}"#),
        )
    };
    // First use at B: local miss, Redis hit; second: local hit.
    assert_eq!(lookups("local", "miss"), 1.0, "{text}");
    assert_eq!(lookups("redis", "hit"), 1.0, "{text}");
    assert_eq!(lookups("local", "hit"), 1.0, "{text}");
    assert_eq!(metric(&text, "wxgate_store_errors_total"), 0.0);

    redis.kill();
    let unknown = "0".repeat(43);
    let response = b.get("/orders", &unknown).send().await.unwrap();
    assert_eq!(response.status(), 503);
    assert!(metric(&b.metrics().await, "wxgate_store_errors_total") >= 1.0);
}
