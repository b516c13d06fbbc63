//! The embedded session store: the moka session cache, and nothing else.
//!
//! A session lives until its absolute deadline (`ttl` after login) or until
//! it has been idle for `idle`, whichever comes first; every resolve re-arms
//! the idle clock but never moves the absolute deadline. A user record
//! lives `ttl` after the user's newest login, so it outlives the sessions
//! that point to it. Past `capacity`, the least recently used entry goes.
//! All of that is moka's doing (see `cache.rs`); this file maps the
//! [`SessionStore`] operations onto it.

use std::sync::Arc;
use std::time::Duration;

use super::cache::SessionCache;
use super::pending::PendingLogins;
use super::{PendingLogin, Resolved, SessionId, SessionStore, StoreError, UserRecord, UserUpdate};
use crate::config::SessionConfig;
use crate::metrics::{Layer, StoreMetrics};

/// Sessions and users in this process's memory (moka).
pub struct MemoryStore {
    cache: SessionCache,
    ttl: Duration,
    metrics: StoreMetrics,
    /// Boxed: rarely used, and it would double the store's size.
    pending: Box<PendingLogins>,
}

impl MemoryStore {
    /// A store sized by `config`; `assertions`: each session keeps its
    /// signed assertions (`[assertion]`).
    pub fn new(config: &SessionConfig, metrics: StoreMetrics, assertions: bool) -> Self {
        Self {
            cache: SessionCache::new(config.capacity, config.ttl, config.idle)
                .with_tokens(assertions),
            ttl: config.ttl,
            metrics,
            pending: Box::default(),
        }
    }

    /// Live sessions (exact: moka applies pending expiries first).
    pub async fn live(&self) -> u64 {
        self.cache.live()
    }
}

impl SessionStore for MemoryStore {
    async fn put_pending(
        &self,
        state: &str,
        pending: PendingLogin,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.pending.put(state, pending, ttl);
        Ok(())
    }

    async fn take_pending(&self, state: &str) -> Result<Option<PendingLogin>, StoreError> {
        Ok(self.pending.take(state))
    }

    async fn forget_pending(&self, hash: &[u8; 32]) -> Result<(), StoreError> {
        self.pending.forget(hash);
        Ok(())
    }

    async fn login(&self, user: UserRecord) -> Result<(SessionId, Arc<UserRecord>), StoreError> {
        let id = SessionId::generate().map_err(StoreError::Random)?;
        let slot = self.cache.store_user(user, true);
        let stored = slot.record();
        self.cache
            .insert_session(*id.as_bytes(), slot, self.ttl, self.ttl);
        Ok((id, stored))
    }

    async fn resolve(&self, id: &SessionId) -> Result<Option<Resolved>, StoreError> {
        let hit = self.cache.get(id.as_bytes());
        self.metrics.lookup(Layer::Memory, hit.is_some());
        Ok(hit.map(|hit| Resolved {
            id: *id,
            user: hit.user,
            expires_in: hit.expires_in,
            tokens: hit.tokens,
        }))
    }

    async fn logout(&self, id: &SessionId) -> Result<(), StoreError> {
        self.cache.remove_session(id.as_bytes());
        Ok(())
    }

    async fn update_user(
        &self,
        key: &str,
        update: UserUpdate,
    ) -> Result<Option<Arc<UserRecord>>, StoreError> {
        Ok(self.cache.update_user(key, |user| update.apply(user)))
    }

    async fn user(&self, key: &str) -> Result<Option<Arc<UserRecord>>, StoreError> {
        Ok(self.cache.user(key).map(|slot| slot.record()))
    }

    async fn revoke_user(&self, key: &str) -> Result<bool, StoreError> {
        // The user's slot retires: every session pointing at it stops resolving.
        Ok(self.cache.evict_user(key))
    }
}
