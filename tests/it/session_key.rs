//! What only the session_key can do, against the WeChat test double: key
//! rotation, /decrypt, login with data, phone numbers, access tokens and
//! the server-side session check.

use std::time::Duration;

use crate::common::upstream::header_values;
use crate::common::wechat::openid_of;
use crate::common::{APPID, Gate, GateConfig, IV, Upstream, WeChatDouble, assert_error, encrypt};
use serde_json::json;
use sha1::{Digest, Sha1};

fn profile(appid: &str) -> serde_json::Value {
    json!({"nickName": "Band", "gender": 1, "watermark": {"timestamp": 1477314187, "appid": appid}})
}

fn phone_payload(number: &str) -> serde_json::Value {
    json!({"phoneNumber": number, "purePhoneNumber": number, "countryCode": "86",
           "watermark": {"timestamp": 1477314187, "appid": APPID}})
}

async fn start(extra: &[(&str, &str, &str)]) -> (WeChatDouble, Upstream, Gate) {
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let mut config = GateConfig::new(&wechat, &upstream);
    for (table, key, value) in extra {
        config.set(table, key, value);
    }
    let gate = config.start().await;
    (wechat, upstream, gate)
}

async fn decrypt(gate: &Gate, session: &str, body: serde_json::Value) -> reqwest::Response {
    gate.post_decrypt(session, body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_session_decrypts_with_the_users_newest_key() {
    let (wechat, _u, gate) = start(&[]).await;
    let older = gate.login("kim").await;
    let old_key = wechat.current_key("kim");
    let newer = gate.login("slow:1:kim").await;
    let new_key = wechat.current_key("kim");
    assert_ne!(old_key, new_key, "the double rotates keys on login");

    let data = encrypt(&new_key, &profile(APPID));
    for session in [&older, &newer] {
        let response = decrypt(&gate, session, json!({"encryptedData": data, "iv": IV})).await;
        assert_eq!(response.status(), 200);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body, profile(APPID));
    }

    // Data made with the superseded key: the client must log in again.
    let stale = encrypt(&old_key, &profile(APPID));
    let body = assert_error(
        decrypt(&gate, &older, json!({"encryptedData": stale, "iv": IV})).await,
        409,
        "session_key_stale",
    )
    .await;
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("wx.login") && message.contains("again"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_watermarks_and_malformed_input_are_refused() {
    let (wechat, upstream, gate) = start(&[]).await;
    let id = gate.login("lee").await;
    let key = wechat.current_key("lee");
    let foreign = encrypt(&key, &profile("wxsomeoneelse"));
    assert_error(
        decrypt(&gate, &id, json!({"encryptedData": foreign, "iv": IV})).await,
        400,
        "watermark_mismatch",
    )
    .await;

    let good = encrypt(&key, &profile(APPID));
    let malformed = [
        json!({"encryptedData": "not base64!", "iv": IV}),
        json!({"encryptedData": good, "iv": "AAAA"}),
        json!({"encryptedData": good, "iv": "???"}),
        json!({"encryptedData": "AAAAAAAAAAAAAAAAAAAA", "iv": IV}),
        json!({"encryptedData": "", "iv": IV}),
        json!({"encryptedData": good}),
        json!({"encryptedData": 5, "iv": IV}),
        json!([good, IV]),
    ];
    for body in malformed {
        let response = decrypt(&gate, &id, body.clone()).await;
        assert_eq!(response.status(), 400, "{body}");
        assert_error(response, 400, "bad_request").await;
    }
    // Not JSON at all, and no session.
    let response = gate
        .http
        .post(gate.url("/_wxgate/decrypt"))
        .header("x-session-id", &id)
        .body("{")
        .send()
        .await;
    assert_error(response.unwrap(), 400, "bad_request").await;
    assert_error(
        decrypt(&gate, "nope", json!({"encryptedData": good, "iv": IV})).await,
        401,
        "session_invalid",
    )
    .await;
    let get = gate.get("/_wxgate/decrypt", &id).send().await.unwrap();
    assert_error(get, 405, "method_not_allowed").await;
    assert_eq!(
        upstream.hits(),
        0,
        "built-in routes never reach the upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_can_carry_encrypted_data_and_signed_profile() {
    let (wechat, _u, gate) = start(&[]).await;
    let key = wechat.next_key("max");
    let raw_data = r#"{"nickName":"Max"}"#;
    let signature: String = Sha1::new()
        .chain_update(raw_data)
        .chain_update(&key)
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let body = json!({
        "code": "max",
        "encryptedData": encrypt(&key, &profile(APPID)),
        "iv": IV,
        "rawData": raw_data,
        "signature": signature,
    });
    let response = gate.post_login(&body.to_string()).await;
    assert_eq!(response.status(), 200);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["data"], profile(APPID));
    let id = answer["session_id"].as_str().unwrap();
    assert_eq!(gate.get("/x", id).send().await.unwrap().status(), 200);

    // A wrong signature: refused, and no session is handed out.
    let key = wechat.next_key("ned");
    let body = json!({"code": "ned", "rawData": raw_data, "signature": "0".repeat(40)});
    assert_error(
        gate.post_login(&body.to_string()).await,
        400,
        "signature_mismatch",
    )
    .await;
    // Data made with an earlier key than this login's: stale.
    let body =
        json!({"code": "slow:1:ned", "encryptedData": encrypt(&key, &profile(APPID)), "iv": IV});
    let _ = wechat.next_key("ned");
    assert_error(
        gate.post_login(&body.to_string()).await,
        409,
        "session_key_stale",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_number_by_code_is_injected_only_when_configured() {
    for configured in [false, true] {
        let extra: &[(&str, &str, &str)] = if configured {
            &[("headers", "phone", "\"X-WX-Phone\"")]
        } else {
            &[]
        };
        let (_w, _u, gate) = start(extra).await;
        let id = gate.login("olive").await;
        let response = gate.post_phone(&id, "phone:13800138000").await;
        assert_eq!(response.status(), 200);
        let phone: serde_json::Value = response.json().await.unwrap();
        assert_eq!(phone["phoneNumber"], "13800138000");
        assert_eq!(phone["countryCode"], "86");

        let echo = crate::common::json(
            gate.get("/x", &id)
                .header("X-WX-Phone", "forged")
                .header("x_wx_phone", "forged"),
        )
        .await;
        let expected: &[&str] = if configured { &["13800138000"] } else { &[] };
        assert_eq!(header_values(&echo, "x-wx-phone"), expected);
        assert!(!echo.to_string().contains("forged"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_phone_decryption_is_kept_and_survives_relogin() {
    let (wechat, _u, gate) = start(&[("headers", "phone", "\"X-WX-Phone\"")]).await;
    let id = gate.login("pia").await;
    let data = encrypt(&wechat.current_key("pia"), &phone_payload("13911112222"));
    let response = decrypt(&gate, &id, json!({"encryptedData": data, "iv": IV})).await;
    assert_eq!(response.status(), 200);
    let newer = gate.login("slow:1:pia").await;
    for session in [&id, &newer] {
        let echo = crate::common::json(gate.get("/x", session)).await;
        assert_eq!(header_values(&echo, "x-wx-phone"), ["13911112222"]);
        assert_eq!(header_values(&echo, "x-wx-openid"), [openid_of("pia")]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_share_one_token_request() {
    let (wechat, _u, gate) = start(&[]).await;
    wechat.slow_tokens(Duration::from_millis(300));
    let id = gate.login("quin").await;
    // The start-up check fetched a token; replaced behind wxgate's back, it
    // is refused to all 16 callers at once (the double answers none of them
    // before all have asked with it), and they must share ONE fetch.
    assert_eq!(wechat.token_calls(), (1, 0));
    wechat.revoke_token();
    wechat.hold_phone_calls(16);
    let calls = (0..16).map(|i| {
        gate.http
            .post(gate.url("/_wxgate/phone"))
            .header("x-session-id", &id)
            .json(&json!({"code": format!("phone:1380000{i:04}")}))
            .send()
    });
    for response in futures_util::future::join_all(calls).await {
        assert_eq!(response.unwrap().status(), 200);
    }
    assert_eq!(wechat.token_calls(), (2, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_token_is_replaced_and_the_call_retried_once() {
    let (wechat, _u, gate) = start(&[]).await;
    let id = gate.login("rex").await;
    let phone = |n: &str| {
        gate.http
            .post(gate.url("/_wxgate/phone"))
            .header("x-session-id", &id)
            .json(&json!({"code": format!("phone:{n}")}))
            .send()
    };
    assert_eq!(phone("1").await.unwrap().status(), 200);
    assert_eq!(wechat.token_calls(), (1, 0));

    // Someone else replaced the token (40001): a normal refresh finds the new one.
    wechat.revoke_token();
    assert_eq!(phone("2").await.unwrap().status(), 200);
    assert_eq!(wechat.token_calls(), (2, 0));

    // The token reached its end at WeChat (42001): a normal refresh gets a new one.
    wechat.expire_token();
    assert_eq!(phone("3").await.unwrap().status(), 200);
    assert_eq!(wechat.token_calls(), (3, 0));

    // WeChat rejects the token it still hands out: a forced refresh.
    wechat.reject_tokens(1);
    assert_eq!(phone("4").await.unwrap().status(), 200);
    assert_eq!(wechat.token_calls(), (4, 1));

    // Again within 30 s: no second forced refresh, the error reaches the client.
    wechat.reject_tokens(2);
    let response = phone("5").await.unwrap();
    assert_error(response, 502, "wechat_misconfigured").await;
    assert_eq!(wechat.token_calls(), (5, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_errors_map_like_login_errors() {
    let (_w, _u, gate) = start(&[]).await;
    let id = gate.login("sam").await;
    for (code, status, name) in [
        ("err:40029", 400, "code_invalid"),
        ("err:-1", 503, "wechat_busy"),
        ("err:45011", 429, "wechat_rate_limited"),
        ("err:40164", 502, "wechat_misconfigured"),
    ] {
        let response = gate
            .http
            .post(gate.url("/_wxgate/phone"))
            .header("x-session-id", &id)
            .json(&json!({"code": code}))
            .send()
            .await
            .unwrap();
        assert_error(response, status, name).await;
    }
    for body in [json!({}), json!({"code": ""}), json!({"code": 1})] {
        let response = gate
            .http
            .post(gate.url("/_wxgate/phone"))
            .header("x-session-id", &id)
            .json(&body)
            .send()
            .await;
        assert_error(response.unwrap(), 400, "bad_request").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_check_reports_validity_and_marks_stale_keys() {
    let (wechat, _u, gate) = start(&[]).await;
    let id = gate.login("tia").await;
    let check = || async {
        let response = gate.get("/_wxgate/session", &id).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.json::<serde_json::Value>().await.unwrap()
    };
    let body = check().await;
    assert_eq!(body["valid"], true);
    assert_eq!(body["openid"], openid_of("tia"));
    let expires_in = body["expires_in"].as_u64().unwrap();
    assert!(
        expires_in > 7 * 24 * 3600 - 60 && expires_in <= 7 * 24 * 3600,
        "{body}"
    );

    // The user called wx.login somewhere wxgate never heard of: the key it
    // holds is no longer valid.
    let held = wechat.current_key("tia");
    wechat.rotate_key("tia");
    assert_eq!(check().await["valid"], false);
    // /decrypt now refuses at once, even data made with the key wxgate holds.
    let data = encrypt(&held, &profile(APPID));
    assert_error(
        decrypt(&gate, &id, json!({"encryptedData": data, "iv": IV})).await,
        409,
        "session_key_stale",
    )
    .await;

    // A new login brings a valid key and clears the mark for every session.
    gate.login("slow:1:tia").await;
    assert_eq!(check().await["valid"], true);
    let data = encrypt(&wechat.current_key("tia"), &profile(APPID));
    assert_eq!(
        decrypt(&gate, &id, json!({"encryptedData": data, "iv": IV}))
            .await
            .status(),
        200
    );
    assert_error(
        gate.get("/_wxgate/session", "nope").send().await.unwrap(),
        401,
        "session_invalid",
    )
    .await;
}
