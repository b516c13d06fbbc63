//! Session lifetime: absolute TTL, sliding idle timeout, logout, re-login.
//! Timings leave wide margins (a loaded 2-core machine must not flake).

mod common;

use std::time::Duration;

use common::upstream::header_values;
use common::wechat::openid_of;
use common::{GateConfig, Upstream, WeChatDouble, assert_error};

async fn gate_with(session: &[(&str, &str)]) -> (WeChatDouble, Upstream, common::Gate) {
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let mut config = GateConfig::new(&wechat, &upstream);
    for (k, v) in session {
        config.set("session", k, v);
    }
    let gate = config.start().await;
    (wechat, upstream, gate)
}

async fn status(gate: &common::Gate, id: &str) -> u16 {
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
        let echo = common::json(gate.get("/x", id)).await;
        assert_eq!(header_values(&echo, "x-wx-openid"), [openid_of("yara")]);
        // The newest login brought a unionid; the older session sees it too.
        assert_eq!(header_values(&echo, "x-wx-unionid"), ["u_yara"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness_probes_answer() {
    let (_w, _u, gate) = gate_with(&[]).await;
    let health = gate.http.get(gate.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = gate.http.get(gate.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
}
