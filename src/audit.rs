//! The audit trail: one structured event per security-relevant action — a
//! login (or its refusal, with the code), a logout, a binding, a decrypt,
//! a phone number fetched, a browser login's start and callback, the
//! operator's actions on the admin port, a reload applied or refused —
//! for a security team asking "when did this user log in, from where, who
//! revoked their sessions". oauth2-proxy keeps such an auth log apart from
//! its request log; here the events go to their own tracing target
//! ([`TARGET`]), so a log shipper can route them to an index of their own,
//! and, with `log.audit_file`, to a file too (`main`).
//!
//! An event carries who and what, never a secret: no session id, code,
//! session_key, token or phone number. docs/operating.md names every
//! field.

use std::net::IpAddr;

/// The tracing target of every audit event.
pub const TARGET: &str = "wxgate::audit";

/// One audited action.
#[derive(Debug, Default)]
pub struct Event<'a> {
    /// What was done: `login`, `logout`, `binding`, `decrypt`,
    /// `phone_number`, `browser_login_start`, `browser_login`,
    /// `admin_user_lookup`, `admin_logout`, `admin_access_token`,
    /// `admin_access_token_invalidate`, `reload`.
    pub action: &'static str,
    /// `ok`, or what came of it: wxgate's error code (`code_used`,
    /// `csrf_failed`…), a binding's `not_found`, a reload's `refused`.
    pub result: &'a str,
    /// The AppID.
    pub app: Option<&'a str>,
    /// The user's openid.
    pub openid: Option<&'a str>,
    /// The business user id bound to the openid.
    pub user_id: Option<&'a str>,
    /// The client's address (through trusted proxies).
    pub client_ip: Option<IpAddr>,
    /// The request's id (`X-Request-Id`).
    pub request_id: Option<&'a str>,
    /// The request's W3C trace id (`traceparent`).
    pub trace_id: Option<&'a str>,
    /// Anything else worth knowing, never a secret (a refused reload's reason).
    pub detail: Option<&'a str>,
}

impl Event<'_> {
    /// Writes the event.
    pub fn record(&self) {
        tracing::info!(
            target: TARGET,
            action = self.action,
            result = self.result,
            app = self.app,
            openid = self.openid,
            user_id = self.user_id,
            client_ip = self.client_ip.map(tracing::field::display),
            request_id = self.request_id,
            trace_id = self.trace_id,
            detail = self.detail,
            "audit"
        );
    }
}
