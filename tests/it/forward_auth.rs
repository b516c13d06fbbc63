//! Forward-auth (`/auth`) for nginx `auth_request`, Traefik ForwardAuth and
//! Envoy `ext_authz`, and the request id every answer carries.

use crate::common::upstream::header_values;
use crate::common::wechat::{openid_of, unionid_of};
use crate::common::{APPID, Gate, GateConfig, Upstream, WeChatDouble, assert_error};

async fn gate(wechat: &WeChatDouble, upstream: &Upstream) -> Gate {
    let mut config = GateConfig::new(wechat, upstream);
    config.set("routes", "public", r#"["/public", "GET /api/products"]"#);
    config.start().await
}

/// Asks `/auth` about `uri` as nginx or Traefik would.
async fn ask(gate: &Gate, uri: &str, session: Option<&str>) -> reqwest::Response {
    let mut request = gate
        .http
        .get(gate.url("/_wxgate/auth"))
        .header("x-forwarded-method", "GET")
        .header("x-forwarded-uri", uri);
    if let Some(id) = session {
        request = request.header("x-session-id", id);
    }
    request.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_session_gets_identity_headers_on_the_response() {
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let gate = gate(&wechat, &upstream).await;
    let id = gate.login("union:olga").await;

    let response = ask(&gate, "/orders/7", Some(&id)).await;
    assert_eq!(response.status(), 200);
    let headers = response.headers();
    assert_eq!(headers["x-wx-openid"], openid_of("olga").as_str());
    assert_eq!(headers["x-wx-unionid"], unionid_of("olga").as_str());
    assert_eq!(headers["x-wx-appid"], APPID);
    assert_eq!(headers["cache-control"], "no-store");
    assert!(headers.get("x-session-id").is_none());
    assert_eq!(response.text().await.unwrap(), "");
    // wxgate answered itself: nothing reached the upstream.
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_or_unknown_session_is_401_json() {
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let gate = gate(&wechat, &upstream).await;
    assert_error(ask(&gate, "/orders", None).await, 401, "session_invalid").await;
    let unknown = "A".repeat(43);
    let response = ask(&gate, "/orders", Some(&unknown)).await;
    assert!(response.headers().get("x-wx-openid").is_none());
    assert_error(response, 401, "session_invalid").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_routes_pass_without_identity_and_tricks_do_not() {
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let gate = gate(&wechat, &upstream).await;
    let id = gate.login("pia").await;

    let anonymous = ask(&gate, "/public/list?page=2", None).await;
    assert_eq!(anonymous.status(), 200);
    assert!(anonymous.headers().get("x-wx-openid").is_none());
    // With a session, a public route still says who it is.
    let known = ask(&gate, "/public/list", Some(&id)).await;
    assert_eq!(known.headers()["x-wx-openid"], openid_of("pia").as_str());

    // A query is no path; a path not canonical as written, which the
    // front proxy may route as written, or a fragment: refused, never
    // judged on its resolved form; spellings backends read differently:
    // refused; no path: refused.
    for (trick, status) in [
        ("/admin?/public/x", 401),
        ("/admin?next=/public", 401),
        ("/public/../admin", 400),
        ("/admin#/public", 400),
        ("//evil/../admin", 400),
        ("/vault/../public/list", 400),
        ("/%70ublic/list", 400),
        ("/public/%2e%2e/admin", 400),
        ("/public/%2E%2E%2Fadmin", 400),
        ("/public/..%5cadmin", 400),
        ("/public/..;/admin", 400),
        ("/public/../../admin", 400),
        ("admin", 400),
        ("", 400),
    ] {
        let response = ask(&gate, trick, None).await;
        assert_eq!(response.status(), status, "{trick:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_forwarded_method_decides_method_bound_public_routes() {
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let gate = gate(&wechat, &upstream).await;
    let with_method = |method: &'static str| {
        gate.http
            .post(gate.url("/_wxgate/auth"))
            .header("x-forwarded-method", method)
            .header("x-forwarded-uri", "/api/products/3")
            .send()
    };
    assert_eq!(with_method("GET").await.unwrap().status(), 200);
    assert_eq!(with_method("DELETE").await.unwrap().status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_asks_with_the_original_path_after_the_auth_route() {
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let gate = gate(&wechat, &upstream).await;
    let id = gate.login("rolf").await;
    let envoy = |method: reqwest::Method, path: &str| gate.http.request(method, gate.url(path));

    let public = envoy(reqwest::Method::GET, "/_wxgate/auth/public/a")
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 200);
    let protected = envoy(reqwest::Method::DELETE, "/_wxgate/auth/orders/1")
        .send()
        .await
        .unwrap();
    assert_eq!(protected.status(), 401);
    let known = envoy(reqwest::Method::DELETE, "/_wxgate/auth/orders/1")
        .header("x-session-id", &id)
        .send()
        .await
        .unwrap();
    assert_eq!(known.status(), 200);
    assert_eq!(known.headers()["x-wx-openid"], openid_of("rolf").as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_auth_route_turns_forward_auth_off() {
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let mut config = GateConfig::new(&wechat, &upstream);
    config.set("routes", "auth", r#""""#);
    let gate = config.start().await;
    let id = gate.login("sven").await;
    // Off: the reserved prefix still keeps the path from the backend.
    crate::common::assert_error(
        gate.get("/_wxgate/auth", &id).send().await.unwrap(),
        404,
        "not_found",
    )
    .await;
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_are_kept_or_made_and_reach_upstream_and_client() {
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let gate = gate(&wechat, &upstream).await;
    let id = gate.login("tove").await;

    let given = "7d3c2b1a-0f9e-4d8c-b7a6-958473625140";
    let response = gate
        .get("/orders", &id)
        .header("x-request-id", given)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], given);
    let echo: serde_json::Value = response.json().await.unwrap();
    assert_eq!(header_values(&echo, "x-request-id"), [given]);

    let response = gate
        .get("/orders", &id)
        .header("x-request-id", "not a good id")
        .send()
        .await
        .unwrap();
    let made = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_ne!(made, "not a good id");
    let echo: serde_json::Value = response.json().await.unwrap();
    assert_eq!(header_values(&echo, "x-request-id"), [made.as_str()]);

    // wxgate's own answers, errors included, carry one too.
    let rejected = gate.http.get(gate.url("/orders")).send().await.unwrap();
    let other = rejected.headers()["x-request-id"].to_str().unwrap();
    assert!(!other.is_empty() && other != made);
}
