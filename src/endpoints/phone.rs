//! `POST /phone`: the phone number behind a `getPhoneNumber` button's code.
//!
//! The current way (since 2021): the button yields a one-time code, which
//! wxgate trades with `getuserphonenumber` using the access token of the
//! session's app.
//! The number is kept on the user record, so that, when `[headers] phone`
//! is configured, it reaches the upstream like the other identity headers.
//! A number new to the record is also sent to the binding endpoint (when
//! `[binding]` is on), which may bind the account by it.

use crate::wire::body_idle::RequestBody;
use http::{Request, Response, StatusCode};
use serde::Deserialize;

use super::context::{Caller, Context};
use super::login::CODE_LIMIT;
use crate::domain::session::{SessionStore, UserUpdate};
use crate::response::HttpError;
use crate::response::{self, Body};
use crate::wire::body;

const BODY_LIMIT: usize = 16 * 1024;

#[derive(Deserialize)]
struct PhoneRequest {
    code: String,
}

pub(crate) async fn handle(
    cx: &mut Context<'_>,
    caller: Caller,
    request: Request<RequestBody>,
) -> Result<Response<Body>, HttpError> {
    let request: PhoneRequest = body::read_json(
        request,
        BODY_LIMIT,
        r#"{"code": "<the code from the getPhoneNumber button>"}"#,
    )
    .await?;
    if request.code.is_empty() || request.code.len() > CODE_LIMIT {
        return Err(HttpError::BadRequest(
            "`code` must be the non-empty code from the getPhoneNumber button".to_owned(),
        ));
    }
    let session = caller.session()?;
    let wechat = &cx.mini_program(session)?.wechat;
    let (store, binding) = (&cx.shared.sessions, cx.shared.binding.as_ref());
    let phone = wechat
        .phone_number(&request.code, session.user.openid())
        .await?;
    let updated = store
        .update_user(session.user.key(), UserUpdate::SetPhone(phone.clone()))
        .await?;
    if let Some(binding) = binding
        && let Some(user) = updated
        && session.user.phone.as_deref() != Some(&phone)
    {
        binding.rebind_with_phone(store, &user).await;
    }
    let answer = serde_json::to_value(&phone).unwrap_or_default();
    Ok(response::json(StatusCode::OK, &answer))
}
