//! The request flow: `handle_request` → `handle_request_inner`.
//!
//! `handle_request_inner` routes the request and returns
//! `Result<Response, HttpError>`; `handle_request` is the one place that
//! turns an error into its JSON response, tags the request with its
//! `X-Request-Id`, counts it in the metrics and writes its single log line,
//! at a level that matches who must act (error for an operator fault, warn
//! for a 5xx, info otherwise).
//!
//! What a SIGHUP may change (routes, header names, timeouts) lives in
//! [`Live`], swapped whole by [`App::reload`]; a request sees one version
//! from start to end.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use http::{HeaderMap, HeaderName, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use crate::body::{self, Body};
use crate::config::Config;
use crate::error::HttpError;
use crate::identity::IdentityHeaders;
use crate::login::Login;
use crate::metrics::Metrics;
use crate::outcome::Outcome;
use crate::proxy::{Peer, Upstream};
use crate::request_id::{self, RequestIds};
use crate::route::{Route, Routes};
use crate::session::{Resolved, SessionId, SessionStore, Sessions, StoreError, UserRecord};
use crate::wechat::WeChat;
use crate::{decrypt, forward_auth, header, hop_by_hop, phone, session_check};

pub struct App {
    live: ArcSwap<Live>,
    sessions: Sessions,
    wechat: WeChat,
    login: Login,
    appid: String,
    upstream: Upstream,
    draining: AtomicBool,
    metrics: Arc<Metrics>,
    request_ids: RequestIds,
}

/// The settings a reload can change.
pub(crate) struct Live {
    pub routes: Routes,
    pub identity: IdentityHeaders,
    pub session_header: HeaderName,
    pub upstream_timeout: Duration,
    pub drain_timeout: Duration,
}

impl Live {
    fn new(config: &Config) -> Self {
        Self {
            routes: Routes::new(&config.routes),
            identity: IdentityHeaders::new(&config.headers, &config.session, &config.wechat.appid),
            session_header: config.session.header.clone(),
            upstream_timeout: config.upstream.timeout,
            drain_timeout: config.server.drain_timeout,
        }
    }
}

impl App {
    pub fn new(config: &Config) -> Result<Self, StartError> {
        let metrics = Arc::new(Metrics::new());
        Ok(Self {
            live: ArcSwap::from_pointee(Live::new(config)),
            sessions: Sessions::new(config, metrics.store.clone())?,
            wechat: WeChat::new(&config.wechat, metrics.wechat.clone())?,
            login: Login::new(config),
            appid: config.wechat.appid.clone(),
            upstream: Upstream::new(&config.upstream),
            draining: AtomicBool::new(false),
            metrics,
            request_ids: RequestIds::new(),
        })
    }

    /// Takes the reloadable settings of `config`, which the caller has
    /// checked changes nothing else. Requests in flight finish on the old ones.
    pub fn reload(&self, config: &Config) {
        self.live.store(Arc::new(Live::new(config)));
    }

    /// From now on `/readyz` answers 503, so load balancers stop sending traffic.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    pub fn drain_timeout(&self) -> Duration {
        self.live.load().drain_timeout
    }

    /// `/healthz`: the process is alive and serving.
    pub fn liveness(&self) -> Response<Body> {
        body::json(StatusCode::OK, &json!({ "status": "ok" }))
    }

    /// `/readyz`: 503 while draining or while the session store is unreachable.
    pub async fn readiness(&self) -> Response<Body> {
        if self.draining.load(Ordering::Relaxed) {
            body::json(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({ "status": "draining" }),
            )
        } else if !self.sessions.ready().await {
            body::json(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({ "status": "store_unavailable" }),
            )
        } else {
            body::json(StatusCode::OK, &json!({ "status": "ready" }))
        }
    }

    /// The Prometheus exposition text.
    pub async fn metrics_text(&self) -> String {
        self.metrics.encode(self.sessions.live().await)
    }

    pub async fn handle_request(
        &self,
        mut request: Request<Incoming>,
        peer: Peer,
    ) -> Response<Body> {
        let started = Instant::now();
        let _in_flight = self.metrics.in_flight();
        let request_id = self.request_ids.of(request.headers());
        // Replaces whatever the client sent, so the upstream sees the same id.
        request
            .headers_mut()
            .insert(&request_id::HEADER, request_id.clone());
        let method = request.method().clone();
        let uri = request.uri().clone();
        let mut outcome = Outcome::Rejected;
        let result = self.handle_request_inner(request, peer, &mut outcome).await;
        let elapsed = started.elapsed();
        let (mut response, error) = match result {
            Ok(response) => (response, None),
            Err(e) => (e.into_response(), Some(e)),
        };
        let status = response.status();
        if outcome == Outcome::Login {
            self.metrics
                .login(error.as_ref().map_or("ok", HttpError::code));
        }
        if status.is_server_error() {
            outcome = Outcome::Error;
        }
        self.metrics.request(outcome, status.as_u16(), elapsed);
        macro_rules! log_line {
            ($level:ident) => {
                tracing::$level!(
                    method = %method,
                    path = uri.path(),
                    status = status.as_u16(),
                    latency_ms = elapsed.as_secs_f64() * 1000.0,
                    outcome = outcome.as_str(),
                    request_id = request_id.to_str().unwrap_or("-"),
                    code = error.as_ref().map(HttpError::code),
                    error = error.as_ref().map(tracing::field::display),
                    "request"
                )
            };
        }
        match &error {
            Some(e) if e.is_operator_fault() => log_line!(error),
            Some(_) if status.is_server_error() => log_line!(warn),
            _ => log_line!(info),
        }
        response
            .headers_mut()
            .insert(&request_id::HEADER, request_id);
        response
    }

    async fn handle_request_inner(
        &self,
        request: Request<Incoming>,
        peer: Peer,
        outcome: &mut Outcome,
    ) -> Result<Response<Body>, HttpError> {
        let live = self.live.load();
        // The rarer routes' futures are boxed: the WeChat calls inside them
        // are large, and every proxied request's future would otherwise be
        // as large (6.8 KB before, 4.0 KB after), held for each request in flight.
        match live.routes.classify(request.method(), request.uri().path()) {
            Route::Healthz => {
                *outcome = Outcome::Probe;
                Ok(self.liveness())
            }
            Route::Readyz => {
                *outcome = Outcome::Probe;
                Ok(Box::pin(self.readiness()).await)
            }
            Route::Login => {
                *outcome = Outcome::Login;
                require(&request, "POST")?;
                Box::pin(self.login.handle(&self.wechat, &self.sessions, request)).await
            }
            Route::Logout => {
                *outcome = Outcome::Logout;
                require(&request, "POST")?;
                // Idempotent: ending an unknown or absent session succeeds too.
                if let Some(id) = session_id(&live, request.headers()) {
                    self.sessions.logout(&id).await?;
                }
                Ok(body::empty(StatusCode::NO_CONTENT))
            }
            Route::Decrypt => {
                require(&request, "POST")?;
                let session = self.authenticate(&live, request.headers(), outcome).await?;
                Box::pin(decrypt::handle(
                    &self.sessions,
                    &self.appid,
                    &session,
                    request,
                ))
                .await
            }
            Route::Phone => {
                require(&request, "POST")?;
                let session = self.authenticate(&live, request.headers(), outcome).await?;
                Box::pin(phone::handle(
                    &self.sessions,
                    &self.wechat,
                    &session,
                    request,
                ))
                .await
            }
            Route::SessionCheck => {
                require(&request, "GET")?;
                let session = self.authenticate(&live, request.headers(), outcome).await?;
                Box::pin(session_check::handle(
                    &self.sessions,
                    &self.wechat,
                    &session,
                ))
                .await
            }
            Route::ForwardAuth => {
                let question = forward_auth::Question::of(&live.routes, &request);
                let session = self.resolve(&live, request.headers()).await?;
                forward_auth::answer(&live, question, session.as_ref(), outcome)
            }
            Route::Public => {
                let session = self.resolve(&live, request.headers()).await?;
                *outcome = Outcome::Public;
                let user = session.as_ref().map(|s| &*s.user);
                self.forward(&live, request, peer, user).await
            }
            Route::Protected => {
                let session = self.authenticate(&live, request.headers(), outcome).await?;
                self.forward(&live, request, peer, Some(&session.user))
                    .await
            }
        }
    }

    async fn resolve(
        &self,
        live: &Live,
        headers: &HeaderMap,
    ) -> Result<Option<Resolved>, HttpError> {
        match session_id(live, headers) {
            Some(id) => Ok(self.sessions.resolve(&id).await?),
            None => Ok(None),
        }
    }

    /// The session a route requires; on success the request counts as authenticated.
    async fn authenticate(
        &self,
        live: &Live,
        headers: &HeaderMap,
        outcome: &mut Outcome,
    ) -> Result<Resolved, HttpError> {
        let session = self
            .resolve(live, headers)
            .await?
            .ok_or(HttpError::SessionInvalid)?;
        *outcome = Outcome::Authenticated;
        Ok(session)
    }

    async fn forward(
        &self,
        live: &Live,
        mut request: Request<Incoming>,
        peer: Peer,
        user: Option<&UserRecord>,
    ) -> Result<Response<Body>, HttpError> {
        let upgrade = hop_by_hop::is_upgrade(request.headers());
        let headers = request.headers_mut();
        // Order matters: hop-by-hop first, so `Connection: X-WX-OpenId`
        // cannot remove what is injected below.
        hop_by_hop::strip(headers, upgrade);
        live.identity.strip(headers);
        if let Some(user) = user {
            live.identity.inject(headers, user);
        }
        let started = Instant::now();
        let response = self
            .upstream
            .forward(request, &peer, upgrade, live.upstream_timeout)
            .await;
        self.metrics.upstream(started.elapsed());
        response
    }
}

/// The session id, when exactly one well-formed session header is present.
fn session_id(live: &Live, headers: &HeaderMap) -> Option<SessionId> {
    header::single(headers, &live.session_header).and_then(|v| SessionId::parse(v.as_bytes()))
}

/// Why the app could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot build the WeChat HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("cannot set up the session store: {0}")]
    Store(#[from] StoreError),
}

/// The route accepts only `method` (also what a 405's `Allow` header says).
fn require(request: &Request<Incoming>, method: &'static str) -> Result<(), HttpError> {
    if request.method().as_str() == method {
        Ok(())
    } else {
        Err(HttpError::MethodNotAllowed { allow: method })
    }
}
