//! The integration tests, as one binary over one support library
//! ([`common`]): real sockets, real processes, real Redis, nginx,
//! Prometheus; nothing of wxgate's own mocked. A module per area.
//!
//! One binary links once (23 did before), which CI's time and disk feel.
//! Tests that need a server from outside the repo name it: their module
//! (`nginx`, `fleet` and `store_conformance` with Redis, `observability`
//! with Prometheus) or their name (`…_redis…`, `…nginx…`), so
//! `cargo test redis` or `cargo test -- --skip nginx` selects them.

mod common;

mod admin_users;
mod anonymous;
mod apps;
mod binding;
mod defence;
mod docs;
mod fleet;
mod forward_auth;
mod hardening;
mod identity;
mod login;
mod metrics;
mod nginx;
mod observability;
mod paths;
mod process;
mod properties;
mod proxy;
mod readiness;
mod session_key;
mod sessions;
mod store_conformance;
mod upstreams;
mod web_login;
