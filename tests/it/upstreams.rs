//! One gateway in front of several services (`[[upstreams]]`), each a real
//! echo server: routing by longest prefix, `strip_prefix`, public routes
//! per upstream, `404 no_upstream`, and a backend down failing only its prefix.

use crate::common::upstream::header_values;
use crate::common::wechat::openid_of;
use crate::common::{Gate, GateConfig, Upstream, WeChatDouble, assert_error, closed_port};

struct Services {
    _wechat: WeChatDouble,
    shop: Upstream,
    admin: Upstream,
    gate: Gate,
}

/// `/shop` (stripped, `GET /shop/static` public) and `/shop/admin` and
/// `/orders` (not stripped), and `/down`, whose backend is not there. No
/// catch-all: other paths have no upstream.
async fn services() -> Services {
    let wechat = WeChatDouble::start().await;
    let shop = Upstream::start().await;
    let admin = Upstream::start().await;
    let down = closed_port().await;
    let mut config = GateConfig::with_upstream_url(&wechat, "http://127.0.0.1:1");
    config.remove("upstream").append(&format!(
        r#"
[[upstreams]]
prefix = "/shop"
url = "http://{shop}"
strip_prefix = true
public = ["GET /shop/static"]
timeout = "5s"

[[upstreams]]
prefix = "/shop/admin"
url = "http://{admin}"

[[upstreams]]
prefix = "/orders/"
url = "http://{admin}/svc"

[[upstreams]]
prefix = "/down"
url = "http://{down}"
"#,
        shop = shop.addr,
        admin = admin.addr,
    ));
    let gate = config.start().await;
    Services {
        _wechat: wechat,
        shop,
        admin,
        gate,
    }
}

async fn uri_seen(gate: &Gate, path: &str, session: &str) -> String {
    let echo = crate::common::json(gate.get(path, session)).await;
    assert_eq!(header_values(&echo, "x-wx-openid"), [openid_of("gus")]);
    echo["uri"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_prefix_reaches_its_own_backend_the_longest_winning() {
    let s = services().await;
    let session = s.gate.login("gus").await;
    // Stripped: the shop sees its own paths.
    assert_eq!(
        uri_seen(&s.gate, "/shop/cart?x=1", &session).await,
        "/cart?x=1"
    );
    assert_eq!(uri_seen(&s.gate, "/shop", &session).await, "/");
    assert_eq!(s.shop.hits(), 2);
    // The longer prefix wins, and is not stripped.
    assert_eq!(
        uri_seen(&s.gate, "/shop/admin/users", &session).await,
        "/shop/admin/users"
    );
    // The upstream URL's own path is prepended.
    assert_eq!(
        uri_seen(&s.gate, "/orders/7", &session).await,
        "/svc/orders/7"
    );
    assert_eq!((s.shop.hits(), s.admin.hits()), (2, 2));
    // Whole segments: /shopping is nobody's.
    for path in ["/shopping", "/other", "/", "/order"] {
        assert_error(
            s.gate.get(path, &session).send().await.unwrap(),
            404,
            "no_upstream",
        )
        .await;
        // Not even asked for a session first.
        assert_error(
            s.gate.http.get(s.gate.url(path)).send().await.unwrap(),
            404,
            "no_upstream",
        )
        .await;
    }
    assert_eq!(
        (s.shop.hits(), s.admin.hits()),
        (2, 2),
        "nothing unmatched was forwarded"
    );
    // Each upstream's answers are timed under its own prefix.
    let metrics = s.gate.metrics().await;
    let timed = |prefix: &str| {
        crate::common::metric(
            &metrics,
            &format!(r#"wxgate_upstream_duration_seconds_count{{upstream="{prefix}"}}"#),
        )
    };
    assert_eq!(
        (
            timed("/shop"),
            timed("/shop/admin"),
            timed("/orders"),
            timed("/down")
        ),
        (2.0, 1.0, 1.0, 0.0),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_routes_hold_for_their_upstream_only() {
    let s = services().await;
    let anonymous = |path: &str| s.gate.http.get(s.gate.url(path)).send();
    let public = anonymous("/shop/static/app.css").await.unwrap();
    assert_eq!(public.status(), 200);
    let echo: serde_json::Value = public.json().await.unwrap();
    assert_eq!(echo["uri"], "/static/app.css");
    // Not the other upstreams', not another method, not out of it by `..`.
    for path in [
        "/orders/static",
        "/shop/admin/static",
        "/shop/static/../cart",
        "/shop/static/%2e%2e/cart",
    ] {
        assert_error(anonymous(path).await.unwrap(), 401, "session_invalid").await;
    }
    let post = s
        .gate
        .http
        .post(s.gate.url("/shop/static/upload"))
        .send()
        .await
        .unwrap();
    assert_error(post, 401, "session_invalid").await;
    // Forward-auth answers by the same rules.
    let ask = |uri: &str| {
        s.gate
            .http
            .get(s.gate.url("/_wxgate/auth"))
            .header("x-forwarded-method", "GET")
            .header("x-forwarded-uri", uri)
            .send()
    };
    assert_eq!(ask("/shop/static/a.css").await.unwrap().status(), 200);
    assert_eq!(ask("/orders/static").await.unwrap().status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_path_no_upstream_covers_gets_one_answer_on_both_ports() {
    let wechat = WeChatDouble::start().await;
    let shop = Upstream::start().await;
    let mut config = GateConfig::with_upstream_url(&wechat, "http://127.0.0.1:1");
    config
        .remove("upstream")
        .set("routes", "public", r#"["/open"]"#)
        .append(&format!(
            "[[upstreams]]\nprefix = \"/shop\"\nurl = \"http://{}\"\n",
            shop.addr
        ));
    let gate = config.start().await;
    let proxied = gate.http.get(gate.url("/open/x")).send().await.unwrap();
    assert_error(proxied, 404, "no_upstream").await;
    let asked = gate
        .http
        .get(gate.url("/_wxgate/auth"))
        .header("x-forwarded-uri", "/open/x")
        .send()
        .await
        .unwrap();
    assert_error(asked, 404, "no_upstream").await;
    let envoy = gate
        .http
        .get(gate.url("/_wxgate/auth/open/x"))
        .send()
        .await
        .unwrap();
    assert_error(envoy, 404, "no_upstream").await;
    assert_eq!(shop.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_down_fails_only_its_prefix() {
    let s = services().await;
    let session = s.gate.login("gus").await;
    assert_error(
        s.gate.get("/down/x", &session).send().await.unwrap(),
        502,
        "upstream_unavailable",
    )
    .await;
    assert_eq!(uri_seen(&s.gate, "/shop/a", &session).await, "/a");
    assert_eq!(
        uri_seen(&s.gate, "/orders/1", &session).await,
        "/svc/orders/1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catch_all_upstream_takes_what_no_prefix_claims() {
    let wechat = WeChatDouble::start().await;
    let main = Upstream::start().await;
    let shop = Upstream::start().await;
    let mut config = GateConfig::new(&wechat, &main);
    config.append(&format!(
        "[[upstreams]]\nprefix = \"/shop\"\nurl = \"http://{}\"\n",
        shop.addr
    ));
    let gate = config.start().await;
    let session = gate.login("hal").await;
    let echo = crate::common::json(gate.get("/shop/x", &session)).await;
    assert_eq!(echo["uri"], "/shop/x");
    let echo = crate::common::json(gate.get("/anything", &session)).await;
    assert_eq!(echo["uri"], "/anything");
    assert_eq!((main.hits(), shop.hits()), (1, 1));
}
