//! What an anonymous client can still do, over real sockets: fill the
//! browser login's store (bounded per entry, per client and in total, a
//! flood evicting its own and never an honest user's), hide or leak the
//! session cookie (read as bytes, ambiguity never acted on, `__Host-`
//! names), and tell a backend its address, scheme and host (wxgate owns
//! the proxy headers; a real nginx with `realip` stands for a legacy
//! backend that trusts 127.0.0.1); and what forward-auth hands the front
//! proxy. The flood's figures at scale are bench/flood's.

use crate::common::redis::RedisServer;
use crate::common::upstream::{header_names, header_values};
use crate::common::web::*;
use crate::common::{Gate, GateConfig, Upstream, WeChatDouble, assert_error, raw};
use futures_util::StreamExt;
use reqwest::header::{ACCEPT, COOKIE, LOCATION};

/// Flooding clients and the logins each starts (more than its quota of 8).
const FLOODERS: usize = 1_000;
const STARTS_EACH: usize = 12;

/// A gate behind a trusted proxy on loopback (its X-Forwarded-For names
/// the client, as an ingress's does), at the default login limits.
fn behind_a_proxy(setup: &Setup, redis: Option<&RedisServer>) -> GateConfig {
    let mut config = setup.config(None);
    config.set("server", "trusted_proxies", r#"["127.0.0.1/32"]"#);
    if let Some(redis) = redis {
        config.redis(&redis.url());
    }
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_login_starts_evicts_its_own_and_honest_slow_logins_come_back_memory_and_redis()
{
    let redis = RedisServer::start();
    for store in [None, Some(&redis)] {
        let name = if store.is_some() { "redis" } else { "memory" };
        let setup = Setup::new().await;
        let gate = behind_a_proxy(&setup, store).start().await;
        // Twenty people open the login and sit at WeChat's consent page…
        let mut honest = Vec::new();
        for n in 0..20 {
            let client = format!("198.51.100.{n}");
            let query = format!("?redirect=%2Fpage{n}");
            honest.push(start_as(&gate, &query, "wxgate_session_state", Some(&client)).await);
        }
        // …while a thousand addresses start logins as fast as they may,
        // each with the longest redirect allowed.
        let long = format!("?redirect=%2F{}", "a".repeat(1023));
        let flood = futures_util::stream::iter(0..FLOODERS * STARTS_EACH)
            .map(|i| {
                let (gate, long) = (&gate, &long);
                async move {
                    let client = format!("10.0.{}.{}", i % FLOODERS / 250, i % FLOODERS % 250);
                    let state_cookie = "wxgate_session_state";
                    (i, start_as(gate, long, state_cookie, Some(&client)).await)
                }
            })
            .buffer_unordered(32)
            .collect::<Vec<_>>()
            .await;
        // The flood's first client: its oldest logins went, its newest stay.
        let mut first: Vec<_> = flood.iter().filter(|(i, _)| i % FLOODERS == 0).collect();
        first.sort_by_key(|(i, _)| *i);
        let (oldest, newest) = (&first[0].1, &first[STARTS_EACH - 1].1);
        let query = |s: &Started| format!("?code=flood&state={}", s.state);
        let evicted = callback(&gate, &query(oldest), Some(&oldest.cookie)).await;
        assert_eq!(evicted.status(), 403, "{name}");
        assert_eq!(evicted.headers()["x-wxgate-error"], "state_invalid");
        let kept = callback(&gate, &query(newest), Some(&newest.cookie)).await;
        assert_eq!(kept.status(), 302, "{name}");
        // Every honest login comes back.
        for (n, started) in honest.iter().enumerate() {
            let query = format!("?code=person{n}&state={}", started.state);
            let done = callback(&gate, &query, Some(&started.cookie)).await;
            assert_eq!(done.status(), 302, "honest login {n} ({name})");
            assert_eq!(location(&done), format!("/page{n}"));
            assert!(set_cookie(&done, "wxgate_session").is_some());
        }
        if let Some(redis) = store {
            // At most each client's quota is filed, each for state_ttl.
            let pending: Vec<String> = redis
                .dump()
                .into_iter()
                .map(|(key, _)| key)
                .filter(|key| key.starts_with("wxgate:p:"))
                .collect();
            assert!(pending.len() <= FLOODERS * 8, "{} filed", pending.len());
            let ttl = redis.pttl(&pending[0]);
            assert!(ttl > 0 && ttl <= 600_000, "{ttl}");
            redis.flush();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_is_capped_and_the_state_is_wechat_s_charset() {
    let setup = Setup::new().await;
    let gate = setup.config(None).start().await;
    let at_limit = format!("?redirect=%2F{}", "a".repeat(1023));
    let started = start(&gate, &at_limit).await;
    // WeChat documents `state` as a-zA-Z0-9, at most 128 bytes.
    assert_eq!(started.state.len(), 64, "{}", started.state);
    assert!(started.state.bytes().all(|b| b.is_ascii_alphanumeric()));
    for query in [
        format!("?redirect=%2F{}", "a".repeat(1024)),
        format!("?redirect=%2F{}", "a".repeat(60_000)),
    ] {
        let response = browser()
            .get(gate.url(&format!("/_wxgate/oauth/start{query}")))
            .send()
            .await
            .unwrap();
        // A page, for a browser: the status and wxgate's mark.
        assert_eq!(response.status(), 400);
        assert_eq!(response.headers()["x-wxgate-error"], "redirect_invalid");
    }
    // A state outside the charset was never made here.
    let forged = format!("{}-", &started.state[..63]);
    let cookie = format!("wxgate_session_state={forged}");
    let response = callback(&gate, &format!("?code=x&state={forged}"), Some(&cookie)).await;
    assert_eq!(response.status(), 403);
    assert_eq!(response.headers()["x-wxgate-error"], "state_invalid");
}

/// A logged-in browser: its session cookie's `name=value`.
async fn logged_in(gate: &Gate, code: &str) -> String {
    let started = start(gate, "").await;
    let query = format!("?code={code}&state={}", started.state);
    let done = callback(gate, &query, Some(&started.cookie)).await;
    assert_eq!(done.status(), 302);
    pair(&set_cookie(&done, "wxgate_session").expect("a session cookie"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_are_read_as_browsers_send_them() {
    let setup = Setup::new().await;
    let mut config = setup.config(None);
    config.set("routes", "public", r#"["/public"]"#);
    let gate = config.start().await;
    let session = logged_in(&gate, "nina").await;
    let other = logged_in(&gate, "otto").await;
    let get = |path: &str, cookie: &[u8]| {
        let cookie = reqwest::header::HeaderValue::from_bytes(cookie).unwrap();
        browser().get(gate.url(path)).header(COOKIE, cookie).send()
    };

    // A backend's UTF-8 cookie beside wxgate's hides nothing, either way
    // round, and reaches the backend byte for byte without wxgate's.
    for cookie in [
        format!("{session}; nick=张三"),
        format!("nick=张三; {session}"),
    ] {
        let response = get("/orders", cookie.as_bytes()).await.unwrap();
        assert_eq!(response.status(), 200, "{cookie}");
        let echo: serde_json::Value = response.json().await.unwrap();
        assert_eq!(header_values(&echo, "cookie"), ["nick=张三"], "{cookie}");
        assert_eq!(header_values(&echo, "x-wx-openid").len(), 1);
    }
    // With the session header instead, on a public path: the cookie still
    // never reaches the backend.
    let id = gate.login("mini").await;
    let cookie = format!("{session}; nick=张三");
    let response = browser()
        .get(gate.url("/public/a"))
        .header("x-session-id", &id)
        .header(COOKIE, cookie.as_bytes())
        .send()
        .await
        .unwrap();
    let echo: serde_json::Value = response.json().await.unwrap();
    assert_eq!(header_values(&echo, "cookie"), ["nick=张三"]);
    // Raw bytes past ASCII, as a browser sends a cookie a backend set
    // (hyper itself refuses a DEL byte in a header with a 400).
    let request = format!(
        "GET /public/a HTTP/1.1\r\nHost: t\r\nConnection: close\r\nCookie: a=\u{e9}\u{ff}; {session}\r\n\r\n"
    );
    let (status, _, body) = raw(gate.addr, &request).await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("wxgate_session"), "{body}");
    let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        header_values(&echo, "x-wx-appid"),
        [OA],
        "the cookie was read"
    );
    assert_eq!(header_values(&echo, "cookie"), ["a=\u{e9}\u{ff}"]);

    // Two different session cookies (one tossed by a sibling subdomain):
    // neither is acted on; the same one twice is one.
    let both = format!("{other}; {session}");
    let response = get("/orders", both.as_bytes()).await.unwrap();
    assert_error(response, 401, "session_invalid").await;
    let page = browser()
        .get(gate.url("/orders"))
        .header(COOKIE, &both)
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 302, "a page goes to the login");
    let twice = format!("{session}; {session}");
    assert_eq!(
        get("/orders", twice.as_bytes()).await.unwrap().status(),
        200
    );
    // Logging in again clears the cookie where a sibling could have set it.
    let started = start(&gate, "").await;
    let query = format!("?code=nina2&state={}", started.state);
    let cookies = format!("{}; {both}", started.cookie);
    let done = callback(&gate, &query, Some(&cookies)).await;
    assert_eq!(done.status(), 302, "{:?}", done.text().await);
    let set: Vec<&str> = done
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    for domain in ["m.example.com", "example.com"] {
        assert!(
            set.iter().any(|c| c.starts_with("wxgate_session=;")
                && c.contains(&format!("Domain={domain}"))
                && c.contains("Max-Age=0")),
            "{domain}: {set:?}"
        );
    }
    let last = set.iter().rposition(|c| c.starts_with("wxgate_session="));
    let new = set
        .iter()
        .rposition(|c| c.starts_with("wxgate_session=") && !c.starts_with("wxgate_session=;"));
    assert_eq!(
        last, new,
        "the new session is set after the clearing: {set:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_prefixed_cookie_name_works_end_to_end() {
    let setup = Setup::new().await;
    let mut config = setup.config(None);
    config.set("web", "cookie_name", r#""__Host-wx""#);
    let gate = config.start().await;
    let started = start_as(&gate, "?redirect=%2Forders", "__Host-wx_state", None).await;
    let response = browser()
        .get(gate.url("/_wxgate/oauth/start"))
        .send()
        .await
        .unwrap();
    let state_cookie = set_cookie(&response, "__Host-wx_state").unwrap();
    // RFC 6265bis §4.1.3.2: Secure, Path=/, no Domain.
    let attributes: Vec<&str> = state_cookie.split("; ").collect();
    assert!(attributes.contains(&"Path=/"), "{state_cookie}");
    assert!(attributes.contains(&"Secure"), "{state_cookie}");
    assert!(!state_cookie.contains("Domain="), "{state_cookie}");
    let query = format!("?code=hugo&state={}", started.state);
    let done = callback(&gate, &query, Some(&started.cookie)).await;
    assert_eq!(done.status(), 302, "{:?}", done.text().await);
    let session = set_cookie(&done, "__Host-wx").unwrap();
    assert!(
        session.contains("; Path=/;") && session.ends_with("; Secure"),
        "{session}"
    );
    assert!(!session.contains("Domain="), "{session}");
    // Neither of wxgate's cookies reaches the backend (the state cookie is
    // sent everywhere at Path=/).
    let cookies = format!("{}; {}; theme=dark", pair(&session), started.cookie);
    let response = browser()
        .get(gate.url("/orders"))
        .header(COOKIE, cookies)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let echo: serde_json::Value = response.json().await.unwrap();
    assert_eq!(header_values(&echo, "cookie"), ["theme=dark"]);
}

/// The proxy headers a client may forge, each in a spelling of its own.
const FORGED: [(&str, &str); 9] = [
    ("X-Forwarded-For", "1.2.3.4"),
    ("X-Real-IP", "1.2.3.4"),
    ("X-Forwarded-Proto", "https"),
    ("X-Forwarded-Host", "evil.example"),
    ("X-Forwarded-Port", "443"),
    ("X-Forwarded-Prefix", "/evil"),
    ("Forwarded", "for=1.2.3.4;host=evil.example;proto=https"),
    ("X_Forwarded_For", "1.2.3.4"),
    ("True-Client-IP", "1.2.3.4"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wxgate_owns_the_proxy_headers_unless_a_trusted_proxy_sent_them() {
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let gate = GateConfig::new(&wechat, &upstream).start().await;
    let id = gate.login("ida").await;
    let mut request = format!("GET /x HTTP/1.1\r\nHost: app.example\r\nX-Session-Id: {id}\r\n");
    for (name, value) in FORGED {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("Connection: close\r\n\r\n");
    let (status, _, body) = raw(gate.addr, &request).await;
    assert_eq!(status, 200, "{body}");
    let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
    // (header, what the backend gets: wxgate's own knowledge)
    let port = gate.addr.port().to_string();
    for (name, want) in [
        ("x-forwarded-for", vec!["127.0.0.1"]),
        ("x-real-ip", vec!["127.0.0.1"]),
        ("x-forwarded-proto", vec!["http"]),
        ("x-forwarded-host", vec!["app.example"]),
        ("x-forwarded-port", vec![port.as_str()]),
        ("x-forwarded-prefix", vec![]),
        ("forwarded", vec![]),
        ("x_forwarded_for", vec![]),
        ("true-client-ip", vec![]),
    ] {
        assert_eq!(header_values(&echo, name), want, "{name}: {echo}");
    }
    assert!(
        !body.contains("1.2.3.4") && !body.contains("evil"),
        "{body}"
    );

    // From a trusted proxy, its word is kept and extended.
    let trusted = {
        let mut config = GateConfig::new(&wechat, &upstream);
        config.set("server", "trusted_proxies", r#"["127.0.0.1/32"]"#);
        config.start().await
    };
    let id = trusted.login("ida2").await;
    let request = format!(
        "GET /x HTTP/1.1\r\nHost: app.example\r\nX-Session-Id: {id}\r\n\
         X-Forwarded-For: 198.51.100.7\r\nX-Forwarded-Proto: https\r\n\
         X-Forwarded-Host: shop.example\r\nX-Forwarded-Prefix: /shop\r\n\
         Forwarded: for=198.51.100.7;proto=https\r\nConnection: close\r\n\r\n"
    );
    let (status, _, body) = raw(trusted.addr, &request).await;
    assert_eq!(status, 200, "{body}");
    let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
    let port = trusted.addr.port().to_string();
    for (name, want) in [
        ("x-forwarded-for", "198.51.100.7, 127.0.0.1"),
        ("x-real-ip", "198.51.100.7"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "shop.example"),
        ("x-forwarded-port", port.as_str()),
        ("x-forwarded-prefix", "/shop"),
        ("forwarded", "for=198.51.100.7;proto=https, for=127.0.0.1"),
    ] {
        assert_eq!(header_values(&echo, name), [want], "{name}: {echo}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_backend_that_trusts_loopback_gets_the_real_client_nginx_realip() {
    // nginx's realip module as the backend, trusting 127.0.0.1 (where a
    // sidecar connects from) as Tomcat's RemoteIpValve does: it reports the
    // client address, scheme and host it believes.
    let addr = crate::common::nginx::free_addr();
    let backend = crate::common::nginx::Nginx::start(
        &format!(
            "server {{ listen {addr}; set_real_ip_from 127.0.0.1; real_ip_header X-Forwarded-For; \
             real_ip_recursive on; location / {{ default_type text/plain; \
             return 200 \"$remote_addr|$http_x_forwarded_proto|$http_x_forwarded_host\"; }} }}"
        ),
        &[addr],
    )
    .await;
    let wechat = WeChatDouble::start().await;
    let gate = GateConfig::with_upstream_url(&wechat, &format!("http://{addr}"))
        .start()
        .await;
    let id = gate.login("lena").await;
    let response = gate
        .http
        .get(gate.url("/whoami"))
        .header("x-session-id", &id)
        .header("host", "app.example")
        .header("x-forwarded-for", "1.2.3.4")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "127.0.0.1|http|app.example");
    drop(backend);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nginx_forward_auth_example_keeps_wxgate_s_cookie_from_the_backend() {
    let setup = Setup::new().await;
    let gate = setup.config(None).start().await;
    let session = logged_in(&gate, "fred").await;
    let addr = crate::common::nginx::free_addr();
    let example = include_str!("../../deploy/nginx/wxgate-auth.conf")
        .replace("127.0.0.1:3000", &setup.upstream.addr.to_string())
        .replace("127.0.0.1:8080", &gate.addr.to_string())
        .replace("listen 8000;", &format!("listen {addr};"));
    let _nginx = crate::common::nginx::Nginx::start(&example, &[addr]).await;
    let get = |cookie: String| {
        reqwest::Client::new()
            .get(format!("http://{addr}/orders"))
            .header(COOKIE, cookie)
            .send()
    };
    for (cookie, backend_gets) in [
        (
            format!("theme=dark; {session}; cart=3"),
            vec!["theme=dark; cart=3"],
        ),
        (session.clone(), vec![]),
    ] {
        let response = get(cookie.clone()).await.unwrap();
        assert_eq!(response.status(), 200, "{cookie}");
        let echo: serde_json::Value = response.json().await.unwrap();
        assert_eq!(header_values(&echo, "cookie"), backend_gets, "{cookie}");
        assert_eq!(header_values(&echo, "x-wx-appid"), [OA]);
        assert!(!header_names(&echo).contains(&"x-session-id".to_owned()));
    }
    // No cookie at all: none invented.
    let id = gate.login("gus").await;
    let response = reqwest::Client::new()
        .get(format!("http://{addr}/orders"))
        .header("x-session-id", &id)
        .send()
        .await
        .unwrap();
    let echo: serde_json::Value = response.json().await.unwrap();
    assert!(header_values(&echo, "cookie").is_empty(), "{echo}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_body_has_one_reading_on_every_route() {
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let gate = GateConfig::new(&wechat, &upstream).start().await;
    let id = gate.login("jo").await;
    let login = gate.post_login(r#"{"code":"a","code":"b"}"#).await;
    let body = assert_error(login, 400, "bad_request").await;
    assert!(
        body["message"].as_str().unwrap().contains("`code`"),
        "{body}"
    );
    assert_eq!(wechat.total_calls(), 1, "the repeated login reached WeChat");
    for path in ["/_wxgate/decrypt", "/_wxgate/phone"] {
        let response = gate
            .http
            .post(gate.url(path))
            .header("x-session-id", &id)
            .body(r#"{"iv":"a","iv":"b","encryptedData":"c","code":"d"}"#)
            .send()
            .await
            .unwrap();
        let body = assert_error(response, 400, "bad_request").await;
        assert!(
            body["message"].as_str().unwrap().contains("`iv`"),
            "{path}: {body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_start_is_counted_as_one() {
    let setup = Setup::new().await;
    let gate = setup.config(None).start().await;
    let response = browser()
        .get(gate.url("/_wxgate/oauth/start"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 302);
    assert!(response.headers().contains_key(LOCATION));
    let metrics = gate.metrics().await;
    assert!(
        metrics.contains(r#"wxgate_requests_total{outcome="login_start",status="3xx"} 1"#),
        "{metrics}"
    );
}
