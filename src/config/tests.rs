use std::time::Duration;

use super::*;

const MINIMAL: &str = r#"
[upstream]
url = "http://127.0.0.1:3000"
[wechat]
appid = "wx1234567890abcdef"
secret = "file-secret"
"#;

fn no_env(_: &str) -> Option<String> {
    None
}

fn error_key(text: &str) -> String {
    match Config::parse(text, &no_env) {
        Err(ConfigError::Invalid { key, .. }) => key.to_owned(),
        Err(other) => format!("other: {other}"),
        Ok(_) => "ok".to_owned(),
    }
}

#[test]
fn defaults() {
    let c = Config::parse(MINIMAL, &no_env).unwrap();
    assert_eq!(c.server.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(c.server.drain_timeout, Duration::from_secs(20));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(c.server.threads, cores);
    assert_eq!(c.upstreams[0].timeout, Duration::from_secs(30));
    assert_eq!(c.upstreams[0].path_prefix, "");
    assert_eq!(c.apps[0].api_base, "https://api.weixin.qq.com");
    assert_eq!(c.apps[0].mode, WechatMode::Live);
    assert_eq!(c.session.ttl, Duration::from_secs(7 * 86400));
    assert_eq!(c.session.idle, None);
    assert_eq!(c.session.header, "x-session-id");
    assert!(!c.session.forward_session_header);
    assert_eq!(
        (c.routes.login.as_str(), c.routes.logout.as_str()),
        ("/login", "/logout")
    );
    assert_eq!(c.headers.openid, "x-wx-openid");
    assert_eq!(c.headers.unionid, "x-wx-unionid");
    assert_eq!(c.headers.appid, "x-wx-appid");
    assert_eq!(c.headers.phone, None);
    assert_eq!(
        (
            c.routes.decrypt.as_str(),
            c.routes.phone.as_str(),
            c.routes.session.as_str()
        ),
        ("/_wxgate/decrypt", "/_wxgate/phone", "/_wxgate/session")
    );
    assert_eq!(c.routes.prefix, "/_wxgate");
    assert!(!c.demo_echo_upstream);
    assert_eq!(c.server.max_in_flight, DEFAULT_MAX_IN_FLIGHT);
    assert_eq!(c.server.body_idle_timeout, Duration::from_secs(30));
    assert!(c.server.trusted_proxies.is_empty());
    assert_eq!(c.apps[0].max_in_flight, 64);
    assert_eq!(c.login.period, Duration::from_millis(100));
    assert_eq!(c.login.burst.get(), 100);
}

#[test]
fn load_defences() {
    let text = format!(
        "{MINIMAL}max_in_flight = 3
[server]
max_in_flight = 7
body_idle_timeout = \"2s\"
\
         trusted_proxies = [\"10.0.0.0/8\", \"192.168.1.7\", \"fd00::1/8\"]
\
         [login]
rate = 0.5
burst = 3
"
    );
    let c = Config::parse(&text, &no_env).unwrap();
    assert_eq!(c.apps[0].max_in_flight, 3);
    assert_eq!(c.server.max_in_flight, 7);
    assert_eq!(c.server.body_idle_timeout, Duration::from_secs(2));
    let nets: Vec<String> = c
        .server
        .trusted_proxies
        .iter()
        .map(ToString::to_string)
        .collect();
    // A bare address is one host; host bits of a CIDR are dropped.
    assert_eq!(nets, ["10.0.0.0/8", "192.168.1.7/32", "fd00::/8"]);
    assert_eq!(c.login.period, Duration::from_secs(2));
    assert_eq!(c.login.burst.get(), 3);
}

#[test]
fn upstream_dial_address() {
    for (url, address) in [
        ("http://127.0.0.1:3000", "127.0.0.1:3000"),
        ("http://app", "app:80"),
        ("http://app:8081/base/", "app:8081"),
        ("http://[::1]:3000", "[::1]:3000"),
        ("http://[::1]", "[::1]:80"),
        // https: 443 unless named (the system's roots verify it).
        ("https://app", "app:443"),
        ("https://app:8443", "app:8443"),
    ] {
        let text = MINIMAL.replace("http://127.0.0.1:3000", url);
        let c = Config::parse(&text, &no_env).unwrap();
        assert_eq!(c.upstreams[0].address(), address, "{url}");
    }
}

#[test]
fn environment_overrides_the_secret() {
    let env = |k: &str| (k == SECRET_ENV).then(|| "env-secret".to_owned());
    let c = Config::parse(MINIMAL, &env).unwrap();
    assert_eq!(c.apps[0].secret.expose(), "env-secret");
    // And supplies it when the file has none.
    let text = MINIMAL.replace("secret = \"file-secret\"", "");
    assert_eq!(
        Config::parse(&text, &env).unwrap().apps[0].secret.expose(),
        "env-secret"
    );
    assert_eq!(error_key(&text), "wechat.secret");
}

#[test]
fn the_admin_token_comes_from_the_file_or_the_environment_and_must_be_long() {
    let file = format!("{MINIMAL}[admin]\ntoken = \"0123456789abcdef\"\n");
    let c = Config::parse(&file, &no_env).unwrap();
    assert_eq!(c.admin.token.unwrap().expose(), "0123456789abcdef");
    let env = |k: &str| (k == crate::config::ADMIN_TOKEN_ENV).then(|| "f".repeat(32));
    let c = Config::parse(&file, &env).unwrap();
    assert_eq!(c.admin.token.unwrap().expose(), "f".repeat(32));
    // An empty variable is no token.
    let empty = |k: &str| (k == crate::config::ADMIN_TOKEN_ENV).then(String::new);
    assert_eq!(Config::parse(MINIMAL, &empty).unwrap().admin.token, None);
    assert_eq!(
        error_key(&format!("{MINIMAL}[admin]\ntoken = \"short\"\n")),
        "admin.token"
    );
    let spaced = format!("{MINIMAL}[admin]\ntoken = \"0123456789 abcdef\"\n");
    assert_eq!(error_key(&spaced), "admin.token");
    let short = |k: &str| (k == crate::config::ADMIN_TOKEN_ENV).then(|| "abc".to_owned());
    match Config::parse(MINIMAL, &short) {
        Err(ConfigError::Invalid { key, .. }) => assert_eq!(key, "WXGATE_ADMIN_TOKEN"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn durations_and_prefix() {
    let text = format!(
        "{MINIMAL}[session]\nttl = \"1h 30m\"\nidle = \"500ms\"\n[server]\ndrain_timeout = \"3s\"\n"
    )
    .replace("http://127.0.0.1:3000", "http://127.0.0.1:3000/api/");
    let c = Config::parse(&text, &no_env).unwrap();
    assert_eq!(c.session.ttl, Duration::from_secs(5400));
    assert_eq!(c.session.idle, Some(Duration::from_millis(500)));
    assert_eq!(c.server.drain_timeout, Duration::from_secs(3));
    assert_eq!(c.upstreams[0].path_prefix, "/api");
}

#[test]
fn invalid_values_name_their_key() {
    let cases = [
        ("[server]\nlisten = \"localhost\"", "server.listen"),
        ("[server]\ndrain_timeout = \"soon\"", "server.drain_timeout"),
        ("[server]\nthreads = 0", "server.threads"),
        ("[server]\nmax_in_flight = 0", "server.max_in_flight"),
        (
            "[server]\nbody_idle_timeout = \"0s\"",
            "server.body_idle_timeout",
        ),
        (
            "[server]\ntrusted_proxies = [\"10.0.0.0/33\"]",
            "server.trusted_proxies",
        ),
        (
            "[server]\ntrusted_proxies = [\"proxy.local\"]",
            "server.trusted_proxies",
        ),
        ("[login]\nrate = 0", "login.rate"),
        ("[login]\nrate = -1.5", "login.rate"),
        ("[login]\nburst = 0", "login.burst"),
        ("[session]\nttl = \"0s\"", "session.ttl"),
        ("[session]\nidle = \"3 parsecs\"", "session.idle"),
        ("[session]\ncapacity = 0", "session.capacity"),
        ("[session]\nheader = \"bad header\"", "session.header"),
        ("[session]\nheader = \"Connection\"", "session.header"),
        ("[routes]\nlogin = \"login\"", "routes.login"),
        ("[routes]\nlogout = \"/login\"", "routes.logout"),
        ("[routes]\nphone = \"/_wxgate/decrypt\"", "routes.phone"),
        ("[routes]\nsession = \"/_wxgate/phone\"", "routes.session"),
        ("[routes]\nprefix = \"/\"", "routes.prefix"),
        ("[binding]\ntimeout = \"1s\"", "binding.url"),
        ("[binding]\nurl = \"ftp://h/bind\"", "binding.url"),
        ("[binding]\nurl = \"/bind\"", "binding.url"),
        ("[binding]\nurl = \"http://u:p@h/bind\"", "binding.url"),
        (
            "[binding]\nurl = \"http://h/bind\"\ntimeout = \"0s\"",
            "binding.timeout",
        ),
        ("[headers]\nuser_id = \"X-WX-OpenId\"", "headers.user_id"),
        ("[routes]\nprefix = \"_wxgate\"", "routes.prefix"),
        ("[headers]\nphone = \"X-WX-OpenId\"", "headers.phone"),
        ("[routes]\npublic = [\"/a/../b\"]", "routes.public"),
        ("[routes]\npublic = [\"/%7Euser\"]", "routes.public"),
        ("[routes]\npublic = [\"//static\"]", "routes.public"),
        ("[routes]\npublic = [\"/a%2Fb\"]", "routes.public"),
        ("[routes]\nlogin = \"/log%69n\"", "routes.login"),
        (
            "[routes.normalize]\npath_params = \"yes\"",
            "routes.normalize.path_params",
        ),
        (
            "[routes.normalize]\nencoded_slashes = \"decode\"",
            "routes.normalize.encoded_slashes",
        ),
        ("[headers]\nopenid = \"X_Session_Id\"", "headers.openid"),
        ("[headers]\nunionid = \"x_wx_openid\"", "headers.unionid"),
        ("[headers]\nappid = \"TE\"", "headers.appid"),
        ("[routes]\nauth = \"/login\"", "routes.auth"),
        ("[routes]\nauth = \"auth\"", "routes.auth"),
        ("[routes]\npublic = [\"get /a\"]", "routes.public"),
        ("[routes]\npublic = [\"GET a\"]", "routes.public"),
        ("[admin]\nlisten = \"9090\"", "admin.listen"),
        ("[log]\nformat = \"yaml\"", "log.format"),
        ("[log]\nlevel = \"wxgate=loud\"", "log.level"),
        ("[log]\nlevel = \"verbose\"", "log.level"),
        ("[log]\nlevel = \"info,wxgate\"", "log.level"),
        ("[server]\ndrain_timeout = \"0s\"", "server.drain_timeout"),
        (
            "[session]\nstore = \"redis\"\n[redis]\nurl = \"redis://127.0.0.1\"\nconnect_timeout = \"0s\"",
            "redis.connect_timeout",
        ),
    ];
    for (extra, key) in cases {
        assert_eq!(error_key(&format!("{MINIMAL}{extra}\n")), key, "{extra}");
    }
    let upstream = [
        "ftp://127.0.0.1:3000",
        "ws://127.0.0.1:3000",
        "https://127.0.0.1:3000/?a=1",
        "http://127.0.0.1:3000/?a=1",
        "not a url",
        // The URL's path must be canonical: it is the space the backend is confined to.
        "http://127.0.0.1:3000/v1/../x",
        "http://127.0.0.1:3000/v%31",
        "http://127.0.0.1:3000/a%2Fb",
    ];
    for url in upstream {
        assert_eq!(
            error_key(&MINIMAL.replace("http://127.0.0.1:3000", url)),
            "upstream.url",
            "{url}"
        );
    }
    assert_eq!(
        error_key("[wechat]\nappid = \"wx1\"\nsecret = \"s\"\n"),
        "upstream.url"
    );
    assert_eq!(
        error_key(&MINIMAL.replace("wx1234567890abcdef", "")),
        "wechat.appid"
    );
    assert_eq!(
        error_key(&MINIMAL.replace("wx1234567890abcdef", "wx 1")),
        "wechat.appid"
    );
    assert_eq!(
        error_key(&format!("{MINIMAL}api_base = \"ftp://x\"\n")),
        "wechat.api_base"
    );
    assert_eq!(
        error_key(&format!("{MINIMAL}mode = \"sandbox\"\n")),
        "wechat.mode"
    );
    assert_eq!(
        error_key(&format!("{MINIMAL}max_in_flight = 0\n")),
        "wechat.max_in_flight"
    );
    assert_eq!(
        error_key(&format!("{MINIMAL}timeout = \"0s\"\n")),
        "wechat.timeout"
    );
    assert_eq!(
        error_key(&MINIMAL.replace("3000\"", "3000\"\ntimeout = \"0s\"")),
        "upstream.timeout"
    );
}

#[test]
fn unknown_keys_are_errors_that_name_the_key() {
    for (text, key) in [
        (format!("{MINIMAL}[session]\ntll = \"1h\"\n"), "tll"),
        (format!("{MINIMAL}[sesion]\n"), "sesion"),
    ] {
        let e = Config::parse(&text, &no_env).unwrap_err();
        assert!(matches!(e, ConfigError::Syntax { .. }));
        assert!(e.to_string().contains(key), "{e}");
    }
}

#[test]
fn syntax_and_type_errors_name_line_and_key_never_the_value() {
    let secret = "S3cr3tV4lu3";
    let cases = [
        // A type error: the secret written as a number-like string is fine,
        // as an array it is the wrong type.
        (
            MINIMAL.replace("\"file-secret\"", &format!("[\"{secret}\"]")),
            "key `wechat.secret`",
        ),
        (
            MINIMAL.replace("\"file-secret\"", "42"),
            "key `wechat.secret`",
        ),
        // A syntax error on the secret's line (an unterminated string).
        (
            MINIMAL.replace("\"file-secret\"", &format!("\"{secret}")),
            "key `wechat.secret`",
        ),
        (
            format!("{MINIMAL}[session]\nttl = {secret}\n"),
            "key `session.ttl`",
        ),
    ];
    for (text, key) in cases {
        let e = Config::parse(&text, &no_env).unwrap_err().to_string();
        assert!(!e.contains(secret), "{e}");
        assert!(e.contains(key), "{e}");
        assert!(e.starts_with("line "), "{e}");
    }
}

#[test]
fn mock_mode_refuses_public_listen_unless_allowed() {
    let mock = format!("{MINIMAL}mode = \"mock\"\n");
    assert_eq!(error_key(&mock), "wechat.mode");
    let loopback = format!("{mock}[server]\nlisten = \"127.0.0.1:8080\"\n");
    assert_eq!(error_key(&loopback), "ok");
    let allowed = format!("{MINIMAL}mode = \"mock\"\nmock_allow_non_loopback = true\n");
    assert_eq!(error_key(&allowed), "ok");
    // Mock mode needs no secret.
    let no_secret = loopback.replace("secret = \"file-secret\"", "");
    assert_eq!(error_key(&no_secret), "ok");
}

#[test]
fn demo_echo_needs_mock_mode_and_a_loopback_upstream() {
    let live = format!("{MINIMAL}[demo]\necho_upstream = true\n");
    assert_eq!(
        error_key(&live),
        "demo.echo_upstream",
        "never in production"
    );
    let demo = format!(
        "{MINIMAL}mode = \"mock\"\n[server]\nlisten = \"127.0.0.1:8080\"\n[demo]\necho_upstream = true\n"
    );
    assert_eq!(error_key(&demo), "ok");
    let remote = demo.replace("http://127.0.0.1", "http://backend.svc");
    assert_eq!(error_key(&remote), "demo.echo_upstream");
}

#[test]
fn store_selection_and_redis_settings() {
    let c = Config::parse(MINIMAL, &no_env).unwrap();
    assert!(matches!(c.store, StoreConfig::Memory));

    let redis = format!(
        "{MINIMAL}[session]\nstore = \"redis\"\n[redis]\nurl = \"redis://:pw@127.0.0.1:6379/2\"\n"
    );
    let c = Config::parse(&redis, &no_env).unwrap();
    let StoreConfig::Redis(r) = &c.store else {
        panic!("redis expected")
    };
    assert!(matches!(&r.nodes, RedisNodes::Single(u) if u.ends_with("/2")));
    assert_eq!(r.key_prefix, "wxgate:");
    assert_eq!(r.local_ttl, Duration::from_secs(5));
    assert_eq!(r.command_timeout, Duration::from_millis(250));
    assert!(r.store_key.is_none());

    let env = |k: &str| match k {
        STORE_KEY_ENV => Some("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".to_owned()),
        REDIS_URL_ENV => Some("rediss://:secret@redis.example:6380".to_owned()),
        _ => None,
    };
    let c = Config::parse(&redis, &env).unwrap();
    let StoreConfig::Redis(r) = &c.store else {
        panic!("redis expected")
    };
    assert_eq!(
        r.store_key,
        Some(StoreKey(*b"0123456789abcdef0123456789abcdef"))
    );
    assert!(matches!(&r.nodes, RedisNodes::Single(u) if u.starts_with("rediss://")));
    assert!(
        !format!("{r:?}").contains("MDEy"),
        "the store key is never printed"
    );

    let cluster = format!(
        "{MINIMAL}[session]\nstore = \"redis\"\n[redis]\ncluster = [\"redis://10.0.0.1:6379\", \"redis://10.0.0.2:6379\"]\n"
    );
    let c = Config::parse(&cluster, &no_env).unwrap();
    assert!(
        matches!(&c.store, StoreConfig::Redis(r) if matches!(&r.nodes, RedisNodes::Cluster(n) if n.len() == 2))
    );
}

#[test]
fn bad_store_settings_name_their_key() {
    let redis = |extra: &str| format!("{MINIMAL}[session]\nstore = \"redis\"\n[redis]\n{extra}\n");
    let cases = [
        (
            format!("{MINIMAL}[session]\nstore = \"etcd\"\n"),
            "session.store",
        ),
        (
            format!("{MINIMAL}[redis]\nurl = \"redis://127.0.0.1\"\n"),
            "session.store",
        ),
        (redis(""), "redis.url"),
        (redis("url = \"http://127.0.0.1\""), "redis.url"),
        (
            redis("url = \"redis://127.0.0.1\"\ncluster = [\"redis://127.0.0.1\"]"),
            "redis.cluster",
        ),
        (redis("cluster = [\"tcp://x\"]"), "redis.cluster"),
        (
            redis("url = \"redis://127.0.0.1\"\ncommand_timeout = \"0s\""),
            "redis.command_timeout",
        ),
    ];
    for (text, key) in cases {
        assert_eq!(error_key(&text), key, "{text}");
    }
    let bad_key = |k: &str| (k == STORE_KEY_ENV).then(|| "c2hvcnQ=".to_owned());
    match Config::parse(&redis("url = \"redis://127.0.0.1\""), &bad_key) {
        Err(ConfigError::Invalid { key, .. }) => assert_eq!(key, STORE_KEY_ENV),
        other => panic!("{other:?}"),
    }
    // A password in the URL never reaches an error message.
    let e = Config::parse(&redis("url = \"redis://:hunter2@[bad\""), &no_env).unwrap_err();
    assert!(!e.to_string().contains("hunter2"), "{e}");
}

#[test]
fn admin_log_and_forward_auth_settings() {
    let c = Config::parse(MINIMAL, &no_env).unwrap();
    assert_eq!(c.admin.listen.to_string(), "127.0.0.1:9090");
    assert_eq!(
        (c.log.format, c.log.level.as_str()),
        (LogFormat::Auto, "info")
    );
    assert_eq!(c.routes.auth.as_deref(), Some("/_wxgate/auth"));
    // Another prefix moves every default route under it, and a trailing `/` is the same.
    let c = Config::parse(&format!("{MINIMAL}[routes]\nprefix = \"/gw/\"\n"), &no_env).unwrap();
    assert_eq!(
        (
            c.routes.prefix.as_str(),
            c.routes.decrypt.as_str(),
            c.routes.auth.as_deref()
        ),
        ("/gw", "/gw/decrypt", Some("/gw/auth"))
    );

    let text = format!(
        "{MINIMAL}[routes]\nauth = \"\"\npublic = [\"GET /api/products\", \"/static\"]\n\
         [admin]\nlisten = \"0.0.0.0:9091\"\n[log]\nformat = \"json\"\nlevel = \"debug\"\n"
    );
    let c = Config::parse(&text, &no_env).unwrap();
    assert_eq!(c.routes.auth, None);
    assert_eq!(
        c.routes.public,
        [
            PublicRoute {
                method: Some(http::Method::GET),
                path: "/api/products".into()
            },
            PublicRoute {
                method: None,
                path: "/static".into()
            }
        ]
    );
    assert_eq!(c.admin.listen.to_string(), "0.0.0.0:9091");
    assert_eq!(
        (c.log.format, c.log.level.as_str()),
        (LogFormat::Json, "debug")
    );

    // WXGATE_LOG overrides the file, and a bad value names the variable.
    let env = |k: &str| (k == LOG_ENV).then(|| "trace".to_owned());
    assert_eq!(Config::parse(&text, &env).unwrap().log.level, "trace");
    let bad = |k: &str| (k == LOG_ENV).then(|| "wxgate=loud".to_owned());
    assert!(matches!(
        Config::parse(&text, &bad),
        Err(ConfigError::Invalid { key: LOG_ENV, .. })
    ));
}

#[test]
fn several_apps_each_with_its_secret_from_the_environment() {
    let text = format!(
        "{MINIMAL}[[apps]]\nappid = \"wxshop\"\nsecret_env = \"WXGATE_SECRET_SHOP\"\n\
         [[apps]]\nappid = \"wxclub\"\nmode = \"mock\"\nmock_allow_non_loopback = true\n"
    );
    let env = |k: &str| (k == "WXGATE_SECRET_SHOP").then(|| "shop-secret".to_owned());
    let c = Config::parse(&text, &env).unwrap();
    let apps: Vec<(&str, bool, WechatMode)> = c
        .apps
        .iter()
        .map(|a| (a.appid.as_str(), a.single_app_keys, a.mode))
        .collect();
    assert_eq!(
        apps,
        [
            ("wx1234567890abcdef", true, WechatMode::Live),
            ("wxshop", false, WechatMode::Live),
            ("wxclub", false, WechatMode::Mock),
        ]
    );
    assert_eq!(c.apps[1].secret.expose(), "shop-secret");
    // [[apps]] alone is valid too; its first entry is the default app.
    let only = "[upstream]\nurl = \"http://127.0.0.1:3000\"\n[[apps]]\nappid = \"wxshop\"\nsecret_env = \"S\"\n";
    let env = |k: &str| (k == "S").then(|| "s".to_owned());
    let c = Config::parse(only, &env).unwrap();
    assert_eq!(c.apps.len(), 1);
    assert!(!c.apps[0].single_app_keys);
}

#[test]
fn bad_apps_name_their_key() {
    let app = |extra: &str| format!("{MINIMAL}[[apps]]\nappid = \"wxshop\"\n{extra}\n");
    let env = |k: &str| (k == "SHOP").then(|| "s".to_owned());
    let key = |text: &str| match Config::parse(text, &env) {
        Err(ConfigError::Invalid { key, .. }) => key.to_owned(),
        other => format!("{other:?}"),
    };
    assert_eq!(
        key(&app("")),
        "apps.secret_env",
        "a live app needs its secret"
    );
    assert_eq!(key(&app("secret_env = \"UNSET\"")), "apps.secret_env");
    assert_eq!(key(&app("secret = \"in-the-file\"")), "apps.secret");
    assert_eq!(
        key(&app("secret_env = \"SHOP\"\nmode = \"x\"")),
        "apps.mode"
    );
    assert_eq!(
        key(&app("secret_env = \"SHOP\"\ntimeout = \"0s\"")),
        "apps.timeout"
    );
    assert_eq!(
        key(&app("secret_env = \"SHOP\"\napi_base = \"ftp://x\"")),
        "apps.api_base"
    );
    let twice =
        format!("{MINIMAL}[[apps]]\nappid = \"wx1234567890abcdef\"\nsecret_env = \"SHOP\"\n");
    assert_eq!(key(&twice), "apps.appid");
    assert_eq!(
        key(&format!("{MINIMAL}[[apps]]\nsecret_env = \"SHOP\"\n")),
        "apps.appid"
    );
    // Mock mode's loopback rule holds for every app.
    let mock = app("mode = \"mock\"");
    assert_eq!(key(&mock), "apps.mode");
}

#[test]
fn several_upstreams_by_prefix() {
    let text = format!(
        "{MINIMAL}[[upstreams]]\nprefix = \"/shop/\"\nurl = \"http://shop:8080/v1\"\n\
         strip_prefix = true\ntimeout = \"3s\"\npublic = [\"GET /shop/static\"]\n"
    );
    let c = Config::parse(&text, &no_env).unwrap();
    assert_eq!(c.upstreams.len(), 2);
    assert_eq!(
        (c.upstreams[0].prefix.as_str(), c.upstreams[0].strip_prefix),
        ("/", false)
    );
    let shop = &c.upstreams[1];
    assert_eq!(shop.prefix, "/shop");
    assert!(shop.strip_prefix);
    assert_eq!(shop.path_prefix, "/v1");
    assert_eq!(shop.timeout, Duration::from_secs(3));
    assert_eq!(shop.public[0].path, "/shop/static");
    // Without [upstream], only [[upstreams]].
    let only = "[wechat]\nappid = \"wx1\"\nsecret = \"s\"\n[[upstreams]]\nprefix = \"/a\"\nurl = \"http://a\"\n";
    assert_eq!(Config::parse(only, &no_env).unwrap().upstreams.len(), 1);
}

#[test]
fn bad_upstreams_name_their_key() {
    let entry = |body: &str| format!("{MINIMAL}[[upstreams]]\n{body}\n");
    let cases = [
        ("url = \"http://a\"", "upstreams.prefix"),
        ("prefix = \"/a\"", "upstreams.url"),
        ("prefix = \"a\"\nurl = \"http://a\"", "upstreams.prefix"),
        (
            "prefix = \"/a/../b\"\nurl = \"http://a\"",
            "upstreams.prefix",
        ),
        ("prefix = \"/\"\nurl = \"http://a\"", "upstreams.prefix"),
        ("prefix = \"/a\"\nurl = \"ftp://a\"", "upstreams.url"),
        (
            "prefix = \"/a\"\nurl = \"http://a\"\ntls_server_name = \"a\"",
            "upstreams.tls_server_name",
        ),
        (
            "prefix = \"/a\"\nurl = \"http://a\"\ntimeout = \"0s\"",
            "upstreams.timeout",
        ),
        (
            "prefix = \"/a\"\nurl = \"http://a\"\npublic = [\"/b\"]",
            "upstreams.public",
        ),
        (
            "prefix = \"/a\"\nurl = \"http://a\"\npublic = [\"get /a\"]",
            "upstreams.public",
        ),
        (
            "prefix = \"/a\"\nurl = \"http://a\"\nupgrades = [\"web socket\"]",
            "upstreams.upgrades",
        ),
    ];
    for (body, key) in cases {
        assert_eq!(error_key(&entry(body)), key, "{body}");
    }
}
