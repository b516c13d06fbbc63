//! The store interface every backend implements ([`SessionStore`]), what
//! resolving a session yields, and how a store fails.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::{PendingLogin, SessionId, TokenSlot, UserRecord, UserUpdate};

/// A live session: its user and how long it has left.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The session's id.
    pub id: SessionId,
    /// Its user, as the store holds them now.
    pub user: Arc<UserRecord>,
    /// The session's time left.
    pub expires_in: Duration,
    /// Its signed assertions (`[assertion]`), cached with it; `None` when
    /// off, or when the store caches nothing locally.
    pub tokens: Option<Arc<TokenSlot>>,
}

#[derive(Debug, Clone, thiserror::Error)]
/// Why the store could not answer.
#[allow(missing_docs)] // each variant's `#[error]` text describes it
pub enum StoreError {
    #[error("the operating system's random number generator failed: {0}")]
    Random(getrandom::Error),
    #[error("the session store is unavailable: {0}")]
    Unavailable(String),
}

/// A session store. Implementations bound sessions by the configured
/// absolute `ttl`, optional sliding `idle` timeout and `capacity`.
pub trait SessionStore: Send + Sync {
    /// Stores `user` as the newest record of its key (keeping the phone
    /// number of the previous record) and opens a session for it.
    fn login(
        &self,
        user: UserRecord,
    ) -> impl Future<Output = Result<(SessionId, Arc<UserRecord>), StoreError>> + Send;

    /// The user behind a live session; `None` when unknown, expired or orphaned.
    /// Counts as activity for the idle timeout.
    fn resolve(
        &self,
        id: &SessionId,
    ) -> impl Future<Output = Result<Option<Resolved>, StoreError>> + Send;

    /// Ends the session; ending an unknown session is not an error.
    fn logout(&self, id: &SessionId) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Atomically changes the record filed under `key`
    /// ([`UserRecord::key`]); returns the record as it now stands, or
    /// `None` when there is none.
    fn update_user(
        &self,
        key: &str,
        update: UserUpdate,
    ) -> impl Future<Output = Result<Option<Arc<UserRecord>>, StoreError>> + Send;

    /// The record filed under `key`, `None` when there is none.
    fn user(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<Arc<UserRecord>>, StoreError>> + Send;

    /// Ends every session of the user, on every replica, in O(1); the
    /// user's next login opens sessions that work. `false` when there was
    /// no record (and so no session) under `key`.
    fn revoke_user(&self, key: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Files a browser login begun at the start route under its `state`
    /// for `ttl` (`pending`).
    fn put_pending(
        &self,
        state: &str,
        pending: PendingLogin,
        ttl: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The login filed under `state`, removed: a second take finds nothing.
    fn take_pending(
        &self,
        state: &str,
    ) -> impl Future<Output = Result<Option<PendingLogin>, StoreError>> + Send;

    /// Drops the login filed under the state whose hash is `hash`
    /// (`pending::state_hash`): a client's oldest, past its quota.
    fn forget_pending(
        &self,
        hash: &[u8; 32],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}
