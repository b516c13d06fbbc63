//! The app's WeChat access token for the backends behind wxgate, on the
//! admin port only (中控): wxgate holds the AppSecret, so a backend that
//! calls WeChat's server APIs (subscription messages, QR codes…) asks
//! wxgate for the token instead of holding a second copy of the secret,
//! whose every `cgi-bin/token` call would invalidate wxgate's token.
//!
//! - `GET /apps/{appid}/access_token` → `{"access_token", "expires_in"}`
//!   (its time left): the token wxgate's own calls use, from
//!   `cgi-bin/stable_token`, refreshed before it expires;
//! - `POST /apps/{appid}/access_token/invalidate {"access_token": "…"}`:
//!   WeChat rejected that token (40001, 42001); it is force-refreshed only
//!   if it is still the current one, so many backends reporting one token
//!   cause one refresh → `{"refreshed": bool}`.
//!
//! Both need the admin token (`super::authorize`). The token is a
//! credential: never in a log line. One replica's cache; shared by a fleet
//! over Redis in a later step (issue 37).

use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::json;

use crate::app::App;
use crate::endpoints::Verb;
use crate::response::{self, Body, HttpError};

/// The invalidate body: `{"access_token": "<token>"}`, far under this.
const BODY_LIMIT: usize = 4096;

pub(super) async fn handle(
    app: &App,
    request: Request<Incoming>,
    rest: &str,
) -> Result<Response<Body>, HttpError> {
    super::authorize(app, request.headers())?;
    let (appid, action) = match rest.split_once('/') {
        Some((appid, "access_token")) => (appid, Action::Show),
        Some((appid, "access_token/invalidate")) => (appid, Action::Invalidate),
        _ => {
            return Err(HttpError::NotFound(
                "use GET /apps/{appid}/access_token or POST /apps/{appid}/access_token/invalidate",
            ));
        }
    };
    let program = app
        .apps()
        .get(appid)
        .ok_or_else(|| HttpError::UnknownApp("the path must name a configured AppID".to_owned()))?;
    match action {
        Action::Show => {
            Verb::Get.admits(request.method())?;
            let (token, left) = program.wechat.access_token().await?;
            crate::audit::Event {
                action: "admin_access_token",
                result: "ok",
                app: Some(program.tag.appid()),
                ..Default::default()
            }
            .record();
            Ok(response::json(
                StatusCode::OK,
                &json!({"access_token": token.expose(), "expires_in": left.as_secs()}),
            ))
        }
        Action::Invalidate => {
            Verb::Post.admits(request.method())?;
            let reported = reported_token(request).await?;
            let refreshed = program.wechat.invalidate_access_token(&reported).await?;
            crate::audit::Event {
                action: "admin_access_token_invalidate",
                result: if refreshed { "refreshed" } else { "unchanged" },
                app: Some(program.tag.appid()),
                ..Default::default()
            }
            .record();
            Ok(response::json(
                StatusCode::OK,
                &json!({ "refreshed": refreshed }),
            ))
        }
    }
}

enum Action {
    Show,
    Invalidate,
}

/// The token in the invalidate body.
async fn reported_token(request: Request<Incoming>) -> Result<String, HttpError> {
    let shape = || {
        HttpError::BadRequest(r#"send {"access_token": "<the token WeChat rejected>"}"#.to_owned())
    };
    let bytes = Limited::new(request.into_body(), BODY_LIMIT)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                HttpError::PayloadTooLarge { limit: BODY_LIMIT }
            } else {
                shape()
            }
        })?
        .to_bytes();
    let object = crate::wire::json::object(&bytes).map_err(|_| shape())?;
    match object.get("access_token").and_then(|t| t.as_str()) {
        Some(token) if !token.is_empty() && token.len() <= 1024 => Ok(token.to_owned()),
        _ => Err(shape()),
    }
}
