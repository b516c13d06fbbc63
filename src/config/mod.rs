//! Typed, validated configuration.
//!
//! Loading happens in two layers, as in linkerd2-proxy: `raw.rs` mirrors the
//! TOML file, and [`Config::parse`] turns it into typed values (`Duration`,
//! `SocketAddr`, `HeaderName`, …), applying defaults and checking every rule
//! before anything binds a port. Errors name the offending key so
//! `wxgate check-config` can tell an operator exactly what to fix.
//!
//! The environment is read only through the `env` lookup function passed in,
//! so tests never touch the process environment.

mod apps;
mod assertion;
mod binding;
mod observe;
mod raw;
mod routes;
mod rules;
pub mod secret;
mod secret_source;
mod sections;
mod store;
mod tls;
mod tracing;
mod upstream_tls;
mod upstreams;
mod web;

use std::path::Path;

pub use apps::{APPID_MAX, AppKind, SECRET_ENV, SecretOrigin, WechatConfig, WechatMode};
pub use assertion::{AssertionConfig, AssertionKey, DEFAULT_ASSERTION_HEADER};
pub use binding::{BINDING_TOKEN_ENV, BindingConfig};
pub use observe::{ADMIN_TOKEN_ENV, AdminConfig, LOG_ENV, LogConfig, LogFormat};
pub use routes::{DEFAULT_PREFIX, PublicRoute, RoutesConfig};
pub use rules::{AppKinds, KindName, PathMatch, Requirements, RuleAction, RuleConfig};
pub use sections::{
    DEFAULT_IDENTITY_HEADERS, DEFAULT_MAX_IN_FLIGHT, DEFAULT_SESSION_HEADER, HeadersConfig,
    LoginConfig, ServerConfig, SessionConfig,
};
pub use store::{REDIS_URL_ENV, RedisConfig, RedisNodes, STORE_KEY_ENV, StoreConfig, StoreKey};
pub use tls::{CaFile, ServerTls, trusting};
pub use tracing::{OtlpProtocol, TracingConfig};
pub use upstream_tls::UpstreamTls;
pub use upstreams::{ReadyCheck, UpstreamConfig};
pub use web::WebConfig;

#[derive(Debug, Clone, PartialEq)]
/// The validated configuration: every value checked, nothing left to parse.
pub struct Config {
    /// `[server]`.
    pub server: ServerConfig,
    /// `[upstream]` first, then `[[upstreams]]`; never empty.
    pub upstreams: Vec<UpstreamConfig>,
    /// `[wechat]` first, then `[[apps]]`; never empty. The first is the default app.
    pub apps: Vec<WechatConfig>,
    /// `[session]`.
    pub session: SessionConfig,
    /// `session.store` and `[redis]`.
    pub store: StoreConfig,
    /// `[routes]`.
    pub routes: RoutesConfig,
    /// `[headers]`.
    pub headers: HeadersConfig,
    /// `[admin]`.
    pub admin: AdminConfig,
    /// `[log]`.
    pub log: LogConfig,
    /// `[login]`.
    pub login: LoginConfig,
    /// Off (`None`) unless `[binding]` is present.
    pub binding: Option<BindingConfig>,
    /// Browser logins: present when an app is an official account or a website.
    pub web: Option<WebConfig>,
    /// The signed identity assertion: off (`None`) unless `[assertion]` is present.
    pub assertion: Option<AssertionConfig>,
    /// `[[rules]]`, in order.
    pub rules: Vec<RuleConfig>,
    /// Span export: off (`None`) unless `[tracing]` or an `OTEL_…` endpoint says where.
    pub tracing: Option<TracingConfig>,
    /// Start the built-in echo server on `upstream.url` (demo and first run).
    pub demo_echo_upstream: bool,
    /// What is allowed but unwise (a secret written in the file), for
    /// `check-config` to print and the log to warn about at start.
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
/// Why a config was not loaded: it names the key, never a value.
#[allow(missing_docs)] // each variant's `#[error]` text describes it
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// Not TOML, or not the shape wxgate reads. Never the line's text: the
    /// line may hold a secret (`secret = …`).
    #[error("{at}{message}")]
    Syntax { at: String, message: String },
    #[error("config key `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

impl ConfigError {
    pub(crate) fn invalid(key: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            key,
            message: message.into(),
        }
    }

    /// `e` as where (line, column, key) and what, without the text there.
    fn syntax(text: &str, e: &toml::de::Error) -> Self {
        let mut key = None;
        let at = e.span().map_or_else(String::new, |span| {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            key = key_at(text, line);
            let named = key
                .as_ref()
                .map(|key| format!(", key `{key}`"))
                .unwrap_or_default();
            format!("line {line}, column {column}{named}: ")
        });
        let message = without_values(e.message());
        let hint = key.as_deref().and_then(|key| hint(key, &message));
        Self::Syntax {
            at,
            message: match hint {
                Some(hint) => format!("{message}; {hint}"),
                None => message,
            },
        }
    }

    /// What is wrong, without the key.
    pub(crate) fn message(&self) -> String {
        match self {
            Self::Invalid { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }
}

/// What to write instead, for the shape mistakes a first config makes:
/// a bare number where a duration or an address is a string, and a single
/// `[upstreams]` or `[apps]` table where a list of them is expected.
fn hint(key: &str, message: &str) -> Option<String> {
    let name = key.rsplit('.').next().unwrap_or(key);
    if message.starts_with("invalid type: integer") || message.starts_with("invalid type: float") {
        if !message.contains("expected a string") {
            return None;
        }
        let duration = ["timeout", "ttl", "idle", "stale_if_error"]
            .iter()
            .any(|part| name.contains(part));
        return Some(if duration {
            format!("a duration is written in quotes with its unit, e.g. {name} = \"30s\"")
        } else {
            format!("write it in quotes, e.g. {name} = \"…\"")
        });
    }
    if message.starts_with("invalid type: map, expected a sequence")
        && matches!(key, "upstreams" | "apps")
    {
        return Some(format!(
            "each entry is a [[{key}]] table (double brackets), one per entry"
        ));
    }
    None
}

/// The dotted key set on line `line` (1-based) of `text`: the table it is
/// in and the name before `=`; the table itself on a header line.
fn key_at(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let here = lines.get(line.checked_sub(1)?)?.trim();
    let header = |l: &str| {
        let l = l.trim();
        l.starts_with('[')
            .then(|| l.trim_matches(|c| c == '[' || c == ']').trim().to_owned())
    };
    if let Some(table) = header(here) {
        return Some(table);
    }
    let name = here.split_once('=')?.0.trim();
    let table = lines[..line - 1].iter().rev().find_map(|l| header(l));
    Some(match table {
        Some(table) => format!("{table}.{name}"),
        None => name.to_owned(),
    })
}

/// serde's message with the offending value taken out: `invalid type:
/// string "…", expected …` names the kind only, for the value may be a
/// secret.
fn without_values(message: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: ", "invalid length "] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some((unexpected, expected)) = rest.split_once(", expected")
        {
            let kind = unexpected.split_whitespace().next().unwrap_or("value");
            return format!("{prefix}{kind}, expected{expected}");
        }
    }
    message.lines().next().unwrap_or(message).to_owned()
}

impl Config {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, env)
    }

    /// Parses and validates TOML text.
    pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let raw: raw::RawConfig =
            toml::from_str(text).map_err(|e| ConfigError::syntax(text, &e))?;
        let mut warnings = Vec::new();
        // A secret written in the file travels with it: into the repository,
        // the ConfigMap, every `kubectl describe`.
        let inline_secret = raw.wechat.as_ref().is_some_and(|w| w.secret.is_some())
            && env(SECRET_ENV).is_none_or(|v| v.is_empty());
        if inline_secret {
            warnings.push(format!(
                "wechat.secret is written in the config file: put it in the {SECRET_ENV} \
                 environment variable or in wechat.secret_file (a mounted Secret) instead"
            ));
        }
        if raw.admin.token.is_some() {
            warnings.push(format!(
                "admin.token is written in the config file: put it in the {ADMIN_TOKEN_ENV} \
                 environment variable or in admin.token_file instead"
            ));
        }
        let server = ServerConfig::from_raw(raw.server)?;
        let upstreams = upstreams::from_raw(raw.upstream, raw.upstreams.unwrap_or_default())?;
        let apps = apps::from_raw(raw.wechat, raw.apps.unwrap_or_default(), env)?;
        let store_key = secret_source::secret(
            "session.store_key_file",
            raw.session.store_key_file.as_deref(),
            Some(STORE_KEY_ENV),
            env,
        )?;
        let store_env = |name: &str| match name {
            STORE_KEY_ENV => store_key.clone(),
            other => env(other),
        };
        let store = StoreConfig::from_raw(
            raw.session.store.clone(),
            raw.session.local_ttl.clone(),
            raw.session.stale_if_error.clone(),
            raw.redis,
            &store_env,
        )?;
        let session = SessionConfig::from_raw(raw.session)?;
        let routes = RoutesConfig::from_raw(raw.routes)?;
        let rules = rules::from_raw(
            raw.rules.unwrap_or_default(),
            &upstreams,
            &apps,
            &routes.prefix,
        )?;
        let headers = HeadersConfig::from_raw(
            raw.headers,
            &session.header,
            raw.assertion.as_ref().and_then(|a| a.header.clone()),
        )?;
        let assertion = raw
            .assertion
            .map(|raw| AssertionConfig::from_raw(raw, headers.assertion.clone()))
            .transpose()?;
        let demo_echo_upstream = raw.demo.echo_upstream.unwrap_or(false);
        let admin_token = secret_source::secret(
            "admin.token_file",
            raw.admin.token_file.as_deref(),
            Some(ADMIN_TOKEN_ENV),
            env,
        )?;
        let admin = AdminConfig::from_raw(raw.admin, admin_token)?;
        let log = LogConfig::from_raw(raw.log, env(LOG_ENV))?;
        let login = LoginConfig::from_raw(raw.login)?;
        let binding_token = match &raw.binding {
            Some(binding) => secret_source::secret(
                "binding.token_file",
                binding.token_file.as_deref(),
                Some(BINDING_TOKEN_ENV),
                env,
            )?,
            None => None,
        };
        let binding = BindingConfig::from_raw(raw.binding, binding_token)?;
        let tracing = TracingConfig::from_raw(raw.tracing, env)?;
        let web = match (raw.web, apps.iter().any(|app| app.kind.is_web())) {
            (Some(web), true) => Some(WebConfig::from_raw(web)?),
            (None, true) => {
                return Err(ConfigError::invalid(
                    "web.public_url",
                    "an official_account or website app logs users in in a browser: add [web] \
                     with public_url, the origin browsers reach wxgate at",
                ));
            }
            (Some(_), false) => {
                return Err(ConfigError::invalid(
                    "web.public_url",
                    "[web] is for official_account and website apps, and none is configured \
                     (kind = \"official_account\" or \"website\" in [wechat] or [[apps]])",
                ));
            }
            (None, false) => None,
        };

        if let Some(app) = apps.iter().find(|app| {
            app.mode == WechatMode::Mock
                && !server.listen.ip().is_loopback()
                && !app.mock_allow_non_loopback
        }) {
            return Err(ConfigError::invalid(
                if app.single_app_keys {
                    "wechat.mode"
                } else {
                    "apps.mode"
                },
                format!(
                    "app {}: mode = \"mock\" logs anyone in without WeChat, so it refuses to \
                     listen on the non-loopback address {}; listen on 127.0.0.1, switch to \
                     mode = \"live\", or set mock_allow_non_loopback = true if you really mean it",
                    app.appid, server.listen
                ),
            ));
        }
        if demo_echo_upstream && apps.iter().any(|app| app.mode == WechatMode::Live) {
            return Err(ConfigError::invalid(
                "demo.echo_upstream",
                "the demo echo server would answer in place of your backend: it runs only with \
                 wechat.mode = \"mock\"; remove the [demo] section in production",
            ));
        }
        if demo_echo_upstream && !upstreams.iter().all(UpstreamConfig::is_loopback) {
            return Err(ConfigError::invalid(
                "demo.echo_upstream",
                "the demo echo server binds upstream.url, which must then be a loopback IP \
                 address such as http://127.0.0.1:3000",
            ));
        }

        warnings.extend(shape_warnings(&apps, &session, &routes));
        if assertion.as_ref().is_some_and(|a| a.keys.is_empty())
            && matches!(store, StoreConfig::Redis(_))
        {
            warnings.push(
                "[assertion] has no key_files: each replica signs with a key of its own, which                  the others do not publish; mount the same key_files in every replica"
                    .to_owned(),
            );
        }

        Ok(Self {
            server,
            upstreams,
            apps,
            session,
            store,
            routes,
            headers,
            admin,
            log,
            login,
            binding,
            web,
            assertion,
            rules,
            tracing,
            demo_echo_upstream,
            warnings,
        })
    }
}

/// What loads but is most likely a mistake: said by `check-config` and at
/// start, never refused (a test double's AppID need not look like WeChat's).
fn shape_warnings(
    apps: &[WechatConfig],
    session: &SessionConfig,
    routes: &RoutesConfig,
) -> Vec<String> {
    let mut warnings = Vec::new();
    let hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
    for app in apps.iter().filter(|app| app.mode == WechatMode::Live) {
        let table = if app.single_app_keys {
            "wechat"
        } else {
            "apps"
        };
        let appid = &app.appid;
        if !(appid.len() == 18 && appid.starts_with("wx") && hex(&appid[2..])) {
            warnings.push(format!(
                "{table}.appid `{appid}` does not look like a WeChat AppID (\"wx\" and 16 hex \
                 digits): copy it from 微信公众平台 → 开发管理 → 开发设置"
            ));
        }
        let secret = app.secret.expose();
        if !(secret.len() == 32 && hex(secret)) {
            warnings.push(format!(
                "{table}.secret of app {appid} is {} characters long, not the 32 hex digits of \
                 a WeChat AppSecret: check it was copied whole",
                secret.chars().count()
            ));
        }
    }
    if routes.public.iter().any(|route| route.path == "/") {
        warnings.push(
            "routes.public holds \"/\": every path is public, no request needs a session \
             (identity is still injected when one is sent)"
                .to_owned(),
        );
    }
    if let Some(idle) = session.idle.filter(|idle| *idle >= session.ttl) {
        warnings.push(format!(
            "session.idle ({}) is not shorter than session.ttl ({}): every session ends at \
             its ttl first, the idle timeout never does",
            humantime::format_duration(idle),
            humantime::format_duration(session.ttl)
        ));
    }
    warnings
}

/// Parses a socket address such as `"0.0.0.0:8080"`.
pub(crate) fn socket_addr(
    key: &'static str,
    value: Option<&str>,
    default: &str,
) -> Result<std::net::SocketAddr, ConfigError> {
    let text = value.unwrap_or(default);
    text.parse().map_err(|_| {
        ConfigError::invalid(
            key,
            format!("`{text}` is not an address such as \"{default}\""),
        )
    })
}

/// A timeout: a duration that must not be zero, which would mean "fail at
/// once" — never what an operator who writes `"0s"` meant.
pub(crate) fn timeout(
    key: &'static str,
    value: Option<String>,
    default: &str,
) -> Result<std::time::Duration, ConfigError> {
    let d = duration(key, value, default)?;
    if d.is_zero() {
        return Err(ConfigError::invalid(
            key,
            format!("must be longer than 0s (it would fail at once); the default is \"{default}\""),
        ));
    }
    Ok(d)
}

/// Parses a duration written as `"3s"`, `"500ms"`, `"7d"`, `"1h 30m"`.
pub(crate) fn duration(
    key: &'static str,
    value: Option<String>,
    default: &str,
) -> Result<std::time::Duration, ConfigError> {
    let text = value.as_deref().unwrap_or(default);
    humantime::parse_duration(text).map_err(|e| {
        ConfigError::invalid(
            key,
            format!("`{text}` is not a duration ({e}); write e.g. \"3s\", \"500ms\", \"7d\""),
        )
    })
}

#[cfg(test)]
mod tests;
