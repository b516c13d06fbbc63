//! `X-Request-Id`: one id per request, in the log line, upstream and the response.
//!
//! A well-formed id from the client (or the ingress in front) is kept, so a
//! request can be followed across hops, as Envoy and ingress-nginx do. A
//! missing or odd one (too long, or characters that do not belong in a log
//! line) is replaced by a fresh id: 16 hex digits drawn at start-up, then a
//! counter. Unique per process and practically across a fleet, and it costs
//! one atomic add rather than a random draw per request.

use std::sync::atomic::{AtomicU64, Ordering};

use http::{HeaderMap, HeaderName, HeaderValue};

pub static HEADER: HeaderName = HeaderName::from_static("x-request-id");

const MAX_LEN: usize = 128;

pub struct RequestIds {
    prefix: u64,
    next: AtomicU64,
}

impl RequestIds {
    pub fn new() -> Self {
        let mut seed = [0u8; 8];
        // Without randomness ids are still unique per process.
        let _ = getrandom::fill(&mut seed);
        Self {
            prefix: u64::from_le_bytes(seed),
            next: AtomicU64::new(1),
        }
    }

    /// The client's id when acceptable, else a new one.
    pub fn of(&self, headers: &HeaderMap) -> HeaderValue {
        if let Some(value) = crate::header::single(headers, &HEADER)
            && acceptable(value.as_bytes())
        {
            return value.clone();
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let id = format!("{:016x}-{n:x}", self.prefix);
        HeaderValue::from_str(&id).unwrap_or(HeaderValue::from_static("-"))
    }
}

impl Default for RequestIds {
    fn default() -> Self {
        Self::new()
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

    fn id_for(values: &[&str]) -> String {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(&HEADER, HeaderValue::from_str(v).unwrap());
        }
        RequestIds::new().of(&headers).to_str().unwrap().to_owned()
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
        let a = ids.of(&HeaderMap::new());
        let b = ids.of(&HeaderMap::new());
        assert_ne!(a, b);
    }
}
