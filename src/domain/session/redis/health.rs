//! Whether this replica's Redis link works: a PING every quarter second,
//! and the revocation subscription. Read by `/readyz` (its JSON body, and
//! its status only with `admin.ready_requires_store`), by the
//! `wxgate_store_up` gauge, and logged once per change (warn when it goes,
//! info when it is back), not once per failed request.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::task::JoinHandle;

use super::connection::Connector;
use super::local::LocalCache;
use crate::metrics::StoreMetrics;

const PERIOD: Duration = Duration::from_millis(250);

/// The last check's verdict.
#[derive(Default)]
pub(super) struct Health {
    up: AtomicBool,
}

impl Health {
    pub(super) fn up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }
}

pub(super) fn spawn(
    connector: Arc<Connector>,
    local: Arc<LocalCache>,
    health: Arc<Health>,
    metrics: StoreMetrics,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(PERIOD);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last: Option<bool> = None;
        loop {
            ticks.tick().await;
            let ping = connector
                .run(|mut c| async move { redis::cmd("PING").query_async::<String>(&mut c).await })
                .await;
            let subscribed = local.subscribed();
            let up = ping.is_ok() && subscribed;
            health.up.store(up, Ordering::Release);
            metrics.set_up(up);
            if last != Some(up) {
                match (&ping, up) {
                    (_, true) => tracing::info!("session store reachable"),
                    (Err(e), false) => {
                        tracing::warn!(error = %e, "session store unreachable")
                    }
                    (Ok(_), false) => {
                        tracing::warn!("session store answers, but revocations are not heard yet")
                    }
                }
                last = Some(up);
            }
        }
    })
}
