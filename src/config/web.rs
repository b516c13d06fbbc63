//! `[web]`: browser logins (official-account and website apps) and their
//! cookie session.
//!
//! `public_url` is the origin the browser sees wxgate at: WeChat redirects
//! back to it (`redirect_uri`, which must sit on the domain registered as
//! 网页授权域名), and an unsafe request authenticated by the cookie must
//! come from it (CSRF). It is required as soon as one app is a web kind.

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
        Ok(Self {
            public_url: url.trim_end_matches('/').to_owned(),
            cookie_name,
            cookie_secure: raw.cookie_secure.unwrap_or(true),
            cookie_domain,
            state_ttl,
        })
    }
}
