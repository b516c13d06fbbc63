//! The request flow: `handle_request` → `handle_request_inner`.
//!
//! `handle_request_inner` routes the request and returns
//! `Result<Response, HttpError>`; `handle_request` is the one place that
//! turns an error into its JSON response and writes the request's single
//! log line, at a level that matches who must act (error for an operator
//! fault, warn for a 5xx, info otherwise).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use http::{HeaderMap, HeaderName, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use crate::body::{self, Body};
use crate::config::Config;
use crate::error::HttpError;
use crate::hop_by_hop;
use crate::identity::IdentityHeaders;
use crate::login::Login;
use crate::proxy::Upstream;
use crate::route::{Route, Routes};
use crate::session::{Resolved, SessionId, SessionStore, Sessions, StoreError, UserRecord};
use crate::wechat::WeChat;
use crate::{decrypt, phone, session_check};

pub struct App {
    routes: Routes,
    identity: IdentityHeaders,
    session_header: HeaderName,
    sessions: Sessions,
    wechat: WeChat,
    login: Login,
    appid: String,
    upstream: Upstream,
    draining: AtomicBool,
}

/// What happened to a request, for its log line.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    Authenticated,
    Public,
    Rejected,
    Login,
    Logout,
    Probe,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Authenticated => "authenticated",
            Self::Public => "public",
            Self::Rejected => "rejected",
            Self::Login => "login",
            Self::Logout => "logout",
            Self::Probe => "probe",
        }
    }
}

impl App {
    pub fn new(config: &Config) -> Result<Self, StartError> {
        Ok(Self {
            routes: Routes::new(&config.routes),
            identity: IdentityHeaders::new(&config.headers, &config.session, &config.wechat.appid),
            session_header: config.session.header.clone(),
            sessions: Sessions::new(config)?,
            wechat: WeChat::new(&config.wechat)?,
            login: Login::new(config),
            appid: config.wechat.appid.clone(),
            upstream: Upstream::new(&config.upstream),
            draining: AtomicBool::new(false),
        })
    }

    /// From now on `/readyz` answers 503, so load balancers stop sending traffic.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    pub async fn handle_request(
        &self,
        request: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<Body> {
        let started = Instant::now();
        let method = request.method().clone();
        let uri = request.uri().clone();
        let mut outcome = Outcome::Rejected;
        let result = self.handle_request_inner(request, peer, &mut outcome).await;
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        let (response, error) = match result {
            Ok(response) => (response, None),
            Err(e) => (e.into_response(), Some(e)),
        };
        macro_rules! log_line {
            ($level:ident) => {
                tracing::$level!(
                    method = %method,
                    path = uri.path(),
                    status = response.status().as_u16(),
                    latency_ms,
                    outcome = outcome.as_str(),
                    code = error.as_ref().map(HttpError::code),
                    error = error.as_ref().map(tracing::field::display),
                    "request"
                )
            };
        }
        match &error {
            Some(e) if e.is_operator_fault() => log_line!(error),
            Some(e) if e.status().is_server_error() => log_line!(warn),
            _ => log_line!(info),
        }
        response
    }

    async fn handle_request_inner(
        &self,
        request: Request<Incoming>,
        peer: SocketAddr,
        outcome: &mut Outcome,
    ) -> Result<Response<Body>, HttpError> {
        match self.routes.classify(request.uri().path()) {
            Route::Healthz => {
                *outcome = Outcome::Probe;
                Ok(body::json(StatusCode::OK, &json!({ "status": "ok" })))
            }
            Route::Readyz => {
                *outcome = Outcome::Probe;
                Ok(if self.draining.load(Ordering::Relaxed) {
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
                })
            }
            Route::Login => {
                *outcome = Outcome::Login;
                require(&request, "POST")?;
                self.login
                    .handle(&self.wechat, &self.sessions, request)
                    .await
            }
            Route::Logout => {
                *outcome = Outcome::Logout;
                require(&request, "POST")?;
                // Idempotent: ending an unknown or absent session succeeds too.
                if let Some(id) = self.session_id(request.headers()) {
                    self.sessions.logout(&id).await?;
                }
                Ok(body::empty(StatusCode::NO_CONTENT))
            }
            Route::Decrypt => {
                require(&request, "POST")?;
                let session = self.authenticate(request.headers(), outcome).await?;
                decrypt::handle(&self.sessions, &self.appid, &session, request).await
            }
            Route::Phone => {
                require(&request, "POST")?;
                let session = self.authenticate(request.headers(), outcome).await?;
                phone::handle(&self.sessions, &self.wechat, &session, request).await
            }
            Route::SessionCheck => {
                require(&request, "GET")?;
                let session = self.authenticate(request.headers(), outcome).await?;
                session_check::handle(&self.sessions, &self.wechat, &session).await
            }
            Route::Public => {
                let session = self.resolve(request.headers()).await?;
                *outcome = Outcome::Public;
                self.forward(request, peer, session.as_ref().map(|s| &*s.user))
                    .await
            }
            Route::Protected => {
                let session = self.authenticate(request.headers(), outcome).await?;
                self.forward(request, peer, Some(&session.user)).await
            }
        }
    }

    /// The session id, when exactly one well-formed session header is present.
    fn session_id(&self, headers: &HeaderMap) -> Option<SessionId> {
        let mut values = headers.get_all(&self.session_header).iter();
        match (values.next(), values.next()) {
            (Some(value), None) => SessionId::parse(value.as_bytes()),
            _ => None,
        }
    }

    async fn resolve(&self, headers: &HeaderMap) -> Result<Option<Resolved>, HttpError> {
        match self.session_id(headers) {
            Some(id) => Ok(self.sessions.resolve(&id).await?),
            None => Ok(None),
        }
    }

    /// The session a route requires; on success the request counts as authenticated.
    async fn authenticate(
        &self,
        headers: &HeaderMap,
        outcome: &mut Outcome,
    ) -> Result<Resolved, HttpError> {
        let session = self
            .resolve(headers)
            .await?
            .ok_or(HttpError::SessionInvalid)?;
        *outcome = Outcome::Authenticated;
        Ok(session)
    }

    async fn forward(
        &self,
        mut request: Request<Incoming>,
        peer: SocketAddr,
        user: Option<&UserRecord>,
    ) -> Result<Response<Body>, HttpError> {
        let upgrade = hop_by_hop::is_upgrade(request.headers());
        let headers = request.headers_mut();
        // Order matters: hop-by-hop first, so `Connection: X-WX-OpenId`
        // cannot remove what is injected below.
        hop_by_hop::strip(headers, upgrade);
        self.identity.strip(headers);
        if let Some(user) = user {
            self.identity.inject(headers, user);
        }
        self.upstream.forward(request, peer, upgrade).await
    }
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
