//! Cookies, as far as wxgate reads and writes its own (RFC 6265).
//!
//! A browser sends every cookie of a request in `Cookie` headers of
//! `name=value` pairs joined by `; ` (§4.2.1; HTTP/2 may split them over
//! several headers, §5.4 of RFC 9113). wxgate finds its session cookie
//! there, and removes exactly that pair before the request goes on, so the
//! backend never sees wxgate's session id and gets every other cookie
//! byte for byte. Its own `Set-Cookie` values are built in one place.

use std::time::Duration;

use http::header::{COOKIE, HeaderMap, HeaderValue};

/// The first value of cookie `name` in the request, if any. A browser may
/// send two (a host-only cookie and a domain cookie of the same name, most
/// specific path first, §5.4): the first is the one it ranks first.
pub fn value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|header| header.to_str().ok())
        .flat_map(|header| header.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then_some(value.trim_matches('"'))
        })
}

/// Removes every `name=…` pair from the `Cookie` headers, keeping the
/// others as sent; a header left empty goes.
pub fn strip(headers: &mut HeaderMap, name: &str) {
    let carries = |value: &HeaderValue| {
        value
            .to_str()
            .is_ok_and(|text| text.split(';').any(|pair| is(pair, name)))
    };
    // Most requests carry no such cookie: look before rebuilding.
    if !headers.get_all(COOKIE).iter().any(carries) {
        return;
    }
    let kept: Vec<HeaderValue> = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| {
            let Ok(text) = value.to_str() else {
                return Some(value.clone()); // not text: not one of ours either
            };
            let rest: Vec<&str> = text
                .split(';')
                .map(str::trim)
                .filter(|pair| !pair.is_empty() && !is(pair, name))
                .collect();
            (!rest.is_empty())
                .then(|| HeaderValue::from_str(&rest.join("; ")).ok())
                .flatten()
        })
        .collect();
    headers.remove(COOKIE);
    for value in kept {
        headers.append(COOKIE, value);
    }
}

fn is(pair: &str, name: &str) -> bool {
    pair.trim()
        .split_once('=')
        .is_some_and(|(key, _)| key == name)
}

/// The attributes of a cookie wxgate sets.
pub struct CookieAttributes<'a> {
    pub path: &'a str,
    pub domain: Option<&'a str>,
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

    fn headers(cookies: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for cookie in cookies {
            headers.append(COOKIE, HeaderValue::from_str(cookie).unwrap());
        }
        headers
    }

    #[test]
    fn finds_the_first_value_of_the_name_only() {
        let cases: &[(&[&str], Option<&str>)] = &[
            (&["wxs=abc"], Some("abc")),
            (&["a=1; wxs=abc; b=2"], Some("abc")),
            (&["a=1", "wxs=abc"], Some("abc")),
            (&["wxs=first; wxs=second"], Some("first")),
            (&["xwxs=abc; wxs_=1"], None),
            (&["wxs"], None),
            (&["wxs=\"q\""], Some("q")),
            (&[], None),
        ];
        for (cookies, expected) in cases {
            assert_eq!(value(&headers(cookies), "wxs"), *expected, "{cookies:?}");
        }
    }

    #[test]
    fn strips_its_own_pair_and_keeps_the_rest_as_sent() {
        let cases: &[(&[&str], &[&str])] = &[
            (&["a=1; wxs=abc; b=2"], &["a=1; b=2"]),
            (&["wxs=abc"], &[]),
            (&["a=1", "wxs=abc"], &["a=1"]),
            (&["wxs=1; wxs=2; c=3"], &["c=3"]),
            (&["xwxs=keep; wxs_=keep"], &["xwxs=keep; wxs_=keep"]),
        ];
        for (cookies, expected) in cases {
            let mut h = headers(cookies);
            strip(&mut h, "wxs");
            let left: Vec<&str> = h
                .get_all(COOKIE)
                .iter()
                .map(|v| v.to_str().unwrap())
                .collect();
            assert_eq!(&left, expected, "{cookies:?}");
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
