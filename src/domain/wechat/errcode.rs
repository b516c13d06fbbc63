//! WeChat's documented `errcode`s that wxgate tells apart, each described
//! once: its constant, and in [`ERRCODES`] what it means for the request
//! (the client's fault, the user's, WeChat's load, or the operator's), the
//! code clients see, what the client should do and, for a refusal of the
//! app's credentials, what the operator must fix. `response::error` maps the
//! [`Fault`] to a status; `domain::credentials` reads the fixes. An errcode
//! not in the table is WeChat refusing for a reason wxgate has no advice on.

/// System busy; try again.
pub const BUSY: i64 = -1;
/// Invalid credential: a bad AppSecret, or an invalid access token.
pub const INVALID_CREDENTIAL: i64 = 40001;
/// Invalid AppID.
pub const INVALID_APPID: i64 = 40013;
/// Invalid code (expired, or not from this app).
pub const INVALID_CODE: i64 = 40029;
/// Invalid AppSecret.
pub const INVALID_APPSECRET: i64 = 40125;
/// Code already used.
pub const CODE_USED: i64 = 40163;
/// The server's IP is not on the app's whitelist.
pub const IP_NOT_WHITELISTED: i64 = 40164;
/// High-risk user: login refused.
pub const HIGH_RISK_USER: i64 = 40226;
/// Access token expired.
pub const TOKEN_EXPIRED: i64 = 42001;
/// The app's daily quota for this API is used up (`cgi-bin/stable_token`
/// and the others count calls per day).
pub const QUOTA_EXHAUSTED: i64 = 45009;
/// Rate limit reached.
pub const RATE_LIMITED: i64 = 45011;
/// checksession: the signature (so the session_key) is no longer valid.
pub const SESSION_KEY_INVALID: i64 = 87009;

/// Whose the refusal is: what the answer's status says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The client sent something WeChat refuses (a bad or used code).
    Client,
    /// WeChat refuses this user.
    User,
    /// WeChat is busy: try again shortly.
    Busy,
    /// WeChat's rate limit: back off.
    RateLimited,
    /// Only the operator can fix it (AppID, AppSecret, IP whitelist).
    Operator,
}

/// One errcode, described once.
#[derive(Debug)]
pub struct Errcode {
    /// WeChat's errcode.
    pub errcode: i64,
    /// Whose fault it is.
    pub fault: Fault,
    /// The stable code clients and the docs' error table see.
    pub code: &'static str,
    /// What the client should do.
    pub message: &'static str,
    /// For a refusal of the app's credentials: what the operator must fix.
    pub fix: Option<&'static str>,
}

const OPERATOR: &str = "WeChat rejected this server's credentials or address; the operator \
                        must fix the app's appid, secret or IP whitelist";

/// The errcodes wxgate answers with a code of their own.
pub const ERRCODES: [Errcode; 10] = [
    Errcode {
        errcode: INVALID_CODE,
        fault: Fault::Client,
        code: "code_invalid",
        message: "the login code is invalid or expired: call wx.login() again and post the new code",
        fix: None,
    },
    Errcode {
        errcode: CODE_USED,
        fault: Fault::Client,
        code: "code_used",
        message: "the login code was already used: call wx.login() again and post the new code",
        fix: None,
    },
    Errcode {
        errcode: BUSY,
        fault: Fault::Busy,
        code: "wechat_busy",
        message: "WeChat is busy: try again in a moment",
        fix: None,
    },
    Errcode {
        errcode: RATE_LIMITED,
        fault: Fault::RateLimited,
        code: "wechat_rate_limited",
        message: "WeChat's rate limit was reached: try again later",
        fix: None,
    },
    Errcode {
        errcode: QUOTA_EXHAUSTED,
        fault: Fault::RateLimited,
        code: "wechat_quota_exhausted",
        message: "the app's daily WeChat API quota is used up: try again later (the operator \
                  can reset it in 微信公众平台, or with clear_quota)",
        fix: None,
    },
    Errcode {
        errcode: HIGH_RISK_USER,
        fault: Fault::User,
        code: "user_high_risk",
        message: "WeChat refused this login because it considers the user high-risk",
        fix: None,
    },
    Errcode {
        errcode: INVALID_APPID,
        fault: Fault::Operator,
        code: "wechat_misconfigured",
        message: OPERATOR,
        fix: Some("the AppID is wrong (40013): copy it from 微信公众平台 → 开发管理 → 开发设置"),
    },
    Errcode {
        errcode: INVALID_APPSECRET,
        fault: Fault::Operator,
        code: "wechat_misconfigured",
        message: OPERATOR,
        fix: Some(
            "the AppSecret is wrong (40125): set the current one (开发设置 → AppSecret) in the Secret",
        ),
    },
    Errcode {
        errcode: IP_NOT_WHITELISTED,
        fault: Fault::Operator,
        code: "wechat_misconfigured",
        message: OPERATOR,
        fix: Some(
            "this host's egress IP is not whitelisted (40164): add it under 开发设置 → IP白名单",
        ),
    },
    Errcode {
        // A token wxgate fetched itself, refused: its secret, in effect.
        errcode: INVALID_CREDENTIAL,
        fault: Fault::Operator,
        code: "wechat_misconfigured",
        message: OPERATOR,
        fix: None,
    },
];

/// The description of `errcode`, when wxgate tells it apart.
pub fn describe(errcode: i64) -> Option<&'static Errcode> {
    ERRCODES.iter().find(|e| e.errcode == errcode)
}
