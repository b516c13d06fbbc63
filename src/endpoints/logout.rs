//! `POST /logout`: ends the session everywhere (the store's revocation
//! reaches every replica's local cache; see `domain::session`), and a
//! browser's session cookie with it, whichever way it logged out.
//!
//! Idempotent: ending an unknown or absent session succeeds too, so a
//! client that retries after a lost answer sees the same 204.

use http::header::SET_COOKIE;
use http::{Request, Response, StatusCode};

use super::context::{Caller, Context};
use super::credential::{Credential, credential};
use super::web_login::WebLogin;
use crate::domain::session::SessionStore;
use crate::response::{self, Body, HttpError};
use crate::wire::body_idle::RequestBody;

pub(crate) async fn handle(
    cx: &mut Context<'_>,
    _caller: Caller,
    request: Request<RequestBody>,
) -> Result<Response<Body>, HttpError> {
    let id = credential(cx.live, request.method(), request.headers())?.map(Credential::into_id);
    if let Some(id) = id {
        // Whose it was, for the log line and the audit trail; a lookup
        // that fails does not stop the logout.
        if let Ok(Some(session)) = cx.shared.sessions.resolve(&id).await {
            cx.handled.user = Some(session.user);
        }
        cx.shared.sessions.logout(&id).await?;
    }
    let mut response = response::empty(StatusCode::NO_CONTENT);
    if let Some(clear) = cx
        .live
        .web
        .as_ref()
        .and_then(WebLogin::clear_session_cookie)
    {
        response.headers_mut().append(SET_COOKIE, clear);
    }
    Ok(response)
}
