//! The proxy headers the backend gets: wxgate's own knowledge, or a
//! trusted proxy's extended.
//!
//! A backend that used to sit behind nginx believes `X-Forwarded-For`,
//! `X-Real-IP`, `X-Forwarded-Proto`/`-Host`/`-Port` for the client's
//! address, scheme and host (IP allow-lists, rate limits, audit logs,
//! generated links), often because they come from 127.0.0.1 — where a
//! sidecar connects from. So, as Envoy does with `use_remote_address` and
//! Traefik with `forwardedHeaders.trustedIPs`:
//! - from a peer outside `server.trusted_proxies`, every client-sent proxy
//!   header is gone already (`domain::identity::PROXY_HEADERS`, in every
//!   spelling) and wxgate sets its own: `X-Forwarded-For` and `X-Real-IP`
//!   the peer's address, `X-Forwarded-Proto` the scheme it was reached
//!   by, `X-Forwarded-Host` the `Host` asked for, `X-Forwarded-Port` the
//!   port it listens on;
//! - from a trusted proxy, its headers are kept: `X-Forwarded-For` gets
//!   the peer appended (nginx's `$proxy_add_x_forwarded_for`), `Forwarded`
//!   a `for=` element (RFC 7239 §4), a missing `-Proto`/`-Host`/`-Port` is
//!   filled in, and `X-Real-IP` is the client wxgate derived from the
//!   trusted chain (`wire::client_ip`, the address its rate limits count).

use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::header::{Entry, HeaderMap, HeaderName, HeaderValue};
use prometheus_client::metrics::counter::Counter;

use super::Peer;
use crate::wire::client_ip::client_ip;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
static FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// The scheme clients reach wxgate by.
const HTTP: HeaderValue = HeaderValue::from_static("http");
const HTTPS: HeaderValue = HeaderValue::from_static("https");

/// Sets the proxy headers of a request from `peer` for `host`. The
/// identity strip ran first (for an untrusted peer it removed theirs).
pub(super) fn set(headers: &mut HeaderMap, peer: &Peer, host: Option<HeaderValue>) {
    let Some(trusted) = &peer.trusted else {
        // Every name below is absent: appended, with nothing to replace.
        headers.append(&X_FORWARDED_FOR, peer.ip.clone());
        headers.append(&X_REAL_IP, peer.ip.clone());
        headers.append(&X_FORWARDED_PROTO, scheme(peer));
        if let Some(host) = host {
            headers.append(&X_FORWARDED_HOST, host);
        }
        headers.append(&X_FORWARDED_PORT, peer.port.clone());
        return;
    };
    // Read before the peer is appended: the chain as the proxies wrote it.
    let client = client_ip(peer.addr, headers, trusted);
    if let Ok(real_ip) = HeaderValue::from_str(&client.to_string()) {
        headers.insert(&X_REAL_IP, real_ip);
    }
    append(headers, &X_FORWARDED_FOR, peer.ip.as_bytes());
    if headers.contains_key(&FORWARDED) {
        let element = match peer.addr {
            std::net::IpAddr::V4(v4) => format!("for={v4}"),
            // RFC 7239 §6: an IPv6 node is quoted and bracketed.
            std::net::IpAddr::V6(v6) => format!("for=\"[{v6}]\""),
        };
        append(headers, &FORWARDED, element.as_bytes());
    }
    headers
        .entry(&X_FORWARDED_PROTO)
        .or_insert_with(|| scheme(peer));
    if let (Entry::Vacant(vacant), Some(host)) = (headers.entry(&X_FORWARDED_HOST), host) {
        vacant.insert(host);
    }
    headers
        .entry(&X_FORWARDED_PORT)
        .or_insert_with(|| peer.port.clone());
}

fn scheme(peer: &Peer) -> HeaderValue {
    if peer.tls { HTTPS } else { HTTP }
}

/// Requests that carry `X-Forwarded-For` from a peer outside
/// `server.trusted_proxies`, on a listener beyond loopback: the sign that
/// wxgate sits behind a proxy it was not told of, so every client shares
/// the proxy's login rate-limit bucket and the backend sees the proxy as
/// the client. Counted (`wxgate_untrusted_forwarded_total`) and warned
/// about once; a trusted peer or a loopback listener costs a branch.
pub struct UntrustedForwarded {
    counter: Counter,
    warned: AtomicBool,
}

impl UntrustedForwarded {
    /// Counting in `counter`.
    pub fn new(counter: Counter) -> Self {
        Self {
            counter,
            warned: AtomicBool::new(false),
        }
    }

    /// Looks at one request from `peer`.
    pub fn check(&self, headers: &HeaderMap, peer: &Peer) {
        if peer.trusted.is_some() || peer.on_loopback_listener() {
            return;
        }
        if headers.contains_key(&X_FORWARDED_FOR) {
            self.counter.inc();
            if !self.warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    peer = %peer.addr,
                    "requests come with X-Forwarded-For from a peer not in \
                     server.trusted_proxies: if wxgate is behind an ingress or a load balancer, \
                     every client shares its login rate-limit bucket and the backend sees it as \
                     the client; set server.trusted_proxies to its addresses (counted in \
                     wxgate_untrusted_forwarded_total)"
                );
            }
        }
    }
}

/// `name`'s list with `element` appended (several lines joined as one,
/// RFC 9110 §5.3), or `element` alone.
fn append(headers: &mut HeaderMap, name: &HeaderName, element: &[u8]) {
    let mut joined = Vec::new();
    for value in headers.get_all(name) {
        joined.extend_from_slice(value.as_bytes());
        joined.extend_from_slice(b", ");
    }
    joined.extend_from_slice(element);
    if let Ok(value) = HeaderValue::from_maybe_shared(Bytes::from(joined)) {
        headers.insert(name, value);
    }
}
