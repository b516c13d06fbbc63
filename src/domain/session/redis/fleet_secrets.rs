//! Secrets the whole fleet shares through Redis: an app's access token and
//! its jsapi_ticket (`domain::wechat::shared`), so that one replica fetches
//! each from WeChat and every other one reads it (中控).
//!
//! A value lives at `prefix + "c:" + name` (`record::Codec::fleet_key`),
//! sealed with the store key like a session_key, Redis's own expiry set to
//! WeChat's stated lifetime. Who fetches is decided by a lock
//! (`SET … NX PX`, released only by its holder: a compare-and-delete
//! script), which expires by itself if its holder dies mid-fetch. A
//! `claim` (`SET … NX PX` that is never released) lets one replica in an
//! interval do something rate limited, such as a forced refresh. Every
//! command touches one key, so this runs on Redis Cluster too.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::Script;
use serde::{Deserialize, Serialize};

use super::connection::Connector;
use super::millis;
use super::record::{Codec, hex};
use crate::config::secret::Secret;
use crate::domain::session::StoreError;

/// Deletes the lock only if it is still the caller's.
static UNLOCK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        if redis.call('GET', KEYS[1]) == ARGV[1] then
          return redis.call('DEL', KEYS[1])
        end
        return 0
        ",
    )
});

#[derive(Serialize, Deserialize)]
struct Stored {
    /// The value, sealed when a store key is set.
    v: String,
    /// The lifetime WeChat stated, in seconds.
    life: u64,
}

/// A value as the fleet holds it.
#[derive(Debug)]
pub struct FleetValue {
    /// The secret itself.
    pub value: Secret,
    /// Its time left (Redis's expiry).
    pub left: Duration,
    /// The lifetime WeChat stated when it was fetched.
    pub lifetime: Duration,
}

/// A held lock: only its holder's token releases it.
pub struct FleetLock {
    key: String,
    token: String,
}

/// The fleet's shared secrets, in the session store's Redis.
#[derive(Clone)]
pub struct FleetSecrets {
    connector: Arc<Connector>,
    codec: Codec,
}

impl FleetSecrets {
    pub(super) fn new(connector: Arc<Connector>, codec: Codec) -> Self {
        Self { connector, codec }
    }

    /// The value under `name`, if the fleet holds one (unreadable, or
    /// sealed with another key: as good as none, so it is fetched afresh).
    pub async fn get(&self, name: &str) -> Result<Option<FleetValue>, StoreError> {
        let key = self.codec.fleet_key(name);
        let (text, pttl) = self.connector.get_with_pttl(&key).await?;
        let Some(stored) = text.and_then(|t| serde_json::from_str::<Stored>(&t).ok()) else {
            return Ok(None);
        };
        let Some(value) = self.codec.open(&key, "v", &stored.v) else {
            return Ok(None);
        };
        // PTTL is -2 (gone meanwhile) or -1 (no expiry: not written by wxgate).
        let Ok(left) = u64::try_from(pttl) else {
            return Ok(None);
        };
        Ok(Some(FleetValue {
            value: Secret::new(value),
            left: Duration::from_millis(left),
            lifetime: Duration::from_secs(stored.life),
        }))
    }

    /// Stores `value` under `name` for its `lifetime`.
    pub async fn put(
        &self,
        name: &str,
        value: &Secret,
        lifetime: Duration,
    ) -> Result<(), StoreError> {
        let key = self.codec.fleet_key(name);
        let stored = Stored {
            v: self.codec.seal(&key, "v", value.expose())?,
            life: lifetime.as_secs(),
        };
        let text =
            serde_json::to_string(&stored).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let ms = millis(lifetime);
        self.connector
            .run(|mut c| async move {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(&text)
                    .arg("PX")
                    .arg(ms)
                    .query_async::<()>(&mut c)
                    .await
            })
            .await
    }

    /// Takes the lock on `name` for at most `hold`, unless another holds it.
    pub async fn lock(&self, name: &str, hold: Duration) -> Result<Option<FleetLock>, StoreError> {
        let key = self.codec.fleet_key(&format!("{name}:lock"));
        let mut random = [0u8; 16];
        getrandom::fill(&mut random).map_err(StoreError::Random)?;
        let token = hex(&random);
        let taken = self.set_nx(&key, &token, hold).await?;
        Ok(taken.then_some(FleetLock { key, token }))
    }

    /// Releases `lock` if it is still held by its taker (it may have
    /// expired and been taken by another).
    pub async fn unlock(&self, lock: FleetLock) -> Result<(), StoreError> {
        self.connector
            .run(|mut c| async move {
                UNLOCK
                    .key(&lock.key)
                    .arg(&lock.token)
                    .invoke_async::<i64>(&mut c)
                    .await
            })
            .await
            .map(drop)
    }

    /// Whether this caller is the first to claim `name` within `interval`
    /// (fleet-wide).
    pub async fn claim(&self, name: &str, interval: Duration) -> Result<bool, StoreError> {
        let key = self.codec.fleet_key(&format!("{name}:claim"));
        self.set_nx(&key, "1", interval).await
    }

    async fn set_nx(&self, key: &str, value: &str, px: Duration) -> Result<bool, StoreError> {
        let ms = millis(px);
        let set: Option<String> = self
            .connector
            .run(|mut c| async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg(value)
                    .arg("NX")
                    .arg("PX")
                    .arg(ms)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(set.is_some())
    }
}
