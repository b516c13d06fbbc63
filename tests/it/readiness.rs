//! `/readyz` says whether this replica can serve: a backend with a
//! `ready_check` that cannot serve keeps it unready, and so do app
//! credentials WeChat refuses (checked at start); the session store's
//! state is only named (tests/fleet.rs).

use crate::common::{Gate, GateConfig, Upstream, WeChatDouble, closed_port};

/// `/readyz`'s body once it answers `want`.
async fn until_readyz(gate: &Gate, want: u16) -> serde_json::Value {
    gate.readyz_until(|status, _| status == want).await.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_cannot_serve_keeps_the_replica_unready() {
    let wechat = WeChatDouble::start().await;
    for check in ["\"tcp\"", "\"/health\""] {
        let addr = closed_port().await;
        let mut config = GateConfig::with_upstream_url(&wechat, &format!("http://{addr}"));
        config.set("upstream", "ready_check", check);
        let gate = config.start().await;
        let body = until_readyz(&gate, 503).await;
        assert_eq!(body["status"], "upstream_unavailable", "{check}: {body}");
        assert_eq!(body["upstream"]["prefix"], "/", "{body}");
        // The app comes up, on the address wxgate was told.
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        crate::common::serve(listener, |_| async {
            http::Response::new(http_body_util::Full::new(bytes::Bytes::from_static(b"up")))
        });
        let body = until_readyz(&gate, 200).await;
        assert_eq!(body["status"], "ready", "{check}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_ready_check_wants_a_2xx_or_3xx() {
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let mut config = GateConfig::new(&wechat, &upstream);
    config.set("upstream", "ready_check", "\"/status/503\"");
    let gate = config.start().await;
    let body = until_readyz(&gate, 503).await;
    assert!(
        body["upstream"]["error"].as_str().unwrap().contains("503"),
        "{body}"
    );
    let mut config = GateConfig::new(&wechat, &upstream);
    config.set("upstream", "ready_check", "\"/status/204\"");
    let gate = config.start().await;
    until_readyz(&gate, 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_ready_check_a_dead_backend_does_not_matter_to_readiness() {
    let wechat = WeChatDouble::start().await;
    let addr = closed_port().await;
    let gate = GateConfig::with_upstream_url(&wechat, &format!("http://{addr}"))
        .start()
        .await;
    let body = until_readyz(&gate, 200).await;
    assert_eq!(body["status"], "ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_wechat_refuses_keep_the_replica_unready() {
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let mut config = GateConfig::new(&wechat, &upstream);
    config.set("wechat", "secret", "\"a-wrong-secret\"");
    let gate = config.start().await;
    let body = until_readyz(&gate, 503).await;
    assert_eq!(body["status"], "wechat_misconfigured", "{body}");
    assert_eq!(body["apps"][0]["errcode"], 40125, "{body}");
    assert!(!body.to_string().contains("a-wrong-secret"), "{body}");
    // A WeChat that cannot be reached is no reason to be unready.
    let mut config = GateConfig::new(&wechat, &upstream);
    let unreachable = closed_port().await;
    config.set("wechat", "api_base", &format!("\"http://{unreachable}\""));
    let gate = config.start().await;
    assert_eq!(until_readyz(&gate, 200).await["status"], "ready");
}
