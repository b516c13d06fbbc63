//! The local cache in front of Redis: a replica answers from memory for at
//! most `local_ttl`, so a hot session costs no Redis round trip.
//!
//! Rules that keep it honest:
//! - an entry never outlives what Redis said the session has left (its
//!   deadline is `min(local_ttl, PTTL)`), so the cache cannot extend a
//!   session;
//! - only hits are cached, never a miss or an error;
//! - logouts and user-record changes evict entries on every replica through
//!   pub/sub (`revocation`), well before `local_ttl`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::future::Cache;
use moka::policy::EvictionPolicy;

use crate::session::UserRecord;

#[derive(Clone)]
struct Entry {
    openid: Arc<str>,
    /// When this cached copy must go.
    evict_at: Instant,
    /// When the session itself ends, as Redis last said.
    ends_at: Instant,
}

struct UntilEvictAt;

impl Expiry<[u8; 32], Entry> for UntilEvictAt {
    fn expire_after_create(&self, _: &[u8; 32], entry: &Entry, now: Instant) -> Option<Duration> {
        Some(entry.evict_at.saturating_duration_since(now))
    }
}

pub struct Hit {
    pub user: Arc<UserRecord>,
    pub expires_in: Duration,
}

pub struct LocalCache {
    sessions: Cache<[u8; 32], Entry>,
    users: Cache<Arc<str>, Arc<UserRecord>>,
    ttl: Duration,
}

impl LocalCache {
    pub fn new(ttl: Duration, capacity: u64) -> Self {
        Self {
            sessions: Cache::builder()
                .max_capacity(capacity)
                .eviction_policy(EvictionPolicy::lru())
                .expire_after(UntilEvictAt)
                .build(),
            users: Cache::builder()
                .max_capacity(capacity)
                .eviction_policy(EvictionPolicy::lru())
                .time_to_live(ttl.max(Duration::from_millis(1)))
                .build(),
            ttl,
        }
    }

    pub async fn get(&self, hash: &[u8; 32]) -> Option<Hit> {
        let entry = self.sessions.get(hash).await?;
        let user = self.users.get(&entry.openid).await?;
        let now = Instant::now();
        (entry.evict_at > now).then(|| Hit {
            user,
            expires_in: entry.ends_at.saturating_duration_since(now),
        })
    }

    pub async fn user(&self, openid: &str) -> Option<Arc<UserRecord>> {
        self.users.get(openid).await
    }

    /// Caches a session Redis has just confirmed, with `left` to live.
    pub async fn put_session(&self, hash: [u8; 32], openid: &str, left: Duration) {
        if self.ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let entry = Entry {
            openid: Arc::from(openid),
            evict_at: now + self.ttl.min(left),
            ends_at: now + left,
        };
        self.sessions.insert(hash, entry).await;
    }

    pub async fn put_user(&self, user: Arc<UserRecord>) {
        if !self.ttl.is_zero() {
            self.users.insert(Arc::from(user.openid()), user).await;
        }
    }

    pub async fn evict_session(&self, hash: &[u8; 32]) {
        self.sessions.invalidate(hash).await;
    }

    pub async fn evict_user(&self, openid: &str) {
        self.users.invalidate(openid).await;
    }

    /// Forgets everything: after missing revocations (pub/sub was down).
    pub fn clear(&self) {
        self.sessions.invalidate_all();
        self.users.invalidate_all();
    }
}
