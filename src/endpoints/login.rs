//! `POST /login`: trade a `wx.login()` code for a wxgate session.
//!
//! WeChat codes are single-use, and mini-programs often send one code twice
//! (a double tap, a retried request). Concurrent logins with the same code
//! therefore share ONE `jscode2session` call and one session
//! ([`SingleFlight`]); a later replay of the code goes to WeChat and gets
//! WeChat's own "code used" answer.
//!
//! A login may carry the user's encrypted data (`encryptedData` + `iv`) and
//! signed profile (`rawData` + `signature`): they are checked with the key
//! this very login obtained, the race-free way (Tencent's wafer did the
//! same). If they fail, the new session is ended and the error returned.
//!
//! With several apps (`[[apps]]`) the body's `appid`, or WeChat's Referer,
//! says which app the code is for (`domain::apps`).

use std::sync::Arc;

use crate::wire::body_idle::RequestBody;
use http::{Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::context::{Caller, Context};
use crate::config::Config;
use crate::domain::apps::WechatApp;
use crate::domain::binding::{Binding, Bound};
use crate::domain::session::{SessionId, SessionStore, UserRecord};
use crate::domain::single_flight::SingleFlight;
use crate::domain::wechat::wxdata;
use crate::endpoints::decrypt;
use crate::response::HttpError;
use crate::response::{self, Body};
use crate::wire::{body, json};

/// Largest accepted login body (encrypted data included).
pub(crate) const BODY_LIMIT: usize = 16 * 1024;
/// Longest accepted code; WeChat's are 32 characters.
pub(crate) const CODE_LIMIT: usize = 1024;

pub(crate) struct Login {
    inflight: SingleFlight<(SessionId, Arc<UserRecord>)>,
    expires_in: u64,
}

/// A parsed login body.
#[derive(Debug, PartialEq)]
struct LoginBody {
    code: String,
    /// The app the code is for, when the client says.
    appid: Option<String>,
    /// `encryptedData` and `iv`.
    encrypted: Option<(String, String)>,
    /// `rawData` and `signature`.
    signed: Option<(String, String)>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLoginBody {
    code: Option<serde_json::Value>,
    appid: Option<serde_json::Value>,
    encrypted_data: Option<serde_json::Value>,
    iv: Option<serde_json::Value>,
    raw_data: Option<serde_json::Value>,
    signature: Option<serde_json::Value>,
}

impl Login {
    pub(crate) fn new(config: &Config) -> Self {
        Self {
            inflight: SingleFlight::new(),
            expires_in: config.session.ttl.as_secs(),
        }
    }
}

/// The endpoint: the login, and the data that came with it.
pub(crate) async fn handle(
    cx: &mut Context<'_>,
    _caller: Caller,
    request: Request<RequestBody>,
) -> Result<Response<Body>, HttpError> {
    let shared = cx.shared;
    let (store, binding) = (&shared.sessions, shared.binding.as_ref());
    let (parts, body) = request.into_parts();
    let bytes = body::read_limited(&parts.headers, body, BODY_LIMIT).await?;
    let login = parse(&bytes)?;
    let app = shared
        .apps
        .for_login(login.appid.as_deref(), &parts.headers)?;
    cx.handled.app = Some(app.tag.appid_shared().clone());
    // Codes are per app: the same text for two apps is two logins.
    let flight = format!("{}\n{}", app.tag.appid(), login.code);
    let (id, user) = shared
        .login
        .inflight
        .run(&flight, open_session(app, store, binding, &login.code))
        .await
        .map_err(|e: Arc<HttpError>| (*e).clone())?;
    tracing::debug!(session = %id.redacted(), "login");

    let expires_in = shared.login.expires_in;
    let mut answer = json!({ "session_id": id.encode(), "expires_in": expires_in });
    match check_data(store, &login, &user).await {
        Ok(Some(data)) => answer["data"] = serde_json::Value::Object(data),
        Ok(None) => {}
        Err(e) => {
            store.logout(&id).await?;
            return Err(e);
        }
    }
    // Who logged in, for the log line and the audit trail.
    cx.handled.user = Some(user);
    Ok(response::json(StatusCode::OK, &answer))
}

/// Verifies `rawData` and decrypts `encryptedData`, when present.
async fn check_data<S: SessionStore>(
    store: &S,
    login: &LoginBody,
    user: &UserRecord,
) -> Result<Option<serde_json::Map<String, serde_json::Value>>, HttpError> {
    if let Some((raw_data, signature)) = &login.signed
        && !wxdata::signature_matches(raw_data, &user.session_key, signature)
    {
        return Err(HttpError::SignatureMismatch);
    }
    match &login.encrypted {
        Some((data, iv)) => Ok(Some(decrypt::decrypt_for(store, user, data, iv).await?)),
        None => Ok(None),
    }
}

async fn open_session<S: SessionStore>(
    app: &WechatApp,
    store: &S,
    binding: Option<&Binding>,
    code: &str,
) -> Result<(SessionId, Arc<UserRecord>), HttpError> {
    let wx = app.wechat.code2session(code).await?;
    let user = UserRecord::new(&app.tag, &wx.openid, wx.unionid.as_deref(), wx.session_key)?;
    store_and_bind(store, binding, user).await
}

/// Stores `user` as its app's newest login and opens a session, bound to
/// the business user id by `[binding]` when configured; with
/// `binding.required`, no session is handed out unbound. Browser logins
/// (`web_login`) go the same way.
pub(crate) async fn store_and_bind<S: SessionStore>(
    store: &S,
    binding: Option<&Binding>,
    user: UserRecord,
) -> Result<(SessionId, Arc<UserRecord>), HttpError> {
    let (id, user) = store.login(user).await?;
    let Some(binding) = binding else {
        return Ok((id, user));
    };
    let refusal = match binding.bind_at_login(store, user.clone()).await {
        Ok((Bound::Id(_), bound)) => return Ok((id, bound)),
        Ok((Bound::NotFound, _)) => HttpError::UserNotBound,
        Err(e) => HttpError::BindingUnavailable(e.to_string()),
    };
    if !binding.required() {
        // Unbound for now; the next login asks again.
        if let HttpError::BindingUnavailable(why) = &refusal {
            tracing::warn!(
                error = why.as_str(),
                "binding failed; the login goes on unbound"
            );
        }
        return Ok((id, user));
    }
    // No session is handed out.
    store.logout(&id).await?;
    Err(refusal)
}

fn parse(bytes: &[u8]) -> Result<LoginBody, HttpError> {
    const SHAPE: &str = r#"send a JSON body like {"code": "<the code from wx.login()>"}"#;
    let bad = |why: &str| HttpError::BadRequest(format!("{why}: {SHAPE}"));
    if bytes.is_empty() {
        return Err(bad("the body is empty"));
    }
    let object = json::object(bytes).map_err(|e| bad(&e.to_string()))?;
    let raw: RawLoginBody = serde_json::from_value(serde_json::Value::Object(object))
        .map_err(|_| bad("the body is not a JSON object"))?;
    let code = match raw.code {
        None | Some(serde_json::Value::Null) => return Err(bad("`code` is missing")),
        Some(serde_json::Value::String(code)) if code.is_empty() => {
            return Err(bad("`code` is empty"));
        }
        Some(serde_json::Value::String(code)) if code.len() > CODE_LIMIT => {
            return Err(bad("`code` is too long"));
        }
        Some(serde_json::Value::String(code)) => code,
        Some(_) => return Err(bad("`code` is not a string")),
    };
    let appid = match raw.appid {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(appid))
            if !appid.is_empty() && appid.len() <= crate::config::APPID_MAX =>
        {
            Some(appid)
        }
        Some(_) => {
            return Err(bad(
                "`appid` must be the mini-program's AppID, a short string",
            ));
        }
    };
    Ok(LoginBody {
        code,
        appid,
        encrypted: pair(raw.encrypted_data, raw.iv, "encryptedData", "iv")?,
        signed: pair(raw.raw_data, raw.signature, "rawData", "signature")?,
    })
}

/// Two optional string fields that make sense only together.
fn pair(
    a: Option<serde_json::Value>,
    b: Option<serde_json::Value>,
    a_name: &str,
    b_name: &str,
) -> Result<Option<(String, String)>, HttpError> {
    use serde_json::Value::{Null, String as Text};
    match (a.unwrap_or(Null), b.unwrap_or(Null)) {
        (Null, Null) => Ok(None),
        (Text(a), Text(b)) => Ok(Some((a, b))),
        (Null, _) | (_, Null) => Err(HttpError::BadRequest(format!(
            "`{a_name}` and `{b_name}` go together: send both or neither"
        ))),
        _ => Err(HttpError::BadRequest(format!(
            "`{a_name}` and `{b_name}` must be strings"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_bodies_are_rejected_with_a_reason() {
        let long = format!(r#"{{"code":"{}"}}"#, "a".repeat(CODE_LIMIT + 1));
        let cases: [(&[u8], &str); 14] = [
            (br#"{"code":"a","code":"b"}"#, "repeats the key `code`"),
            (br#"{"code":"c","iv":"x","iv":"y"}"#, "repeats the key `iv`"),
            (b"", "empty"),
            (b"code=abc", "not a JSON object"),
            (b"[1,2]", "not a JSON object"),
            (b"{}", "missing"),
            (br#"{"code":null}"#, "missing"),
            (br#"{"code":""}"#, "empty"),
            (br#"{"code":42}"#, "not a string"),
            (long.as_bytes(), "too long"),
            (br#"{"code":"c","encryptedData":"x"}"#, "go together"),
            (br#"{"code":"c","iv":"x"}"#, "go together"),
            (br#"{"code":"c","rawData":"x"}"#, "go together"),
            (
                br#"{"code":"c","rawData":1,"signature":2}"#,
                "must be strings",
            ),
        ];
        for (body, why) in cases {
            match parse(body) {
                Err(HttpError::BadRequest(m)) => assert!(m.contains(why), "{m}"),
                other => panic!("{body:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn good_bodies() {
        assert_eq!(
            parse(br#"{"code":"081abc","extra":1}"#).unwrap(),
            LoginBody {
                code: "081abc".into(),
                appid: None,
                encrypted: None,
                signed: None
            }
        );
        let full =
            parse(br#"{"code":"c","encryptedData":"e","iv":"i","rawData":"r","signature":"s"}"#)
                .unwrap();
        assert_eq!(full.encrypted, Some(("e".into(), "i".into())));
        assert_eq!(full.signed, Some(("r".into(), "s".into())));
    }
}
