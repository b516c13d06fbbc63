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
//! The same pass removes the routing overrides (`X-Original-URL`,
//! `X-HTTP-Method-Override`, …) unless `headers.pass_routing_overrides`:
//! IIS, Symfony and Laravel route or dispatch by them, so a client could
//! turn the request wxgate authorised (`GET /public/x`) into another one
//! (`/admin`, or `DELETE`).

use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::config::{
    DEFAULT_IDENTITY_HEADERS, DEFAULT_SESSION_HEADER, HeadersConfig, SessionConfig,
};
use crate::domain::session::UserRecord;
use crate::wire::header::{folded, folded_name as canonical, folds_to as same};

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

/// The first letter or digit of `name`, folded.
fn first(name: &str) -> Option<u8> {
    folded(name).next()
}

/// Header names are folded into a stack buffer of this many bytes.
const FOLD_BUFFER: usize = 64;

/// Each byte folded: letters and digits to their lower case, anything else to 0.
const FOLD: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let byte = b as u8;
        if byte.is_ascii_alphanumeric() {
            table[b] = byte.to_ascii_lowercase();
        }
        b += 1;
    }
    table
};

fn length_bit(len: usize) -> u64 {
    1 << len.min(63)
}

#[derive(Debug, Clone)]
pub struct IdentityHeaders {
    openid: HeaderName,
    user_id: HeaderName,
    unionid: HeaderName,
    appid: HeaderName,
    /// Every configured AppID as a header value, made once.
    appid_values: Vec<(Box<str>, HeaderValue)>,
    phone: Option<HeaderName>,
    /// Canonical names removed from every client request.
    stripped: Vec<String>,
    /// The first folded byte of every stripped name: most header names
    /// (`host`, `accept`, `content-type`, …) are ruled out by it alone.
    first_bytes: [bool; 128],
    /// Bit `n` set when some stripped name folds to `n` bytes (63: longer):
    /// the `x-` names left are mostly ruled out by their folded length.
    lengths: u64,
    /// The longest stripped name's length.
    longest: usize,
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
            stripped,
            first_bytes: [false; 128],
            lengths: 0,
            longest: 0,
            forwarded,
        }
        .indexed()
    }

    /// `stripped` without repeats, and the quick rejections of
    /// [`Self::is_stripped`] made from it: the first folded byte and folded
    /// length of every stripped name, and the longest.
    fn indexed(mut self) -> Self {
        self.stripped.sort();
        self.stripped.dedup();
        self.longest = self.stripped.iter().map(String::len).max().unwrap_or(0);
        self.first_bytes = [false; 128];
        self.lengths = 0;
        for name in &self.stripped {
            if let Some(b) = first(name) {
                self.first_bytes[usize::from(b & 0x7f)] = true;
                self.lengths |= length_bit(name.len());
            }
        }
        self
    }

    /// These headers, also stripping every name `former` stripped (the
    /// settings before a reload): a client copy under a name configured
    /// at any time since start never reaches the backend. Only the session
    /// header now forwarded (`forward_session_header`) is kept.
    pub fn also_stripping(mut self, former: &Self) -> Self {
        let kept = self.forwarded.clone();
        self.stripped.extend(
            former
                .stripped
                .iter()
                .filter(|name| Some(*name) != kept.as_ref())
                .cloned(),
        );
        self.indexed()
    }

    fn is_stripped(&self, name: &HeaderName) -> bool {
        let name = name.as_str();
        if self.longest >= FOLD_BUFFER {
            // Only with a configured name longer than the buffer.
            return self.stripped.iter().any(|c| same(name, c));
        }
        let bytes = name.as_bytes();
        // Most names (`host`, `accept`, …) are ruled out by their first byte.
        if let Some(&b) = bytes.first() {
            let f = FOLD[usize::from(b)];
            if f != 0 && !self.first_bytes[usize::from(f & 0x7f)] {
                return false;
            }
        }
        // Folded in one pass into a buffer, without branching on what each
        // byte is, and given up once it folds longer than every stripped name.
        let mut folded = [0u8; FOLD_BUFFER];
        let mut len = 0;
        for &b in bytes {
            let f = FOLD[usize::from(b)];
            folded[len] = f;
            len += usize::from(f != 0);
            if len > self.longest {
                return false;
            }
        }
        // A name of no letters or digits folds to "", which no stripped name is.
        let folded = &folded[..len];
        self.lengths & length_bit(len) != 0 && self.stripped.iter().any(|c| c.as_bytes() == folded)
    }

    /// Removes every client-sent identity header, in all its spellings.
    pub fn strip(&self, headers: &mut HeaderMap) {
        // One pass finds the forged names (usually only the session header),
        // kept on the stack; more than fit are removed one pass at a time.
        let mut found: [Option<HeaderName>; 4] = Default::default();
        let mut more = false;
        let mut slots = found.iter_mut();
        for name in headers.keys().filter(|k| self.is_stripped(k)) {
            match slots.next() {
                Some(slot) => *slot = Some(name.clone()),
                None => {
                    more = true;
                    break;
                }
            }
        }
        for name in found.into_iter().flatten() {
            headers.remove(name);
        }
        while more && let Some(name) = headers.keys().find(|k| self.is_stripped(k)).cloned() {
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
        ids.strip(&mut h);
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
        ids.strip(&mut h);
        let left: Vec<_> = h.keys().map(|k| k.as_str().to_owned()).collect();
        assert_eq!(left, [format!("{long}x").to_ascii_lowercase()]);
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
            assert_eq!(same(name, &openid), matches, "{name}");
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
        identity("").strip(&mut h);
        assert!(h.is_empty(), "{h:?}");
        let mut h = forged();
        identity("[headers]\npass_routing_overrides = true\n").strip(&mut h);
        assert_eq!(h.len(), names.len());
    }
}
