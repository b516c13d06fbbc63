//! Browser logins in flight: what the start route saved for the callback.
//!
//! The start route (`endpoints::web_login`) makes a random `state`, sends
//! it to WeChat and in a short-lived cookie, and files a [`PendingLogin`]
//! under its hash for `web.state_ttl`. The callback takes it back — once:
//! a second take of the same state finds nothing, so a replayed callback is
//! refused however it got the state and the cookie. In the store, so a
//! callback that lands on another replica finds it (Redis `GETDEL`).
//!
//! The start route is unauthenticated, so what it files is bounded three
//! ways, and a flood evicts rather than locks out (docs/web-login.md has
//! the figures):
//! - each entry: `redirect` at most [`REDIRECT_LIMIT`] bytes, so a filed
//!   login weighs at most about 1.2 KB, in memory and in Redis alike;
//! - per client ([`ClientQuota`]): only its [`PER_CLIENT`] newest logins
//!   in flight are kept; an older one is dropped from the store, so one
//!   address cannot fill the store with its own;
//! - in total (memory store): [`MEMORY_BUDGET`] bytes, least recently
//!   filed evicted first (LRU, never refused at admission: moka's default
//!   TinyLFU would turn away new logins once full). Redis entries expire
//!   with `state_ttl`; its memory is the operator's `maxmemory`.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::policy::EvictionPolicy;
use moka::sync::Cache;
use sha2::{Digest, Sha256};

/// Longest `redirect` a login may come back to (a same-site path and query).
pub const REDIRECT_LIMIT: usize = 1024;
/// Logins in flight kept per client (an IPv4 address, an IPv6 /64): a
/// browser has one or two; a NAT in front of a few people logging in at
/// the same moment a few more.
pub const PER_CLIENT: usize = 8;
/// Clients whose logins in flight are counted at once.
pub(super) const QUOTA_CLIENTS: u64 = 16_384;
/// The memory store's logins in flight, in bytes (weighed per entry).
pub(super) const MEMORY_BUDGET: u64 = 16 * 1024 * 1024;
/// What an entry costs beyond its strings: key, deadline, moka's node.
const ENTRY_OVERHEAD: usize = 160;

/// What the callback needs from the start of its login.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PendingLogin {
    /// The app the user is logging in to.
    pub appid: String,
    /// Where the browser goes once logged in (a same-site path, checked,
    /// at most [`REDIRECT_LIMIT`] bytes).
    pub redirect: String,
}

impl PendingLogin {
    /// The bytes the entry holds in memory, for the memory budget.
    pub fn weight(&self) -> usize {
        ENTRY_OVERHEAD + self.appid.len() + self.redirect.len()
    }
}

/// The name a state is filed under: its hash, so a dump shows no state.
pub(super) fn state_hash(state: &str) -> [u8; 32] {
    Sha256::digest(state.as_bytes()).into()
}

/// A filed login and how long it may wait for its callback.
#[derive(Clone)]
struct Filed {
    deadline: Instant,
    ttl: Duration,
    pending: PendingLogin,
}

/// Each entry lives its own `state_ttl`, not a fixed backstop.
struct UntilDeadline;

impl Expiry<[u8; 32], Filed> for UntilDeadline {
    fn expire_after_create(&self, _: &[u8; 32], filed: &Filed, _: Instant) -> Option<Duration> {
        Some(filed.ttl)
    }
}

/// The memory store's pending logins.
pub(super) struct PendingLogins {
    cache: Cache<[u8; 32], Filed>,
}

impl Default for PendingLogins {
    fn default() -> Self {
        Self::with_budget(MEMORY_BUDGET)
    }
}

impl PendingLogins {
    fn with_budget(bytes: u64) -> Self {
        Self {
            cache: Cache::builder()
                .max_capacity(bytes)
                .weigher(|_, filed: &Filed| {
                    u32::try_from(filed.pending.weight()).unwrap_or(u32::MAX)
                })
                .eviction_policy(EvictionPolicy::lru())
                .expire_after(UntilDeadline)
                .build(),
        }
    }

    pub(super) fn put(&self, state: &str, pending: PendingLogin, ttl: Duration) {
        let filed = Filed {
            deadline: Instant::now() + ttl,
            ttl,
            pending,
        };
        self.cache.insert(state_hash(state), filed);
    }

    pub(super) fn take(&self, state: &str) -> Option<PendingLogin> {
        let filed = self.cache.remove(&state_hash(state))?;
        (Instant::now() < filed.deadline).then_some(filed.pending)
    }

    pub(super) fn forget(&self, hash: &[u8; 32]) {
        self.cache.invalidate(hash);
    }

    /// Entries and their weight, once moka has applied what is pending.
    #[cfg(test)]
    fn usage(&self) -> (u64, u64) {
        self.cache.run_pending_tasks();
        (self.cache.entry_count(), self.cache.weighted_size())
    }
}

/// The newest [`PER_CLIENT`] logins in flight of each client, by state
/// hash: filing one more hands back the oldest, which the start route
/// drops from the store. A client the quota forgot (idle for `state_ttl`,
/// or pushed out by `QUOTA_CLIENTS` busier ones) starts counting again.
pub struct ClientQuota {
    clients: Cache<IpAddr, Arc<Mutex<VecDeque<[u8; 32]>>>>,
}

impl ClientQuota {
    /// `ttl`: how long a login may be in flight (`web.state_ttl`).
    pub fn new(ttl: Duration) -> Self {
        Self {
            clients: Cache::builder()
                .max_capacity(QUOTA_CLIENTS)
                .eviction_policy(EvictionPolicy::lru())
                .time_to_idle(ttl)
                .build(),
        }
    }

    /// Counts a new login of `client`; the one it pushes out, if any.
    pub fn file(&self, client: IpAddr, state: &str) -> Option<[u8; 32]> {
        let queue = self.clients.get_with(client, Default::default);
        let mut queue = queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        queue.push_back(state_hash(state));
        (queue.len() > PER_CLIENT)
            .then(|| queue.pop_front())
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(redirect_len: usize) -> PendingLogin {
        PendingLogin {
            appid: "wxapp".into(),
            redirect: format!("/{}", "r".repeat(redirect_len.saturating_sub(1))),
        }
    }

    #[test]
    fn a_full_store_evicts_the_oldest_and_keeps_taking_new_logins() {
        let logins = PendingLogins::with_budget(100 * login(REDIRECT_LIMIT).weight() as u64);
        let ttl = Duration::from_secs(600);
        for n in 0..1_000 {
            logins.put(&format!("flood-{n}"), login(REDIRECT_LIMIT), ttl);
        }
        logins.put("honest", login(10), ttl);
        let (entries, weight) = logins.usage();
        assert!(entries <= 101, "{entries}");
        assert!(weight <= 100 * login(REDIRECT_LIMIT).weight() as u64);
        assert_eq!(
            logins.take("honest"),
            Some(login(10)),
            "a new login is admitted"
        );
        assert_eq!(logins.take("flood-0"), None, "the oldest went");
    }

    #[test]
    fn an_entry_lives_its_own_ttl() {
        let logins = PendingLogins::default();
        logins.put("short", login(1), Duration::from_millis(1));
        logins.put("long", login(1), Duration::from_secs(600));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(logins.take("short"), None);
        assert_eq!(logins.take("long"), Some(login(1)));
        assert_eq!(logins.take("long"), None, "taken once");
    }

    #[test]
    fn a_client_keeps_only_its_newest_logins() {
        let quota = ClientQuota::new(Duration::from_secs(600));
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        for n in 0..PER_CLIENT {
            assert_eq!(quota.file(a, &format!("a{n}")), None);
        }
        assert_eq!(quota.file(a, "a-next"), Some(state_hash("a0")));
        assert_eq!(quota.file(a, "a-again"), Some(state_hash("a1")));
        assert_eq!(quota.file(b, "b0"), None, "another client has its own");
    }
}
