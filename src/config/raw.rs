//! The config file exactly as written: serde structs with no meaning attached.
//!
//! Every struct denies unknown fields so a typo (`tll = "1h"`) is an error
//! that names the key instead of a silently ignored setting. Every field is
//! optional here; defaults and validation live in the typed layer
//! (`super::Config`), which can then name the offending key in its errors.

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    pub upstream: Option<RawUpstream>,
    pub upstreams: Option<Vec<RawUpstream>>,
    pub wechat: Option<RawWechat>,
    pub apps: Option<Vec<RawWechat>>,
    #[serde(default)]
    pub session: RawSession,
    #[serde(default)]
    pub routes: RawRoutes,
    #[serde(default)]
    pub headers: RawHeaders,
    #[serde(default)]
    pub demo: RawDemo,
    #[serde(default)]
    pub admin: RawAdmin,
    #[serde(default)]
    pub log: RawLog,
    #[serde(default)]
    pub login: RawLogin,
    pub redis: Option<RawRedis>,
    pub binding: Option<RawBinding>,
    pub web: Option<RawWeb>,
    pub assertion: Option<RawAssertion>,
    pub rules: Option<Vec<RawRule>>,
    pub tracing: Option<RawTracing>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTracing {
    pub endpoint: Option<String>,
    pub protocol: Option<String>,
    pub sampling_ratio: Option<f64>,
    pub service_name: Option<String>,
    pub ca_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAssertion {
    pub header: Option<String>,
    pub issuer: Option<String>,
    pub ttl: Option<String>,
    pub key_files: Option<Vec<String>>,
}

/// One `[[rules]]` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRule {
    pub name: Option<String>,
    pub prefix: Option<String>,
    pub path: Option<String>,
    pub methods: Option<Vec<String>>,
    pub upstream: Option<String>,
    pub action: Option<String>,
    pub public: Option<bool>,
    pub user_id: Option<bool>,
    pub phone: Option<bool>,
    pub apps: Option<Vec<String>>,
    pub kinds: Option<Vec<String>>,
    pub openids: Option<Vec<String>>,
    pub user_ids: Option<Vec<String>>,
    pub deny_openids: Option<Vec<String>>,
    pub deny_user_ids: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub listen: Option<String>,
    pub drain_timeout: Option<String>,
    pub threads: Option<usize>,
    pub max_in_flight: Option<usize>,
    pub body_idle_timeout: Option<String>,
    pub trusted_proxies: Option<Vec<String>>,
    pub tls_cert_file: Option<String>,
    pub tls_key_file: Option<String>,
    pub h2c: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUpstream {
    pub url: Option<String>,
    pub prefix: Option<String>,
    pub strip_prefix: Option<bool>,
    pub public: Option<Vec<String>>,
    pub timeout: Option<String>,
    pub upgrades: Option<Vec<String>>,
    pub ready_check: Option<String>,
    pub audience: Option<String>,
    pub ca_file: Option<String>,
    pub tls_server_name: Option<String>,
    pub client_cert_file: Option<String>,
    pub client_key_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWechat {
    pub appid: Option<String>,
    pub secret: Option<String>,
    pub secret_env: Option<String>,
    pub secret_file: Option<String>,
    pub api_base: Option<String>,
    pub ca_file: Option<String>,
    pub timeout: Option<String>,
    pub mode: Option<String>,
    pub mock_allow_non_loopback: Option<bool>,
    pub max_in_flight: Option<usize>,
    pub kind: Option<String>,
    pub scope: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWeb {
    pub public_url: Option<String>,
    pub cookie_name: Option<String>,
    pub cookie_secure: Option<bool>,
    pub cookie_domain: Option<String>,
    pub state_ttl: Option<String>,
    pub error_redirect: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSession {
    pub ttl: Option<String>,
    pub idle: Option<String>,
    pub capacity: Option<u64>,
    pub header: Option<String>,
    pub forward_session_header: Option<bool>,
    pub store: Option<String>,
    pub local_ttl: Option<String>,
    pub stale_if_error: Option<String>,
    pub store_key_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRedis {
    pub url: Option<String>,
    pub cluster: Option<Vec<String>>,
    pub key_prefix: Option<String>,
    pub connect_timeout: Option<String>,
    pub command_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoutes {
    pub prefix: Option<String>,
    pub login: Option<String>,
    pub logout: Option<String>,
    pub decrypt: Option<String>,
    pub phone: Option<String>,
    pub session: Option<String>,
    pub auth: Option<String>,
    pub public: Option<Vec<String>>,
    pub normalize: Option<RawNormalize>,
}

/// `[routes.normalize]`: which of the canonical path's refusals to relax.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNormalize {
    /// `"reject"` (default) or `"allow"`.
    pub path_params: Option<String>,
    /// `"reject"` (default) or `"keep"`.
    pub encoded_slashes: Option<String>,
    pub merge_slashes: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHeaders {
    pub openid: Option<String>,
    pub user_id: Option<String>,
    pub unionid: Option<String>,
    pub appid: Option<String>,
    pub phone: Option<String>,
    pub pass_routing_overrides: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDemo {
    pub echo_upstream: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    pub listen: Option<String>,
    pub token: Option<String>,
    pub token_file: Option<String>,
    pub ready_requires_store: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLogin {
    pub rate: Option<f64>,
    pub burst: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    pub format: Option<String>,
    pub level: Option<String>,
    pub audit_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBinding {
    pub url: Option<String>,
    pub token_file: Option<String>,
    pub timeout: Option<String>,
    pub required: Option<bool>,
    pub ca_file: Option<String>,
}
