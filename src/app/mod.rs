//! The request flow, inside the tower stack (`stack`): `handle` →
//! `handle_request_inner`.
//!
//! `handle_request_inner` routes the request and returns
//! `Result<Response, HttpError>`; `handle` turns an error into its JSON
//! response (`HttpError::into_response`, the one place that does; a plain
//! page on the browser login's routes) and hands the stack's observe layer
//! an [`Answer`]: the response, what was handled (the request's
//! [`Outcome`], its user) and the error answered, for the request's single
//! log line and its metrics. Who is asking (the
//! session header or cookie, CSRF) is `credential`'s; `/readyz` is
//! `readiness`'s.
//!
//! What a SIGHUP may change (routes, header names, timeouts) lives in
//! [`Live`], swapped whole by [`App::reload`]; a request sees one version
//! from start to end.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use http::header::SET_COOKIE;
use http::{HeaderName, Request, Response, Uri};
use http_body_util::Either;
use ipnet::IpNet;

use crate::config::{AdminConfig, Config};
use crate::domain::apps::Apps;
use crate::domain::binding::Binding;
use crate::domain::credentials::CredentialCheck;
use crate::domain::identity::IdentityHeaders;
use crate::domain::route::{Route, Routes};
use crate::domain::session::{ClientQuota, Sessions, StoreError, UserRecord};
use crate::endpoints::login::Login;
use crate::endpoints::login_limit::LoginLimiter;
use crate::endpoints::web_login::WebLogin;
use crate::endpoints::{decrypt, forward_auth, logout, phone, session_check};
use crate::metrics::Metrics;
use crate::metrics::Outcome;
use crate::proxy::{self, Peer, Upstream, UpstreamRoute, UpstreamRoutes};
use crate::response::Body;
use crate::response::HttpError;
use crate::response::{Answer, Handled};
use crate::wire::body_idle::RequestBody;
use crate::wire::canonical_path::canonicalize;
use crate::wire::client_ip::{bucket, client_ip};
use crate::wire::request_id::RequestIds;
use crate::wire::{cookie, hop_by_hop};

mod credential;
mod readiness;

use credential::{Credential, credential};

pub struct App {
    live: ArcSwap<Live>,
    sessions: Sessions,
    apps: Apps,
    login: Login,
    /// `[binding]`, when configured.
    binding: Option<Binding>,
    /// In config order (`UpstreamRoute::index`).
    upstreams: Vec<Upstream>,
    draining: AtomicBool,
    /// Set once the proxy's listeners serve (`/readyz` says "starting" before).
    started: AtomicBool,
    /// What WeChat said of the apps' credentials at the last check.
    credentials: CredentialCheck,
    metrics: Arc<Metrics>,
    request_ids: Arc<RequestIds>,
    login_limiter: LoginLimiter,
    /// Browser logins in flight per client (`[web]`'s start route).
    login_quota: ClientQuota,
    /// Swapped whole by a reload: its token may be re-read (`admin.token_file`).
    admin: ArcSwap<AdminConfig>,
    trusted_proxies: Arc<[IpNet]>,
    body_idle_timeout: Duration,
    /// Per worker thread (`stack::Worker`).
    max_in_flight: usize,
}

/// The settings a reload can change.
struct Live {
    pub routes: Routes,
    pub identity: IdentityHeaders,
    pub session_header: HeaderName,
    pub upstreams: UpstreamRoutes,
    pub drain_timeout: Duration,
    /// `[web]`: browser logins and the session cookie.
    pub web: Option<WebLogin>,
}

impl Live {
    /// `former`: the settings this reload replaces, whose stripped header
    /// names stay stripped.
    fn new(config: &Config, former: Option<&Live>) -> Self {
        let identity = IdentityHeaders::new(
            &config.headers,
            &config.session,
            config.apps.iter().map(|app| app.appid.as_str()),
        );
        Self {
            routes: Routes::new(&config.routes),
            identity: match former {
                Some(former) => identity.also_stripping(&former.identity),
                None => identity,
            },
            session_header: config.session.header.clone(),
            upstreams: UpstreamRoutes::new(&config.upstreams, &config.routes.normalize),
            drain_timeout: config.server.drain_timeout,
            web: config
                .web
                .as_ref()
                .map(|web| WebLogin::new(web, &config.routes, config.session.ttl)),
        }
    }
}

impl App {
    pub fn new(config: &Config) -> Result<Self, BuildError> {
        let prefixes: Vec<&str> = config.upstreams.iter().map(|u| u.prefix.as_str()).collect();
        let metrics = Arc::new(Metrics::new(&prefixes));
        Ok(Self {
            live: ArcSwap::from_pointee(Live::new(config, None)),
            sessions: Sessions::new(config, metrics.store.clone())?,
            apps: Apps::new(&config.apps, &metrics.wechat)?,
            login: Login::new(config),
            binding: config
                .binding
                .as_ref()
                .map(|b| Binding::new(b, metrics.binding.clone()))
                .transpose()?,
            upstreams: config.upstreams.iter().map(Upstream::new).collect(),
            draining: AtomicBool::new(false),
            started: AtomicBool::new(false),
            credentials: CredentialCheck::default(),
            metrics,
            request_ids: Arc::new(RequestIds::new()),
            login_limiter: LoginLimiter::new(&config.login),
            // `[web]` cannot change on a reload: its state_ttl is fixed.
            login_quota: ClientQuota::new(
                config
                    .web
                    .as_ref()
                    .map_or(Duration::from_secs(600), |web| web.state_ttl),
            ),
            admin: ArcSwap::from_pointee(config.admin.clone()),
            trusted_proxies: config.server.trusted_proxies.clone().into(),
            body_idle_timeout: config.server.body_idle_timeout,
            max_in_flight: config.server.max_in_flight,
        })
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub(crate) fn request_ids(&self) -> &RequestIds {
        &self.request_ids
    }

    pub(crate) fn apps(&self) -> &Apps {
        &self.apps
    }

    pub(crate) fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    pub(crate) fn admin(&self) -> Arc<AdminConfig> {
        self.admin.load_full()
    }

    pub(crate) fn body_idle_timeout(&self) -> Duration {
        self.body_idle_timeout
    }

    /// `server.trusted_proxies`, for each connection's [`Peer`].
    pub(crate) fn trusted_proxies(&self) -> &Arc<[IpNet]> {
        &self.trusted_proxies
    }

    pub(crate) fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    /// Takes the reloadable settings of `config`, which the caller has
    /// checked changes nothing else. Requests in flight finish on the old ones.
    pub fn reload(&self, config: &Config) {
        // Secrets re-read from their files or the environment (the reload
        // checked nothing else of the apps, the admin port or binding changed).
        for app in &config.apps {
            if let Some(running) = self.apps.get(&app.appid) {
                running.wechat.set_secret(&app.secret);
            }
        }
        self.admin.store(Arc::new(config.admin.clone()));
        if let (Some(binding), Some(new)) = (&self.binding, &config.binding) {
            binding.set_token(new.token.clone());
        }
        let former = self.live.load();
        self.live.store(Arc::new(Live::new(config, Some(&former))));
    }

    /// From now on `/readyz` answers 503, so load balancers stop sending traffic.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
        self.metrics.draining();
    }

    pub fn drain_timeout(&self) -> Duration {
        self.live.load().drain_timeout
    }

    /// The Prometheus exposition text.
    pub async fn metrics_text(&self) -> String {
        self.metrics.encode(self.sessions.live().await)
    }

    /// Answers one request; an error becomes its JSON answer here. The
    /// request's outcome travels beside the response to the access log.
    pub(crate) async fn handle(&self, request: Request<RequestBody>, peer: &Peer) -> Answer {
        let mut handled = Handled::from(Outcome::Rejected);
        match self.handle_request_inner(request, peer, &mut handled).await {
            Ok(response) => Answer {
                response,
                handled,
                error: None,
            },
            Err(e) => {
                if matches!(e, HttpError::BodyMalformed(_) | HttpError::BodyIdle(_)) {
                    // The client's body failed, whatever route it was on.
                    handled.outcome = Outcome::Rejected;
                }
                let response = if handled.page {
                    e.into_page()
                } else {
                    e.into_response()
                };
                Answer {
                    response,
                    handled,
                    error: Some(e),
                }
            }
        }
    }

    async fn handle_request_inner(
        &self,
        mut request: Request<RequestBody>,
        peer: &Peer,
        handled: &mut Handled,
    ) -> Result<Response<Body>, HttpError> {
        let live = self.live.load();
        // Forward-auth is told by its raw path: Envoy's original path after
        // the route is made canonical on its own.
        if let Some(form) = live.routes.forward_auth(request.uri().path()) {
            return Box::pin(self.forward_auth(&live, &request, form, handled)).await;
        }
        // One canonical path for every decision below and for the backend.
        let canonical = match canonicalize(request.uri().path(), live.routes.normalize())? {
            Cow::Borrowed(_) => None,
            Cow::Owned(path) => Some(path),
        };
        if let Some(path) = canonical {
            *request.uri_mut() = with_path(request.uri(), &path)?;
            handled.path = Some(path.into_boxed_str());
        }
        // The rarer routes' futures are boxed: the WeChat calls inside them
        // are large, and every proxied request's future would otherwise be
        // as large (6.8 KB before, 4.0 KB after), held for each request in flight.
        match live.routes.classify(request.method(), request.uri().path()) {
            Route::Reserved => Err(HttpError::NotFound(
                "nothing here: this prefix is reserved for wxgate's own routes \
                 (decrypt, phone, session, auth)",
            )),
            Route::Login => {
                handled.outcome = Outcome::Login;
                require(&request, "POST")?;
                self.limit_login(&request, peer)?;
                Box::pin(self.login.handle(
                    &self.apps,
                    &self.sessions,
                    self.binding.as_ref(),
                    request,
                    handled,
                ))
                .await
            }
            Route::Logout => {
                handled.outcome = Outcome::Logout;
                require(&request, "POST")?;
                let id = credential(&live, request.method(), request.headers())?
                    .map(Credential::into_id);
                let mut response = logout::handle(&self.sessions, id).await?;
                // A browser's cookie goes too, whichever way it logged out.
                if let Some(clear) = live.web.as_ref().and_then(WebLogin::clear_session_cookie) {
                    response.headers_mut().append(SET_COOKIE, clear);
                }
                Ok(response)
            }
            Route::Decrypt => {
                require(&request, "POST")?;
                let session = self.authenticate(&live, &request, handled).await?;
                self.mini_program(&session)?;
                Box::pin(decrypt::handle(&self.sessions, &session, request)).await
            }
            Route::Phone => {
                require(&request, "POST")?;
                let session = self.authenticate(&live, &request, handled).await?;
                Box::pin(phone::handle(
                    &self.sessions,
                    &self.mini_program(&session)?.wechat,
                    self.binding.as_ref(),
                    &session,
                    request,
                ))
                .await
            }
            Route::SessionCheck => {
                require(&request, "GET")?;
                let session = self.authenticate(&live, &request, handled).await?;
                Box::pin(session_check::handle(
                    &self.sessions,
                    &self.mini_program(&session)?.wechat,
                    &session,
                ))
                .await
            }
            Route::ForwardAuth => {
                // A spelling of the auth route that is canonical only now.
                let form = live.routes.forward_auth(request.uri().path()).flatten();
                self.forward_auth(&live, &request, form, handled).await
            }
            Route::WebStart => {
                handled.outcome = Outcome::LoginStart;
                let web = web_login(&live)?;
                let client = self.limit_login(&request, peer)?;
                let quota = (&self.login_quota, client);
                Box::pin(web.start(&self.apps, &self.sessions, quota, &request, handled)).await
            }
            Route::WebCallback => {
                let web = web_login(&live)?;
                let binding = self.binding.as_ref();
                Box::pin(web.callback(&self.apps, &self.sessions, binding, &request, handled)).await
            }
            Route::WebMock => {
                handled.outcome = Outcome::LoginStart;
                web_login(&live)?.mock_page(&self.apps, &request, handled)
            }
            route @ (Route::Public | Route::Protected) => {
                let upstream = live
                    .upstreams
                    .find(request.uri().path())
                    .ok_or(HttpError::NoUpstream)?;
                let public = route == Route::Public
                    || upstream.is_public(request.method(), request.uri().path());
                if public {
                    let session = self.resolve(&live, &request).await?;
                    handled.outcome = Outcome::Public;
                    handled.user = session.as_ref().map(|s| s.user.clone());
                    let user = session.as_ref().map(|s| &*s.user);
                    self.forward(&live, upstream, request, peer, user).await
                } else {
                    let session = match self.authenticate(&live, &request, handled).await {
                        Err(HttpError::SessionInvalid) if live.web.is_some() => {
                            // A browser opening the page: to the login, and back.
                            let redirect =
                                live.web.as_ref().and_then(|w| w.login_redirect(&request));
                            return redirect.ok_or(HttpError::SessionInvalid);
                        }
                        session => session?,
                    };
                    self.forward(&live, upstream, request, peer, Some(&session.user))
                        .await
                }
            }
        }
    }

    /// `/_wxgate/auth`: `form` is Envoy's original path, `None` for the
    /// `X-Forwarded-*` form.
    async fn forward_auth(
        &self,
        live: &Live,
        request: &Request<RequestBody>,
        form: Option<&str>,
        handled: &mut Handled,
    ) -> Result<Response<Body>, HttpError> {
        let question = forward_auth::Question::of(&live.routes, &live.upstreams, request, form);
        // The question's method and path go to the log line even when refused.
        let question = question.inspect_err(|_| handled.outcome = Outcome::Rejected)?;
        // CSRF is judged on the request asked about (nginx and Envoy pass
        // its headers, Origin included, on to the auth subrequest).
        let session = self
            .resolve_for(live, &question.asked.0, request.headers())
            .await?;
        let owned_cookies = live.web.as_ref().map(WebLogin::cookie_names);
        let asked = (
            request.headers(),
            owned_cookies.as_ref().map_or(&[][..], |n| &n[..]),
        );
        forward_auth::answer(&live.identity, question, session.as_ref(), asked, handled)
    }

    /// The login rate limit: each login (and browser login start) costs a
    /// WeChat call with the app's credentials, so a client IP gets
    /// `[login] burst`, then `rate` (`endpoints::login_limit`). Checked
    /// before the body is read: a refused login costs nothing more.
    /// The client counted (its bucket: an IPv6 /64 is one client).
    fn limit_login(
        &self,
        request: &Request<RequestBody>,
        peer: &Peer,
    ) -> Result<IpAddr, HttpError> {
        let client = bucket(client_ip(
            peer.ip(),
            request.headers(),
            &self.trusted_proxies,
        ));
        self.login_limiter
            .check(client)
            .map_err(|retry_after| HttpError::LoginRateLimited { retry_after })?;
        Ok(client)
    }

    async fn forward(
        &self,
        live: &Live,
        route: &UpstreamRoute,
        mut request: Request<RequestBody>,
        peer: &Peer,
        user: Option<&UserRecord>,
    ) -> Result<Response<Body>, HttpError> {
        let Some(upstream) = self.upstreams.get(route.index) else {
            return Err(HttpError::NoUpstream);
        };
        let upgrade = hop_by_hop::is_upgrade(request.headers());
        if upgrade && !upstream.allows_upgrade(request.headers()) {
            // Refused, not downgraded: the client asked for a tunnel.
            return Err(HttpError::UpgradeNotAllowed);
        }
        let headers = request.headers_mut();
        // Order matters: hop-by-hop first, so `Connection: X-WX-OpenId`
        // cannot remove what is injected below.
        hop_by_hop::strip(headers, upgrade);
        live.identity.strip(headers, peer.is_trusted());
        // wxgate's session cookie is its own; the backend's cookies pass.
        if let Some(web) = &live.web {
            cookie::strip(headers, &web.cookie_names());
        }
        if let Some(user) = user {
            live.identity.inject(headers, user);
        }
        let started = Instant::now();
        let response = upstream
            .forward(request, peer, upgrade, route.timeout)
            .await;
        self.metrics.upstream(route.index, started.elapsed());
        Ok(response?.map(Either::Left))
    }
}

/// `uri` with its path replaced by the canonical `path`, the query's bytes kept.
fn with_path(uri: &Uri, path: &str) -> Result<Uri, HttpError> {
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(proxy::with_query(path, uri.query())?);
    Uri::from_parts(parts)
        .map_err(|_| HttpError::BadRequest("the request path is not valid".to_owned()))
}

/// The web login, or a 404 when `[web]` is not configured.
fn web_login(live: &Live) -> Result<&WebLogin, HttpError> {
    live.web.as_ref().ok_or(HttpError::NotFound(
        "nothing here: no official_account or website app is configured ([web])",
    ))
}

/// Why the app could not be built (the server's `StartError` wraps it).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot build the WeChat HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("cannot set up the session store: {0}")]
    Store(#[from] StoreError),
}

/// The route accepts only `method` (also what a 405's `Allow` header says).
pub(crate) fn require<B>(request: &Request<B>, method: &'static str) -> Result<(), HttpError> {
    if request.method().as_str() == method {
        Ok(())
    } else {
        Err(HttpError::MethodNotAllowed { allow: method })
    }
}
