//! Session lifetime: absolute TTL, sliding idle timeout, logout, re-login.
//! Timings leave wide margins (a loaded 2-core machine must not flake).

use std::time::Duration;

use crate::common::upstream::header_values;
use crate::common::wechat::openid_of;
use crate::common::{GateConfig, Upstream, WeChatDouble, assert_error};

async fn gate_with(session: &[(&str, &str)]) -> (WeChatDouble, Upstream, crate::common::Gate) {
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let mut config = GateConfig::new(&wechat, &upstream);
    for (k, v) in session {
        config.set("session", k, v);
    }
    let gate = config.start().await;
    (wechat, upstream, gate)
}

async fn status(gate: &crate::common::Gate, id: &str) -> u16 {
    gate.get("/x", id).send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_end_at_their_absolute_ttl_even_when_active() {
    let (_w, _u, gate) = gate_with(&[("ttl", "\"2s\""), ("idle", "\"1s\"")]).await;
    let id = gate.login("uma").await;
    assert_eq!(status(&gate, &id).await, 200);
    // Keep it busy (well inside the idle window) past the absolute TTL.
    for _ in 0..12 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        status(&gate, &id).await;
    }
    assert_error(
        gate.get("/x", &id).send().await.unwrap(),
        401,
        "session_invalid",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_timeout_slides_with_use_and_ends_unused_sessions() {
    let (_w, _u, gate) = gate_with(&[("ttl", "\"1h\""), ("idle", "\"1500ms\"")]).await;
    let id = gate.login("victor").await;
    // Used every 300 ms for 3 s: twice the idle window, still alive.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(status(&gate, &id).await, 200);
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(status(&gate, &id).await, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_idle_a_session_lives_its_ttl() {
    let (_w, _u, gate) = gate_with(&[("ttl", "\"3s\"")]).await;
    let id = gate.login("wendy").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(status(&gate, &id).await, 200);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(status(&gate, &id).await, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_ends_only_that_session_and_is_idempotent() {
    let (_w, _u, gate) = gate_with(&[]).await;
    let phone = gate.login("xavier").await;
    let laptop = gate.login("slow:1:xavier").await;
    assert_ne!(phone, laptop);
    let logout = || {
        gate.http
            .post(gate.url("/logout"))
            .header("x-session-id", &phone)
    };
    assert_eq!(logout().send().await.unwrap().status(), 204);
    assert_eq!(status(&gate, &phone).await, 401);
    assert_eq!(
        status(&gate, &laptop).await,
        200,
        "the user's other session lives on"
    );
    assert_eq!(logout().send().await.unwrap().status(), 204);
    assert_eq!(
        gate.http
            .post(gate.url("/logout"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    let get = gate.http.get(gate.url("/logout")).send().await.unwrap();
    assert_error(get, 405, "method_not_allowed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_sessions_all_resolve_to_the_same_identity() {
    let (_w, _u, gate) = gate_with(&[]).await;
    let first = gate.login("yara").await;
    let second = gate.login("union:yara").await;
    for id in [&first, &second] {
        let echo = crate::common::json(gate.get("/x", id)).await;
        assert_eq!(header_values(&echo, "x-wx-openid"), [openid_of("yara")]);
        // The newest login brought a unionid; the older session sees it too.
        assert_eq!(header_values(&echo, "x-wx-unionid"), ["u_yara"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_answer_on_the_admin_port_and_the_proxy_port_forwards_those_paths() {
    let (_w, upstream, gate) = gate_with(&[]).await;
    for path in ["/healthz", "/readyz"] {
        let probe = gate.http.get(gate.admin_url(path)).send().await.unwrap();
        assert_eq!(probe.status(), 200, "{path} on the admin port");
        // The backend's own /healthz: wxgate's rules apply (a session), then it is forwarded.
        crate::common::assert_error(
            gate.http.get(gate.url(path)).send().await.unwrap(),
            401,
            "session_invalid",
        )
        .await;
    }
    let id = gate.login("hana").await;
    let echo = crate::common::json(gate.get("/healthz", &id)).await;
    assert_eq!(echo["uri"], "/healthz");
    assert_eq!(upstream.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backends_own_paths_reach_it_and_wxgate_keeps_only_its_prefix() {
    let (_w, upstream, gate) = gate_with(&[]).await;
    let id = gate.login("ines").await;
    // Paths a legacy backend may already serve, which wxgate once claimed.
    for path in ["/auth/profile", "/auth", "/decrypt", "/phone", "/session"] {
        let echo = crate::common::json(gate.get(path, &id)).await;
        assert_eq!(echo["uri"], path);
    }
    assert_eq!(upstream.hits(), 5);
    // wxgate's own routes answer under the prefix...
    let check = gate.get("/_wxgate/auth", &id).send().await.unwrap();
    assert_eq!(check.status(), 200);
    assert_eq!(check.headers()["x-wx-openid"], openid_of("ines").as_str());
    // ...and nothing else under it is forwarded.
    for path in ["/_wxgate/", "/_wxgate/users", "/_wxgate/decrypt/x"] {
        crate::common::assert_error(gate.get(path, &id).send().await.unwrap(), 404, "not_found")
            .await;
    }
    assert_eq!(upstream.hits(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_prefix_moves_every_route_under_it() {
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let mut config = GateConfig::new(&wechat, &upstream);
    config.set("routes", "prefix", "\"/gw\"");
    let gate = config.start().await;
    let id = gate.login("jon").await;
    let check = gate.get("/gw/auth/orders", &id).send().await.unwrap();
    assert_eq!(check.status(), 200);
    let echo = crate::common::json(gate.get("/_wxgate/auth", &id)).await;
    assert_eq!(echo["uri"], "/_wxgate/auth", "no longer reserved");
}
