//! The store the config asks for, dispatched without boxing: memory or
//! Redis behind one [`SessionStore`].

use std::sync::Arc;
use std::time::Duration;

use super::{
    AppTag, FleetSecrets, MemoryStore, PendingLogin, RedisStore, Resolved, SessionId, SessionStore,
    StoreError, UserRecord, UserUpdate,
};
use crate::metrics::StoreMetrics;
use crate::telemetry::{self, KeyValue, Span, SpanKind};

/// The store the config asks for. An enum rather than a trait object: the
/// request path stays free of boxed futures. (Boxed: built once, large.)
pub enum Sessions {
    /// One replica's memory.
    Memory(MemoryStore),
    /// Redis, shared by the fleet.
    Redis(Box<RedisStore>),
}

impl Sessions {
    /// The store `config` names.
    pub fn new(config: &crate::Config, metrics: StoreMetrics) -> Result<Self, StoreError> {
        Ok(match &config.store {
            crate::config::StoreConfig::Memory => Self::Memory(MemoryStore::new(
                &config.session,
                metrics,
                config.assertion.is_some(),
            )),
            crate::config::StoreConfig::Redis(redis) => {
                let apps = config.apps.iter().map(AppTag::of).collect();
                Self::Redis(Box::new(RedisStore::new(
                    redis,
                    &config.session,
                    apps,
                    metrics,
                    config.assertion.is_some(),
                )?))
            }
        })
    }

    /// The secrets the fleet shares through Redis; none in memory mode,
    /// where this replica is the fleet.
    pub fn fleet_secrets(&self) -> Option<FleetSecrets> {
        match self {
            Self::Memory(_) => None,
            Self::Redis(redis) => Some(redis.fleet_secrets()),
        }
    }

    /// Sessions held in this process (memory store); 0 with Redis, whose
    /// own metrics tell how many keys it holds.
    pub async fn live(&self) -> u64 {
        match self {
            Self::Memory(memory) => memory.live().await,
            Self::Redis(_) => 0,
        }
    }

    /// [`SessionStore::resolve`] in a span of its own; its child, when
    /// there is one, the Redis round trip past the cache.
    async fn resolve_traced(&self, id: &SessionId) -> Result<Option<Resolved>, StoreError> {
        let span = Span::start(SpanKind::Internal, || {
            let store = match self {
                Self::Memory(_) => "memory",
                Self::Redis(_) => "redis",
            };
            let attributes = vec![KeyValue::new("wxgate.session.store", store)];
            ("session lookup".into(), attributes)
        });
        let resolved = match self {
            Self::Memory(s) => s.resolve(id).await,
            Self::Redis(s) => span.wrap(s.resolve(id)).await,
        };
        match &resolved {
            Ok(found) => span.set(KeyValue::new("wxgate.session.found", found.is_some())),
            Err(_) => span.fail("store_unavailable"),
        }
        resolved
    }

    /// The store's state as `/readyz` names it: `memory` (always there),
    /// `up` or `down` (Redis, as its health check last found it).
    pub fn state(&self) -> &'static str {
        match self {
            Self::Memory(_) => "memory",
            Self::Redis(redis) if redis.up() => "up",
            Self::Redis(_) => "down",
        }
    }
}

impl SessionStore for Sessions {
    async fn login(&self, user: UserRecord) -> Result<(SessionId, Arc<UserRecord>), StoreError> {
        match self {
            Self::Memory(s) => s.login(user).await,
            Self::Redis(s) => s.login(user).await,
        }
    }

    async fn resolve(&self, id: &SessionId) -> Result<Option<Resolved>, StoreError> {
        // Boxed: the span kept across the lookup would enlarge every
        // request's future, traced or not (this is the hot path).
        if telemetry::started() {
            return Box::pin(self.resolve_traced(id)).await;
        }
        match self {
            Self::Memory(s) => s.resolve(id).await,
            Self::Redis(s) => s.resolve(id).await,
        }
    }

    async fn logout(&self, id: &SessionId) -> Result<(), StoreError> {
        match self {
            Self::Memory(s) => s.logout(id).await,
            Self::Redis(s) => s.logout(id).await,
        }
    }

    async fn update_user(
        &self,
        key: &str,
        update: UserUpdate,
    ) -> Result<Option<Arc<UserRecord>>, StoreError> {
        match self {
            Self::Memory(s) => s.update_user(key, update).await,
            Self::Redis(s) => s.update_user(key, update).await,
        }
    }

    async fn user(&self, key: &str) -> Result<Option<Arc<UserRecord>>, StoreError> {
        match self {
            Self::Memory(s) => s.user(key).await,
            Self::Redis(s) => s.user(key).await,
        }
    }

    async fn revoke_user(&self, key: &str) -> Result<bool, StoreError> {
        match self {
            Self::Memory(s) => s.revoke_user(key).await,
            Self::Redis(s) => s.revoke_user(key).await,
        }
    }

    async fn put_pending(
        &self,
        state: &str,
        pending: PendingLogin,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        match self {
            Self::Memory(s) => s.put_pending(state, pending, ttl).await,
            Self::Redis(s) => s.put_pending(state, pending, ttl).await,
        }
    }

    async fn take_pending(&self, state: &str) -> Result<Option<PendingLogin>, StoreError> {
        match self {
            Self::Memory(s) => s.take_pending(state).await,
            Self::Redis(s) => s.take_pending(state).await,
        }
    }

    async fn forget_pending(&self, hash: &[u8; 32]) -> Result<(), StoreError> {
        match self {
            Self::Memory(s) => s.forget_pending(hash).await,
            Self::Redis(s) => s.forget_pending(hash).await,
        }
    }
}
