//! `GET /session`: the server-side counterpart of `wx.checkSession`.
//!
//! Asks WeChat (`wxa/checksession`) whether the user's session_key is still
//! valid. When it is not (87009), the user's key is marked stale, so
//! `/decrypt` answers `session_key_stale` at once instead of trying a key
//! that cannot work; the next login replaces the key and clears the mark.

use http::{Request, Response, StatusCode};
use serde_json::json;

use super::context::{Caller, Context};
use crate::domain::session::{SessionStore, UserUpdate};
use crate::response::HttpError;
use crate::response::{self, Body};
use crate::wire::body_idle::RequestBody;

pub(crate) async fn handle(
    cx: &mut Context<'_>,
    caller: Caller,
    _request: Request<RequestBody>,
) -> Result<Response<Body>, HttpError> {
    let session = caller.session()?;
    let wechat = &cx.mini_program(session)?.wechat;
    let store = &cx.shared.sessions;
    let user = &session.user;
    let valid = !user.key_stale
        && wechat
            .check_session(user.openid(), &user.session_key)
            .await?;
    if !valid && !user.key_stale {
        let update = UserUpdate::KeyStale {
            key: user.session_key.clone(),
        };
        store.update_user(user.key(), update).await?;
    }
    Ok(response::json(
        StatusCode::OK,
        &json!({
            "valid": valid,
            "openid": user.openid(),
            "expires_in": session.expires_in.as_secs(),
        }),
    ))
}
