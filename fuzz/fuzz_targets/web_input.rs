//! What a browser sends the web login: a `Cookie` header and a `redirect`.
//! Any bytes, never a panic; wxgate's cookie, once stripped, is gone and
//! every other pair is left as sent; an accepted redirect stays on the site.
#![no_main]

use http::header::{COOKIE, HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use wxgate::wire::canonical_path::same_site_path;
use wxgate::wire::cookie;

const NAME: &str = "wxgate_session";

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Some(path) = same_site_path(text)
    {
        assert!(path.starts_with('/') && !path.starts_with("//") && !path.contains('\\'));
        assert!(path.bytes().all(|b| b.is_ascii_graphic()));
    }
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.append(COOKIE, value);
    let others: Vec<String> = pairs(&headers).into_iter().filter(|p| !is_ours(p)).collect();
    let _ = cookie::value(&headers, NAME);
    cookie::strip(&mut headers, NAME);
    assert_eq!(cookie::value(&headers, NAME), None, "stripped: {data:?}");
    if headers.get_all(COOKIE).iter().all(|v| v.to_str().is_ok()) {
        assert_eq!(pairs(&headers), others, "the other cookies, as sent: {data:?}");
    }
});

fn pairs(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}

fn is_ours(pair: &str) -> bool {
    pair.split_once('=').is_some_and(|(key, _)| key == NAME)
}
