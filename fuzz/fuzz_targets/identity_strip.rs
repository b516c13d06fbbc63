//! Identity stripping over any header names: no header whose letters and
//! digits fold to an identity (or the session) header survives, nor, from
//! a peer that is no trusted proxy, to a proxy header. The fold is this
//! target's own (the oracle), not the one the strip uses.
#![no_main]

use std::sync::LazyLock;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use wxgate::Config;
use wxgate::domain::identity::{IdentityHeaders, PROXY_HEADERS};

static IDENTITY: LazyLock<IdentityHeaders> = LazyLock::new(|| {
    let text =
        "[upstream]\nurl = \"http://127.0.0.1:1\"\n[wechat]\nappid = \"wxapp\"\nsecret = \"s\"\n";
    let config = Config::parse(text, &|_| None).expect("config");
    IdentityHeaders::new(&config.headers, &config.session, ["wxapp"])
});

const PROTECTED: [&str; 5] = [
    "X-WX-OpenId",
    "X-WX-UnionId",
    "X-WX-AppId",
    "X-WX-Phone",
    "X-Session-Id",
];

/// Letters and digits, lower case: what CGI, PHP and nginx read alike.
fn canonical(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let trusted_peer = first & 1 == 1;
    let mut headers = HeaderMap::new();
    for line in rest.split(|b| *b == b'\n') {
        if let Ok(name) = HeaderName::from_bytes(line) {
            headers.append(name, HeaderValue::from_static("forged"));
        }
    }
    IDENTITY.strip(&mut headers, trusted_peer);
    let proxy: &[&str] = if trusted_peer { &[] } else { &PROXY_HEADERS };
    for name in headers.keys() {
        let folded = canonical(name.as_str());
        assert!(
            !PROTECTED.iter().chain(proxy).any(|p| canonical(p) == folded),
            "{name} survived"
        );
    }
});
