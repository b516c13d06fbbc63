//! One reading of the path (issue 23): every decision wxgate takes and the
//! path the backend serves agree. A real nginx is the backend — four
//! servers, one per upstream, each reporting its own name and the path it
//! served (`$uri`: nginx's reading, decoded, slashes merged, dots resolved)
//! — behind a gateway of three `[[upstreams]]` and a catch-all:
//!
//! | prefix    | url             | strip | what the backend may serve |
//! |-----------|-----------------|-------|----------------------------|
//! | `/vault`  | `http://v/v1`   | yes   | `/v1/…`                    |
//! | `/orders` | `http://o/api`  | no    | `/api/orders/…`            |
//! | `/shop`   | `http://s`      | no    | `/shop/…`                  |
//! | (none)    | `http://m`      | —     | anything not above         |
//!
//! `routes.public = ["/static", "GET /api/products"]`. For every path sent,
//! with and without a session: either wxgate refuses it itself, or the
//! backend that served it (1) served a path inside its upstream's space,
//! (2) is the upstream the backend's own reading of the path belongs to,
//! and (3) without a session, served a public path.

use std::net::SocketAddr;

use crate::common::nginx::{Nginx, free_addr};
use crate::common::{Gate, GateConfig, WeChatDouble, raw};
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;

const SERVERS: [&str; 4] = ["vault", "orders", "shop", "main"];

struct Fleet {
    _wechat: WeChatDouble,
    _nginx: Nginx,
    gate: Gate,
    session: String,
}

async fn fleet() -> Fleet {
    let wechat = WeChatDouble::start().await;
    let addrs: Vec<SocketAddr> = SERVERS.iter().map(|_| free_addr()).collect();
    let servers: String = SERVERS
        .iter()
        .zip(&addrs)
        .map(|(name, addr)| {
            format!(
                "server {{\n listen {addr};\n merge_slashes on;\n location / {{\n  \
                 default_type application/json;\n  \
                 return 200 '{{\"server\":\"{name}\",\"uri\":\"$uri\",\"openid\":\"$http_x_wx_openid\"}}';\n \
                 }}\n}}\n"
            )
        })
        .collect();
    let nginx = Nginx::start(&servers, &addrs).await;
    let mut config = GateConfig::with_upstream_url(&wechat, &format!("http://{}", addrs[3]));
    config
        .set("routes", "public", r#"["/static", "GET /api/products"]"#)
        .append(&format!(
            r#"
[[upstreams]]
prefix = "/vault"
url = "http://{vault}/v1"
strip_prefix = true

[[upstreams]]
prefix = "/orders"
url = "http://{orders}/api"

[[upstreams]]
prefix = "/shop"
url = "http://{shop}"
"#,
            vault = addrs[0],
            orders = addrs[1],
            shop = addrs[2],
        ));
    let gate = config.start().await;
    let session = gate.login("pat").await;
    Fleet {
        _wechat: wechat,
        _nginx: nginx,
        gate,
        session,
    }
}

/// What became of one request.
#[derive(Debug, PartialEq)]
enum Seen {
    /// wxgate answered itself, with this status and code.
    Refused(u16, String),
    /// A backend served it: its name and its reading of the path.
    Served(String, String),
}

async fn send(gate: &Gate, method: &str, path: &str, session: Option<&str>) -> Seen {
    let session = session.map_or(String::new(), |id| format!("X-Session-Id: {id}\r\n"));
    let request =
        format!("{method} {path} HTTP/1.1\r\nHost: t\r\n{session}Connection: close\r\n\r\n");
    let (status, _, body) = raw(gate.addr, &request).await;
    let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    match (json["server"].as_str(), json["uri"].as_str()) {
        (Some(server), Some(uri)) => Seen::Served(server.to_owned(), uri.to_owned()),
        _ => Seen::Refused(status, json["code"].as_str().unwrap_or("-").to_owned()),
    }
}

/// `path` is `prefix` or under it, on whole segments.
fn under(path: &str, prefix: &str) -> bool {
    prefix == "/"
        || path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The client path a backend's reading stands for (its upstream's URL
/// path and prefix undone), or why it cannot stand for any.
fn client_path(server: &str, uri: &str) -> Result<String, String> {
    let space = match server {
        "vault" => "/v1",
        "orders" => "/api/orders",
        "shop" => "/shop",
        _ => "/",
    };
    if !under(uri, space) {
        return Err(format!(
            "{server} served {uri:?}, outside its space {space:?}"
        ));
    }
    Ok(match server {
        "vault" => format!("/vault{}", &uri["/v1".len()..]),
        "orders" => uri["/api".len()..].to_owned(),
        _ => uri.to_owned(),
    })
}

/// The upstream a client path belongs to: longest prefix on whole segments.
fn owner(path: &str) -> &'static str {
    ["vault", "orders", "shop"]
        .into_iter()
        .find(|name| under(path, &format!("/{name}")))
        .unwrap_or("main")
}

fn public(method: &str, path: &str) -> bool {
    under(path, "/static") || (method == "GET" && under(path, "/api/products"))
}

/// The three properties of the module doc, for one answer.
fn check(method: &str, sent: &str, authenticated: bool, seen: &Seen) -> Result<(), String> {
    let Seen::Served(server, uri) = seen else {
        return Ok(());
    };
    let path = client_path(server, uri).map_err(|e| format!("{sent:?}: {e}"))?;
    if owner(&path) != server {
        return Err(format!(
            "{sent:?} was served by {server} as {uri:?}, which belongs to {}",
            owner(&path)
        ));
    }
    if !authenticated && !public(method, &path) {
        return Err(format!(
            "{sent:?} reached {server} as {uri:?} without a session"
        ));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_paths_never_cross_a_backend_s_space_or_skip_the_session() {
    let f = fleet().await;
    let served = |server: &str, uri: &str| Seen::Served(server.into(), uri.into());
    let refused = |status: u16, code: &str| Seen::Refused(status, code.into());
    let ambiguous = || refused(400, "path_ambiguous");
    // (path, without a session, with one)
    let cases: Vec<(&str, Seen, Seen)> = vec![
        // No session needed: the public path is served by its own backend.
        (
            "/vault/../static/x",
            served("main", "/static/x"),
            served("main", "/static/x"),
        ),
        (
            "/vault/x/../../static/x",
            served("main", "/static/x"),
            served("main", "/static/x"),
        ),
        (
            "/vault/../api/products",
            served("main", "/api/products"),
            served("main", "/api/products"),
        ),
        ("/vault/%2e%2e/static/x", ambiguous(), ambiguous()),
        ("/vault/..%2fstatic/x", ambiguous(), ambiguous()),
        ("/vault/..;/static/x", ambiguous(), ambiguous()),
        ("/vault\\..\\static/x", ambiguous(), ambiguous()),
        (
            "/static/../vault/secret",
            refused(401, "session_invalid"),
            served("vault", "/v1/secret"),
        ),
        ("/static/%2e%2e/vault/secret", ambiguous(), ambiguous()),
        // Climbing out of an upstream's URL path.
        ("/orders/../../actuator/env", ambiguous(), ambiguous()),
        (
            "/orders/%2e%2e/%2e%2e/actuator/env",
            ambiguous(),
            ambiguous(),
        ),
        ("/orders/..%2f..%2factuator/env", ambiguous(), ambiguous()),
        ("/orders/..;/..;/actuator/env", ambiguous(), ambiguous()),
        ("/orders//..//..//actuator/env", ambiguous(), ambiguous()),
        (
            "/orders/../actuator/env",
            refused(401, "session_invalid"),
            served("main", "/actuator/env"),
        ),
        ("/vault/../../etc/passwd", ambiguous(), ambiguous()),
        // Routing as the backend reads it.
        (
            "/shop/../member/card",
            refused(401, "session_invalid"),
            served("main", "/member/card"),
        ),
        (
            "/x/../shop/card",
            refused(401, "session_invalid"),
            served("shop", "/shop/card"),
        ),
        (
            "/%73hop/card",
            refused(401, "session_invalid"),
            served("shop", "/shop/card"),
        ),
        (
            "/%76ault/secret",
            refused(401, "session_invalid"),
            served("vault", "/v1/secret"),
        ),
        ("/shop;x=1/card", ambiguous(), ambiguous()),
        (
            "//shop//card",
            refused(401, "session_invalid"),
            served("shop", "/shop/card"),
        ),
        // Plain paths, for contrast.
        (
            "/static/app.css",
            served("main", "/static/app.css"),
            served("main", "/static/app.css"),
        ),
        (
            "/orders/7",
            refused(401, "session_invalid"),
            served("orders", "/api/orders/7"),
        ),
        (
            "/vault",
            refused(401, "session_invalid"),
            served("vault", "/v1/"),
        ),
        (
            "/vault/static/x",
            refused(401, "session_invalid"),
            served("vault", "/v1/static/x"),
        ),
    ];
    for (path, anonymous, authenticated) in cases {
        let seen = send(&f.gate, "GET", path, None).await;
        assert_eq!(seen, anonymous, "{path} without a session");
        check("GET", path, false, &seen).unwrap();
        let seen = send(&f.gate, "GET", path, Some(&f.session)).await;
        assert_eq!(seen, authenticated, "{path} with a session");
        check("GET", path, true, &seen).unwrap();
    }
    // A method-bound public route holds for its method only.
    let seen = send(&f.gate, "POST", "/vault/../api/products", None).await;
    assert_eq!(seen, refused(401, "session_invalid"));
}

/// Path pieces that have fooled proxies and backends.
fn segment() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "vault", "orders", "shop", "static", "api", "products", "x", "", ".", "..", "%2e",
        "%2e%2e", ".%2e", "%2f", "..%2f", "%5c", "..;", ";x", "%73hop", "%76ault", "%7e", "a%20b",
        "%25", "%2",
    ])
}

#[test]
fn generated_paths_never_leave_their_upstream_s_space() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let f = runtime.block_on(fleet());
    // Mostly under an upstream's prefix (public ones included), so that
    // some paths are served, with and without a session.
    let first = prop_oneof![
        3 => prop::sample::select(vec!["static", "api/products", "shop", "vault", "orders"]),
        1 => segment(),
    ];
    let paths = (first, prop::collection::vec(segment(), 0..6)).prop_map(|(first, rest)| {
        rest.iter()
            .fold(format!("/{first}"), |path, s| path + "/" + s)
    });
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(300));
    // The oracle holds vacuously if everything is refused: count what was
    // served, and served without a session (a public route).
    let (served, public) = (AtomicUsize::new(0), AtomicUsize::new(0));
    runner
        .run(&(paths, prop::bool::ANY), |(path, authenticated)| {
            let session = authenticated.then_some(f.session.as_str());
            let seen = runtime.block_on(send(&f.gate, "GET", &path, session));
            check("GET", &path, authenticated, &seen).map_err(TestCaseError::fail)?;
            match &seen {
                Seen::Refused(status, _) => {
                    prop_assert!(*status < 500, "{path:?} answered {seen:?}");
                }
                _ => {
                    served.fetch_add(1, Ordering::Relaxed);
                    if !authenticated {
                        public.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Ok(())
        })
        .unwrap();
    let (served, public) = (served.into_inner(), public.into_inner());
    assert!(
        served >= 30,
        "only {served} of 300 generated paths were served"
    );
    assert!(
        public >= 5,
        "only {public} generated paths were served without a session"
    );
}
