//! `[admin]` and `[log]`: how operators watch wxgate.

// The typed sections' fields are their TOML keys, each documented once in
// docs/configuration.md (tests/it/docs.rs checks that every key the parser
// accepts is there): a doc comment per field would say it twice.
#![allow(missing_docs)]

use std::net::SocketAddr;

use super::ConfigError;
use super::raw::{RawAdmin, RawLog};
use crate::config::secret::Secret;

/// Environment variable that overrides `admin.token`.
pub const ADMIN_TOKEN_ENV: &str = "WXGATE_ADMIN_TOKEN";

/// Environment variable that overrides `log.level` (a tracing filter such
/// as `info` or `wxgate=debug,info`).
pub const LOG_ENV: &str = "WXGATE_LOG";

#[derive(Debug, Clone, PartialEq)]
pub struct AdminConfig {
    /// Serves `/metrics`, `/healthz` and `/readyz`. Loopback by default so
    /// it is never exposed by accident; in Kubernetes set `0.0.0.0:9090` so
    /// kubelet probes and Prometheus reach it (the Service leaves it out).
    pub listen: SocketAddr,
    /// Bearer token for the operator actions (`/users/…`). Without one they
    /// answer only when `listen` is a loopback address.
    pub token: Option<Secret>,
    /// `/readyz` is 503 while the session store is down (off: readiness is
    /// this replica's own state; a shared store in every replica's
    /// readiness turns its outage into the whole Service's).
    pub ready_requires_store: bool,
}

impl AdminConfig {
    /// Shortest token accepted: a guessable one would hand out every user's logout.
    pub const MIN_TOKEN_LEN: usize = 16;

    pub(super) fn from_raw(raw: RawAdmin, env_token: Option<String>) -> Result<Self, ConfigError> {
        let listen = super::socket_addr("admin.listen", raw.listen.as_deref(), "127.0.0.1:9090")?;
        // An empty variable (a Secret key left blank) means no token, as unset does.
        let (key, token) = match env_token.filter(|t| !t.is_empty()) {
            Some(token) => (ADMIN_TOKEN_ENV, Some(token)),
            None => ("admin.token", raw.token),
        };
        if let Some(token) = &token
            && (token.len() < Self::MIN_TOKEN_LEN || !token.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(ConfigError::invalid(
                key,
                format!(
                    "must be at least {} visible ASCII characters (no spaces); \
                     e.g. `openssl rand -hex 32`",
                    Self::MIN_TOKEN_LEN
                ),
            ));
        }
        Ok(Self {
            listen,
            token: token.map(Secret::new),
            ready_requires_store: raw.ready_requires_store.unwrap_or(false),
        })
    }

    /// Whether the operator actions may answer: with a token, or on loopback only.
    pub fn actions_open(&self) -> bool {
        self.token.is_some() || self.listen.ip().is_loopback()
    }
}

fn is_level(word: &str) -> bool {
    ["trace", "debug", "info", "warn", "error", "off"]
        .iter()
        .any(|level| word.eq_ignore_ascii_case(level))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// JSON when stderr is not a terminal (containers), text when it is.
    Auto,
    Json,
    Text,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing filter directive, checked at load time.
    pub level: String,
    /// The audit trail's events are also appended to this file (JSON lines).
    pub audit_file: Option<std::path::PathBuf>,
}

impl Default for LogConfig {
    /// What `[log]` means when left out.
    fn default() -> Self {
        Self {
            format: LogFormat::Auto,
            level: "info".to_owned(),
            audit_file: None,
        }
    }
}

impl LogConfig {
    pub(super) fn from_raw(raw: RawLog, env_level: Option<String>) -> Result<Self, ConfigError> {
        let format = match raw.format.as_deref().unwrap_or("auto") {
            "auto" => LogFormat::Auto,
            "json" => LogFormat::Json,
            "text" => LogFormat::Text,
            other => {
                return Err(ConfigError::invalid(
                    "log.format",
                    format!("`{other}` is not one of \"auto\", \"json\", \"text\""),
                ));
            }
        };
        let (key, level) = match env_level {
            Some(level) => (LOG_ENV, level),
            None => ("log.level", raw.level.unwrap_or_else(|| "info".to_owned())),
        };
        // tracing reads a bare word as a target ("verbose": log only the
        // target `verbose`, i.e. nothing): only a level may stand alone.
        if let Some(bare) = level
            .split(',')
            .map(str::trim)
            .find(|d| !d.is_empty() && !d.contains('=') && !d.contains('[') && !is_level(d))
        {
            return Err(ConfigError::invalid(
                key,
                format!(
                    "`{bare}` is not a level: write one of trace, debug, info, warn, error, off, \
                     or target=level such as \"wxgate=debug,info\""
                ),
            ));
        }
        if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&level) {
            return Err(ConfigError::invalid(
                key,
                format!(
                    "`{level}` is not a log filter ({e}); write e.g. \"info\" or \"wxgate=debug,info\""
                ),
            ));
        }
        Ok(Self {
            format,
            level,
            audit_file: raw.audit_file.map(std::path::PathBuf::from),
        })
    }
}
