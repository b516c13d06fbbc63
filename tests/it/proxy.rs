//! The streaming reverse proxy: hop-by-hop handling, byte-exact paths and
//! queries, status and header pass-through, streaming both ways, upgrades,
//! upstream failures.

use crate::common::upstream::{header_names, header_values};
use crate::common::{GateConfig, Upstream, WeChatDouble, assert_error, raw};
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn setup() -> (WeChatDouble, Upstream, crate::common::Gate, String) {
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    // The echo backend upgrades to its own `echo` protocol.
    let gate = GateConfig::new(&wechat, &upstream)
        .set("upstream", "upgrades", r#"["echo"]"#)
        .start()
        .await;
    let id = gate.login("quinn").await;
    (wechat, upstream, gate, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_request_headers_are_dropped_and_forwarded_headers_added() {
    let (_w, _u, gate, id) = setup().await;
    let request = format!(
        "POST /x HTTP/1.1\r\nHost: app.example\r\nX-Session-Id: {id}\r\n\
         Connection: close, X-Custom-Hop\r\nX-Custom-Hop: 1\r\nKeep-Alive: timeout=5\r\n\
         Proxy-Connection: keep-alive\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\n\
         TE: trailers\r\nTrailer: X-Sum\r\nUpgrade: h2c\r\nX-End-To-End: yes\r\n\
         X-Forwarded-For: 203.0.113.7\r\nContent-Length: 2\r\n\r\nhi"
    );
    let (status, _, body) = raw(gate.addr, &request).await;
    assert_eq!(status, 200, "{body}");
    let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
    let names = header_names(&echo);
    for hop in [
        "x-custom-hop",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "te",
        "trailer",
        "upgrade",
    ] {
        assert!(
            !names.contains(&hop.to_owned()),
            "{hop} reached the upstream: {names:?}"
        );
    }
    assert_eq!(header_values(&echo, "x-end-to-end"), ["yes"]);
    assert_eq!(header_values(&echo, "host"), ["app.example"]);
    // The client is no trusted proxy: its X-Forwarded-For is replaced.
    assert_eq!(header_values(&echo, "x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(header_values(&echo, "x-real-ip"), ["127.0.0.1"]);
    assert_eq!(header_values(&echo, "x-forwarded-proto"), ["http"]);
    assert_eq!(header_values(&echo, "x-forwarded-host"), ["app.example"]);
    assert_eq!(
        header_values(&echo, "x-forwarded-port"),
        [gate.addr.port().to_string()]
    );
    assert_eq!(header_values(&echo, "content-length"), ["2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_host_gets_the_upstreams_and_a_clients_forwarded_proto_and_host_do_not_count()
 {
    let (_w, upstream, gate, id) = setup().await;
    // HTTP/1.0 allows no Host; a client (no trusted proxy) claims Proto and Host.
    let request = format!(
        "GET /x HTTP/1.0\r\nX-Session-Id: {id}\r\nX-Forwarded-Proto: https\r\n\
         X-Forwarded-Host: shop.example\r\n\r\n"
    );
    let (status, _, body) = raw(gate.addr, &request).await;
    assert_eq!(status, 200, "{body}");
    let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(header_values(&echo, "host"), [upstream.addr.to_string()]);
    assert_eq!(header_values(&echo, "x-forwarded-proto"), ["http"]);
    // The Host wxgate sent, as it knows of none asked for.
    assert_eq!(
        header_values(&echo, "x-forwarded-host"),
        [upstream.addr.to_string()]
    );
    assert_eq!(header_values(&echo, "x-forwarded-for"), ["127.0.0.1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_response_headers_are_dropped() {
    let (_w, _u, gate, id) = setup().await;
    let response = gate.get("/hop", &id).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers();
    assert!(headers.get("x-hop-secret").is_none());
    assert!(headers.get("keep-alive").is_none());
    assert!(headers.get("proxy-authenticate").is_none());
    assert_eq!(headers["x-end-to-end"], "kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_canonical_path_and_the_query_bytes_reach_the_upstream() {
    let (_w, _u, gate, id) = setup().await;
    for (target, seen) in [
        (
            "/a%20b/c%e4%b8%ad?x=1&y=%E4%B8%AD&z",
            "/a%20b/c%E4%B8%AD?x=1&y=%E4%B8%AD&z",
        ),
        (
            "/orders/42?sort=-date&tag=a&tag=b",
            "/orders/42?sort=-date&tag=a&tag=b",
        ),
        // Unreserved escapes decoded, dot segments resolved; the query untouched.
        ("/%7Euser/./x/../y?q=%2e%2e/../", "/~user/y?q=%2e%2e/../"),
        ("//a//b/?", "/a/b/?"),
        ("/?", "/?"),
    ] {
        let request = format!(
            "GET {target} HTTP/1.1\r\nHost: t\r\nX-Session-Id: {id}\r\nConnection: close\r\n\r\n"
        );
        let (status, _, body) = raw(gate.addr, &request).await;
        assert_eq!(status, 200, "{target}");
        let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(echo["uri"], seen, "{target}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_prefix_of_the_upstream_url_is_prepended() {
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let gate = GateConfig::with_upstream_url(&wechat, &format!("http://{}/base/", upstream.addr))
        .start()
        .await;
    let id = gate.login("rob").await;
    let echo = crate::common::json(gate.get("/x?y=1", &id)).await;
    assert_eq!(echo["uri"], "/base/x?y=1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_status_and_headers_pass_through() {
    let (_w, _u, gate, id) = setup().await;
    for status in [200u16, 201, 204, 404, 418, 500, 503] {
        let response = gate
            .get(&format!("/status/{status}"), &id)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status);
        assert_eq!(response.headers()["x-custom"], "kept");
    }
    let response = gate.get("/download?bytes=12345", &id).send().await.unwrap();
    assert_eq!(response.headers()["content-length"], "12345");
    assert_eq!(response.bytes().await.unwrap().len(), 12345);
    // A backend's answer never carries wxgate's mark, whatever it sends.
    let forged = gate.get("/forged-mark", &id).send().await.unwrap();
    assert_eq!(forged.status(), 401);
    assert!(forged.headers().get("x-wxgate-error").is_none());
    assert_eq!(
        forged.text().await.unwrap(),
        r#"{"code":"session_invalid"}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_stream_both_ways() {
    let (_w, _u, gate, id) = setup().await;
    const SIZE: u64 = 64 * 1024 * 1024;
    let chunk = bytes::Bytes::from((0..=255u8).cycle().take(64 * 1024).collect::<Vec<u8>>());
    let chunk_sum: u64 = chunk.iter().map(|&b| b as u64).sum();
    let count = SIZE / chunk.len() as u64;
    let stream =
        futures_util::stream::iter((0..count).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
    let response = gate
        .http
        .post(gate.url("/upload"))
        .header("x-session-id", &id)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    let report: serde_json::Value = response.json().await.unwrap();
    assert_eq!(report["bytes"], SIZE);
    assert_eq!(report["sum"], chunk_sum * count);

    let response = gate
        .get(&format!("/download?bytes={SIZE}"), &id)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-length"], SIZE.to_string());
    let mut received = 0u64;
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        received += chunk.unwrap().len() as u64;
    }
    assert_eq!(received, SIZE);
}

async fn upgrade(
    gate: &crate::common::Gate,
    session: Option<&str>,
) -> (String, tokio::net::TcpStream) {
    upgrade_to(gate, session, "echo").await
}

async fn upgrade_to(
    gate: &crate::common::Gate,
    session: Option<&str>,
    protocol: &str,
) -> (String, tokio::net::TcpStream) {
    let mut stream = tokio::net::TcpStream::connect(gate.addr).await.unwrap();
    let session = session
        .map(|id| format!("X-Session-Id: {id}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: t\r\n{session}Connection: Upgrade\r\nUpgrade: {protocol}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8];
        if stream.read(&mut byte).await.unwrap() == 0 {
            break;
        }
        head.push(byte[0]);
    }
    (String::from_utf8_lossy(&head).into_owned(), stream)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_tunnel_after_authentication() {
    let (_w, upstream, gate, id) = setup().await;
    let (head, mut stream) = upgrade(&gate, Some(&id)).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("upgrade: echo"),
        "{head}"
    );
    for message in ["ping", "a longer message with 中文"] {
        stream.write_all(message.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; message.len()];
        stream.read_exact(&mut buf).await.unwrap();
        assert_eq!(buf, message.as_bytes());
    }

    let hits = upstream.hits();
    let (head, _) = upgrade(&gate, None).await;
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    assert_eq!(upstream.hits(), hits);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_upgrades_let_websocket_through_and_nothing_else() {
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let gate = GateConfig::new(&wechat, &upstream).start().await;
    let id = gate.login("wes").await;
    let (head, mut stream) = upgrade_to(&gate, Some(&id), "websocket").await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("upgrade: websocket"),
        "{head}"
    );
    stream.write_all(b"frame").await.unwrap();
    let mut buf = [0u8; 5];
    stream.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"frame");
    let hits = upstream.hits();
    for protocol in ["echo", "h2c"] {
        let (head, _) = upgrade_to(&gate, Some(&id), protocol).await;
        assert!(head.starts_with("HTTP/1.1 400"), "{protocol}: {head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("x-wxgate-error: upgrade_not_allowed"),
            "{head}"
        );
    }
    assert_eq!(
        upstream.hits(),
        hits,
        "a refused upgrade reached the backend"
    );
}

// One thread, as each of wxgate's per-core workers: its idle connections
// are one stack, so the count is exact.
#[tokio::test(flavor = "current_thread")]
async fn upstream_connections_are_kept_alive_and_closed_ones_never_reused() {
    let (_wechat, upstream, gate, id) = setup().await;
    for _ in 0..20 {
        assert_eq!(gate.get("/x", &id).send().await.unwrap().status(), 200);
    }
    assert_eq!(
        upstream.connections(),
        1,
        "20 sequential requests, one connection"
    );
    // A connection the upstream closes is dropped, not handed the next request.
    for _ in 0..5 {
        assert_eq!(gate.get("/close", &id).send().await.unwrap().status(), 200);
        assert_eq!(gate.get("/x", &id).send().await.unwrap().status(), 200);
    }
    assert_eq!(upstream.hits(), 30);
    assert_eq!(upstream.connections(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_refused_is_502_and_timeout_is_504() {
    let wechat = WeChatDouble::start().await;
    let closed = crate::common::closed_port().await;
    let gate = GateConfig::with_upstream_url(&wechat, &format!("http://{closed}"))
        .start()
        .await;
    let id = gate.login("sybil").await;
    assert_error(
        gate.get("/x", &id).send().await.unwrap(),
        502,
        "upstream_unavailable",
    )
    .await;

    let upstream = Upstream::start().await;
    let mut config = GateConfig::new(&wechat, &upstream);
    config.set("upstream", "timeout", "\"300ms\"");
    let gate = config.start().await;
    let id = gate.login("trent").await;
    assert_error(
        gate.get("/slow?ms=3000", &id).send().await.unwrap(),
        504,
        "upstream_timeout",
    )
    .await;
    // The timeout is for the response head only: a fast head is not cut off.
    assert_eq!(
        gate.get("/slow?ms=10", &id).send().await.unwrap().status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstream_timeout_does_not_count_a_slow_upload() {
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let mut config = GateConfig::new(&wechat, &upstream);
    config.set("upstream", "timeout", "\"300ms\"");
    let gate = config.start().await;
    let id = gate.login("ursula").await;
    // 10 chunks, 150 ms apart: the upload lasts five times the timeout.
    let chunks = futures_util::stream::unfold(0, |i| async move {
        if i == 10 {
            return None;
        }
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        Some((
            Ok::<_, std::io::Error>(bytes::Bytes::from(vec![1u8; 1000])),
            i + 1,
        ))
    });
    let response = gate
        .http
        .post(gate.url("/upload"))
        .header("x-session-id", &id)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let report: serde_json::Value = response.json().await.unwrap();
    assert_eq!(report["bytes"], 10_000);
    // After the body, the backend's own think time is still bounded.
    let slow = gate
        .http
        .post(gate.url("/slow?ms=3000"))
        .header("x-session-id", &id)
        .body("x");
    assert_error(slow.send().await.unwrap(), 504, "upstream_timeout").await;
}
