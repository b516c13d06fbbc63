//! User binding: the business system's own user id for a WeChat user.
//!
//! The method wxgate follows says an openid (or unionid, across apps) is
//! obtained once and bound to the business system's user id. A legacy
//! backend knows its own users, not openids, so at login wxgate asks the
//! `[binding] url` once per user:
//!
//! ```text
//! POST <url>   Authorization: Bearer $WXGATE_BINDING_TOKEN
//! {"appid": "...", "openid": "...", "unionid": "..." | null, "phone": "..." | null}
//! → 200 {"user_id": "<1-128 visible ASCII>"}   (a JSON integer is taken as its digits)
//! → 404                                          no account for this user yet
//! ```
//!
//! The appid is the app the user logged in to; with several apps the
//! unionid (the same person in every app of one WeChat Open Platform
//! account) lets the business system map one person to one account.
//!
//! wxgate keeps the answer on the user record, where every session of the
//! user finds it and `X-User-Id` carries it to the backend. It is asked
//! again only while the user is unbound, and when a phone number becomes
//! known (many systems match accounts by phone). Concurrent logins of one
//! user share one call ([`SingleFlight`] per user record), and inside it the
//! stored record is read again, so a user bound meanwhile is not asked twice.
//!
//! An endpoint that is down, slow, answers 5xx or garbage is
//! `Unavailable`: with `required = true` the login fails (503
//! `binding_unavailable`), otherwise it succeeds unbound and the next login
//! asks again.

use std::sync::Arc;

use serde_json::json;

use crate::config::BindingConfig;
use crate::config::secret::Secret;
use crate::domain::session::{BoundId, SessionStore, UserRecord, UserUpdate};
use crate::domain::single_flight::SingleFlight;
use crate::metrics::BindingMetrics;
use crate::telemetry::{KeyValue, Span, SpanKind, current_trace_id, propagate};
use crate::wire::describe;

/// What the endpoint said about a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bound {
    /// Bound to this business user id.
    Id(BoundId),
    /// 404: the business system has no account for this user (yet).
    NotFound,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("the binding endpoint failed: {0}")]
/// Why the binding endpoint gave no answer (never a token).
pub struct BindError(String);

/// The client of `[binding]`: asks the business system for a user's id.
pub struct Binding {
    http: reqwest::Client,
    config: BindingConfig,
    /// `binding.token`, replaced by a reload that re-read it (`binding.token_file`).
    token: arc_swap::ArcSwap<Option<Secret>>,
    inflight: SingleFlight<Bound>,
    metrics: BindingMetrics,
}

impl Binding {
    /// A client with `config`'s URL, timeout and token.
    pub fn new(config: &BindingConfig, metrics: BindingMetrics) -> Result<Self, reqwest::Error> {
        Ok(Self {
            http: crate::config::trusting(
                reqwest::Client::builder()
                    .timeout(config.timeout)
                    .connect_timeout(config.timeout)
                    // A 3xx is a binding failure: following it would send the
                    // user's identity wherever the answer points.
                    .redirect(reqwest::redirect::Policy::none()),
                config.ca_file.as_ref(),
            )?
            .build()?,
            config: config.clone(),
            token: arc_swap::ArcSwap::from_pointee(config.token.clone()),
            inflight: SingleFlight::new(),
            metrics,
        })
    }

    /// Replaces the token (a reload re-read `binding.token_file`).
    pub fn set_token(&self, token: Option<Secret>) {
        self.token.store(std::sync::Arc::new(token));
    }

    /// Whether a failed or refused binding fails the login.
    pub fn required(&self) -> bool {
        self.config.required
    }

    /// Binds `user` unless it is bound already, storing the id; the
    /// record as it now stands. One call per user at a time.
    pub async fn bind_at_login<S: SessionStore>(
        &self,
        store: &S,
        user: Arc<UserRecord>,
    ) -> Result<(Bound, Arc<UserRecord>), BindError> {
        if let Some(id) = user.user_id() {
            return Ok((Bound::Id(id.clone()), user));
        }
        let key = user.key();
        let bound = self
            .inflight
            .run(key, async {
                // Bound by a login that finished while this one waited?
                let current = store
                    .user(key)
                    .await
                    .map_err(|e| BindError(e.to_string()))?;
                match current.as_deref().and_then(UserRecord::user_id) {
                    Some(id) => Ok(Bound::Id(id.clone())),
                    None => {
                        let newest = current.as_deref().unwrap_or(user.as_ref());
                        self.ask_and_store(store, newest).await
                    }
                }
            })
            .await
            .map_err(|e: Arc<BindError>| (*e).clone())?;
        let user = match &bound {
            Bound::Id(id) if user.user_id() != Some(id) => {
                Arc::new(UserRecord::clone(&user).bound_to(id.clone()))
            }
            _ => user,
        };
        Ok((bound, user))
    }

    /// A phone number became known: asks again with it (the business
    /// system may match the account by phone). Failures only log: the
    /// phone number itself was obtained.
    pub async fn rebind_with_phone<S: SessionStore>(&self, store: &S, user: &UserRecord) {
        if let Err(e) = self.ask_and_store(store, user).await {
            tracing::warn!(error = %e, "binding with the phone number failed; the user keeps its id");
        }
    }

    async fn ask_and_store<S: SessionStore>(
        &self,
        store: &S,
        user: &UserRecord,
    ) -> Result<Bound, BindError> {
        let bound = self.ask(user).await?;
        if let Bound::Id(id) = &bound
            && user.user_id() != Some(id)
        {
            store
                .update_user(user.key(), UserUpdate::SetUserId(id.clone()))
                .await
                .map_err(|e| BindError(e.to_string()))?;
        }
        Ok(bound)
    }

    /// One call to the endpoint, counted by result.
    async fn ask(&self, user: &UserRecord) -> Result<Bound, BindError> {
        let body = json!({
            "appid": user.appid(),
            "openid": user.openid(),
            "unionid": user.unionid(),
            "phone": user.phone.as_ref().map(|p| p.phone_number.as_str()),
        });
        let mut request = self
            .http
            .post(self.config.url.clone())
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(token) = self.token.load().as_ref() {
            request = request.bearer_auth(token.expose());
        }
        let url = &self.config.url;
        let span = Span::start(SpanKind::Client, || {
            let mut attributes = vec![
                KeyValue::new("http.request.method", "POST"),
                KeyValue::new(
                    "server.address",
                    url.host_str().unwrap_or_default().to_owned(),
                ),
                KeyValue::new("url.path", url.path().to_owned()),
            ];
            if let Some(port) = url.port_or_known_default() {
                attributes.push(KeyValue::new("server.port", i64::from(port)));
            }
            ("POST binding".into(), attributes)
        });
        // The business system's spans join the login's trace.
        let mut trace = http::HeaderMap::new();
        propagate(&span, &mut trace);
        let (result, answer) = match request.headers(trace).send().await {
            Err(e) if e.is_timeout() => ("timeout", Err(BindError("timed out".to_owned()))),
            Err(e) => ("unreachable", Err(BindError(describe(&e.without_url())))),
            Ok(response) => read(response).await,
        };
        self.metrics.get_or_create(&[("result", result)]).inc();
        span.set(KeyValue::new("wxgate.binding.result", result));
        if answer.is_err() {
            span.fail(result);
        }
        drop(span);
        let trace_id = current_trace_id();
        crate::audit::Event {
            action: "binding",
            result,
            trace_id: trace_id
                .as_ref()
                .and_then(|id| std::str::from_utf8(id).ok()),
            app: Some(user.appid()),
            openid: Some(user.openid()),
            user_id: match &answer {
                Ok(Bound::Id(id)) => Some(id.as_str()),
                _ => None,
            },
            ..Default::default()
        }
        .record();
        answer
    }
}

/// The endpoint's answer, and its result label.
async fn read(response: reqwest::Response) -> (&'static str, Result<Bound, BindError>) {
    let status = response.status();
    if status == reqwest::StatusCode::NOT_FOUND {
        return ("not_found", Ok(Bound::NotFound));
    }
    if status != reqwest::StatusCode::OK {
        return ("error", Err(BindError(format!("HTTP {status}"))));
    }
    let bad = || {
        (
            "bad_response",
            Err(BindError("an answer without a usable user_id".to_owned())),
        )
    };
    let Some(value) = small_json(response).await else {
        return bad();
    };
    let id = match &value["user_id"] {
        serde_json::Value::String(id) => BoundId::new(id.as_str()),
        serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => BoundId::new(&n.to_string()),
        _ => None,
    };
    match id {
        Some(id) => ("bound", Ok(Bound::Id(id))),
        None => bad(),
    }
}

/// Longest answer read: `{"user_id": …}` with room for extra fields.
const ANSWER_LIMIT: usize = 16 * 1024;

/// The answer as JSON, read up to [`ANSWER_LIMIT`]; `None` past it or unparsable.
async fn small_json(mut response: reqwest::Response) -> Option<serde_json::Value> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.ok()? {
        if bytes.len() + chunk.len() > ANSWER_LIMIT {
            return None;
        }
        bytes.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&bytes).ok()
}
