//! Headers that must appear exactly once.
//!
//! A repeated session id, request id or `X-Forwarded-Uri` is ambiguous:
//! two hops may each read a different copy. wxgate reads such a header
//! only when there is exactly one value, and treats anything else as absent.

use http::header::{AsHeaderName, HeaderMap, HeaderValue};

/// The value of `name` when it appears exactly once.
pub fn single<K: AsHeaderName>(headers: &HeaderMap, name: K) -> Option<&HeaderValue> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => Some(value),
        _ => None,
    }
}
