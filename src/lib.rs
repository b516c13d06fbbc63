//! wxgate: a reverse-proxy sidecar that gives any HTTP backend WeChat
//! mini-program login.
//!
//! `POST /login` trades a `wx.login()` code for a wxgate session id; every
//! other request carrying a valid `X-Session-Id` is streamed to the upstream
//! with trusted `X-WX-*` identity headers, and any identity header the client
//! sent is stripped first. README.md tells the whole picture; docs/architecture.md
//! draws the layers this crate is made of.
#![forbid(unsafe_code)]
#![warn(unreachable_pub, missing_docs)]

// The layers, bottom first: each imports only the ones above it in this
// list (scripts/import-circles reads the order here and fails on an upward
// import; docs/architecture.md draws it). One comment per layer keeps
// rustfmt from sorting them.

// HTTP plumbing, nothing of WeChat or sessions.
pub mod wire;
// The audit trail's events.
pub mod audit;
// The config file, raw and validated.
pub mod config;
// The metrics and their handles.
pub mod metrics;
// Spans and their export (`[tracing]`).
pub mod telemetry;
// Sessions, users, WeChat, routes, identity: no HTTP answers.
pub mod domain;
// The streaming forwarder.
pub mod proxy;
// What wxgate answers itself, and every error's answer.
pub mod response;
// wxgate's own routes.
mod endpoints;
// The request flow.
mod app;
// The tower layers around it.
pub mod stack;
// Listeners, the admin port, reload, drain.
pub mod server;

pub use config::Config;
pub use server::Server;

/// mimalloc rather than glibc's malloc: measured in bench/ (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
