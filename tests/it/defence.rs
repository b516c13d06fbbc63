//! The stack defends itself: login rate limit per client IP, trusted
//! proxies, the bound on WeChat calls, overload shedding, and the request
//! body idle timeout. Real sockets throughout; the WeChat double counts
//! the calls that reach it.

use std::time::{Duration, Instant};

use crate::common::{GateConfig, Upstream, WeChatDouble, assert_error, raw};
use futures_util::StreamExt;

async fn gate(
    wechat: &WeChatDouble,
    upstream: &Upstream,
    extra: &[(&str, &str, &str)],
) -> crate::common::Gate {
    let mut config = GateConfig::new(wechat, upstream);
    config.set("routes", "public", r#"["/public", "/upload", "/slow"]"#);
    for (table, key, value) in extra {
        config.set(table, key, value);
    }
    config.start().await
}

async fn login_as(
    gate: &crate::common::Gate,
    code: &str,
    forwarded_for: Option<&str>,
) -> reqwest::Response {
    let mut request = gate
        .http
        .post(gate.url("/login"))
        .header("content-type", "application/json")
        .body(format!(r#"{{"code":"{code}"}}"#));
    if let Some(xff) = forwarded_for {
        request = request.header("x-forwarded-for", xff);
    }
    request.send().await.expect("login request")
}

#[tokio::test]
async fn a_login_flood_from_one_ip_gets_429s_and_spends_at_most_the_quota() {
    let (wechat, upstream) = (WeChatDouble::start().await, Upstream::start().await);
    let gate = gate(
        &wechat,
        &upstream,
        &[("login", "rate", "2"), ("login", "burst", "5")],
    )
    .await;
    let started = Instant::now();
    let (mut ok, mut limited) = (0, 0);
    for n in 0..40 {
        let response = login_as(&gate, &format!("flood{n}"), None).await;
        if response.status() == 429 {
            let retry = response.headers()["retry-after"]
                .to_str()
                .unwrap()
                .to_owned();
            assert!(
                retry.parse::<u64>().is_ok_and(|s| (1..=1).contains(&s)),
                "Retry-After {retry}"
            );
            assert_error(response, 429, "login_rate_limited").await;
            limited += 1;
        } else {
            assert_eq!(response.status(), 200);
            ok += 1;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let allowed = 5 + (2.0 * seconds).ceil() as usize;
    assert!(limited > 0, "no 429 in {seconds:.1}s");
    assert!(ok <= allowed, "{ok} logins passed, at most {allowed} may");
    assert_eq!(
        wechat.total_calls(),
        ok,
        "a refused login never calls WeChat"
    );
    let metrics = gate.metrics().await;
    assert_eq!(
        crate::common::metric(
            &metrics,
            r#"wxgate_logins_total{result="login_rate_limited",app="none"}"#
        ),
        limited as f64
    );
}

#[tokio::test]
async fn forwarded_for_counts_only_from_trusted_proxies() {
    let (wechat, upstream) = (WeChatDouble::start().await, Upstream::start().await);
    let strict = [("login", "rate", "0.1"), ("login", "burst", "2")];

    // Untrusted peer: a forged X-Forwarded-For changes nothing.
    let untrusted = gate(&wechat, &upstream, &strict).await;
    let mut statuses = Vec::new();
    for n in 0..4 {
        let forged = format!("198.51.100.{n}");
        statuses.push(
            login_as(&untrusted, &format!("u{n}"), Some(&forged))
                .await
                .status(),
        );
    }
    assert_eq!(statuses, [200, 200, 429, 429]);

    // Trusted peer: each forwarded client has its own bucket, and a client's
    // own forged entry left of the proxy's is ignored.
    let trusted = [
        strict[0],
        strict[1],
        ("server", "trusted_proxies", r#"["127.0.0.1/32"]"#),
    ];
    let gate = gate(&wechat, &upstream, &trusted).await;
    for n in 0..4 {
        let client = format!("198.51.100.{n}");
        assert_eq!(
            login_as(&gate, &format!("t{n}"), Some(&client))
                .await
                .status(),
            200
        );
    }
    let mut same = Vec::new();
    for n in 0..3 {
        let xff = format!("6.6.6.{n}, 203.0.113.5");
        same.push(login_as(&gate, &format!("s{n}"), Some(&xff)).await.status());
    }
    assert_eq!(same, [200, 200, 429], "counted as 203.0.113.5 each time");
}

#[tokio::test]
async fn logins_from_many_clients_are_bounded_by_wechat_max_in_flight() {
    let (wechat, upstream) = (WeChatDouble::start().await, Upstream::start().await);
    let config = [
        ("server", "trusted_proxies", r#"["127.0.0.1"]"#),
        ("wechat", "max_in_flight", "2"),
        ("wechat", "timeout", "\"10s\""),
    ];
    let gate = gate(&wechat, &upstream, &config).await;
    let logins = (0..8).map(|n| {
        let gate = &gate;
        async move {
            let client = format!("198.51.100.{n}");
            login_as(gate, &format!("slow:2500:many{n}"), Some(&client)).await
        }
    });
    let responses = futures_util::future::join_all(logins).await;
    assert!(
        wechat.peak_in_flight() <= 2,
        "{} calls at once",
        wechat.peak_in_flight()
    );
    let mut busy = 0;
    for response in responses {
        if response.status() == 503 {
            assert!(response.headers().contains_key("retry-after"));
            assert_error(response, 503, "wechat_busy").await;
            busy += 1;
        } else {
            assert_eq!(response.status(), 200);
        }
    }
    assert!(busy > 0, "the logins beyond the bound waited 1 s, then 503");
}

#[tokio::test]
async fn overload_is_answered_at_once_while_requests_in_flight_complete() {
    let (wechat, upstream) = (WeChatDouble::start().await, Upstream::start().await);
    let config = [("server", "threads", "1"), ("server", "max_in_flight", "2")];
    let gate = gate(&wechat, &upstream, &config).await;
    let slow = |gate: &crate::common::Gate| gate.http.get(gate.url("/slow?ms=1500")).send();
    let (first, second) = (slow(&gate), slow(&gate));
    let in_flight = tokio::spawn(async move { tokio::join!(first, second) });
    // Until both are in flight: the echo upstream counts them.
    crate::common::until("the slow requests never arrived", || async {
        upstream.hits() >= 2
    })
    .await;
    let asked = Instant::now();
    let response = gate.http.get(gate.url("/public/x")).send().await.unwrap();
    assert!(
        asked.elapsed() < Duration::from_millis(1000),
        "shed at once, not queued"
    );
    assert_eq!(response.headers()["retry-after"], "1");
    assert_error(response, 503, "overloaded").await;
    let (first, second) = in_flight.await.unwrap();
    assert_eq!(first.unwrap().status(), 200);
    assert_eq!(second.unwrap().status(), 200);
    // Capacity is back.
    let after = gate.http.get(gate.url("/public/x")).send().await.unwrap();
    assert_eq!(after.status(), 200);
}

#[tokio::test]
async fn a_stalled_body_ends_within_body_idle_timeout() {
    let (wechat, upstream) = (WeChatDouble::start().await, Upstream::start().await);
    let gate = gate(
        &wechat,
        &upstream,
        &[("server", "body_idle_timeout", "\"300ms\"")],
    )
    .await;
    for path in ["/upload", "/login"] {
        let started = Instant::now();
        // Ten of the hundred bytes promised, then silence: `raw` keeps the
        // socket open until the server closes it.
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: 100\r\nConnection: close\r\n\r\n{{\"code\":\"a"
        );
        let answer = tokio::time::timeout(Duration::from_secs(10), raw(gate.addr, &request)).await;
        let (status, _, body) = answer.expect("the request was never ended");
        assert_eq!(status, 408, "{path}: {body}");
        assert!(body.contains("request_timeout"), "{path}: {body}");
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "{path}: ended early"
        );
    }
    // A body that keeps trickling inside the timeout is fine.
    let chunks = futures_util::stream::iter(0..5).then(|_| async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"0123456789"))
    });
    let response = gate
        .http
        .post(gate.url("/upload"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let echo: serde_json::Value = response.json().await.unwrap();
    assert_eq!(echo["bytes"], 50);
}
