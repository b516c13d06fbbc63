//! The trusted identity headers wxgate hands to the upstream, and the
//! client headers that must never reach it.
//!
//! The upstream believes these headers, so a client must never be able to set
//! them. Before injecting, every client-sent copy is removed — matched on
//! the name's ASCII letters and digits alone, case-folded, because backends
//! fold the rest away: CGI, PHP and nginx map `X_WX_OpenId` and `X-WX-OpenId`
//! to the same variable (oauth2-proxy CVE-2025-64484 was exactly this gap),
//! and lighttpd's CGI/FastCGI/SCGI layer maps every other byte to `_`, so
//! `X.WX.OpenId` and `X+WX+OpenId` arrive as `HTTP_X_WX_OPENID` too.
//! Duplicates go too: `HeaderMap::remove` drops every value of a name.
//!
//! From a peer outside `server.trusted_proxies` the same pass removes the
//! proxy headers ([`PROXY_HEADERS`]: `X-Forwarded-*`, `Forwarded`,
//! `X-Real-IP`, …), which `proxy::forwarded` then sets from what wxgate
//! knows itself.
//!
//! The same pass removes wxgate's signed assertion (`X-Wxgate-Assertion`,
//! and `assertion.header` when renamed), whether or not `[assertion]` is
//! on: a backend that verifies it must only ever see wxgate's.
//!
//! The same pass removes the routing overrides (`X-Original-URL`,
//! `X-HTTP-Method-Override`, …) unless `headers.pass_routing_overrides`:
//! IIS, Symfony and Laravel route or dispatch by them, so a client could
//! turn the request wxgate authorised (`GET /public/x`) into another one
//! (`/admin`, or `DELETE`).

use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::config::{
    DEFAULT_ASSERTION_HEADER, DEFAULT_IDENTITY_HEADERS, DEFAULT_SESSION_HEADER, HeadersConfig,
    SessionConfig,
};
use crate::domain::session::UserRecord;
use crate::wire::header::{FoldedNames, folded_name as canonical};

/// The headers by which a proxy tells the next hop who the client is and
/// how it connected. From a client they are lies a backend may believe
/// (Tomcat's RemoteIpValve trusts 127.0.0.1, where a sidecar connects
/// from; Spring, Rack and ASP.NET read several): removed, in every
/// spelling, unless the peer is in `server.trusted_proxies`.
pub const PROXY_HEADERS: [&str; 16] = [
    "X-Forwarded-For",
    "X-Forwarded-Proto",
    "X-Forwarded-Host",
    "X-Forwarded-Port",
    "X-Forwarded-Prefix",
    "X-Forwarded-Ssl",
    "X-Forwarded-Scheme",
    "X-Forwarded-Server",
    "X-Forwarded-By",
    "Forwarded",
    "X-Real-IP",
    "X-Client-IP",
    "True-Client-IP",
    "X-Cluster-Client-IP",
    "Front-End-Https",
    "X-Url-Scheme",
];

/// `stripped` and the proxy headers.
fn untrusted(mut stripped: Vec<String>) -> FoldedNames {
    stripped.extend(PROXY_HEADERS.iter().map(|name| canonical(name)));
    FoldedNames::new(stripped)
}

/// Stripped from every client request, whether or not phone injection is on.
pub const DEFAULT_PHONE_HEADER: &str = "X-WX-Phone";

/// Headers by which backends route or dispatch differently from the request
/// line (stripped unless `headers.pass_routing_overrides`).
pub const ROUTING_OVERRIDES: [&str; 5] = [
    "X-Original-URL",
    "X-Rewrite-URL",
    "X-HTTP-Method-Override",
    "X-HTTP-Method",
    "X-Method-Override",
];

#[derive(Debug, Clone)]
/// The identity headers: stripped from every client request in every
/// spelling, injected from the session's user.
pub struct IdentityHeaders {
    openid: HeaderName,
    user_id: HeaderName,
    unionid: HeaderName,
    appid: HeaderName,
    /// Every configured AppID as a header value, made once.
    appid_values: Vec<(Box<str>, HeaderValue)>,
    phone: Option<HeaderName>,
    /// Removed from every client request.
    stripped: FoldedNames,
    /// Removed from a request that did not come through a trusted proxy:
    /// `stripped` and the proxy headers ([`PROXY_HEADERS`]).
    stripped_untrusted: FoldedNames,
    /// The session header's canonical name when it is forwarded.
    forwarded: Option<String>,
}

impl IdentityHeaders {
    /// `appids` were validated as alphanumeric, so they are valid header values.
    pub fn new<'a>(
        headers: &HeadersConfig,
        session: &SessionConfig,
        appids: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        let mut stripped = vec![
            canonical(headers.openid.as_str()),
            // Stripped whether or not binding is on: a backend reads it as its own user id.
            canonical(headers.user_id.as_str()),
            canonical(headers.unionid.as_str()),
            canonical(headers.appid.as_str()),
            // The phone header is stripped even when wxgate does not inject it.
            canonical(DEFAULT_PHONE_HEADER),
        ];
        // The default names too, whatever the config calls them now: a
        // backend written against them may still read them.
        stripped.extend(DEFAULT_IDENTITY_HEADERS.iter().map(|name| canonical(name)));
        stripped.push(canonical(DEFAULT_SESSION_HEADER));
        // wxgate's signed assertion: a client's copy is a forgery, whether
        // or not `[assertion]` is on (a backend may verify it regardless).
        stripped.push(canonical(DEFAULT_ASSERTION_HEADER));
        stripped.push(canonical(headers.assertion.as_str()));
        if let Some(phone) = &headers.phone {
            stripped.push(canonical(phone.as_str()));
        }
        // The session id is a bearer credential: the upstream does not need
        // it, unless `forward_session_header` says it does.
        let forwarded = session
            .forward_session_header
            .then(|| canonical(session.header.as_str()));
        stripped.push(canonical(session.header.as_str()));
        if !headers.pass_routing_overrides {
            stripped.extend(ROUTING_OVERRIDES.iter().map(|name| canonical(name)));
        }
        stripped.retain(|name| Some(name) != forwarded.as_ref());
        Self {
            openid: headers.openid.clone(),
            user_id: headers.user_id.clone(),
            unionid: headers.unionid.clone(),
            appid: headers.appid.clone(),
            phone: headers.phone.clone(),
            appid_values: appids
                .into_iter()
                .filter_map(|appid| Some((Box::from(appid), HeaderValue::from_str(appid).ok()?)))
                .collect(),
            stripped_untrusted: untrusted(stripped.clone()),
            stripped: FoldedNames::new(stripped),
            forwarded,
        }
    }

    /// These headers, also stripping every name `former` stripped (the
    /// settings before a reload): a client copy under a name configured
    /// at any time since start never reaches the backend. Only the session
    /// header now forwarded (`forward_session_header`) is kept.
    pub fn also_stripping(mut self, former: &Self) -> Self {
        let kept = self.forwarded.clone();
        let mut names: Vec<String> = self.stripped.names().to_vec();
        names.extend(
            former
                .stripped
                .names()
                .iter()
                .filter(|name| Some(*name) != kept.as_ref())
                .cloned(),
        );
        self.stripped_untrusted = untrusted(names.clone());
        self.stripped = FoldedNames::new(names);
        self
    }

    /// Removes every client-sent identity header, in all its spellings;
    /// from a peer that is not a trusted proxy, the proxy headers too
    /// (`proxy::forwarded` sets wxgate's own).
    pub fn strip(&self, headers: &mut HeaderMap, trusted_peer: bool) {
        let names = if trusted_peer {
            &self.stripped
        } else {
            &self.stripped_untrusted
        };
        names.remove_from(headers);
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
        // The session's own app: a session of one app never speaks for
        // another. (Every record is of a configured app: the stores read
        // those of others as missing.)
        let appid = user.appid();
        if let Some((_, value)) = self.appid_values.iter().find(|(id, _)| **id == *appid) {
            headers.insert(self.appid.clone(), value.clone());
        }
        // Visible ASCII by construction (`BoundId`).
        if let Some(id) = user
            .user_id()
            .and_then(|id| HeaderValue::from_str(id.as_str()).ok())
        {
            headers.insert(self.user_id.clone(), id);
        }
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
        IdentityHeaders::new(
            &config.headers,
            &config.session,
            config.apps.iter().map(|a| a.appid.as_str()),
        )
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
        for name in [
            "x.wx.openid",
            "x+wx+openid",
            "x~wx~phone",
            "x-wx--union.id",
            "xwxappid",
            "x-user-id",
            "X_User_Id",
            "x.user.id",
            "XUSERID",
        ] {
            h.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_static("forged"),
            );
        }
        h.insert("x-wx-openid-extra", HeaderValue::from_static("kept"));
        h.insert("accept", HeaderValue::from_static("*/*"));
        ids.strip(&mut h, true);
        let left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(h.contains_key("x-wx-openid-extra") && h.contains_key("accept"));
    }

    #[test]
    fn long_names_fold_like_short_ones() {
        // Punctuation does not count towards the folded length...
        let padded = format!("x{}wx-unionid", "-".repeat(200));
        // ...and a configured name longer than the fold buffer still matches.
        let long = format!("X-{}", "Long".repeat(20));
        let ids = identity(&format!("[headers]\nopenid = \"{long}\"\n"));
        let mut h = HeaderMap::new();
        for name in [
            padded.as_str(),
            &long.replace('-', "_"),
            &format!("{long}x"),
        ] {
            h.insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_static("forged"),
            );
        }
        ids.strip(&mut h, true);
        let left: Vec<_> = h.keys().map(|k| k.as_str().to_owned()).collect();
        assert_eq!(left, [format!("{long}x").to_ascii_lowercase()]);
    }

    #[test]
    fn keeps_session_header_when_forwarding_is_on() {
        let ids = identity("[session]\nforward_session_header = true\n");
        let mut h = HeaderMap::new();
        h.insert("x-session-id", HeaderValue::from_static("abc"));
        ids.strip(&mut h, true);
        assert!(h.contains_key("x-session-id"));
    }

    #[test]
    fn canonical_keeps_letters_and_digits_only() {
        // (name, folds to the same as X-WX-OpenId)
        let cases = [
            ("x_wx_openid", true),
            ("x.wx.openid", true),
            ("x+wx+openid", true),
            ("x~wx~open_id", true),
            ("xwxopenid", true),
            ("-x-wx-openid-", true),
            ("x-wx-openid2", false),
            ("x-wx-openi", false),
            ("y-wx-openid", false),
        ];
        let openid = canonical("X-WX-OpenId");
        assert_eq!(openid, "xwxopenid");
        for (name, matches) in cases {
            assert_eq!(
                crate::wire::header::folds_to(name, &openid),
                matches,
                "{name}"
            );
        }
    }

    #[test]
    fn routing_overrides_go_unless_passed() {
        let names = [
            "x-original-url",
            "x_rewrite_url",
            "x.http.method.override",
            "x-http-method",
            "x-method-override",
        ];
        let forged = || {
            let mut h = HeaderMap::new();
            for name in names {
                h.insert(
                    HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    HeaderValue::from_static("/admin"),
                );
            }
            h
        };
        let mut h = forged();
        identity("").strip(&mut h, true);
        assert!(h.is_empty(), "{h:?}");
        let mut h = forged();
        identity("[headers]\npass_routing_overrides = true\n").strip(&mut h, true);
        assert_eq!(h.len(), names.len());
    }
}
