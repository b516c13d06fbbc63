//! The `wxgate` binary as an operator runs it: `check-config`, SIGTERM
//! draining, constant memory while streaming, and log lines free of secrets.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::common::binding::{BindingDouble, Mode};
use crate::common::process::{BIN, Process, temp_config};
use crate::common::redis::RedisServer;
use crate::common::{GateConfig, SECRET, Upstream, WeChatDouble};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn login(http: &reqwest::Client, url: String, code: &str) -> String {
    let body = crate::common::json(http.post(url).body(format!(r#"{{"code":"{code}"}}"#))).await;
    body["session_id"].as_str().expect("session_id").to_owned()
}

#[test]
fn check_config_accepts_the_shipped_example_and_names_bad_keys() {
    let ok = Command::new(BIN)
        .args([
            "check-config",
            "--config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml"),
        ])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    for (text, key) in [
        (
            "[upstream]\nurl = \"http://127.0.0.1:1\"\n[wechat]\nappid = \"wx1\"\nsecret = \"s\"\n[session]\nttl = \"forever\"\n",
            "session.ttl",
        ),
        (
            "[upstream]\nurl = \"http://127.0.0.1:1\"\n[wechat]\nappid = \"wx1\"\n",
            "wechat.secret",
        ),
        (
            "[upstream]\nurl = \"http://127.0.0.1:1\"\n[wechat]\nappid = \"wx1\"\nsecret = \"s\"\nsekret = 1\n",
            "sekret",
        ),
    ] {
        let out = Command::new(BIN)
            .args(["check-config", "--config"])
            .arg(temp_config(text))
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(key), "{stderr}");
    }
    let missing = Command::new(BIN)
        .args(["check-config", "--config", "/nonexistent.toml"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
}

/// The mistakes a first config makes, each answered by `check-config`
/// with its key and what to write instead: refused when it cannot work,
/// warned about when it loads but is most likely wrong.
#[test]
fn check_config_names_the_key_and_the_fix_of_a_first_config_s_mistakes() {
    const APP: &str = "[wechat]\nappid = \"wx0123456789abcdef\"\nsecret_env = \"NONE_SET\"\n";
    const SECRET: (&str, &str) = ("NONE_SET", "0123456789abcdef0123456789abcdef");
    const UP: &str = "[upstream]\nurl = \"http://127.0.0.1:3000\"\n";
    // (the file, refused?, what stderr says)
    let cases: [(String, bool, &[&str]); 8] = [
        (
            format!("{APP}[upstream]\nurl = \"http://127.0.0.1:99999\"\n"),
            true,
            &["upstream.url", "no valid port", "1 to 65535"],
        ),
        (
            format!("{APP}{UP}timeout = 30\n"),
            true,
            &["upstream.timeout", "timeout = \"30s\""],
        ),
        (
            format!("{APP}[server]\nlisten = 8080\n{UP}"),
            true,
            &["server.listen", "in quotes"],
        ),
        (
            format!("{APP}[upstreams]\nprefix = \"/a\"\nurl = \"http://127.0.0.1:3000\"\n"),
            true,
            &["upstreams", "[[upstreams]]"],
        ),
        (
            format!("[wechat]\nappid = \"wx123\"\nsecret_env = \"NONE_SET\"\n{UP}"),
            false,
            &["wechat.appid", "wx123", "16 hex digits", "开发设置"],
        ),
        (format!("{APP}{UP}"), false, &[]),
        (
            format!("{APP}{UP}[routes]\npublic = [\"/\"]\n"),
            false,
            &["routes.public", "every path is public"],
        ),
        (
            format!("{APP}{UP}[session]\nttl = \"1h\"\nidle = \"2h\"\n"),
            false,
            &["session.idle", "session.ttl", "never"],
        ),
    ];
    for (text, refused, says) in cases {
        let out = Command::new(BIN)
            .args(["check-config", "--config"])
            .arg(temp_config(&text))
            .env(SECRET.0, SECRET.1)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(!out.status.success(), refused, "{text}\n{stderr}");
        for part in says {
            assert!(stderr.contains(part), "{text}\nno {part:?} in: {stderr}");
        }
        if says.is_empty() {
            assert!(
                !stderr.contains("warning"),
                "a good config warned: {stderr}"
            );
        }
    }
    // A secret of the wrong shape: its length said, never its text.
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(temp_config(&format!("{APP}{UP}")))
        .env(SECRET.0, "zq7")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("wechat.secret")
            && stderr.contains("3 characters")
            && !stderr.contains("zq7"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_then_exits_zero() {
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let mut config = GateConfig::new(&wechat, &upstream);
    config.set("server", "drain_timeout", "\"10s\"");
    let mut gate = Process::start(&config, &[]);
    let http = reqwest::Client::new();
    let id = login(&http, gate.url("/login"), "zoe").await;

    // A keep-alive connection that has finished its request and sits idle.
    let mut idle = tokio::net::TcpStream::connect(gate.addr).await.unwrap();
    idle.write_all(b"GET /public HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = [0u8; 1024];
    assert!(idle.read(&mut answer).await.unwrap() > 0);

    let hits = upstream.hits();
    let slow = tokio::spawn(
        http.get(gate.url("/slow?ms=1500"))
            .header("x-session-id", &id)
            .send(),
    );
    // In flight: the backend has it.
    crate::common::until("the slow request never reached the backend", || async {
        upstream.hits() > hits
    })
    .await;
    gate.signal("TERM");
    // The listener closes at once: new connections are refused.
    crate::common::until("the listener still accepts", || async {
        tokio::net::TcpStream::connect(gate.addr).await.is_err()
    })
    .await;
    // The idle connection is closed at once, not kept until the drain timeout.
    let closed = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut answer)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "idle connection still open"
    );
    // The in-flight request still completes.
    let response = slow.await.unwrap().expect("in-flight request completes");
    assert_eq!(response.status(), 200);
    // ... and then the process exits, well before the 10 s drain timeout.
    let status = tokio::task::spawn_blocking(move || gate.wait(Duration::from_secs(5)))
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_timeout_bounds_shutdown() {
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let mut config = GateConfig::new(&wechat, &upstream);
    config
        .set("server", "drain_timeout", "\"500ms\"")
        .set("upstream", "timeout", "\"60s\"");
    let mut gate = Process::start(&config, &[]);
    let http = reqwest::Client::new();
    let id = login(&http, gate.url("/login"), "amy").await;
    let hits = upstream.hits();
    let stuck = tokio::spawn(
        http.get(gate.url("/slow?ms=30000"))
            .header("x-session-id", &id)
            .send(),
    );
    // In flight: the backend has it, and will not answer for 30 s.
    crate::common::until("the stuck request never reached the backend", || async {
        upstream.hits() > hits
    })
    .await;
    let started = Instant::now();
    gate.signal("INT");
    let status = tokio::task::spawn_blocking(move || gate.wait(Duration::from_secs(10)))
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
    // It waited for the drain, then gave up on the stuck request.
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(500), "{waited:?}");
    assert!(waited < Duration::from_secs(10), "{waited:?}");
    let answered = tokio::time::timeout(crate::common::PATIENCE, stuck)
        .await
        .expect("the client learns its connection closed")
        .unwrap();
    assert!(
        answered.is_err(),
        "the stuck request was answered: {answered:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_a_large_body_runs_in_constant_memory() {
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let gate = Process::start(&GateConfig::new(&wechat, &upstream), &[]);
    let http = reqwest::Client::new();
    let id = login(&http, gate.url("/login"), "bea").await;
    let transfer = |size: u64| {
        let (http, id, gate) = (&http, &id, &gate);
        async move {
            let chunk = bytes::Bytes::from(vec![7u8; 256 * 1024]);
            let count = size / chunk.len() as u64;
            let stream = futures_util::stream::iter(
                (0..count).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
            );
            let report = crate::common::json(
                http.post(gate.url("/upload"))
                    .header("x-session-id", id)
                    .body(reqwest::Body::wrap_stream(stream)),
            )
            .await;
            assert_eq!(report["bytes"], size);
            let mut response = http
                .get(gate.url(&format!("/download?bytes={size}")))
                .header("x-session-id", id)
                .send()
                .await
                .unwrap();
            let mut received = 0u64;
            while let Some(chunk) = response.chunk().await.unwrap() {
                received += chunk.len() as u64;
            }
            assert_eq!(received, size);
        }
    };
    // The peak after 16 MiB each way (buffers, pools and the allocator
    // warmed up), then after 512 MiB: buffering even a tenth of it would
    // show as growth, whatever the debug build's own footprint.
    transfer(16 << 20).await;
    let warmed = gate.peak_rss_kib();
    transfer(512 << 20).await;
    let peak = gate.peak_rss_kib();
    eprintln!("wxgate peak RSS: {warmed} KiB after 16 MiB each way, {peak} KiB after 512 MiB");
    let grown_mib = peak.saturating_sub(warmed) / 1024;
    assert!(
        grown_mib < 32,
        "wxgate's peak grew by {grown_mib} MiB while streaming 512 MiB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_and_session_ids_never_reach_a_log_line() {
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let binding = BindingDouble::start().await;
    let mut config = GateConfig::new(&wechat, &upstream);
    // The secret comes from the environment, as in production.
    config.set("wechat", "secret", "\"overridden-by-env\"").set(
        "binding",
        "url",
        &format!("\"{}\"", binding.url()),
    );
    const BINDING_TOKEN: &str = "binding-token-never-logged";
    const ADMIN_TOKEN: &str = "admin-token-never-logged";
    let gate = Process::start(
        &config,
        &[
            ("WXGATE_WECHAT_SECRET", SECRET),
            ("WXGATE_LOG", "trace"),
            ("WXGATE_BINDING_TOKEN", BINDING_TOKEN),
            ("WXGATE_ADMIN_TOKEN", ADMIN_TOKEN),
        ],
    );
    let http = reqwest::Client::new();
    // The binding endpoint fails first: a warning, and the login goes on unbound.
    binding.set_mode(Mode::Error);
    let id = login(&http, gate.url("/login"), "union:cleo").await;
    binding.set_mode(Mode::Bind);
    let ok = http
        .get(gate.url("/x?token=1"))
        .header("x-session-id", &id)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    for code in ["err:40029", "html", "err:-1"] {
        http.post(gate.url("/login"))
            .body(format!(r#"{{"code":"{code}"}}"#))
            .send()
            .await
            .unwrap();
    }
    // Calls that use (and, after a revocation, replace) the access token.
    let phone = || {
        http.post(gate.url("/_wxgate/phone"))
            .header("x-session-id", &id)
            .body(r#"{"code":"phone:13800138000"}"#)
            .send()
    };
    assert_eq!(phone().await.unwrap().status(), 200);
    wechat.revoke_token();
    assert_eq!(phone().await.unwrap().status(), 200);
    let check = http
        .get(gate.url("/_wxgate/session"))
        .header("x-session-id", &id)
        .send()
        .await
        .unwrap();
    assert_eq!(check.status(), 200);
    let shown = http
        .get(gate.admin_url(&format!(
            "/users/{}",
            crate::common::wechat::openid_of("cleo")
        )))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(shown.status(), 200);
    let refused = http
        .get(gate.admin_url("/users/o_cleo"))
        .bearer_auth("a-wrong-token-of-some-size")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    http.post(gate.url("/logout"))
        .header("x-session-id", &id)
        .send()
        .await
        .unwrap();
    // The last request's line is written: every line before it is too.
    gate.until_logged(&["outcome=\"logout\""]).await;

    let logs = gate.logs();
    assert!(
        logs.contains("outcome=\"authenticated\""),
        "one line per request:\n{logs}"
    );
    assert!(logs.contains("outcome=\"login\""));
    assert!(logs.contains("binding failed"), "{logs}");
    let calls = binding.calls();
    assert_eq!(calls.len(), 2, "at login, then with the phone number");
    assert!(
        calls
            .iter()
            .all(|(auth, _)| auth.as_deref() == Some("Bearer binding-token-never-logged"))
    );
    assert_eq!(
        wechat.token_calls().0,
        2,
        "the token was fetched and replaced"
    );
    for secret in [
        SECRET,
        &id,
        &wechat.current_key("cleo"),
        "token-1",
        "token-2",
        BINDING_TOKEN,
        ADMIN_TOKEN,
    ] {
        assert!(
            !logs.contains(secret),
            "{secret} leaked into the logs:\n{logs}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_redis_share_sessions_and_a_killed_one_loses_nothing() {
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let redis = RedisServer::start();
    let mut config = GateConfig::new(&wechat, &upstream);
    config.redis(&redis.url());
    let mut a = Process::start(&config, &[]);
    let b = Process::start(&config, &[]);
    a.until_ready().await;
    b.until_ready().await;
    let http = reqwest::Client::new();
    let id = login(&http, a.url("/login"), "kai").await;
    let at = |p: &Process| http.get(p.url("/x")).header("x-session-id", &id).send();
    assert_eq!(at(&b).await.unwrap().status(), 200);

    // A dies without draining (OOM kill, node loss); its replacement starts cold.
    a.signal("KILL");
    a.wait(Duration::from_secs(5));
    let replacement = Process::start(&config, &[]);
    replacement.until_ready().await;
    assert_eq!(at(&replacement).await.unwrap().status(), 200);
    assert_eq!(at(&b).await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_a_changed_route_and_refuses_what_needs_a_restart() {
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let mut config = GateConfig::new(&wechat, &upstream);
    config.set("routes", "public", r#"["/public"]"#);
    let gate = Process::start(&config, &[]);
    gate.until_ready().await;
    let http = reqwest::Client::new();
    let open = || http.get(gate.url("/open/page")).send();
    assert_eq!(open().await.unwrap().status(), 401);

    config.set("routes", "public", r#"["/public", "/open"]"#);
    gate.reload(&config.text());
    gate.until_logged(&["config reloaded"]).await;
    assert_eq!(open().await.unwrap().status(), 200);

    // A change that needs a restart is refused whole: /open stays public.
    let mut restart = GateConfig::new(&wechat, &upstream);
    restart
        .set("routes", "public", r#"["/public"]"#)
        .set("server", "threads", "3");
    gate.reload(&restart.text());
    gate.until_logged(&["config reload refused", "server.threads"])
        .await;
    assert_eq!(open().await.unwrap().status(), 200);

    gate.reload("this is [ not toml");
    gate.until_logged(&["config reload refused", "does not load"])
        .await;
    assert_eq!(open().await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_identity_header_name_since_start_stays_stripped_after_renames() {
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let mut config = GateConfig::new(&wechat, &upstream);
    config
        .set("headers", "openid", "\"X-A-Open\"")
        .set("session", "header", "\"X-A-Token\"");
    let gate = Process::start(&config, &[]);
    gate.until_ready().await;
    let http = reqwest::Client::new();
    let id = login(&http, gate.url("/login"), "rena").await;
    config
        .set("headers", "openid", "\"X-B-Open\"")
        .set("session", "header", "\"X-B-Token\"");
    gate.reload(&config.text());
    gate.until_logged(&["config reloaded"]).await;
    let echo: serde_json::Value = http
        .get(gate.url("/x"))
        .header("X-B-Token", &id)
        // The defaults, and the names configured at start.
        .header("X-WX-OpenId", "forged")
        .header("X_A_Open", "forged")
        .header("X-Session-Id", "forged")
        .header("X-A-Token", "forged")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(!echo.to_string().contains("forged"), "{echo}");
    assert_eq!(
        crate::common::upstream::header_values(&echo, "x-b-open"),
        [crate::common::wechat::openid_of("rena")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_come_from_files_and_a_sighup_re_reads_them() {
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let dir = temp_config("").with_extension("d");
    std::fs::create_dir_all(&dir).unwrap();
    let (secret, token) = (dir.join("appsecret"), dir.join("admin-token"));
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    std::fs::write(&token, "first-admin-token-0001\n").unwrap();
    let mut config = GateConfig::new(&wechat, &upstream);
    config
        .unset("wechat", "secret")
        .set(
            "wechat",
            "secret_file",
            &format!("{:?}", secret.display().to_string()),
        )
        .set(
            "admin",
            "token_file",
            &format!("{:?}", token.display().to_string()),
        );
    let gate = Process::start(&config, &[]);
    gate.until_ready().await;
    let http = reqwest::Client::new();
    let status = |code: &'static str| {
        let (http, url) = (http.clone(), gate.url("/login"));
        async move {
            let body = format!(r#"{{"code":"{code}"}}"#);
            http.post(url)
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let admin = |token: &'static str| {
        let (http, url) = (http.clone(), gate.admin_url("/users/o_nobody"));
        async move {
            http.get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(status("file1").await, 200);
    assert_eq!(admin("first-admin-token-0001").await, 404);

    // A wrong secret in the mounted Secret: WeChat refuses it while it
    // accepts the running one, so the whole reload is refused (the admin
    // token too), logins go on and the replica stays ready.
    std::fs::write(&secret, "a-wrong-secret").unwrap();
    std::fs::write(&token, "second-admin-token-02").unwrap();
    gate.reload(&config.text());
    gate.until_logged(&[
        "config reload refused",
        "app wxtestappid0001",
        "40125",
        "AppSecret",
    ])
    .await;
    assert_eq!(
        status("file2").await,
        200,
        "the running secret still serves"
    );
    assert_eq!(admin("first-admin-token-0001").await, 404);
    assert_eq!(
        admin("second-admin-token-02").await,
        401,
        "nothing half-applied"
    );
    let ready = http.get(gate.admin_url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let metrics = |admin_token: &'static str| {
        let (http, url) = (http.clone(), gate.admin_url("/metrics"));
        async move {
            let text = http.get(url).bearer_auth(admin_token).send().await.unwrap();
            text.text().await.unwrap()
        }
    };
    let text = metrics("first-admin-token-0001").await;
    assert!(
        text.contains(r#"wxgate_config_reloads_total{result="refused"} 1"#),
        "{text}"
    );

    // The secret reset on WeChat's side (the running one stops working):
    // the new one in the Secret and a SIGHUP take both, no restart.
    wechat.add_app(crate::common::APPID, "rotated-app-secret-0002");
    assert_eq!(
        status("file3").await,
        502,
        "WeChat refuses the old secret now"
    );
    std::fs::write(&secret, "rotated-app-secret-0002\n").unwrap();
    gate.reload(&config.text());
    gate.until_logged(&["config reloaded"]).await;
    assert_eq!(admin("first-admin-token-0001").await, 401);
    assert_eq!(admin("second-admin-token-02").await, 404);
    crate::common::until("the rotated secret never served", || async {
        status("file4").await == 200
    })
    .await;
    let text = metrics("second-admin-token-02").await;
    assert!(
        text.contains(r#"wxgate_config_reloads_total{result="applied"} 1"#),
        "{text}"
    );
    let logs = gate.logs();
    for secret in ["a-wrong-secret", "rotated-app-secret-0002"] {
        assert!(!logs.contains(secret), "a secret reached a log line");
    }
    assert!(!gate.logs().contains(SECRET), "a secret reached a log line");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_config_refuses_placeholders_and_warns_on_a_secret_in_the_file() {
    let run = |text: &str, env: &[(&str, &str)]| {
        let path = temp_config(text);
        let mut command = Command::new(BIN);
        command.args(["check-config", "--config"]).arg(&path);
        for (k, v) in env {
            command.env(k, v);
        }
        let out = command.output().unwrap();
        let _ = std::fs::remove_file(&path);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let base =
        "[upstream]\nurl = \"http://127.0.0.1:3000\"\n[wechat]\nappid = \"wx1234567890abcdef\"\n";
    let (ok, err) = run(
        base,
        &[("WXGATE_WECHAT_SECRET", "replace-with-your-appsecret")],
    );
    assert!(
        !ok && err.contains("wechat.secret") && err.contains("placeholder"),
        "{err}"
    );
    let redis =
        format!("{base}[session]\nstore = \"redis\"\n[redis]\nurl = \"redis://127.0.0.1:6379\"\n");
    let example_key = "cmVwbGFjZS10aGlzLXdpdGgtMzItcmFuZG9tLWJ5dGU=";
    let (ok, err) = run(
        &redis,
        &[
            ("WXGATE_WECHAT_SECRET", "a-real-secret"),
            ("WXGATE_STORE_KEY", example_key),
        ],
    );
    assert!(
        !ok && err.contains("WXGATE_STORE_KEY") && err.contains("example"),
        "{err}"
    );
    let (ok, err) = run(&format!("{base}secret = \"in-the-file\"\n"), &[]);
    assert!(ok, "{err}");
    assert!(
        err.contains("warning") && err.contains("wechat.secret"),
        "{err}"
    );
    assert!(
        !err.contains("in-the-file"),
        "the secret itself was printed: {err}"
    );
    // A secret shaped like WeChat's (32 hex digits), from the environment.
    let real = "0123456789abcdef0123456789abcdef";
    let (ok, err) = run(base, &[("WXGATE_WECHAT_SECRET", real)]);
    assert!(ok && !err.contains("warning"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_request_id() {
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let mut config = GateConfig::new(&wechat, &upstream);
    config.set("log", "format", r#""json""#);
    let gate = Process::start(&config, &[]);
    gate.until_ready().await;
    let response = reqwest::Client::new()
        .get(gate.url("/orders"))
        .header("x-request-id", "trace-4711")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    gate.until_logged(&["trace-4711"]).await;
    let line = gate
        .logs()
        .lines()
        .find(|l| l.contains("trace-4711"))
        .unwrap()
        .to_owned();
    let json: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
    assert_eq!(json["request_id"], "trace-4711", "{line}");
    assert_eq!(json["status"], 401, "{line}");
    assert_eq!(json["outcome"], "rejected", "{line}");
    // The error the answer carries reaches the line (beside the response, not on it).
    assert_eq!(json["code"], "session_invalid", "{line}");
    assert_eq!(json["level"], "INFO", "{line}");
    assert!(json.get("openid").is_none(), "no user, no openid: {line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_line_says_who_did_what() {
    let (wechat, upstream) = (WeChatDouble::start().await, Upstream::start().await);
    let binding = BindingDouble::start().await;
    let mut config = GateConfig::new(&wechat, &upstream);
    config.set("log", "format", r#""json""#).set(
        "binding",
        "url",
        &format!("\"{}\"", binding.url()),
    );
    let gate = Process::start(&config, &[]);
    gate.until_ready().await;
    let http = reqwest::Client::new();
    let id = login(&http, gate.url("/login"), "vera").await;
    let line_of = |request_id: &str| -> serde_json::Value {
        let logs = gate.logs();
        let line = logs.lines().find(|l| l.contains(request_id)).unwrap();
        serde_json::from_str(line).expect("a JSON log line")
    };
    let send = |path: &str, request_id: &str| {
        http.delete(gate.url(path))
            .header("x-session-id", &id)
            .header("x-request-id", request_id)
            .send()
    };
    assert_eq!(
        send("/orders/7", "req-proxied").await.unwrap().status(),
        200
    );
    // nginx's form of forward-auth: the request asked about is in headers.
    let asked = http
        .get(gate.url("/_wxgate/auth"))
        .header("x-session-id", &id)
        .header("x-request-id", "req-asked")
        .header("x-forwarded-method", "PUT")
        .header("x-forwarded-uri", "/carts/3?x=1")
        .send()
        .await
        .unwrap();
    assert_eq!(asked.status(), 200);
    gate.until_logged(&["req-asked"]).await;
    gate.until_logged(&["req-proxied"]).await;

    let proxied = line_of("req-proxied");
    assert_eq!(
        proxied["openid"],
        crate::common::wechat::openid_of("vera"),
        "{proxied}"
    );
    assert_eq!(
        proxied["user_id"],
        crate::common::binding::account_of(&crate::common::wechat::openid_of("vera")),
        "{proxied}"
    );
    assert_eq!(
        (&proxied["method"], &proxied["path"]),
        (&"DELETE".into(), &"/orders/7".into())
    );
    let asked = line_of("req-asked");
    assert_eq!(
        (&asked["method"], &asked["path"]),
        (&"PUT".into(), &"/carts/3".into()),
        "{asked}"
    );
    assert_eq!(asked["forward_auth"], true, "{asked}");
    assert_eq!(
        asked["openid"],
        crate::common::wechat::openid_of("vera"),
        "{asked}"
    );
}

/// Runs the binary on `text` until it exits (it must fail to start) and
/// returns its exit code and stderr lines.
fn failed_start(text: &str) -> (Option<i32>, Vec<String>) {
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(temp_config(text))
        .env("RUST_BACKTRACE", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("wxgate kept running");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    let lines = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    (status.code(), lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_on_the_same_port_fails_with_one_line_naming_it() {
    let (wechat, upstream) = (WeChatDouble::start().await, Upstream::start().await);
    let mut config = GateConfig::new(&wechat, &upstream);
    config
        .set("server", "threads", "2")
        .set("log", "format", "\"json\"");
    let first = Process::start(&config, &[]);
    let port = first.addr.to_string();
    config.set("server", "listen", &format!("\"{port}\""));
    let (code, mut lines) = failed_start(&config.text());
    assert_eq!(code, Some(1), "{lines:?}");
    // (The test config's secret is in the file and shaped like no WeChat
    // AppSecret, its AppID like no WeChat AppID: start-up warns of each.)
    lines.retain(|l| !l.contains(r#""level":"WARN""#));
    assert_eq!(lines.len(), 1, "one line, no chain or backtrace: {lines:?}");
    let line: serde_json::Value = serde_json::from_str(&lines[0]).expect("a JSON log line");
    assert_eq!(line["level"], "ERROR", "{line}");
    assert!(line["error"].as_str().unwrap().contains(&port), "{line}");
    // The first one still serves alone.
    let response = reqwest::get(format!("http://{port}/x")).await.unwrap();
    assert_eq!(response.status(), 401, "answered by the first wxgate");

    // A config that does not load: one line too, naming the key.
    let (code, lines) = failed_start("[server]\nlisten = \"nowhere\"\n");
    assert_eq!(code, Some(1), "{lines:?}");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("server.listen"), "{lines:?}");
}

/// nginx in front of `replicas`, retrying a request another replica when
/// one refuses or drops the connection (its default for GETs); `/_generation`
/// answers `generation`, to tell when a reload has taken effect.
fn front(listen: SocketAddr, replicas: &[&Process], generation: usize) -> String {
    let servers: String = replicas
        .iter()
        .map(|p| format!("  server {};\n", p.addr))
        .collect();
    format!(
        "upstream wxgate {{\n{servers}  keepalive 16;\n}}\n\
         server {{\n listen {listen};\n \
         location = /_generation {{ return 200 '{generation}'; }}\n \
         location / {{\n  proxy_pass http://wxgate;\n  proxy_http_version 1.1;\n  \
         proxy_set_header Connection \"\";\n  proxy_next_upstream error timeout http_502;\n }}\n}}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_update_on_redis_behind_nginx_fails_no_request_and_loses_no_session() {
    use crate::common::nginx::{Nginx, free_addr};
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let redis = RedisServer::start();
    let mut config = GateConfig::new(&wechat, &upstream);
    config
        .redis(&redis.url())
        .set("server", "drain_timeout", "\"5s\"");
    let old = [Process::start(&config, &[]), Process::start(&config, &[])];
    for p in &old {
        p.until_ready().await;
    }
    let listen = free_addr();
    let nginx = Nginx::start_with_master(&front(listen, &[&old[0], &old[1]], 0), &[listen]).await;
    let http = reqwest::Client::new();
    let url = |path: &str| format!("http://{listen}{path}");
    let mut ids = Vec::new();
    for n in 0..20 {
        ids.push(login(&http, url("/login"), &format!("roll{n}")).await);
    }
    let ids = Arc::new(ids);

    // Four clients, each sending authenticated GETs back to back until
    // told to stop, a connection to nginx each (a client's keep-alive
    // connection closed by nginx's own reload is nginx's race, not wxgate's;
    // nginx keeps its connections to wxgate alive).
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut clients = Vec::new();
    for c in 0..4 {
        let (http, ids, stop, url) = (fresh.clone(), ids.clone(), stop.clone(), url("/x"));
        clients.push(tokio::spawn(async move {
            let (mut sent, mut failed) = (0usize, Vec::new());
            while !stop.load(Ordering::SeqCst) {
                let id = &ids[(c + sent) % ids.len()];
                match http.get(&url).header("x-session-id", id).send().await {
                    Ok(r) if r.status() == 200 => {}
                    Ok(r) => failed.push(format!("{}", r.status())),
                    Err(e) => failed.push(e.to_string()),
                }
                sent += 1;
            }
            (sent, failed)
        }));
    }
    // Asked on a new connection each time: an idle pooled one may be closed
    // by the very reload being waited for (nginx's old workers drop them).
    let generation = |n: usize| {
        let http = fresh.clone();
        let url = url("/_generation");
        async move {
            crate::common::until("nginx never reloaded", || async {
                let seen = match http.get(&url).send().await {
                    Ok(r) => r.text().await.unwrap_or_default(),
                    Err(_) => String::new(),
                };
                seen == n.to_string()
            })
            .await;
        }
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Replace the replicas one at a time, as a Deployment's rollout does:
    // the old one is told to stop (SIGTERM: it drains), its successor
    // starts, the load balancer learns of it.
    let [mut first, second] = old;
    first.signal("TERM");
    let third = Process::start(&config, &[]);
    third.until_ready().await;
    nginx.reload(&front(listen, &[&second, &third], 1));
    generation(1).await;
    assert!(first.wait(Duration::from_secs(10)).success());
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut second = second;
    second.signal("TERM");
    let fourth = Process::start(&config, &[]);
    fourth.until_ready().await;
    nginx.reload(&front(listen, &[&third, &fourth], 2));
    generation(2).await;
    assert!(second.wait(Duration::from_secs(10)).success());
    tokio::time::sleep(Duration::from_millis(300)).await;

    stop.store(true, Ordering::SeqCst);
    let (mut sent, mut failed) = (0, Vec::new());
    for client in clients {
        let (n, f) = client.await.unwrap();
        sent += n;
        failed.extend(f);
    }
    assert!(sent > 100, "only {sent} requests were sent");
    assert!(
        failed.is_empty(),
        "{} of {sent} failed: {failed:?}",
        failed.len()
    );
    // Every session made before the rollout works on the new replicas.
    for id in ids.iter() {
        for p in [&third, &fourth] {
            let r = http
                .get(p.url("/x"))
                .header("x-session-id", id)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "a session was lost in the rollout");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binding_token_comes_from_its_file_and_a_sighup_re_reads_it() {
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let binding = BindingDouble::start().await;
    let dir = temp_config("").with_extension("binding.d");
    std::fs::create_dir_all(&dir).unwrap();
    let token = dir.join("binding-token");
    std::fs::write(&token, "first-binding-token\n").unwrap();
    let mut config = GateConfig::new(&wechat, &upstream);
    config
        .set("binding", "url", &format!("\"{}\"", binding.url()))
        .set(
            "binding",
            "token_file",
            &format!("{:?}", token.display().to_string()),
        );
    let gate = Process::start(&config, &[]);
    gate.until_ready().await;
    let http = reqwest::Client::new();
    login(&http, gate.url("/login"), "tess").await;
    std::fs::write(&token, "second-binding-token\n").unwrap();
    gate.reload(&config.text());
    gate.until_logged(&["config reloaded"]).await;
    login(&http, gate.url("/login"), "theo").await;
    let sent: Vec<Option<String>> = binding.calls().into_iter().map(|(auth, _)| auth).collect();
    assert_eq!(
        sent,
        [
            Some("Bearer first-binding-token".to_owned()),
            Some("Bearer second-binding-token".to_owned()),
        ]
    );
    let logs = gate.logs();
    for token in ["first-binding-token", "second-binding-token"] {
        assert!(!logs.contains(token), "a token reached a log line");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_key_comes_from_its_file_and_a_sighup_refuses_a_new_one_on_redis() {
    use base64::Engine;
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let redis = RedisServer::start();
    let dir = temp_config("").with_extension("store-key.d");
    std::fs::create_dir_all(&dir).unwrap();
    let key_file = dir.join("store-key");
    let key = |byte: u8| base64::engine::general_purpose::STANDARD.encode([byte; 32]);
    std::fs::write(&key_file, format!("{}\n", key(7))).unwrap();
    let mut config = GateConfig::new(&wechat, &upstream);
    config.redis(&redis.url()).set(
        "session",
        "store_key_file",
        &format!("{:?}", key_file.display().to_string()),
    );
    let gate = Process::start(&config, &[]);
    gate.until_ready().await;
    let http = reqwest::Client::new();
    let id = login(&http, gate.url("/login"), "sven").await;
    // The session_key sealed at rest with the file's key.
    let dump = format!("{:?}", redis.dump());
    assert!(!dump.contains(&wechat.current_key("sven")), "{dump}");
    assert!(dump.contains(r#"\"key\":\"v1:"#), "{dump}");
    // Re-read on SIGHUP: the same key reloads; another would leave every
    // sealed record unreadable, so it needs a restart and is refused.
    gate.reload(&config.text());
    gate.until_logged(&["config reloaded"]).await;
    std::fs::write(&key_file, key(8)).unwrap();
    gate.reload(&config.text());
    gate.until_logged(&["config reload refused", "session.store"])
        .await;
    let still = http
        .get(gate.url("/x"))
        .header("x-session-id", &id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        still.status(),
        200,
        "the running key still opens the session"
    );
    for k in [key(7), key(8)] {
        assert!(!gate.logs().contains(&k), "a store key reached a log line");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rediss_url_speaks_tls_to_redis_verified_against_the_trusted_roots() {
    let dir = temp_config("").with_extension("rediss.d");
    crate::common::certs::test_ca(&dir);
    let other = dir.join("other");
    crate::common::certs::test_ca(&other);
    let redis = RedisServer::start_tls(&dir);
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let mut config = GateConfig::new(&wechat, &upstream);
    config.redis(&redis.tls_url());
    let http = reqwest::Client::new();
    let ca = |d: &std::path::Path| d.join("ca.pem").display().to_string();
    // rustls reads the roots from SSL_CERT_FILE: with another CA there, the
    // server's certificate is not trusted and nothing is stored over it.
    let untrusted = Process::start(&config, &[("SSL_CERT_FILE", &ca(&other))]);
    let refused = http
        .post(untrusted.url("/login"))
        .body(r#"{"code":"ulla"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503, "{}", untrusted.logs());
    assert!(redis.dump().is_empty(), "stored over an unverified link");
    // With the CA that signed it: logins and sessions go through TLS.
    let gate = Process::start(&config, &[("SSL_CERT_FILE", &ca(&dir))]);
    gate.until_ready().await;
    let id = login(&http, gate.url("/login"), "tess").await;
    let keys: Vec<String> = redis.dump().into_iter().map(|(k, _)| k).collect();
    assert!(
        keys.iter().any(|k| k.starts_with("wxgate:s:")),
        "no session in Redis: {keys:?}"
    );
    let served = http
        .get(gate.url("/x"))
        .header("x-session-id", &id)
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Behind an ingress (every request from its address, the client in
/// `X-Forwarded-For`), as the shipped configs set it up: with
/// `trusted_proxies` naming the ingress, each forwarded client has its own
/// login bucket; without, they share one, and wxgate counts every such
/// request and says so once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_an_ingress_logins_count_per_forwarded_client_and_an_untrusted_one_is_warned_about()
{
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let mut config = GateConfig::new(&wechat, &upstream);
    // Beyond loopback, as in a pod; a strict limit so sharing one bucket shows.
    config
        .set("server", "listen", "\"0.0.0.0:0\"")
        .set("login", "burst", "2")
        .set("login", "rate", "0.1");
    let http = reqwest::Client::new();
    let logins = |gate: &Process, tag: &'static str| {
        let (http, url) = (http.clone(), gate.url("/login"));
        async move {
            let mut statuses = Vec::new();
            for n in 0..120u32 {
                let status = http
                    .post(&url)
                    .header("x-forwarded-for", format!("198.51.{}.{}", n / 100, n % 100))
                    .body(format!(r#"{{"code":"{tag}{n}"}}"#))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16();
                statuses.push(status);
            }
            statuses
        }
    };
    let untrusted_forwarded = |gate: &Process| {
        let url = gate.admin_url("/metrics");
        let http = http.clone();
        async move {
            let text = http.get(url).send().await.unwrap().text().await.unwrap();
            crate::common::metric(&text, "wxgate_untrusted_forwarded_total")
        }
    };

    let mut ingress = config.clone();
    ingress.set("server", "trusted_proxies", r#"["127.0.0.0/8"]"#);
    let gate = Process::start(&ingress, &[]);
    let statuses = logins(&gate, "in").await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(untrusted_forwarded(&gate).await, 0.0);
    assert!(!gate.logs().contains("trusted_proxies"), "{}", gate.logs());

    let gate = Process::start(&config, &[]);
    let statuses = logins(&gate, "un").await;
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert!(limited >= 100, "one shared bucket: {statuses:?}");
    assert_eq!(untrusted_forwarded(&gate).await, 120.0);
    // Any request counts, not only logins; one without the header does not.
    let proxied = http
        .get(gate.url("/x"))
        .header("x-forwarded-for", "198.51.100.7")
        .send()
        .await
        .unwrap();
    assert_eq!(proxied.status(), 401);
    http.get(gate.url("/x")).send().await.unwrap();
    assert_eq!(untrusted_forwarded(&gate).await, 121.0);
    gate.until_logged(&["X-Forwarded-For", "server.trusted_proxies"])
        .await;
    let warnings = gate
        .logs()
        .matches("requests come with X-Forwarded-For")
        .count();
    assert_eq!(warnings, 1, "warned once:\n{}", gate.logs());
}
