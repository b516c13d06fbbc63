//! The app's access token, from `cgi-bin/stable_token` (never the
//! invalidating `cgi-bin/token`): one for wxgate's own calls and every
//! backend's, shared as `shared` describes (one fetch per app for the
//! replica, or for the fleet with Redis).
//!
//! When an API rejects the token (40001 invalid, 42001 expired),
//! [`AccessTokens::call`] replaces it and retries once. The replacement is a
//! normal `stable_token` call; only if WeChat hands back the very token that
//! was just rejected does it ask with `force_refresh: true`.

use std::future::Future;
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use super::SharedSecret;
use super::api::ApiClient;
use super::shared::{Issued, SharedCredential};
use super::{WeChatError, errcode};
use crate::config::secret::Secret;
use crate::domain::session::FleetSecrets;

#[derive(Deserialize)]
struct Reply {
    access_token: String,
    expires_in: u64,
}

pub(super) struct AccessTokens {
    appid: String,
    secret: SharedSecret,
    token: SharedCredential,
}

impl AccessTokens {
    pub(super) fn new(
        appid: &str,
        secret: &SharedSecret,
        fleet: Option<FleetSecrets>,
        api: &ApiClient,
    ) -> Self {
        // A normal fetch, then perhaps a forced one, and a second.
        let hold = api.call_bound() * 2 + Duration::from_secs(1);
        Self {
            appid: appid.to_owned(),
            secret: secret.clone(),
            token: SharedCredential::new(format!("{appid}:access_token"), fleet, hold),
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
        let (token, _) = self.handed_out(api).await?;
        match call(token.clone()).await {
            Err(WeChatError::Api { errcode, .. })
                if errcode == errcode::INVALID_CREDENTIAL || errcode == errcode::TOKEN_EXPIRED =>
            {
                tracing::info!(errcode, "WeChat rejected the access token; replacing it");
                let token = self
                    .token
                    .replace(&token, |force| self.fetch(api, force))
                    .await?;
                call(token).await
            }
            other => other,
        }
    }

    /// Fetches a token now, with the current secret: whether WeChat accepts
    /// the app's credentials (and this host's IP). The token is kept by
    /// this replica.
    pub(super) async fn check(&self, api: &ApiClient) -> Result<(), WeChatError> {
        let issued = self.fetch(api, false).await?;
        self.token.keep(&issued).await;
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

    /// The current token and its time left, for wxgate's own calls and a
    /// backend's (`/apps/{appid}/access_token` on the admin port): never a
    /// second one that would fight it.
    pub(super) async fn handed_out(
        &self,
        api: &ApiClient,
    ) -> Result<(Secret, Duration), WeChatError> {
        self.token.current(|force| self.fetch(api, force)).await
    }

    /// A backend says WeChat rejected `reported` (40001, 42001): whether
    /// this report force-refreshed it (`SharedCredential::invalidate`).
    pub(super) async fn invalidate(
        &self,
        api: &ApiClient,
        reported: &str,
    ) -> Result<bool, WeChatError> {
        self.token
            .invalidate(reported, |force| self.fetch(api, force))
            .await
    }

    async fn fetch(&self, api: &ApiClient, force_refresh: bool) -> Result<Issued, WeChatError> {
        let secret = self.secret.load_full();
        let issued = self.fetch_with(api, &secret, force_refresh).await?;
        api.metrics().fetched("access_token", force_refresh);
        Ok(issued)
    }

    async fn fetch_with(
        &self,
        api: &ApiClient,
        secret: &Secret,
        force_refresh: bool,
    ) -> Result<Issued, WeChatError> {
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
        Ok(Issued {
            value: Secret::new(reply.access_token),
            lifetime: Duration::from_secs(reply.expires_in),
        })
    }
}
