//! `POST /decrypt`: decrypt the user's encrypted data with the user's
//! CURRENT session_key.
//!
//! The key comes from the user record, not the session, so every session of
//! a user decrypts with the key of the user's newest login — the one WeChat
//! encrypts with. A key WeChat has declared invalid (checksession 87009) is
//! not even tried. A phone number found in the data (legacy
//! `getPhoneNumber`) is kept on the user record.

use crate::wire::body_idle::RequestBody;
use http::{Request, Response, StatusCode};
use serde::Deserialize;

use super::context::{Caller, Context};
use crate::domain::session::{SessionStore, UserRecord, UserUpdate};
use crate::domain::wechat::wxdata;
use crate::response::HttpError;
use crate::response::{self, Body};
use crate::telemetry::{KeyValue, Span, SpanKind};
use crate::wire::body;

/// WeRun data (30 days of steps) is the largest payload: a few KiB.
const BODY_LIMIT: usize = 64 * 1024;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DecryptRequest {
    encrypted_data: String,
    iv: String,
}

pub(crate) async fn handle(
    cx: &mut Context<'_>,
    caller: Caller,
    request: Request<RequestBody>,
) -> Result<Response<Body>, HttpError> {
    let request: DecryptRequest = body::read_json(
        request,
        BODY_LIMIT,
        r#"{"encryptedData": "<base64>", "iv": "<base64>"}"#,
    )
    .await?;
    let user = &caller.session()?.user;
    let store = &cx.shared.sessions;
    let data = decrypt_for(store, user, &request.encrypted_data, &request.iv).await?;
    Ok(response::json(
        StatusCode::OK,
        &serde_json::Value::Object(data),
    ))
}

/// Decrypts with `user`'s key, checks the watermark against the user's
/// app (a session of one app never opens another app's data), and keeps
/// any phone number found.
pub(crate) async fn decrypt_for<S: SessionStore>(
    store: &S,
    user: &UserRecord,
    encrypted_data: &str,
    iv: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, HttpError> {
    if user.key_stale {
        return Err(HttpError::SessionKeyStale);
    }
    let span = Span::start(SpanKind::Internal, || {
        let attributes = vec![KeyValue::new("wxgate.app", user.appid().to_owned())];
        ("decrypt".into(), attributes)
    });
    let data = wxdata::decrypt(&user.session_key, encrypted_data, iv, user.appid())
        .inspect_err(|e| span.fail(HttpError::from(e.clone()).code()))?;
    let phone = wxdata::phone_of(&data);
    span.set(KeyValue::new("wxgate.decrypt.phone", phone.is_some()));
    drop(span);
    if let Some(phone) = phone {
        store
            .update_user(user.key(), UserUpdate::SetPhone(phone))
            .await?;
    }
    Ok(data)
}
