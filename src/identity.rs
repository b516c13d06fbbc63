//! The trusted identity headers wxgate hands to the upstream.
//!
//! The upstream believes these headers, so a client must never be able to set
//! them. Before injecting, every client-sent copy is removed — matched
//! case-insensitively and with `_` and `-` treated alike, because CGI, PHP
//! and nginx backends map `X_WX_OpenId` and `X-WX-OpenId` to the same
//! variable (oauth2-proxy CVE-2025-64484 was exactly this gap). Duplicates
//! go too: `HeaderMap::remove` drops every value of a name.

use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::config::{HeadersConfig, SessionConfig};
use crate::session::UserRecord;

/// Stripped from every client request, whether or not phone injection is on.
pub const DEFAULT_PHONE_HEADER: &str = "X-WX-Phone";

/// A header name folded the way backends fold it: lower case, `_` as `-`.
pub fn canonical(name: &str) -> String {
    name.bytes().map(|b| fold(b) as char).collect()
}

fn fold(b: u8) -> u8 {
    if b == b'_' {
        b'-'
    } else {
        b.to_ascii_lowercase()
    }
}

fn length_bit(name: &str) -> u64 {
    1 << name.len().min(63)
}

/// `name` (already lower case, as `HeaderMap` keys are) equals the canonical name.
fn same(name: &str, canonical: &str) -> bool {
    name.len() == canonical.len()
        && name
            .bytes()
            .zip(canonical.bytes())
            .all(|(a, b)| fold(a) == b)
}

#[derive(Debug, Clone)]
pub struct IdentityHeaders {
    openid: HeaderName,
    unionid: HeaderName,
    appid: HeaderName,
    appid_value: HeaderValue,
    phone: Option<HeaderName>,
    /// Canonical names removed from every client request.
    stripped: Vec<String>,
    /// Bit `n` set when some stripped name is `n` bytes long (63 for longer):
    /// most header names are ruled out by their length alone.
    stripped_lengths: u64,
}

impl IdentityHeaders {
    /// `appid` was validated as alphanumeric, so it is a valid header value.
    pub fn new(headers: &HeadersConfig, session: &SessionConfig, appid: &str) -> Self {
        let mut stripped = vec![
            canonical(headers.openid.as_str()),
            canonical(headers.unionid.as_str()),
            canonical(headers.appid.as_str()),
            // The phone header is stripped even when wxgate does not inject it.
            canonical(DEFAULT_PHONE_HEADER),
        ];
        if let Some(phone) = &headers.phone {
            stripped.push(canonical(phone.as_str()));
        }
        if !session.forward_session_header {
            // The session id is a bearer credential: the upstream does not need it.
            stripped.push(canonical(session.header.as_str()));
        }
        Self {
            openid: headers.openid.clone(),
            unionid: headers.unionid.clone(),
            appid: headers.appid.clone(),
            phone: headers.phone.clone(),
            appid_value: HeaderValue::from_str(appid)
                .unwrap_or_else(|_| HeaderValue::from_static("invalid")),
            stripped_lengths: stripped.iter().fold(0, |m, c| m | length_bit(c)),
            stripped,
        }
    }

    fn is_stripped(&self, name: &HeaderName) -> bool {
        let name = name.as_str();
        self.stripped_lengths & length_bit(name) != 0 && self.stripped.iter().any(|c| same(name, c))
    }

    /// Removes every client-sent identity header, in all its spellings.
    pub fn strip(&self, headers: &mut HeaderMap) {
        // One forged name at a time, without a collecting allocation: usually
        // only the session header matches. Each pass removes a name, so this
        // ends after at most as many passes as there are distinct names.
        while let Some(name) = headers.keys().find(|k| self.is_stripped(k)).cloned() {
            headers.remove(name);
        }
    }

    /// Sets the identity of `user`. Call after [`Self::strip`].
    pub fn inject(&self, headers: &mut HeaderMap, user: &UserRecord) {
        // Checked visible ASCII when the record was made, so these convert.
        if let Ok(openid) = HeaderValue::from_str(user.openid()) {
            headers.insert(self.openid.clone(), openid);
        }
        if let Some(unionid) = user.unionid().and_then(|u| HeaderValue::from_str(u).ok()) {
            headers.insert(self.unionid.clone(), unionid);
        }
        headers.insert(self.appid.clone(), self.appid_value.clone());
        if let Some(name) = &self.phone
            && let Some(value) = user.phone.as_ref().and_then(|p| p.header_value())
        {
            headers.insert(name.clone(), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn identity(extra: &str) -> IdentityHeaders {
        let text = format!(
            "[upstream]\nurl = \"http://127.0.0.1:1\"\n[wechat]\nappid = \"wxapp\"\nsecret = \"s\"\n{extra}"
        );
        let config = Config::parse(&text, &|_| None).unwrap();
        IdentityHeaders::new(&config.headers, &config.session, &config.wechat.appid)
    }

    #[test]
    fn strips_every_spelling_and_duplicate() {
        let ids = identity("");
        let mut h = HeaderMap::new();
        for name in [
            "x-wx-openid",
            "X_WX_OPENID",
            "x_wx-openid",
            "x-wx-unionid",
            "x-wx_appid",
            "x-session-id",
            "x_session_id",
            "x-wx-phone",
            "X_WX_Phone",
        ] {
            h.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_static("forged"),
            );
            h.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_static("again"),
            );
        }
        h.insert("x-wx-openid-extra", HeaderValue::from_static("kept"));
        h.insert("accept", HeaderValue::from_static("*/*"));
        ids.strip(&mut h);
        let left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(h.contains_key("x-wx-openid-extra") && h.contains_key("accept"));
    }

    #[test]
    fn keeps_session_header_when_forwarding_is_on() {
        let ids = identity("[session]\nforward_session_header = true\n");
        let mut h = HeaderMap::new();
        h.insert("x-session-id", HeaderValue::from_static("abc"));
        ids.strip(&mut h);
        assert!(h.contains_key("x-session-id"));
    }

    #[test]
    fn canonical_folds_case_and_underscore() {
        assert_eq!(canonical("X_WX_OpenId"), "x-wx-openid");
        assert!(same("x_wx_openid", "x-wx-openid"));
        assert!(!same("x-wx-openid2", "x-wx-openid"));
    }
}
