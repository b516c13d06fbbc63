//! wxgate: a reverse-proxy sidecar that gives any HTTP backend WeChat
//! mini-program login.
//!
//! `POST /login` trades a `wx.login()` code for a wxgate session id; every
//! other request carrying a valid `X-Session-Id` is streamed to the upstream
//! with trusted `X-WX-*` identity headers, and any identity header the client
//! sent is stripped first. See README.md for the whole picture.
#![forbid(unsafe_code)]

pub mod admin;
mod app;
mod apps;
mod binding;
pub mod body;
pub mod canonical_path;
pub mod config;
mod connection_timer;
mod credentials;
mod decrypt;
mod demo;
pub mod error;
mod forward_auth;
mod header;
pub mod hop_by_hop;
pub mod identity;
mod login;
pub mod memory_limit;
pub mod metrics;
mod outcome;
mod phone;
mod proxy;
pub mod reload;
pub mod request_id;
pub mod route;
pub mod secret;
pub mod server;
pub mod session;
mod session_check;
mod single_flight;
pub mod stack;
pub mod wechat;
pub mod wxdata;

pub use config::Config;
pub use server::Server;

/// mimalloc rather than glibc's malloc: measured in bench/ (see README).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
