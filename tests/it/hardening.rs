//! What an attacker tried that the proxy must refuse: upgrades to protocols
//! nobody allowed (h2c smuggling), routing overrides, malformed bodies
//! passed off as upstream failures. Raw sockets, a recording backend.

use crate::common::upstream::{header_names, header_values};
use crate::common::{GateConfig, Upstream, WeChatDouble, metric, raw};

async fn start(extra: &[(&str, &str, &str)]) -> (WeChatDouble, Upstream, crate::common::Gate) {
    let (wechat, upstream) = (WeChatDouble::start().await, Upstream::start().await);
    let mut config = GateConfig::new(&wechat, &upstream);
    config.set("routes", "public", r#"["/public", "/upload", "/ws"]"#);
    for (table, key, value) in extra {
        config.set(table, key, value);
    }
    let gate = config.start().await;
    (wechat, upstream, gate)
}

#[tokio::test]
async fn upgrades_to_protocols_not_allowed_are_refused_before_the_backend() {
    let (_w, upstream, gate) = start(&[]).await;
    for offer in ["h2c", "websocket, h2c", "foo", "TLS/1.2", "echo"] {
        let request = format!(
            "GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, HTTP2-Settings\r\n\
             Upgrade: {offer}\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\
             Connection: close\r\n\r\n"
        );
        let (status, _, body) = raw(gate.addr, &request).await;
        assert_eq!(status, 400, "{offer}: {body}");
        assert!(body.contains("upgrade_not_allowed"), "{offer}: {body}");
    }
    assert_eq!(upstream.hits(), 0, "no refused upgrade reached the backend");
}

#[tokio::test]
async fn an_allowed_upgrade_still_tunnels_and_http2_settings_never_reaches_the_backend() {
    let (_w, upstream, gate) = start(&[("upstream", "upgrades", r#"["echo"]"#)]).await;
    // A plain request carrying HTTP2-Settings: the header is hop-by-hop.
    let request = "GET /public/x HTTP/1.1\r\nHost: t\r\nHTTP2-Settings: AAMAAABk\r\n\
                   Connection: close\r\n\r\n";
    let (status, _, body) = raw(gate.addr, request).await;
    assert_eq!(status, 200, "{body}");
    let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(!header_names(&echo).contains(&"http2-settings".to_owned()));
    // The allowed protocol is tunnelled (the backend answers 101).
    let request = "GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n";
    let mut stream = tokio::net::TcpStream::connect(gate.addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 101");
    assert_eq!(upstream.hits(), 2);
}

#[tokio::test]
async fn routing_overrides_are_removed_unless_the_backend_needs_them() {
    let overrides = [
        ("X-Original-URL", "/admin"),
        ("X_Rewrite_URL", "/admin"),
        ("X-HTTP-Method-Override", "DELETE"),
        ("X.HTTP.Method", "DELETE"),
        ("x-method-override", "DELETE"),
    ];
    let send = |gate: &crate::common::Gate| {
        let mut request = gate.http.get(gate.url("/public/products"));
        for (name, value) in overrides {
            request = request.header(name, value);
        }
        request.send()
    };
    let (_w, _u, gate) = start(&[]).await;
    let echo: serde_json::Value = send(&gate).await.unwrap().json().await.unwrap();
    assert!(!echo.to_string().contains("/admin"), "{echo}");
    assert!(!echo.to_string().contains("DELETE"), "{echo}");

    let (_w, _u, gate) = start(&[("headers", "pass_routing_overrides", "true")]).await;
    let echo: serde_json::Value = send(&gate).await.unwrap().json().await.unwrap();
    assert_eq!(header_values(&echo, "x-original-url"), ["/admin"]);
    assert_eq!(header_values(&echo, "x-http-method-override"), ["DELETE"]);
}

#[tokio::test]
async fn a_malformed_request_body_is_the_clients_400_not_an_upstream_502() {
    let (_w, _u, gate) = start(&[]).await;
    let bodies = [
        // A chunk size that is not hex.
        "zz\r\nhello\r\n0\r\n\r\n",
        // A chunk size that overflows.
        "ffffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
        // More data than the chunk said.
        "2\r\nhello\r\n0\r\n\r\n",
    ];
    for body in bodies {
        let request = format!(
            "POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\
             Connection: close\r\n\r\n{body}"
        );
        let (status, _, answer) = raw(gate.addr, &request).await;
        assert_eq!(status, 400, "{body:?}: {answer}");
        assert!(answer.contains("bad_request"), "{body:?}: {answer}");
    }
    let metrics = gate.metrics().await;
    let errors = metric(
        &metrics,
        r#"wxgate_requests_total{outcome="error",status="5xx"}"#,
    );
    assert_eq!(errors, 0.0, "a client's bad body is no upstream failure");
    let rejected = metric(
        &metrics,
        r#"wxgate_requests_total{outcome="rejected",status="4xx"}"#,
    );
    assert_eq!(rejected, bodies.len() as f64, "{metrics}");
}
