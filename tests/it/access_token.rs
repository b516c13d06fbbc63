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

/// A gate whose start-up check got a token of one second: due (past
/// half its life) once the returned future has slept 600 ms, which no
/// scheduling can shorten; WeChat's answers are 7200 s from then on.
async fn gate_with_a_due_token(wechat: &WeChatDouble) -> crate::common::Gate {
    wechat.token_lifetime(1);
    let gate = gate(wechat).await;
    assert_eq!(wechat.token_calls(), (1, 0));
    wechat.token_lifetime(7200);
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    gate
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_token_is_fetched_once_for_two_hundred_callers_before_it_is_handed_out() {
    let wechat = WeChatDouble::start().await;
    let gate = gate_with_a_due_token(&wechat).await;
    wechat.slow_tokens(std::time::Duration::from_millis(300));
    let ask = || json(gate.http.get(token_url(&gate, "")).bearer_auth(ADMIN_TOKEN));
    let answers = futures_util::future::join_all((0..200).map(|_| ask())).await;
    // One fetch, and nobody handed the token of 0.4 s left.
    assert_eq!(wechat.token_calls(), (2, 0));
    for answer in &answers {
        assert!(answer["expires_in"].as_u64().unwrap() > 7000, "{answer}");
    }
    let calls =
        r#"wxgate_wechat_api_calls_total{app="wxtestappid0001",api="stable_token",result="ok"}"#;
    let fetched = r#"wxgate_wechat_tokens_fetched_total{app="wxtestappid0001",token="access_token",forced="false"}"#;
    let metrics = gate.metrics().await;
    assert_eq!(crate::common::metric(&metrics, calls), 2.0);
    assert_eq!(crate::common::metric(&metrics, fetched), 2.0);
    gate.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_used_up_quota_is_a_429_once_no_valid_token_is_left() {
    let wechat = WeChatDouble::start().await;
    let gate = gate_with_a_due_token(&wechat).await;
    wechat.exhaust_quota(true);
    // Due but still valid: it serves while WeChat refuses a new one.
    let still = json(gate.http.get(token_url(&gate, "")).bearer_auth(ADMIN_TOKEN)).await;
    assert_eq!(still["access_token"], "token-1", "{still}");
    assert!(still["expires_in"].as_u64().unwrap() <= 1, "{still}");
    // Past its end: nothing to hand out, and WeChat's reason is named.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let refused = gate
        .http
        .get(token_url(&gate, ""))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.headers()["retry-after"], "1");
    assert_error(refused, 429, "wechat_quota_exhausted").await;
    let olga = gate.login("olga").await;
    assert_error(
        gate.post_phone(&olga, "phone:13800000000").await,
        429,
        "wechat_quota_exhausted",
    )
    .await;
    let refusals =
        r#"wxgate_wechat_api_calls_total{app="wxtestappid0001",api="stable_token",result="45009"}"#;
    let counted = crate::common::metric(&gate.metrics().await, refusals);
    assert_eq!(counted as usize, wechat.token_calls().0 - 1);
    // The quota reset: served again.
    wechat.exhaust_quota(false);
    assert_eq!(
        gate.post_phone(&olga, "phone:13800000000").await.status(),
        200
    );
    gate.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_never_reaches_a_log_line() {
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let mut config = GateConfig::new(&wechat, &upstream);
    config.set("log", "level", "\"debug\"");
    let process =
        crate::common::process::Process::start(&config, &[("WXGATE_ADMIN_TOKEN", ADMIN_TOKEN)]);
    process.until_ready().await;
    let http = reqwest::Client::new();
    let url = process.admin_url(&format!("/apps/{APPID}/access_token"));
    let token = json(http.get(&url).bearer_auth(ADMIN_TOKEN)).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // Replaced behind wxgate's back (40001 on its own call), then reported
    // rejected by a backend (a forced refresh), all logged at debug level.
    let login: serde_json::Value =
        json(http.post(process.url("/login")).body(r#"{"code":"olga"}"#)).await;
    let session = login["session_id"].as_str().unwrap();
    wechat.revoke_token();
    let phone = http
        .post(process.url("/_wxgate/phone"))
        .header("x-session-id", session)
        .json(&serde_json::json!({"code": "phone:13800000000"}))
        .send()
        .await
        .unwrap();
    assert_eq!(phone.status(), 200);
    let current = json(http.get(&url).bearer_auth(ADMIN_TOKEN)).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let report = http
        .post(format!("{url}/invalidate"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({ "access_token": current }));
    assert_eq!(json(report).await["refreshed"], true);
    let newest = json(http.get(&url).bearer_auth(ADMIN_TOKEN)).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let logs = process.logs();
    assert!(logs.contains("forcing a refresh"), "{logs}");
    for secret in [token.as_str(), &current, &newest, crate::common::SECRET] {
        assert!(!logs.contains(secret), "{secret} logged:\n{logs}");
    }
}
