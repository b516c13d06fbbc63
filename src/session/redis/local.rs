//! The local cache in front of Redis: a replica answers from memory for at
//! most `local_ttl`, so a hot session costs no Redis round trip. It is the
//! same moka session cache the memory store is made of (`cache.rs`).
//!
//! Rules that keep it honest:
//! - an entry never outlives what Redis said the session has left (it is
//!   kept for `min(local_ttl, PTTL)`), so the cache cannot extend a session;
//! - only hits are cached, never a miss or an error;
//! - logouts and user-record changes evict entries on every replica through
//!   pub/sub (`revocation`), well before `local_ttl`; evicting a user makes
//!   every cached session of that user miss.

use std::sync::Arc;
use std::time::Duration;

use crate::session::UserRecord;
use crate::session::cache::{Hit, SessionCache};

/// `None` inside when `local_ttl = 0`: every lookup goes to Redis.
pub struct LocalCache {
    cache: Option<SessionCache>,
    ttl: Duration,
}

impl LocalCache {
    pub fn new(ttl: Duration, capacity: u64) -> Self {
        Self {
            cache: (!ttl.is_zero()).then(|| SessionCache::new(capacity, ttl, None)),
            ttl,
        }
    }

    pub fn get(&self, hash: &[u8; 32]) -> Option<Hit> {
        self.cache.as_ref()?.get(hash)
    }

    pub fn user(&self, key: &str) -> Option<Arc<UserRecord>> {
        Some(self.cache.as_ref()?.user(key)?.record())
    }

    /// Caches a session Redis has just confirmed, with `left` to live,
    /// when its user is cached too.
    pub fn put_session(&self, hash: [u8; 32], user_key: &str, left: Duration) {
        if let Some(cache) = &self.cache
            && let Some(slot) = cache.user(user_key)
        {
            cache.insert_session(hash, slot, left, self.ttl);
        }
    }

    /// Caches the user's record as Redis holds it.
    pub fn put_user(&self, user: UserRecord) -> Arc<UserRecord> {
        match &self.cache {
            Some(cache) => cache.store_user(user, false).record(),
            None => Arc::new(user),
        }
    }

    pub fn evict_session(&self, hash: &[u8; 32]) {
        if let Some(cache) = &self.cache {
            cache.remove_session(hash);
        }
    }

    pub fn evict_user(&self, key: &str) {
        if let Some(cache) = &self.cache {
            cache.evict_user(key);
        }
    }

    /// Forgets everything: after missing revocations (pub/sub was down).
    pub fn clear(&self) {
        if let Some(cache) = &self.cache {
            cache.clear();
        }
    }
}
