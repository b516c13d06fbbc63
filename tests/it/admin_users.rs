//! Operator actions on the admin port: a user's record without secrets,
//! and "log this user out everywhere", guarded by the admin token.

use crate::common::wechat::openid_of;
use crate::common::{Gate, GateConfig, Upstream, WeChatDouble, assert_error};

const TOKEN: &str = "an-admin-token-long-enough";

async fn status(gate: &Gate, id: &str) -> u16 {
    gate.get("/x", id).send().await.unwrap().status().as_u16()
}

fn revoke(gate: &Gate, user: &str) -> reqwest::RequestBuilder {
    gate.http
        .post(gate.admin_url(&format!("/users/{}/logout", openid_of(user))))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_a_user_out_ends_every_session_and_the_next_login_works() {
    let (wechat, upstream) = (WeChatDouble::start().await, Upstream::start().await);
    let gate = GateConfig::new(&wechat, &upstream).start().await;
    // Codes are single-use; these three are all the user kai.
    let (first, second) = (gate.login("kai").await, gate.login("slow:1:kai").await);
    let other = gate.login("lena").await;

    let answer = crate::common::json(revoke(&gate, "kai")).await;
    assert_eq!(answer, serde_json::json!({"revoked": true, "known": true}));
    for id in [&first, &second] {
        assert_eq!(status(&gate, id).await, 401);
    }
    assert_eq!(
        status(&gate, &other).await,
        200,
        "another user is untouched"
    );
    let again = gate.login("slow:2:kai").await;
    assert_eq!(status(&gate, &again).await, 200);
    assert_eq!(status(&gate, &first).await, 401, "revoked stays revoked");

    let unknown = crate::common::json(revoke(&gate, "nobody")).await;
    assert_eq!(unknown["known"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_record_is_shown_without_its_secrets() {
    let (wechat, upstream) = (WeChatDouble::start().await, Upstream::start().await);
    let gate = GateConfig::new(&wechat, &upstream).start().await;
    let id = gate.login("mona").await;
    let url = gate.admin_url(&format!("/users/{}", openid_of("mona")));
    let response = gate.http.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(!text.contains(&wechat.current_key("mona")), "{text}");
    assert!(!text.contains(&id), "{text}");
    let shown: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(shown["openid"], openid_of("mona"));
    assert_eq!(shown["user_id"], serde_json::Value::Null);
    assert_eq!(shown["phone"], false);
    assert_eq!(shown["key_stale"], false);
    assert!(
        shown["last_login"].as_str().unwrap().ends_with('Z'),
        "{shown}"
    );

    let missing = gate.admin_url("/users/o_nobody");
    assert_error(
        gate.http.get(&missing).send().await.unwrap(),
        404,
        "not_found",
    )
    .await;
    let bad = gate.admin_url("/users/o%2Fx");
    assert_error(
        gate.http.get(&bad).send().await.unwrap(),
        400,
        "bad_request",
    )
    .await;
    assert_error(
        gate.http.post(&url).send().await.unwrap(),
        405,
        "method_not_allowed",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_only_its_bearer_may_act() {
    let (wechat, upstream) = (WeChatDouble::start().await, Upstream::start().await);
    let mut config = GateConfig::new(&wechat, &upstream);
    config.env("WXGATE_ADMIN_TOKEN", TOKEN);
    let gate = config.start().await;
    let id = gate.login("nils").await;
    for auth in [None, Some("Bearer wrong-token-of-some-length"), Some(TOKEN)] {
        let mut request = revoke(&gate, "nils");
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        assert_error(request.send().await.unwrap(), 401, "admin_unauthorized").await;
    }
    assert_eq!(
        status(&gate, &id).await,
        200,
        "refused calls changed nothing"
    );
    let show = gate.admin_url(&format!("/users/{}", openid_of("nils")));
    assert_error(
        gate.http.get(&show).send().await.unwrap(),
        401,
        "admin_unauthorized",
    )
    .await;
    // Probes and metrics stay open.
    let ready = gate
        .http
        .get(gate.admin_url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);

    let done = revoke(&gate, "nils")
        .header("authorization", format!("Bearer {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    assert_eq!(status(&gate, &id).await, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_a_non_loopback_admin_port_refuses_user_actions() {
    let (wechat, upstream) = (WeChatDouble::start().await, Upstream::start().await);
    let mut config = GateConfig::new(&wechat, &upstream);
    config.set("admin", "listen", "\"0.0.0.0:0\"");
    let gate = config.start().await;
    let id = gate.login("olga").await;
    let url = format!(
        "http://127.0.0.1:{}/users/{}/logout",
        gate.admin.port(),
        openid_of("olga")
    );
    assert_error(
        gate.http.post(&url).send().await.unwrap(),
        403,
        "admin_token_required",
    )
    .await;
    assert_eq!(status(&gate, &id).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_port_has_no_user_actions() {
    let (wechat, upstream) = (WeChatDouble::start().await, Upstream::start().await);
    let gate = GateConfig::new(&wechat, &upstream).start().await;
    let id = gate.login("pia").await;
    // The backend's own path: forwarded like any other, never an action.
    let forwarded = gate
        .http
        .post(gate.url(&format!("/users/{}/logout", openid_of("pia"))))
        .header("x-session-id", &id)
        .send()
        .await
        .unwrap();
    assert_eq!(forwarded.status(), 200);
    assert_eq!(upstream.hits(), 1);
    assert_eq!(status(&gate, &id).await, 200);
}
