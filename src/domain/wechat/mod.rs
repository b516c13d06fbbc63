//! WeChat's server APIs, and their dev-mode stand-in.
//!
//! [`WeChat`] is what the rest of wxgate calls: live against WeChat (or any
//! relay at `wechat.api_base`), or, in `mode = "mock"`, locally for people
//! trying wxgate without a WeChat account.

mod access_token;
mod api;
mod code2session;
pub mod errcode;
pub mod jsapi;
mod mock;
mod shared;
mod user_api;
pub mod web_oauth;
pub mod wxdata;

use std::time::Duration;

use crate::config::secret::Secret;
use crate::config::{WechatConfig, WechatMode};
use crate::domain::session::{FleetSecrets, Phone};
use crate::metrics::WechatMetrics;

use access_token::AccessTokens;
use api::ApiClient;
pub use mock::MockWeChat;
pub use web_oauth::WebIdentity;

/// What a successful `jscode2session` call yields.
#[derive(Debug, Clone)]
pub struct WeChatSession {
    /// The user's openid for this app.
    pub openid: String,
    /// The unionid, when the app is bound to an Open Platform account.
    pub unionid: Option<String>,
    /// The session_key.
    pub session_key: Secret,
}

/// Why a WeChat API call failed. Messages never contain the secret, an
/// access token or the request URL (which carries them).
#[derive(Debug, Clone, thiserror::Error)]
#[allow(missing_docs)] // each variant's `#[error]` text describes it
pub enum WeChatError {
    #[error("WeChat answered errcode {errcode}: {errmsg}")]
    Api { errcode: i64, errmsg: String },
    #[error("WeChat could not be reached: {0}")]
    Unreachable(String),
    #[error("WeChat did not answer within {0:?}")]
    Timeout(Duration),
    #[error("WeChat answered HTTP {0}")]
    Status(u16),
    #[error("WeChat's answer was not understood: {0}")]
    BadResponse(&'static str),
    /// `wechat.max_in_flight` calls were out for this long: none was made.
    #[error("wechat.max_in_flight calls to WeChat are in flight; none freed up within {0:?}")]
    Saturated(Duration),
}

impl WeChatError {
    /// What failed, as a metric label and a span's `error.type`: WeChat's
    /// errcode, or `timeout`, `unreachable`, `http_NNN`, `bad_response`,
    /// `saturated`.
    pub fn label(&self) -> String {
        match self {
            Self::Api { errcode, .. } => errcode.to_string(),
            Self::Timeout(_) => "timeout".to_owned(),
            Self::Unreachable(_) => "unreachable".to_owned(),
            Self::Status(status) => format!("http_{status}"),
            Self::BadResponse(_) => "bad_response".to_owned(),
            Self::Saturated(_) => "saturated".to_owned(),
        }
    }
}

/// The app's AppSecret, shared by its calls and its token cache, and
/// replaced in place when a reload re-reads it (`wechat.secret_file`).
pub type SharedSecret = std::sync::Arc<arc_swap::ArcSwap<Secret>>;

/// The live APIs: one HTTP client, one access-token cache.
pub struct LiveApi {
    api: ApiClient,
    tokens: AccessTokens,
    tickets: jsapi::JsapiTickets,
    appid: String,
    secret: SharedSecret,
}

/// One app's WeChat API client: the real one, or the mock.
pub enum WeChat {
    /// WeChat's servers (`wechat.api_base`).
    Live(Box<LiveApi>),
    /// Mock mode: no WeChat.
    Mock(MockWeChat),
}

impl WeChat {
    /// The client `config` asks for; `fleet`: where the replicas share
    /// the app's access token and jsapi_ticket (the Redis store).
    pub fn new(
        config: &WechatConfig,
        metrics: WechatMetrics,
        fleet: Option<FleetSecrets>,
    ) -> Result<Self, reqwest::Error> {
        Ok(match config.mode {
            WechatMode::Live => {
                let secret: SharedSecret =
                    std::sync::Arc::new(arc_swap::ArcSwap::from_pointee(config.secret.clone()));
                let api = ApiClient::new(config, metrics)?;
                Self::Live(Box::new(LiveApi {
                    tokens: AccessTokens::new(&config.appid, &secret, fleet.clone(), &api),
                    tickets: jsapi::JsapiTickets::new(&config.appid, fleet, &api),
                    api,
                    appid: config.appid.clone(),
                    secret,
                }))
            }
            WechatMode::Mock => Self::Mock(MockWeChat {
                appid: config.appid.clone(),
                timeout: config.timeout,
            }),
        })
    }

    /// Whether WeChat accepts this app's AppID, AppSecret and this host's
    /// IP (`stable_token`); mock mode always does.
    pub async fn check_credentials(&self) -> Result<(), WeChatError> {
        match self {
            Self::Live(live) => live.tokens.check(&live.api).await,
            Self::Mock(_) => Ok(()),
        }
    }

    /// Whether WeChat accepts `secret` for this app, asked before a reload
    /// swaps it in; mock mode accepts any.
    pub async fn check_secret(&self, secret: &Secret) -> Result<(), WeChatError> {
        match self {
            Self::Live(live) => live.tokens.check_candidate(&live.api, secret).await,
            Self::Mock(_) => Ok(()),
        }
    }

    /// Uses `secret` from the next call on (a reload re-read it).
    pub fn set_secret(&self, secret: &Secret) {
        if let Self::Live(live) = self {
            live.secret.store(std::sync::Arc::new(secret.clone()));
        }
    }

    /// Trades a `wx.login()` code for the user's openid and session_key.
    pub async fn code2session(&self, code: &str) -> Result<WeChatSession, WeChatError> {
        match self {
            Self::Live(live) => live.code2session(code).await,
            Self::Mock(mock) => mock.code2session(code).await,
        }
    }

    /// Trades a web authorisation code for the user's openid, unionid and
    /// (`userinfo`: the `snsapi_userinfo` scope) profile.
    pub async fn web_login(&self, code: &str, userinfo: bool) -> Result<WebIdentity, WeChatError> {
        match self {
            Self::Live(live) => live.web_login(code, userinfo).await,
            Self::Mock(mock) => mock.web_login(code, userinfo).await,
        }
    }

    /// Mock mode: the authorize page is wxgate's own (`[web]`'s mock page).
    pub fn is_mock(&self) -> bool {
        matches!(self, Self::Mock(_))
    }

    /// The phone number behind a `getPhoneNumber` button's code.
    pub async fn phone_number(&self, code: &str, openid: &str) -> Result<Phone, WeChatError> {
        match self {
            Self::Live(live) => live.phone_number(code, openid).await,
            Self::Mock(mock) => mock.phone_number(code).await,
        }
    }

    /// The app's access token for a backend and its time left (mock mode:
    /// a made-up one).
    pub async fn access_token(&self) -> Result<(Secret, Duration), WeChatError> {
        match self {
            Self::Live(live) => live.tokens.handed_out(&live.api).await,
            Self::Mock(mock) => Ok((
                Secret::new(format!("mock-access-token-{}", mock.appid)),
                Duration::from_secs(7200),
            )),
        }
    }

    /// A backend reports `token` rejected by WeChat: whether it was
    /// refreshed (only the current one is; mock mode: never).
    pub async fn invalidate_access_token(&self, token: &str) -> Result<bool, WeChatError> {
        match self {
            Self::Live(live) => live.tokens.invalidate(&live.api, token).await,
            Self::Mock(_) => Ok(false),
        }
    }

    /// The official account's `jsapi_ticket`, for JS-SDK signatures (mock
    /// mode: a made-up one).
    pub async fn jsapi_ticket(&self) -> Result<Secret, WeChatError> {
        match self {
            Self::Live(live) => live.tickets.current(&live.api, &live.tokens).await,
            Self::Mock(mock) => Ok(Secret::new(format!("mock-jsapi-ticket-{}", mock.appid))),
        }
    }

    /// Whether `session_key` is still the user's valid key.
    pub async fn check_session(
        &self,
        openid: &str,
        session_key: &Secret,
    ) -> Result<bool, WeChatError> {
        match self {
            Self::Live(live) => live.check_session(openid, session_key).await,
            Self::Mock(_) => Ok(true),
        }
    }
}
