//! The app's access token, from `cgi-bin/stable_token`.
//!
//! One token serves every caller. It is refreshed on demand once it is
//! within five minutes of expiry, and the mutex is held across the refresh,
//! so concurrent callers share ONE request instead of stampeding WeChat.
//!
//! When an API rejects the token (40001 invalid, 42001 expired),
//! [`AccessTokens::call`] replaces it and retries once. The replacement is a
//! normal `stable_token` call; only if WeChat hands back the very token that
//! was just rejected does it ask with `force_refresh: true` — which
//! invalidates the token for every other holder and is rate limited by
//! WeChat — and never more often than every 30 seconds.

use std::future::Future;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::json;
use tokio::sync::Mutex;

use super::SharedSecret;
use super::api::ApiClient;
use super::{WeChatError, errcode};
use crate::config::secret::Secret;

/// Refresh this long before WeChat's stated expiry.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// When a credential WeChat says lives `lifetime` is refreshed: 5 minutes
/// early; for a (never seen) short-lived one, halfway. The access token's
/// rule, and the jsapi_ticket's.
pub(super) fn refresh_after(lifetime: Duration) -> Duration {
    lifetime.checked_sub(REFRESH_MARGIN).unwrap_or(lifetime / 2)
}

/// The least time between two forced refreshes.
const FORCE_INTERVAL: Duration = Duration::from_secs(30);

#[derive(Deserialize)]
struct Reply {
    access_token: String,
    expires_in: u64,
}

struct Token {
    value: Secret,
    refresh_at: Instant,
    /// WeChat's stated expiry.
    expires_at: Instant,
}

#[derive(Default)]
struct State {
    token: Option<Token>,
    last_forced: Option<Instant>,
}

pub(super) struct AccessTokens {
    appid: String,
    secret: SharedSecret,
    state: Mutex<State>,
}

impl AccessTokens {
    pub(super) fn new(appid: &str, secret: &SharedSecret) -> Self {
        Self {
            appid: appid.to_owned(),
            secret: secret.clone(),
            state: Mutex::default(),
        }
    }

    /// Runs `call` with the current token; if WeChat rejects the token,
    /// replaces it and runs `call` once more.
    ///
    /// The token is passed by value: a closure over `&str` would make the
    /// future higher-ranked, which the compiler cannot prove `Send`.
    pub(super) async fn call<T, F, Fut>(&self, api: &ApiClient, call: F) -> Result<T, WeChatError>
    where
        F: Fn(Secret) -> Fut,
        Fut: Future<Output = Result<T, WeChatError>>,
    {
        let token = self.current(api).await?;
        match call(token.clone()).await {
            Err(WeChatError::Api { errcode, .. })
                if errcode == errcode::INVALID_CREDENTIAL || errcode == errcode::TOKEN_EXPIRED =>
            {
                tracing::info!(errcode, "WeChat rejected the access token; replacing it");
                let token = self.replace(api, &token).await?;
                call(token).await
            }
            other => other,
        }
    }

    /// Fetches a token now, with the current secret: whether WeChat accepts
    /// the app's credentials (and this host's IP). The token is kept.
    pub(super) async fn check(&self, api: &ApiClient) -> Result<(), WeChatError> {
        let token = self.fetch(api, false).await?;
        self.state.lock().await.token = Some(token);
        Ok(())
    }

    /// Whether WeChat accepts `secret` (a reload's candidate), without
    /// keeping its token or touching the running secret. A normal
    /// `stable_token` call: the running token stays valid.
    pub(super) async fn check_candidate(
        &self,
        api: &ApiClient,
        secret: &Secret,
    ) -> Result<(), WeChatError> {
        self.fetch_with(api, secret, false).await.map(drop)
    }

    /// The current token and its time left, for a backend (`/apps/{appid}/access_token`
    /// on the admin port): the one wxgate's own calls use, refreshed before
    /// it expires, never a second one that would fight it.
    pub(super) async fn handed_out(
        &self,
        api: &ApiClient,
    ) -> Result<(Secret, Duration), WeChatError> {
        let value = self.current(api).await?;
        let state = self.state.lock().await;
        let left = state
            .token
            .as_ref()
            .filter(|token| token.value == value)
            .map_or(Duration::ZERO, |token| {
                token.expires_at.saturating_duration_since(Instant::now())
            });
        Ok((value, left))
    }

    /// A backend says WeChat rejected `reported` (40001, 42001): when it is
    /// still the current token, a forced refresh replaces it (at most one
    /// per [`FORCE_INTERVAL`]: WeChat limits them); a report of a token
    /// replaced already changes nothing, so a hundred backends reporting
    /// one token cause one refresh. Whether this report refreshed it.
    pub(super) async fn invalidate(
        &self,
        api: &ApiClient,
        reported: &str,
    ) -> Result<bool, WeChatError> {
        let mut state = self.state.lock().await;
        let current = state
            .token
            .as_ref()
            .is_some_and(|token| token.value.expose() == reported);
        let may_force = state
            .last_forced
            .is_none_or(|at| at.elapsed() >= FORCE_INTERVAL);
        if !current || !may_force {
            return Ok(false);
        }
        state.last_forced = Some(Instant::now());
        tracing::warn!("a backend reported the access token rejected; forcing a refresh");
        state.token = Some(self.fetch(api, true).await?);
        Ok(true)
    }

    async fn current(&self, api: &ApiClient) -> Result<Secret, WeChatError> {
        let mut state = self.state.lock().await;
        if let Some(token) = &state.token
            && Instant::now() < token.refresh_at
        {
            return Ok(token.value.clone());
        }
        let token = self.fetch(api, false).await?;
        let value = token.value.clone();
        state.token = Some(token);
        Ok(value)
    }

    async fn replace(&self, api: &ApiClient, rejected: &Secret) -> Result<Secret, WeChatError> {
        let mut state = self.state.lock().await;
        // Another caller may have replaced it while we waited for the lock.
        if let Some(token) = &state.token
            && token.value != *rejected
            && Instant::now() < token.refresh_at
        {
            return Ok(token.value.clone());
        }
        let mut token = self.fetch(api, false).await?;
        if token.value == *rejected
            && state
                .last_forced
                .is_none_or(|at| at.elapsed() >= FORCE_INTERVAL)
        {
            state.last_forced = Some(Instant::now());
            tracing::warn!("stable_token returned the rejected token again; forcing a refresh");
            token = self.fetch(api, true).await?;
        }
        let value = token.value.clone();
        state.token = Some(token);
        Ok(value)
    }

    async fn fetch(&self, api: &ApiClient, force_refresh: bool) -> Result<Token, WeChatError> {
        let secret = self.secret.load_full();
        self.fetch_with(api, &secret, force_refresh).await
    }

    async fn fetch_with(
        &self,
        api: &ApiClient,
        secret: &Secret,
        force_refresh: bool,
    ) -> Result<Token, WeChatError> {
        let body = json!({
            "grant_type": "client_credential",
            "appid": self.appid,
            "secret": secret.expose(),
            "force_refresh": force_refresh,
        });
        let reply: Reply = api.post("/cgi-bin/stable_token", &[], &body).await?;
        if reply.access_token.is_empty() {
            return Err(WeChatError::BadResponse(
                "stable_token without access_token",
            ));
        }
        let lifetime = Duration::from_secs(reply.expires_in);
        let now = Instant::now();
        Ok(Token {
            value: Secret::new(reply.access_token),
            refresh_at: now + refresh_after(lifetime),
            expires_at: now + lifetime,
        })
    }
}
