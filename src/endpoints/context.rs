//! The request context every endpoint takes: pingora's `(session, ctx)`,
//! rpxy's one context.
//!
//! A [`Context`] is made once per request by the app: what lives as long
//! as the process ([`Shared`]: apps, sessions, binding, the login's
//! limits), the settings a reload swaps ([`Live`]), the connection's
//! [`Peer`] and the facts the log line reads ([`Handled`]). An endpoint is
//! one function of `(&mut Context, Caller, Request)`: the table in
//! `endpoints` says which method and what [`Caller`] each needs, and its
//! preamble hands the endpoint the caller it found, so no endpoint repeats
//! that preamble.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, Request};
use ipnet::IpNet;

use super::login::Login;
use super::login_limit::LoginLimiter;
use super::web_login::WebLogin;
use super::web_pages::Lang;
use crate::config::{AssertionKey, Config};
use crate::domain::apps::Apps;
use crate::domain::assertion::Assertions;
use crate::domain::binding::Binding;
use crate::domain::identity::IdentityHeaders;
use crate::domain::policy::Policy;
use crate::domain::route::Routes;
use crate::domain::session::{ClientQuota, Resolved, Sessions};
use crate::proxy::{Peer, UpstreamRoutes};
use crate::response::{Handled, HttpError};
use crate::wire::body_idle::RequestBody;
use crate::wire::client_ip::{bucket, client_ip};

/// What every request may use and no reload changes.
pub(crate) struct Shared {
    pub apps: Apps,
    pub sessions: Sessions,
    /// `[binding]`, when configured.
    pub binding: Option<Binding>,
    pub login: Login,
    pub login_limiter: LoginLimiter,
    /// Browser logins in flight per client (`[web]`'s start route).
    pub login_quota: ClientQuota,
    /// `server.trusted_proxies`, for each connection's [`Peer`] and the
    /// client a login is counted against.
    pub trusted_proxies: Arc<[IpNet]>,
}

/// The settings a reload can change, swapped whole (`App::reload`): a
/// request sees one version from start to end.
pub(crate) struct Live {
    pub routes: Routes,
    pub identity: IdentityHeaders,
    pub session_header: HeaderName,
    pub upstreams: UpstreamRoutes,
    pub drain_timeout: Duration,
    /// `[web]`: browser logins and the session cookie.
    pub web: Option<WebLogin>,
    /// `[[rules]]`.
    pub policy: Policy,
    /// `[assertion]`: the signer, its keys as last read.
    pub assertion: Option<Assertions>,
}

impl Live {
    /// `former`: the settings this reload replaces, whose stripped header
    /// names stay stripped; `generated`: the assertion key made at start,
    /// which signs when `assertion.key_files` names none.
    pub(crate) fn new(
        config: &Config,
        former: Option<&Live>,
        generated: Option<&AssertionKey>,
    ) -> Self {
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
            policy: Policy::new(&config.rules, &config.routes.normalize, &config.apps),
            assertion: config
                .assertion
                .as_ref()
                .zip(generated)
                .map(|(assertion, generated)| {
                    Assertions::new(
                        assertion,
                        generated,
                        &config.upstreams,
                        &config.apps,
                        config.web.as_ref().map(|web| web.public_url.as_str()),
                    )
                }),
        }
    }
}

/// Who is asking, as far as the route's preamble looked ([`super::Needs`]).
pub(crate) enum Caller {
    /// Not looked at: the route needs no one.
    Anyone,
    /// The client a login was counted against (its rate-limit bucket).
    Client(IpAddr),
    /// A valid session (of a mini-program, when the route says so).
    Session(Resolved),
}

impl Caller {
    /// The session the preamble found (routes that need one).
    pub(crate) fn session(&self) -> Result<&Resolved, HttpError> {
        match self {
            Self::Session(session) => Ok(session),
            _ => Err(HttpError::SessionInvalid),
        }
    }

    /// The client the preamble counted a login against.
    pub(crate) fn client(&self) -> Result<IpAddr, HttpError> {
        match *self {
            Self::Client(client) => Ok(client),
            _ => Err(HttpError::Internal(
                "a login route ran without its rate limit".to_owned(),
            )),
        }
    }
}

/// One request's context.
pub(crate) struct Context<'a> {
    pub shared: &'a Shared,
    pub live: &'a Live,
    pub peer: &'a Peer,
    /// What the log line says of the request.
    pub handled: Handled,
    /// A browser's route: errors are answered as a page in this language
    /// (`web_pages`), not JSON.
    pub page: Option<Lang>,
}

impl<'a> Context<'a> {
    pub(crate) fn new(
        shared: &'a Shared,
        live: &'a Live,
        peer: &'a Peer,
        handled: Handled,
    ) -> Self {
        Self {
            shared,
            live,
            peer,
            handled,
            page: None,
        }
    }

    /// Who sent `request`: the peer, or the client a trusted proxy names.
    pub(crate) fn client_of(&self, headers: &http::HeaderMap) -> IpAddr {
        client_ip(self.peer.ip(), headers, &self.shared.trusted_proxies)
    }

    /// The web login, or a 404 when `[web]` is not configured.
    pub(crate) fn web(&self) -> Result<&'a WebLogin, HttpError> {
        self.live.web.as_ref().ok_or(HttpError::NotFound(
            "nothing here: no official_account or website app is configured ([web])",
        ))
    }

    /// The login rate limit: each login (and browser login start) costs a
    /// WeChat call with the app's credentials, so a client IP gets
    /// `[login] burst`, then `rate` (`endpoints::login_limit`). Checked
    /// before the body is read: a refused login costs nothing more.
    /// The client counted (its bucket: an IPv6 /64 is one client).
    pub(crate) fn limit_login(&self, request: &Request<RequestBody>) -> Result<IpAddr, HttpError> {
        let limiter = &self.shared.login_limiter;
        let client = bucket(self.client_of(request.headers()));
        limiter
            .check(client)
            .map_err(|retry_after| HttpError::LoginRateLimited { retry_after })?;
        Ok(client)
    }
}
