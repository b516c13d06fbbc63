//! The session cache: moka, holding sessions and the users they point to.
//!
//! One cache serves both stores. With `store = "memory"` it IS the store;
//! with `store = "redis"` it is the local copy in front of Redis, each
//! entry living at most `local_ttl` (see `redis/mod.rs`).
//!
//! Two maps, one job each:
//! - `sessions`, the moka cache: id (or its hash) → the session's
//!   [`UserSlot`] and deadlines. A hit is this one lookup. moka's per-entry
//!   [`Expiry`] ends an entry at its absolute deadline or after `idle`
//!   without a read, whichever comes first, and moka never returns an
//!   expired entry. It evicts by LRU, not moka's default TinyLFU: TinyLFU
//!   may refuse to admit a new entry, and a fresh login must never be the
//!   one refused.
//! - `users` ([`UserIndex`]): user key (openid, or appid:openid) → the same
//!   `UserSlot`, so a login finds the user's record and replaces its
//!   session_key in place. Every session of the user shares the slot, so
//!   every one of them decrypts with the newest key.
//!
//! A slot leaves service at its own deadline (`user_lifetime` after the
//! user's newest store) or when the index drops it (a revocation, or room
//! needed for users that sessions hold): it is then retired, and the
//! sessions that point to it stop resolving, as a session whose user record
//! is gone must.
//!
//! moka never answers an expired entry; its timer wheel removes one from
//! memory (and from the live count) within about a second of its deadline.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::policy::EvictionPolicy;
use moka::sync::Cache;

use super::user_index::{UserIndex, UserSlot};
use super::{TokenSlot, UserRecord};

/// Instants as nanoseconds after the cache's start: 8 bytes, not 16.
#[derive(Clone, Copy)]
struct Epoch(Instant);

impl Epoch {
    fn at(self, instant: Instant) -> u64 {
        u64::try_from(instant.saturating_duration_since(self.0).as_nanos()).unwrap_or(u64::MAX)
    }

    fn now(self) -> u64 {
        self.at(Instant::now())
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[derive(Clone)]
struct SessionEntry {
    user: Arc<UserSlot>,
    /// When this copy leaves the cache (memory store: when the session ends).
    evict_at: u64,
    /// When the session itself ends, as the store said.
    ends_at: u64,
    /// Its signed assertions, when the cache keeps them.
    tokens: Option<Arc<TokenSlot>>,
}

/// A session found in the cache.
pub(super) struct Hit {
    pub user: Arc<UserRecord>,
    pub expires_in: Duration,
    /// Within its freshness (always, unless the cache keeps entries
    /// [`SessionCache::with_stale`] past it).
    pub fresh: bool,
    /// The session's signed assertions (`[assertion]`).
    pub tokens: Option<Arc<TokenSlot>>,
}

/// An entry ends at `evict_at`, or `idle` after its last read if sooner.
struct SessionExpiry {
    idle: Option<Duration>,
    epoch: Epoch,
}

impl SessionExpiry {
    fn left(&self, entry: &SessionEntry, now: Instant) -> Duration {
        let left = Duration::from_nanos(entry.evict_at.saturating_sub(self.epoch.at(now)));
        self.idle.map_or(left, |idle| left.min(idle))
    }
}

impl Expiry<[u8; 32], SessionEntry> for SessionExpiry {
    fn expire_after_create(
        &self,
        _: &[u8; 32],
        e: &SessionEntry,
        now: Instant,
    ) -> Option<Duration> {
        Some(self.left(e, now))
    }

    fn expire_after_read(
        &self,
        _: &[u8; 32],
        e: &SessionEntry,
        now: Instant,
        current: Option<Duration>,
        _: Instant,
    ) -> Option<Duration> {
        // Without an idle timeout a read changes nothing; moka then skips
        // re-arming the entry's timer.
        match self.idle {
            Some(_) => Some(self.left(e, now)),
            None => current,
        }
    }

    fn expire_after_update(
        &self,
        _: &[u8; 32],
        e: &SessionEntry,
        now: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(self.left(e, now))
    }
}

pub(super) struct SessionCache {
    sessions: Cache<[u8; 32], SessionEntry, RandomIdHash>,
    users: UserIndex,
    user_lifetime: Duration,
    idle: Option<Duration>,
    epoch: Epoch,
    /// How long entries are kept past their freshness (nanoseconds; 0: not at all).
    stale: u64,
    /// Each session keeps its signed assertions (`[assertion]` is on).
    tokens: bool,
}

impl SessionCache {
    /// At most `capacity` sessions and as many users; a user entry lives
    /// `user_lifetime` after the user's newest store; a session entry
    /// unread for `idle` ends early.
    pub(super) fn new(capacity: u64, user_lifetime: Duration, idle: Option<Duration>) -> Self {
        let epoch = Epoch(Instant::now());
        Self {
            sessions: Cache::builder()
                .max_capacity(capacity)
                .eviction_policy(EvictionPolicy::lru())
                .expire_after(SessionExpiry { idle, epoch })
                .build_with_hasher(RandomIdHash),
            users: UserIndex::new(capacity),
            user_lifetime,
            idle,
            epoch,
            stale: 0,
            tokens: false,
        }
    }

    /// Each session entry keeps a [`TokenSlot`] for its signed assertions
    /// (`[assertion]`): one small allocation per session, only then.
    pub(super) fn with_tokens(mut self, tokens: bool) -> Self {
        self.tokens = tokens;
        self
    }

    /// Entries (given `stale` more to live by their callers) count as
    /// fresh until `stale` before they leave: the Redis store's local
    /// copy, serving through an outage (`session.stale_if_error`).
    pub(super) fn with_stale(mut self, stale: Duration) -> Self {
        self.stale = nanos(stale);
        self
    }

    /// The session's user and time left; `None` when not cached, ended, or
    /// its user is gone.
    pub(super) fn get(&self, key: &[u8; 32]) -> Option<Hit> {
        let entry = self.sessions.get(key)?;
        let now = self.epoch.now();
        // moka has checked the entry's own expiry; the slot has its own.
        if entry.evict_at <= now || !entry.user.serves(now) {
            self.sessions.invalidate(key);
            return None;
        }
        // This read has just re-armed the idle timeout.
        let left = Duration::from_nanos(entry.ends_at.saturating_sub(now));
        let fresh = self.stale == 0
            || now.saturating_add(self.stale)
                < entry.evict_at.min(entry.user.until.load(Ordering::Acquire));
        Some(Hit {
            user: entry.user.record(),
            expires_in: self.idle.map_or(left, |idle| left.min(idle)),
            fresh,
            tokens: entry.tokens,
        })
    }

    /// Caches a session of `user` that ends in `left`, for at most `keep`;
    /// the session's token slot, when sessions keep one.
    pub(super) fn insert_session(
        &self,
        key: [u8; 32],
        user: Arc<UserSlot>,
        left: Duration,
        keep: Duration,
    ) -> Option<Arc<TokenSlot>> {
        let now = self.epoch.now();
        let ends_at = now.saturating_add(nanos(left));
        // Never kept past its user's slot, which would then refuse it anyway.
        let evict_at = now
            .saturating_add(nanos(keep.min(left)))
            .min(user.until.load(Ordering::Acquire));
        let tokens = self.tokens.then(Arc::default);
        let entry = SessionEntry {
            user,
            evict_at,
            ends_at,
            tokens: tokens.clone(),
        };
        self.sessions.insert(key, entry);
        tokens
    }

    pub(super) fn remove_session(&self, key: &[u8; 32]) {
        self.sessions.invalidate(key);
    }

    /// The user's slot, while it serves and is fresh.
    pub(super) fn user(&self, key: &str) -> Option<Arc<UserSlot>> {
        let slot = self.users.get(key)?;
        let at = self.epoch.now();
        let fresh = at.saturating_add(self.stale) < slot.until.load(Ordering::Acquire);
        (slot.serves(at) && fresh).then_some(slot)
    }

    /// Stores `record` as the user's newest; `merge` keeps what the
    /// previous record knew and this one does not (the phone number).
    /// Sessions already pointing at the user see the new record at once.
    pub(super) fn store_user(&self, record: UserRecord, merge: bool) -> Arc<UserSlot> {
        let key = record.key_shared().clone();
        let now = self.epoch.now();
        let until = now.saturating_add(nanos(self.user_lifetime));
        // Serialised per user with any other change of it.
        self.users.put(&key, now, |current| match current {
            Some(slot) if slot.serves(now) => {
                let newer = if merge {
                    slot.record.load().merged_into(record)
                } else {
                    record
                };
                slot.record.store(Arc::new(newer));
                slot.until.store(until, Ordering::Release);
                slot.clone()
            }
            _ => Arc::new(UserSlot::new(record, until)),
        })
    }

    /// Changes the user's record with `change` (which says whether it
    /// changed anything); the record as it now stands, or `None` when the
    /// user is not here.
    pub(super) fn update_user(
        &self,
        key: &str,
        change: impl FnOnce(&mut UserRecord) -> bool,
    ) -> Option<Arc<UserRecord>> {
        let now = self.epoch.now();
        // Under the index's lock, so it serialises with a concurrent login of the user.
        self.users.with(key, |current| {
            let slot = current.filter(|slot| slot.serves(now))?;
            let mut record = UserRecord::clone(&slot.record.load());
            if change(&mut record) {
                slot.record.store(Arc::new(record));
            }
            Some(slot.record())
        })
    }

    /// Forgets the user: every cached session of the user stops resolving.
    /// `false` when the user was not here.
    pub(super) fn evict_user(&self, key: &str) -> bool {
        self.users.remove(key)
    }

    /// Forgets everything (after missing revocations).
    pub(super) fn clear(&self) {
        self.sessions.invalidate_all();
        self.users.clear();
    }

    /// Cached sessions, once moka has applied every pending expiry and
    /// eviction (and the user index has dropped what may no longer serve).
    pub(super) fn live(&self) -> u64 {
        self.users.sweep_all(self.epoch.now());
        self.sessions.run_pending_tasks();
        self.sessions.entry_count()
    }
}

/// Hashes a session key by folding its bytes. Sound only because every
/// stored key is 256 random bits (a CSPRNG id, or its SHA-256 with Redis):
/// the hash is as random as a keyed one, for a fraction of SipHash's cost.
/// A key a client makes up is only ever looked up, never inserted, so it
/// cannot lengthen any probe sequence (no hash flooding).
#[derive(Clone, Copy, Default)]
pub(super) struct RandomIdHash;

impl BuildHasher for RandomIdHash {
    type Hasher = FoldHasher;

    fn build_hasher(&self) -> FoldHasher {
        FoldHasher(0)
    }
}

pub(super) struct FoldHasher(u64);

impl Hasher for FoldHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.0 ^= u64::from_le_bytes(word);
        }
        for (i, b) in chunks.remainder().iter().enumerate() {
            self.0 ^= u64::from(*b) << (8 * i);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::secret::Secret;

    const LONG: Duration = Duration::from_secs(3600);

    fn user(openid: &str, key: &str) -> UserRecord {
        UserRecord::new(
            &super::super::AppTag::new("wxapp", true),
            openid,
            None,
            Secret::new(key),
        )
        .unwrap()
    }

    fn login(cache: &SessionCache, n: u32) -> [u8; 32] {
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(&n.to_le_bytes());
        key[31] = 0xa5;
        let slot = cache.store_user(user(&format!("o{n}"), "k"), true);
        cache.insert_session(key, slot, LONG, LONG);
        key
    }

    #[test]
    fn capacity_evicts_least_recently_used_never_the_newest() {
        let cache = SessionCache::new(10, LONG, None);
        let mut keys = Vec::new();
        for n in 0..50 {
            let key = login(&cache, n);
            // The session just created always survives what its login evicted.
            cache.live();
            assert!(cache.get(&key).is_some(), "session {n} refused");
            keys.push(key);
            if n == 45 {
                assert!(cache.get(&keys[41]).is_some());
            }
        }
        assert_eq!(cache.live(), 10);
        assert!(cache.get(&keys[49]).is_some());
        assert!(cache.get(&keys[41]).is_some(), "read recently, so kept");
        assert!(cache.get(&keys[39]).is_none());
        assert!(cache.get(&keys[0]).is_none());
    }

    #[test]
    fn every_session_of_a_user_sees_the_newest_record() {
        let cache = SessionCache::new(100, LONG, None);
        let first = cache.store_user(user("o1", "old"), true);
        cache.insert_session([1; 32], first, LONG, LONG);
        let second = cache.store_user(user("o1", "new"), true);
        cache.insert_session([2; 32], second, LONG, LONG);
        for key in [[1; 32], [2; 32]] {
            let hit = cache.get(&key).unwrap();
            assert_eq!(hit.user.session_key, Secret::new("new"));
        }
        let updated = cache.update_user("o1", |u| {
            u.key_stale = true;
            true
        });
        assert!(updated.unwrap().key_stale);
        assert!(cache.get(&[1; 32]).unwrap().user.key_stale);
        assert!(cache.update_user("nobody", |_| true).is_none());
    }

    #[test]
    fn a_session_whose_user_is_gone_does_not_resolve() {
        let cache = SessionCache::new(100, LONG, None);
        let slot = cache.store_user(user("o1", "k"), true);
        cache.insert_session([1; 32], slot, LONG, LONG);
        cache.evict_user("o1");
        assert!(cache.get(&[1; 32]).is_none());
        assert_eq!(cache.live(), 0);
        // A new login starts a new slot; the old session stays gone.
        let slot = cache.store_user(user("o1", "k2"), true);
        cache.insert_session([2; 32], slot, LONG, LONG);
        assert!(cache.get(&[1; 32]).is_none());
        assert!(cache.get(&[2; 32]).is_some());
    }

    #[test]
    fn entries_end_at_their_deadline_and_leave_at_the_next_count() {
        let short = Duration::from_millis(50);
        let cache = SessionCache::new(100, short, None);
        let slot = cache.store_user(user("o1", "k"), true);
        cache.insert_session([1; 32], slot.clone(), LONG, LONG);
        // Capped by its user's lifetime, whatever it was asked to keep.
        assert!(cache.get(&[1; 32]).is_some());
        std::thread::sleep(short * 2);
        assert!(cache.get(&[1; 32]).is_none());
        assert!(cache.user("o1").is_none());
        // moka's timer wheel removes expired entries at ~1 s granularity.
        std::thread::sleep(Duration::from_millis(1200));
        assert_eq!(cache.live(), 0);
        assert!(
            slot.retired.load(Ordering::Acquire),
            "expiry retires the slot"
        );
    }

    #[test]
    fn a_full_user_index_drops_only_users_no_session_holds() {
        // 64 users of room: one per shard.
        let cache = SessionCache::new(64, LONG, None);
        let held: Vec<_> = (0..20).map(|n| login(&cache, n)).collect();
        for n in 100..20_000 {
            cache.store_user(user(&format!("o{n}"), "k"), true);
        }
        // Each shard sweeps once it doubles: far fewer than 20,000 remain.
        assert!(cache.users.len() < 64 * 64 * 2, "{}", cache.users.len());
        for key in &held {
            assert!(
                cache.get(key).is_some(),
                "a user a session holds was dropped"
            );
        }
        assert!(cache.user("o3").is_some());
    }

    #[test]
    fn users_past_their_lifetime_are_reclaimed_by_the_next_sweep() {
        let short = Duration::from_millis(50);
        let cache = SessionCache::new(1_000_000, short, None);
        for n in 0..10_000 {
            login(&cache, n);
        }
        std::thread::sleep(short * 2);
        cache.live();
        assert_eq!(cache.users.len(), 0);
        assert!(cache.user("o1").is_none());
    }

    #[test]
    fn idle_sessions_end_and_reads_re_arm_the_idle_clock() {
        let idle = Duration::from_millis(300);
        let cache = SessionCache::new(100, LONG, Some(idle));
        let slot = cache.store_user(user("o1", "k"), true);
        cache.insert_session([1; 32], slot.clone(), LONG, LONG);
        cache.insert_session([2; 32], slot, LONG, LONG);
        for _ in 0..4 {
            std::thread::sleep(idle / 3);
            let hit = cache.get(&[1; 32]).unwrap();
            assert!(hit.expires_in <= idle, "{:?}", hit.expires_in);
        }
        assert!(cache.get(&[2; 32]).is_none(), "unread for longer than idle");
    }
}
