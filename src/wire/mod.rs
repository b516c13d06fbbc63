//! HTTP plumbing: what any proxy needs and nothing of WeChat or sessions.
//!
//! The lowest layer: it imports no other module of the crate, so config,
//! the domain and the request flow all read requests by the same rules
//! (the canonical path, hop-by-hop headers, single-valued headers).

pub mod body;
pub mod body_end;
pub mod body_idle;
pub mod canonical_path;
pub mod client_ip;
pub mod connection_timer;
pub mod cookie;
pub mod header;
pub mod hop_by_hop;
pub mod html;
pub mod json;
pub mod request_id;
pub mod sent;
pub mod trace_context;

/// An error and its causes on one line ("client error (Connect): tcp connect
/// error: Connection refused"), for log lines and internal messages.
pub fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
