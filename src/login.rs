//! `POST /login`: trade a `wx.login()` code for a wxgate session.
//!
//! WeChat codes are single-use, and mini-programs often send one code twice
//! (a double tap, a retried request). Concurrent logins with the same code
//! therefore share ONE `jscode2session` call and one session: moka's
//! `try_get_with` runs the first caller's future and hands its result to
//! every caller waiting on that key, and never caches an error. The entry is
//! dropped as soon as the call completes, so a later replay of the code goes
//! to WeChat and gets WeChat's own "code used" answer.

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use moka::future::Cache;
use serde::Deserialize;
use serde_json::json;

use crate::body::{self, Body};
use crate::config::Config;
use crate::error::HttpError;
use crate::session::{SessionId, SessionStore, UserRecord};
use crate::wechat::Code2Session;

/// Largest accepted login body.
pub const BODY_LIMIT: usize = 16 * 1024;
/// Longest accepted code; WeChat's are 32 characters.
pub const CODE_LIMIT: usize = 1024;

pub struct Login {
    code2session: Code2Session,
    inflight: Cache<String, SessionId>,
    expires_in: u64,
}

#[derive(Deserialize)]
struct LoginRequest {
    code: Option<serde_json::Value>,
}

impl Login {
    pub fn new(config: &Config) -> Result<Self, reqwest::Error> {
        Ok(Self {
            code2session: Code2Session::new(&config.wechat)?,
            // Entries live only while a call is in flight; the TTL is a backstop.
            inflight: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(60))
                .build(),
            expires_in: config.session.ttl.as_secs(),
        })
    }

    pub async fn handle<S: SessionStore>(
        &self,
        store: &S,
        request: Request<Incoming>,
    ) -> Result<Response<Body>, HttpError> {
        let (parts, body) = request.into_parts();
        let bytes = body::read_limited(&parts.headers, body, BODY_LIMIT).await?;
        let code = parse_code(&bytes)?;
        let result = self
            .inflight
            .try_get_with_by_ref(code.as_str(), self.open_session(store, &code))
            .await;
        self.inflight.invalidate(code.as_str()).await;
        let id = result.map_err(|e: Arc<HttpError>| (*e).clone())?;
        tracing::debug!(session = %id.redacted(), "login");
        Ok(body::json(
            StatusCode::OK,
            &json!({ "session_id": id.encode(), "expires_in": self.expires_in }),
        ))
    }

    async fn open_session<S: SessionStore>(
        &self,
        store: &S,
        code: &str,
    ) -> Result<SessionId, HttpError> {
        let wx = self.code2session.exchange(code).await?;
        let user = UserRecord::new(&wx.openid, wx.unionid.as_deref(), wx.session_key)?;
        Ok(store.login(user).await?)
    }
}

fn parse_code(bytes: &[u8]) -> Result<String, HttpError> {
    const SHAPE: &str = r#"send a JSON body like {"code": "<the code from wx.login()>"}"#;
    let bad = |why: &str| HttpError::BadRequest(format!("{why}: {SHAPE}"));
    if bytes.is_empty() {
        return Err(bad("the body is empty"));
    }
    let request: LoginRequest =
        serde_json::from_slice(bytes).map_err(|_| bad("the body is not a JSON object"))?;
    match request.code {
        None | Some(serde_json::Value::Null) => Err(bad("`code` is missing")),
        Some(serde_json::Value::String(code)) => {
            if code.is_empty() {
                Err(bad("`code` is empty"))
            } else if code.len() > CODE_LIMIT {
                Err(bad("`code` is too long"))
            } else {
                Ok(code)
            }
        }
        Some(_) => Err(bad("`code` is not a string")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_bodies_are_rejected_with_a_reason() {
        let long = format!(r#"{{"code":"{}"}}"#, "a".repeat(CODE_LIMIT + 1));
        let cases: [(&[u8], &str); 8] = [
            (b"", "empty"),
            (b"code=abc", "not a JSON object"),
            (b"[1,2]", "not a JSON object"),
            (b"{}", "missing"),
            (br#"{"code":null}"#, "missing"),
            (br#"{"code":""}"#, "empty"),
            (br#"{"code":42}"#, "not a string"),
            (long.as_bytes(), "too long"),
        ];
        for (body, why) in cases {
            match parse_code(body) {
                Err(HttpError::BadRequest(m)) => assert!(m.contains(why), "{m}"),
                other => panic!("{body:?}: {other:?}"),
            }
        }
        assert_eq!(
            parse_code(br#"{"code":"081abc","extra":1}"#).unwrap(),
            "081abc"
        );
    }
}
