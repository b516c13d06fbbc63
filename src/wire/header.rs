//! Header rules every layer reads alike: headers that must appear exactly
//! once, header names folded as lenient backends fold them, and wxgate's
//! own mark on the answers it makes.
//!
//! A repeated session id, request id or `X-Forwarded-Uri` is ambiguous:
//! two hops may each read a different copy. wxgate reads such a header
//! only when there is exactly one value, and treats anything else as absent.

use http::header::{AsHeaderName, HeaderMap, HeaderName, HeaderValue};

/// On every error response wxgate makes itself, its `code`; never on a backend's.
pub static WXGATE_ERROR: HeaderName = HeaderName::from_static("x-wxgate-error");

/// The value of `name` when it appears exactly once.
pub fn single<K: AsHeaderName>(headers: &HeaderMap, name: K) -> Option<&HeaderValue> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => Some(value),
        _ => None,
    }
}

/// A header name folded the way the most lenient backend folds it: its
/// ASCII letters and digits, lower case (`X_WX.OpenId` → `xwxopenid`).
/// CGI, PHP, nginx and lighttpd read names that fold alike as one
/// (see `domain::identity`).
pub fn folded_name(name: &str) -> String {
    folded(name).map(char::from).collect()
}

/// The bytes of [`folded_name`].
pub fn folded(name: &str) -> impl Iterator<Item = u8> + '_ {
    name.bytes()
        .filter(u8::is_ascii_alphanumeric)
        .map(|b| b.to_ascii_lowercase())
}

/// `name` folds to `folded`.
pub fn folds_to(name: &str, folded_name: &str) -> bool {
    folded(name).eq(folded_name.bytes())
}
