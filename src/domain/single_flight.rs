//! One call per key at a time, its result shared by every caller waiting
//! on the key: logins per code (`login`), bindings per openid (`binding`).
//!
//! moka's `try_get_with` runs the first caller's future and hands its
//! result to every caller waiting on that key, and never caches an error.
//! The entry is dropped as soon as the call completes, so the next call for
//! the key runs afresh (a replayed code reaches WeChat and gets its own
//! "code used" answer).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;

/// The keys of calls in flight, in bytes.
const BUDGET: u64 = 8 * 1024 * 1024;

/// Concurrent callers with one key share one run of the work.
pub struct SingleFlight<V> {
    calls: Cache<String, V>,
}

impl<V: Clone + Send + Sync + 'static> Default for SingleFlight<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V: Clone + Send + Sync + 'static> SingleFlight<V> {
    /// Nothing in flight.
    pub fn new() -> Self {
        Self {
            // Entries live only while a call is in flight; the TTL is a
            // backstop. Keys come from unauthenticated requests (a login's
            // code, up to 1 KiB): weighed, and LRU so a full cache admits a
            // new call rather than refusing it. An evicted entry only stops
            // sharing: the waiters of a call in flight are moka's own.
            calls: Cache::builder()
                .max_capacity(BUDGET)
                .weigher(|key: &String, _| u32::try_from(key.len() + 64).unwrap_or(u32::MAX))
                .eviction_policy(moka::policy::EvictionPolicy::lru())
                .time_to_live(Duration::from_secs(60))
                .build(),
        }
    }

    /// `call`'s result, or that of the call for `key` already in flight.
    pub async fn run<E, F>(&self, key: &str, call: F) -> Result<V, Arc<E>>
    where
        F: Future<Output = Result<V, E>>,
        E: Send + Sync + 'static,
    {
        let result = self.calls.try_get_with_by_ref(key, call).await;
        self.calls.invalidate(key).await;
        result
    }
}
