//! Properties of the parsers that see client bytes, over generated input
//! (proptest; the same parsers have cargo-fuzz targets in fuzz/):
//!
//! - a canonical path (what every decision takes and the backend gets)
//!   carries nothing backends read differently, and one judged public
//!   never resolves outside its prefix under any one reading a backend may
//!   apply (raw, percent-decoded once, `\` as `/`, Java's `;params` dropped);
//! - no header whose letters and digits fold to an identity name survives
//!   the strip;
//! - session ids, forwarded URIs and encrypted data never panic, and only
//!   well-formed input gets through.

use http::Method;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;
use wxgate::Config;
use wxgate::config::secret::Secret;
use wxgate::domain::identity::IdentityHeaders;
use wxgate::domain::route::{Route, Routes, forwarded_path};
use wxgate::domain::session::SessionId;
use wxgate::domain::wechat::wxdata;
use wxgate::wire::canonical_path::{PathPolicy, canonicalize};

/// Bytes that may be a session id: any bytes, and 43 characters of the
/// URL-safe base64 alphabet (a quarter of which decode: the last one's two
/// spare bits must be zero), so the property meets ids that parse.
fn session_id_like() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        "[A-Za-z0-9_-]{43}".prop_map(String::into_bytes),
    ]
}

/// How often `strategy`'s values meet `holds`, over `n` deterministic draws.
fn share<T: std::fmt::Debug>(
    strategy: impl Strategy<Value = T>,
    n: usize,
    holds: impl Fn(&T) -> bool,
) -> f64 {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let hits = (0..n)
        .filter(|_| holds(&strategy.new_tree(&mut runner).unwrap().current()))
        .count();
    hits as f64 / n as f64
}

/// The properties above hold vacuously if their inputs never pass the
/// first check: the generators must reach the accepted and public cases.
#[test]
fn the_generators_reach_the_cases_the_properties_are_about() {
    let accepted = share(path(), 4000, |p| {
        canonicalize(p, &PathPolicy::default()).is_ok()
    });
    let routes = Routes::new(&config("[routes]\npublic = [\"/public\"]\n").routes);
    let public = share(path(), 4000, |p| {
        canonicalize(p, &PathPolicy::default())
            .is_ok_and(|c| routes.classify(&Method::GET, &c) == Route::Public)
    });
    let ids = share(session_id_like(), 4000, |b| SessionId::parse(b).is_some());
    assert!(accepted > 0.2, "paths accepted: {accepted}");
    assert!(public > 0.05, "paths public: {public}");
    assert!(ids > 0.05, "session ids that parse: {ids}");
}

fn config(extra: &str) -> Config {
    let text = format!(
        "[upstream]\nurl = \"http://127.0.0.1:1\"\n[wechat]\nappid = \"wxapp\"\nsecret = \"s\"\n{extra}"
    );
    Config::parse(&text, &|_| None).expect("valid test config")
}

/// Path pieces: mostly plain ones (or ones that decode or resolve to
/// plain ones), so that many paths are accepted and some public; and the
/// pieces that have fooled proxies and backends.
fn segment() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "public", "admin", "a", "b", "%70ublic", "p%75blic", "%61dmin", ".", "..", "",
        ]),
        1 => prop::sample::select(vec![
        "public",
        "admin",
        "a",
        "",
        ".",
        "..",
        "%2e",
        "%2e%2e",
        ".%2e",
        "%2E%2E",
        "%2f",
        "..%2f",
        "%5c",
        "\\",
        "..\\",
        ";",
        ";x",
        "..;",
        ".;x",
        "%3b",
        "%252e%252e",
        "public;x",
        "%00",
        "public%2f..",
        "%",
    ]),
    ]
}

fn path() -> impl Strategy<Value = String> {
    (prop::collection::vec((segment(), prop::bool::weighted(0.1)), 1..8)).prop_map(|parts| {
        let mut path = String::new();
        for (segment, backslash) in parts {
            path.push(if backslash { '\\' } else { '/' });
            path.push_str(segment);
        }
        path.replacen('\\', "/", 1) // always starts with '/'
    })
}

fn percent_decode_once(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = path.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `..` and `.` resolved (RFC 3986 §5.2.4); `keep_empty`: over empty
/// segments too (a backend that does not collapse `//`), collapsed after.
fn resolve_with(path: &str, keep_empty: bool) -> String {
    let mut out: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" if !keep_empty => {}
            "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let out: Vec<&str> = out.into_iter().filter(|s| !s.is_empty()).collect();
    format!("/{}", out.join("/"))
}

/// The ways a backend may read a path, each applied once.
fn readings(path: &str) -> Vec<String> {
    let strip_params = |p: &str| {
        p.split('/')
            .map(|s| s.split(';').next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("/")
    };
    let decoded = percent_decode_once(path);
    let mut out = Vec::new();
    for keep_empty in [false, true] {
        let resolve = |p: &str| resolve_with(p, keep_empty);
        out.extend([
            resolve(path),
            resolve(&decoded),
            resolve(&path.replace('\\', "/")),
            resolve(&decoded.replace('\\', "/")),
            resolve(&strip_params(path)),
            resolve(&strip_params(&decoded)),
            resolve(&strip_params(&decoded.replace('\\', "/"))),
        ]);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn a_public_path_never_resolves_outside_its_prefix(path in path()) {
        let routes = Routes::new(&config("[routes]\npublic = [\"/public\"]\n").routes);
        let Ok(canonical) = canonicalize(&path, &PathPolicy::default()) else { return Ok(()) };
        if routes.classify(&Method::GET, &canonical) == Route::Public {
            for reading in readings(&canonical) {
                prop_assert!(
                    reading == "/public" || reading.starts_with("/public/"),
                    "{path:?} is public but a backend may read it as {reading:?}"
                );
            }
        }
    }

    #[test]
    fn canonical_paths_carry_nothing_backends_read_differently(path in path()) {
        let Ok(canonical) = canonicalize(&path, &PathPolicy::default()) else { return Ok(()) };
        prop_assert!(canonical.starts_with('/'));
        let lower = canonical.to_ascii_lowercase();
        for bad in ["%2f", "%5c", "%2e", "%00", "\\", ";", "//"] {
            prop_assert!(!lower.contains(bad), "{path:?} became {canonical:?}");
        }
        prop_assert!(
            canonical.split('/').all(|s| s != "." && s != ".."),
            "{path:?} became {canonical:?}"
        );
        // Every reading a backend gives it has the same segments: none
        // climbs, none splits one in two.
        let segments = |p: &str| p.split('/').filter(|s| !s.is_empty()).count();
        for reading in readings(&canonical) {
            prop_assert_eq!(segments(&reading), segments(&canonical), "{:?} read as {:?}", canonical, reading);
        }
        // A fixed point: made canonical once is enough.
        let again = canonicalize(&canonical, &PathPolicy::default());
        prop_assert_eq!(again.as_deref(), Ok(&*canonical));
    }

    #[test]
    fn no_spelling_of_an_identity_header_survives(
        parts in prop::collection::vec(
            (prop::sample::select(vec!["x", "wx", "openid", "union", "id", "app", "phone", "session",
                                       "forwarded", "for", "proto", "host", "real", "ip"]),
             prop::sample::select(vec!["", "-", "_", ".", "+", "~", "--", "!", "*"]),
             prop::bool::ANY),
            1..6),
        trusted_peer in prop::bool::ANY,
    ) {
        let mut name = String::new();
        for (word, separator, upper) in &parts {
            if *upper {
                name.push_str(&word.to_uppercase());
            } else {
                name.push_str(word);
            }
            name.push_str(separator);
        }
        let Ok(header) = HeaderName::from_bytes(name.as_bytes()) else { return Ok(()) };
        let fold = |n: &str| n.bytes().filter(u8::is_ascii_alphanumeric).map(|b| b.to_ascii_lowercase()).collect::<Vec<u8>>();
        let config = config("");
        let identity = IdentityHeaders::new(&config.headers, &config.session, ["wxapp"]);
        let mut headers = HeaderMap::new();
        headers.append(header.clone(), HeaderValue::from_static("forged"));
        identity.strip(&mut headers, trusted_peer);
        let mut protected = vec!["X-WX-OpenId", "X-WX-UnionId", "X-WX-AppId", "X-WX-Phone", "X-Session-Id"];
        // From a client that is not a trusted proxy, the proxy headers too.
        if !trusted_peer {
            protected.extend(["X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "Forwarded", "X-Real-IP"]);
        }
        if protected.iter().any(|p| fold(p) == fold(&name)) {
            prop_assert!(headers.is_empty(), "{name} survived the strip");
        }
    }

    #[test]
    fn session_ids_parse_only_from_their_own_encoding(bytes in session_id_like()) {
        if let Some(id) = SessionId::parse(&bytes) {
            let encoded = id.encode();
            prop_assert_eq!(encoded.as_bytes(), &bytes[..]);
        }
    }

    #[test]
    fn forwarded_uris_give_a_path_or_nothing(uri in "\\PC{0,40}") {
        if let Some(path) = forwarded_path(&uri) {
            prop_assert!(path.starts_with('/'));
            prop_assert!(!path.contains(['?', '#']));
        }
    }

    #[test]
    fn garbage_never_decrypts(data in "[A-Za-z0-9+/=]{0,64}", iv in "[A-Za-z0-9+/=]{0,32}") {
        let key = Secret::new("MDEyMzQ1Njc4OWFiY2RlZg==");
        prop_assert!(wxdata::decrypt(&key, &data, &iv, "wxapp").is_err());
    }
}
