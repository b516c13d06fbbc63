//! APIs about one user that take the app's access token: the phone number
//! behind a `getPhoneNumber` code, and the server-side session check.

use serde::Deserialize;
use serde_json::json;

use super::{LiveApi, WeChatError, errcode};
use crate::config::secret::Secret;
use crate::domain::session::Phone;
use crate::domain::wechat::wxdata;

#[derive(Deserialize)]
struct PhoneReply {
    phone_info: serde_json::Map<String, serde_json::Value>,
}

#[derive(Deserialize)]
struct Empty {}

impl LiveApi {
    /// `wxa/business/getuserphonenumber`: the number behind a button's code.
    pub async fn phone_number(&self, code: &str, openid: &str) -> Result<Phone, WeChatError> {
        let (api, body) = (&self.api, &json!({ "code": code, "openid": openid }));
        let reply: PhoneReply = self
            .tokens
            .call(api, |token: Secret| async move {
                let query = [("access_token", token.expose())];
                api.post("/wxa/business/getuserphonenumber", &query, body)
                    .await
            })
            .await?;
        // The watermark names the app whose token asked; another's number is not this user's.
        let watermark = reply
            .phone_info
            .get("watermark")
            .and_then(|w| w.get("appid"));
        if watermark.is_some_and(|appid| appid.as_str() != Some(self.appid.as_str())) {
            return Err(WeChatError::BadResponse(
                "phone_info's watermark names another AppID",
            ));
        }
        wxdata::phone_of(&reply.phone_info).ok_or(WeChatError::BadResponse(
            "phone_info without a phone number",
        ))
    }

    /// `wxa/checksession`: whether `session_key` is still the user's valid
    /// key. `Ok(false)` is WeChat's 87009.
    pub async fn check_session(
        &self,
        openid: &str,
        session_key: &Secret,
    ) -> Result<bool, WeChatError> {
        let (api, signature) = (&self.api, &wxdata::checksession_signature(session_key));
        let result: Result<Empty, _> = self
            .tokens
            .call(api, |token: Secret| async move {
                let query = [
                    ("access_token", token.expose()),
                    ("openid", openid),
                    ("signature", signature.as_str()),
                    ("sig_method", "hmac_sha256"),
                ];
                api.get("/wxa/checksession", &query).await
            })
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(WeChatError::Api { errcode, .. }) if errcode == errcode::SESSION_KEY_INVALID => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }
}
