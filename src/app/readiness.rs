//! The admin port's view of the app: `/healthz` (alive) and `/readyz`
//! (this replica can serve), the proxy's own state as Envoy's readiness is.
//!
//! Ready means: the listeners serve, WeChat has accepted every app's
//! credentials, no backend's `ready_check` fails, and (only with
//! `admin.ready_requires_store`) the session store is up. A store every
//! replica shares stays out of readiness by default: in its outage it would
//! take every replica out of the Service at once, public routes included.

use std::sync::atomic::Ordering;

use http::{Response, StatusCode};
use serde_json::json;

use super::App;
use crate::config::secret::Secret;
use crate::domain::credentials::refusal;
use crate::response::{self, Body};

impl App {
    /// `/healthz`: the process is alive and serving.
    pub fn liveness(&self) -> Response<Body> {
        response::json(StatusCode::OK, &json!({ "status": "ok" }))
    }

    /// The proxy's listeners are serving: `/readyz` may say ready.
    pub fn mark_started(&self) {
        self.started.store(true, Ordering::Release);
    }

    /// Asks WeChat whether it accepts every app's credentials (at start and
    /// after a reload); `/readyz` is 503 for those it refuses.
    pub async fn check_credentials(&self) {
        self.credentials.check(&self.shared.apps).await;
    }

    /// Whether a reload may swap `secret` in for `appid`: `Err` with
    /// WeChat's errcode and the fix when WeChat refuses it while it accepts
    /// the running one (a reload must never make things worse). A WeChat
    /// that cannot be asked, or that refuses the running secret too (at the
    /// last check, or asked again now), lets it through: then the new one
    /// can only help.
    pub async fn may_swap_secret(
        &self,
        appid: &str,
        secret: &Secret,
    ) -> Result<(), (i64, &'static str)> {
        let Some(app) = self.shared.apps.get(appid) else {
            return Ok(());
        };
        let Err(e) = app.wechat.check_secret(secret).await else {
            return Ok(());
        };
        let Some(refused) = refusal(&e) else {
            return Ok(());
        };
        if self.credentials.refuses(appid) {
            return Ok(());
        }
        // Reset on WeChat's side since the last check?
        match app.wechat.check_credentials().await {
            Err(running) if refusal(&running).is_some() => Ok(()),
            _ => Err(refused),
        }
    }

    /// `/readyz`: whether this replica can serve — 503 while starting or
    /// draining, while WeChat refuses an app's credentials (checked at
    /// start), or while a backend with a `ready_check` cannot serve; 200
    /// otherwise, whatever the session store's state (named in the body):
    /// a store every replica shares, in every replica's readiness, would
    /// take them all out of the Service at once in its outage, public
    /// routes included. `admin.ready_requires_store` puts the store back in.
    pub async fn readiness(&self) -> Response<Body> {
        let store = self.shared.sessions.state();
        let mut body = json!({ "store": store });
        // Starting until the listeners serve and WeChat has answered about
        // the credentials (at most `wechat.timeout`; mock mode at once).
        let starting = !self.started.load(Ordering::Acquire) || !self.credentials.checked();
        let status = if starting {
            "starting"
        } else if self.draining.load(Ordering::Relaxed) {
            "draining"
        } else if let refused @ [_, ..] = &self.credentials.refused()[..] {
            body["apps"] = json!(
                refused
                    .iter()
                    .map(|(appid, code)| json!({"appid": appid, "errcode": code}))
                    .collect::<Vec<_>>()
            );
            "wechat_misconfigured"
        } else if let Some((prefix, why)) = self.unready_backend().await {
            body["upstream"] = json!({ "prefix": prefix, "error": why });
            "upstream_unavailable"
        } else if self.admin.load().ready_requires_store && store == "down" {
            "store_unavailable"
        } else {
            "ready"
        };
        body["status"] = json!(status);
        let code = match status {
            "ready" => StatusCode::OK,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        response::json(code, &body)
    }

    /// The first backend whose `ready_check` fails, and why.
    async fn unready_backend(&self) -> Option<(&str, String)> {
        for upstream in &self.upstreams {
            if let Err(why) = upstream.ready().await {
                return Some((upstream.prefix(), why));
            }
        }
        None
    }
}
