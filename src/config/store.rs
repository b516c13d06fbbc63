//! Where sessions live: `[session] store` and the `[redis]` section.

// The typed sections' fields are their TOML keys, each documented once in
// docs/configuration.md (tests/it/docs.rs checks that every key the parser
// accepts is there): a doc comment per field would say it twice.
#![allow(missing_docs)]

use std::fmt;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use redis::IntoConnectionInfo;

use super::raw::RawRedis;
use super::{ConfigError, duration};

/// Environment variable holding the key that encrypts session_keys and
/// phone numbers at rest in Redis: 32 bytes, base64.
pub const STORE_KEY_ENV: &str = "WXGATE_STORE_KEY";
/// Environment variable that overrides `redis.url`, so a password in it
/// can live in a Kubernetes Secret.
pub const REDIS_URL_ENV: &str = "WXGATE_REDIS_URL";

#[derive(Debug, Clone, PartialEq)]
pub enum StoreConfig {
    /// In this process (sharded LRU tables): one replica, sessions lost on restart.
    Memory,
    /// Redis shared by every replica, with a local moka cache in front.
    Redis(RedisConfig),
}

#[derive(Debug, Clone, PartialEq)]
pub enum RedisNodes {
    Single(String),
    Cluster(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct RedisConfig {
    pub nodes: RedisNodes,
    pub key_prefix: String,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    /// How long a replica may answer from its local cache without asking Redis.
    pub local_ttl: Duration,
    /// `session.stale_if_error`: while Redis is unreachable, what the local
    /// cache holds keeps serving this long past `local_ttl`. Off by default.
    pub stale_if_error: Option<Duration>,
    pub store_key: Option<StoreKey>,
}

/// The AES-256-GCM key for data at rest. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct StoreKey(pub [u8; 32]);

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoreKey(***)")
    }
}

impl StoreConfig {
    pub(super) fn from_raw(
        store: Option<String>,
        local_ttl: Option<String>,
        stale_if_error: Option<String>,
        raw: Option<RawRedis>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        match store.as_deref().unwrap_or("memory") {
            "memory" if raw.is_some() => Err(ConfigError::invalid(
                "session.store",
                "a [redis] section is configured but session.store = \"memory\"; \
                 set session.store = \"redis\" or remove [redis]",
            )),
            "memory" if stale_if_error.is_some() => Err(ConfigError::invalid(
                "session.stale_if_error",
                "applies to session.store = \"redis\" only (the memory store has no outage)",
            )),
            "memory" => Ok(Self::Memory),
            "redis" => {
                let raw = raw.unwrap_or_default();
                let local_ttl = duration("session.local_ttl", local_ttl, "5s")?;
                let stale = match stale_if_error {
                    None => None,
                    Some(text) => {
                        let stale = duration("session.stale_if_error", Some(text), "")?;
                        if stale.is_zero() || local_ttl.is_zero() {
                            return Err(ConfigError::invalid(
                                "session.stale_if_error",
                                "must be longer than 0s, with a session.local_ttl above 0s \
                                 (there is nothing cached to serve otherwise); leave it out \
                                 to turn it off",
                            ));
                        }
                        Some(stale)
                    }
                };
                let mut redis = RedisConfig::from_raw(raw, local_ttl, env)?;
                redis.stale_if_error = stale;
                Ok(Self::Redis(redis))
            }
            other => Err(ConfigError::invalid(
                "session.store",
                format!("`{other}` is not one of \"memory\", \"redis\""),
            )),
        }
    }
}

impl RedisConfig {
    fn from_raw(
        raw: RawRedis,
        local_ttl: Duration,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let url = env(REDIS_URL_ENV).or(raw.url);
        let nodes = match (url, raw.cluster) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::invalid(
                    "redis.cluster",
                    "set either redis.url (one server) or redis.cluster (a cluster), not both",
                ));
            }
            (Some(url), None) => RedisNodes::Single(checked_url("redis.url", url)?),
            (None, Some(urls)) if !urls.is_empty() => RedisNodes::Cluster(
                urls.into_iter()
                    .map(|u| checked_url("redis.cluster", u))
                    .collect::<Result<_, _>>()?,
            ),
            _ => {
                return Err(ConfigError::invalid(
                    "redis.url",
                    "session.store = \"redis\" needs redis.url (e.g. \"redis://127.0.0.1:6379\") or redis.cluster",
                ));
            }
        };
        let command_timeout = duration("redis.command_timeout", raw.command_timeout, "250ms")?;
        if command_timeout.is_zero() {
            return Err(ConfigError::invalid(
                "redis.command_timeout",
                "must be longer than 0s",
            ));
        }
        let store_key = match env(STORE_KEY_ENV) {
            None => None,
            Some(text) => match STANDARD
                .decode(text.trim())
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
            {
                // The redis-fleet example's key, base64 of "replace-this-with-…":
                // public, so it protects nothing.
                Some(bytes) if bytes.starts_with(b"replace") => {
                    return Err(ConfigError::invalid(
                        STORE_KEY_ENV,
                        "is the example's key, which everyone knows: make your own, e.g. \
                         `head -c32 /dev/urandom | base64`",
                    ));
                }
                Some(bytes) => Some(StoreKey(bytes)),
                None => {
                    return Err(ConfigError::invalid(
                        STORE_KEY_ENV,
                        "must be 32 bytes in base64, e.g. from `head -c32 /dev/urandom | base64`",
                    ));
                }
            },
        };
        Ok(Self {
            nodes,
            key_prefix: raw.key_prefix.unwrap_or_else(|| "wxgate:".to_owned()),
            connect_timeout: super::timeout("redis.connect_timeout", raw.connect_timeout, "1s")?,
            command_timeout,
            local_ttl,
            stale_if_error: None,
            store_key,
        })
    }
}

fn checked_url(key: &'static str, url: String) -> Result<String, ConfigError> {
    if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
        return Err(ConfigError::invalid(
            key,
            "must start with redis:// or rediss://",
        ));
    }
    // Parse now so a typo is a config error, not a runtime one. The message
    // must not echo the URL: it may carry a password.
    url.as_str()
        .into_connection_info()
        .map_err(|_| ConfigError::invalid(key, "is not a valid Redis URL"))?;
    Ok(url)
}
