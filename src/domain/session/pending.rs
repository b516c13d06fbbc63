//! Browser logins in flight: what the start route saved for the callback.
//!
//! The start route (`endpoints::web_login`) makes a random `state`, sends
//! it to WeChat and in a short-lived cookie, and files a [`PendingLogin`]
//! under its hash for `web.state_ttl`. The callback takes it back — once:
//! a second take of the same state finds nothing, so a replayed callback is
//! refused however it got the state and the cookie. In the store, so a
//! callback that lands on another replica finds it (Redis `GETDEL`).

use std::time::{Duration, Instant};

use moka::sync::Cache;
use sha2::{Digest, Sha256};

/// What the callback needs from the start of its login.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PendingLogin {
    /// The app the user is logging in to.
    pub appid: String,
    /// Where the browser goes once logged in (a same-site path, checked).
    pub redirect: String,
}

/// The name a state is filed under: its hash, so a dump shows no state.
pub fn state_hash(state: &str) -> [u8; 32] {
    Sha256::digest(state.as_bytes()).into()
}

/// The memory store's pending logins.
pub struct PendingLogins {
    /// Bounded: the start route is unauthenticated (and rate limited per
    /// client IP); a flood beyond this evicts the oldest logins in flight.
    cache: Cache<[u8; 32], (Instant, PendingLogin)>,
}

/// Logins in flight held at once by one replica.
const CAPACITY: u64 = 100_000;

impl Default for PendingLogins {
    fn default() -> Self {
        Self {
            cache: Cache::builder()
                .max_capacity(CAPACITY)
                // A backstop; each entry's own deadline is checked at take.
                .time_to_live(Duration::from_secs(3600))
                .build(),
        }
    }
}

impl PendingLogins {
    pub fn put(&self, state: &str, pending: PendingLogin, ttl: Duration) {
        self.cache
            .insert(state_hash(state), (Instant::now() + ttl, pending));
    }

    pub fn take(&self, state: &str) -> Option<PendingLogin> {
        let (deadline, pending) = self.cache.remove(&state_hash(state))?;
        (Instant::now() < deadline).then_some(pending)
    }
}
