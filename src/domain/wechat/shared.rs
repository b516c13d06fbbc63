//! A credential WeChat issues to an app for hours (the access token, the
//! jsapi_ticket): fetched once, refreshed before it expires, and shared —
//! by every caller in this replica (a mutex held across the fetch) and,
//! with the Redis store, by every replica of the fleet (中控).
//!
//! **Fleet mode.** The fleet's copy in Redis (`session::FleetSecrets`,
//! sealed with the store key) is the only one: every use reads it, so a
//! forced refresh made by one replica is what every other one hands out
//! next. When it is due, the replica that takes the fleet's lock fetches
//! and stores it; the others wait for it (polling every [`POLL`]) or, while
//! the old one is still valid, keep using that. So 200 callers across the
//! fleet cause one fetch. If Redis cannot be reached, the replica falls
//! back to a copy of its own (a warning): `stable_token` hands every
//! caller the same token while it is valid, so this costs calls, not
//! correctness.
//!
//! **Forced refreshes** (`force_refresh: true` invalidates the token for
//! every holder, and WeChat limits them) happen only when WeChat rejected
//! a token that `stable_token` then hands back unchanged, or when a backend
//! reports the current token rejected (`invalidate`); at most one per
//! [`FORCE_INTERVAL`], fleet-wide (a `claim` in Redis).

use std::future::Future;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use super::WeChatError;
use crate::config::secret::Secret;
use crate::domain::session::{FleetLock, FleetSecrets, FleetValue, StoreError};
use crate::telemetry::{KeyValue, Span, SpanKind};

/// Refresh this long before WeChat's stated expiry.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// The least time between two forced refreshes.
const FORCE_INTERVAL: Duration = Duration::from_secs(30);
/// How often a replica waiting for another's fetch looks again.
const POLL: Duration = Duration::from_millis(50);

/// When a credential WeChat says lives `lifetime` is refreshed: 5 minutes
/// early; a short-lived one (never seen from WeChat), halfway.
fn refresh_after(lifetime: Duration) -> Duration {
    lifetime.checked_sub(REFRESH_MARGIN).unwrap_or(lifetime / 2)
}

/// A credential as WeChat issued it.
pub(super) struct Issued {
    pub value: Secret,
    pub lifetime: Duration,
}

struct Held {
    value: Secret,
    lifetime: Duration,
    expires_at: Instant,
}

impl Held {
    fn of(issued: &Issued) -> Self {
        Self {
            value: issued.value.clone(),
            lifetime: issued.lifetime,
            expires_at: Instant::now() + issued.lifetime,
        }
    }

    fn left(&self) -> Duration {
        self.expires_at.saturating_duration_since(Instant::now())
    }
}

/// This replica's copy (memory mode; with Redis, the fallback).
#[derive(Default)]
struct Local {
    held: Option<Held>,
    last_forced: Option<Instant>,
}

impl Local {
    /// Whether a forced refresh is allowed now (and, if so, counts it).
    fn may_force(&mut self) -> bool {
        let allowed = self
            .last_forced
            .is_none_or(|at| at.elapsed() >= FORCE_INTERVAL);
        if allowed {
            self.last_forced = Some(Instant::now());
        }
        allowed
    }
}

/// What the caller needs.
#[derive(Clone, Copy)]
enum Want<'a> {
    /// A credential not due for refresh.
    Current,
    /// Any valid credential but this one (WeChat rejected it).
    Not(&'a Secret),
}

impl Want<'_> {
    /// Whether a credential with `left` of `lifetime` serves. `waiting`:
    /// another replica is fetching, so a due one still serves meanwhile.
    fn served_by(self, value: &Secret, left: Duration, lifetime: Duration, waiting: bool) -> bool {
        if left.is_zero() {
            return false;
        }
        match self {
            Self::Not(rejected) => value != rejected,
            Self::Current => waiting || lifetime.saturating_sub(left) < refresh_after(lifetime),
        }
    }
}

/// One app's credential of one kind.
pub(super) struct SharedCredential {
    /// Its name in the fleet (`{appid}:access_token`); never secret.
    name: String,
    /// The fleet's claim on a forced refresh (`{name}:force`).
    force_claim: String,
    fleet: Option<FleetSecrets>,
    /// Held across a fetch: this replica's callers share one.
    local: Mutex<Local>,
    /// The longest one fetch may take: the fleet lock's expiry, should
    /// its holder die, and the longest a replica waits for another's.
    hold: Duration,
}

impl SharedCredential {
    pub(super) fn new(name: String, fleet: Option<FleetSecrets>, hold: Duration) -> Self {
        Self {
            force_claim: format!("{name}:force"),
            name,
            fleet,
            local: Mutex::default(),
            hold,
        }
    }

    /// A credential not due for refresh, and its time left; `fetch(force)`
    /// asks WeChat when one is due.
    pub(super) async fn current<F, Fut>(&self, fetch: F) -> Result<(Secret, Duration), WeChatError>
    where
        F: Fn(bool) -> Fut,
        Fut: Future<Output = Result<Issued, WeChatError>>,
    {
        self.obtain(Want::Current, &fetch).await
    }

    /// A valid credential other than `rejected`: another caller's
    /// replacement, or a new one (forced if WeChat hands `rejected` back).
    pub(super) async fn replace<F, Fut>(
        &self,
        rejected: &Secret,
        fetch: F,
    ) -> Result<Secret, WeChatError>
    where
        F: Fn(bool) -> Fut,
        Fut: Future<Output = Result<Issued, WeChatError>>,
    {
        let (value, _) = self.obtain(Want::Not(rejected), &fetch).await?;
        Ok(value)
    }

    /// Keeps a credential fetched by the start-up check, in this replica
    /// only: the fleet's copy is written by the lock holder alone.
    pub(super) async fn keep(&self, issued: &Issued) {
        self.local.lock().await.held = Some(Held::of(issued));
    }

    /// A backend reports `reported` rejected by WeChat: if it is still the
    /// current one, a forced refresh replaces it (at most one per
    /// [`FORCE_INTERVAL`] for the fleet). Whether this report did.
    pub(super) async fn invalidate<F, Fut>(
        &self,
        reported: &str,
        fetch: F,
    ) -> Result<bool, WeChatError>
    where
        F: Fn(bool) -> Fut,
        Fut: Future<Output = Result<Issued, WeChatError>>,
    {
        let mut local = self.local.lock().await;
        if let Some(fleet) = &self.fleet {
            match self
                .invalidate_in(fleet, &mut local, reported, &fetch)
                .await
            {
                Ok(done) => return done,
                Err(e) => self.fall_back(&e),
            }
        }
        let current = local
            .held
            .as_ref()
            .is_some_and(|held| held.value.expose() == reported);
        if !current || !local.may_force() {
            return Ok(false);
        }
        tracing::warn!(token = %self.name, "a backend reported it rejected; forcing a refresh");
        let issued = fetch(true).await?;
        local.held = Some(Held::of(&issued));
        Ok(true)
    }

    async fn obtain<F, Fut>(
        &self,
        want: Want<'_>,
        fetch: &F,
    ) -> Result<(Secret, Duration), WeChatError>
    where
        F: Fn(bool) -> Fut,
        Fut: Future<Output = Result<Issued, WeChatError>>,
    {
        let mut local = self.local.lock().await;
        if let Some(fleet) = &self.fleet {
            match self.obtain_in(fleet, &mut local, want, fetch).await {
                Ok(found) => return found,
                Err(e) => self.fall_back(&e),
            }
        }
        if let Some(held) = &local.held
            && want.served_by(&held.value, held.left(), held.lifetime, false)
        {
            return Ok((held.value.clone(), held.left()));
        }
        match fetch_for(&self.name, want, fetch, async { local.may_force() }).await {
            Ok(issued) => {
                local.held = Some(Held::of(&issued));
                Ok((issued.value, issued.lifetime))
            }
            // WeChat failed, but the one held is still valid: it serves.
            Err(e) => match &local.held {
                Some(held) if want.served_by(&held.value, held.left(), held.lifetime, true) => {
                    tracing::warn!(token = %self.name, error = %e, "cannot refresh; the current one serves meanwhile");
                    Ok((held.value.clone(), held.left()))
                }
                _ => Err(e),
            },
        }
    }

    /// The fleet's credential, fetched by this replica if it takes the
    /// lock, else by the one holding it. `Err`: Redis failed (the caller
    /// falls back to its own copy).
    async fn obtain_in<F, Fut>(
        &self,
        fleet: &FleetSecrets,
        local: &mut Local,
        want: Want<'_>,
        fetch: &F,
    ) -> Result<Result<(Secret, Duration), WeChatError>, StoreError>
    where
        F: Fn(bool) -> Fut,
        Fut: Future<Output = Result<Issued, WeChatError>>,
    {
        let deadline = Instant::now() + self.hold;
        loop {
            let seen = fleet.get(&self.name).await?;
            if let Some(found) = served(want, seen.as_ref(), false) {
                return Ok(Ok(found));
            }
            if let Some(lock) = fleet.lock(&self.name, self.hold).await? {
                let result = self.fetch_in(fleet, local, want, fetch).await;
                self.release(fleet, lock).await;
                return Ok(match result? {
                    Err(e) => match served(want, seen.as_ref(), true) {
                        Some(found) => {
                            tracing::warn!(token = %self.name, error = %e, "cannot refresh; the current one serves meanwhile");
                            Ok(found)
                        }
                        None => Err(e),
                    },
                    found => found,
                });
            }
            // Another replica is fetching; a valid one serves meanwhile.
            if let Some(found) = served(want, seen.as_ref(), true) {
                return Ok(Ok(found));
            }
            if Instant::now() >= deadline {
                return Err(StoreError::Unavailable(
                    "the replica holding the fleet's lock did not store a new one".to_owned(),
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Under the fleet's lock: fetches unless another replica stored one
    /// between our read and our lock, and stores it for the fleet.
    async fn fetch_in<F, Fut>(
        &self,
        fleet: &FleetSecrets,
        local: &mut Local,
        want: Want<'_>,
        fetch: &F,
    ) -> Result<Result<(Secret, Duration), WeChatError>, StoreError>
    where
        F: Fn(bool) -> Fut,
        Fut: Future<Output = Result<Issued, WeChatError>>,
    {
        if let Some(found) = served(want, fleet.get(&self.name).await?.as_ref(), false) {
            return Ok(Ok(found));
        }
        let claim = async {
            fleet
                .claim(&self.force_claim, FORCE_INTERVAL)
                .await
                .unwrap_or(false)
        };
        let issued = match fetch_for(&self.name, want, fetch, claim).await {
            Ok(issued) => issued,
            Err(e) => return Ok(Err(e)),
        };
        self.store(fleet, local, &issued).await;
        Ok(Ok((issued.value, issued.lifetime)))
    }

    async fn invalidate_in<F, Fut>(
        &self,
        fleet: &FleetSecrets,
        local: &mut Local,
        reported: &str,
        fetch: &F,
    ) -> Result<Result<bool, WeChatError>, StoreError>
    where
        F: Fn(bool) -> Fut,
        Fut: Future<Output = Result<Issued, WeChatError>>,
    {
        let is_current = |value: Option<FleetValue>| {
            value.is_some_and(|v| !v.left.is_zero() && v.value.expose() == reported)
        };
        if !is_current(fleet.get(&self.name).await?)
            || !fleet.claim(&self.force_claim, FORCE_INTERVAL).await?
        {
            return Ok(Ok(false));
        }
        let deadline = Instant::now() + self.hold;
        let lock = loop {
            if let Some(lock) = fleet.lock(&self.name, self.hold).await? {
                break lock;
            }
            if Instant::now() >= deadline {
                return Err(StoreError::Unavailable(
                    "the fleet's lock was not released".to_owned(),
                ));
            }
            tokio::time::sleep(POLL).await;
        };
        let result = async {
            // Replaced while this waited for the lock: done already.
            if !is_current(fleet.get(&self.name).await?) {
                return Ok(Ok(false));
            }
            tracing::warn!(token = %self.name, "a backend reported it rejected; forcing a refresh");
            match fetch(true).await {
                Ok(issued) => {
                    self.store(fleet, local, &issued).await;
                    Ok(Ok(true))
                }
                Err(e) => Ok(Err(e)),
            }
        }
        .await;
        self.release(fleet, lock).await;
        result
    }

    async fn release(&self, fleet: &FleetSecrets, lock: FleetLock) {
        if let Err(e) = fleet.unlock(lock).await {
            // It expires by itself after `hold`.
            tracing::warn!(token = %self.name, error = %e, "cannot release the fleet's lock");
        }
    }

    /// Stores a fetched credential for the fleet and keeps a copy (the
    /// fallback). A failed write is a warning: the fetch stands.
    async fn store(&self, fleet: &FleetSecrets, local: &mut Local, issued: &Issued) {
        if let Err(e) = fleet.put(&self.name, &issued.value, issued.lifetime).await {
            tracing::warn!(token = %self.name, error = %e, "cannot store it for the fleet");
        }
        local.held = Some(Held::of(issued));
    }

    fn fall_back(&self, e: &StoreError) {
        tracing::warn!(token = %self.name, error = %e, "the fleet's copy is out of reach; using this replica's own");
    }
}

/// The fleet's credential, if it serves `want`.
fn served(want: Want<'_>, seen: Option<&FleetValue>, waiting: bool) -> Option<(Secret, Duration)> {
    seen.filter(|v| want.served_by(&v.value, v.left, v.lifetime, waiting))
        .map(|v| (v.value.clone(), v.left))
}

/// Fetches one; when WeChat hands back the very one it rejected, a forced
/// refresh, if `may_force` (awaited only then) allows one. In a span of
/// its own (the request's that found none valid), WeChat's calls inside.
async fn fetch_for<F, Fut>(
    name: &str,
    want: Want<'_>,
    fetch: &F,
    may_force: impl Future<Output = bool>,
) -> Result<Issued, WeChatError>
where
    F: Fn(bool) -> Fut,
    Fut: Future<Output = Result<Issued, WeChatError>>,
{
    let span = Span::start(SpanKind::Internal, || {
        let (app, token) = name.split_once(':').unwrap_or((name, ""));
        let attributes = vec![
            KeyValue::new("wxgate.app", app.to_owned()),
            KeyValue::new("wxgate.token", token.to_owned()),
        ];
        (format!("fetch {token}").into(), attributes)
    });
    let issued = match span.wrap(fetch(false)).await {
        Ok(issued) => issued,
        Err(e) => {
            span.fail(e.label());
            return Err(e);
        }
    };
    if let Want::Not(rejected) = want
        && issued.value == *rejected
        && may_force.await
    {
        tracing::warn!("WeChat handed back the token it rejected; forcing a refresh");
        span.set(KeyValue::new("wxgate.token.forced", true));
        return span.wrap(fetch(true)).await;
    }
    Ok(issued)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_rule() {
        let hour = Duration::from_secs(3600);
        assert_eq!(refresh_after(2 * hour), 2 * hour - REFRESH_MARGIN);
        assert_eq!(
            refresh_after(Duration::from_secs(60)),
            Duration::from_secs(30)
        );
        let token = Secret::new("t");
        let other = Secret::new("u");
        let life = 2 * hour;
        // Fresh serves; due (inside the margin) only while another fetches.
        assert!(Want::Current.served_by(&token, life, life, false));
        let due = REFRESH_MARGIN - Duration::from_secs(1);
        assert!(!Want::Current.served_by(&token, due, life, false));
        assert!(Want::Current.served_by(&token, due, life, true));
        assert!(!Want::Current.served_by(&token, Duration::ZERO, life, true));
        // Replacing: anything valid but the rejected one.
        assert!(!Want::Not(&token).served_by(&token, life, life, true));
        assert!(Want::Not(&token).served_by(&other, due, life, false));
    }
}
