//! Who is asking: the session a request names (the session header, or
//! with `[web]` the browser's cookie, CSRF-checked) and what it may reach.

use http::{HeaderMap, Method, Request};

use super::context::{Context, Live};
use crate::config::AppKind;
use crate::domain::apps::WechatApp;
use crate::domain::session::{Resolved, SessionId, SessionStore};
use crate::metrics::Outcome;
use crate::response::HttpError;
use crate::wire::body_idle::RequestBody;

impl<'a> Context<'a> {
    /// The request's session, if it has one. One sent by the cookie alone
    /// must pass the CSRF check (`WebLogin::allows`) on an unsafe method.
    pub(crate) async fn resolve(
        &self,
        request: &Request<RequestBody>,
    ) -> Result<Option<Resolved>, HttpError> {
        self.resolve_for(request.method(), request.headers()).await
    }

    /// [`Self::resolve`] for a request of `method` (forward-auth: the one
    /// the front proxy asks about, not its own subrequest's).
    pub(crate) async fn resolve_for(
        &self,
        method: &Method,
        headers: &HeaderMap,
    ) -> Result<Option<Resolved>, HttpError> {
        let found = credential(self.live, method, headers).inspect_err(|e| {
            if matches!(e, HttpError::CsrfRejected) {
                crate::audit::Event {
                    action: "csrf",
                    result: e.code(),
                    client_ip: Some(self.client_of(headers)),
                    request_id: headers
                        .get(&crate::wire::request_id::HEADER)
                        .and_then(|id| id.to_str().ok()),
                    trace_id: headers
                        .get(&crate::wire::trace_context::TRACEPARENT)
                        .and_then(|tp| tp.to_str().ok())
                        .and_then(|tp| tp.get(3..35)),
                    ..Default::default()
                }
                .record();
            }
        })?;
        match found {
            Some(credential) => Ok(self.shared.sessions.resolve(&credential.into_id()).await?),
            None => Ok(None),
        }
    }

    /// The session a route requires; on success the request counts as authenticated.
    pub(crate) async fn authenticate(
        &mut self,
        request: &Request<RequestBody>,
    ) -> Result<Resolved, HttpError> {
        let session = self
            .resolve(request)
            .await?
            .ok_or(HttpError::SessionInvalid)?;
        self.handled.outcome = Outcome::Authenticated;
        self.handled.user = Some(session.user.clone());
        Ok(session)
    }

    /// The mini-program of the session's user, for the routes only its
    /// session_key serves; a browser session has none.
    pub(crate) fn mini_program(&self, session: &Resolved) -> Result<&'a WechatApp, HttpError> {
        let app = self.app_of(session)?;
        match app.kind {
            AppKind::MiniProgram => Ok(app),
            _ => Err(HttpError::NoSessionKey),
        }
    }

    /// The app of the session's user. Always configured (the stores read
    /// records of other apps as missing); `unknown_app` would say otherwise.
    pub(crate) fn app_of(&self, session: &Resolved) -> Result<&'a WechatApp, HttpError> {
        let appid = session.user.appid();
        self.shared.apps.get(appid).ok_or_else(|| {
            HttpError::UnknownApp(format!("`{appid}` is not an app of this gateway"))
        })
    }
}

/// How a request names its session.
pub(crate) enum Credential {
    /// The session header (the mini-program, API clients).
    Header(SessionId),
    /// The session cookie (a browser logged in through `[web]`).
    Cookie(SessionId),
}

impl Credential {
    pub(crate) fn into_id(self) -> SessionId {
        match self {
            Self::Header(id) | Self::Cookie(id) => id,
        }
    }
}

/// The session header when exactly one well-formed one is present; else,
/// with `[web]`, the session cookie, refused (`csrf_rejected`) on an unsafe
/// method from another origin. A present session header is never passed
/// over for the cookie.
pub(crate) fn credential(
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
