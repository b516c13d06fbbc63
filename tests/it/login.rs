//! `POST /login` against the WeChat test double: success, every documented
//! error code, broken and slow answers, bad bodies, one call per code.

use std::time::Duration;

use crate::common::upstream::header_values;
use crate::common::wechat::{openid_of, unionid_of};
use crate::common::{APPID, GateConfig, SECRET, Upstream, WeChatDouble, assert_error};

async fn setup() -> (WeChatDouble, Upstream, crate::common::Gate) {
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let gate = GateConfig::new(&wechat, &upstream).start().await;
    (wechat, upstream, gate)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_returns_a_session_and_never_the_session_key() {
    let (wechat, _upstream, gate) = setup().await;
    let response = gate.post_login(r#"{"code":"alice"}"#).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    let id = body["session_id"].as_str().unwrap();
    assert_eq!(id.len(), 43);
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    assert_eq!(body["expires_in"], 7 * 24 * 3600);
    assert!(
        !text.contains(&wechat.current_key("alice")) && !text.contains(SECRET),
        "{text}"
    );
    assert_eq!(body.as_object().unwrap().len(), 2, "{text}");

    let echo = crate::common::json(gate.get("/me", id)).await;
    assert_eq!(header_values(&echo, "x-wx-openid"), [openid_of("alice")]);
    assert_eq!(header_values(&echo, "x-wx-appid"), [APPID]);
    assert!(
        header_values(&echo, "x-wx-unionid").is_empty(),
        "no unionid from WeChat, none sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unionid_is_injected_when_wechat_gives_one() {
    let (_wechat, _upstream, gate) = setup().await;
    let id = gate.login("union:bob").await;
    let echo = crate::common::json(gate.get("/me", &id)).await;
    assert_eq!(header_values(&echo, "x-wx-openid"), [openid_of("bob")]);
    assert_eq!(header_values(&echo, "x-wx-unionid"), [unionid_of("bob")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_wechat_answer_maps_to_its_documented_error() {
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let mut config = GateConfig::new(&wechat, &upstream);
    config.set("wechat", "timeout", "\"400ms\"");
    let gate = config.start().await;
    let long = format!("rawid:{}", "o".repeat(129));
    let cases: [(&str, u16, &str, Option<i64>); 15] = [
        ("err:40029", 400, "code_invalid", Some(40029)),
        ("err:40163", 400, "code_used", Some(40163)),
        ("err:-1", 503, "wechat_busy", Some(-1)),
        ("err:45011", 429, "wechat_rate_limited", Some(45011)),
        ("err:40226", 403, "user_high_risk", Some(40226)),
        ("err:61234", 502, "wechat_error", Some(61234)),
        ("html", 502, "wechat_unavailable", None),
        ("http500", 502, "wechat_unavailable", None),
        ("garbage", 502, "wechat_unavailable", None),
        ("nokey:carol", 502, "wechat_unavailable", None),
        // Ids outside [A-Za-z0-9_-]{1,128}: `:` would collide with the
        // per-app record key.
        ("rawid:wxother:o_x", 502, "wechat_error", None),
        ("rawid:o x", 502, "wechat_error", None),
        (&long, 502, "wechat_error", None),
        ("rawunion:u:1", 502, "wechat_error", None),
        ("slow:3000:dave", 504, "wechat_timeout", None),
    ];
    for (code, status, name, errcode) in cases {
        let response = gate.post_login(&format!(r#"{{"code":"{code}"}}"#)).await;
        let retry_after = response.headers().get("retry-after").is_some();
        let body = assert_error(response, status, name).await;
        assert_eq!(body["errcode"].as_i64(), errcode, "{code}: {body}");
        assert_eq!(
            retry_after,
            matches!(status, 503 | 429),
            "{code}: Retry-After"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_an_operator_error() {
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    for (key, value, errcode) in [
        ("secret", "\"wrong\"", 40125),
        ("appid", "\"wxwrongappid\"", 40013),
    ] {
        let mut config = GateConfig::new(&wechat, &upstream);
        config.set("wechat", key, value);
        let gate = config.start().await;
        let body = assert_error(
            gate.post_login(r#"{"code":"erin"}"#).await,
            502,
            "wechat_misconfigured",
        )
        .await;
        assert_eq!(body["errcode"], errcode);
        assert!(!body.to_string().contains("wrong"), "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_wechat_is_502() {
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let mut config = GateConfig::new(&wechat, &upstream);
    config.set(
        "wechat",
        "api_base",
        &format!("\"http://{}\"", crate::common::closed_port().await),
    );
    let gate = config.start().await;
    let body = assert_error(
        gate.post_login(r#"{"code":"frank"}"#).await,
        502,
        "wechat_unavailable",
    )
    .await;
    assert!(!body.to_string().contains(SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_login_bodies_are_400_and_never_reach_wechat() {
    let (wechat, _upstream, gate) = setup().await;
    let long = format!(r#"{{"code":"{}"}}"#, "a".repeat(1025));
    for body in [
        "",
        "code=abc",
        "{",
        "[]",
        "{}",
        r#"{"code":null}"#,
        r#"{"code":""}"#,
        r#"{"code":7}"#,
        &long,
    ] {
        assert_error(gate.post_login(body).await, 400, "bad_request").await;
    }
    assert_eq!(wechat.total_calls(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_413_declared_or_streamed() {
    let (wechat, _upstream, gate) = setup().await;
    let big = format!(r#"{{"code":"x","pad":"{}"}}"#, "p".repeat(17 * 1024));
    assert_error(gate.post_login(&big).await, 413, "payload_too_large").await;
    // Chunked, no Content-Length: cut off as it passes the limit.
    let chunks = futures_util::stream::iter(
        (0..40).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b' '; 1024]))),
    );
    let response = gate
        .http
        .post(gate.url("/login"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_error(response, 413, "payload_too_large").await;
    assert_eq!(wechat.total_calls(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_code_and_body_limits_hold_at_their_exact_boundaries() {
    let (wechat, _upstream, gate) = setup().await;
    // A code of 1 KiB is read and goes to WeChat (whose double makes an
    // openid too long to accept of it: 502); one byte more never does.
    let at = format!(r#"{{"code":"{}"}}"#, "c".repeat(1024));
    assert_ne!(gate.post_login(&at).await.status(), 400);
    assert_eq!(wechat.total_calls(), 1);
    let over = format!(r#"{{"code":"{}"}}"#, "d".repeat(1025));
    assert_error(gate.post_login(&over).await, 400, "bad_request").await;
    assert_eq!(wechat.total_calls(), 1);
    // A body of exactly 16 KiB is read; 16 KiB + 1 is refused unread.
    let body_of = |len: usize| {
        let head = r#"{"code":"limit","pad":""#;
        let tail = r#""}"#;
        format!("{head}{}{tail}", "p".repeat(len - head.len() - tail.len()))
    };
    assert_eq!(gate.post_login(&body_of(16 * 1024)).await.status(), 200);
    assert_error(
        gate.post_login(&body_of(16 * 1024 + 1)).await,
        413,
        "payload_too_large",
    )
    .await;
    assert_eq!(wechat.total_calls(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_accepts_only_post() {
    let (_wechat, _upstream, gate) = setup().await;
    let response = gate.http.get(gate.url("/login")).send().await.unwrap();
    assert_eq!(response.headers()["allow"], "POST");
    assert_error(response, 405, "method_not_allowed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_works_once() {
    let (wechat, _upstream, gate) = setup().await;
    gate.login("grace").await;
    // Not concurrent: the replay goes to WeChat, which refuses it.
    assert_error(
        gate.post_login(r#"{"code":"grace"}"#).await,
        400,
        "code_used",
    )
    .await;
    assert_eq!(wechat.calls("grace"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_logins_with_one_code_share_one_call_and_one_session() {
    let (wechat, _upstream, gate) = setup().await;
    let code = "slow:400:heidi";
    let logins = (0..10).map(|_| gate.login(code));
    let ids = futures_util::future::join_all(logins).await;
    assert_eq!(wechat.calls(code), 1);
    assert!(ids.iter().all(|id| id == &ids[0]), "{ids:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_not_shared_after_they_complete() {
    let (wechat, _upstream, gate) = setup().await;
    for _ in 0..2 {
        assert_error(
            gate.post_login(r#"{"code":"err:-1"}"#).await,
            503,
            "wechat_busy",
        )
        .await;
    }
    assert_eq!(wechat.calls("err:-1"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_users_never_cross_identities() {
    let (_wechat, _upstream, gate) = setup().await;
    let users: Vec<String> = (0..64).map(|i| format!("user{i}")).collect();
    let ids = futures_util::future::join_all(users.iter().map(|u| gate.login(u))).await;
    let checks = users.iter().zip(&ids).map(|(user, id)| {
        let gate = &gate;
        async move {
            for _ in 0..3 {
                let echo = crate::common::json(gate.get("/whoami", id)).await;
                assert_eq!(header_values(&echo, "x-wx-openid"), [openid_of(user)]);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    });
    futures_util::future::join_all(checks).await;
}
