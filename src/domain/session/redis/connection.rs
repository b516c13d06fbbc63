//! The connection to Redis: one server through redis-rs's
//! `ConnectionManager` (multiplexed, reconnects by itself), or a cluster
//! through its `ClusterConnection`. Both connect lazily, so wxgate starts
//! (not ready) while Redis is still down, and every command is bounded by
//! `redis.command_timeout`.

use crate::metrics::StoreMetrics;
use crate::telemetry::{KeyValue, Span, SpanKind};
use std::future::Future;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use tokio::sync::OnceCell;

use crate::config::{RedisConfig, RedisNodes};
use crate::domain::session::StoreError;

#[derive(Clone)]
pub(super) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(cmd, offset, count),
            Self::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

pub(super) struct Connector {
    single: Option<ConnectionManager>,
    cluster: Option<(ClusterClient, OnceCell<ClusterConnection>)>,
    /// The client pub/sub subscribes with (the first node of a cluster:
    /// PUBLISH reaches every node of a cluster).
    pub pubsub: redis::Client,
    connect_timeout: Duration,
    command_timeout: Duration,
    metrics: StoreMetrics,
}

impl Connector {
    pub(super) fn new(config: &RedisConfig, metrics: StoreMetrics) -> Result<Self, StoreError> {
        let unavailable = |e: redis::RedisError| StoreError::Unavailable(e.to_string());
        let first = match &config.nodes {
            RedisNodes::Single(url) => url,
            RedisNodes::Cluster(urls) => &urls[0],
        };
        let pubsub = redis::Client::open(first.as_str()).map_err(unavailable)?;
        let (single, cluster) = match &config.nodes {
            RedisNodes::Single(_) => {
                let manager_config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(config.connect_timeout))
                    .set_response_timeout(Some(config.command_timeout))
                    .set_max_delay(Duration::from_secs(1));
                let manager =
                    ConnectionManager::new_lazy_with_config(pubsub.clone(), manager_config)
                        .map_err(unavailable)?;
                (Some(manager), None)
            }
            RedisNodes::Cluster(urls) => {
                let client = ClusterClient::builder(urls.iter().map(String::as_str))
                    .connection_timeout(config.connect_timeout)
                    .response_timeout(config.command_timeout)
                    .build()
                    .map_err(unavailable)?;
                (None, Some((client, OnceCell::new())))
            }
        };
        Ok(Self {
            single,
            cluster,
            pubsub,
            connect_timeout: config.connect_timeout,
            command_timeout: config.command_timeout,
            metrics,
        })
    }

    async fn conn(&self) -> Result<Conn, StoreError> {
        if let Some(manager) = &self.single {
            return Ok(Conn::Single(manager.clone()));
        }
        let Some((client, cell)) = &self.cluster else {
            return Err(StoreError::Unavailable("no Redis configured".to_owned()));
        };
        let connection = cell
            .get_or_try_init(|| async {
                match tokio::time::timeout(self.connect_timeout, client.get_async_connection())
                    .await
                {
                    Ok(Ok(connection)) => Ok(connection),
                    Ok(Err(e)) => Err(StoreError::Unavailable(e.to_string())),
                    Err(_) => Err(StoreError::Unavailable(
                        "connecting to the cluster timed out".to_owned(),
                    )),
                }
            })
            .await?;
        Ok(Conn::Cluster(connection.clone()))
    }

    /// `key`'s value and its time left in ms (PTTL: -2 gone, -1 no expiry),
    /// in one round trip.
    pub(super) async fn get_with_pttl(
        &self,
        key: &str,
    ) -> Result<(Option<String>, i64), StoreError> {
        self.run(|mut c| async move {
            redis::pipe()
                .cmd("GET")
                .arg(key)
                .cmd("PTTL")
                .arg(key)
                .query_async(&mut c)
                .await
        })
        .await
    }

    /// Runs `op` on a connection, within the command timeout.
    pub(super) async fn run<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let span = Span::start(SpanKind::Client, || {
            let attributes = vec![KeyValue::new("db.system.name", "redis")];
            ("redis".into(), attributes)
        });
        let started = std::time::Instant::now();
        let result = match self.conn().await {
            Ok(conn) => match tokio::time::timeout(self.command_timeout, op(conn)).await {
                Ok(Ok(value)) => Ok(value),
                Ok(Err(e)) => Err(StoreError::Unavailable(e.to_string())),
                Err(_) => Err(StoreError::Unavailable(format!(
                    "Redis did not answer within {:?}",
                    self.command_timeout
                ))),
            },
            Err(e) => Err(e),
        };
        self.metrics.command(started.elapsed());
        if result.is_err() {
            self.metrics.error();
            span.fail("store_unavailable");
        }
        result
    }
}
