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
//! That is with tracing off ([`settle`]): a parent id of a span nobody
//! exports would leave the backend's spans hanging from a span the
//! collector never sees, so wxgate passes the client's on and costs a
//! request without a traceparent one header lookup. With `[tracing]` on,
//! `telemetry` [`take`]s the client's headers out, makes its request span
//! their child (or starts a trace) and writes the upstream's afresh.

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

/// A client's well-formed `traceparent`, read, and its `tracestate`.
pub struct Parent {
    /// The trace.
    pub trace_id: [u8; 16],
    /// The client's span, the parent of wxgate's.
    pub parent_id: [u8; 8],
    /// Bit 0: the client records this trace (sampled).
    pub flags: u8,
    /// As sent (its own syntax is the tracer's to judge).
    pub state: Option<String>,
}

/// Removes the client's `traceparent` and `tracestate`, returning them
/// when the `traceparent` is well-formed (one, as [`settle`] judges).
pub fn take(headers: &mut HeaderMap) -> Option<Parent> {
    let trace = settle(headers)?;
    let sent = headers.remove(&TRACEPARENT)?;
    let state = headers
        .remove(&TRACESTATE)
        .and_then(|s| s.to_str().ok().map(str::to_owned));
    let value = sent.as_bytes();
    let mut parent = Parent {
        trace_id: [0; 16],
        parent_id: [0; 8],
        flags: 0,
        state,
    };
    decode(&trace, &mut parent.trace_id)?;
    decode(&value[36..52], &mut parent.parent_id)?;
    let mut flags = [0u8; 1];
    decode(&value[53..55], &mut flags)?;
    parent.flags = flags[0];
    Some(parent)
}

/// Lower-case hex digits into bytes (already checked: `None` never seen).
fn decode(digits: &[u8], out: &mut [u8]) -> Option<()> {
    let nibble = |d: u8| match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'a'..=b'f' => Some(d - b'a' + 10),
        _ => None,
    };
    for (pair, byte) in digits.chunks_exact(2).zip(out.iter_mut()) {
        *byte = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(())
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
    fn take_reads_the_parent_and_removes_both_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(&TRACEPARENT, HeaderValue::from_static(CLIENT));
        headers.insert(&TRACESTATE, HeaderValue::from_static(STATE));
        let parent = take(&mut headers).unwrap();
        assert_eq!(
            parent.trace_id,
            [
                0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e,
                0x47, 0x36
            ]
        );
        assert_eq!(
            parent.parent_id,
            [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
        );
        assert_eq!(parent.flags, 1);
        assert_eq!(parent.state.as_deref(), Some(STATE));
        assert!(headers.is_empty());
        // A malformed one: removed too, nothing read.
        headers.insert(&TRACEPARENT, HeaderValue::from_static("00-zz"));
        headers.insert(&TRACESTATE, HeaderValue::from_static(STATE));
        assert!(take(&mut headers).is_none());
        assert!(headers.is_empty());
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
