//! No forged identity ever reaches the upstream.

use crate::common::upstream::{header_names, header_values};
use crate::common::wechat::openid_of;
use crate::common::{APPID, GateConfig, Upstream, WeChatDouble, assert_error, raw};

// Every spelling a backend may fold to the same name: lighttpd's CGI layer
// maps any byte that is not a letter or digit to `_`.
const FORGED: [&str; 13] = [
    "X-WX-OpenId",
    "x-wx-openid",
    "X_WX_OpenId",
    "x_wx-openid",
    "X.WX.OpenId",
    "X+WX+OpenId",
    "X-WX-UnionId",
    "X_WX_UNIONID",
    "X~WX~UnionId",
    "X-WX-AppId",
    "x_wx_appid",
    "X.WX.AppId",
    "X~WX~Phone",
];

fn with_forgeries(mut request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    for name in FORGED {
        // Two copies of each: duplicates must go too.
        request = request.header(name, "forged").header(name, "forged-again");
    }
    request
}

fn assert_no_forgery(echo: &serde_json::Value) {
    for name in header_names(echo) {
        assert!(
            name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
            "variant {name} reached the upstream"
        );
    }
    assert!(!echo.to_string().contains("forged"), "{echo}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_headers_are_replaced_on_protected_routes() {
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let gate = GateConfig::new(&wechat, &upstream).start().await;
    let id = gate.login("ivan").await;
    let echo = crate::common::json(with_forgeries(gate.get("/orders", &id))).await;
    assert_no_forgery(&echo);
    assert_eq!(header_values(&echo, "x-wx-openid"), [openid_of("ivan")]);
    assert_eq!(header_values(&echo, "x-wx-appid"), [APPID]);
    assert!(header_values(&echo, "x-wx-unionid").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_routes_strip_forgeries_and_inject_only_a_real_session() {
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let mut config = GateConfig::new(&wechat, &upstream);
    config.set("routes", "public", r#"["/public"]"#);
    let gate = config.start().await;

    let anonymous = with_forgeries(gate.http.get(gate.url("/public/list")));
    let echo = crate::common::json(anonymous).await;
    assert_no_forgery(&echo);
    assert!(header_values(&echo, "x-wx-openid").is_empty());
    assert!(header_values(&echo, "x-wx-appid").is_empty());

    let id = gate.login("judy").await;
    let echo = crate::common::json(with_forgeries(gate.get("/public/list", &id))).await;
    assert_no_forgery(&echo);
    assert_eq!(header_values(&echo, "x-wx-openid"), [openid_of("judy")]);

    // An invalid session on a public route is served anonymously, not refused.
    let echo = crate::common::json(gate.get("/public/list", "not-a-session")).await;
    assert!(header_values(&echo, "x-wx-openid").is_empty());

    // Traversal out of the public prefix needs a session.
    let (status, _, _) = raw(
        gate.addr,
        "GET /public/../admin HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_header_cannot_remove_injected_identity() {
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let gate = GateConfig::new(&wechat, &upstream).start().await;
    let id = gate.login("mallory").await;
    let request = format!(
        "GET /x HTTP/1.1\r\nHost: t\r\nX-Session-Id: {id}\r\n\
         Connection: close, X-WX-OpenId, x_wx_appid, X-WX-UnionId\r\n\
         X-WX-OpenId: forged\r\n\r\n"
    );
    let (status, _, body) = raw(gate.addr, &request).await;
    assert_eq!(status, 200, "{body}");
    let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(header_values(&echo, "x-wx-openid"), [openid_of("mallory")]);
    assert_eq!(header_values(&echo, "x-wx-appid"), [APPID]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_id_is_not_forwarded_unless_configured() {
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let gate = GateConfig::new(&wechat, &upstream).start().await;
    let id = gate.login("nina").await;
    let echo = crate::common::json(gate.get("/x", &id).header("X_Session_Id", &id)).await;
    assert!(!echo.to_string().contains(&id), "{echo}");

    let mut config = GateConfig::new(&wechat, &upstream);
    config.set("session", "forward_session_header", "true");
    let gate = config.start().await;
    let id = gate.login("olga").await;
    let echo = crate::common::json(gate.get("/x", &id)).await;
    assert_eq!(header_values(&echo, "x-session-id"), [id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_valid_session_the_upstream_is_never_contacted() {
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let gate = GateConfig::new(&wechat, &upstream).start().await;
    let id = gate.login("peggy").await;
    let unknown = "A".repeat(43);
    let cases: Vec<reqwest::RequestBuilder> = vec![
        gate.http.get(gate.url("/x")),
        gate.get("/x", ""),
        gate.get("/x", "garbage"),
        gate.get("/x", &unknown),
        gate.get("/x", &format!("{id}=")),
        // Two session headers are ambiguous: refused, even if one is valid.
        gate.get("/x", &id).header("x-session-id", &unknown),
        // Identity headers alone are not a session.
        gate.http
            .get(gate.url("/x"))
            .header("X-WX-OpenId", openid_of("peggy")),
    ];
    for request in cases {
        assert_error(request.send().await.unwrap(), 401, "session_invalid").await;
    }
    assert_eq!(upstream.hits(), 0);
}
