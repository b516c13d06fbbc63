//! Sessions and the users they belong to.
//!
//! A login stores (or replaces) the user's record, keyed by openid, and opens
//! a session that points to it. Resolving a session returns the user record,
//! so every session of a user sees the user's newest data; a session whose
//! user record is gone is invalid.
//!
//! [`SessionStore`] is the one interface every backend implements; the
//! embedded default is [`MemoryStore`] (moka).

mod id;
mod memory;

use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

use http::HeaderValue;

pub use id::SessionId;
pub use memory::MemoryStore;

use crate::secret::Secret;

/// What wxgate knows about a WeChat user.
#[derive(Debug, Clone)]
pub struct UserRecord {
    /// Kept in header form (checked visible ASCII at construction) so the
    /// request path only clones it.
    openid: HeaderValue,
    unionid: Option<HeaderValue>,
    pub session_key: Secret,
    pub last_login: SystemTime,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("WeChat returned an {0} that is not printable ASCII")]
pub struct InvalidIdentity(&'static str);

impl UserRecord {
    pub fn new(
        openid: &str,
        unionid: Option<&str>,
        session_key: Secret,
    ) -> Result<Self, InvalidIdentity> {
        let header = |value: &str, what| {
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(InvalidIdentity(what));
            }
            HeaderValue::from_str(value).map_err(|_| InvalidIdentity(what))
        };
        Ok(Self {
            openid: header(openid, "openid")?,
            unionid: unionid.map(|u| header(u, "unionid")).transpose()?,
            session_key,
            last_login: SystemTime::now(),
        })
    }

    pub fn openid(&self) -> &str {
        self.openid.to_str().unwrap_or_default()
    }

    pub fn unionid(&self) -> Option<&str> {
        self.unionid.as_ref().and_then(|u| u.to_str().ok())
    }

    pub fn openid_header(&self) -> &HeaderValue {
        &self.openid
    }

    pub fn unionid_header(&self) -> Option<&HeaderValue> {
        self.unionid.as_ref()
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("the operating system's random number generator failed: {0}")]
    Random(getrandom::Error),
}

/// A session store. Implementations bound sessions by the configured
/// absolute `ttl`, optional sliding `idle` timeout and `capacity`.
pub trait SessionStore: Send + Sync {
    /// Stores `user` as the newest record of its openid and opens a session for it.
    fn login(&self, user: UserRecord)
    -> impl Future<Output = Result<SessionId, StoreError>> + Send;

    /// The user behind a live session; `None` when unknown, expired or orphaned.
    /// Counts as activity for the idle timeout.
    fn resolve(
        &self,
        id: &SessionId,
    ) -> impl Future<Output = Result<Option<Arc<UserRecord>>, StoreError>> + Send;

    /// Ends the session; ending an unknown session is not an error.
    fn logout(&self, id: &SessionId) -> impl Future<Output = Result<(), StoreError>> + Send;
}
