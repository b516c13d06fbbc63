//! The domain: WeChat, sessions and users, with no HTTP answers in it.
//!
//! Bottom first, each importing only the ones before it: `single_flight`,
//! `route` (which paths need a session), `session` (the store: moka, Redis),
//! `policy` (`[[rules]]`: who may reach a route), `assertion` (the signed
//! identity a backend verifies), `wechat` (API clients, the mock, the data
//! crypto), `identity` (the headers a backend trusts), `binding` (openid →
//! business user id), `apps` (the mini-programs a gateway serves),
//! `credentials`. Each has its
//! own error type; `response::error` turns them into answers.

pub mod apps;
pub mod assertion;
pub mod binding;
pub mod credentials;
pub mod identity;
pub mod policy;
pub mod route;
pub mod session;
pub mod single_flight;
pub mod wechat;
