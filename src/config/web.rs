//! `[web]`: browser logins (official-account and website apps) and their
//! cookie session.
//!
//! `public_url` is the origin the browser sees wxgate at: WeChat redirects
//! back to it (`redirect_uri`, which must sit on the domain registered as
//! 网页授权域名), and an unsafe request authenticated by the cookie must
//! come from it (CSRF). It is required as soon as one app is a web kind.

// The typed sections' fields are their TOML keys, each documented once in
// docs/configuration.md (tests/it/docs.rs checks that every key the parser
// accepts is there): a doc comment per field would say it twice.
#![allow(missing_docs)]

use std::time::Duration;

use http::uri::Uri;

use super::ConfigError;
use super::raw::RawWeb;

#[derive(Debug, Clone, PartialEq)]
pub struct WebConfig {
    /// `scheme://host[:port]`, no trailing slash: the browser's origin.
    pub public_url: String,
    pub cookie_name: String,
    /// `Secure` on the cookies (off only for plain-HTTP development).
    pub cookie_secure: bool,
    pub cookie_domain: Option<String>,
    /// How long a login begun at the start route may take to come back.
    pub state_ttl: Duration,
    /// The site's own error page for a failed browser login, when set.
    pub error_redirect: Option<String>,
}

impl WebConfig {
    pub(super) fn from_raw(raw: RawWeb) -> Result<Self, ConfigError> {
        let url = raw.public_url.unwrap_or_default();
        let parsed: Uri = url.parse().map_err(|_| {
            ConfigError::invalid(
                "web.public_url",
                format!("`{url}` is not a URL; write the origin browsers use, e.g. \"https://m.example.com\""),
            )
        })?;
        let origin_only = matches!(parsed.path(), "" | "/") && parsed.query().is_none();
        if !matches!(parsed.scheme_str(), Some("http" | "https"))
            || parsed.host().is_none()
            || !origin_only
        {
            return Err(ConfigError::invalid(
                "web.public_url",
                format!("`{url}` must be an origin: http(s)://host[:port], no path"),
            ));
        }
        let cookie_name = raw
            .cookie_name
            .unwrap_or_else(|| "wxgate_session".to_owned());
        // RFC 6265 §4.1.1: a cookie-name is an RFC 9110 token.
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if cookie_name.is_empty() || !cookie_name.bytes().all(token) {
            return Err(ConfigError::invalid(
                "web.cookie_name",
                format!("`{cookie_name}` is not a cookie name (letters, digits, `-`, `_`, …)"),
            ));
        }
        let cookie_domain = raw.cookie_domain.filter(|d| !d.is_empty());
        if let Some(domain) = &cookie_domain {
            let valid = domain
                .trim_start_matches('.')
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
            if !valid {
                return Err(ConfigError::invalid(
                    "web.cookie_domain",
                    format!("`{domain}` is not a domain name"),
                ));
            }
        }
        let state_ttl = super::timeout("web.state_ttl", raw.state_ttl, "10m")?;
        let cookie_secure = raw.cookie_secure.unwrap_or(true);
        // The cookie prefixes' rules (RFC 6265bis §4.1.3): a browser drops
        // a prefixed cookie set without them, so every login would fail.
        let prefixed = ["__Host-", "__Secure-"]
            .into_iter()
            .find(|prefix| cookie_name.starts_with(prefix));
        if let Some(prefix) = prefixed
            && !cookie_secure
        {
            return Err(ConfigError::invalid(
                "web.cookie_secure",
                format!("a `{prefix}` cookie must be Secure: remove `cookie_secure = false`"),
            ));
        }
        if prefixed == Some("__Host-") && cookie_domain.is_some() {
            return Err(ConfigError::invalid(
                "web.cookie_domain",
                "a `__Host-` cookie is bound to its host and takes no Domain: remove cookie_domain",
            ));
        }
        let error_redirect = raw.error_redirect.filter(|t| !t.is_empty());
        if let Some(target) = &error_redirect {
            let same_site = crate::wire::canonical_path::same_site_path(target).is_some();
            let absolute = target.parse::<Uri>().is_ok_and(|u| {
                matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some()
            }) && target.bytes().all(|b| b.is_ascii_graphic());
            if !(same_site || absolute) {
                return Err(ConfigError::invalid(
                    "web.error_redirect",
                    format!(
                        "`{target}` is neither a path on this site (\"/login-failed\") nor an \
                         http(s) URL"
                    ),
                ));
            }
        }
        Ok(Self {
            public_url: url.trim_end_matches('/').to_owned(),
            cookie_name,
            cookie_secure,
            cookie_domain,
            state_ttl,
            error_redirect,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{AppKind, Config, ConfigError};

    const BASE: &str = "[server]\nlisten = \"127.0.0.1:8080\"\n[upstream]\nurl = \"http://127.0.0.1:3000\"\n\
                        [wechat]\nappid = \"wxmini\"\nmode = \"mock\"\n";
    const OA: &str = "[[apps]]\nappid = \"wxoa\"\nmode = \"mock\"\nkind = \"official_account\"\n";

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, &|_| None).map_err(|e| match e {
            ConfigError::Invalid { key, .. } => key.to_owned(),
            other => other.to_string(),
        })
    }

    #[test]
    fn a_web_app_needs_web_and_web_needs_a_web_app() {
        let web = "[web]\npublic_url = \"https://m.example.com\"\n";
        let config = parse(&format!("{BASE}{web}{OA}")).unwrap();
        let web_config = config.web.unwrap();
        assert_eq!(web_config.public_url, "https://m.example.com");
        assert_eq!(web_config.cookie_name, "wxgate_session");
        assert!(web_config.cookie_secure);
        assert_eq!(web_config.state_ttl, std::time::Duration::from_secs(600));
        assert_eq!(
            config.apps[1].kind,
            AppKind::OfficialAccount { userinfo: false }
        );
        assert_eq!(parse(&format!("{BASE}{OA}")).unwrap_err(), "web.public_url");
        assert_eq!(
            parse(&format!("{BASE}{web}")).unwrap_err(),
            "web.public_url"
        );
    }

    #[test]
    fn error_redirect_is_a_path_here_or_an_http_url() {
        for target in [
            "/login-failed",
            "/oops?from=wx",
            "https://m.example.com/oops",
        ] {
            let text = format!(
                "{BASE}[web]\npublic_url = \"https://m.example.com\"\nerror_redirect = \"{target}\"\n{OA}"
            );
            let web = parse(&text).unwrap().web.unwrap();
            assert_eq!(web.error_redirect.as_deref(), Some(target));
        }
    }

    #[test]
    fn invalid_values_name_their_key() {
        let web = |extra: &str| {
            format!("{BASE}[web]\npublic_url = \"https://m.example.com\"\n{extra}{OA}")
        };
        let cases = [
            (
                format!("{BASE}[web]\npublic_url = \"https://m.example.com/app\"\n{OA}"),
                "web.public_url",
            ),
            (
                format!("{BASE}[web]\npublic_url = \"m.example.com\"\n{OA}"),
                "web.public_url",
            ),
            (
                format!("{BASE}[web]\npublic_url = \"ftp://m.example.com\"\n{OA}"),
                "web.public_url",
            ),
            (web("cookie_name = \"a b\"\n"), "web.cookie_name"),
            (web("cookie_name = \"\"\n"), "web.cookie_name"),
            (
                web("cookie_domain = \"exa mple.com\"\n"),
                "web.cookie_domain",
            ),
            (web("state_ttl = \"0s\"\n"), "web.state_ttl"),
            (
                web("error_redirect = \"//evil.example\"\n"),
                "web.error_redirect",
            ),
            (
                web("error_redirect = \"javascript:alert(1)\"\n"),
                "web.error_redirect",
            ),
            (web("error_redirect = \"oops\"\n"), "web.error_redirect"),
            (web("error_redirect = \"/a b\"\n"), "web.error_redirect"),
            (
                web("cookie_name = \"__Host-wx\"\ncookie_secure = false\n"),
                "web.cookie_secure",
            ),
            (
                web("cookie_name = \"__Secure-wx\"\ncookie_secure = false\n"),
                "web.cookie_secure",
            ),
            (
                web("cookie_name = \"__Host-wx\"\ncookie_domain = \"example.com\"\n"),
                "web.cookie_domain",
            ),
            (web("").replace("official_account", "webapp"), "apps.kind"),
            (web("") + "scope = \"snsapi_login\"\n", "apps.scope"),
            (format!("{BASE}scope = \"snsapi_base\"\n"), "wechat.scope"),
        ];
        for (text, key) in cases {
            assert_eq!(parse(&text).err().as_deref(), Some(key), "{text}");
        }
        let userinfo = parse(&(web("") + "scope = \"snsapi_userinfo\"\n")).unwrap();
        assert_eq!(
            userinfo.apps[1].kind,
            AppKind::OfficialAccount { userinfo: true }
        );
        let site = parse(&web("").replace("official_account", "website")).unwrap();
        assert_eq!(site.apps[1].kind, AppKind::Website);
    }
}
