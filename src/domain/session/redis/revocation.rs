//! Revocation everywhere within a second: a logout, or a user record that
//! changed (new login, phone number, stale key), is published on the
//! `prefix + "revoke"` channel, and every replica evicts its local copy.
//!
//! Messages name a session by the hash of its id (`s:<hex>`), never the id
//! itself, or a user by key (`u:<openid>` or `u:<appid>:<openid>`). While the subscription is
//! down, replicas keep answering from their local cache what it already
//! holds, for at most `local_ttl`, and cache nothing new (`local`); once
//! it is back, the local cache is cleared, since revocations may have been
//! missed meanwhile.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::task::JoinHandle;

use super::local::LocalCache;
use super::record::hex;
use crate::metrics::StoreMetrics;

pub(super) fn session_message(hash: &[u8; 32]) -> String {
    format!("s:{}", hex(hash))
}

pub(super) fn user_message(key: &str) -> String {
    format!("u:{key}")
}

/// Listens for revocations; `local.subscribed()` tells whether it currently hears them.
pub(super) fn spawn(
    client: redis::Client,
    channel: String,
    local: Arc<LocalCache>,
    metrics: StoreMetrics,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        loop {
            match client.get_async_pubsub().await {
                Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                    Ok(()) => {
                        backoff = Duration::from_millis(100);
                        local.set_subscribed(true);
                        tracing::info!("subscribed to session revocations");
                        let mut messages = pubsub.on_message();
                        while let Some(message) = messages.next().await {
                            if let Ok(text) = message.get_payload::<String>() {
                                apply(&local, &text);
                                // Counted once applied: a test can tell it has taken effect.
                                metrics.revocation_heard();
                            }
                        }
                        local.set_subscribed(false);
                        tracing::warn!(
                            "revocation subscription lost; serving from the local cache"
                        );
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot subscribe to revocations"),
                },
                Err(e) => tracing::debug!(error = %e, "cannot connect for revocations"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    })
}

fn apply(local: &LocalCache, message: &str) {
    if let Some(hex_hash) = message.strip_prefix("s:") {
        if let Some(hash) = unhex(hex_hash) {
            local.evict_session(&hash);
        }
    } else if let Some(key) = message.strip_prefix("u:") {
        local.evict_user(key);
    }
}

fn unhex(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if text.len() != 64 {
        return None;
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_messages_round_trip() {
        let hash = [0xab; 32];
        let message = session_message(&hash);
        assert_eq!(unhex(message.strip_prefix("s:").unwrap()), Some(hash));
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex(&"g".repeat(64)), None);
    }
}
