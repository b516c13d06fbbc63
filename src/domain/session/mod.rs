//! Sessions and the users they belong to.
//!
//! A login stores the user's record, keyed by app and openid (see
//! [`AppTag::user_key`]), and opens a session
//! that points to it. Resolving a session returns the user record, so every
//! session of a user sees the user's newest data — above all the newest
//! session_key, which WeChat rotates on any `wx.login` (exactly one key is
//! valid per user at a time). A session whose user record is gone is invalid.
//!
//! [`SessionStore`] is the one interface every backend implements; the
//! embedded default is [`MemoryStore`], the moka session cache of `cache.rs`
//! (which is also the local cache in front of [`RedisStore`]).
//!
//! The parts: `user.rs` the user record, `store.rs` the interface,
//! `sessions.rs` the dispatch to the configured store; `pending.rs` the
//! browser logins in flight; `id.rs` session ids.

mod cache;
mod id;
mod memory;
mod pending;
mod redis;
mod sessions;
mod store;
mod tokens;
mod user;
mod user_index;

pub use id::SessionId;
pub use memory::MemoryStore;
pub use pending::{ClientQuota, PER_CLIENT, PendingLogin, REDIRECT_LIMIT};
pub use redis::{FleetLock, FleetSecrets, FleetValue, RedisStore};
pub use sessions::Sessions;
pub use store::{Resolved, SessionStore, StoreError};
pub use tokens::TokenSlot;
pub use user::{AppTag, BoundId, InvalidIdentity, Phone, Profile, UserRecord, UserUpdate, now_ms};
