//! The embedded session store: two sharded LRU tables, sessions and users.
//!
//! A session lives until its absolute deadline (`ttl` after login) or until
//! it has been idle for `idle`, whichever comes first; every resolve re-arms
//! the idle clock but never moves the absolute deadline. A user record
//! lives `ttl` after the user's newest login, so it outlives the sessions
//! that point to it. Past `capacity`, the least recently used entry goes
//! (a brand-new login is never the one refused).
//!
//! Why not moka, which the first version used: a live session cost two moka
//! entries, about 1,200 resident bytes in all, and a lookup about 3.6 µs.
//! A session here is one 80-byte node (id, openid pointer, two deadlines)
//! plus its share of the index; the user record is shared by all of a
//! user's sessions. Expired entries are removed when met: on lookup, from
//! the cold end of a shard at each login, and in full when the metrics are
//! scraped (which also makes the live count exact).

use std::collections::hash_map::RandomState;
use std::sync::Arc;
use std::time::Duration;

use hashlink::LruCache;

use super::shards::{Clock, Deadline, Now, RandomIdHash, Shards};
use super::{Resolved, SessionId, SessionStore, StoreError, UserRecord, UserUpdate, now_ms};
use crate::config::SessionConfig;
use crate::metrics::{Layer, StoreMetrics};

/// How many expired entries a login clears from the cold end of its shard:
/// enough to keep ahead of expiry, few enough to stay cheap.
const SWEEP_AT_LOGIN: usize = 4;

struct SessionEntry {
    openid: Arc<str>,
    expires_at: Deadline,
    /// `Deadline::NEVER` when no idle timeout is set.
    idle_until: Deadline,
}

impl SessionEntry {
    fn ends(&self) -> Deadline {
        self.expires_at.min(self.idle_until)
    }
}

pub struct MemoryStore {
    sessions: Shards<[u8; 32], SessionEntry, RandomIdHash>,
    /// A user record ends `ttl` after its `last_login`, by the wall clock
    /// (as in Redis): a clock step moves that by the step, and the record
    /// still outlives every session of that login, whose own deadlines
    /// are monotonic. Saves a deadline per user.
    users: Shards<Arc<str>, Arc<UserRecord>, RandomState>,
    clock: Clock,
    ttl: Duration,
    idle: Option<Duration>,
    metrics: StoreMetrics,
}

impl MemoryStore {
    pub fn new(config: &SessionConfig, metrics: StoreMetrics) -> Self {
        Self {
            sessions: Shards::new(config.capacity, RandomIdHash),
            users: Shards::new(config.capacity, RandomState::new()),
            clock: Clock::new(),
            ttl: config.ttl,
            idle: config.idle,
            metrics,
        }
    }

    /// Live sessions, after removing every expired entry (sessions and users).
    pub async fn live(&self) -> u64 {
        let now = self.clock.now();
        let mut live = 0;
        self.sessions.each(|shard| {
            shard.retain(|_, s| !s.ends().passed(now));
            live += shard.len() as u64;
        });
        let wall = now_ms();
        self.users
            .each(|shard| shard.retain(|_, u| !self.user_ended(u, wall)));
        live
    }

    fn user_ended(&self, user: &UserRecord, wall: u64) -> bool {
        let ttl = u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX);
        wall >= user.last_login.saturating_add(ttl)
    }

    fn idle_until(&self, now: Now) -> Deadline {
        self.idle
            .map_or(Deadline::NEVER, |idle| Clock::deadline(now, idle))
    }

    /// The session's openid and time left, re-arming its idle clock; `None`
    /// (and the entry removed) when unknown or ended.
    fn touch_session(&self, id: &SessionId, now: Now) -> Option<(Arc<str>, Duration)> {
        let mut shard = self.sessions.lock(id.as_bytes());
        let entry = shard.get_mut(id.as_bytes())?;
        if entry.ends().passed(now) {
            shard.remove(id.as_bytes());
            return None;
        }
        entry.idle_until = self.idle_until(now);
        let left = entry.ends().left(now).min(self.ttl);
        Some((entry.openid.clone(), left))
    }

    fn current_user(&self, openid: &Arc<str>) -> Option<Arc<UserRecord>> {
        let wall = now_ms();
        let mut shard = self.users.lock(openid);
        let user = shard.get(openid)?;
        if self.user_ended(user, wall) {
            shard.remove(openid);
            return None;
        }
        Some(user.clone())
    }
}

/// Drops up to `SWEEP_AT_LOGIN` expired entries from the cold end.
fn sweep_cold_end<K: std::hash::Hash + Eq, V, S: std::hash::BuildHasher>(
    shard: &mut LruCache<K, V, S>,
    ended: impl Fn(&V) -> bool,
) {
    for _ in 0..SWEEP_AT_LOGIN {
        match shard.iter().next() {
            Some((_, v)) if ended(v) => {
                shard.remove_lru();
            }
            _ => break,
        }
    }
}

impl SessionStore for MemoryStore {
    async fn login(&self, user: UserRecord) -> Result<(SessionId, Arc<UserRecord>), StoreError> {
        let id = SessionId::generate().map_err(StoreError::Random)?;
        let now = self.clock.now();
        let expires_at = Clock::deadline(now, self.ttl);
        let openid = user.openid_shared().clone();
        // One lock on the user's shard serialises this with `update_user`,
        // so a phone number stored concurrently is neither lost nor resurrected.
        let wall = now_ms();
        let stored = {
            let mut users = self.users.lock(&openid);
            let record = Arc::new(match users.get(&openid) {
                Some(old) if !self.user_ended(old, wall) => old.merged_into(user),
                _ => user,
            });
            users.insert(openid.clone(), record.clone());
            sweep_cold_end(&mut users, |u| self.user_ended(u, wall));
            record
        };
        let mut sessions = self.sessions.lock(id.as_bytes());
        sessions.insert(
            *id.as_bytes(),
            SessionEntry {
                openid,
                expires_at,
                idle_until: self.idle_until(now),
            },
        );
        sweep_cold_end(&mut sessions, |s| s.ends().passed(now));
        Ok((id, stored))
    }

    async fn resolve(&self, id: &SessionId) -> Result<Option<Resolved>, StoreError> {
        let now = self.clock.now();
        let Some((openid, expires_in)) = self.touch_session(id, now) else {
            self.metrics.lookup(Layer::Memory, false);
            return Ok(None);
        };
        let Some(user) = self.current_user(&openid) else {
            // The user record is gone: the session depends on it.
            self.sessions.lock(id.as_bytes()).remove(id.as_bytes());
            self.metrics.lookup(Layer::Memory, false);
            return Ok(None);
        };
        self.metrics.lookup(Layer::Memory, true);
        Ok(Some(Resolved {
            id: *id,
            user,
            expires_in,
        }))
    }

    async fn logout(&self, id: &SessionId) -> Result<(), StoreError> {
        self.sessions.lock(id.as_bytes()).remove(id.as_bytes());
        Ok(())
    }

    async fn update_user(
        &self,
        openid: &str,
        update: UserUpdate,
    ) -> Result<Option<Arc<UserRecord>>, StoreError> {
        let wall = now_ms();
        let mut users = self.users.lock(openid);
        let Some(stored) = users.peek_mut(openid) else {
            return Ok(None);
        };
        if self.user_ended(stored, wall) {
            users.remove(openid);
            return Ok(None);
        }
        let mut user = UserRecord::clone(stored);
        if update.apply(&mut user) {
            *stored = Arc::new(user);
        }
        Ok(Some(stored.clone()))
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
            if i == 45 {
                // Used recently: survives the five logins after it.
                assert!(store.resolve(&ids[41]).await.unwrap().is_some());
            }
        }
        assert_eq!(store.live().await, 10);
        assert!(store.resolve(&ids[49]).await.unwrap().is_some());
        assert!(store.resolve(&ids[41]).await.unwrap().is_some());
        assert!(store.resolve(&ids[39]).await.unwrap().is_none());
        assert!(store.resolve(&ids[0]).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn orphaned_session_is_invalid_and_removed() {
        let store = MemoryStore::new(&config(60_000, None, 10), StoreMetrics::default());
        let (id, _) = store.login(user("o1")).await.unwrap();
        store.users.lock("o1").remove("o1");
        assert!(store.resolve(&id).await.unwrap().is_none());
        assert_eq!(store.live().await, 0);
    }

    #[tokio::test]
    async fn expired_entries_leave_at_the_next_count() {
        let store = MemoryStore::new(&config(1, None, 10), StoreMetrics::default());
        for i in 0..3 {
            store.login(user(&format!("o{i}"))).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(store.live().await, 0);
        let mut users = 0;
        store.users.each(|shard| users += shard.len());
        assert_eq!(users, 0);
    }
}
