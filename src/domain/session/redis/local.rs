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
//!   every cached session of that user miss;
//! - **a read never resurrects what a revocation removed.** A Redis read
//!   takes a [`Ticket`] before it starts; every revocation (and a local
//!   write of a user record, and the subscription going up or down) moves
//!   the cache's revocation count first. What the read brings back is
//!   inserted, then checked against its ticket, and removed again if any
//!   revocation came in between: a revocation applied before the check is
//!   seen by it, one applied after it evicts the entry itself. So once a
//!   logout's message has reached a replica, no read already in flight
//!   there can bring the session back, and a key rotation never goes back
//!   to the older record;
//! - **nothing is cached while revocations cannot be heard**: a read
//!   while the subscription is down takes no ticket and caches nothing, so
//!   a replica whose pub/sub link is down serves nothing from its local
//!   cache for longer than `local_ttl` after the link went (entries expire
//!   by then), and clears it all when the link is back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::domain::session::cache::{Hit, SessionCache};
use crate::domain::session::{TokenSlot, UserRecord};

/// `None` inside when `local_ttl = 0`: every lookup goes to Redis.
pub(super) struct LocalCache {
    cache: Option<SessionCache>,
    /// What an entry is kept for: `local_ttl`, and `stale_if_error` past it.
    keep: Duration,
    /// Moved before every eviction: a read that saw it move in flight
    /// drops what it cached.
    revocations: AtomicU64,
    /// Whether this replica currently hears revocations.
    subscribed: AtomicBool,
}

/// The revocation count when a Redis read began; `None`: cache nothing.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ticket(Option<u64>);

impl LocalCache {
    /// Entries fresh for `ttl` (`local_ttl`), kept `stale` past it to serve
    /// while Redis is unreachable (`stale_if_error`).
    /// `tokens`: each session keeps its signed assertions (`[assertion]`).
    pub(super) fn new(ttl: Duration, stale: Duration, capacity: u64, tokens: bool) -> Self {
        let keep = ttl.saturating_add(stale);
        Self {
            cache: (!ttl.is_zero()).then(|| {
                SessionCache::new(capacity, keep, None)
                    .with_stale(stale)
                    .with_tokens(tokens)
            }),
            keep,
            revocations: AtomicU64::new(0),
            subscribed: AtomicBool::new(false),
        }
    }

    pub(super) fn get(&self, hash: &[u8; 32]) -> Option<Hit> {
        self.cache.as_ref()?.get(hash)
    }

    pub(super) fn user(&self, key: &str) -> Option<Arc<UserRecord>> {
        Some(self.cache.as_ref()?.user(key)?.record())
    }

    /// Taken before a Redis read whose answer may be cached.
    pub(super) fn ticket(&self) -> Ticket {
        let count = self.revocations.load(Ordering::SeqCst);
        Ticket(self.subscribed.load(Ordering::SeqCst).then_some(count))
    }

    /// No revocation since `ticket` was taken (and revocations are heard).
    fn still(&self, ticket: Ticket) -> bool {
        ticket.0 == Some(self.revocations.load(Ordering::SeqCst))
    }

    fn revoke(&self) {
        self.revocations.fetch_add(1, Ordering::SeqCst);
    }

    /// Caches a session Redis has just confirmed, with `left` to live,
    /// when its user is cached too and no revocation came since `ticket`;
    /// the cached session's token slot.
    pub(super) fn put_session(
        &self,
        hash: [u8; 32],
        user_key: &str,
        left: Duration,
        ticket: Ticket,
    ) -> Option<Arc<TokenSlot>> {
        let cache = self.cache.as_ref()?;
        if !self.still(ticket) {
            return None;
        }
        let slot = cache.user(user_key)?;
        let tokens = cache.insert_session(hash, slot, left, self.keep);
        if !self.still(ticket) {
            cache.remove_session(&hash);
            return None;
        }
        tokens
    }

    /// Caches the user's record as a Redis read found it, unless a
    /// revocation came since `ticket`; the record either way.
    pub(super) fn put_read_user(&self, user: UserRecord, ticket: Ticket) -> Arc<UserRecord> {
        let Some(cache) = self.cache.as_ref().filter(|_| self.still(ticket)) else {
            return Arc::new(user);
        };
        let key = user.key_shared().clone();
        let record = cache.store_user(user, false).record();
        if !self.still(ticket) {
            cache.evict_user(&key);
        }
        record
    }

    /// Caches the user's record as this replica has just written it. Reads
    /// in flight may carry an older one: they are made to drop it.
    pub(super) fn put_written_user(&self, user: UserRecord) -> Arc<UserRecord> {
        self.revoke();
        match &self.cache {
            Some(cache) => cache.store_user(user, false).record(),
            None => Arc::new(user),
        }
    }

    pub(super) fn evict_session(&self, hash: &[u8; 32]) {
        self.revoke();
        if let Some(cache) = &self.cache {
            cache.remove_session(hash);
        }
    }

    pub(super) fn evict_user(&self, key: &str) {
        self.revoke();
        if let Some(cache) = &self.cache {
            cache.evict_user(key);
        }
    }

    /// Whether revocations are heard (the subscription is up).
    pub(super) fn subscribed(&self) -> bool {
        self.subscribed.load(Ordering::Acquire)
    }

    /// The subscription came up or went down. Either way reads in flight
    /// cache nothing; coming up, everything cached is forgotten, since
    /// revocations may have been missed meanwhile.
    pub(super) fn set_subscribed(&self, up: bool) {
        self.revoke();
        if up && let Some(cache) = &self.cache {
            cache.clear();
        }
        self.subscribed.store(up, Ordering::SeqCst);
    }
}
