//! The domain: WeChat, sessions and users, with no HTTP answers in it.
//!
//! Bottom first, each importing only the ones before it: `single_flight`,
//! `route` (which paths need a session), `session` (the store: moka, Redis),
//! `wechat` (API clients, the mock, the data crypto), `identity` (the
//! headers a backend trusts), `binding` (openid → business user id),
//! `apps` (the mini-programs a gateway serves), `credentials`. Each has its
//! own error type; `response::error` turns them into answers.

pub mod apps;
pub mod binding;
pub mod credentials;
pub mod identity;
pub mod route;
pub mod session;
pub mod single_flight;
pub mod wechat;
