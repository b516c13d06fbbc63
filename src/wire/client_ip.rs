//! Who the client is, for per-client limits: the peer address, or what a
//! trusted proxy in front says in `X-Forwarded-For`.
//!
//! `X-Forwarded-For` is believed only from `[server] trusted_proxies`,
//! and only as far as the chain stays trusted: entries are read right to
//! left (each proxy appends the address it saw), trusted addresses are
//! skipped, and the first untrusted one is the client, as nginx's
//! `real_ip_recursive` and Envoy's trusted-hops do. Anything to the left of
//! it was written by the client and may be forged. An entry that is not an
//! address ends the walk at the last address known good.

use std::net::IpAddr;

use http::HeaderMap;
use ipnet::IpNet;

static X_FORWARDED_FOR: http::HeaderName = http::HeaderName::from_static("x-forwarded-for");

/// The client: `peer`, or, when `peer` is in `trusted`, the nearest
/// untrusted address of `X-Forwarded-For` read right to left.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    // Several X-Forwarded-For lines read as one list, in order (RFC 9110 §5.3).
    let entries = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .rev()
        .flat_map(|value| value.to_str().unwrap_or("").rsplit(','));
    for entry in entries {
        let Some(ip) = parse(entry.trim()) else {
            return client;
        };
        client = ip;
        if !is_trusted(&ip) {
            return ip;
        }
    }
    client
}

/// The client as per-client limits count it: an IPv4 address alone, an
/// IPv6 one by its /64 (the block one host usually holds, so rotating
/// addresses within it does not make a new client).
pub fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(std::net::Ipv6Addr::from(bits))
        }
    }
}

/// An address as proxies write it: bare, or with a port (`1.2.3.4:5`, `[::1]:5`).
fn parse(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse() {
        return Some(ip);
    }
    entry
        .parse::<std::net::SocketAddr>()
        .ok()
        .map(|addr| addr.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_believed_only_along_the_trusted_chain() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()];
        // (peer, X-Forwarded-For lines, client)
        let cases: &[(&str, &[&str], &str)] = &[
            // An untrusted peer's header is ignored, forged or not.
            ("203.0.113.9", &["1.1.1.1"], "203.0.113.9"),
            ("203.0.113.9", &[], "203.0.113.9"),
            // A trusted proxy: the address it appended.
            ("10.0.0.2", &["198.51.100.7"], "198.51.100.7"),
            // The client's own forged entry is left of the real one.
            ("10.0.0.2", &["6.6.6.6, 198.51.100.7"], "198.51.100.7"),
            // Two trusted hops, then the client.
            ("10.0.0.2", &["198.51.100.7, 10.1.1.1"], "198.51.100.7"),
            // Several lines are one list.
            (
                "10.0.0.2",
                &["6.6.6.6", "198.51.100.7, 10.1.1.1"],
                "198.51.100.7",
            ),
            // All trusted: the leftmost.
            ("10.0.0.2", &["10.9.9.9, 10.1.1.1"], "10.9.9.9"),
            // A trusted proxy without the header: the proxy itself.
            ("10.0.0.2", &[], "10.0.0.2"),
            // Garbage stops the walk at the last good address.
            ("10.0.0.2", &["198.51.100.7, unknown"], "10.0.0.2"),
            ("10.0.0.2", &["garbage, 10.1.1.1"], "10.1.1.1"),
            // Ports and IPv6.
            ("10.0.0.2", &["198.51.100.7:4711"], "198.51.100.7"),
            ("fd00::1", &["[2001:db8::5]:443"], "2001:db8::5"),
            ("fd00::1", &["2001:db8::5"], "2001:db8::5"),
        ];
        for (peer, lines, client) in cases {
            let mut headers = HeaderMap::new();
            for line in *lines {
                headers.append(&X_FORWARDED_FOR, line.parse().unwrap());
            }
            let got = client_ip(peer.parse().unwrap(), &headers, &trusted);
            assert_eq!(got, client.parse::<IpAddr>().unwrap(), "{peer} {lines:?}");
        }
    }

    #[test]
    fn nothing_trusted_means_the_peer() {
        let mut headers = HeaderMap::new();
        headers.insert(&X_FORWARDED_FOR, "1.1.1.1".parse().unwrap());
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(client_ip(peer, &headers, &[]), peer);
    }
}
