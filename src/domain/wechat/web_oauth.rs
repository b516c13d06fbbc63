//! WeChat web authorisation (网页授权) for official accounts and website
//! apps: the authorize URL a browser is sent to, and the code it comes back
//! with → openid, unionid (`sns/oauth2/access_token`) and, with the
//! `snsapi_userinfo` scope, the profile (`sns/userinfo`).
//!
//! The user's web access token is used once, for the profile, and dropped:
//! wxgate's own session is what the browser keeps. Neither it nor the
//! profile is ever logged.

use serde::Deserialize;

use super::{LiveApi, WeChatError};
use crate::config::AppKind;
use crate::config::secret::Secret;
use crate::domain::session::Profile;

/// WeChat's host for the pages a user sees (authorize, QR login).
pub const OPEN_BASE: &str = "https://open.weixin.qq.com";

/// What a web login yields.
#[derive(Debug, Clone)]
pub struct WebIdentity {
    /// The user's openid for this app.
    pub openid: String,
    /// The unionid, when WeChat gave one.
    pub unionid: Option<String>,
    /// With `snsapi_userinfo` only.
    pub profile: Option<Profile>,
}

/// WeChat's page that asks the user to authorise an app of `kind`: the
/// official account's `connect/oauth2/authorize`, the website's
/// `connect/qrconnect`.
pub fn authorize_page(kind: AppKind) -> String {
    let page = match kind {
        AppKind::Website => "connect/qrconnect",
        _ => "connect/oauth2/authorize",
    };
    format!("{OPEN_BASE}/{page}")
}

/// `page` (WeChat's [`authorize_page`], or mock mode's own) asking the user
/// to authorise `appid`, to come back to `redirect_uri` with `code` and
/// `state`, in WeChat's documented form (ending in `#wechat_redirect`).
pub fn authorize_url(
    page: &str,
    kind: AppKind,
    appid: &str,
    redirect_uri: &str,
    state: &str,
) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("appid", appid)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("response_type", "code")
        .append_pair("scope", kind.scope())
        .append_pair("state", state)
        .finish();
    format!("{page}?{query}#wechat_redirect")
}

#[derive(Deserialize)]
struct TokenReply {
    access_token: Option<String>,
    openid: Option<String>,
    unionid: Option<String>,
}

#[derive(Deserialize)]
struct UserInfoReply {
    #[serde(default)]
    nickname: String,
    #[serde(default)]
    headimgurl: String,
    unionid: Option<String>,
}

impl LiveApi {
    /// Web authorisation: the user behind a callback's code (and the
    /// profile, with `userinfo`).
    pub async fn web_login(&self, code: &str, userinfo: bool) -> Result<WebIdentity, WeChatError> {
        let secret = self.secret.load_full();
        let reply: TokenReply = self
            .api
            .get(
                "/sns/oauth2/access_token",
                &[
                    ("appid", self.appid.as_str()),
                    ("secret", secret.expose()),
                    ("code", code),
                    ("grant_type", "authorization_code"),
                ],
            )
            .await?;
        let (Some(token), Some(openid)) = (reply.access_token, reply.openid) else {
            return Err(WeChatError::BadResponse(
                "success without access_token or openid",
            ));
        };
        let token = Secret::new(token);
        let mut identity = WebIdentity {
            openid,
            unionid: reply.unionid.filter(|u| !u.is_empty()),
            profile: None,
        };
        if userinfo {
            let info: UserInfoReply = self
                .api
                .get(
                    "/sns/userinfo",
                    &[
                        ("access_token", token.expose()),
                        ("openid", identity.openid.as_str()),
                        ("lang", "zh_CN"),
                    ],
                )
                .await?;
            if identity.unionid.is_none() {
                identity.unionid = info.unionid.filter(|u| !u.is_empty());
            }
            identity.profile = Some(Profile {
                nickname: info.nickname,
                headimgurl: info.headimgurl,
            });
        }
        Ok(identity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorize_urls_are_wechat_s_documented_forms() {
        let kind = AppKind::OfficialAccount { userinfo: false };
        let oa = authorize_url(
            &authorize_page(kind),
            kind,
            "wxoa",
            "https://m.example.com/_wxgate/oauth/callback",
            "s1",
        );
        assert_eq!(
            oa,
            "https://open.weixin.qq.com/connect/oauth2/authorize?appid=wxoa&redirect_uri=\
             https%3A%2F%2Fm.example.com%2F_wxgate%2Foauth%2Fcallback&response_type=code\
             &scope=snsapi_base&state=s1#wechat_redirect"
        );
        let page = authorize_page(AppKind::Website);
        let site = authorize_url(&page, AppKind::Website, "wxweb", "https://x/cb", "s2");
        assert!(site.starts_with("https://open.weixin.qq.com/connect/qrconnect?appid=wxweb&"));
        assert!(
            site.contains("&scope=snsapi_login&state=s2#wechat_redirect"),
            "{site}"
        );
        let userinfo = AppKind::OfficialAccount { userinfo: true };
        assert!(authorize_url("/mock", userinfo, "a", "b", "c").contains("scope=snsapi_userinfo"));
    }
}
