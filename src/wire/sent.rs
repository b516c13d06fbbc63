//! What the client sent of the headers the outermost layer reads
//! (`X-Request-Id`, `traceparent`), found in one pass over the request's
//! headers instead of one hashed lookup each: a request carries a handful
//! of headers, and comparing their names costs less than hashing two
//! names (issue 40's "one header pass"). The rare cases (a doubled or odd
//! id, any traceparent) go on to the modules that judge them.

use http::{HeaderMap, HeaderValue};

use super::request_id;
use super::trace_context::TRACEPARENT;

/// The headers [`Sent::of`] looked for.
#[derive(Debug, Default)]
pub struct Sent {
    /// The client's `X-Request-Id`, when it sent exactly one.
    pub request_id: Option<HeaderValue>,
    /// Whether it sent any `traceparent`.
    pub traceparent: bool,
}

impl Sent {
    /// One pass over `headers`' names (each name once, values not
    /// visited); a lookup only for an id the client did send.
    pub fn of(headers: &HeaderMap) -> Self {
        let mut sent = Self::default();
        let mut id = false;
        for name in headers.keys() {
            if *name == request_id::HEADER {
                id = true;
            } else if *name == TRACEPARENT {
                sent.traceparent = true;
            }
        }
        if id {
            let mut ids = headers.get_all(&request_id::HEADER).iter();
            if let (Some(one), None) = (ids.next(), ids.next()) {
                sent.request_id = Some(one.clone());
            }
        }
        sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_one_id_and_any_traceparent() {
        // (headers, the id found, a traceparent)
        type Case = (
            &'static [(&'static str, &'static str)],
            Option<&'static str>,
            bool,
        );
        let cases: [Case; 5] = [
            (&[], None, false),
            (
                &[("host", "a"), ("x-request-id", "abc")],
                Some("abc"),
                false,
            ),
            (&[("x-request-id", "a"), ("x-request-id", "b")], None, false),
            (&[("traceparent", "x"), ("accept", "*/*")], None, true),
            (
                &[
                    ("X-Request-Id", "abc"),
                    ("traceparent", "x"),
                    ("traceparent", "y"),
                ],
                Some("abc"),
                true,
            ),
        ];
        for (headers, id, traceparent) in cases {
            let mut map = HeaderMap::new();
            for (name, value) in headers {
                map.append(
                    http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    HeaderValue::from_str(value).unwrap(),
                );
            }
            let sent = Sent::of(&map);
            assert_eq!(
                sent.request_id.as_ref().map(|v| v.to_str().unwrap()),
                id,
                "{headers:?}"
            );
            assert_eq!(sent.traceparent, traceparent, "{headers:?}");
        }
    }
}
