//! Dev mode: log any code in without WeChat, and fail on purpose.
//!
//! Users and keys come from the code, so a client can be tested end to
//! end against `cargo run` without a WeChat account:
//!
//! - `NAME` or `NAME#ANYTHING` logs in as the user NAME: the openid is
//!   `"o"` + the first 27 characters of
//!   base64url(SHA-256("wxgate-mock-openid:" + APPID + ":" + NAME)), one per
//!   app as WeChat gives (a backend keyed on the openid would break on H5
//!   in production: key on the bound user id or the unionid); the unionid
//!   is the person's across apps, `"u"` + base64url(SHA-256(
//!   "wxgate-mock-unionid:" + NAME)), likewise cut. So the same name is
//!   always the same person, and a newcomer plays with several users by
//!   choosing names.
//! - The session_key is base64(first 16 bytes of SHA-256("wxgate-mock-key:" + CODE)),
//!   of the WHOLE code: `alice#1` and `alice#2` are one user whose key
//!   rotated, as every `wx.login()` may rotate it at WeChat. A client's tests
//!   encrypt user data with that key (AES-128-CBC, as WeChat does) and
//!   `/_wxgate/decrypt` opens it.
//! - `err-N-ANYTHING` answers WeChat's errcode N (`err-40029-x` invalid
//!   code, `err-40163-x` code used, `err-45011-x` rate limited, `err--1-x`
//!   busy, `err-40226-x` high-risk user), for login and phone codes alike.
//! - `slow-ANYTHING` answers nothing within `wechat.timeout`: a timeout.
//!
//! - A web authorisation code (official account, website) is read as a
//!   login code: the same NAME is the same person in the mini-program and
//!   on H5 (the same unionid, each app's own openid), with the nickname
//!   NAME under `snsapi_userinfo`.
//!
//! A phone-number code yields a made-up number derived from it. The config
//! layer refuses mock mode on a non-loopback address unless explicitly
//! allowed, and start-up logs a loud warning.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

use super::{WeChatError, WeChatSession, WebIdentity};
use crate::config::secret::Secret;
use crate::domain::session::{Phone, Profile};

/// Mock mode's WeChat: codes name users (docs/client.md).
pub struct MockWeChat {
    /// The app's AppID: each app gives a person its own openid.
    pub appid: String,
    /// `wechat.timeout`: how long a `slow-` code keeps a call waiting.
    pub timeout: Duration,
}

fn digest(label: &str, code: &str) -> [u8; 32] {
    Sha256::new()
        .chain_update(label)
        .chain_update(code)
        .finalize()
        .into()
}

impl MockWeChat {
    /// A login: the user the code names.
    pub async fn code2session(&self, code: &str) -> Result<WeChatSession, WeChatError> {
        self.fail_on_purpose(code).await?;
        let name = code.split_once('#').map_or(code, |(name, _)| name);
        // Shaped like real ids: 28 characters starting with "o" (openid) or "u" (unionid).
        let mut openid = String::from("o");
        let in_app = format!("{}:{name}", self.appid);
        openid.push_str(&URL_SAFE_NO_PAD.encode(digest("wxgate-mock-openid:", &in_app))[..27]);
        let mut unionid = String::from("u");
        unionid.push_str(&URL_SAFE_NO_PAD.encode(digest("wxgate-mock-unionid:", name))[..27]);
        Ok(WeChatSession {
            openid,
            unionid: Some(unionid),
            session_key: Secret::new(STANDARD.encode(&digest("wxgate-mock-key:", code)[..16])),
        })
    }

    /// A web authorisation code: the same person as the mini-program code
    /// of that name (one unionid; the openid is this app's, as WeChat
    /// gives). With `userinfo`, the profile's nickname is the name.
    pub async fn web_login(&self, code: &str, userinfo: bool) -> Result<WebIdentity, WeChatError> {
        let session = self.code2session(code).await?;
        let name = code.split_once('#').map_or(code, |(name, _)| name);
        Ok(WebIdentity {
            openid: session.openid,
            unionid: session.unionid,
            profile: userinfo.then(|| Profile {
                nickname: name.to_owned(),
                headimgurl: String::new(),
            }),
        })
    }

    /// A phone number for the code.
    pub async fn phone_number(&self, code: &str) -> Result<Phone, WeChatError> {
        self.fail_on_purpose(code).await?;
        let digits: String = digest("wxgate-mock-phone:", code)[..8]
            .iter()
            .map(|b| char::from(b'0' + b % 10))
            .collect();
        let number = format!("138{digits}");
        Ok(Phone {
            phone_number: number.clone(),
            pure_phone_number: number,
            country_code: "86".to_owned(),
        })
    }

    /// The magic codes: `err-N-…` and `slow-…`.
    async fn fail_on_purpose(&self, code: &str) -> Result<(), WeChatError> {
        if code.starts_with("slow-") {
            tokio::time::sleep(self.timeout).await;
            return Err(WeChatError::Timeout(self.timeout));
        }
        if let Some(errcode) = code
            .strip_prefix("err-")
            .and_then(|rest| rest.get(1..)?.find('-').map(|i| &rest[..=i]))
            .and_then(|n| n.parse::<i64>().ok())
        {
            return Err(WeChatError::Api {
                errcode,
                errmsg: format!("mock: code {code} fails on purpose"),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mock(appid: &str) -> MockWeChat {
        MockWeChat {
            appid: appid.to_owned(),
            timeout: Duration::from_millis(20),
        }
    }

    #[tokio::test]
    async fn deterministic_per_name_and_the_key_per_code() {
        let a = mock("wxmockapp000001").code2session("alice").await.unwrap();
        assert_eq!(
            a.openid,
            mock("wxmockapp000001")
                .code2session("alice")
                .await
                .unwrap()
                .openid
        );
        assert_ne!(
            a.openid,
            mock("wxmockapp000001")
                .code2session("bob")
                .await
                .unwrap()
                .openid
        );
        assert_eq!(a.openid.len(), 28);
        assert_eq!(a.session_key.expose().len(), 24);
        let rotated = mock("wxmockapp000001")
            .code2session("alice#2")
            .await
            .unwrap();
        assert_eq!(rotated.openid, a.openid, "same user");
        assert_ne!(rotated.session_key, a.session_key, "a new key");
        // The derivation docs/client.md documents (checked against node's crypto).
        assert_eq!(a.session_key.expose(), "lsgKOuH+n6XT7C6KSxC7pw==");
        assert_eq!(
            mock("wxmockapp000001")
                .phone_number("x")
                .await
                .unwrap()
                .phone_number
                .len(),
            11
        );
    }

    #[tokio::test]
    async fn magic_codes_fail_as_documented() {
        for (code, want) in [
            ("err-40029-a", 40029),
            ("err-40163-b", 40163),
            ("err-45011-", 45011),
            ("err--1-c", -1),
            ("err-40226-x-y", 40226),
        ] {
            match mock("wxmockapp000001").code2session(code).await {
                Err(WeChatError::Api { errcode, .. }) => assert_eq!(errcode, want, "{code}"),
                other => panic!("{code}: {other:?}"),
            }
        }
        assert!(matches!(
            mock("wxmockapp000001").code2session("slow-a").await,
            Err(WeChatError::Timeout(_))
        ));
        assert!(matches!(
            mock("wxmockapp000001").phone_number("err-40029-p").await,
            Err(WeChatError::Api { errcode: 40029, .. })
        ));
        // Not magic: ordinary users.
        for code in ["err-", "err-x-", "err-40029", "errand", "slow"] {
            assert!(
                mock("wxmockapp000001").code2session(code).await.is_ok(),
                "{code}"
            );
        }
    }
}
