//! deploy/nginx/wxgate-auth.conf, run for real: nginx `auth_request` in
//! front of the echo backend, asking wxgate's `/auth`. Only the addresses
//! in the file are replaced. (scripts/test installs nginx when missing.)

use std::net::SocketAddr;

use crate::common::binding::{BindingDouble, account_of};
use crate::common::upstream::{header_names, header_values};
use crate::common::wechat::openid_of;
use crate::common::{GateConfig, Upstream, WeChatDouble, assert_error};

/// deploy/nginx/wxgate-auth.conf with only its addresses replaced.
struct Nginx {
    _nginx: crate::common::nginx::Nginx,
    addr: SocketAddr,
}

impl Nginx {
    async fn start(upstream: SocketAddr, wxgate: SocketAddr) -> Self {
        let addr = crate::common::nginx::free_addr();
        let example = include_str!("../../../deploy/nginx/wxgate-auth.conf")
            .replace("127.0.0.1:3000", &upstream.to_string())
            .replace("127.0.0.1:8080", &wxgate.to_string())
            .replace("listen 8000;", &format!("listen {addr};"));
        let nginx = crate::common::nginx::Nginx::start(&example, &[addr]).await;
        Self {
            _nginx: nginx,
            addr,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nginx_example_lets_only_real_identities_through() {
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let binding = BindingDouble::start().await;
    let mut config = GateConfig::new(&wechat, &upstream);
    config
        .set("routes", "public", r#"["/public"]"#)
        .set("binding", "url", &format!("\"{}\"", binding.url()))
        .set("assertion", "ttl", "\"5m\"")
        .append("[[rules]]\nname = \"vault\"\nprefix = \"/vault\"\naction = \"deny\"\n");
    let gate = config.start().await;
    let nginx = Nginx::start(upstream.addr, gate.addr).await;
    let http = reqwest::Client::new();

    // Login goes through nginx to wxgate itself.
    let login = crate::common::json(http.post(nginx.url("/login")).body(r#"{"code":"uma"}"#)).await;
    let id = login["session_id"].as_str().expect("session_id").to_owned();

    let forged = |request: reqwest::RequestBuilder| {
        request
            .header("X-WX-OpenId", "forged")
            .header("x-wx-openid", "forged")
            .header("X_WX_OpenId", "forged")
            .header("X-WX-Phone", "forged")
            .header("X-User-Id", "forged")
            .header("X-Wxgate-Assertion", "forged")
    };
    let echo =
        crate::common::json(forged(http.get(nginx.url("/orders?x=1"))).header("x-session-id", &id))
            .await;
    assert_eq!(header_values(&echo, "x-wx-openid"), [openid_of("uma")]);
    assert_eq!(
        header_values(&echo, "x-user-id"),
        [account_of(&openid_of("uma"))]
    );
    assert!(!echo.to_string().contains("forged"), "{echo}");
    assert!(
        header_names(&echo).iter().all(|n| !n.contains('_')),
        "{echo}"
    );
    assert!(header_values(&echo, "x-session-id").is_empty(), "{echo}");
    assert_eq!(header_values(&echo, "x-request-id").len(), 1, "{echo}");
    // The signed identity, passed on by the example (auth_request_set), verifies.
    let assertion = header_values(&echo, "x-wxgate-assertion");
    assert_eq!(assertion.len(), 1, "{echo}");
    let verified = crate::common::assertion::verify(
        &gate.admin_url("/jwks.json"),
        "wxgate",
        &format!("http://{}", upstream.addr),
        &assertion[0],
    )
    .await
    .expect("jose accepts what nginx passed on");
    assert_eq!(
        verified["claims"]["sub"],
        account_of(&openid_of("uma")).as_str()
    );
    // A rule's refusal comes through nginx as wxgate's 403.
    let vault = http
        .get(nginx.url("/vault"))
        .header("x-session-id", &id)
        .send()
        .await
        .unwrap();
    assert_error(vault, 403, "access_denied").await;

    // wxgate's own routes under its prefix go to wxgate.
    let check = http
        .get(nginx.url("/_wxgate/session"))
        .header("x-session-id", &id)
        .send()
        .await
        .unwrap();
    assert_eq!(check.status(), 200);
    let check: serde_json::Value = check.json().await.unwrap();
    assert_eq!(check["valid"], true, "{check}");

    // Public route, no session: passes, with no identity at all.
    let echo = crate::common::json(forged(http.get(nginx.url("/public/list")))).await;
    assert!(header_values(&echo, "x-wx-openid").is_empty(), "{echo}");
    assert!(!echo.to_string().contains("forged"), "{echo}");

    let hits = upstream.hits();
    let rejected = forged(http.get(nginx.url("/orders"))).send().await.unwrap();
    assert_error(rejected, 401, "session_invalid").await;
    // (reqwest would resolve the dots itself: sent raw.) A path whose
    // written form nginx may route differently from wxgate's reading of it
    // is refused: wxgate's 400 path_ambiguous, which the example hands on.
    for (trick, status) in [
        ("/public/../orders", 400),
        ("/x/../public/list", 400),
        ("/%70ublic/list", 400),
        ("/public#/../orders", 400),
        ("/public/%2e%2e/orders", 400),
        ("/public/..;/orders", 400),
    ] {
        let request = format!("GET {trick} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        let (got, head, _) = crate::common::raw(nginx.addr, &request).await;
        assert_eq!(got, status, "{trick}");
        assert!(
            head.to_ascii_lowercase()
                .contains("x-wxgate-error: path_ambiguous"),
            "{trick}: {head}"
        );
    }
    assert_eq!(
        upstream.hits(),
        hits,
        "a rejected request reached the backend"
    );
}
