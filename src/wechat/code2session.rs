//! The live `jscode2session` client.
//!
//! WeChat answers `Content-Type: text/plain` with a JSON body, and a
//! success carries no `errcode` at all, so the body is parsed as JSON
//! whatever the content type says and a missing `errcode` means 0.
//! An HTML error page from a relay, a 5xx or a body that is not JSON is an
//! upstream failure (502), never a crash.

use std::time::Duration;

use serde::Deserialize;

use super::{WeChatError, WeChatSession};
use crate::config::WechatConfig;
use crate::secret::Secret;

pub struct LiveCode2Session {
    http: reqwest::Client,
    url: String,
    appid: String,
    secret: Secret,
    timeout: Duration,
}

#[derive(Deserialize)]
struct Reply {
    #[serde(default)]
    errcode: i64,
    #[serde(default)]
    errmsg: String,
    openid: Option<String>,
    session_key: Option<String>,
    unionid: Option<String>,
}

impl LiveCode2Session {
    pub fn new(config: &WechatConfig) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .build()?;
        Ok(Self {
            http,
            url: format!("{}/sns/jscode2session", config.api_base),
            appid: config.appid.clone(),
            secret: config.secret.clone(),
            timeout: config.timeout,
        })
    }

    pub async fn exchange(&self, code: &str) -> Result<WeChatSession, WeChatError> {
        let response = self
            .http
            .get(&self.url)
            .query(&[
                ("appid", self.appid.as_str()),
                ("secret", self.secret.expose()),
                ("js_code", code),
                ("grant_type", "authorization_code"),
            ])
            .send()
            .await
            .map_err(|e| self.transport_error(e))?;
        if !response.status().is_success() {
            return Err(WeChatError::Status(response.status().as_u16()));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(e))?;
        parse(&body)
    }

    fn transport_error(&self, e: reqwest::Error) -> WeChatError {
        if e.is_timeout() {
            return WeChatError::Timeout(self.timeout);
        }
        // The URL carries the app secret: never let it into a message.
        let e = e.without_url();
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        WeChatError::Unreachable(message)
    }
}

fn parse(body: &[u8]) -> Result<WeChatSession, WeChatError> {
    let reply: Reply =
        serde_json::from_slice(body).map_err(|_| WeChatError::BadResponse("body is not JSON"))?;
    if reply.errcode != 0 {
        return Err(WeChatError::Api {
            errcode: reply.errcode,
            errmsg: reply.errmsg,
        });
    }
    match (reply.openid, reply.session_key) {
        (Some(openid), Some(key)) if !openid.is_empty() && !key.is_empty() => Ok(WeChatSession {
            openid,
            unionid: reply.unionid.filter(|u| !u.is_empty()),
            session_key: Secret::new(key),
        }),
        _ => Err(WeChatError::BadResponse(
            "success without openid or session_key",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_without_errcode() {
        let s = parse(br#"{"session_key":"a2V5","openid":"o1","unionid":"u1"}"#).unwrap();
        assert_eq!(
            (s.openid.as_str(), s.unionid.as_deref()),
            ("o1", Some("u1"))
        );
        assert_eq!(s.session_key.expose(), "a2V5");
    }

    #[test]
    fn errcode_zero_is_success_and_empty_unionid_is_none() {
        let s =
            parse(br#"{"errcode":0,"errmsg":"ok","session_key":"k","openid":"o","unionid":""}"#)
                .unwrap();
        assert_eq!(s.unionid, None);
    }

    #[test]
    fn failures() {
        assert!(matches!(
            parse(br#"{"errcode":40029,"errmsg":"invalid code"}"#),
            Err(WeChatError::Api { errcode: 40029, .. })
        ));
        assert!(matches!(
            parse(b"<html>502</html>"),
            Err(WeChatError::BadResponse(_))
        ));
        assert!(matches!(
            parse(br#"{"openid":"o"}"#),
            Err(WeChatError::BadResponse(_))
        ));
        assert!(matches!(
            parse(br#"{"errcode":"x"}"#),
            Err(WeChatError::BadResponse(_))
        ));
    }
}
