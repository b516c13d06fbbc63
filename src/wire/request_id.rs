//! `X-Request-Id`: one id per request, in the log line, upstream and the response.
//!
//! A well-formed id from the client (or the ingress in front) is kept, so a
//! request can be followed across hops, as Envoy and ingress-nginx do. A
//! missing or odd one (too long, or characters that do not belong in a log
//! line) is replaced by a fresh id: 16 hex digits drawn at start-up, then a
//! 16-digit counter. Unique per process and practically across a fleet, and
//! it costs one atomic add rather than a random draw per request.
//!
//! [`settle`] gives a request its id; `stack::observe` calls it, keeps the
//! id in its own future for the log line and puts it on the response.

use std::sync::atomic::{AtomicU64, Ordering};

use http::{HeaderMap, HeaderName, HeaderValue};

/// `X-Request-Id`.
pub static HEADER: HeaderName = HeaderName::from_static("x-request-id");

const MAX_LEN: usize = 128;

/// Makes request ids: a random prefix per process and a counter.
pub struct RequestIds {
    /// The random prefix in hex, with its `-`.
    prefix: [u8; 17],
    next: AtomicU64,
}

impl RequestIds {
    /// A new prefix, from the system's randomness.
    pub fn new() -> Self {
        let mut seed = [0u8; 8];
        // Without randomness ids are still unique per process.
        let _ = getrandom::fill(&mut seed);
        let mut prefix = [b'-'; 17];
        hex(u64::from_le_bytes(seed), &mut prefix[..16]);
        Self {
            prefix,
            next: AtomicU64::new(1),
        }
    }

    /// A fresh id.
    pub fn next(&self) -> HeaderValue {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        // By hand rather than format!: this runs on every request.
        let mut id = [0u8; 33];
        id[..17].copy_from_slice(&self.prefix);
        hex(n, &mut id[17..]);
        HeaderValue::from_bytes(&id).unwrap_or(HeaderValue::from_static("-"))
    }
}

impl Default for RequestIds {
    fn default() -> Self {
        Self::new()
    }
}

/// The request's id, set on its headers: the client's when it sent exactly
/// one (`sent`, found by `wire::sent`) and it is acceptable, else a fresh
/// one from `ids` (replacing every odd copy). The caller keeps the returned
/// value for the log line and the response.
pub fn settle(headers: &mut HeaderMap, sent: Option<HeaderValue>, ids: &RequestIds) -> HeaderValue {
    if let Some(one) = sent
        && acceptable(one.as_bytes())
    {
        return one;
    }
    let id = ids.next();
    headers.insert(HEADER.clone(), id.clone());
    id
}

/// `n` as lower-case hex, zero-padded to fill `out` (16 digits for a u64).
fn hex(mut n: u64, out: &mut [u8]) {
    for digit in out.iter_mut().rev() {
        *digit = b"0123456789abcdef"[(n & 0xf) as usize];
        n >>= 4;
    }
}

/// Letters, digits and `-_.:/+=` only: UUIDs, W3C trace ids, base64.
fn acceptable(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_LEN
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=".contains(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The id a request with these X-Request-Id values ends up with.
    fn id_for(values: &[&str]) -> String {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(&HEADER, HeaderValue::from_str(v).unwrap());
        }
        let sent = crate::wire::sent::Sent::of(&headers).request_id;
        let id = settle(&mut headers, sent, &RequestIds::new());
        let on_request: Vec<_> = headers.get_all(&HEADER).iter().collect();
        assert_eq!(on_request, [&id], "the request carries exactly its id");
        id.to_str().unwrap().to_owned()
    }

    #[test]
    fn keeps_good_ids_and_replaces_odd_ones() {
        let uuid = "6f1c1d5e-8a7b-4c53-9e1f-0a2b3c4d5e6f";
        assert_eq!(id_for(&[uuid]), uuid);
        for odd in [
            vec![""],
            vec!["has space"],
            vec!["quote\"d"],
            vec!["{\"json\":1}"],
            vec![&"x".repeat(129)],
            vec!["a", "b"],
            vec![],
        ] {
            let id = id_for(&odd);
            assert!(!odd.contains(&id.as_str()), "{odd:?} kept");
            assert!(acceptable(id.as_bytes()), "{id}");
        }
    }

    #[test]
    fn generated_ids_differ() {
        let ids = RequestIds::new();
        let a = ids.next();
        let b = ids.next();
        assert_ne!(a, b);
        let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
        assert_eq!(a.len(), 33);
        assert_eq!(a[..17], b[..17], "one prefix per process");
        assert!(a[..16].bytes().all(|c| c.is_ascii_hexdigit()) && &a[16..17] == "-");
        assert_eq!(&a[17..], "0000000000000001");
        assert_eq!(&b[17..], "0000000000000002");
    }
}
