//! Who is asking: the session a request names (the session header, or
//! with `[web]` the browser's cookie, CSRF-checked) and what it may reach.

use http::{HeaderMap, Method, Request};

use super::{App, Live};
use crate::config::AppKind;
use crate::domain::apps::WechatApp;
use crate::domain::session::{Resolved, SessionId, SessionStore};
use crate::metrics::Outcome;
use crate::response::{Handled, HttpError};
use crate::wire::body_idle::RequestBody;

impl App {
    /// The request's session, if it has one. One sent by the cookie alone
    /// must pass the CSRF check (`WebLogin::allows`) on an unsafe method.
    pub(super) async fn resolve(
        &self,
        live: &Live,
        request: &Request<RequestBody>,
    ) -> Result<Option<Resolved>, HttpError> {
        self.resolve_for(live, request.method(), request.headers())
            .await
    }

    /// [`Self::resolve`] for a request of `method` (forward-auth: the one
    /// the front proxy asks about, not its own subrequest's).
    pub(super) async fn resolve_for(
        &self,
        live: &Live,
        method: &Method,
        headers: &HeaderMap,
    ) -> Result<Option<Resolved>, HttpError> {
        match credential(live, method, headers)? {
            Some(credential) => Ok(self.sessions.resolve(&credential.into_id()).await?),
            None => Ok(None),
        }
    }

    /// The session a route requires; on success the request counts as authenticated.
    pub(super) async fn authenticate(
        &self,
        live: &Live,
        request: &Request<RequestBody>,
        handled: &mut Handled,
    ) -> Result<Resolved, HttpError> {
        let session = self
            .resolve(live, request)
            .await?
            .ok_or(HttpError::SessionInvalid)?;
        handled.outcome = Outcome::Authenticated;
        handled.user = Some(session.user.clone());
        Ok(session)
    }

    /// The mini-program of the session's user, for the routes only its
    /// session_key serves; a browser session has none.
    pub(super) fn mini_program(&self, session: &Resolved) -> Result<&WechatApp, HttpError> {
        let app = self.app_of(session)?;
        match app.kind {
            AppKind::MiniProgram => Ok(app),
            _ => Err(HttpError::NoSessionKey),
        }
    }

    /// The app of the session's user. Always configured (the stores read
    /// records of other apps as missing); `unknown_app` would say otherwise.
    pub(super) fn app_of(&self, session: &Resolved) -> Result<&WechatApp, HttpError> {
        let appid = session.user.appid();
        self.apps.get(appid).ok_or_else(|| {
            HttpError::UnknownApp(format!("`{appid}` is not an app of this gateway"))
        })
    }
}

/// How a request names its session.
pub(super) enum Credential {
    /// The session header (the mini-program, API clients).
    Header(SessionId),
    /// The session cookie (a browser logged in through `[web]`).
    Cookie(SessionId),
}

impl Credential {
    pub(super) fn into_id(self) -> SessionId {
        match self {
            Self::Header(id) | Self::Cookie(id) => id,
        }
    }
}

/// The session header when exactly one well-formed one is present; else,
/// with `[web]`, the session cookie, refused (`csrf_rejected`) on an unsafe
/// method from another origin. A present session header is never passed
/// over for the cookie.
pub(super) fn credential(
    live: &Live,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Option<Credential>, HttpError> {
    let mut sent = headers.get_all(&live.session_header).iter();
    match (sent.next(), sent.next()) {
        (Some(one), None) => return Ok(SessionId::parse(one.as_bytes()).map(Credential::Header)),
        (Some(_), Some(_)) => return Ok(None), // two copies: ambiguous, as none
        (None, _) => {}
    }
    let Some(web) = &live.web else {
        return Ok(None);
    };
    match web.session_id(headers) {
        Some(_) if !web.allows(method, headers) => Err(HttpError::CsrfRejected),
        id => Ok(id.map(Credential::Cookie)),
    }
}
