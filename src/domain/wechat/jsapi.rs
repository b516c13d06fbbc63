//! JS-SDK signatures for an official account's H5 pages: the
//! `jsapi_ticket` (`cgi-bin/ticket/getticket?type=jsapi`), shared and
//! refreshed as the access token is (`shared`: one fetch per app for the
//! replica, or for the fleet with Redis), and the `wx.config` signature
//! made with it.
//!
//! The signature is WeChat's (JS-SDK 说明文档, 附录1): SHA-1 over
//! `jsapi_ticket=…&noncestr=…&timestamp=…&url=…`, the keys in that
//! (ASCII) order, the values as they are, the url without its `#`
//! fragment.

use std::time::Duration;

use serde::Deserialize;
use sha1::{Digest, Sha1};

use super::WeChatError;
use super::access_token::AccessTokens;
use super::api::ApiClient;
use super::shared::{Issued, SharedCredential};
use crate::config::secret::Secret;
use crate::domain::session::FleetSecrets;

#[derive(Deserialize)]
struct Reply {
    ticket: String,
    expires_in: u64,
}

/// One app's `jsapi_ticket`.
pub(super) struct JsapiTickets {
    ticket: SharedCredential,
}

impl JsapiTickets {
    pub(super) fn new(appid: &str, fleet: Option<FleetSecrets>, api: &ApiClient) -> Self {
        // The token (perhaps replaced once), then the ticket, retried once.
        let hold = api.call_bound() * 4 + Duration::from_secs(1);
        Self {
            ticket: SharedCredential::new(format!("{appid}:jsapi_ticket"), fleet, hold),
        }
    }

    /// The current ticket, fetched with the app's access token when due.
    pub(super) async fn current(
        &self,
        api: &ApiClient,
        tokens: &AccessTokens,
    ) -> Result<Secret, WeChatError> {
        let fetch = |_force| async move {
            let reply: Reply = tokens
                .call(api, |token: Secret| async move {
                    let query = [("access_token", token.expose()), ("type", "jsapi")];
                    api.get("/cgi-bin/ticket/getticket", &query).await
                })
                .await?;
            if reply.ticket.is_empty() {
                return Err(WeChatError::BadResponse("getticket without a ticket"));
            }
            api.metrics().fetched("jsapi_ticket", false);
            Ok(Issued {
                value: Secret::new(reply.ticket),
                lifetime: Duration::from_secs(reply.expires_in),
            })
        };
        let (ticket, _) = self.ticket.current(fetch).await?;
        Ok(ticket)
    }
}

/// The `wx.config` signature of `url` (its fragment cut) with `ticket`.
pub fn signature(ticket: &str, nonce: &str, timestamp: u64, url: &str) -> String {
    let url = url.split('#').next().unwrap_or(url);
    let text = format!("jsapi_ticket={ticket}&noncestr={nonce}&timestamp={timestamp}&url={url}");
    Sha1::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wechat_s_documented_example() {
        // JS-SDK 说明文档, 附录1-JS-SDK使用权限签名算法.
        let ticket = "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg";
        let url = "http://mp.weixin.qq.com?params=value";
        let signed = signature(ticket, "Wm3WZYTPz0wzccnW", 1414587457, url);
        assert_eq!(signed, "0f9de62fce790f9a083d5c99e95740ceb90c27ed");
        // The fragment is no part of what is signed.
        let with_fragment = signature(
            ticket,
            "Wm3WZYTPz0wzccnW",
            1414587457,
            &format!("{url}#top"),
        );
        assert_eq!(with_fragment, signed);
    }
}
