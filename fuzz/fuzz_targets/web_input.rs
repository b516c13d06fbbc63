//! What a browser sends the web login: a `Cookie` header and a `redirect`.
//! Any bytes, never a panic; wxgate's cookies, once stripped, are gone and
//! every other pair is left as sent, byte for byte (UTF-8 and obs-text
//! too); an accepted redirect stays on the site.
#![no_main]

use http::header::{COOKIE, HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use wxgate::wire::canonical_path::same_site_path;
use wxgate::wire::cookie;

const NAME: &str = "wxgate_session";
const OURS: [&str; 2] = [NAME, "wxgate_session_state"];

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
    let others: Vec<Vec<u8>> = pairs(&headers).into_iter().filter(|p| !is_ours(p)).collect();
    let _ = cookie::value(&headers, NAME);
    cookie::strip(&mut headers, &OURS);
    assert_eq!(cookie::value(&headers, NAME), cookie::Found::None, "stripped: {data:?}");
    assert_eq!(pairs(&headers), others, "the other cookies, as sent: {data:?}");
});

/// RFC 6265's optional whitespace: spaces and tabs.
fn trim(bytes: &[u8]) -> &[u8] {
    let blank = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes.iter().position(|b| !blank(b)).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|b| !blank(b)).map_or(start, |i| i + 1);
    &bytes[start..end]
}

fn pairs(headers: &HeaderMap) -> Vec<Vec<u8>> {
    headers
        .get_all(COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b';'))
        .map(|p| trim(p).to_vec())
        .filter(|p| !p.is_empty())
        .collect()
}

fn is_ours(pair: &[u8]) -> bool {
    pair.iter()
        .position(|b| *b == b'=')
        .is_some_and(|at| OURS.iter().any(|name| trim(&pair[..at]) == name.as_bytes()))
}
