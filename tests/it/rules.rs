//! `[[rules]]`: one table of requests × sessions, answered alike by the
//! proxy port, forward-auth and `wxgate check-policy`; and a reload under
//! load never lets a request through a rule in force before and after.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::common::binding::{BindingDouble, Mode, account_of};
use crate::common::process::{BIN, Process, check_config, temp_config};
use crate::common::wechat::openid_of;
use crate::common::{APPID, Gate, GateConfig, Upstream, WeChatDouble, json, metric, until};

fn rules(config: &mut GateConfig) {
    let (olga, pia) = (openid_of("olga"), openid_of("pia"));
    // Bound again with the phone number she gave (the binding double's id for it).
    let olga_account = OLGA_ACCOUNT;
    config
        .set("routes", "public", r#"["/public"]"#)
        .append(&format!(
            r#"
[[rules]]
name = "vault"
prefix = "/vault"
action = "deny"

[[rules]]
name = "catalog"
prefix = "/shop/catalog"
public = true

[[rules]]
name = "account"
prefix = "/account"
user_id = true

[[rules]]
name = "wallet"
prefix = "/wallet"
phone = true

[[rules]]
name = "staff"
prefix = "/staff"
openids = ["{olga}"]

[[rules]]
name = "forum"
prefix = "/forum"
deny_openids = ["{pia}"]

[[rules]]
name = "order-writes"
path = "/orders"
methods = ["POST", "DELETE"]
user_ids = ["{olga_account}"]

[[rules]]
name = "shop"
upstream = "/shop"
prefix = "/shop"
apps = ["{APPID}"]
kinds = ["miniprogram"]

[[rules]]
name = "browsers-only"
prefix = "/h5"
kinds = ["browser"]
"#
        ));
}

/// Olga's user id once she has given her phone number.
const OLGA_ACCOUNT: &str = "acct-phone-13800000000";

/// A session of the table: its id and how check-policy names it.
struct Who {
    session: Option<String>,
    flags: Vec<String>,
}

/// (method, path, who, status), `who`: "" (none), olga (bound, a phone
/// number), pia (bound), nobody (not bound).
const TABLE: &[(&str, &str, &str, u16)] = &[
    ("GET", "/vault", "", 403),
    ("GET", "/vault/x", "olga", 403),
    ("GET", "/shop/catalog/1", "", 200),
    ("GET", "/shop/cart", "", 401),
    ("GET", "/shop/cart", "olga", 200),
    ("GET", "/account", "", 401),
    ("GET", "/account", "nobody", 403),
    ("GET", "/account/me", "pia", 200),
    ("GET", "/wallet", "pia", 403),
    ("GET", "/wallet", "olga", 200),
    ("GET", "/staff", "olga", 200),
    ("GET", "/staff", "pia", 403),
    ("GET", "/forum", "pia", 403),
    ("GET", "/forum", "olga", 200),
    ("GET", "/forum", "", 401),
    ("POST", "/orders", "olga", 200),
    ("DELETE", "/orders", "pia", 403),
    ("GET", "/orders", "pia", 200),
    ("POST", "/orders/7", "pia", 200),
    ("GET", "/h5/page", "olga", 403),
    ("GET", "/public/x", "", 200),
    ("GET", "/elsewhere", "", 401),
    ("GET", "/elsewhere", "nobody", 200),
];

async fn proxy(gate: &Gate, method: &str, path: &str, who: &Who) -> u16 {
    let method = http::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = gate.http.request(method, gate.url(path));
    if let Some(id) = &who.session {
        request = request.header("x-session-id", id);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    if status >= 400 {
        // wxgate's own answer, never the backend's.
        assert!(response.headers().contains_key("x-wxgate-error"), "{path}");
    }
    status
}

async fn forward_auth(gate: &Gate, method: &str, path: &str, who: &Who) -> u16 {
    let mut request = gate
        .http
        .get(gate.url("/_wxgate/auth"))
        .header("x-forwarded-method", method)
        .header("x-forwarded-uri", path);
    if let Some(id) = &who.session {
        request = request.header("x-session-id", id);
    }
    request.send().await.unwrap().status().as_u16()
}

fn check_policy(config: &std::path::Path, method: &str, path: &str, who: &Who) -> (u16, String) {
    let out = Command::new(BIN)
        .args(["check-policy", "--config"])
        .arg(config)
        .args([method, path])
        .args(&who.flags)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status: u16 = text
        .lines()
        .find_map(|l| l.strip_prefix("answer:"))
        .and_then(|a| a.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no answer line: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let exit = out.status.code();
    assert_eq!(exit, Some(if status < 300 { 0 } else { 3 }), "{text}");
    (status, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_port_forward_auth_and_check_policy_answer_alike() {
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let binding = BindingDouble::start().await;
    let mut config = GateConfig::new(&wechat, &upstream);
    config
        .set("binding", "url", &format!("\"{}\"", binding.url()))
        .append(&format!(
            "[[upstreams]]\nprefix = \"/shop\"\nurl = \"http://{}\"\n",
            upstream.addr
        ));
    rules(&mut config);
    let gate = config.start().await;
    let file = temp_config(&config.text());

    let olga = gate.login("olga").await;
    assert_eq!(
        gate.post_phone(&olga, "phone:13800000000").await.status(),
        200
    );
    let pia = gate.login("pia").await;
    binding.set_mode(Mode::NotFound);
    let nobody = gate.login("nobody").await;
    let as_user = |session: &str, name: &str, account: Option<String>, phone: bool| {
        let openid = openid_of(name);
        let mut flags = vec!["--as".to_owned(), format!("openid:{openid}")];
        if let Some(account) = account {
            flags.extend(["--as".to_owned(), format!("user_id:{account}")]);
        }
        if phone {
            flags.push("--phone".to_owned());
        }
        Who {
            session: Some(session.to_owned()),
            flags,
        }
    };
    let people = [
        (
            "",
            Who {
                session: None,
                flags: vec![],
            },
        ),
        (
            "olga",
            as_user(&olga, "olga", Some(OLGA_ACCOUNT.into()), true),
        ),
        (
            "pia",
            as_user(&pia, "pia", Some(account_of(&openid_of("pia"))), false),
        ),
        ("nobody", as_user(&nobody, "nobody", None, false)),
    ];
    for &(method, path, who, want) in TABLE {
        let who = &people.iter().find(|(name, _)| *name == who).unwrap().1;
        let row = format!("{method} {path} as {:?}", who.flags);
        assert_eq!(
            proxy(&gate, method, path, who).await,
            want,
            "proxy port: {row}"
        );
        assert_eq!(
            forward_auth(&gate, method, path, who).await,
            want,
            "forward-auth: {row}"
        );
        let (status, text) = check_policy(&file, method, path, who);
        assert_eq!(status, want, "check-policy: {row}\n{text}");
    }
    // check-policy names the rule that decided.
    let (_, text) = check_policy(&file, "GET", "/x/../vault/1", &people[0].1);
    assert!(
        text.contains("/vault/1 (canonical)") && text.contains("[[rules]] vault"),
        "{text}"
    );
    let (_, text) = check_policy(&file, "GET", "/public/a", &people[0].1);
    assert!(text.contains("routes.public"), "{text}");
    // The proxy port judges the canonical path too.
    assert_eq!(
        proxy(&gate, "GET", "/x/../vault/1", &people[1].1).await,
        403
    );
    let denied = gate.get("/staff", &pia).send().await.unwrap();
    assert_eq!(denied.headers()["x-wxgate-error"], "access_denied");
    let body: serde_json::Value = denied.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("staff"),
        "{body}"
    );
    assert!(upstream.hits() > 0);
    gate.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_under_load_never_lets_a_request_through_a_rule_in_force_before_and_after() {
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let base = GateConfig::new(&wechat, &upstream);
    let with = |rules: &str| {
        let mut config = base.clone();
        config.append(rules);
        config
    };
    let vault = "[[rules]]\nname = \"vault\"\nprefix = \"/vault\"\naction = \"deny\"\n";
    let open = "[[rules]]\nname = \"open\"\nprefix = \"/open\"\npublic = true\n";
    let extra = "[[rules]]\nname = \"extra\"\nprefix = \"/extra\"\nuser_id = true\n";
    let a = with(&format!("{vault}{open}"));
    let b = with(&format!("{extra}{open}{vault}"));
    let process = Process::start(&a, &[]);
    process.until_ready().await;
    let http = reqwest::Client::new();
    let session = {
        let body: serde_json::Value =
            json(http.post(process.url("/login")).body(r#"{"code":"olga"}"#)).await;
        body["session_id"].as_str().unwrap().to_owned()
    };

    let stop = Arc::new(AtomicBool::new(false));
    let (let_through, refused_open, sent) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let mut load = Vec::new();
    for _ in 0..4 {
        let (stop, vault_url, open_url, session) = (
            stop.clone(),
            process.url("/vault/gold"),
            process.url("/open/x"),
            session.clone(),
        );
        let (let_through, refused_open, sent) =
            (let_through.clone(), refused_open.clone(), sent.clone());
        load.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            while !stop.load(Ordering::SeqCst) {
                let vault = http
                    .get(&vault_url)
                    .header("x-session-id", &session)
                    .send()
                    .await;
                if vault.map(|r| r.status()).ok() != Some(http::StatusCode::FORBIDDEN) {
                    let_through.fetch_add(1, Ordering::SeqCst);
                }
                let open = http.get(&open_url).send().await;
                if open.map(|r| r.status()).ok() != Some(http::StatusCode::OK) {
                    refused_open.fetch_add(1, Ordering::SeqCst);
                }
                sent.fetch_add(2, Ordering::SeqCst);
            }
        }));
    }
    let reloaded = |n: usize| {
        let logs = process.logs.clone();
        move || {
            let logs = logs.clone();
            async move {
                logs.lock()
                    .unwrap()
                    .iter()
                    .filter(|l| l.contains("config reloaded"))
                    .count()
                    >= n
            }
        }
    };
    for round in 1..=12 {
        // Requests on both sides of every reload: a few more sent first.
        let before = sent.load(Ordering::SeqCst);
        let sending = sent.clone();
        until(format!("load before reload {round}"), || {
            let sending = sending.clone();
            async move { sending.load(Ordering::SeqCst) >= before + 8 }
        })
        .await;
        let config = if round % 2 == 1 { &b } else { &a };
        process.reload(&config.text());
        until(format!("reload {round} applied"), reloaded(round)).await;
    }
    // A file whose rules do not parse is refused whole.
    process.reload(
        &with(&format!(
            "{open}[[rules]]\nprefix = \"/vault\"\naction = \"maybe\"\n"
        ))
        .text(),
    );
    let admin = process.admin_url("/metrics");
    until("the bad file is refused", || async {
        let text = reqwest::get(&admin).await.unwrap().text().await.unwrap();
        metric(&text, "wxgate_config_reloads_total{result=\"refused\"}") >= 1.0
    })
    .await;
    let vault = http
        .get(process.url("/vault"))
        .header("x-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(vault.status(), 403, "the rules in force stay");
    stop.store(true, Ordering::SeqCst);
    for task in load {
        task.await.unwrap();
    }
    assert_eq!(
        let_through.load(Ordering::SeqCst),
        0,
        "a denied request reached the backend"
    );
    assert_eq!(
        refused_open.load(Ordering::SeqCst),
        0,
        "a public request was refused"
    );
}

#[test]
fn check_config_names_the_rule_and_the_key_of_a_mistake() {
    let base =
        "[upstream]\nurl = \"http://127.0.0.1:3000\"\n[wechat]\nappid = \"wx1\"\nsecret = \"s\"\n";
    let cases = [
        (
            "[[rules]]\nprefix = \"/a\"\npath = \"/b\"\n",
            "rules.prefix",
        ),
        (
            "[[rules]]\nname = \"x\"\nprefix = \"/a\"\naction = \"deny\"\nuser_id = true\n",
            "rules.action",
        ),
        (
            "[[rules]]\nprefix = \"/a\"\npublic = true\nphone = true\n",
            "rules.public",
        ),
        (
            "[[rules]]\nprefix = \"/a\"\napps = [\"wxnope\"]\n",
            "rules.apps",
        ),
        (
            "[[rules]]\nprefix = \"/a\"\nkinds = [\"robot\"]\n",
            "rules.kinds",
        ),
        (
            "[[rules]]\nprefix = \"/a\"\nupstream = \"/nope\"\n",
            "rules.upstream",
        ),
        (
            "[[rules]]\nprefix = \"/a\"\nmethods = [\"get\"]\n",
            "rules.methods",
        ),
        ("[[rules]]\nprefix = \"/_wxgate/x\"\n", "rules.prefix"),
        ("[[rules]]\nprefix = \"/a/../b\"\n", "rules.prefix"),
        ("[[rules]]\nprefix = \"/a\"\nwhatever = 1\n", "whatever"),
    ];
    for (rules, key) in cases {
        let out = check_config(&format!("{base}{rules}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(key),
            "{rules}: {stderr}"
        );
    }
}
