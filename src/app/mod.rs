//! The request flow, inside the tower stack (`stack`): `handle` →
//! `handle_request_inner`.
//!
//! `handle_request_inner` makes the path canonical, routes the request and
//! returns `Result<Response, HttpError>`: wxgate's own routes go to their
//! [`Endpoint`] (the table in `endpoints`, which runs each route's
//! preamble), the others to the upstream (`forward`). `handle` turns an
//! error into its answer (`HttpError::into_response`, the one place that
//! does; on a browser's route a page in the reader's language,
//! `endpoints::web_pages`) and hands the stack's observe
//! layer an [`Answer`]: the response, what was handled (the request's
//! [`Outcome`], its user) and the error answered, for the request's single
//! log line and its metrics. `/readyz` is `readiness`'s.
//!
//! What a SIGHUP may change (routes, header names, timeouts) lives in
//! [`Live`], swapped whole by [`App::reload`]; a request sees one version
//! from start to end.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use http::{Method, Request, Response, Uri};
use http_body_util::Either;
use ipnet::IpNet;

use crate::config::{AdminConfig, AssertionKey, Config};
use crate::domain::apps::Apps;
use crate::domain::binding::Binding;
use crate::domain::credentials::CredentialCheck;
use crate::domain::route::Route;
use crate::domain::session::{ClientQuota, Resolved, Sessions, StoreError};
use crate::endpoints::access::Access;
use crate::endpoints::context::{Context, Live, Shared};
use crate::endpoints::login::Login;
use crate::endpoints::login_limit::LoginLimiter;
use crate::endpoints::{Answering, endpoint, jwks, web_pages};
use crate::metrics::Metrics;
use crate::metrics::Outcome;
use crate::proxy::{self, Peer, UntrustedForwarded, Upstream, UpstreamRoute};
use crate::response::Body;
use crate::response::HttpError;
use crate::response::{Answer, Handled};
use crate::telemetry::{self, KeyValue, Tracer, Tracing, TracingError};
use crate::wire::body_idle::RequestBody;
use crate::wire::canonical_path::canonicalize;
use crate::wire::request_id::RequestIds;
use crate::wire::{cookie, hop_by_hop};

mod readiness;

pub struct App {
    live: ArcSwap<Live>,
    /// What every endpoint may use (`endpoints::context`).
    shared: Shared,
    /// In config order (`UpstreamRoute::index`).
    upstreams: Vec<Upstream>,
    draining: AtomicBool,
    /// Set once the proxy's listeners serve (`/readyz` says "starting" before).
    started: AtomicBool,
    /// What WeChat said of the apps' credentials at the last check.
    credentials: CredentialCheck,
    metrics: Arc<Metrics>,
    request_ids: Arc<RequestIds>,

    /// Swapped whole by a reload: its token may be re-read (`admin.token_file`).
    admin: ArcSwap<AdminConfig>,
    /// Says when wxgate seems to sit behind a proxy it does not trust.
    untrusted_forwarded: UntrustedForwarded,
    body_idle_timeout: Duration,
    /// Per worker thread (`stack::Worker`).
    max_in_flight: usize,
    /// `server.h2c`.
    h2c: bool,
    /// Made at start when `[assertion]` is on: it signs while
    /// `assertion.key_files` names no key.
    assertion_key: Option<AssertionKey>,
    /// What starts each request's span, with `[tracing]` on.
    tracer: Option<Tracer>,
    /// Span export (`[tracing]`), taken when wxgate stops.
    tracing: std::sync::Mutex<Option<Tracing>>,
}

impl App {
    pub fn new(config: &Config) -> Result<Self, BuildError> {
        let prefixes: Vec<&str> = config.upstreams.iter().map(|u| u.prefix.as_str()).collect();
        let metrics = Arc::new(Metrics::new(&prefixes));
        let sessions = Sessions::new(config, metrics.store.clone())?;
        let shared = Shared {
            apps: Apps::new(&config.apps, &metrics.wechat, sessions.fleet_secrets())?,
            sessions,
            login: Login::new(config),
            binding: config
                .binding
                .as_ref()
                .map(|b| Binding::new(b, metrics.binding.clone()))
                .transpose()?,
            login_limiter: LoginLimiter::new(&config.login),
            // `[web]` cannot change on a reload: its state_ttl is fixed.
            login_quota: ClientQuota::new(
                config
                    .web
                    .as_ref()
                    .map_or(Duration::from_secs(600), |web| web.state_ttl),
            ),
            trusted_proxies: config.server.trusted_proxies.clone().into(),
        };
        let untrusted_forwarded = UntrustedForwarded::new(metrics.untrusted_forwarded.clone());
        let assertion_key = config
            .assertion
            .as_ref()
            .map(|_| AssertionKey::generate())
            .transpose()
            .map_err(BuildError::Random)?;
        let tracing = config
            .tracing
            .as_ref()
            .map(|tracing| Tracing::start(tracing, metrics.spans.clone()))
            .transpose()?;
        Ok(Self {
            live: ArcSwap::from_pointee(Live::new(config, None, assertion_key.as_ref())),
            shared,
            upstreams: config.upstreams.iter().map(Upstream::new).collect(),
            draining: AtomicBool::new(false),
            started: AtomicBool::new(false),
            credentials: CredentialCheck::default(),
            metrics,
            request_ids: Arc::new(RequestIds::new()),

            admin: ArcSwap::from_pointee(config.admin.clone()),
            untrusted_forwarded,
            body_idle_timeout: config.server.body_idle_timeout,
            max_in_flight: config.server.max_in_flight,
            h2c: config.server.h2c,
            assertion_key,
            tracer: tracing.as_ref().map(|t| t.tracer().clone()),
            tracing: std::sync::Mutex::new(tracing),
        })
    }

    /// Sends the spans still queued (a few seconds at most) and stops
    /// exporting: the last thing a stopping wxgate does.
    pub async fn stop_tracing(&self) {
        let tracing = match self.tracing.lock() {
            Ok(mut tracing) => tracing.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(tracing) = tracing {
            tracing.stop(Duration::from_secs(5)).await;
        }
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub(crate) fn tracer(&self) -> Option<&Tracer> {
        self.tracer.as_ref()
    }

    pub(crate) fn request_ids(&self) -> &RequestIds {
        &self.request_ids
    }

    pub(crate) fn apps(&self) -> &Apps {
        &self.shared.apps
    }

    pub(crate) fn sessions(&self) -> &Sessions {
        &self.shared.sessions
    }

    pub(crate) fn admin(&self) -> Arc<AdminConfig> {
        self.admin.load_full()
    }

    pub(crate) fn body_idle_timeout(&self) -> Duration {
        self.body_idle_timeout
    }

    /// `server.trusted_proxies`, for each connection's [`Peer`].
    pub(crate) fn trusted_proxies(&self) -> &Arc<[IpNet]> {
        &self.shared.trusted_proxies
    }

    /// Whether a cleartext connection may speak HTTP/2 (`server.h2c`).
    pub(crate) fn h2c(&self) -> bool {
        self.h2c
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
            if let Some(running) = self.shared.apps.get(&app.appid) {
                running.wechat.set_secret(&app.secret);
                running
                    .secret_origin
                    .store(std::sync::Arc::new(app.secret_origin.clone()));
            }
        }
        self.admin.store(Arc::new(config.admin.clone()));
        if let (Some(binding), Some(new)) = (&self.shared.binding, &config.binding) {
            binding.set_token(new.token.clone());
        }
        let former = self.live.load();
        self.live.store(Arc::new(Live::new(
            config,
            Some(&former),
            self.assertion_key.as_ref(),
        )));
    }

    /// From now on `/readyz` answers 503, so load balancers stop sending traffic.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
        self.metrics.draining();
    }

    pub fn drain_timeout(&self) -> Duration {
        self.live.load().drain_timeout
    }

    /// The JWKS answer (`[assertion]`), for the admin port.
    pub(crate) fn jwks(&self) -> Option<Response<Body>> {
        self.live.load().assertion.as_ref().map(jwks::answer)
    }

    /// The Prometheus exposition text.
    pub async fn metrics_text(&self) -> String {
        self.metrics.encode(self.shared.sessions.live().await)
    }

    /// Answers one request; an error becomes its answer here. The
    /// request's outcome travels beside the response to the access log.
    ///
    /// Owning what it needs and never failing (the stack's service), so
    /// that its future is the one the stack boxes, made in its box: each
    /// future awaited inside another is copied whole, and this one is 4 KB.
    pub(crate) async fn handle(
        self: Arc<Self>,
        request: Request<RequestBody>,
        peer: Arc<Peer>,
    ) -> Result<Answer, std::convert::Infallible> {
        let peer = &*peer;
        self.untrusted_forwarded.check(request.headers(), peer);
        let live = self.live.load();
        let handled = Handled::from(Outcome::Rejected);
        let mut cx = Context::new(&self.shared, &live, peer, handled);
        telemetry::annotate(|| {
            vec![
                KeyValue::new(
                    "client.address",
                    cx.client_of(request.headers()).to_string(),
                ),
                KeyValue::new("network.peer.address", peer.ip().to_string()),
                KeyValue::new("url.scheme", if peer.is_tls() { "https" } else { "http" }),
            ]
        });
        match self.handle_request_inner(&mut cx, request).await {
            Ok(response) => Ok(Answer {
                response,
                handled: cx.handled,
                error: None,
            }),
            Err(e) => {
                let mut handled = cx.handled;
                if matches!(e, HttpError::BodyMalformed(_) | HttpError::BodyIdle(_)) {
                    // The client's body failed, whatever route it was on.
                    handled.outcome = Outcome::Rejected;
                }
                let response = match (cx.page, &cx.live.web) {
                    (Some(lang), Some(web)) => web_pages::error_page(web, &e, lang),
                    _ => e.into_response(),
                };
                Ok(Answer {
                    response,
                    handled,
                    error: Some(e),
                })
            }
        }
    }

    async fn handle_request_inner(
        &self,
        cx: &mut Context<'_>,
        mut request: Request<RequestBody>,
    ) -> Result<Response<Body>, HttpError> {
        let live = cx.live;
        // CONNECT asks for a tunnel, not a resource (RFC 9110 §9.3.6; HTTP/2:
        // RFC 9113 §8.5, and extended CONNECT is not offered): none is opened.
        if request.method() == Method::CONNECT {
            return Err(HttpError::MethodNotAllowed {
                allow: "GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS",
            });
        }
        // Forward-auth is told by its raw path: Envoy's original path after
        // the route is made canonical on its own.
        if live.routes.forward_auth(request.uri().path()).is_some() {
            return own(cx, Route::ForwardAuth, request).await;
        }
        // One canonical path for every decision below and for the backend.
        let canonical = match canonicalize(request.uri().path(), live.routes.normalize())? {
            Cow::Borrowed(_) => None,
            Cow::Owned(path) => Some(path),
        };
        if let Some(path) = canonical {
            *request.uri_mut() = with_path(request.uri(), &path)?;
            cx.handled.path = Some(path.into_boxed_str());
        }
        let route = live.routes.classify(request.method(), request.uri().path());
        if !matches!(route, Route::Public | Route::Protected) {
            return own(cx, route, request).await;
        }
        let (method, path) = (request.method(), request.uri().path());
        let access = Access::of(live, method, path, route == Route::Public)?;
        let upstream = access.upstream;
        if access.public {
            let session = cx.resolve(&request).await?;
            cx.handled.outcome = Outcome::Public;
            cx.handled.user = session.as_ref().map(|s| s.user.clone());
            self.forward(cx, upstream, request, session.as_ref()).await
        } else {
            let session = match cx.authenticate(&request).await {
                Err(HttpError::SessionInvalid) if live.web.is_some() => {
                    // A browser opening the page: to the login, and back.
                    let redirect = live.web.as_ref().and_then(|w| w.login_redirect(&request));
                    return redirect.ok_or(HttpError::SessionInvalid);
                }
                session => session?,
            };
            access.admits(
                live,
                (request.method(), request.uri().path()),
                &session.user,
            )?;
            self.forward(cx, upstream, request, Some(&session)).await
        }
    }

    async fn forward(
        &self,
        cx: &Context<'_>,
        route: &UpstreamRoute,
        mut request: Request<RequestBody>,
        session: Option<&Resolved>,
    ) -> Result<Response<Body>, HttpError> {
        let Some(upstream) = self.upstreams.get(route.index) else {
            return Err(HttpError::NoUpstream);
        };
        let (live, peer) = (cx.live, cx.peer);
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
        // Room for what wxgate adds (identity, assertion, proxy headers) at
        // once: a map that grows on one of them rehashes every entry.
        headers.reserve(ADDED_HEADERS);
        if let Some(session) = session {
            live.identity.inject(headers, &session.user);
            if let Some(assertion) = &live.assertion {
                let token = assertion.token(session, route.index)?;
                // Absent (stripped above): appended, with nothing to replace.
                headers.append(assertion.header(), token);
            }
        }
        // The backend's spans are children of this one (W3C headers written
        // here, with tracing on).
        let span = upstream.span(request.method(), request.uri().path());
        telemetry::propagate(&span, request.headers_mut());
        let started = Instant::now();
        let response = upstream
            .forward(request, peer, upgrade, route.timeout)
            .await;
        self.metrics.upstream(route.index, started.elapsed());
        proxy::answered(&span, &response);
        drop(span);
        Ok(response?.map(Either::Left))
    }
}

/// The most headers wxgate adds to a forwarded request: five of identity,
/// the assertion, five proxy headers (`proxy::forwarded`).
const ADDED_HEADERS: usize = 11;

/// One of wxgate's own routes, its future boxed: the WeChat calls inside
/// them are large, and every proxied request's future would otherwise be
/// as large (6.8 KB before, 4.0 KB after), held for each request in flight.
fn own<'c>(cx: &'c mut Context<'_>, route: Route, request: Request<RequestBody>) -> Answering<'c> {
    match endpoint(route) {
        Some(endpoint) => Box::pin(endpoint.call(cx, request)),
        None => Box::pin(std::future::ready(Err(HttpError::NoUpstream))),
    }
}

/// `uri` with its path replaced by the canonical `path`, the query's bytes kept.
fn with_path(uri: &Uri, path: &str) -> Result<Uri, HttpError> {
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(proxy::with_query(path, uri.query())?);
    Uri::from_parts(parts)
        .map_err(|_| HttpError::BadRequest("the request path is not valid".to_owned()))
}

/// Why the app could not be built (the server's `StartError` wraps it).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot build the WeChat HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("cannot set up the session store: {0}")]
    Store(#[from] StoreError),
    #[error("cannot make the assertion key: {0}")]
    Random(getrandom::Error),
    #[error(transparent)]
    Tracing(#[from] TracingError),
}
