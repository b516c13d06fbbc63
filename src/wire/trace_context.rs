//! W3C Trace Context (`traceparent`, `tracestate`): a request that comes
//! in a trace reaches the backend in it, so the backend's own spans join
//! the client's trace, and wxgate's log line names it (`trace_id`).
//!
//! A well-formed `traceparent` (exactly one; version `00`, or a later one
//! whose first fields read as `00`'s; lower-case hex; ids not all zero:
//! W3C Trace Context §3.2) is passed on as sent, with its `tracestate`.
//! Anything else is removed, and a `tracestate` beside it too (§3.3: it is
//! meaningless without its traceparent): never forwarded as sent.
//!
//! wxgate adds no span of its own yet: a parent id of a span nobody
//! exports would leave the backend's spans hanging from a span the
//! collector never sees. Starting traces and re-parenting them belong with
//! the span export (issue 39's second part). Until then this costs a
//! request without a traceparent one header lookup.

use http::{HeaderMap, HeaderName};

/// `traceparent`.
pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// `tracestate`.
pub static TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// `00-` + 32 + `-` + 16 + `-` + 2.
const LEN: usize = 55;

/// A trace id, as the 32 lower-case hex digits W3C writes.
pub type TraceId = [u8; 32];

/// Keeps a well-formed `traceparent` (returning its trace id for the log
/// line) and removes a malformed one with its `tracestate`.
pub fn settle(headers: &mut HeaderMap) -> Option<TraceId> {
    let mut sent = headers.get_all(&TRACEPARENT).iter();
    let trace = match (sent.next(), sent.next()) {
        (None, _) => return None,
        (Some(one), None) => trace_of(one.as_bytes()),
        (Some(_), Some(_)) => None,
    };
    if trace.is_none() {
        headers.remove(&TRACEPARENT);
        headers.remove(&TRACESTATE);
    }
    trace
}

/// The trace id of a well-formed `traceparent`.
fn trace_of(value: &[u8]) -> Option<TraceId> {
    let version = value.get(..2)?;
    // Version ff is invalid; a later version may be longer, its first
    // fields read as version 00's (§3.2.4), followed by `-` if longer.
    let fits = value.len() == LEN || (version != b"00" && value.get(LEN) == Some(&b'-'));
    if !fits || version == b"ff" || !is_hex(version) {
        return None;
    }
    let (trace, parent, flags) = (&value[3..35], &value[36..52], &value[53..55]);
    let dashes = value[2] == b'-' && value[35] == b'-' && value[52] == b'-';
    let valid = dashes
        && is_hex(trace)
        && is_hex(parent)
        && is_hex(flags)
        && trace.iter().any(|&b| b != b'0')
        && parent.iter().any(|&b| b != b'0');
    if !valid {
        return None;
    }
    trace.try_into().ok()
}

fn is_hex(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const CLIENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const STATE: &str = "congo=t61rcWkgMzE";

    /// What a request with these headers forwards: (traceparent, tracestate, trace id).
    fn settled(traceparents: &[&str]) -> (Vec<String>, Option<String>, Option<String>) {
        let mut headers = HeaderMap::new();
        for v in traceparents {
            headers.append(&TRACEPARENT, HeaderValue::from_str(v).unwrap());
        }
        headers.insert(&TRACESTATE, HeaderValue::from_static(STATE));
        let trace = settle(&mut headers).map(|t| String::from_utf8(t.to_vec()).unwrap());
        let sent = headers
            .get_all(&TRACEPARENT)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        let state = headers
            .get(&TRACESTATE)
            .map(|s| s.to_str().unwrap().to_owned());
        (sent, state, trace)
    }

    #[test]
    fn a_good_traceparent_goes_on_with_its_state() {
        // W3C Trace Context's own example, and a later version's longer form.
        let later = format!("01{}-extra", &CLIENT[2..]);
        for sent in [CLIENT, later.as_str()] {
            let (forwarded, state, trace) = settled(&[sent]);
            assert_eq!(forwarded, [sent]);
            assert_eq!(state.as_deref(), Some(STATE));
            assert_eq!(trace.as_deref(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        }
    }

    #[test]
    fn a_malformed_one_is_removed_with_its_state() {
        let zeros = "00-00000000000000000000000000000000-00f067aa0ba902b7-01";
        let zero_parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01";
        let upper = "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01";
        let version_ff = "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let longer_00 = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x";
        let short = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1";
        let cases: [&[&str]; 8] = [
            &["garbage"],
            &[zeros],
            &[zero_parent],
            &[upper],
            &[version_ff],
            &[longer_00],
            &[short],
            &[CLIENT, CLIENT],
        ];
        for sent in cases {
            assert_eq!(settled(sent), (vec![], None, None), "{sent:?}");
        }
        // None sent: the state is the client's business, left alone.
        assert_eq!(settled(&[]), (vec![], Some(STATE.to_owned()), None));
    }
}
