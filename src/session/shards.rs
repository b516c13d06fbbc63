//! Sharded LRU tables and the coarse clock their deadlines use: the parts
//! the memory store is built from.
//!
//! Each shard is a `hashlink::LruCache` (a hash index over a linked list,
//! so "least recently used" is exact within a shard) behind a plain mutex.
//! A lookup holds the lock for a hash probe and a list splice, well under a
//! microsecond, and with dozens of shards per worker thread two threads
//! rarely want the same one. Small tables get a single shard, so their LRU
//! order is exact.
//!
//! Deadlines are `u32` whole seconds since the store started (136 years),
//! rounded up so that an entry never ends before its time. That keeps a
//! session's bookkeeping at 8 bytes; the cost is that an entry may outlive
//! its deadline by up to a second.

use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use hashlink::LruCache;

/// Most shards a table gets; the smallest share a shard needs to get one.
const MAX_SHARDS: usize = 64;
const MIN_PER_SHARD: u64 = 4096;

pub struct Shards<K, V, S> {
    shards: Box<[Mutex<LruCache<K, V, S>>]>,
    hasher: S,
}

impl<K: Hash + Eq, V, S: BuildHasher + Clone> Shards<K, V, S> {
    /// At most about `capacity` entries in all; past that, each shard drops
    /// its least recently used entry to make room.
    pub fn new(capacity: u64, hasher: S) -> Self {
        let count = usize::try_from(capacity / MIN_PER_SHARD)
            .unwrap_or(MAX_SHARDS)
            .clamp(1, MAX_SHARDS)
            .next_power_of_two();
        let per_shard = usize::try_from(capacity.div_ceil(count as u64)).unwrap_or(usize::MAX);
        let shards = (0..count)
            .map(|_| Mutex::new(LruCache::with_hasher(per_shard, hasher.clone())))
            .collect();
        Self { shards, hasher }
    }

    /// The shard that holds `key`. Bits 32 and up of the hash pick it: the
    /// table inside uses the low bits for buckets and the top seven as tags,
    /// so the keys of one shard still spread over all its buckets.
    pub fn lock<Q: Hash + ?Sized>(&self, key: &Q) -> MutexGuard<'_, LruCache<K, V, S>> {
        let hash = self.hasher.hash_one(key);
        let index = (hash >> 32) as usize & (self.shards.len() - 1);
        // A panic while locked cannot leave an LruCache half-updated in a
        // way that matters here; keep serving rather than poison every request.
        self.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Every shard in turn (sweeps and counts).
    pub fn each(&self, mut f: impl FnMut(&mut LruCache<K, V, S>)) {
        for shard in &self.shards {
            f(&mut shard.lock().unwrap_or_else(PoisonError::into_inner));
        }
    }
}

/// Hashes a session id by folding its bytes. Sound only because every
/// stored id is 256 bits from the OS's CSPRNG: the hash is as random as a
/// keyed one would be, for a fraction of SipHash's cost. An id a client
/// makes up is only ever looked up, never inserted, so it cannot lengthen
/// any probe sequence (no hash flooding).
#[derive(Clone, Copy, Default)]
pub struct RandomIdHash;

impl BuildHasher for RandomIdHash {
    type Hasher = FoldHasher;

    fn build_hasher(&self) -> FoldHasher {
        FoldHasher(0)
    }
}

pub struct FoldHasher(u64);

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

/// Milliseconds since the store started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Now(u64);

/// A deadline in whole seconds since the store started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline(u32);

impl Deadline {
    pub const NEVER: Deadline = Deadline(u32::MAX);

    pub fn passed(self, now: Now) -> bool {
        now.0 >= self.millis()
    }

    /// Time left at `now` (zero once passed).
    pub fn left(self, now: Now) -> Duration {
        Duration::from_millis(self.millis().saturating_sub(now.0))
    }

    fn millis(self) -> u64 {
        u64::from(self.0) * 1000
    }
}

pub struct Clock(Instant);

impl Clock {
    pub fn new() -> Self {
        Self(Instant::now())
    }

    pub fn now(&self) -> Now {
        Now(u64::try_from(self.0.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    /// `after` from `now`, rounded up to the second.
    pub fn deadline(now: Now, after: Duration) -> Deadline {
        let millis = u64::try_from(after.as_millis()).unwrap_or(u64::MAX);
        let seconds = now.0.saturating_add(millis).div_ceil(1000);
        Deadline(u32::try_from(seconds).unwrap_or(u32::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_round_up_and_never_end_early() {
        // (now ms, after ms, the first ms at which the deadline has passed)
        let cases = [
            (0, 1_200, 2_000),
            (900, 1_200, 3_000),
            (1_000, 1_000, 2_000),
            (5, 0, 1_000),
        ];
        for (now, after, first) in cases {
            let d = Clock::deadline(Now(now), Duration::from_millis(after));
            assert!(first >= now + after, "the case itself ends early");
            assert!(d.passed(Now(first)), "{now}+{after} at {first}");
            assert!(!d.passed(Now(first - 1)), "{now}+{after} at {}", first - 1);
        }
        let far = Clock::deadline(Now(u64::MAX - 5), Duration::MAX);
        assert_eq!(far, Deadline::NEVER);
        assert_eq!(Deadline(3).left(Now(2_500)), Duration::from_millis(500));
        assert_eq!(Deadline(3).left(Now(9_000)), Duration::ZERO);
    }

    #[test]
    fn shard_count_follows_capacity() {
        for (capacity, shards) in [(1, 1), (10, 1), (8_191, 1), (16_384, 4), (1_000_000, 64)] {
            let table: Shards<u64, (), RandomIdHash> = Shards::new(capacity, RandomIdHash);
            assert_eq!(table.shards.len(), shards, "capacity {capacity}");
        }
    }

    #[test]
    fn a_full_shard_drops_its_least_recently_used_entry() {
        let table: Shards<[u8; 32], u32, RandomIdHash> = Shards::new(3, RandomIdHash);
        let key = |n: u8| [n; 32];
        for n in 0..3 {
            table.lock(&key(n)).insert(key(n), n.into());
        }
        assert!(table.lock(&key(0)).get(&key(0)).is_some()); // 0 is now the newest
        table.lock(&key(3)).insert(key(3), 3);
        let mut left = Vec::new();
        table.each(|shard| left.extend(shard.iter().map(|(_, v)| *v)));
        left.sort_unstable();
        assert_eq!(left, [0, 2, 3]);
    }

    #[test]
    fn fold_hash_spreads_random_ids_over_shards() {
        let table: Shards<[u8; 32], (), RandomIdHash> = Shards::new(1 << 20, RandomIdHash);
        let mut seen = std::collections::HashSet::new();
        for n in 0u64..2_000 {
            let mut id = [0u8; 32];
            // Stand-in for random ids: SipHash of a counter in every word.
            for (i, word) in id.chunks_exact_mut(8).enumerate() {
                let h = std::collections::hash_map::RandomState::new().hash_one((n, i));
                word.copy_from_slice(&h.to_le_bytes());
            }
            let guard = table.lock(&id);
            seen.insert(std::ptr::from_ref(&*guard) as usize);
        }
        assert_eq!(seen.len(), 64);
    }
}
