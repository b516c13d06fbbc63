//! WeChat's login API, `jscode2session`, and its dev-mode stand-in.
//!
//! [`Code2Session`] turns a `wx.login()` code into the user's openid,
//! unionid and session_key: live against WeChat (or any relay at
//! `wechat.api_base`), or, in `mode = "mock"`, locally for people trying
//! wxgate without a WeChat account.

mod code2session;
mod mock;

use std::time::Duration;

use crate::config::{WechatConfig, WechatMode};
use crate::secret::Secret;

pub use code2session::LiveCode2Session;
pub use mock::MockCode2Session;

/// What a successful `jscode2session` call yields.
#[derive(Debug, Clone)]
pub struct WeChatSession {
    pub openid: String,
    pub unionid: Option<String>,
    pub session_key: Secret,
}

/// Why a WeChat API call failed. Messages never contain the secret or the
/// request URL (which carries it).
#[derive(Debug, Clone, thiserror::Error)]
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
}

/// Documented `errcode`s of the login API.
pub mod errcode {
    /// System busy; try again.
    pub const BUSY: i64 = -1;
    /// Invalid AppSecret (or access token).
    pub const INVALID_CREDENTIAL: i64 = 40001;
    /// Invalid AppID.
    pub const INVALID_APPID: i64 = 40013;
    /// Invalid AppSecret.
    pub const INVALID_APPSECRET: i64 = 40125;
    /// Invalid code (expired, or not from this app).
    pub const INVALID_CODE: i64 = 40029;
    /// Code already used.
    pub const CODE_USED: i64 = 40163;
    /// High-risk user: login refused.
    pub const HIGH_RISK_USER: i64 = 40226;
    /// Rate limit reached.
    pub const RATE_LIMITED: i64 = 45011;
}

pub enum Code2Session {
    Live(LiveCode2Session),
    Mock(MockCode2Session),
}

impl Code2Session {
    pub fn new(config: &WechatConfig) -> Result<Self, reqwest::Error> {
        Ok(match config.mode {
            WechatMode::Live => Self::Live(LiveCode2Session::new(config)?),
            WechatMode::Mock => Self::Mock(MockCode2Session),
        })
    }

    pub async fn exchange(&self, code: &str) -> Result<WeChatSession, WeChatError> {
        match self {
            Self::Live(live) => live.exchange(code).await,
            Self::Mock(mock) => Ok(mock.exchange(code)),
        }
    }
}
