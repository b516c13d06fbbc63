//! Cookies, as far as wxgate reads and writes its own (RFC 6265).
//!
//! A browser sends every cookie of a request in `Cookie` headers of
//! `name=value` pairs joined by `; ` (§4.2.1; HTTP/2 may split them over
//! several headers, §5.4 of RFC 9113). wxgate finds its session cookie
//! there, and removes exactly that pair before the request goes on, so the
//! backend never sees wxgate's session id and gets every other cookie
//! byte for byte. Its own `Set-Cookie` values are built in one place.

use std::time::Duration;

use bytes::Bytes;
use http::header::{COOKIE, HeaderMap, HeaderValue};

/// What the request's `Cookie` headers hold under one name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found<'a> {
    /// Not sent.
    None,
    /// One value (sent once, or sent again unchanged).
    One(&'a [u8]),
    /// Two different values: a browser sends both when a sibling
    /// subdomain set one with `Domain=` (cookie tossing), and the one it
    /// sends first is not the one wxgate set. Neither is acted on.
    Ambiguous,
}

impl<'a> Found<'a> {
    /// The value, when there is exactly one.
    pub fn single(self) -> Option<&'a [u8]> {
        match self {
            Self::One(value) => Some(value),
            _ => None,
        }
    }
}

/// The `name=value` pairs of one `Cookie` header, as bytes. Browsers send
/// any byte a server set (UTF-8 and DEL included, not only RFC 6265's
/// cookie-octets), so the header is never skipped for not being ASCII:
/// pairs split at `;`, the name before the first `=`, both trimmed of
/// spaces and tabs (§5.4 as browsers implement it).
fn pairs(header: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    header.split(|&b| b == b';').filter_map(|pair| {
        let at = pair.iter().position(|&b| b == b'=')?;
        Some((trim(&pair[..at]), trim(&pair[at + 1..])))
    })
}

fn trim(bytes: &[u8]) -> &[u8] {
    let blank = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes.iter().position(|b| !blank(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !blank(b))
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// The value of cookie `name` in the request, unquoted (RFC 6265 allows a
/// DQUOTE'd value).
pub fn value<'a>(headers: &'a HeaderMap, name: &str) -> Found<'a> {
    let mut found = Found::None;
    for header in headers.get_all(COOKIE) {
        for (key, value) in pairs(header.as_bytes()) {
            if key != name.as_bytes() {
                continue;
            }
            let value = value
                .strip_prefix(b"\"")
                .and_then(|v| v.strip_suffix(b"\""))
                .unwrap_or(value);
            found = match found {
                Found::None => Found::One(value),
                Found::One(first) if first == value => found,
                _ => return Found::Ambiguous,
            };
        }
    }
    found
}

/// Removes every pair named in `names` from the `Cookie` headers, keeping
/// the others byte for byte; a header left empty goes. A header that
/// could not be rebuilt (a byte `HeaderValue` refuses, which hyper's parser
/// already answers 400) would go whole: wxgate's session id never reaches
/// the backend.
pub fn strip(headers: &mut HeaderMap, names: &[&str]) {
    let carries =
        |value: &HeaderValue| pairs(value.as_bytes()).any(|(key, _)| is_one_of(key, names));
    // Most requests carry no such cookie: look before rebuilding.
    if !headers.get_all(COOKIE).iter().any(carries) {
        return;
    }
    let kept: Vec<HeaderValue> = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| {
            if !carries(value) {
                return Some(value.clone());
            }
            let mut rest = Vec::with_capacity(value.len());
            keep_others(value.as_bytes(), names, &mut rest);
            (!rest.is_empty())
                .then(|| HeaderValue::from_maybe_shared(Bytes::from(rest)).ok())
                .flatten()
        })
        .collect();
    headers.remove(COOKIE);
    for value in kept {
        headers.append(COOKIE, value);
    }
}

/// Every pair of the `Cookie` headers but those named in `names`, as one
/// `; `-joined list, byte for byte (forward-auth hands it to the front
/// proxy); empty when none is left.
pub fn others(headers: &HeaderMap, names: &[&str]) -> Vec<u8> {
    let mut rest = Vec::new();
    for value in headers.get_all(COOKIE) {
        keep_others(value.as_bytes(), names, &mut rest);
    }
    rest
}

/// Appends the pairs of `header` not named in `names` to `rest`, trimmed,
/// `; ` between them.
fn keep_others(header: &[u8], names: &[&str], rest: &mut Vec<u8>) {
    for pair in header.split(|&b| b == b';') {
        let pair = trim(pair);
        let named = pair
            .iter()
            .position(|&b| b == b'=')
            .is_some_and(|at| is_one_of(trim(&pair[..at]), names));
        if pair.is_empty() || named {
            continue;
        }
        if !rest.is_empty() {
            rest.extend_from_slice(b"; ");
        }
        rest.extend_from_slice(pair);
    }
}

fn is_one_of(key: &[u8], names: &[&str]) -> bool {
    names.iter().any(|name| name.as_bytes() == key)
}

/// The attributes of a cookie wxgate sets.
pub struct CookieAttributes<'a> {
    /// `Path`.
    pub path: &'a str,
    /// `Domain`, when the cookie is shared with sibling hosts.
    pub domain: Option<&'a str>,
    /// `Secure`.
    pub secure: bool,
    /// `None`: a session cookie (ends with the browser).
    pub max_age: Option<Duration>,
}

/// `Set-Cookie: name=value` with `attributes`, always `HttpOnly` (no script
/// reads it) and `SameSite=Lax` (sent on top-level navigations from other
/// sites, as WeChat's redirect back is, but not on their subrequests or
/// forms: the first line of CSRF defence).
pub fn set_cookie(name: &str, value: &str, attributes: &CookieAttributes) -> Option<HeaderValue> {
    let mut text = format!("{name}={value}; Path={}", attributes.path);
    if let Some(domain) = attributes.domain {
        text.push_str("; Domain=");
        text.push_str(domain);
    }
    if let Some(max_age) = attributes.max_age {
        text.push_str(&format!("; Max-Age={}", max_age.as_secs()));
    }
    text.push_str("; HttpOnly; SameSite=Lax");
    if attributes.secure {
        text.push_str("; Secure");
    }
    HeaderValue::from_str(&text).ok()
}

/// `Set-Cookie` that deletes cookie `name` (set with the same path and domain).
pub fn clear_cookie(name: &str, attributes: &CookieAttributes) -> Option<HeaderValue> {
    set_cookie(
        name,
        "",
        &CookieAttributes {
            max_age: Some(Duration::ZERO),
            ..*attributes
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(cookies: &[&[u8]]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for cookie in cookies {
            headers.append(COOKIE, HeaderValue::from_bytes(cookie).unwrap());
        }
        headers
    }

    #[test]
    fn finds_the_value_of_the_name_only() {
        let utf8 = "nick=张三; wxs=abc".as_bytes();
        let cases: &[(&[&[u8]], Found)] = &[
            (&[b"wxs=abc"], Found::One(b"abc")),
            (&[b"a=1; wxs=abc; b=2"], Found::One(b"abc")),
            (&[b"a=1", b"wxs=abc"], Found::One(b"abc")),
            (&[b"wxs=same; wxs=same"], Found::One(b"same")),
            (&[b"wxs=first; wxs=second"], Found::Ambiguous),
            (&[b"wxs=first", b"wxs=second"], Found::Ambiguous),
            (&[b"xwxs=abc; wxs_=1"], Found::None),
            (&[b"wxs"], Found::None),
            (&[b"wxs=\"q\""], Found::One(b"q")),
            (&[b" wxs = abc ;"], Found::One(b"abc")),
            (&[utf8], Found::One(b"abc")),
            (&[b"a=\x80\xff; wxs=abc"], Found::One(b"abc")),
            (&[], Found::None),
        ];
        for (cookies, expected) in cases {
            assert_eq!(value(&headers(cookies), "wxs"), *expected, "{cookies:?}");
        }
    }

    #[test]
    fn strips_its_own_pairs_and_keeps_the_rest_as_sent() {
        let utf8 = "nick=张三; wxs=abc".as_bytes();
        // (the Cookie headers sent, what is left of them)
        type Case<'a> = (&'a [&'a [u8]], &'a [&'a [u8]]);
        let cases: &[Case] = &[
            (&[b"a=1; wxs=abc; b=2"], &[b"a=1; b=2"]),
            (&[b"wxs=abc"], &[]),
            (&[b"a=1", b"wxs=abc"], &[b"a=1"]),
            (&[b"wxs=1; wxs=2; c=3"], &[b"c=3"]),
            (&[b"wxs_state=s; c=3"], &[b"c=3"]),
            (&[b"xwxs=keep; wxs_=keep"], &[b"xwxs=keep; wxs_=keep"]),
            (&[utf8], &["nick=张三".as_bytes()]),
            (&[b"a=\x80; wxs=1"], &[b"a=\x80"]),
        ];
        for (cookies, expected) in cases {
            let mut h = headers(cookies);
            strip(&mut h, &["wxs", "wxs_state"]);
            let left: Vec<&[u8]> = h.get_all(COOKIE).iter().map(|v| v.as_bytes()).collect();
            assert_eq!(&left, expected, "{cookies:?}");
        }
    }

    #[test]
    fn the_others_are_one_list_across_headers() {
        let cases: &[(&[&[u8]], &[u8])] = &[
            (
                &[b"a=1; wxs=abc", b"wxs_state=s", b" b=2 ;c=3"],
                b"a=1; b=2; c=3",
            ),
            (&[b"wxs=abc", b"wxs_state=s"], b""),
            (&["nick=张三; wxs=1".as_bytes()], "nick=张三".as_bytes()),
        ];
        for (cookies, expected) in cases {
            assert_eq!(others(&headers(cookies), &["wxs", "wxs_state"]), *expected);
        }
    }

    #[test]
    fn set_cookie_carries_the_attributes() {
        let attributes = CookieAttributes {
            path: "/",
            domain: Some("example.com"),
            secure: true,
            max_age: Some(Duration::from_secs(604_800)),
        };
        assert_eq!(
            set_cookie("wxs", "id", &attributes).unwrap(),
            "wxs=id; Path=/; Domain=example.com; Max-Age=604800; HttpOnly; SameSite=Lax; Secure"
        );
        let plain = CookieAttributes {
            path: "/cb",
            domain: None,
            secure: false,
            max_age: None,
        };
        assert_eq!(
            clear_cookie("wxs", &plain).unwrap(),
            "wxs=; Path=/cb; Max-Age=0; HttpOnly; SameSite=Lax"
        );
    }
}
