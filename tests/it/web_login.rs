//! Browser logins (official account / website apps) and cookie sessions,
//! over real sockets against the WeChat double: start → authorize →
//! callback → cookie → proxied request; the state's every failure; open
//! redirects; the cookie kept from the backend; CSRF; logout; Redis; one
//! person across the mini-program and H5.
//!
//! No browser here (tests/browser does that): redirects are followed by
//! hand and cookies carried by hand, so each hop's headers are checked.

use crate::common::binding::BindingDouble;
use crate::common::redis::RedisServer;
use crate::common::upstream::header_values;
use crate::common::web::*;
use crate::common::wechat::{openid_of, unionid_of};
use crate::common::{APPID, Gate};
use reqwest::header::{ACCEPT, COOKIE, LOCATION, ORIGIN};
use serde_json::json;

/// A whole login with `code` (the double's user), started at `at` and
/// called back at `back`: the session cookie's `name=value`.
async fn echo_with(gate: &Gate, cookie: &str) -> serde_json::Value {
    let response = browser()
        .get(gate.url("/orders"))
        .header(COOKIE, format!("theme=dark; {cookie}; cart=3"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_logs_in_through_wechat_and_its_cookie_carries_the_identity() {
    let setup = Setup::new().await;
    let gate = setup.config(None).start().await;

    // A page opened without a session: to the login, and back afterwards.
    let page = browser()
        .get(gate.url("/orders?id=7"))
        .header(ACCEPT, "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 302);
    let to_start = location(&page);
    assert_eq!(to_start, "/_wxgate/oauth/start?redirect=%2Forders%3Fid%3D7");
    // An API call keeps its 401 and reaches nothing.
    let api = browser().get(gate.url("/orders")).send().await.unwrap();
    assert_eq!(api.status(), 401);
    assert_eq!(api.headers()["x-wxgate-error"], "session_invalid");

    let started = start(&gate, "?redirect=%2Forders%3Fid%3D7").await;
    let authorize = &started.authorize;
    assert!(
        authorize.starts_with("https://open.weixin.qq.com/connect/oauth2/authorize?"),
        "{authorize}"
    );
    assert!(authorize.ends_with("#wechat_redirect"), "{authorize}");
    assert_eq!(param(authorize, "appid").as_deref(), Some(OA));
    assert_eq!(param(authorize, "scope").as_deref(), Some("snsapi_base"));
    assert_eq!(param(authorize, "response_type").as_deref(), Some("code"));
    let redirect_uri = format!("{PUBLIC}{CALLBACK}");
    assert_eq!(param(authorize, "redirect_uri"), Some(redirect_uri));
    assert!(started.state.len() >= 40, "a random state");

    let done = callback(
        &gate,
        &format!("?code=union:hana&state={}", started.state),
        Some(&started.cookie),
    )
    .await;
    assert_eq!(done.status(), 302);
    assert_eq!(location(&done), "/orders?id=7");
    let session = set_cookie(&done, "wxgate_session").unwrap();
    for attribute in [
        "Path=/",
        "Max-Age=604800",
        "HttpOnly",
        "SameSite=Lax",
        "Secure",
    ] {
        assert!(
            session.split("; ").any(|a| a == attribute),
            "{attribute} in {session}"
        );
    }
    let cleared = set_cookie(&done, "wxgate_session_state").unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");

    let echo = echo_with(&gate, &pair(&session)).await;
    assert_eq!(header_values(&echo, "x-wx-openid"), [openid_of("hana")]);
    assert_eq!(header_values(&echo, "x-wx-unionid"), [unionid_of("hana")]);
    assert_eq!(header_values(&echo, "x-wx-appid"), [OA]);
    // wxgate's cookie is its own; the backend's pass byte for byte.
    assert_eq!(header_values(&echo, "cookie"), ["theme=dark; cart=3"]);
    assert_eq!(setup.wechat.web_calls(OA, "union:hana"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_start_state_and_its_cookie_set_as_documented() {
    let setup = Setup::new().await;
    let gate = setup.config(None).start().await;
    let response = browser()
        .get(gate.url("/_wxgate/oauth/start"))
        .send()
        .await
        .unwrap();
    let cookie = set_cookie(&response, "wxgate_session_state").unwrap();
    for attribute in [
        &format!("Path={CALLBACK}"),
        "Max-Age=600",
        "HttpOnly",
        "SameSite=Lax",
        "Secure",
    ] {
        assert!(
            cookie.split("; ").any(|a| a == attribute),
            "{attribute} in {cookie}"
        );
    }
    assert_eq!(response.headers()["cache-control"], "no-store");
    // No redirect given: back to the site's root.
    let started = start(&gate, "").await;
    let done = callback(
        &gate,
        &format!("?code=ivy&state={}", started.state),
        Some(&started.cookie),
    )
    .await;
    assert_eq!(location(&done), "/");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_that_is_missing_foreign_reused_or_expired_is_refused() {
    let setup = Setup::new().await;
    let mut config = setup.config(None);
    config.set("web", "state_ttl", "\"400ms\"");
    let gate = config.start().await;
    let refused = |response: reqwest::Response| async move {
        assert_eq!(response.status(), 403);
        assert_eq!(response.headers()["x-wxgate-error"], "state_invalid");
        assert!(response.headers().get(LOCATION).is_none(), "never a loop");
        assert!(set_cookie(&response, "wxgate_session").is_none());
        // No Accept-Language: the page is Chinese, with the way back in.
        let page = response.text().await.unwrap();
        assert!(page.contains("这个登录链接已失效"), "{page}");
        assert!(
            page.contains(r#"<a id="again" href="/_wxgate/oauth/start">重新登录</a>"#),
            "{page}"
        );
    };

    let a = start(&gate, "").await;
    // No state at all; the state without its cookie; another browser's cookie.
    refused(callback(&gate, "?code=c1", Some(&a.cookie)).await).await;
    refused(callback(&gate, &format!("?code=c1&state={}", a.state), None).await).await;
    let b = start(&gate, "").await;
    refused(
        callback(
            &gate,
            &format!("?code=c1&state={}", a.state),
            Some(&b.cookie),
        )
        .await,
    )
    .await;
    // A forged pair that was never issued.
    refused(
        callback(
            &gate,
            "?code=c1&state=forged",
            Some("wxgate_session_state=forged"),
        )
        .await,
    )
    .await;

    // Used once, then replayed with the same cookie.
    let query = format!("?code=c2&state={}", a.state);
    assert_eq!(callback(&gate, &query, Some(&a.cookie)).await.status(), 302);
    let query = format!("?code=c3&state={}", a.state);
    refused(callback(&gate, &query, Some(&a.cookie)).await).await;
    assert_eq!(
        setup.wechat.web_calls(OA, "c3"),
        0,
        "a replay never reaches WeChat"
    );

    // Past web.state_ttl.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let query = format!("?code=c4&state={}", b.state);
    refused(callback(&gate, &query, Some(&b.cookie)).await).await;
    assert_eq!(setup.wechat.web_calls(OA, "c4"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_who_declines_gets_a_page_not_a_loop_and_wechat_s_errors_are_mapped() {
    let setup = Setup::new().await;
    let gate = setup.config(None).start().await;
    let declined = start(&gate, "").await;
    let response = callback(
        &gate,
        &format!("?state={}", declined.state),
        Some(&declined.cookie),
    )
    .await;
    assert_eq!(response.status(), 400);
    assert_eq!(response.headers()["x-wxgate-error"], "oauth_denied");
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(response.headers().get(LOCATION).is_none());

    for (code, status, expected) in [
        ("err:40029", 400, "code_invalid"),
        ("err:40163", 400, "code_used"),
        ("err:40125", 502, "wechat_misconfigured"),
        ("err:-1", 503, "wechat_busy"),
        ("html", 502, "wechat_unavailable"),
    ] {
        let started = start(&gate, "").await;
        let query = format!("?code={code}&state={}", started.state);
        let response = callback(&gate, &query, Some(&started.cookie)).await;
        assert_eq!(response.status(), status, "{code}");
        assert_eq!(response.headers()["x-wxgate-error"], expected, "{code}");
        assert!(set_cookie(&response, "wxgate_session").is_none(), "{code}");
    }
    // The same code twice, each with a fresh state: WeChat's 40163.
    let code = "once";
    log_in(&gate, &gate, code).await;
    let started = start(&gate, "").await;
    let response = callback(
        &gate,
        &format!("?code={code}&state={}", started.state),
        Some(&started.cookie),
    )
    .await;
    assert_eq!(response.headers()["x-wxgate-error"], "code_used");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_never_leave_the_site() {
    let setup = Setup::new().await;
    let gate = setup.config(None).start().await;
    for redirect in [
        "%2F%2Fevil.example",
        "//evil.example",
        "https://evil.example/",
        "https:%2F%2Fevil.example",
        "%2F%5Cevil.example",
        "/%5Cevil.example",
        "%2F%09%2Fevil.example",
        "evil.example",
        "javascript:alert(1)",
    ] {
        let response = browser()
            .get(gate.url(&format!("/_wxgate/oauth/start?redirect={redirect}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{redirect}");
        assert_eq!(
            response.headers()["x-wxgate-error"],
            "redirect_invalid",
            "{redirect}"
        );
        assert!(response.headers().get(LOCATION).is_none(), "{redirect}");
        assert!(
            set_cookie(&response, "wxgate_session_state").is_none(),
            "{redirect}"
        );
    }
    // A path of the site's own, with its query, comes back as given.
    let started = start(&gate, "?redirect=%2Fa%2Fb%3Fx%3D1%26y%3D2").await;
    let done = callback(
        &gate,
        &format!("?code=joy&state={}", started.state),
        Some(&started.cookie),
    )
    .await;
    assert_eq!(location(&done), "/a/b?x=1&y=2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsafe_request_by_cookie_alone_must_come_from_the_site() {
    let setup = Setup::new().await;
    let gate = setup.config(None).start().await;
    let cookie = log_in(&gate, &gate, "kim").await;
    let post = |origin: Option<&str>, fetch_site: Option<&str>| {
        let mut request = browser()
            .post(gate.url("/orders"))
            .header(COOKIE, &cookie)
            .body("{}");
        if let Some(origin) = origin {
            request = request.header(ORIGIN, origin);
        }
        if let Some(site) = fetch_site {
            request = request.header("sec-fetch-site", site);
        }
        request.send()
    };
    let before = setup.upstream.hits();
    for (origin, site) in [
        (Some("https://evil.example"), None),
        (None, None),
        (Some("https://m.example.com.evil.example"), None),
        (None, Some("cross-site")),
        (Some("null"), Some("same-site")),
    ] {
        let response = post(origin, site).await.unwrap();
        assert_eq!(response.status(), 403, "{origin:?} {site:?}");
        assert_eq!(response.headers()["x-wxgate-error"], "csrf_rejected");
    }
    assert_eq!(setup.upstream.hits(), before, "nothing reached the backend");
    assert_eq!(post(Some(PUBLIC), None).await.unwrap().status(), 200);
    assert_eq!(post(None, Some("same-origin")).await.unwrap().status(), 200);
    // Safe methods and header sessions need no Origin.
    let get = browser().get(gate.url("/orders")).header(COOKIE, &cookie);
    assert_eq!(get.send().await.unwrap().status(), 200);
    let app_session = gate.login("kim").await;
    let by_header = browser()
        .post(gate.url("/orders"))
        .header("x-session-id", &app_session)
        .header(ORIGIN, "https://evil.example");
    assert_eq!(by_header.send().await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_clears_the_cookie_and_ends_the_session() {
    let setup = Setup::new().await;
    let gate = setup.config(None).start().await;
    let cookie = log_in(&gate, &gate, "lou").await;
    let cross_site = browser()
        .post(gate.url("/logout"))
        .header(COOKIE, &cookie)
        .header(ORIGIN, "https://evil.example");
    assert_eq!(
        cross_site.send().await.unwrap().status(),
        403,
        "no logout CSRF either"
    );
    let logout = browser()
        .post(gate.url("/logout"))
        .header(COOKIE, &cookie)
        .header(ORIGIN, PUBLIC)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204);
    let cleared = set_cookie(&logout, "wxgate_session").unwrap();
    assert!(
        cleared.starts_with("wxgate_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    let after = browser().get(gate.url("/orders")).header(COOKIE, &cookie);
    assert_eq!(after.send().await.unwrap().status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_a_login_begun_at_one_replica_ends_at_another() {
    let setup = Setup::new().await;
    let redis = RedisServer::start();
    let mut config = setup.config(None);
    config.redis(&redis.url());
    let (a, b) = (config.start().await, config.start().await);
    a.until_ready().await;
    b.until_ready().await;
    let cookie = log_in(&a, &b, "union:max").await;
    for gate in [&a, &b] {
        let echo = echo_with(gate, &cookie).await;
        assert_eq!(header_values(&echo, "x-wx-unionid"), [unionid_of("max")]);
    }
    // The state was taken at B: a replay at A finds nothing either.
    let started = start(&a, "").await;
    let query = format!("?code=ned&state={}", started.state);
    assert_eq!(
        callback(&b, &query, Some(&started.cookie)).await.status(),
        302
    );
    assert_eq!(
        callback(&a, &query, Some(&started.cookie)).await.status(),
        403
    );
    // A logout at B ends the cookie session at A.
    let logout = browser()
        .post(b.url("/logout"))
        .header(COOKIE, &cookie)
        .header(ORIGIN, PUBLIC);
    assert_eq!(logout.send().await.unwrap().status(), 204);
    crate::common::until("A still serves the logged-out cookie", || async {
        let at_a = browser().get(a.url("/orders")).header(COOKIE, &cookie);
        at_a.send().await.unwrap().status() == 401
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_person_has_one_business_user_id_in_the_mini_program_and_on_h5() {
    let setup = Setup::new().await;
    let binding = BindingDouble::start().await;
    let mut config = setup.config(None);
    config
        .set("binding", "url", &format!("\"{}\"", binding.url()))
        .set("binding", "required", "true");
    let gate = config.start().await;
    let in_app = gate.login("union:pat").await;
    let cookie = log_in(&gate, &gate, "union:pat").await;
    let expected = format!("acct-union-{}", unionid_of("pat"));
    let from_app = crate::common::json(gate.get("/orders", &in_app)).await;
    assert_eq!(header_values(&from_app, "x-user-id"), [expected.as_str()]);
    let from_h5 = echo_with(&gate, &cookie).await;
    assert_eq!(header_values(&from_h5, "x-user-id"), [expected.as_str()]);
    let asked: Vec<String> = binding
        .calls()
        .into_iter()
        .map(|(_, body)| body["appid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        asked,
        [APPID, OA],
        "asked once per app, with the shared unionid"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snsapi_userinfo_keeps_the_profile_on_the_user() {
    let setup = Setup::new().await;
    let gate = setup.config(Some("snsapi_userinfo")).start().await;
    let started = start(&gate, "").await;
    assert_eq!(
        param(&started.authorize, "scope").as_deref(),
        Some("snsapi_userinfo")
    );
    let query = format!("?code=union:quin&state={}", started.state);
    assert_eq!(
        callback(&gate, &query, Some(&started.cookie))
            .await
            .status(),
        302
    );
    let shown: serde_json::Value = gate
        .http
        .get(gate.admin_url(&format!("/users/{}?appid={OA}", openid_of("quin"))))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["profile"], true, "{shown}");
    assert_eq!(shown["unionid"], unionid_of("quin"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_sessions_have_no_session_key_and_the_apps_keep_their_logins_apart() {
    let setup = Setup::new().await;
    let gate = setup.config(None).start().await;
    let cookie = log_in(&gate, &gate, "rey").await;
    let decrypt = browser()
        .post(gate.url("/_wxgate/decrypt"))
        .header(COOKIE, &cookie)
        .header(ORIGIN, PUBLIC)
        .json(&json!({"encryptedData": "AAAA", "iv": crate::common::IV}));
    let response = decrypt.send().await.unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(response.headers()["x-wxgate-error"], "no_session_key");
    // A mini-program login for the official account's AppID is refused…
    let wrong = gate
        .post_login(&json!({"code": "rey", "appid": OA}).to_string())
        .await;
    assert_eq!(wrong.status(), 400);
    assert_eq!(wrong.headers()["x-wxgate-error"], "unknown_app");
    // …and the one mini-program needs no appid beside a web app.
    gate.login("rey2").await;
    // A start naming a mini-program is refused too.
    let start = browser()
        .get(gate.url(&format!("/_wxgate/oauth/start?app={APPID}")))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 400);
    assert_eq!(start.headers()["x-wxgate-error"], "unknown_app");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websites_use_qr_login_and_wechat_s_browser_gets_the_official_account() {
    let setup = Setup::new().await;
    let mut config = setup.config(None);
    config.append(&format!(
        "[[apps]]\nappid = \"{SITE}\"\nkind = \"website\"\nsecret_env = \"SITE_SECRET\"\n\
         api_base = \"http://{}\"\n",
        setup.wechat.addr
    ));
    config.env("SITE_SECRET", "site-secret");
    let gate = config.start().await;
    let open = |agent: &'static str| {
        browser()
            .get(gate.url("/_wxgate/oauth/start"))
            .header("user-agent", agent)
            .send()
    };
    let desktop = location(
        &open("Mozilla/5.0 (X11; Linux x86_64) Chrome/156")
            .await
            .unwrap(),
    );
    assert!(
        desktop.starts_with("https://open.weixin.qq.com/connect/qrconnect?"),
        "{desktop}"
    );
    assert_eq!(param(&desktop, "appid").as_deref(), Some(SITE));
    assert_eq!(param(&desktop, "scope").as_deref(), Some("snsapi_login"));
    let in_wechat = location(
        &open("Mozilla/5.0 (iPhone) MicroMessenger/8.0.50")
            .await
            .unwrap(),
    );
    assert!(in_wechat.starts_with("https://open.weixin.qq.com/connect/oauth2/authorize?"));
    assert_eq!(param(&in_wechat, "appid").as_deref(), Some(OA));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_auth_accepts_the_cookie_and_judges_csrf_on_the_request_asked_about() {
    let setup = Setup::new().await;
    let gate = setup.config(None).start().await;
    let cookie = log_in(&gate, &gate, "union:sol").await;
    // nginx auth_request: a GET subrequest with the original request's headers.
    let ask = |method: &str, origin: &str| {
        browser()
            .get(gate.url("/_wxgate/auth"))
            .header("x-forwarded-method", method)
            .header("x-forwarded-uri", "/orders")
            .header(COOKIE, &cookie)
            .header(ORIGIN, origin)
            .send()
    };
    let read = ask("GET", "https://evil.example").await.unwrap();
    assert_eq!(read.status(), 200);
    assert_eq!(read.headers()["x-wx-unionid"], unionid_of("sol").as_str());
    let forged = ask("POST", "https://evil.example").await.unwrap();
    assert_eq!(forged.status(), 403);
    assert_eq!(forged.headers()["x-wxgate-error"], "csrf_rejected");
    assert_eq!(ask("POST", PUBLIC).await.unwrap().status(), 200);
}

/// A login declined at the authorize page, read in `language`.
async fn declined(gate: &Gate, language: Option<&str>) -> reqwest::Response {
    let started = start(gate, "").await;
    let mut request = browser()
        .get(gate.url(&format!("{CALLBACK}?state={}", started.state)))
        .header(ACCEPT, "text/html")
        .header(COOKIE, &started.cookie);
    if let Some(language) = language {
        request = request.header("accept-language", language);
    }
    request.send().await.unwrap()
}

/// A failed browser login's page: Chinese unless English is preferred,
/// or, with `web.error_redirect`, the site's own page with the code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_login_speaks_the_reader_s_language_or_goes_to_the_site_s_own_page() {
    let setup = Setup::new().await;
    let gate = setup.config(None).start().await;
    for (language, says, again) in [
        (Some("zh-CN,zh;q=0.9"), "你没有在微信中同意授权", "重新登录"),
        (
            Some("en-US,en;q=0.9,zh;q=0.5"),
            "not authorised in WeChat",
            "Log in again",
        ),
    ] {
        let response = declined(&gate, language).await;
        assert_eq!(response.status(), 400);
        assert_eq!(response.headers()["x-wxgate-error"], "oauth_denied");
        let page = response.text().await.unwrap();
        assert!(
            page.contains(says) && page.contains(again),
            "{language:?}: {page}"
        );
    }

    let mut config = setup.config(None);
    config.set("web", "error_redirect", "\"https://m.example.com/oops\"");
    let branded = config.start().await;
    let response = declined(&branded, None).await;
    assert_eq!(response.status(), 302);
    assert_eq!(
        location(&response),
        "https://m.example.com/oops?code=oauth_denied"
    );
    assert_eq!(response.headers()["cache-control"], "no-store");
}
