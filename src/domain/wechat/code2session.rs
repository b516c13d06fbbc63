//! `jscode2session`: a `wx.login()` code → openid, unionid, session_key.

use serde::Deserialize;

use super::{LiveApi, WeChatError, WeChatSession};
use crate::config::secret::Secret;

#[derive(Deserialize)]
struct Reply {
    openid: Option<String>,
    session_key: Option<String>,
    unionid: Option<String>,
}

impl LiveApi {
    /// `jscode2session`: the user behind a `wx.login()` code.
    pub async fn code2session(&self, code: &str) -> Result<WeChatSession, WeChatError> {
        let secret = self.secret.load_full();
        let reply: Reply = self
            .api
            .get(
                "/sns/jscode2session",
                &[
                    ("appid", self.appid.as_str()),
                    ("secret", secret.expose()),
                    ("js_code", code),
                    ("grant_type", "authorization_code"),
                ],
            )
            .await?;
        session(reply)
    }
}

fn session(reply: Reply) -> Result<WeChatSession, WeChatError> {
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
    use super::super::api::parse;
    use super::*;

    fn exchange(body: &[u8]) -> Result<WeChatSession, WeChatError> {
        session(parse(body)?)
    }

    #[test]
    fn success_without_errcode() {
        let s = exchange(br#"{"session_key":"a2V5","openid":"o1","unionid":"u1"}"#).unwrap();
        assert_eq!(
            (s.openid.as_str(), s.unionid.as_deref()),
            ("o1", Some("u1"))
        );
        assert_eq!(s.session_key.expose(), "a2V5");
    }

    #[test]
    fn errcode_zero_is_success_and_empty_unionid_is_none() {
        let s =
            exchange(br#"{"errcode":0,"errmsg":"ok","session_key":"k","openid":"o","unionid":""}"#)
                .unwrap();
        assert_eq!(s.unionid, None);
    }

    #[test]
    fn failures() {
        assert!(matches!(
            exchange(br#"{"errcode":40029,"errmsg":"invalid code"}"#),
            Err(WeChatError::Api { errcode: 40029, .. })
        ));
        assert!(matches!(
            exchange(br#"{"openid":"o"}"#),
            Err(WeChatError::BadResponse(_))
        ));
        assert!(matches!(
            exchange(br#"{"openid":1,"session_key":"k"}"#),
            Err(WeChatError::BadResponse(_))
        ));
    }
}
