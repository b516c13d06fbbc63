//! `/login` rate limit per client IP (governor's GCRA): past `[login]
//! burst` attempts, one more every `1 / rate` seconds; beyond that, 429
//! `login_rate_limited` with `Retry-After`, and no call to WeChat.
//!
//! Why: every login costs a `jscode2session` call made with the app's
//! credentials, against the app's WeChat quota. Without a limit one client
//! posting made-up codes spends that quota for every real user.
//!
//! The client is `wire::client_ip`'s: the peer, or what a trusted proxy
//! says, counted by its `bucket` (IPv6 per /64, the block one host usually
//! holds, so rotating addresses within it does not help).
//!
//! Behind a proxy that `server.trusted_proxies` does not name, every
//! client arrives from the proxy's address and shares one bucket: at peak,
//! real users get 429s (`proxy::forwarded::UntrustedForwarded` says so).
//!
//! Memory stays bounded under a flood of distinct addresses: governor's
//! per-key state lives in a moka cache of [`MAX_CLIENTS`] entries (LRU),
//! each forgotten once idle long enough to have refilled (forgetting it
//! then changes nothing). A flood wider than that can reset the oldest
//! clients' buckets; `wechat.max_in_flight` still bounds the WeChat calls.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed, StateStore};
use governor::{Quota, RateLimiter};
use moka::sync::Cache;

use crate::config::LoginConfig;
use crate::wire::client_ip::bucket;

/// Clients whose buckets are remembered at once (~200 bytes each).
pub(crate) const MAX_CLIENTS: u64 = 65_536;

/// governor's per-key state, in a bounded moka cache.
pub(crate) struct BoundedClients(Cache<IpAddr, Arc<InMemoryState>>);

impl StateStore for BoundedClients {
    type Key = IpAddr;

    fn measure_and_replace<T, F, E>(&self, key: &IpAddr, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let state = self.0.get_with(*key, Default::default);
        state.measure_and_replace(&NotKeyed::NonKey, f)
    }
}

pub(crate) struct LoginLimiter {
    limiter: RateLimiter<IpAddr, BoundedClients, DefaultClock, NoOpMiddleware>,
    clock: DefaultClock,
    /// The same cache as inside `limiter` (moka caches share on clone).
    #[cfg(test)]
    clients: Cache<IpAddr, Arc<InMemoryState>>,
}

impl LoginLimiter {
    pub(crate) fn new(config: &LoginConfig) -> Self {
        let quota = Quota::with_period(config.period)
            .unwrap_or_else(|| Quota::per_second(config.burst))
            .allow_burst(config.burst);
        // Idle this long, a bucket is full again: forgetting it is harmless.
        let refill = config.period.saturating_mul(config.burst.get());
        let clients = Cache::builder()
            .max_capacity(MAX_CLIENTS)
            .eviction_policy(moka::policy::EvictionPolicy::lru())
            .time_to_idle(refill.max(Duration::from_secs(1)))
            .build();
        let clock = DefaultClock::default();
        Self {
            limiter: RateLimiter::new(quota, BoundedClients(clients.clone()), clock.clone()),
            clock,
            #[cfg(test)]
            clients,
        }
    }

    /// Counts an attempt; `Err(wait)` when the client must wait first.
    pub(crate) fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        self.limiter
            .check_key(&bucket(ip))
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU32;

    #[test]
    fn a_burst_then_the_rate_per_client() {
        let limiter = LoginLimiter::new(&LoginConfig {
            period: Duration::from_secs(10),
            burst: NonZeroU32::new(3).unwrap(),
        });
        let a: IpAddr = "198.51.100.1".parse().unwrap();
        let b: IpAddr = "198.51.100.2".parse().unwrap();
        for _ in 0..3 {
            assert!(limiter.check(a).is_ok());
        }
        let wait = limiter.check(a).unwrap_err();
        assert!(
            wait > Duration::from_secs(8) && wait <= Duration::from_secs(10),
            "{wait:?}"
        );
        assert!(
            limiter.check(b).is_ok(),
            "another client has its own bucket"
        );
    }

    #[test]
    fn ipv6_clients_count_per_slash_64() {
        let limiter = LoginLimiter::new(&LoginConfig {
            period: Duration::from_secs(10),
            burst: NonZeroU32::new(1).unwrap(),
        });
        assert!(limiter.check("2001:db8:1:2::1".parse().unwrap()).is_ok());
        assert!(
            limiter
                .check("2001:db8:1:2:ffff::9".parse().unwrap())
                .is_err()
        );
        assert!(limiter.check("2001:db8:1:3::1".parse().unwrap()).is_ok());
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_of_addresses() {
        let limiter = LoginLimiter::new(&LoginConfig {
            period: Duration::from_secs(1),
            burst: NonZeroU32::new(100).unwrap(),
        });
        for n in 0..(MAX_CLIENTS as u32 + 20_000) {
            let _ = limiter.check(IpAddr::from(n.to_be_bytes()));
        }
        limiter.clients.run_pending_tasks();
        assert!(limiter.clients.entry_count() <= MAX_CLIENTS);
    }
}
