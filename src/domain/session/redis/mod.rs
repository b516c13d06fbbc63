//! Sessions in Redis, shared by every replica, with a local moka cache in
//! front (see `local`) and pub/sub revocation (see `revocation`); and the
//! secrets the fleet shares (`fleet_secrets`).
//!
//! Lifetimes are Redis's own: a session key's expiry is its idle window
//! capped by its absolute end (`SET … PX`), re-armed with `PEXPIRE` at most
//! once per `idle/10` — decided from the key's `PTTL`, so replicas need no
//! shared bookkeeping. A user record expires `ttl` after the user's newest
//! login, so it outlives every session pointing to it.
//!
//! **The guarantee.** After `POST /logout` or an admin logout has answered,
//! no replica serves the session once the revocation message has reached
//! it — not even from a read that was already in flight there when the
//! logout landed (`local`: reads take a ticket, and what they bring back
//! is dropped if a revocation came meanwhile); the same holds for user
//! records, so a key rotation never goes back to an older key. A replica
//! whose pub/sub link is down caches nothing new and serves nothing from
//! its local cache for longer than `local_ttl`.
//!
//! Every script touches one key, so the same code runs on Redis Cluster.
//! Any Redis failure is `StoreError::Unavailable` (503 with `Retry-After`),
//! never a 401: telling clients their session is gone during an outage
//! would send every one of them into a re-login storm.

mod connection;
mod fleet_secrets;
mod health;
mod local;
mod record;
mod revocation;

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::Script;
use tokio::task::JoinHandle;

use super::pending::state_hash;
use super::{
    AppTag, PendingLogin, Resolved, SessionId, SessionStore, StoreError, UserRecord, UserUpdate,
    now_ms,
};
use crate::config::{RedisConfig, SessionConfig};
use crate::domain::session::cache::Hit;
use crate::metrics::{Layer, StoreMetrics};
use connection::Connector;
pub use fleet_secrets::{FleetLock, FleetSecrets, FleetValue};
use health::Health;
use local::{LocalCache, Ticket};
use record::{Codec, key_id, session_hash};

/// Stores the user's new record, keeping the phone number, unionid and
/// bound id of the record it replaces, and always its generation.
static LOGIN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local new = cjson.decode(ARGV[1])
        local old = redis.call('GET', KEYS[1])
        if old then
          local ok, o = pcall(cjson.decode, old)
          if ok then
            if new.phone == nil then new.phone = o.phone end
            if new.unionid == nil then new.unionid = o.unionid end
            if new.uid == nil then new.uid = o.uid end
            if new.prof == nil then new.prof = o.prof end
            new.gen = o.gen
          end
        end
        local text = cjson.encode(new)
        redis.call('SET', KEYS[1], text, 'PX', ARGV[2])
        return text
        ",
    )
});

/// Sets the phone or the bound id, or marks the key stale if it is still
/// the one checked.
static UPDATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local old = redis.call('GET', KEYS[1])
        if not old then return false end
        local u = cjson.decode(old)
        if ARGV[1] == 'phone' then
          u.phone = ARGV[2]
        elseif ARGV[1] == 'uid' then
          u.uid = ARGV[2]
        elseif u.kid == ARGV[2] and not u.stale then
          u.stale = true
        else
          return old
        end
        local text = cjson.encode(u)
        redis.call('SET', KEYS[1], text, 'KEEPTTL')
        return text
        ",
    )
});

/// Raises the user's generation: every session opened before no longer
/// resolves. 0 when there is no record.
static REVOKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local old = redis.call('GET', KEYS[1])
        if not old then return 0 end
        local u = cjson.decode(old)
        u.gen = (tonumber(u.gen) or 0) + 1
        redis.call('SET', KEYS[1], cjson.encode(u), 'KEEPTTL')
        return 1
        ",
    )
});

/// Sessions and users in Redis, with a moka cache in front.
pub struct RedisStore {
    connector: Arc<Connector>,
    codec: Codec,
    local: Arc<LocalCache>,
    ttl: Duration,
    idle: Option<Duration>,
    listener: JoinHandle<()>,
    health: Arc<Health>,
    health_check: JoinHandle<()>,
    /// `session.stale_if_error` is on: the local cache keeps entries past
    /// `local_ttl`, served only while Redis cannot be reached.
    serves_stale: bool,
    metrics: StoreMetrics,
}

impl RedisStore {
    /// Connects lazily: Redis may still be down.
    /// `apps`: the configured apps; records of others read as missing.
    pub fn new(
        redis: &RedisConfig,
        session: &SessionConfig,
        apps: Vec<AppTag>,
        metrics: StoreMetrics,
        assertions: bool,
    ) -> Result<Self, StoreError> {
        let connector = Arc::new(Connector::new(redis, metrics.clone())?);
        let codec = Codec::new(&redis.key_prefix, redis.store_key.as_ref(), apps);
        // An active session must reach Redis at least once per idle/10, or
        // its idle timer there would run out while the local cache serves it.
        let local_ttl = match session.idle {
            Some(idle) => redis.local_ttl.min(idle / 10),
            None => redis.local_ttl,
        };
        let stale = redis.stale_if_error.unwrap_or_default();
        let local = Arc::new(LocalCache::new(
            local_ttl,
            stale,
            session.capacity,
            assertions,
        ));
        let listener = revocation::spawn(
            connector.pubsub.clone(),
            codec.channel(),
            local.clone(),
            metrics.clone(),
        );
        let health = Arc::new(Health::default());
        let health_check = health::spawn(
            connector.clone(),
            local.clone(),
            health.clone(),
            metrics.clone(),
        );
        Ok(Self {
            connector,
            codec,
            local,
            ttl: session.ttl,
            idle: session.idle,
            listener,
            health,
            health_check,
            serves_stale: !stale.is_zero(),
            metrics,
        })
    }

    /// The fleet's shared secrets (an app's access token and jsapi_ticket),
    /// on this store's connection and sealed with its key.
    pub fn fleet_secrets(&self) -> FleetSecrets {
        FleetSecrets::new(self.connector.clone(), self.codec.clone())
    }

    /// Up: Redis answered the last PING (every quarter second) within the
    /// command timeout, and this replica hears revocations.
    pub fn up(&self) -> bool {
        self.health.up()
    }

    async fn publish(&self, message: String) {
        let channel = self.codec.channel();
        let published = self
            .connector
            .run(|mut c| async move {
                redis::cmd("PUBLISH")
                    .arg(&channel)
                    .arg(&message)
                    .query_async::<i64>(&mut c)
                    .await
            })
            .await;
        if let Err(e) = published {
            // The write itself succeeded; other replicas catch up within local_ttl.
            tracing::warn!(error = %e, "cannot publish a revocation");
        }
    }

    /// The user's record, from the local cache or Redis; a Redis read is
    /// cached only if no revocation came since `ticket` (taken before the
    /// read this one is part of).
    async fn load_user(
        &self,
        user_key: &str,
        ticket: Ticket,
    ) -> Result<Option<Arc<UserRecord>>, StoreError> {
        if let Some(user) = self.local.user(user_key) {
            return Ok(Some(user));
        }
        let key = self.codec.user_key(user_key);
        let text: Option<String> = self
            .connector
            .run(|mut c| async move { redis::cmd("GET").arg(&key).query_async(&mut c).await })
            .await?;
        let Some(user) = text.and_then(|t| self.codec.parse_user(&t)) else {
            return Ok(None);
        };
        Ok(Some(self.local.put_read_user(user, ticket)))
    }

    /// The session from Redis (and its user), cached locally when found.
    async fn read_session(
        &self,
        id: &SessionId,
        hash: [u8; 32],
    ) -> Result<Option<Resolved>, StoreError> {
        // Taken before the read: a logout landing while it is in flight
        // must not be undone by caching what it found.
        let ticket = self.local.ticket();
        let key = self.codec.session_key(&hash);
        let (text, pttl) = self.connector.get_with_pttl(&key).await?;
        let session = text.and_then(|t| self.codec.parse_session(&t));
        let now = now_ms();
        let live = session.filter(|s| s.e > now && pttl > 0);
        self.metrics.lookup(Layer::Redis, live.is_some());
        let Some(session) = live else {
            return Ok(None);
        };
        let mut left = Duration::from_millis(pttl as u64);
        if let Some(idle) = self.idle {
            let wanted = idle.min(Duration::from_millis(session.e - now));
            if wanted.saturating_sub(left) >= idle / 10 {
                let ms = millis(wanted);
                let key = self.codec.session_key(&hash);
                // PEXPIRE on a key deleted meanwhile is a no-op: no resurrection.
                self.connector
                    .run(|mut c| async move {
                        redis::cmd("PEXPIRE")
                            .arg(&key)
                            .arg(ms)
                            .query_async::<i64>(&mut c)
                            .await
                    })
                    .await?;
                left = wanted;
            }
        }
        let Some(user) = self
            .load_user(&session.o, ticket)
            .await?
            .filter(|user| user.generation == session.g)
        else {
            return Ok(None);
        };
        let tokens = self.local.put_session(hash, &session.o, left, ticket);
        Ok(Some(Resolved {
            id: *id,
            user,
            expires_in: left,
            tokens,
        }))
    }
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        self.listener.abort();
        self.health_check.abort();
    }
}

fn millis(d: Duration) -> u64 {
    d.as_millis().clamp(1, u64::MAX as u128) as u64
}

impl SessionStore for RedisStore {
    async fn put_pending(
        &self,
        state: &str,
        pending: PendingLogin,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let key = self.codec.pending_key(&state_hash(state));
        let value =
            serde_json::to_string(&pending).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        self.connector
            .run(|mut c| async move {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(&value)
                    .arg("PX")
                    .arg(ms)
                    .query_async::<()>(&mut c)
                    .await
            })
            .await
    }

    async fn take_pending(&self, state: &str) -> Result<Option<PendingLogin>, StoreError> {
        let key = self.codec.pending_key(&state_hash(state));
        let taken: Option<String> = self
            .connector
            .run(|mut c| async move {
                redis::cmd("GETDEL")
                    .arg(&key)
                    .query_async::<Option<String>>(&mut c)
                    .await
            })
            .await?;
        // Unreadable (another version's format): as good as missing.
        Ok(taken.and_then(|text| serde_json::from_str(&text).ok()))
    }

    async fn forget_pending(&self, hash: &[u8; 32]) -> Result<(), StoreError> {
        let key = self.codec.pending_key(hash);
        self.connector
            .run(|mut c| async move { redis::cmd("DEL").arg(&key).query_async::<()>(&mut c).await })
            .await
    }

    async fn login(&self, user: UserRecord) -> Result<(SessionId, Arc<UserRecord>), StoreError> {
        let id = SessionId::generate().map_err(StoreError::Random)?;
        let hash = session_hash(&id);
        let openid = user.key().to_owned();
        let (user_key, user_text) = (self.codec.user_key(&openid), self.codec.user(&user)?);
        let ttl_ms = millis(self.ttl);
        let stored: String = self
            .connector
            .run(|mut c| async move {
                LOGIN
                    .key(&user_key)
                    .arg(&user_text)
                    .arg(ttl_ms)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        let stored = self.codec.parse_user(&stored).ok_or_else(|| {
            StoreError::Unavailable("the stored user record is unreadable".to_owned())
        })?;

        let session_key = self.codec.session_key(&hash);
        // The generation as stored: a revocation racing this login wins.
        let session = self.codec.session(&stored, now_ms() + ttl_ms);
        let px = millis(self.idle.map_or(self.ttl, |idle| idle.min(self.ttl)));
        self.connector
            .run(|mut c| async move {
                redis::cmd("SET")
                    .arg(&session_key)
                    .arg(&session)
                    .arg("PX")
                    .arg(px)
                    .query_async::<()>(&mut c)
                    .await
            })
            .await?;

        self.publish(revocation::user_message(&openid)).await;
        // In place: this replica's cached sessions of the user see the new key.
        Ok((id, self.local.put_written_user(stored)))
    }

    async fn resolve(&self, id: &SessionId) -> Result<Option<Resolved>, StoreError> {
        let hash = session_hash(id);
        let hit = self.local.get(&hash);
        let fresh = hit.as_ref().is_some_and(|hit| hit.fresh);
        self.metrics.lookup(Layer::Local, fresh);
        let resolved = |hit: Hit| Resolved {
            id: *id,
            user: hit.user,
            expires_in: hit.expires_in,
            tokens: hit.tokens,
        };
        match hit {
            Some(hit) if hit.fresh => Ok(Some(resolved(hit))),
            // Past local_ttl (`stale_if_error`): Redis decides, unless it cannot.
            Some(stale) => match self.read_session(id, hash).await {
                Err(StoreError::Unavailable(_)) if self.serves_stale => {
                    self.metrics.stale_served();
                    Ok(Some(resolved(stale)))
                }
                read => read,
            },
            None => self.read_session(id, hash).await,
        }
    }
    async fn logout(&self, id: &SessionId) -> Result<(), StoreError> {
        let hash = session_hash(id);
        let key = self.codec.session_key(&hash);
        self.connector
            .run(
                |mut c| async move { redis::cmd("DEL").arg(&key).query_async::<i64>(&mut c).await },
            )
            .await?;
        self.local.evict_session(&hash);
        self.publish(revocation::session_message(&hash)).await;
        Ok(())
    }

    async fn update_user(
        &self,
        user_key: &str,
        update: UserUpdate,
    ) -> Result<Option<Arc<UserRecord>>, StoreError> {
        let (op, value) = match &update {
            UserUpdate::SetPhone(phone) => ("phone", self.codec.phone(user_key, phone)?),
            UserUpdate::SetUserId(id) => ("uid", self.codec.user_id(user_key, id)?),
            UserUpdate::KeyStale { key } => ("stale", key_id(key)),
        };
        let key = self.codec.user_key(user_key);
        let stored: Option<String> = self
            .connector
            .run(|mut c| async move {
                UPDATE
                    .key(&key)
                    .arg(op)
                    .arg(&value)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        self.local.evict_user(user_key);
        self.publish(revocation::user_message(user_key)).await;
        Ok(stored.and_then(|t| self.codec.parse_user(&t)).map(Arc::new))
    }

    async fn user(&self, user_key: &str) -> Result<Option<Arc<UserRecord>>, StoreError> {
        self.load_user(user_key, self.local.ticket()).await
    }

    async fn revoke_user(&self, user_key: &str) -> Result<bool, StoreError> {
        let key = self.codec.user_key(user_key);
        let existed: i64 = self
            .connector
            .run(|mut c| async move { REVOKE.key(&key).invoke_async(&mut c).await })
            .await?;
        // Every replica drops its copy; their next lookup meets the new generation.
        self.local.evict_user(user_key);
        self.publish(revocation::user_message(user_key)).await;
        Ok(existed == 1)
    }
}
