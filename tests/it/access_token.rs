//! The app's access token for backends (中控), on the admin port: the one
//! wxgate's own calls use, behind the admin token; a token reported
//! rejected is force-refreshed once, however many backends report it.

use crate::common::{APPID, GateConfig, Upstream, WeChatDouble, assert_error, json};

const ADMIN_TOKEN: &str = "an-admin-token-of-32-characters!";

async fn gate(wechat: &WeChatDouble) -> crate::common::Gate {
    let upstream = Upstream::start().await;
    let mut config = GateConfig::new(wechat, &upstream);
    config.env("WXGATE_ADMIN_TOKEN", ADMIN_TOKEN);
    config.start().await
}

fn token_url(gate: &crate::common::Gate, action: &str) -> String {
    gate.admin_url(&format!("/apps/{APPID}/access_token{action}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_gets_the_token_wxgate_uses_behind_the_admin_token() {
    let wechat = WeChatDouble::start().await;
    let gate = gate(&wechat).await;
    let anonymous = gate.http.get(token_url(&gate, "")).send().await.unwrap();
    assert_error(anonymous, 401, "admin_unauthorized").await;
    let get = || gate.http.get(token_url(&gate, "")).bearer_auth(ADMIN_TOKEN);
    let first = json(get()).await;
    let token = first["access_token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("token-"), "{first}");
    let left = first["expires_in"].as_u64().unwrap();
    assert!((7000..=7200).contains(&left), "{first}");
    let calls = wechat.token_calls();
    // The same token again, and for wxgate's own calls: no second fetch.
    assert_eq!(json(get()).await["access_token"], token.as_str());
    let olga = gate.login("olga").await;
    assert_eq!(
        gate.post_phone(&olga, "phone:13800000000").await.status(),
        200
    );
    assert_eq!(wechat.token_calls(), calls);
    // Another AppID, another method, a bad body.
    let unknown = gate
        .http
        .get(gate.admin_url("/apps/wxnope/access_token"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_error(unknown, 400, "unknown_app").await;
    let post = gate
        .http
        .post(token_url(&gate, ""))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_error(post, 405, "method_not_allowed").await;
    let bad = gate
        .http
        .post(token_url(&gate, "/invalidate"))
        .bearer_auth(ADMIN_TOKEN)
        .body(r#"{"token": "x"}"#)
        .send()
        .await
        .unwrap();
    assert_error(bad, 400, "bad_request").await;
    gate.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_reports_of_one_rejected_token_force_one_refresh() {
    let wechat = WeChatDouble::start().await;
    let gate = gate(&wechat).await;
    let get = || gate.http.get(token_url(&gate, "")).bearer_auth(ADMIN_TOKEN);
    let rejected = json(get()).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, forced) = wechat.token_calls();
    let report = |token: String| {
        let request = gate
            .http
            .post(token_url(&gate, "/invalidate"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&serde_json::json!({ "access_token": token }));
        async move { json(request).await["refreshed"] == true }
    };
    let reports = futures_util::future::join_all((0..50).map(|_| report(rejected.clone()))).await;
    assert_eq!(reports.iter().filter(|r| **r).count(), 1, "{reports:?}");
    assert_eq!(wechat.token_calls().1, forced + 1);
    let replaced = json(get()).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(replaced, rejected);
    // A report of the token replaced already changes nothing.
    assert!(!report(rejected).await);
    assert_eq!(wechat.token_calls().1, forced + 1);
    assert_eq!(json(get()).await["access_token"], replaced.as_str());
    gate.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_mode_hands_out_a_made_up_token() {
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let mut config = GateConfig::new(&wechat, &upstream);
    config.set("wechat", "mode", "\"mock\"");
    let gate = config.start().await;
    // A loopback admin port without admin.token answers operator actions.
    let answer = json(gate.http.get(token_url(&gate, ""))).await;
    assert_eq!(answer["access_token"], format!("mock-access-token-{APPID}"));
    assert_eq!(wechat.token_calls(), (0, 0));
    gate.stop().await;
}
