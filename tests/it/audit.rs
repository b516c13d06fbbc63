//! The audit trail (`crate::audit`): every security-relevant action made by
//! real requests to the real binary produces one event on the
//! `wxgate::audit` target (stderr, JSON) and in `log.audit_file`, checked
//! field by field; the whole log holds none of the secrets the test knows.

use reqwest::Method;
use reqwest::header::{COOKIE, ORIGIN};

use crate::common::binding::{BindingDouble, account_of};
use crate::common::otlp::Collector;
use crate::common::process::Process;
use crate::common::web::*;
use crate::common::wechat::openid_of;
use crate::common::{APPID, SECRET, json};

const ADMIN_TOKEN: &str = "an-admin-token-of-32-characters!";

/// The audit events in `lines` (JSON log lines), in order.
fn events(lines: &str) -> Vec<serde_json::Value> {
    lines
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line["target"] == "wxgate::audit")
        .collect()
}

/// The one event of `action` with `result`.
fn event<'a>(all: &'a [serde_json::Value], action: &str, result: &str) -> &'a serde_json::Value {
    let found: Vec<_> = all
        .iter()
        .filter(|e| e["action"] == action && e["result"] == result)
        .collect();
    assert_eq!(found.len(), 1, "{action} {result}: {all:#?}");
    found[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_audited_action_is_one_event_with_its_fields_and_no_secret() {
    let setup = Setup::new().await;
    let binding = BindingDouble::start().await;
    let collector = Collector::start().await;
    let audit_file =
        std::env::temp_dir().join(format!("wxgate-audit-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&audit_file);
    let mut config = setup.config(None);
    config
        .set("log", "format", "\"json\"")
        .set(
            "log",
            "audit_file",
            &format!("\"{}\"", audit_file.display()),
        )
        .set("binding", "url", &format!("\"{}\"", binding.url()))
        // Traced: an event written deep in the domain (binding) knows its trace.
        .set("tracing", "endpoint", &format!("\"{}\"", collector.url()));
    let gate = Process::start(
        &config,
        &[
            ("OA_SECRET", OA_SECRET),
            ("WXGATE_ADMIN_TOKEN", ADMIN_TOKEN),
        ],
    );
    gate.until_ready().await;
    let http = reqwest::Client::new();

    // A mini-program login (bound by the binding endpoint), its code replayed.
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let login = |code: &str| {
        http.post(gate.url("/login"))
            .header("traceparent", traceparent)
            .body(format!(r#"{{"code":"{code}"}}"#))
    };
    let session = json(login("ana")).await["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(login("ana").send().await.unwrap().status(), 400);
    // A profile decrypted with the user's session_key.
    let profile =
        serde_json::json!({"nickName": "Ana", "watermark": {"timestamp": 1, "appid": APPID}});
    let sealed = crate::common::encrypt(&setup.wechat.current_key("ana"), &profile);
    let decrypt = http
        .post(gate.url("/_wxgate/decrypt"))
        .header("x-session-id", &session)
        .json(&serde_json::json!({"encryptedData": sealed, "iv": crate::common::IV}));
    assert_eq!(decrypt.send().await.unwrap().status(), 200);
    // A phone number, then the logout.
    let phone = http
        .post(gate.url("/_wxgate/phone"))
        .header("x-session-id", &session)
        .json(&serde_json::json!({"code": "phone:13912345678"}));
    assert_eq!(phone.send().await.unwrap().status(), 200);
    let logout = http
        .post(gate.url("/logout"))
        .header("x-session-id", &session);
    assert_eq!(logout.send().await.unwrap().status(), 204);

    // A browser login, then an unsafe request by its cookie from elsewhere.
    let started = browser()
        .get(gate.url("/_wxgate/oauth/start?redirect=%2Forders"))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 302);
    let state_cookie = pair(&set_cookie(&started, "wxgate_session_state").unwrap());
    let state = param(&location(&started), "state").unwrap();
    let done = browser()
        .get(gate.url(&format!("{CALLBACK}?code=bea&state={state}")))
        .header(COOKIE, &state_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 302);
    let cookie = pair(&set_cookie(&done, "wxgate_session").unwrap());
    let forged = browser()
        .post(gate.url("/orders"))
        .header(COOKIE, &cookie)
        .header(ORIGIN, "https://evil.example")
        .body("{}");
    assert_eq!(forged.send().await.unwrap().status(), 403);

    // The operator: a lookup, a revocation, the access token; a wrong token.
    let admin = |method: Method, path: &str, token: &str| {
        http.request(method, gate.admin_url(path))
            .bearer_auth(token)
    };
    let status =
        |request: reqwest::RequestBuilder| async move { request.send().await.unwrap().status() };
    let user = format!("/users/{}?appid={APPID}", openid_of("ana"));
    assert_eq!(status(admin(Method::GET, &user, ADMIN_TOKEN)).await, 200);
    let revoke = format!("/users/{}/logout?appid={APPID}", openid_of("ana"));
    assert_eq!(status(admin(Method::POST, &revoke, ADMIN_TOKEN)).await, 200);
    let token_path = format!("/apps/{APPID}/access_token");
    let token = json(admin(Method::GET, &token_path, ADMIN_TOKEN)).await;
    let access_token = token["access_token"].as_str().unwrap().to_owned();
    assert_eq!(status(admin(Method::GET, &user, "wrong")).await, 401);

    // A reload applied, then one refused.
    gate.reload(&config.text());
    gate.until_logged(&["\"action\":\"reload\"", "\"result\":\"applied\""])
        .await;
    let mut moved = config.clone();
    moved
        .set("server", "drain_timeout", "\"7s\"")
        .set("server", "threads", "3");
    gate.reload(&moved.text());
    gate.until_logged(&["\"action\":\"reload\"", "\"result\":\"refused\""])
        .await;

    let stderr = gate.logs();
    let all = events(&stderr);
    let ana = openid_of("ana");
    let bea = openid_of("bea");
    let loopback = "127.0.0.1";
    for (action, result, openid) in [
        ("login", "ok", Some(ana.as_str())),
        ("login", "code_used", None),
        ("decrypt", "ok", Some(ana.as_str())),
        ("phone_number", "ok", Some(ana.as_str())),
        ("logout", "ok", Some(ana.as_str())),
        ("browser_login_start", "ok", None),
        ("browser_login", "ok", Some(bea.as_str())),
    ] {
        let e = event(&all, action, result);
        assert_eq!(e["openid"].as_str(), openid, "{e}");
        assert_eq!(e["client_ip"], loopback, "{e}");
        assert!(
            e["request_id"].as_str().is_some_and(|id| id.len() >= 16),
            "{e}"
        );
        assert!(e["timestamp"].is_string(), "{e}");
    }
    let e = event(&all, "login", "ok");
    assert_eq!(e["app"], APPID);
    // In the client's trace, as its log line.
    assert_eq!(e["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736", "{e}");
    let line = stderr
        .lines()
        .find(|l| l.contains("\"message\":\"request\"") && l.contains("\"outcome\":\"login\""))
        .unwrap();
    assert!(
        line.contains("\"trace_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\""),
        "{line}"
    );
    assert_eq!(e["user_id"], account_of(&ana), "{e}");
    assert_eq!(event(&all, "browser_login", "ok")["app"], OA);
    // Bound at each login, and again with the phone number (the double
    // binds `acct-phone-<digits>` then).
    let bindings: Vec<_> = all.iter().filter(|e| e["action"] == "binding").collect();
    assert_eq!(
        bindings[0]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736",
        "the login's binding, in the client's trace: {}",
        bindings[0]
    );
    let seen: Vec<_> = bindings
        .iter()
        .map(|e| {
            (
                e["result"].as_str(),
                e["openid"].as_str(),
                e["user_id"].as_str(),
                e["app"].as_str(),
            )
        })
        .collect();
    let by_phone = "acct-phone-13912345678";
    assert_eq!(
        seen,
        [
            (
                Some("bound"),
                Some(ana.as_str()),
                Some(account_of(&ana).as_str()),
                Some(APPID)
            ),
            (
                Some("bound"),
                Some(ana.as_str()),
                Some(by_phone),
                Some(APPID)
            ),
            (
                Some("bound"),
                Some(bea.as_str()),
                Some(account_of(&bea).as_str()),
                Some(OA)
            ),
        ]
    );
    let e = event(&all, "csrf", "csrf_rejected");
    assert_eq!(e["client_ip"], loopback, "{e}");
    assert!(e["request_id"].is_string(), "{e}");
    let e = event(&all, "admin_user_lookup", "ok");
    assert_eq!(
        (e["openid"].as_str(), e["app"].as_str()),
        (Some(ana.as_str()), Some(APPID))
    );
    let e = event(&all, "admin_logout", "ok");
    assert_eq!(
        (e["openid"].as_str(), e["detail"].as_str()),
        (Some(ana.as_str()), Some("known"))
    );
    assert_eq!(event(&all, "admin_access_token", "ok")["app"], APPID);
    event(&all, "admin", "admin_unauthorized");
    event(&all, "reload", "applied");
    let refused = event(&all, "reload", "refused");
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("server.threads"),
        "{refused}"
    );

    // The file holds the same events.
    let file = std::fs::read_to_string(&audit_file).unwrap();
    let in_file = events(&file);
    assert_eq!(in_file.len(), all.len(), "{file}");
    assert!(
        in_file
            .iter()
            .zip(&all)
            .all(|(a, b)| a["action"] == b["action"])
    );

    // No secret anywhere in the log.
    let web_session = cookie.split_once('=').unwrap().1;
    // The business system's id made of the number is its own to give.
    let everything = format!("{stderr}\n{file}").replace(by_phone, "acct-phone");
    for secret in [
        session.as_str(),
        web_session,
        &setup.wechat.current_key("ana"),
        "13912345678",
        SECRET,
        OA_SECRET,
        ADMIN_TOKEN,
        &access_token,
        &state,
    ] {
        assert!(
            !everything.contains(secret),
            "{secret} is in the log:\n{everything}"
        );
    }
}
