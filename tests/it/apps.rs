//! One gateway, several mini-programs (`[wechat]` + `[[apps]]`), against a
//! WeChat test double that knows both apps, each with its own secret.
//! The double gives a user the same openid in every app (WeChat does not),
//! so a gateway that filed users by openid alone would fail these tests.

use crate::common::binding::BindingDouble;
use crate::common::redis::RedisServer;
use crate::common::upstream::header_values;
use crate::common::wechat::{openid_of, unionid_of};
use crate::common::{APPID, Gate, GateConfig, Upstream, WeChatDouble, assert_error, metric};
use serde_json::json;

const SHOP: &str = "wxshopapp000002";
const SHOP_SECRET: &str = "shop-app-secret";

struct Setup {
    wechat: WeChatDouble,
    upstream: Upstream,
}

impl Setup {
    async fn new() -> Self {
        let wechat = WeChatDouble::start().await;
        wechat.add_app(SHOP, SHOP_SECRET);
        Self {
            wechat,
            upstream: Upstream::start().await,
        }
    }

    /// The double's default app in `[wechat]`, the shop in `[[apps]]`.
    fn config(&self) -> GateConfig {
        let mut config = GateConfig::new(&self.wechat, &self.upstream);
        config
            .append(&format!(
                "[[apps]]\nappid = \"{SHOP}\"\nsecret_env = \"WXGATE_SECRET_SHOP\"\n\
                 api_base = \"http://{}\"\ntimeout = \"2s\"\n",
                self.wechat.addr
            ))
            .env("WXGATE_SECRET_SHOP", SHOP_SECRET);
        config
    }
}

async fn login(gate: &Gate, body: serde_json::Value) -> String {
    let response = gate.post_login(&body.to_string()).await;
    assert_eq!(response.status(), 200, "login {body}");
    let body: serde_json::Value = response.json().await.unwrap();
    body["session_id"].as_str().unwrap().to_owned()
}

async fn login_with_referer(gate: &Gate, code: &str, referer: &str) -> reqwest::Response {
    gate.http
        .post(gate.url("/login"))
        .header("referer", referer)
        .json(&json!({ "code": code }))
        .send()
        .await
        .unwrap()
}

fn referer(appid: &str) -> String {
    format!("https://servicewechat.com/{appid}/7/page-frame.html")
}

async fn appid_seen(gate: &Gate, session: &str) -> Vec<String> {
    let echo = crate::common::json(gate.get("/x", session)).await;
    header_values(&echo, "x-wx-appid")
}

/// A profile watermarked for `appid`, encrypted with `key`.
fn encrypt(key: &str, appid: &str) -> String {
    crate::common::encrypt(
        key,
        &json!({"nickName": "Cy", "watermark": {"timestamp": 1477314187, "appid": appid}}),
    )
}

async fn decrypt(gate: &Gate, session: &str, data: &str) -> reqwest::Response {
    gate.post_decrypt(
        session,
        json!({ "encryptedData": data, "iv": crate::common::IV }),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_names_its_app_by_body_or_referer_and_unknown_apps_are_refused() {
    let setup = Setup::new().await;
    let gate = setup.config().start().await;

    let by_body = login(&gate, json!({"code": "amy", "appid": SHOP})).await;
    assert_eq!(appid_seen(&gate, &by_body).await, [SHOP]);
    let default = login(&gate, json!({"code": "amy", "appid": APPID})).await;
    assert_eq!(appid_seen(&gate, &default).await, [APPID]);
    let by_referer = login_with_referer(&gate, "bo", &referer(SHOP)).await;
    assert_eq!(by_referer.status(), 200);
    let by_referer: serde_json::Value = by_referer.json().await.unwrap();
    let by_referer = by_referer["session_id"].as_str().unwrap();
    assert_eq!(appid_seen(&gate, by_referer).await, [SHOP]);
    // The body wins over the Referer.
    let both = gate
        .http
        .post(gate.url("/login"))
        .header("referer", referer(APPID))
        .json(&json!({"code": "bo2", "appid": SHOP}))
        .send()
        .await
        .unwrap();
    let both: serde_json::Value = both.json().await.unwrap();
    let both = both["session_id"].as_str().unwrap();
    assert_eq!(appid_seen(&gate, both).await, [SHOP]);

    let calls = setup.wechat.total_calls();
    // Several apps: a login that names none, or one not configured, is refused
    // before WeChat is asked.
    assert_error(
        gate.post_login(r#"{"code":"cat"}"#).await,
        400,
        "unknown_app",
    )
    .await;
    assert_error(
        gate.post_login(r#"{"code":"cat","appid":"wxnotours"}"#)
            .await,
        400,
        "unknown_app",
    )
    .await;
    assert_error(
        login_with_referer(&gate, "cat", &referer("wxnotours")).await,
        400,
        "unknown_app",
    )
    .await;
    assert_error(
        login_with_referer(&gate, "cat", "https://evil.example/wxshopapp000002/1/x").await,
        400,
        "unknown_app",
    )
    .await;
    assert_error(
        gate.post_login(r#"{"code":"cat","appid":42}"#).await,
        400,
        "bad_request",
    )
    .await;
    assert_eq!(
        setup.wechat.total_calls(),
        calls,
        "refused logins ask WeChat nothing"
    );

    // Logins and WeChat calls are counted per app.
    let metrics = gate.metrics().await;
    let logins = |app: &str| {
        metric(
            &metrics,
            &format!(r#"wxgate_logins_total{{result="ok",app="{app}"}}"#),
        )
    };
    assert_eq!((logins(APPID), logins(SHOP)), (1.0, 3.0), "{metrics}");
    assert_eq!(
        metric(
            &metrics,
            r#"wxgate_logins_total{result="unknown_app",app="none"}"#
        ),
        4.0,
        "{metrics}"
    );
    let calls = |app: &str| {
        metric(
            &metrics,
            &format!(
                r#"wxgate_wechat_api_calls_total{{app="{app}",api="jscode2session",result="ok"}}"#
            ),
        )
    };
    assert_eq!((calls(APPID), calls(SHOP)), (1.0, 3.0), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_app_needs_no_appid_and_ignores_the_referer() {
    let setup = Setup::new().await;
    let gate = GateConfig::new(&setup.wechat, &setup.upstream)
        .start()
        .await;
    let plain = gate.login("dan").await;
    assert_eq!(appid_seen(&gate, &plain).await, [APPID]);
    // A Referer naming another app does not matter with one app.
    let response = login_with_referer(&gate, "dan2", &referer(SHOP)).await;
    assert_eq!(response.status(), 200);
    // But an appid in the body must be this app's.
    assert_error(
        gate.post_login(&json!({"code": "dan3", "appid": SHOP}).to_string())
            .await,
        400,
        "unknown_app",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_never_cross_apps_memory_and_redis() {
    for redis in [false, true] {
        let setup = Setup::new().await;
        let server = redis.then(RedisServer::start);
        let mut config = setup.config();
        if let Some(server) = &server {
            config.redis(&server.url());
        }
        let gate = config.start().await;
        gate.until_ready().await;
        // The same person in both apps (the same openid, at this double).
        let in_default = login(&gate, json!({"code": "cy", "appid": APPID})).await;
        let in_shop = login(&gate, json!({"code": "cy", "appid": SHOP})).await;
        assert_eq!(
            appid_seen(&gate, &in_default).await,
            [APPID],
            "redis={redis}"
        );
        assert_eq!(appid_seen(&gate, &in_shop).await, [SHOP], "redis={redis}");
        // A forged AppID is replaced by the session's own.
        let echo =
            crate::common::json(gate.get("/x", &in_default).header("x-wx-appid", SHOP)).await;
        assert_eq!(header_values(&echo, "x-wx-appid"), [APPID]);

        let default_key = setup.wechat.current_key_in(APPID, "cy");
        let shop_key = setup.wechat.current_key_in(SHOP, "cy");
        assert_ne!(default_key, shop_key);
        // Each session decrypts its own app's data, with its own app's key.
        let shop_data = encrypt(&shop_key, SHOP);
        assert_eq!(decrypt(&gate, &in_shop, &shop_data).await.status(), 200);
        assert_eq!(
            decrypt(&gate, &in_default, &encrypt(&default_key, APPID))
                .await
                .status(),
            200
        );
        // The shop's data never opens in the other app's session…
        let refused = decrypt(&gate, &in_default, &shop_data).await;
        assert!(refused.status().is_client_error(), "{}", refused.status());
        // …and data watermarked for the other app is refused even with the right key.
        assert_error(
            decrypt(&gate, &in_shop, &encrypt(&shop_key, APPID)).await,
            400,
            "watermark_mismatch",
        )
        .await;

        // A new login in one app rotates that app's key only.
        login(&gate, json!({"code": "slow:0:cy", "appid": APPID})).await;
        assert_eq!(decrypt(&gate, &in_shop, &shop_data).await.status(), 200);
        let newest = setup.wechat.current_key_in(APPID, "cy");
        assert_eq!(
            decrypt(&gate, &in_default, &encrypt(&newest, APPID))
                .await
                .status(),
            200
        );

        // The operator sees, and logs out, one app's user at a time.
        let openid = openid_of("cy");
        let show = |appid: &str| {
            gate.http
                .get(gate.admin_url(&format!("/users/{openid}?appid={appid}")))
                .send()
        };
        let shown: serde_json::Value = show(SHOP).await.unwrap().json().await.unwrap();
        assert_eq!(
            (shown["appid"].as_str(), shown["openid"].as_str()),
            (Some(SHOP), Some(openid.as_str()))
        );
        let ambiguous = gate
            .http
            .get(gate.admin_url(&format!("/users/{openid}")))
            .send()
            .await
            .unwrap();
        assert_error(ambiguous, 400, "unknown_app").await;
        let revoked = gate
            .http
            .post(gate.admin_url(&format!("/users/{openid}/logout?appid={SHOP}")))
            .send()
            .await
            .unwrap();
        assert_eq!(revoked.status(), 200);
        assert_eq!(gate.get("/x", &in_shop).send().await.unwrap().status(), 401);
        assert_eq!(
            gate.get("/x", &in_default).send().await.unwrap().status(),
            200
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_person_is_one_business_user_across_apps() {
    let setup = Setup::new().await;
    let binding = BindingDouble::start().await;
    let mut config = setup.config();
    config
        .set("binding", "url", &format!("\"{}\"", binding.url()))
        .set("binding", "required", "true");
    let gate = config.start().await;
    let in_default = login(&gate, json!({"code": "union:dee", "appid": APPID})).await;
    let in_shop = login(&gate, json!({"code": "union:dee", "appid": SHOP})).await;
    let expected = format!("acct-union-{}", unionid_of("dee"));
    for session in [&in_default, &in_shop] {
        let echo = crate::common::json(gate.get("/x", session)).await;
        assert_eq!(header_values(&echo, "x-user-id"), [expected.as_str()]);
    }
    // Asked once per app, each time with that app and the shared unionid.
    let asked: Vec<(String, String)> = binding
        .calls()
        .into_iter()
        .map(|(_, body)| {
            (
                body["appid"].as_str().unwrap().to_owned(),
                body["unionid"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        asked,
        [
            (APPID.to_owned(), unionid_of("dee")),
            (SHOP.to_owned(), unionid_of("dee"))
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_tokens_and_phone_numbers_are_per_app() {
    let setup = Setup::new().await;
    let gate = setup.config().start().await;
    let in_default = login(&gate, json!({"code": "eve", "appid": APPID})).await;
    let in_shop = login(&gate, json!({"code": "eve", "appid": SHOP})).await;
    for (session, digits) in [
        (&in_shop, "13800000002"),
        (&in_default, "13800000001"),
        (&in_shop, "13800000003"),
    ] {
        let response = gate.post_phone(session, &format!("phone:{digits}")).await;
        assert_eq!(response.status(), 200);
        let phone: serde_json::Value = response.json().await.unwrap();
        assert_eq!(phone["phoneNumber"], digits);
    }
    // Each call went with its session's app's token; one token per app, then reused.
    assert_eq!(setup.wechat.phone_apps(), [SHOP, APPID, SHOP]);
    assert_eq!(setup.wechat.token_calls(), (2, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_sessions_survive_adding_an_app_and_end_with_a_removed_one() {
    let setup = Setup::new().await;
    let server = RedisServer::start();
    let mut before = GateConfig::new(&setup.wechat, &setup.upstream);
    before.redis(&server.url());
    let old = before.start().await;
    old.until_ready().await;
    let session = old.login("fay").await;
    old.stop().await;

    // The rollout: the same [wechat] app, plus a second one.
    let mut after = setup.config();
    after.redis(&server.url());
    let new = after.start().await;
    new.until_ready().await;
    let echo = crate::common::json(new.get("/x", &session)).await;
    assert_eq!(header_values(&echo, "x-wx-appid"), [APPID]);
    assert_eq!(header_values(&echo, "x-wx-openid"), [openid_of("fay")]);
    let key = setup.wechat.current_key_in(APPID, "fay");
    assert_eq!(
        decrypt(&new, &session, &encrypt(&key, APPID))
            .await
            .status(),
        200
    );

    // Removing an app ends its sessions; the others' stay.
    let in_shop = login(&new, json!({"code": "fay", "appid": SHOP})).await;
    new.stop().await;
    let back = before.start().await;
    back.until_ready().await;
    assert_eq!(back.get("/x", &in_shop).send().await.unwrap().status(), 401);
    assert_eq!(back.get("/x", &session).send().await.unwrap().status(), 200);
}

/// Mock mode behaves like WeChat across apps: one person (one name) has
/// each app's own openid and one unionid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_mock_mode_one_person_has_an_openid_per_app_and_one_unionid() {
    let setup = Setup::new().await;
    let mut config = GateConfig::new(&setup.wechat, &setup.upstream);
    config
        .set("wechat", "mode", "\"mock\"")
        .append(&format!("[[apps]]\nappid = \"{SHOP}\"\nmode = \"mock\"\n"));
    let gate = config.start().await;
    let identity = |app: &'static str| {
        let gate = &gate;
        async move {
            let id = login(gate, json!({ "code": "alice", "appid": app })).await;
            let echo = crate::common::json(gate.get("/x", &id)).await;
            let one = |name: &str| header_values(&echo, name).concat();
            (one("x-wx-appid"), one("x-wx-openid"), one("x-wx-unionid"))
        }
    };
    let (main, shop) = (identity(APPID).await, identity(SHOP).await);
    assert_eq!((main.0.as_str(), shop.0.as_str()), (APPID, SHOP));
    assert_ne!(main.1, shop.1, "one openid in two apps");
    assert!(main.1.starts_with('o') && shop.1.starts_with('o'));
    assert_eq!(main.2, shop.2, "the person's unionid differs between apps");
    // The same name in the same app is the same openid again.
    assert_eq!(identity(SHOP).await.1, shop.1);
}
