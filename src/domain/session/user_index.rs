//! The session cache's user index: user key → the user's shared [`UserSlot`].
//!
//! Not a second moka cache, on purpose (issue 29): moka's per-entry
//! bookkeeping (its access-order and write-order nodes, timestamps, the
//! concurrent map's bucket) costs about 300 bytes, as much again as the
//! session it serves, and this index needs none of it:
//! - **expiry** is the slot's own deadline (`until`), which every read
//!   checks already, so a map entry past it is only memory to reclaim;
//! - **capacity** follows from the sessions: moka bounds those, and a user
//!   whose slot no session holds is the only kind an over-full index drops.
//!
//! So it is a hash map per shard behind a mutex (a lock held for one map
//! operation, taken on a login, a record update or a revocation, never on
//! a cache hit, which reaches its slot through the session entry). Memory
//! is reclaimed by a sweep, amortised over inserts: a shard is swept when
//! it has doubled since its last sweep, and on [`UserIndex::sweep_all`]
//! (the live count, at each metrics scrape). A removed slot is retired,
//! so the sessions that point to it stop resolving, exactly as when moka
//! evicted it.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;

use super::UserRecord;

/// A user's current record, shared by the user's index entry and sessions.
pub(super) struct UserSlot {
    pub(super) record: ArcSwap<UserRecord>,
    /// Nanoseconds after the cache's epoch from which the slot may not serve.
    pub(super) until: AtomicU64,
    pub(super) retired: AtomicBool,
}

impl UserSlot {
    /// A serving slot holding `record` until `until`.
    pub(super) fn new(record: UserRecord, until: u64) -> Self {
        Self {
            record: ArcSwap::from_pointee(record),
            until: AtomicU64::new(until),
            retired: AtomicBool::new(false),
        }
    }

    pub(super) fn record(&self) -> Arc<UserRecord> {
        self.record.load_full()
    }

    pub(super) fn serves(&self, at: u64) -> bool {
        !self.retired.load(Ordering::Acquire) && at < self.until.load(Ordering::Acquire)
    }

    pub(super) fn retire(&self) {
        self.retired.store(true, Ordering::Release);
    }
}

/// Enough shards that logins on every core rarely meet on one lock.
const SHARDS: usize = 64;
/// A shard below this many entries is never swept on insert.
const SWEEP_FLOOR: usize = 64;

struct Shard {
    map: HashMap<Arc<str>, Arc<UserSlot>>,
    /// Sweep when an insert finds the map this large.
    sweep_at: usize,
}

pub(super) struct UserIndex {
    shards: Box<[Mutex<Shard>]>,
    /// Keyed hashing: user keys come from WeChat, and in mock mode from
    /// whoever sends a code.
    hasher: RandomState,
    /// Users a shard may keep beyond those a session holds.
    per_shard: usize,
}

/// The shard's lock; a panic while it was held poisoned it, but every
/// operation leaves the map consistent, so it is used as it stands.
fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl UserIndex {
    pub(super) fn new(capacity: u64) -> Self {
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    map: HashMap::new(),
                    sweep_at: SWEEP_FLOOR,
                })
            })
            .collect();
        let capacity = usize::try_from(capacity).unwrap_or(usize::MAX);
        Self {
            shards,
            hasher: RandomState::new(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
        }
    }

    fn shard(&self, key: &str) -> MutexGuard<'_, Shard> {
        // The modulo of a 64-bit hash by 64: the low six bits.
        let index = (self.hasher.hash_one(key) % SHARDS as u64) as usize;
        lock(&self.shards[index])
    }

    pub(super) fn get(&self, key: &str) -> Option<Arc<UserSlot>> {
        self.shard(key).map.get(key).cloned()
    }

    /// Makes the user's slot with `make` (given the current one, if any)
    /// under the shard's lock, so it is serialised with any other change of
    /// that user, and keeps it as the user's entry. A slot replaced by
    /// another is retired.
    pub(super) fn put(
        &self,
        key: &Arc<str>,
        now: u64,
        make: impl FnOnce(Option<&Arc<UserSlot>>) -> Arc<UserSlot>,
    ) -> Arc<UserSlot> {
        let mut shard = self.shard(key);
        let current = shard.map.get(&**key);
        let slot = make(current);
        if current.is_some_and(|current| Arc::ptr_eq(current, &slot)) {
            return slot;
        }
        if shard.map.len() >= shard.sweep_at {
            self.sweep(&mut shard, now);
        }
        if let Some(old) = shard.map.insert(key.clone(), slot.clone()) {
            old.retire();
        }
        slot
    }

    /// Runs `read` on the user's slot (or `None`) under the shard's lock,
    /// serialised with any other change of that user.
    pub(super) fn with<R>(&self, key: &str, read: impl FnOnce(Option<&Arc<UserSlot>>) -> R) -> R {
        read(self.shard(key).map.get(key))
    }

    /// Removes the user's slot and retires it; `false` when absent.
    pub(super) fn remove(&self, key: &str) -> bool {
        match self.shard(key).map.remove(key) {
            Some(slot) => {
                slot.retire();
                true
            }
            None => false,
        }
    }

    /// Removes and retires every slot.
    pub(super) fn clear(&self) {
        for shard in self.shards.iter() {
            for (_, slot) in lock(shard).map.drain() {
                slot.retire();
            }
        }
    }

    /// Sweeps every shard now.
    pub(super) fn sweep_all(&self, now: u64) {
        for shard in self.shards.iter() {
            self.sweep(&mut lock(shard), now);
        }
    }

    /// Drops what may no longer serve; then, if the shard still holds more
    /// than its share, the users no session holds (only the index owns
    /// their slot).
    fn sweep(&self, shard: &mut Shard, now: u64) {
        shard.map.retain(|_, slot| {
            let keep = slot.serves(now);
            if !keep {
                slot.retire();
            }
            keep
        });
        if shard.map.len() > self.per_shard {
            shard.map.retain(|_, slot| {
                let held = Arc::strong_count(slot) > 1;
                if !held {
                    slot.retire();
                }
                held
            });
        }
        shard.map.shrink_to(shard.map.len() * 2);
        shard.sweep_at = (shard.map.len() * 2).max(SWEEP_FLOOR);
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.shards.iter().map(|shard| lock(shard).map.len()).sum()
    }
}
