//! Identity stripping over any header names: no header whose letters and
//! digits fold to an identity (or the session) header survives.
#![no_main]

use std::sync::LazyLock;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use wxgate::Config;
use wxgate::domain::identity::IdentityHeaders;
use wxgate::wire::header::folded_name as canonical;

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

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    for line in data.split(|b| *b == b'\n') {
        if let Ok(name) = HeaderName::from_bytes(line) {
            headers.append(name, HeaderValue::from_static("forged"));
        }
    }
    IDENTITY.strip(&mut headers);
    for name in headers.keys() {
        let folded = canonical(name.as_str());
        assert!(
            !PROTECTED.iter().any(|p| canonical(p) == folded),
            "{name} survived"
        );
    }
});
