//! Hop-by-hop headers: meaningful for one connection only, never forwarded.
//!
//! RFC 9110 §7.6.1: a proxy must remove the `Connection` header and every
//! header field it names before forwarding. The fixed list adds the fields
//! that RFC 2616 §13.5.1 and RFC 9110 name as hop-by-hop (`Keep-Alive`,
//! `Proxy-Authenticate`, `Proxy-Authorization`, `TE`, `Trailer`,
//! `Transfer-Encoding`, `Upgrade`), `HTTP2-Settings` (connection-specific
//! by RFC 7540 §3.2.1: it only ever travels with an h2c upgrade, which
//! wxgate never forwards) and the non-standard `Proxy-Connection` still sent
//! by old clients. `Upgrade` survives only on a real upgrade (RFC 9110
//! §7.8), where `Connection: upgrade` is put back.
//!
//! Callers strip hop-by-hop headers *before* injecting identity headers, so a
//! client's `Connection: X-WX-OpenId` can never remove an injected value.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// As text: `is_hop_by_hop` runs for every header of every message, and
/// comparing a name's text against these (lengths first) is cheaper than
/// comparing `HeaderName`s.
static FIXED: [&str; 10] = [
    "connection",
    "http2-settings",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Whether `name` is always hop-by-hop (whatever `Connection` says).
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    FIXED.contains(&name.as_str())
}

/// Whether the message asks to switch protocols: `Connection` lists the
/// `upgrade` token and an `Upgrade` header is present (RFC 9110 §7.8).
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && connection_tokens(headers).any(|t| t.eq_ignore_ascii_case("upgrade"))
}

/// Removes every hop-by-hop header. With `keep_upgrade`, the `Upgrade` header
/// stays and `Connection` is reset to just `upgrade`.
pub fn strip(headers: &mut HeaderMap, keep_upgrade: bool) {
    // Most messages carry none of these (`Connection` is among them): one
    // pass comparing names is far cheaper than nine hashed removes.
    if !keep_upgrade && !headers.keys().any(is_hop_by_hop) {
        return;
    }
    // Header names listed in Connection. Collected first: we cannot remove
    // while borrowing the Connection values. Rarely more than one or two.
    let named: Vec<HeaderName> = connection_tokens(headers)
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .collect();
    for name in named {
        if !(keep_upgrade && name == header::UPGRADE) {
            headers.remove(&name);
        }
    }
    for name in FIXED {
        if !(keep_upgrade && name == "upgrade") {
            headers.remove(name);
        }
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// The protocol names an upgrade request offers (`Upgrade: websocket,
/// foo/2` → `websocket`, `foo`), in order.
pub fn upgrade_protocols(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::UPGRADE)
        .iter()
        .map(|v| v.to_str().unwrap_or("?"))
        .flat_map(|v| v.split(','))
        .map(|t| t.split('/').next().unwrap_or("").trim())
}

fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn names(h: &HeaderMap) -> Vec<String> {
        let mut v: Vec<String> = h.keys().map(|k| k.as_str().to_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn strip_table() {
        // (input headers, keep_upgrade, names left afterwards)
        type Case<'a> = (&'a [(&'a str, &'a str)], bool, &'a [&'a str]);
        let cases: &[Case] = &[
            (
                &[("keep-alive", "timeout=5"), ("accept", "*/*")],
                false,
                &["accept"],
            ),
            (
                &[
                    ("proxy-connection", "keep-alive"),
                    ("proxy-authorization", "Basic x"),
                ],
                false,
                &[],
            ),
            (
                &[
                    ("te", "trailers"),
                    ("trailer", "x-sum"),
                    ("transfer-encoding", "chunked"),
                ],
                false,
                &[],
            ),
            // Headers named in Connection go, whatever their name.
            (
                &[
                    ("connection", "close, X-Foo"),
                    ("x-foo", "1"),
                    ("x-bar", "2"),
                ],
                false,
                &["x-bar"],
            ),
            // Several Connection headers are all honoured.
            (
                &[
                    ("connection", "x-a"),
                    ("connection", "x-b"),
                    ("x-a", "1"),
                    ("x-b", "2"),
                ],
                false,
                &[],
            ),
            // Upgrade without a real upgrade is dropped ...
            (
                &[("upgrade", "websocket"), ("accept", "*/*")],
                false,
                &["accept"],
            ),
            // ... and kept on one, with Connection reset to just "upgrade".
            (
                &[
                    ("connection", "Upgrade, x-foo"),
                    ("upgrade", "websocket"),
                    ("x-foo", "1"),
                ],
                true,
                &["connection", "upgrade"],
            ),
            // Odd tokens in Connection do not panic.
            (
                &[("connection", " , ,(bad), x/y"), ("accept", "*/*")],
                false,
                &["accept"],
            ),
        ];
        for (input, keep, left) in cases {
            let mut h = map(input);
            strip(&mut h, *keep);
            assert_eq!(names(&h), *left, "input {input:?}");
        }
    }

    #[test]
    fn upgrade_detection() {
        assert!(is_upgrade(&map(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket")
        ])));
        assert!(!is_upgrade(&map(&[("upgrade", "websocket")])));
        assert!(!is_upgrade(&map(&[("connection", "upgrade")])));
    }

    #[test]
    fn fixed_list() {
        for name in FIXED {
            assert!(is_hop_by_hop(&HeaderName::from_static(name)), "{name}");
        }
        assert!(!is_hop_by_hop(&header::CONTENT_LENGTH));
        assert!(!is_hop_by_hop(&HeaderName::from_static("x-te")));
    }
}
