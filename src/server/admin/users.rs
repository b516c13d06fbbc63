//! Operator actions on one user, on the admin port only:
//!
//! - `GET /users/{openid}`: the user's record without its secrets (no
//!   session_key, no phone number: only whether there is one);
//! - `POST /users/{openid}/logout`: ends every session of the user on every
//!   replica (an account ban, a stolen phone) in O(1) — the store retires
//!   the user (memory) or raises its generation (Redis). The user's next
//!   login works as usual.
//!
//! With several apps (`[[apps]]`) the user is named by app too:
//! `/users/{openid}?appid=wx…` (with one app the appid may be left out).
//!
//! With `admin.token` set, both need `Authorization: Bearer <token>`;
//! without one, they answer only when the admin port listens on loopback
//! (a sidecar's own pod), never on an address the network reaches.

use http::{Request, Response, StatusCode};
use serde_json::json;

use crate::app::App;
use crate::domain::session::{SessionStore, UserRecord};
use crate::endpoints::Verb;
use crate::response::HttpError;
use crate::response::{self, Body};

/// Longest openid accepted in a path; WeChat's are 28 characters.
const OPENID_LIMIT: usize = 128;

pub(super) async fn handle<B>(
    app: &App,
    request: &Request<B>,
    rest: &str,
) -> Result<Response<Body>, HttpError> {
    super::authorize(app, request.headers())?;
    let (openid, action) = match rest.split_once('/') {
        Some((openid, "logout")) => (openid, Action::Logout),
        Some(_) => {
            return Err(HttpError::NotFound(
                "use GET /users/{openid} or POST /users/{openid}/logout",
            ));
        }
        None => (rest, Action::Show),
    };
    if openid.is_empty()
        || openid.len() > OPENID_LIMIT
        || !openid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(HttpError::BadRequest(
            "the path must name an openid: letters, digits, `-` and `_`".to_owned(),
        ));
    }
    let named = request.uri().query().and_then(|query| {
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix("appid="))
    });
    let program = match named {
        Some(appid) => app.apps().get(appid),
        None => app.apps().only(),
    }
    .ok_or_else(|| {
        HttpError::UnknownApp(
            "name the user's app with ?appid= (one of the configured AppIDs)".to_owned(),
        )
    })?;
    let key = program.tag.user_key(openid);
    let sessions = app.sessions();
    match action {
        Action::Show => {
            Verb::Get.admits(request.method())?;
            let user = sessions
                .user(&key)
                .await?
                .ok_or(HttpError::NotFound("no user with this openid"))?;
            crate::audit::Event {
                action: "admin_user_lookup",
                result: "ok",
                app: Some(user.appid()),
                openid: Some(user.openid()),
                user_id: user.user_id().map(|id| id.as_str()),
                ..Default::default()
            }
            .record();
            Ok(response::json(StatusCode::OK, &shown(&user)))
        }
        Action::Logout => {
            Verb::Post.admits(request.method())?;
            let known = sessions.revoke_user(&key).await?;
            let appid = program.tag.appid();
            crate::audit::Event {
                action: "admin_logout",
                result: "ok",
                app: Some(appid),
                openid: Some(openid),
                detail: Some(if known { "known" } else { "unknown" }),
                ..Default::default()
            }
            .record();
            Ok(response::json(
                StatusCode::OK,
                &json!({ "revoked": true, "known": known }),
            ))
        }
    }
}

enum Action {
    Show,
    Logout,
}

/// What an operator may see of a user.
fn shown(user: &UserRecord) -> serde_json::Value {
    let last_login = std::time::UNIX_EPOCH + std::time::Duration::from_millis(user.last_login);
    json!({
        "appid": user.appid(),
        "openid": user.openid(),
        "unionid": user.unionid(),
        "user_id": user.user_id().map(|id| id.as_str()),
        "phone": user.phone.is_some(),
        "profile": user.profile.is_some(),
        "key_stale": user.key_stale,
        "last_login": humantime::format_rfc3339_seconds(last_login).to_string(),
    })
}
