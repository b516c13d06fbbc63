//! The integration tests, as one binary over one support library
//! ([`common`]): real sockets, real processes, real Redis, nginx,
//! Prometheus; nothing of wxgate's own mocked. A module per area.
//!
//! One binary links once (23 did before), which CI's time and disk feel.
//! A test that needs a server from outside the repo names it, in its
//! module (`redis::`, `nginx::`, `prometheus::`) or its own name, so
//! `cargo test redis` runs them and `cargo test -- --skip redis --skip
//! nginx --skip prometheus` runs the rest.

mod common;

/// Needs `redis-server` (and `redis-cli` for the cluster).
mod redis {
    mod fleet;
    mod store_conformance;
    mod tokens;
}

/// Needs `nginx`.
mod nginx {
    mod example;
    mod paths;
    mod upstream_tls;
}

/// Needs `prometheus` and `promtool`.
mod prometheus;

mod access_token;
mod admin_users;
mod anonymous;
mod apps;
mod assertion;
mod audit;
mod binding;
mod defence;
mod docs;
mod forward_auth;
mod hardening;
mod http2;
mod identity;
mod jssdk;
mod login;
mod metrics;
mod process;
mod properties;
mod proxy;
mod readiness;
mod rules;
mod session_key;
mod sessions;
mod spans;
mod tls;
mod trace_context;
mod upstreams;
mod web_login;
