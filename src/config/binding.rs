//! `[binding]`: where wxgate asks for the business system's own user id.

// The typed sections' fields are their TOML keys, each documented once in
// docs/configuration.md (tests/it/docs.rs checks that every key the parser
// accepts is there): a doc comment per field would say it twice.
#![allow(missing_docs)]

use std::time::Duration;

use super::raw::RawBinding;
use super::tls::CaFile;
use super::{ConfigError, timeout};
use crate::config::secret::Secret;

/// Environment variable holding the token sent to the binding endpoint
/// as `Authorization: Bearer …` (kept out of files, like the app secret).
pub const BINDING_TOKEN_ENV: &str = "WXGATE_BINDING_TOKEN";

#[derive(Debug, Clone, PartialEq)]
pub struct BindingConfig {
    /// The endpoint wxgate POSTs `{"appid","openid","unionid","phone"}` to.
    pub url: reqwest::Url,
    pub timeout: Duration,
    /// No session without a bound id: the endpoint failing is then a 503,
    /// its 404 a 403.
    pub required: bool,
    pub token: Option<Secret>,
    /// `ca_file`: the endpoint's private CA, trusted beside the built-in roots.
    pub ca_file: Option<CaFile>,
}

impl BindingConfig {
    /// `None` when the section is absent: binding is off.
    pub(super) fn from_raw(
        raw: Option<RawBinding>,
        token: Option<String>,
    ) -> Result<Option<Self>, ConfigError> {
        let Some(raw) = raw else {
            return Ok(None);
        };
        const KEY: &str = "binding.url";
        let text = raw
            .url
            .ok_or_else(|| ConfigError::invalid(KEY, "is required in [binding]"))?;
        let url = reqwest::Url::parse(&text)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                ConfigError::invalid(
                    KEY,
                    format!(
                        "`{text}` is not an http(s) URL such as \"http://127.0.0.1:3000/wx/bind\""
                    ),
                )
            })?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(ConfigError::invalid(
                KEY,
                format!("put the credentials in {BINDING_TOKEN_ENV}, not in the URL"),
            ));
        }
        Ok(Some(Self {
            url,
            timeout: timeout("binding.timeout", raw.timeout, "2s")?,
            required: raw.required.unwrap_or(false),
            token: token.filter(|t| !t.is_empty()).map(Secret::new),
            ca_file: CaFile::load("binding.ca_file", raw.ca_file)?,
        }))
    }
}
