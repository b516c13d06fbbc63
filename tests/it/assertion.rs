//! The signed identity assertion (`[assertion]`): what a backend receives
//! verifies with an independent JWT library (jose, and PHP's openssl in
//! the docs' PHP example) against the published keys; a forged one never
//! reaches a backend; keys rotate by SIGHUP without a failed request; two
//! replicas with the same key files verify each other's tokens.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::DecodePrivateKey;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::common::assertion::{backend_env, key_dir, key_file, node_backend, php_backend, verify};
use crate::common::binding::{BindingDouble, account_of};
use crate::common::nginx::free_addr;
use crate::common::process::Process;
use crate::common::upstream::header_values;
use crate::common::wechat::{openid_of, unionid_of};
use crate::common::{APPID, Gate, GateConfig, Upstream, WeChatDouble, json, until};

/// `[assertion]` signing with `keys` (the first signs).
fn assertion(config: &mut GateConfig, keys: &[&std::path::Path]) {
    let files: Vec<String> = keys
        .iter()
        .map(|k| format!("\"{}\"", k.display()))
        .collect();
    config.set("assertion", "key_files", &format!("[{}]", files.join(", ")));
}

/// The one assertion the echo backend received, if any (more than one: a failure).
async fn received(
    gate: &Gate,
    path: &str,
    session: Option<&str>,
    extra: &[(&str, &str)],
) -> Option<String> {
    let mut request = gate.http.get(gate.url(path));
    if let Some(id) = session {
        request = request.header("x-session-id", id);
    }
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    let echo = json(request).await;
    let names = crate::common::upstream::header_names(&echo);
    let copies: Vec<&String> = names
        .iter()
        .filter(|n| {
            n.replace(['_', '.', '-'], "")
                .eq_ignore_ascii_case("xwxgateassertion")
        })
        .collect();
    assert!(copies.len() <= 1, "{copies:?} reached the backend");
    let values = header_values(&echo, "x-wxgate-assertion");
    assert!(values.len() <= 1, "{values:?}");
    values.into_iter().next()
}

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("JSON")
}

/// A token signed ES256 with `key` (PEM), as an attacker holding a key would.
fn signed(key: &std::path::Path, header: &Value, claims: &Value) -> String {
    use rustls_pki_types::PrivateKeyDer;
    use rustls_pki_types::pem::PemObject;
    let secret = match PrivateKeyDer::from_pem_file(key).expect("a PEM key") {
        PrivateKeyDer::Sec1(der) => p256::SecretKey::from_sec1_der(der.secret_sec1_der()).ok(),
        PrivateKeyDer::Pkcs8(der) => p256::SecretKey::from_pkcs8_der(der.secret_pkcs8_der()).ok(),
        _ => panic!("not an EC key"),
    };
    let signing = SigningKey::from(secret.expect("a P-256 key"));
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature: Signature = signing.sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backends_verify_the_assertion_with_jose_and_php_per_audience() {
    let dir = key_dir("verify");
    let key = key_file(&dir, "k1", false);
    let wechat = WeChatDouble::start().await;
    let admin = free_addr();
    let jwks = format!("http://{admin}/jwks.json");
    let node = node_backend(&backend_env(&jwks, "wxgate", "orders")).await;
    let php = php_backend(&backend_env(&jwks, "wxgate", "/php")).await;
    let mut config = GateConfig::with_upstream_url(&wechat, &format!("http://{}", node.addr));
    config
        .set("admin", "listen", &format!("\"{admin}\""))
        .set("upstream", "audience", "\"orders\"")
        .set("routes", "public", r#"["/public"]"#)
        .append(&format!(
            "[[upstreams]]\nprefix = \"/php\"\nurl = \"http://{}\"\nstrip_prefix = true\n",
            php.addr
        ));
    assertion(&mut config, &[&key]);
    let gate = config.start().await;
    let olga = gate.login("union:olga").await;

    // jose, in the node backend: the token names olga, for this audience.
    let answer = json(gate.get("/orders/7", &olga)).await;
    assert_eq!(answer["user"], openid_of("olga").as_str(), "{answer}");
    let c = &answer["claims"];
    assert_eq!(c["aud"], "orders");
    assert_eq!(c["iss"], "wxgate");
    assert_eq!(c["sub"], openid_of("olga").as_str());
    assert_eq!(c["openid"], openid_of("olga").as_str());
    assert_eq!(c["unionid"], unionid_of("olga").as_str());
    assert_eq!(c["appid"], APPID);
    assert_eq!(c["kind"], "miniprogram");
    assert!(c.get("user_id").is_none(), "not bound: no user_id claim");
    assert_eq!(c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(), 300);
    let sid = c["sid"].as_str().unwrap();
    assert!(sid.len() >= 16 && !olga.contains(sid) && !sid.contains(&olga[..8]));
    assert!(!c["jti"].as_str().unwrap().is_empty());

    // PHP's openssl, in the PHP backend: the same session, its own audience.
    let answer = json(gate.get("/php/cart", &olga)).await;
    assert_eq!(answer["user"], openid_of("olga").as_str(), "{answer}");
    assert_eq!(answer["claims"]["aud"], "/php");
    assert_eq!(answer["path"], "/cart");

    // Each backend refuses what wxgate signed for the other (the token
    // as forward-auth hands it out for the PHP backend's path).
    let response = gate
        .http
        .get(gate.url("/_wxgate/auth"))
        .header("x-forwarded-uri", "/php/cart")
        .header("x-session-id", &olga)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let token = response.headers()["x-wxgate-assertion"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        verify(&jwks, "wxgate", "/php", &token).await.unwrap()["claims"]["aud"],
        "/php"
    );
    assert_eq!(
        verify(&jwks, "wxgate", "orders", &token).await,
        Err("ERR_JWT_CLAIM_VALIDATION_FAILED".into())
    );

    // No session on a public route: no assertion, which both backends refuse.
    let anonymous = gate.http.get(gate.url("/public/x")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(
        anonymous.json::<Value>().await.unwrap()["error"],
        "ERR_NO_ASSERTION"
    );
    gate.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_user_is_the_subject_and_the_ttl_sets_its_expiry() {
    let dir = key_dir("bound");
    let key = key_file(&dir, "k1", true);
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let binding = BindingDouble::start().await;
    let mut config = GateConfig::new(&wechat, &upstream);
    config
        .set("binding", "url", &format!("\"{}\"", binding.url()))
        .set("assertion", "issuer", "\"https://m.example.com\"")
        .set("assertion", "ttl", "\"60s\"");
    assertion(&mut config, &[&key]);
    let gate = config.start().await;
    let olga = gate.login("olga").await;
    let token = received(&gate, "/orders", Some(&olga), &[])
        .await
        .expect("an assertion");
    let jwks = gate.admin_url("/jwks.json");
    let verified = verify(
        &jwks,
        "https://m.example.com",
        &format!("http://{}", upstream.addr),
        &token,
    )
    .await
    .expect("jose accepts it");
    let c = &verified["claims"];
    let account = account_of(&openid_of("olga"));
    assert_eq!(c["sub"], account.as_str());
    assert_eq!(c["user_id"], account.as_str());
    assert_eq!(c["openid"], openid_of("olga").as_str());
    assert_eq!(c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(), 60);
    // The kid is the key's RFC 7638 thumbprint, as jose computes it.
    assert_eq!(verified["header"]["kid"], verified["thumbprints"][0]);
    assert_eq!(verified["kids"], verified["thumbprints"]);
    gate.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_session_says_its_kind_and_the_issuer_is_the_public_url() {
    use crate::common::web::{OA, PUBLIC, Setup, browser, log_in};
    let setup = Setup::new().await;
    let mut config = setup.config(None);
    config.set("assertion", "ttl", "\"5m\"");
    let gate = config.start().await;
    let cookie = log_in(&gate, &gate, "rey").await;
    let echo: Value = json(browser().get(gate.url("/orders")).header("cookie", &cookie)).await;
    let token = header_values(&echo, "x-wxgate-assertion")
        .pop()
        .expect("an assertion");
    let audience = format!("http://{}", setup.upstream.addr);
    let verified = verify(&gate.admin_url("/jwks.json"), PUBLIC, &audience, &token)
        .await
        .expect("jose accepts it");
    assert_eq!(verified["claims"]["kind"], "official_account");
    assert_eq!(verified["claims"]["appid"], OA);
    assert_eq!(verified["claims"]["iss"], PUBLIC);
    gate.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_expired_re_signed_or_client_sent_assertions_never_reach_the_backend() {
    let dir = key_dir("forged");
    let key = key_file(&dir, "k1", false);
    let attacker = key_file(&dir, "attacker", true);
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let mut config = GateConfig::new(&wechat, &upstream);
    config.set("routes", "public", r#"["/public"]"#);
    assertion(&mut config, &[&key]);
    let gate = config.start().await;
    let jwks = gate.url("/_wxgate/jwks.json");
    let audience = format!("http://{}", upstream.addr);
    let olga = gate.login("olga").await;
    let pia = gate.login("pia").await;
    let genuine = received(&gate, "/orders", Some(&olga), &[]).await.unwrap();
    let kid = verify(&jwks, "wxgate", &audience, &genuine).await.unwrap()["header"]["kid"].clone();

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let as_olga = |iat: u64, exp: u64| {
        json!({"iss": "wxgate", "aud": audience, "sub": openid_of("olga"), "openid": openid_of("olga"),
               "appid": APPID, "kind": "miniprogram", "iat": iat, "exp": exp, "jti": "forged", "sid": "x"})
    };
    let header = json!({"alg": "ES256", "kid": kid, "typ": "JWT"});
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "kid": kid})),
        b64(&as_olga(now, now + 300))
    );
    let hs256 = {
        // Keyed with the published key itself: the classic algorithm confusion.
        let published = reqwest::get(&jwks).await.unwrap().text().await.unwrap();
        let input = format!(
            "{}.{}",
            b64(&json!({"alg": "HS256", "kid": kid})),
            b64(&as_olga(now, now + 300))
        );
        let mut mac = Hmac::<Sha256>::new_from_slice(published.as_bytes()).unwrap();
        mac.update(input.as_bytes());
        format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        )
    };
    let expired = signed(&key, &header, &as_olga(now - 900, now - 600));
    let re_signed = signed(&attacker, &header, &as_olga(now, now + 300));
    let forgeries = [
        ("alg none", none),
        ("HS256 keyed with the public key", hs256),
        ("expired (wxgate's own key)", expired),
        ("re-signed with another key", re_signed),
        ("olga's genuine token", genuine.clone()),
    ];
    for (what, forged) in &forgeries {
        // The verifier refuses each (the genuine one only for another audience).
        let audience_checked = if what.contains("genuine") {
            "elsewhere"
        } else {
            &audience
        };
        assert!(
            verify(&jwks, "wxgate", audience_checked, forged)
                .await
                .is_err(),
            "{what}"
        );
        for spelling in [
            "X-Wxgate-Assertion",
            "x_wxgate_assertion",
            "X.Wxgate.Assertion",
        ] {
            // Without a session on a public route: nothing reaches the backend.
            let got = received(&gate, "/public/x", None, &[(spelling, forged)]).await;
            assert_eq!(got, None, "{what} as {spelling}");
            // With pia's session: only pia's own, wxgate-signed.
            let got = received(&gate, "/orders", Some(&pia), &[(spelling, forged)])
                .await
                .unwrap();
            assert_ne!(&got, forged, "{what} as {spelling}");
            let verified = verify(&jwks, "wxgate", &audience, &got).await.unwrap();
            assert_eq!(
                verified["claims"]["sub"],
                openid_of("pia").as_str(),
                "{what}"
            );
        }
    }
    gate.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_signs_once_per_audience_and_again_when_its_user_changes() {
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let mut config = GateConfig::new(&wechat, &upstream);
    config.set("assertion", "ttl", "\"1h\"").append(&format!(
        "[[upstreams]]\nprefix = \"/shop\"\nurl = \"http://{}\"\n",
        upstream.addr
    ));
    let gate = config.start().await;
    let olga = gate.login("olga").await;
    let first = received(&gate, "/orders", Some(&olga), &[]).await.unwrap();
    // Reused: the same token (same jti) while it holds.
    for _ in 0..3 {
        assert_eq!(
            received(&gate, "/orders/2", Some(&olga), &[])
                .await
                .unwrap(),
            first
        );
    }
    // Another audience: its own token.
    let shop = received(&gate, "/shop/cart", Some(&olga), &[])
        .await
        .unwrap();
    assert_eq!(claims(&shop)["aud"], "/shop");
    assert_ne!(claims(&shop)["jti"], claims(&first)["jti"]);
    // Another session of the same user: another sid, another token.
    let again = gate.login("slow:1:olga").await;
    let second = received(&gate, "/orders", Some(&again), &[]).await.unwrap();
    assert_ne!(claims(&second)["sid"], claims(&first)["sid"]);
    // The user's record changes (a phone number fetched): signed anew.
    assert_eq!(
        gate.post_phone(&olga, "phone:13800000000").await.status(),
        200
    );
    let after = received(&gate, "/orders", Some(&olga), &[]).await.unwrap();
    assert_ne!(claims(&after)["jti"], claims(&first)["jti"]);
    // The generated key (no key_files) is published and verifies.
    let jwks = gate.url("/_wxgate/jwks.json");
    let audience = format!("http://{}", upstream.addr);
    assert!(verify(&jwks, "wxgate", &audience, &after).await.is_ok());
    gate.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_set_is_on_both_ports_cacheable_and_absent_when_off() {
    let dir = key_dir("jwks");
    let (k1, k2) = (key_file(&dir, "k1", false), key_file(&dir, "k2", true));
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let mut config = GateConfig::new(&wechat, &upstream);
    assertion(&mut config, &[&k1, &k2]);
    let gate = config.start().await;
    let proxy = gate
        .http
        .get(gate.url("/_wxgate/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(proxy.status(), 200);
    assert_eq!(proxy.headers()["cache-control"], "public, max-age=300");
    assert!(
        proxy.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let proxy: Value = proxy.json().await.unwrap();
    let admin: Value = json(gate.http.get(gate.admin_url("/jwks.json"))).await;
    assert_eq!(proxy, admin);
    let keys = proxy["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    for k in keys {
        assert_eq!(
            (k["kty"].as_str(), k["crv"].as_str(), k["alg"].as_str()),
            (Some("EC"), Some("P-256"), Some("ES256"))
        );
        assert!(k.get("d").is_none(), "no private part: {k}");
    }
    gate.stop().await;

    let gate = GateConfig::new(&wechat, &upstream).start().await;
    let off = gate
        .http
        .get(gate.url("/_wxgate/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(off.status(), 404);
    let off = gate
        .http
        .get(gate.admin_url("/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(off.status(), 404);
    // Off, a client's assertion is still stripped.
    let olga = gate.login("olga").await;
    assert_eq!(
        received(
            &gate,
            "/orders",
            Some(&olga),
            &[("x-wxgate-assertion", "forged")]
        )
        .await,
        None
    );
    gate.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_with_the_same_key_files_verify_each_other_s_tokens() {
    let dir = key_dir("replicas");
    let key = key_file(&dir, "k1", false);
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let mut config = GateConfig::new(&wechat, &upstream);
    assertion(&mut config, &[&key]);
    let (a, b) = (config.start().await, config.start().await);
    let audience = format!("http://{}", upstream.addr);
    let from_a = received(&a, "/orders", Some(&a.login("olga").await), &[])
        .await
        .unwrap();
    let from_b = received(&b, "/orders", Some(&b.login("pia").await), &[])
        .await
        .unwrap();
    assert!(
        verify(&b.admin_url("/jwks.json"), "wxgate", &audience, &from_a)
            .await
            .is_ok()
    );
    assert!(
        verify(&a.admin_url("/jwks.json"), "wxgate", &audience, &from_b)
            .await
            .is_ok()
    );
    // A replica with a generated key signs with its own: the others refuse it.
    let mut generated = GateConfig::new(&wechat, &upstream);
    generated.set("assertion", "ttl", "\"5m\"");
    let c = generated.start().await;
    let from_c = received(&c, "/orders", Some(&c.login("slow:1:olga").await), &[])
        .await
        .unwrap();
    assert!(
        verify(&a.admin_url("/jwks.json"), "wxgate", &audience, &from_c)
            .await
            .is_err()
    );
    for gate in [a, b, c] {
        gate.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_by_sighup_without_a_failed_request() {
    let dir = key_dir("rotate");
    let (old, new) = (key_file(&dir, "old", false), key_file(&dir, "new", true));
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let mut config = GateConfig::new(&wechat, &upstream);
    let with_keys = |config: &mut GateConfig, keys: &[&std::path::Path]| {
        assertion(config, keys);
        config.text()
    };
    with_keys(&mut config, &[&old]);
    let process = Process::start(&config, &[]);
    process.until_ready().await;
    let http = reqwest::Client::new();
    let session = {
        let body: Value = json(http.post(process.url("/login")).body(r#"{"code":"olga"}"#)).await;
        body["session_id"].as_str().unwrap().to_owned()
    };
    let jwks = process.admin_url("/jwks.json");
    let kids = || async {
        let set: Value = json(reqwest::Client::new().get(&jwks)).await;
        set["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let old_kid = kids().await[0].clone();

    // Requests all along: every one must be answered by the backend.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let progress = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    // Some requests more on the load, before each step: requests on both sides of it.
    let more = |n: usize| {
        let progress = progress.clone();
        let from = progress.load(std::sync::atomic::Ordering::SeqCst);
        until(format!("{n} more requests"), move || {
            let progress = progress.clone();
            async move { progress.load(std::sync::atomic::Ordering::SeqCst) >= from + n }
        })
    };
    let load = {
        let (stop, url, session) = (stop.clone(), process.url("/orders"), session.clone());
        let progress = progress.clone();
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let (mut sent, mut failed, mut tokens) = (0, 0, std::collections::BTreeSet::new());
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                match http.get(&url).header("x-session-id", &session).send().await {
                    Ok(r) if r.status() == 200 => {
                        let echo: Value = r.json().await.unwrap();
                        tokens.extend(header_values(&echo, "x-wxgate-assertion"));
                    }
                    _ => failed += 1,
                }
                sent += 1;
                progress.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            (sent, failed, tokens)
        })
    };
    // 1. Publish the new key: it does not sign yet.
    more(5).await;
    process.reload(&with_keys(&mut config, &[&old, &new]));
    until("the new key is published", || async {
        kids().await.len() == 2
    })
    .await;
    let new_kid = kids().await[1].clone();
    // 2. Sign with it, the old one still published.
    more(5).await;
    process.reload(&with_keys(&mut config, &[&new, &old]));
    let latest = || async {
        let echo: Value = json(
            http.get(process.url("/orders"))
                .header("x-session-id", &session),
        )
        .await;
        header_values(&echo, "x-wxgate-assertion").pop().unwrap()
    };
    until("the new key signs", || async {
        let token = latest().await;
        verify(
            &jwks,
            "wxgate",
            &format!("http://{}", upstream.addr),
            &token,
        )
        .await
        .unwrap()["header"]["kid"]
            == new_kid.as_str()
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (sent, failed, tokens) = load.await.unwrap();
    assert_eq!(
        failed, 0,
        "{failed} of {sent} requests failed during the rotation"
    );
    // Every token a backend got in between verifies against the set published now.
    let audience = format!("http://{}", upstream.addr);
    let mut by_kid = std::collections::BTreeMap::new();
    for token in &tokens {
        let verified = verify(&jwks, "wxgate", &audience, token)
            .await
            .expect("verifies");
        *by_kid
            .entry(verified["header"]["kid"].as_str().unwrap().to_owned())
            .or_insert(0) += 1;
    }
    assert!(by_kid.contains_key(&old_kid), "{by_kid:?}");
    // 3. Retire the old key.
    process.reload(&with_keys(&mut config, &[&new]));
    until("the old key is retired", || async {
        kids().await == [new_kid.clone()]
    })
    .await;
    let token = latest().await;
    assert!(verify(&jwks, "wxgate", &audience, &token).await.is_ok());
}

#[test]
fn check_config_refuses_a_key_that_is_not_p256() {
    let dir = key_dir("curves");
    let make = |name: &str, args: &[&str]| {
        let path = dir.join(format!("{name}.pem"));
        let status = std::process::Command::new("openssl")
            .args(args)
            .arg("-out")
            .arg(&path)
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        path
    };
    let cases = [
        (
            make(
                "p384",
                &[
                    "genpkey",
                    "-algorithm",
                    "EC",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-384",
                ],
            ),
            "P-384",
        ),
        (
            make(
                "rsa",
                &[
                    "genpkey",
                    "-algorithm",
                    "RSA",
                    "-pkeyopt",
                    "rsa_keygen_bits:2048",
                ],
            ),
            "RSA",
        ),
        (make("ed", &["genpkey", "-algorithm", "ed25519"]), "Ed25519"),
        (
            make("secp384", &["ecparam", "-name", "secp384r1", "-genkey"]),
            "another curve",
        ),
    ];
    for (path, named) in cases {
        let text = format!(
            "[upstream]\nurl = \"http://127.0.0.1:3000\"\n[wechat]\nappid = \"wx1\"\nsecret = \"s\"\n\
             [assertion]\nkey_files = [\"{}\"]\n",
            path.display()
        );
        let out = crate::common::process::check_config(&text);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{named}: accepted");
        assert!(
            stderr.contains("assertion.key_files")
                && stderr.contains(named)
                && stderr.contains("P-256"),
            "{stderr}"
        );
        // Never the key itself.
        let pem = std::fs::read_to_string(&path).unwrap();
        let body = pem.lines().nth(1).unwrap();
        assert!(!stderr.contains(body), "{stderr}");
    }
    // A P-256 key in either form is accepted.
    for pkcs8 in [false, true] {
        let path = key_file(&dir, &format!("good{pkcs8}"), pkcs8);
        let text = format!(
            "[upstream]\nurl = \"http://127.0.0.1:3000\"\n[wechat]\nappid = \"wx1\"\nsecret = \"s\"\n\
             [assertion]\nkey_files = [\"{}\"]\n",
            path.display()
        );
        let out = crate::common::process::check_config(&text);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
