//! User binding against a real endpoint double: bound once per user, the
//! bound id on every session and in both stores, forged ids stripped, and
//! every way the endpoint can fail, with `required` on and off.

use std::time::Duration;

use crate::common::binding::{BindingDouble, Mode, account_of};
use crate::common::redis::RedisServer;
use crate::common::upstream::header_values;
use crate::common::wechat::openid_of;
use crate::common::{Gate, GateConfig, Upstream, WeChatDouble, assert_error, metric};
use serde_json::json;

struct Setup {
    wechat: WeChatDouble,
    upstream: Upstream,
    binding: BindingDouble,
}

impl Setup {
    async fn new() -> Self {
        Self {
            wechat: WeChatDouble::start().await,
            upstream: Upstream::start().await,
            binding: BindingDouble::start().await,
        }
    }

    fn config(&self, required: bool) -> GateConfig {
        let mut config = GateConfig::new(&self.wechat, &self.upstream);
        config
            .set("binding", "url", &format!("\"{}\"", self.binding.url()))
            .set("binding", "timeout", "\"500ms\"")
            .set("binding", "required", &required.to_string())
            .env("WXGATE_BINDING_TOKEN", "binding-token-1234");
        config
    }
}

async fn user_ids(gate: &Gate, session: &str) -> Vec<String> {
    let echo = crate::common::json(gate.get("/x", session)).await;
    header_values(&echo, "x-user-id")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_logins_of_one_user_bind_once_and_every_session_carries_the_id_memory_and_redis()
{
    for redis in [false, true] {
        let setup = Setup::new().await;
        let server = redis.then(RedisServer::start);
        let mut config = setup.config(true);
        if let Some(server) = &server {
            config.redis(&server.url());
        }
        let gate = config.start().await;
        gate.until_ready().await;
        setup.binding.set_delay(Duration::from_millis(300));
        // Eight logins of the same user (distinct codes), all at once.
        let logins = (0..8).map(|i| gate.login_code(format!("slow:{i}:kim")));
        let sessions = futures_util::future::join_all(logins).await;
        assert_eq!(setup.binding.calls().len(), 1, "redis={redis}: bound once");
        let (auth, body) = &setup.binding.calls()[0];
        assert_eq!(auth.as_deref(), Some("Bearer binding-token-1234"));
        assert_eq!(
            *body,
            json!({"appid": crate::common::APPID, "openid": openid_of("kim"), "unionid": null, "phone": null})
        );
        for session in &sessions {
            assert_eq!(
                user_ids(&gate, session).await,
                [account_of(&openid_of("kim"))]
            );
        }
        // A later login finds the user bound: no call.
        let later = gate.login("kim").await;
        assert_eq!(
            user_ids(&gate, &later).await,
            [account_of(&openid_of("kim"))]
        );
        assert_eq!(setup.binding.calls().len(), 1, "redis={redis}");
        assert_eq!(
            metric(
                &gate.metrics().await,
                r#"wxgate_binding_requests_total{result="bound"}"#
            ),
            1.0
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_user_id_never_reaches_the_backend() {
    let setup = Setup::new().await;
    let gate = setup.config(false).start().await;
    let bound = gate.login("lou").await;
    setup.binding.set_mode(Mode::NotFound);
    let unbound = gate.login("max").await;
    for name in [
        "X-User-Id",
        "x_user_id",
        "X.User.Id",
        "XUSERID",
        "x-user_id",
    ] {
        let forged = |session: &str| gate.get("/x", session).header(name, "admin");
        let echo = crate::common::json(forged(&bound)).await;
        assert_eq!(
            header_values(&echo, "x-user-id"),
            [account_of(&openid_of("lou"))],
            "{name}"
        );
        let echo = crate::common::json(forged(&unbound)).await;
        let all = echo["headers"].as_array().unwrap();
        assert!(
            !all.iter().any(|h| h[1] == "admin"),
            "{name} passed for an unbound user: {echo}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_binding_is_required_a_failing_endpoint_hands_out_no_session() {
    let setup = Setup::new().await;
    let gate = setup.config(true).start().await;
    for (mode, user) in [
        (Mode::Error, "nia"),
        (Mode::Garbage, "ole"),
        (Mode::Slow, "pam"),
        // A 3xx is a failure, never followed with the user's identity.
        (Mode::Redirect, "rory"),
    ] {
        setup.binding.set_mode(mode);
        let body = assert_error(
            gate.post_login(&format!(r#"{{"code":"{user}"}}"#)).await,
            503,
            "binding_unavailable",
        )
        .await;
        assert!(body.get("session_id").is_none(), "{mode:?}");
    }
    setup.binding.set_mode(Mode::NotFound);
    assert_error(
        gate.post_login(r#"{"code":"quin"}"#).await,
        403,
        "user_not_bound",
    )
    .await;
    // Back up: the next login binds and works.
    setup.binding.set_mode(Mode::Bind);
    let id = gate.login("slow:1:nia").await;
    assert_eq!(user_ids(&gate, &id).await, [account_of(&openid_of("nia"))]);
    let metrics = gate.metrics().await;
    for (result, n) in [
        // The 500 and the 307.
        ("error", 2.0),
        ("bad_response", 1.0),
        ("timeout", 1.0),
        ("not_found", 1.0),
    ] {
        let series = format!(r#"wxgate_binding_requests_total{{result="{result}"}}"#);
        assert_eq!(metric(&metrics, &series), n, "{result}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_endpoint_is_503_when_required() {
    let setup = Setup::new().await;
    let mut config = setup.config(true);
    let closed = crate::common::closed_port().await;
    config.set("binding", "url", &format!("\"http://{closed}/bind\""));
    let gate = config.start().await;
    let response = gate.post_login(r#"{"code":"rae"}"#).await;
    // A 503 says when to come back (docs/endpoints.md).
    assert_eq!(response.headers()["retry-after"], "1");
    assert_error(response, 503, "binding_unavailable").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_binding_is_optional_a_failure_logs_in_unbound_and_the_next_login_retries() {
    let setup = Setup::new().await;
    let gate = setup.config(false).start().await;
    setup.binding.set_mode(Mode::Error);
    let first = gate.login("sol").await;
    assert!(user_ids(&gate, &first).await.is_empty());
    setup.binding.set_mode(Mode::NotFound);
    let second = gate.login("slow:1:sol").await;
    assert!(user_ids(&gate, &second).await.is_empty());
    setup.binding.set_mode(Mode::Bind);
    let third = gate.login("slow:2:sol").await;
    assert_eq!(
        setup.binding.calls().len(),
        3,
        "asked at each login while unbound"
    );
    // Bound now, for every session of the user, the older ones too.
    for id in [&first, &second, &third] {
        assert_eq!(user_ids(&gate, id).await, [account_of(&openid_of("sol"))]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_number_learned_later_asks_again_and_may_rebind() {
    let setup = Setup::new().await;
    let gate = setup.config(false).start().await;
    let id = gate.login("tia").await;
    assert_eq!(user_ids(&gate, &id).await, [account_of(&openid_of("tia"))]);
    let phone = gate.post_phone(&id, "phone:13912345678").await;
    assert_eq!(phone.status(), 200);
    let calls = setup.binding.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1].1["phone"], "13912345678");
    assert_eq!(user_ids(&gate, &id).await, ["acct-phone-13912345678"]);
    // The same number again is nothing new: no call.
    let again = gate.post_phone(&id, "phone:13912345678").await;
    assert_eq!(again.status(), 200);
    assert_eq!(setup.binding.calls().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renamed_identity_headers_carry_the_identity_and_the_defaults_stay_stripped() {
    let setup = Setup::new().await;
    let mut config = setup.config(true);
    config
        .set("headers", "openid", "\"X-Open\"")
        .set("headers", "unionid", "\"X-Union\"")
        .set("headers", "appid", "\"X-App\"")
        .set("headers", "user_id", "\"X-Member\"");
    let gate = config.start().await;
    let id = gate.login("union:ren").await;
    let echo = crate::common::json(
        gate.get("/x", &id)
            .header("x-wx-openid", "forged")
            .header("x-user-id", "forged")
            .header("x_member", "forged")
            .header("x-union", "forged"),
    )
    .await;
    assert_eq!(header_values(&echo, "x-open"), [openid_of("ren")]);
    assert_eq!(
        header_values(&echo, "x-union"),
        [crate::common::wechat::unionid_of("ren")]
    );
    assert_eq!(header_values(&echo, "x-app"), [crate::common::APPID]);
    // The double binds a user with a unionid by it.
    let unionid = crate::common::wechat::unionid_of("ren");
    assert_eq!(
        header_values(&echo, "x-member"),
        [format!("acct-union-{unionid}")]
    );
    // The default names a backend may still read: stripped, never set.
    for default in [
        "x-wx-openid",
        "x-wx-unionid",
        "x-wx-appid",
        "x-user-id",
        "x_member",
    ] {
        assert!(
            header_values(&echo, default).is_empty(),
            "{default}: {echo}"
        );
    }
    assert!(!echo.to_string().contains("forged"), "{echo}");
}
