//! The embedded session store: two moka caches, sessions and users.
//!
//! Expiry is moka's per-entry policy: a session lives until its absolute
//! deadline (`ttl` after login) or until it has been idle for `idle`,
//! whichever comes first; every resolve re-arms the idle clock but never
//! moves the absolute deadline. A user record lives `ttl` after the user's
//! newest login, so it always outlives the sessions that point to it.
//!
//! Both caches evict least-recently-used entries past `capacity`. moka's
//! default (TinyLFU) may refuse to admit a brand-new entry into a full
//! cache, which would log a user out the instant they logged in.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::future::Cache;
use moka::ops::compute::Op;
use moka::policy::EvictionPolicy;

use super::{Resolved, SessionId, SessionStore, StoreError, UserRecord, UserUpdate};
use crate::config::SessionConfig;
use crate::metrics::{Layer, StoreMetrics};

#[derive(Clone)]
struct SessionEntry {
    openid: Arc<str>,
    expires_at: Instant,
}

struct Lifetime {
    idle: Option<Duration>,
}

impl Lifetime {
    fn remaining(&self, entry: &SessionEntry, now: Instant) -> Duration {
        let absolute = entry.expires_at.saturating_duration_since(now);
        match self.idle {
            Some(idle) => idle.min(absolute),
            None => absolute,
        }
    }
}

/// moka takes its expiry policy by value; the store keeps a handle to it too.
struct LifetimeRef(Arc<Lifetime>);

impl Expiry<[u8; 32], SessionEntry> for LifetimeRef {
    fn expire_after_create(
        &self,
        _: &[u8; 32],
        entry: &SessionEntry,
        now: Instant,
    ) -> Option<Duration> {
        Some(self.0.remaining(entry, now))
    }

    fn expire_after_read(
        &self,
        _: &[u8; 32],
        entry: &SessionEntry,
        now: Instant,
        current: Option<Duration>,
        _: Instant,
    ) -> Option<Duration> {
        match self.0.idle {
            Some(_) => Some(self.0.remaining(entry, now)),
            None => current,
        }
    }

    fn expire_after_update(
        &self,
        _: &[u8; 32],
        entry: &SessionEntry,
        now: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(self.0.remaining(entry, now))
    }
}

pub struct MemoryStore {
    sessions: Cache<[u8; 32], SessionEntry>,
    users: Cache<Arc<str>, Arc<UserRecord>>,
    lifetime: Arc<Lifetime>,
    ttl: Duration,
    metrics: StoreMetrics,
}

impl MemoryStore {
    pub fn new(config: &SessionConfig, metrics: StoreMetrics) -> Self {
        let lifetime = Arc::new(Lifetime { idle: config.idle });
        let sessions = Cache::builder()
            .max_capacity(config.capacity)
            .eviction_policy(EvictionPolicy::lru())
            .expire_after(LifetimeRef(lifetime.clone()))
            .build();
        let users = Cache::builder()
            .max_capacity(config.capacity)
            .eviction_policy(EvictionPolicy::lru())
            .time_to_live(config.ttl)
            .build();
        Self {
            sessions,
            users,
            lifetime,
            ttl: config.ttl,
            metrics,
        }
    }

    /// Live sessions. moka counts lazily, so pending work (inserts,
    /// expiries) is applied first; a scrape every few seconds affords it.
    pub async fn live(&self) -> u64 {
        self.sessions.run_pending_tasks().await;
        self.sessions.entry_count()
    }
}

impl SessionStore for MemoryStore {
    async fn login(&self, user: UserRecord) -> Result<(SessionId, Arc<UserRecord>), StoreError> {
        let id = SessionId::generate().map_err(StoreError::Random)?;
        let openid: Arc<str> = Arc::from(user.openid());
        // A per-key lock serialises this with `update_user`, so a phone
        // number stored concurrently is neither lost nor resurrected.
        let stored = self
            .users
            .entry(openid.clone())
            .and_upsert_with(|old| async move {
                Arc::new(match old {
                    Some(old) => old.value().merged_into(user),
                    None => user,
                })
            })
            .await
            .into_value();
        let entry = SessionEntry {
            openid,
            expires_at: Instant::now() + self.ttl,
        };
        self.sessions.insert(*id.as_bytes(), entry).await;
        Ok((id, stored))
    }

    async fn resolve(&self, id: &SessionId) -> Result<Option<Resolved>, StoreError> {
        let Some(entry) = self.sessions.get(id.as_bytes()).await else {
            self.metrics.lookup(Layer::Memory, false);
            return Ok(None);
        };
        let now = Instant::now();
        match self.users.get(&entry.openid).await {
            Some(user) if entry.expires_at > now => {
                self.metrics.lookup(Layer::Memory, true);
                Ok(Some(Resolved {
                    id: *id,
                    user,
                    expires_in: self.lifetime.remaining(&entry, now),
                }))
            }
            _ => {
                self.metrics.lookup(Layer::Memory, false);
                // Expired, or the user record is gone: the session depends on it.
                self.sessions.invalidate(id.as_bytes()).await;
                Ok(None)
            }
        }
    }

    async fn logout(&self, id: &SessionId) -> Result<(), StoreError> {
        self.sessions.invalidate(id.as_bytes()).await;
        Ok(())
    }

    async fn update_user(
        &self,
        openid: &str,
        update: UserUpdate,
    ) -> Result<Option<Arc<UserRecord>>, StoreError> {
        let result = self
            .users
            .entry(Arc::from(openid))
            .and_compute_with(|old| async move {
                let Some(old) = old else { return Op::Nop };
                let mut user = UserRecord::clone(old.value());
                if update.apply(&mut user) {
                    Op::Put(Arc::new(user))
                } else {
                    Op::Nop
                }
            })
            .await;
        Ok(result.into_entry().map(|e| e.into_value()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn config(ttl_ms: u64, idle_ms: Option<u64>, capacity: u64) -> SessionConfig {
        SessionConfig {
            ttl: Duration::from_millis(ttl_ms),
            idle: idle_ms.map(Duration::from_millis),
            capacity,
            header: http::HeaderName::from_static("x-session-id"),
            forward_session_header: false,
        }
    }

    fn user(openid: &str) -> UserRecord {
        UserRecord::new(openid, None, Secret::new("k")).unwrap()
    }

    #[tokio::test]
    async fn capacity_evicts_least_recently_used_not_the_newest() {
        let store = MemoryStore::new(&config(60_000, None, 10), StoreMetrics::default());
        let mut ids = Vec::new();
        for i in 0..50 {
            ids.push(store.login(user(&format!("o{i}"))).await.unwrap().0);
            store.sessions.run_pending_tasks().await;
            store.users.run_pending_tasks().await;
        }
        assert!(store.sessions.entry_count() <= 10);
        // The newest login always survives (LRU admits every new entry).
        assert!(store.resolve(&ids[49]).await.unwrap().is_some());
        assert!(store.resolve(&ids[0]).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn orphaned_session_is_invalid() {
        let store = MemoryStore::new(&config(60_000, None, 10), StoreMetrics::default());
        let (id, _) = store.login(user("o1")).await.unwrap();
        store.users.invalidate("o1").await;
        assert!(store.resolve(&id).await.unwrap().is_none());
    }
}
