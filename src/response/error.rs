//! Every error a request can end in, and the one place it becomes a response.
//!
//! The layers below have errors of their own (`WeChatError`, `StoreError`,
//! `DecryptError`, `ProxyError`, `ReadError`, `PathError`…) and know
//! nothing of statuses; the `From` impls here are their only mapping.
//!
//! Each variant maps to a status and a stable snake_case `code`; clients and
//! docs/endpoints.md's error table depend on those codes. Messages say what the
//! client (or operator) should do and never carry a secret. Nothing a client
//! or WeChat sends maps to a 500.

use std::sync::LazyLock;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;

use http::{HeaderValue, Response, StatusCode, header};

use super::Body;
use crate::domain::apps::UnknownApp;
use crate::domain::session::{InvalidIdentity, StoreError};
use crate::domain::wechat::wxdata::DecryptError;
use crate::domain::wechat::{WeChatError, errcode};
use crate::proxy::ProxyError;
use crate::wire::body::ReadError;
use crate::wire::canonical_path::PathError;

pub use crate::wire::header::WXGATE_ERROR;

#[derive(Debug, Clone, thiserror::Error)]
pub enum HttpError {
    #[error("no valid session")]
    SessionInvalid,
    #[error("{0}")]
    BadRequest(String),
    #[error("request body over {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("method not allowed")]
    MethodNotAllowed { allow: &'static str },
    /// A path of wxgate's own with nothing there (the admin port, the
    /// reserved prefix); the text says what is. Other paths are forwarded.
    #[error("not found")]
    NotFound(&'static str),
    #[error("the encrypted data does not match the user's current session_key")]
    SessionKeyStale,
    #[error("the encrypted data is for another AppID")]
    WatermarkMismatch,
    #[error("rawData does not match its signature")]
    SignatureMismatch,
    #[error(transparent)]
    WeChat(#[from] WeChatError),
    #[error(transparent)]
    InvalidIdentity(#[from] InvalidIdentity),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("upstream unavailable: {0}")]
    UpstreamUnavailable(String),
    #[error("upstream did not answer within {0:?}")]
    UpstreamTimeout(Duration),
    #[error("the request body sent nothing for {0:?}")]
    BodyIdle(Duration),
    /// `server.max_in_flight` requests are in flight on this worker.
    #[error("overloaded: server.max_in_flight requests in flight")]
    Overloaded,
    #[error("too many logins from this client IP")]
    LoginRateLimited { retry_after: Duration },
    #[error("upgrade to a protocol not in upstream.upgrades")]
    UpgradeNotAllowed,
    /// The client's request body could not be read (bad chunked framing).
    #[error("malformed request body: {0}")]
    BodyMalformed(String),
    /// `[binding]` is required and its endpoint failed.
    #[error("binding unavailable: {0}")]
    BindingUnavailable(String),
    /// `[binding]` is required and the business system has no account for the user.
    #[error("the user is not bound to an account")]
    UserNotBound,
    /// An operator action without the admin token.
    #[error("admin token missing or wrong")]
    AdminUnauthorized,
    /// An operator action on a non-loopback admin port without `admin.token`.
    #[error("operator actions need admin.token on a non-loopback admin address")]
    AdminTokenRequired,
    /// A login for no configured app (or, with several, for none named).
    #[error("unknown app")]
    UnknownApp(String),
    /// No upstream's prefix covers the path.
    #[error("no upstream for this path")]
    NoUpstream,
    /// The path is one backends read differently (`canonical_path`).
    #[error("ambiguous path: {0}")]
    PathAmbiguous(#[from] PathError),
    /// The web login's `redirect` is not a path on this site.
    #[error("redirect is not a same-site path")]
    RedirectInvalid,
    /// The callback's state is missing, not the browser's, expired or used.
    #[error("login state missing, foreign, expired or used")]
    StateInvalid,
    /// WeChat came back without a code: the user declined.
    #[error("the user did not authorise the login")]
    OAuthDenied,
    /// An unsafe request authenticated by the session cookie alone, from
    /// another origin.
    #[error("cross-site request with the session cookie")]
    CsrfRejected,
    /// A mini-program route (decrypt, phone, session check) with a
    /// browser session, which has no session_key.
    #[error("not a mini-program session")]
    NoSessionKey,
    /// A handler panicked; the text is the panic's, for the log only.
    #[error("internal error: {0}")]
    Internal(String),
}

impl HttpError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::SessionInvalid => StatusCode::UNAUTHORIZED,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::SessionKeyStale => StatusCode::CONFLICT,
            Self::WatermarkMismatch | Self::SignatureMismatch => StatusCode::BAD_REQUEST,
            Self::WeChat(e) => wechat_status(e),
            Self::InvalidIdentity(_) => StatusCode::BAD_GATEWAY,
            Self::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::UpstreamUnavailable(_) => StatusCode::BAD_GATEWAY,
            Self::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::BodyIdle(_) => StatusCode::REQUEST_TIMEOUT,
            Self::UpgradeNotAllowed | Self::BodyMalformed(_) => StatusCode::BAD_REQUEST,
            Self::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            Self::LoginRateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::BindingUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::UserNotBound => StatusCode::FORBIDDEN,
            Self::AdminUnauthorized => StatusCode::UNAUTHORIZED,
            Self::AdminTokenRequired => StatusCode::FORBIDDEN,
            Self::UnknownApp(_) => StatusCode::BAD_REQUEST,
            Self::NoUpstream => StatusCode::NOT_FOUND,
            Self::PathAmbiguous(_) => StatusCode::BAD_REQUEST,
            Self::RedirectInvalid | Self::OAuthDenied | Self::NoSessionKey => {
                StatusCode::BAD_REQUEST
            }
            Self::StateInvalid | Self::CsrfRejected => StatusCode::FORBIDDEN,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::SessionInvalid => "session_invalid",
            Self::BadRequest(_) => "bad_request",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::NotFound(_) => "not_found",
            Self::SessionKeyStale => "session_key_stale",
            Self::WatermarkMismatch => "watermark_mismatch",
            Self::SignatureMismatch => "signature_mismatch",
            Self::WeChat(WeChatError::Api { errcode, .. }) => match *errcode {
                errcode::INVALID_CODE => "code_invalid",
                errcode::CODE_USED => "code_used",
                errcode::BUSY => "wechat_busy",
                errcode::RATE_LIMITED => "wechat_rate_limited",
                errcode::HIGH_RISK_USER => "user_high_risk",
                _ if self.is_operator_fault() => "wechat_misconfigured",
                _ => "wechat_error",
            },
            Self::WeChat(WeChatError::Timeout(_)) => "wechat_timeout",
            Self::WeChat(WeChatError::Saturated(_)) => "wechat_busy",
            Self::InvalidIdentity(_) => "wechat_error",
            Self::WeChat(_) => "wechat_unavailable",
            Self::Store(_) => "store_unavailable",
            Self::UpstreamUnavailable(_) => "upstream_unavailable",
            Self::UpstreamTimeout(_) => "upstream_timeout",
            Self::BodyIdle(_) => "request_timeout",
            Self::UpgradeNotAllowed => "upgrade_not_allowed",
            Self::BodyMalformed(_) => "bad_request",
            Self::Overloaded => "overloaded",
            Self::LoginRateLimited { .. } => "login_rate_limited",
            Self::BindingUnavailable(_) => "binding_unavailable",
            Self::UserNotBound => "user_not_bound",
            Self::AdminUnauthorized => "admin_unauthorized",
            Self::AdminTokenRequired => "admin_token_required",
            Self::UnknownApp(_) => "unknown_app",
            Self::NoUpstream => "no_upstream",
            Self::PathAmbiguous(_) => "path_ambiguous",
            Self::RedirectInvalid => "redirect_invalid",
            Self::StateInvalid => "state_invalid",
            Self::OAuthDenied => "oauth_denied",
            Self::CsrfRejected => "csrf_rejected",
            Self::NoSessionKey => "no_session_key",
            Self::Internal(_) => "internal",
        }
    }

    /// Faults only the operator can fix (wrong appid or secret), and bugs
    /// (a handler panicked): logged loudly.
    pub fn is_operator_fault(&self) -> bool {
        matches!(self, Self::Internal(_))
            || matches!(
                self,
                Self::WeChat(WeChatError::Api { errcode, .. })
                    if matches!(
                        *errcode,
                        errcode::INVALID_APPID
                            | errcode::INVALID_APPSECRET
                            | errcode::INVALID_CREDENTIAL
                            | errcode::IP_NOT_WHITELISTED
                    )
            )
    }

    fn message(&self) -> String {
        const RELOGIN: &str = "call wx.login() again and post the new code";
        match self {
            Self::SessionInvalid => {
                "no valid session: log in again (wx.login, then POST the code to the login route)"
                    .to_owned()
            }
            Self::BadRequest(m) => m.clone(),
            Self::PayloadTooLarge { limit } => format!("the request body is over {limit} bytes"),
            Self::MethodNotAllowed { allow } => format!("use {allow} on this route"),
            Self::NotFound(what) => (*what).to_owned(),
            Self::SessionKeyStale => "the encrypted data was made with a newer session_key than wxgate \
                holds for this user: call wx.login(), POST the new code to the login route, \
                then fetch the encrypted data again and retry"
                .to_owned(),
            Self::WatermarkMismatch => {
                "the encrypted data belongs to another mini-program (watermark.appid differs)".to_owned()
            }
            Self::SignatureMismatch => {
                "rawData does not match its signature: send rawData and signature exactly as WeChat gave them".to_owned()
            }
            Self::WeChat(WeChatError::Api { errcode, .. }) => match *errcode {
                errcode::INVALID_CODE => format!("the login code is invalid or expired: {RELOGIN}"),
                errcode::CODE_USED => format!("the login code was already used: {RELOGIN}"),
                errcode::BUSY => "WeChat is busy: try again in a moment".to_owned(),
                errcode::RATE_LIMITED => {
                    "WeChat's rate limit was reached: try again later".to_owned()
                }
                errcode::HIGH_RISK_USER => {
                    "WeChat refused this login because it considers the user high-risk".to_owned()
                }
                _ if self.is_operator_fault() => {
                    "WeChat rejected this server's credentials or address; the operator must fix \
                     the app's appid, secret or IP whitelist"
                        .to_owned()
                }
                _ => "WeChat refused the request".to_owned(),
            },
            Self::WeChat(WeChatError::Timeout(_)) => {
                "WeChat did not answer in time: try again".to_owned()
            }
            Self::WeChat(WeChatError::Saturated(_)) => {
                "too many calls to WeChat are in flight: try again in a moment".to_owned()
            }
            Self::InvalidIdentity(_) => {
                "WeChat answered with an identity wxgate cannot use: the login is refused".to_owned()
            }
            Self::WeChat(_) => {
                "WeChat could not be reached or gave an unusable answer: try again".to_owned()
            }
            Self::Store(_) => "the session store is unavailable: try again shortly".to_owned(),
            Self::UpstreamUnavailable(_) => "the backend could not be reached".to_owned(),
            Self::UpstreamTimeout(_) => "the backend did not answer in time".to_owned(),
            Self::BodyIdle(timeout) => format!(
                "the request body sent nothing for {}s: send it without pauses",
                timeout.as_secs_f64()
            ),
            Self::UpgradeNotAllowed => {
                "this upgrade is not allowed here (upstream.upgrades lists the protocols that are)".to_owned()
            }
            Self::BodyMalformed(_) => "the request body is malformed (bad chunked framing)".to_owned(),
            Self::Overloaded => "the gateway is at its limit of requests in flight: try again shortly".to_owned(),
            Self::LoginRateLimited { .. } => {
                "too many logins from this address: wait for Retry-After seconds, then log in again".to_owned()
            }
            Self::BindingUnavailable(_) => {
                "the account service could not be asked who this user is: try again shortly".to_owned()
            }
            Self::UserNotBound => {
                "this WeChat user has no account here yet: register first".to_owned()
            }
            Self::AdminUnauthorized => {
                "send the admin token as `Authorization: Bearer <admin.token>`".to_owned()
            }
            Self::AdminTokenRequired => "operator actions answer on a non-loopback admin address \
                only with admin.token (or WXGATE_ADMIN_TOKEN) set"
                .to_owned(),
            Self::UnknownApp(why) => why.clone(),
            Self::NoUpstream => "no backend serves this path".to_owned(),
            Self::PathAmbiguous(why) => {
                format!("{why}: send the path as the backend should read it")
            }
            Self::RedirectInvalid => "`redirect` must be a path on this site, such as /orders \
                (no scheme, no host, no //, no backslash, at most 1,024 bytes)"
                .to_owned(),
            Self::StateInvalid => "this login link is not this browser's, has expired or was \
                used already: start the login again"
                .to_owned(),
            Self::OAuthDenied => "the login was not authorised in WeChat: start it again to retry"
                .to_owned(),
            Self::CsrfRejected => "a request with the session cookie must come from this site's \
                own pages (Origin); send X-Session-Id from other clients"
                .to_owned(),
            Self::NoSessionKey => "this route is for mini-program sessions: a browser session \
                has no session_key"
                .to_owned(),
            Self::Internal(_) => "internal error: the request failed inside wxgate".to_owned(),
        }
    }

    /// The answer as a plain page for a browser (the web login's routes):
    /// the same status, code and headers, the message as text.
    pub fn into_page(&self) -> Response<Body> {
        let html = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{status}</title></head>\n\
             <body style=\"font-family: sans-serif; max-width: 36em; margin: 3em auto\">\n\
             <h1>{status}</h1>\n<p id=\"message\">{message}</p>\n<p><code id=\"code\">{code}</code></p>\n</body></html>\n",
            status = self.status(),
            message = crate::wire::html::escape(&self.message()),
            code = self.code(),
        );
        let json = self.into_response();
        let mut page = super::page(self.status(), html);
        // The JSON answer's own headers (Allow, Retry-After, the mark) stay.
        for (name, value) in json.headers() {
            if name != header::CONTENT_TYPE {
                page.headers_mut().insert(name.clone(), value.clone());
            }
        }
        page
    }

    /// `{"code", "message"}` (and WeChat's `errcode` when it gave one).
    fn body(&self) -> Bytes {
        // The answer to every request without a valid session, and so what
        // a flood of them is served: written once, not per request.
        static SESSION_INVALID: LazyLock<Bytes> =
            LazyLock::new(|| HttpError::SessionInvalid.render());
        match self {
            Self::SessionInvalid => SESSION_INVALID.clone(),
            _ => self.render(),
        }
    }

    fn render(&self) -> Bytes {
        #[derive(Serialize)]
        struct ErrorBody<'a> {
            code: &'a str,
            message: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            errcode: Option<i64>,
        }
        let errcode = match self {
            Self::WeChat(WeChatError::Api { errcode, .. }) => Some(*errcode),
            _ => None,
        };
        let body = ErrorBody {
            code: self.code(),
            message: &self.message(),
            errcode,
        };
        // Strings and an integer: serde_json cannot fail on them.
        serde_json::to_vec(&body).map_or_else(|_| Bytes::new(), Bytes::from)
    }

    pub fn into_response(&self) -> Response<Body> {
        let status = self.status();
        let mut response = super::json_bytes(status, self.body());
        let headers = response.headers_mut();
        // The mark of wxgate's own answers: a client tells them from its
        // backend's by this header, never by the body (`proxy` removes a
        // backend's own copy).
        headers.insert(WXGATE_ERROR.clone(), HeaderValue::from_static(self.code()));
        if let Self::MethodNotAllowed { allow } = self {
            headers.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        if let Self::LoginRateLimited { retry_after } = self {
            // Whole seconds, rounded up: retrying sooner would be refused again.
            let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        } else if status == StatusCode::SERVICE_UNAVAILABLE
            || status == StatusCode::TOO_MANY_REQUESTS
        {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<DecryptError> for HttpError {
    fn from(e: DecryptError) -> Self {
        match e {
            DecryptError::Malformed(why) => Self::BadRequest(why.to_owned()),
            DecryptError::Stale => Self::SessionKeyStale,
            DecryptError::WatermarkMismatch => Self::WatermarkMismatch,
        }
    }
}

impl From<ReadError> for HttpError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::TooLarge { limit } => Self::PayloadTooLarge { limit },
            ReadError::NotJson { shape } => {
                Self::BadRequest(format!("send a JSON body like {shape}"))
            }
            e @ ReadError::RepeatedKey(_) => Self::BadRequest(e.to_string()),
            ReadError::Idle(timeout) => Self::BodyIdle(timeout),
            ReadError::Unreadable => {
                Self::BadRequest("the request body could not be read".to_owned())
            }
        }
    }
}

impl From<ProxyError> for HttpError {
    fn from(e: ProxyError) -> Self {
        match e {
            ProxyError::Timeout(timeout) => Self::UpstreamTimeout(timeout),
            ProxyError::BodyIdle(timeout) => Self::BodyIdle(timeout),
            ProxyError::ClientBody(why) => Self::BodyMalformed(why),
            ProxyError::Unavailable(why) => Self::UpstreamUnavailable(why),
            ProxyError::BadPath => Self::BadRequest("the request path is not valid".to_owned()),
        }
    }
}

impl From<UnknownApp> for HttpError {
    fn from(UnknownApp(why): UnknownApp) -> Self {
        Self::UnknownApp(why)
    }
}

fn wechat_status(e: &WeChatError) -> StatusCode {
    match e {
        WeChatError::Api { errcode, .. } => match *errcode {
            errcode::INVALID_CODE | errcode::CODE_USED => StatusCode::BAD_REQUEST,
            errcode::BUSY => StatusCode::SERVICE_UNAVAILABLE,
            errcode::RATE_LIMITED => StatusCode::TOO_MANY_REQUESTS,
            errcode::HIGH_RISK_USER => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_GATEWAY,
        },
        WeChatError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        WeChatError::Saturated(_) => StatusCode::SERVICE_UNAVAILABLE,
        WeChatError::Unreachable(_) | WeChatError::Status(_) | WeChatError::BadResponse(_) => {
            StatusCode::BAD_GATEWAY
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(errcode: i64) -> HttpError {
        HttpError::WeChat(WeChatError::Api {
            errcode,
            errmsg: String::new(),
        })
    }

    #[test]
    fn wechat_mapping_table() {
        let cases = [
            (api(40029), 400, "code_invalid", false),
            (api(40163), 400, "code_used", false),
            (api(-1), 503, "wechat_busy", false),
            (api(45011), 429, "wechat_rate_limited", false),
            (api(40226), 403, "user_high_risk", false),
            (api(40013), 502, "wechat_misconfigured", true),
            (api(40125), 502, "wechat_misconfigured", true),
            (api(40164), 502, "wechat_misconfigured", true),
            (api(40001), 502, "wechat_misconfigured", true),
            (HttpError::SessionKeyStale, 409, "session_key_stale", false),
            (api(99999), 502, "wechat_error", false),
            (
                HttpError::WeChat(WeChatError::Timeout(Duration::from_secs(1))),
                504,
                "wechat_timeout",
                false,
            ),
            (
                HttpError::WeChat(WeChatError::Status(503)),
                502,
                "wechat_unavailable",
                false,
            ),
            (
                HttpError::WeChat(WeChatError::Unreachable("x".into())),
                502,
                "wechat_unavailable",
                false,
            ),
            (
                HttpError::WeChat(WeChatError::Saturated(Duration::from_secs(1))),
                503,
                "wechat_busy",
                false,
            ),
            (HttpError::Overloaded, 503, "overloaded", false),
            (
                HttpError::LoginRateLimited {
                    retry_after: Duration::from_secs(1),
                },
                429,
                "login_rate_limited",
                false,
            ),
            (
                HttpError::BodyIdle(Duration::from_secs(1)),
                408,
                "request_timeout",
                false,
            ),
            (HttpError::Internal("boom".into()), 500, "internal", true),
        ];
        for (err, status, code, operator) in cases {
            assert_eq!(err.status().as_u16(), status, "{err:?}");
            assert_eq!(err.code(), code, "{err:?}");
            assert_eq!(err.is_operator_fault(), operator, "{err:?}");
        }
    }

    #[test]
    fn retry_after_rounds_the_wait_up() {
        for (wait_ms, header) in [(200, "1"), (1_000, "1"), (1_200, "2"), (59_001, "60")] {
            let error = HttpError::LoginRateLimited {
                retry_after: Duration::from_millis(wait_ms),
            };
            let response = error.into_response();
            assert_eq!(
                response.headers()[header::RETRY_AFTER],
                header,
                "{wait_ms} ms"
            );
        }
        let response = HttpError::Overloaded.into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        let body = HttpError::Internal("secret detail".into()).message();
        assert!(
            !body.contains("secret detail"),
            "a panic's text stays in the log"
        );
    }
}
