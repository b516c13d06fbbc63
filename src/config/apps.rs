//! `[wechat]` and `[[apps]]`: the mini-programs wxgate logs users in to.
//!
//! The single `[wechat]` table is one app, as before `[[apps]]` existed;
//! `[[apps]]` entries add more (or replace it). Each app has its own
//! AppID, secret (from the environment variable it names, never the file),
//! mode, API base and limits. The first app is the default: with exactly
//! one, a login need not say which app it is for.
//!
//! The `[wechat]` app keeps the single-app layout of stored user records
//! (keyed by openid alone), so Redis sessions opened before `[[apps]]` was
//! added still resolve after the rollout; records of `[[apps]]` entries
//! are keyed by AppID and openid.

// The typed sections' fields are their TOML keys, each documented once in
// docs/configuration.md (tests/it/docs.rs checks that every key the parser
// accepts is there): a doc comment per field would say it twice.
#![allow(missing_docs)]

use std::time::Duration;

use http::uri::Uri;

use super::ConfigError;
use super::raw::RawWechat;
use super::secret_source;
use super::tls::CaFile;
use crate::config::secret::Secret;

/// Environment variable that overrides `wechat.secret`, so the secret can
/// live in a Kubernetes Secret instead of a file.
pub const SECRET_ENV: &str = "WXGATE_WECHAT_SECRET";

/// The longest AppID accepted (WeChat's are 18 characters).
pub const APPID_MAX: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WechatMode {
    /// Exchange codes with WeChat's real `jscode2session` API.
    Live,
    /// Dev mode: any code logs in as an openid derived from it. Never for production.
    Mock,
}

/// What kind of WeChat app it is: how its users log in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppKind {
    /// `wx.login()` codes through `jscode2session` (the default).
    MiniProgram,
    /// 公众号 web authorisation in WeChat's browser; `userinfo`: the
    /// `snsapi_userinfo` scope (a consent page, then the profile), else
    /// `snsapi_base` (silent, openid only).
    OfficialAccount { userinfo: bool },
    /// 开放平台 website app: QR login (`snsapi_login`) outside WeChat.
    Website,
}

impl AppKind {
    /// Users of this kind log in in a browser, with a cookie session.
    pub fn is_web(self) -> bool {
        !matches!(self, Self::MiniProgram)
    }

    /// The OAuth scope its authorize URL asks for (web kinds).
    pub fn scope(self) -> &'static str {
        match self {
            Self::MiniProgram => "",
            Self::OfficialAccount { userinfo: false } => "snsapi_base",
            Self::OfficialAccount { userinfo: true } => "snsapi_userinfo",
            Self::Website => "snsapi_login",
        }
    }
}

/// One WeChat app: a mini-program, an official account or a website.
#[derive(Debug, Clone, PartialEq)]
pub struct WechatConfig {
    pub appid: String,
    pub secret: Secret,
    /// Base URL of WeChat's API, without a trailing slash.
    pub api_base: String,
    /// `ca_file`: a private relay's CA, trusted beside the built-in roots.
    pub ca_file: Option<CaFile>,
    pub timeout: Duration,
    pub mode: WechatMode,
    pub mock_allow_non_loopback: bool,
    /// WeChat calls in flight at once; more wait up to a second, then 503.
    pub max_in_flight: usize,
    /// Declared in `[wechat]`: user records keyed by openid alone (the
    /// single-app layout), so existing Redis sessions survive.
    pub single_app_keys: bool,
    pub kind: AppKind,
    /// Where the AppSecret came from: how to give a new one.
    pub secret_origin: SecretOrigin,
}

/// Where an AppSecret came from, which says how a new one goes in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretOrigin {
    /// A file (`secret_file`): re-read by a SIGHUP.
    File(String),
    /// An environment variable: read at start only.
    Env(String),
    /// Written in the config file: re-read by a SIGHUP.
    Inline,
}

impl SecretOrigin {
    /// How to put a new AppSecret in, for an operator reading a refusal.
    pub fn renewal(&self) -> String {
        match self {
            Self::File(key) => format!("put the new one in {key}'s file and send SIGHUP"),
            Self::Env(name) => format!(
                "set the new one in the {name} environment variable and restart (the \
                 environment is read at start only)"
            ),
            Self::Inline => "put the new one in the config file and send SIGHUP".to_owned(),
        }
    }
}

/// The config keys of one table, for errors that name them, and its layout.
struct Keys {
    /// `[wechat]`: see [`WechatConfig::single_app_keys`].
    single_app_keys: bool,
    appid: &'static str,
    secret: &'static str,
    secret_file: &'static str,
    api_base: &'static str,
    ca_file: &'static str,
    timeout: &'static str,
    mode: &'static str,
    max_in_flight: &'static str,
    kind: &'static str,
    scope: &'static str,
}

const WECHAT: Keys = Keys {
    single_app_keys: true,
    appid: "wechat.appid",
    secret: "wechat.secret",
    secret_file: "wechat.secret_file",
    api_base: "wechat.api_base",
    ca_file: "wechat.ca_file",
    timeout: "wechat.timeout",
    mode: "wechat.mode",
    max_in_flight: "wechat.max_in_flight",
    kind: "wechat.kind",
    scope: "wechat.scope",
};

const APPS: Keys = Keys {
    single_app_keys: false,
    appid: "apps.appid",
    secret: "apps.secret_env",
    secret_file: "apps.secret_file",
    api_base: "apps.api_base",
    ca_file: "apps.ca_file",
    timeout: "apps.timeout",
    mode: "apps.mode",
    max_in_flight: "apps.max_in_flight",
    kind: "apps.kind",
    scope: "apps.scope",
};

/// Every app of the config, the `[wechat]` one first; at least one.
pub(super) fn from_raw(
    wechat: Option<RawWechat>,
    apps: Vec<RawWechat>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<WechatConfig>, ConfigError> {
    let mut all = Vec::with_capacity(1 + apps.len());
    if wechat.is_some() || apps.is_empty() {
        all.push(WechatConfig::from_raw(
            wechat.unwrap_or_default(),
            &WECHAT,
            "",
            env,
        )?);
    }
    for (i, raw) in apps.into_iter().enumerate() {
        if raw.secret.is_some() {
            return Err(ConfigError::invalid(
                "apps.secret",
                format!(
                    "[[apps]] entry {}: the secret never goes in the file; name the environment \
                     variable that holds it with secret_env = \"WXGATE_SECRET_…\"",
                    i + 1
                ),
            ));
        }
        let app = WechatConfig::from_raw(raw, &APPS, &format!("[[apps]] entry {}: ", i + 1), env)?;
        if all.iter().any(|a: &WechatConfig| a.appid == app.appid) {
            return Err(ConfigError::invalid(
                "apps.appid",
                format!("`{}` is configured twice", app.appid),
            ));
        }
        all.push(app);
    }
    Ok(all)
}

impl WechatConfig {
    fn from_raw(
        raw: RawWechat,
        keys: &Keys,
        entry: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let invalid = |key, message: String| ConfigError::invalid(key, format!("{entry}{message}"));
        let single_app_keys = keys.single_app_keys;
        let mode = match raw.mode.as_deref().unwrap_or("live") {
            "live" => WechatMode::Live,
            "mock" => WechatMode::Mock,
            other => {
                return Err(invalid(
                    keys.mode,
                    format!("`{other}` is not one of \"live\", \"mock\""),
                ));
            }
        };
        let kind = kind(&raw, keys).map_err(|(key, message)| invalid(key, message))?;
        let appid = raw.appid.unwrap_or_default();
        if appid.is_empty()
            || appid.len() > APPID_MAX
            || !appid.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(invalid(
                keys.appid,
                "missing or not alphanumeric; it is the mini-program's AppID, e.g. \
                 \"wx1234567890abcdef\""
                    .to_owned(),
            ));
        }
        let secret_env = match (&raw.secret_env, single_app_keys) {
            (Some(name), _) => Some(name.as_str()),
            (None, true) => Some(SECRET_ENV),
            (None, false) => None,
        };
        let from_source = secret_source::secret(
            keys.secret_file,
            raw.secret_file.as_deref(),
            secret_env,
            env,
        )
        .map_err(|e| invalid(keys.secret_file, e.message()))?;
        let secret_origin = match (&raw.secret_file, &from_source) {
            (Some(_), _) => SecretOrigin::File(keys.secret_file.to_owned()),
            (None, Some(_)) => SecretOrigin::Env(secret_env.unwrap_or(SECRET_ENV).to_owned()),
            (None, None) => SecretOrigin::Inline,
        };
        let secret = Secret::new(from_source.or(raw.secret).unwrap_or_default());
        if mode == WechatMode::Live {
            secret_source::not_placeholder(keys.secret, secret.expose())
                .map_err(|e| invalid(keys.secret, e.message()))?;
        }
        if mode == WechatMode::Live && secret.is_empty() {
            let message = match secret_env {
                Some(name) if single_app_keys => format!(
                    "missing; set it in the file or, better, in the {name} environment variable"
                ),
                Some(name) => format!("the environment variable {name} is unset or empty"),
                None => "missing; name the environment variable that holds this app's \
                         AppSecret, e.g. secret_env = \"WXGATE_SECRET_SHOP\""
                    .to_owned(),
            };
            return Err(invalid(keys.secret, message));
        }
        let api_base = raw
            .api_base
            .unwrap_or_else(|| "https://api.weixin.qq.com".to_owned());
        let parsed: Uri = api_base
            .parse()
            .map_err(|e| invalid(keys.api_base, format!("`{api_base}` is not a URL: {e}")))?;
        if !matches!(parsed.scheme_str(), Some("http" | "https"))
            || parsed.host().is_none()
            || !parsed.authority().is_some_and(super::upstreams::valid_port)
        {
            return Err(invalid(
                keys.api_base,
                format!("`{api_base}` must be an http:// or https:// URL"),
            ));
        }
        let ca_file = CaFile::load(keys.ca_file, raw.ca_file.clone())?;
        let max_in_flight = raw.max_in_flight.unwrap_or(64);
        if max_in_flight == 0 {
            return Err(invalid(keys.max_in_flight, "must be at least 1".to_owned()));
        }
        let timeout = super::timeout(keys.timeout, raw.timeout, "5s")
            .map_err(|e| invalid(keys.timeout, e.message()))?;
        Ok(Self {
            appid,
            secret,
            api_base: api_base.trim_end_matches('/').to_owned(),
            ca_file,
            timeout,
            mode,
            mock_allow_non_loopback: raw.mock_allow_non_loopback.unwrap_or(false),
            max_in_flight,
            single_app_keys,
            kind,
            secret_origin,
        })
    }
}

/// `kind` and `scope`: a scope only where the kind has a choice.
fn kind(raw: &RawWechat, keys: &Keys) -> Result<AppKind, (&'static str, String)> {
    let kind = match raw.kind.as_deref().unwrap_or("miniprogram") {
        "miniprogram" => AppKind::MiniProgram,
        "official_account" => AppKind::OfficialAccount { userinfo: false },
        "website" => AppKind::Website,
        other => {
            return Err((
                keys.kind,
                format!(
                    "`{other}` is not one of \"miniprogram\", \"official_account\", \"website\""
                ),
            ));
        }
    };
    match (kind, raw.scope.as_deref()) {
        (_, None) => Ok(kind),
        (AppKind::OfficialAccount { .. }, Some("snsapi_base")) => Ok(kind),
        (AppKind::OfficialAccount { .. }, Some("snsapi_userinfo")) => {
            Ok(AppKind::OfficialAccount { userinfo: true })
        }
        (AppKind::Website, Some("snsapi_login")) => Ok(kind),
        (AppKind::OfficialAccount { .. }, Some(other)) => Err((
            keys.scope,
            format!("`{other}` is not one of \"snsapi_base\", \"snsapi_userinfo\""),
        )),
        (_, Some(_)) => Err((
            keys.scope,
            "only an official_account app chooses its scope (a website's is snsapi_login)"
                .to_owned(),
        )),
    }
}
