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
use crate::domain::assertion::AssertionError;
use crate::domain::policy::Refusal;
use crate::domain::session::{InvalidIdentity, StoreError};
use crate::domain::wechat::WeChatError;
use crate::domain::wechat::errcode::{self, Fault};
use crate::domain::wechat::wxdata::DecryptError;
use crate::proxy::ProxyError;
use crate::wire::body::ReadError;
use crate::wire::canonical_path::PathError;

pub use crate::wire::header::WXGATE_ERROR;

#[derive(Debug, Clone, thiserror::Error)]
#[allow(missing_docs)] // each variant is described once, in `describe` below
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
    /// A `[[rules]]` entry refuses the request (`deny`, or a requirement
    /// the session does not meet).
    /// Boxed: the rule's name would make every `HttpError` larger.
    #[error(transparent)]
    AccessDenied(Box<Refusal>),
    /// The identity assertion could not be signed.
    #[error("cannot sign the identity assertion: {0}")]
    Assertion(#[from] AssertionError),
    /// A handler panicked; the text is the panic's, for the log only.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<Refusal> for HttpError {
    fn from(refusal: Refusal) -> Self {
        Self::AccessDenied(Box::new(refusal))
    }
}

/// What an error is, to the client and to the operator, in one place.
struct Description<'a> {
    status: StatusCode,
    /// Stable, snake_case: clients and docs/endpoints.md's table use it.
    code: &'static str,
    /// Only the operator can fix it (or it is a bug): logged at error.
    operator_fault: bool,
    /// What the client (or operator) should do; never a secret.
    message: Message<'a>,
}

enum Message<'a> {
    Says(&'static str),
    /// Text the error carries (already fit for the client).
    Given(&'a str),
    Made(String),
}

impl<'a> Description<'a> {
    const fn new(status: StatusCode, code: &'static str, message: &'static str) -> Self {
        Self {
            status,
            code,
            operator_fault: false,
            message: Message::Says(message),
        }
    }

    fn with(status: StatusCode, code: &'static str, message: Message<'a>) -> Self {
        Self {
            status,
            code,
            operator_fault: false,
            message,
        }
    }

    const fn operator_fault(mut self) -> Self {
        self.operator_fault = true;
        self
    }
}

impl HttpError {
    /// Each variant, described once: status, code, fault and message.
    fn describe(&self) -> Description<'_> {
        use Message::{Given, Made};
        use StatusCode as S;
        match self {
            Self::SessionInvalid => Description::new(
                S::UNAUTHORIZED,
                "session_invalid",
                "no valid session: log in again (wx.login, then POST the code to the login route)",
            ),
            Self::BadRequest(m) => Description::with(S::BAD_REQUEST, "bad_request", Given(m)),
            Self::PayloadTooLarge { limit } => Description::with(
                S::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                Made(format!("the request body is over {limit} bytes")),
            ),
            Self::MethodNotAllowed { allow } => Description::with(
                S::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                Made(format!("use {allow} on this route")),
            ),
            Self::NotFound(what) => Description::new(S::NOT_FOUND, "not_found", what),
            Self::SessionKeyStale => Description::new(
                S::CONFLICT,
                "session_key_stale",
                "the encrypted data was made with a newer session_key than wxgate holds for \
                 this user: call wx.login(), POST the new code to the login route, then fetch \
                 the encrypted data again and retry",
            ),
            Self::WatermarkMismatch => Description::new(
                S::BAD_REQUEST,
                "watermark_mismatch",
                "the encrypted data belongs to another mini-program (watermark.appid differs)",
            ),
            Self::SignatureMismatch => Description::new(
                S::BAD_REQUEST,
                "signature_mismatch",
                "rawData does not match its signature: send rawData and signature exactly as \
                 WeChat gave them",
            ),
            Self::WeChat(WeChatError::Api { errcode, .. }) => match errcode::describe(*errcode) {
                Some(known) => {
                    let description =
                        Description::new(fault_status(known.fault), known.code, known.message);
                    if known.fault == Fault::Operator {
                        description.operator_fault()
                    } else {
                        description
                    }
                }
                None => {
                    Description::new(S::BAD_GATEWAY, "wechat_error", "WeChat refused the request")
                }
            },
            Self::WeChat(WeChatError::Timeout(_)) => Description::new(
                S::GATEWAY_TIMEOUT,
                "wechat_timeout",
                "WeChat did not answer in time: try again",
            ),
            Self::WeChat(WeChatError::Saturated(_)) => Description::new(
                S::SERVICE_UNAVAILABLE,
                "wechat_busy",
                "too many calls to WeChat are in flight: try again in a moment",
            ),
            Self::WeChat(
                WeChatError::Unreachable(_) | WeChatError::Status(_) | WeChatError::BadResponse(_),
            ) => Description::new(
                S::BAD_GATEWAY,
                "wechat_unavailable",
                "WeChat could not be reached or gave an unusable answer: try again",
            ),
            Self::InvalidIdentity(_) => Description::new(
                S::BAD_GATEWAY,
                "wechat_error",
                "WeChat answered with an identity wxgate cannot use: the login is refused",
            ),
            Self::Store(_) => Description::new(
                S::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the session store is unavailable: try again shortly",
            ),
            Self::UpstreamUnavailable(_) => Description::new(
                S::BAD_GATEWAY,
                "upstream_unavailable",
                "the backend could not be reached",
            ),
            Self::UpstreamTimeout(_) => Description::new(
                S::GATEWAY_TIMEOUT,
                "upstream_timeout",
                "the backend did not answer in time",
            ),
            Self::BodyIdle(timeout) => Description::with(
                S::REQUEST_TIMEOUT,
                "request_timeout",
                Made(format!(
                    "the request body sent nothing for {}s: send it without pauses",
                    timeout.as_secs_f64()
                )),
            ),
            Self::UpgradeNotAllowed => Description::new(
                S::BAD_REQUEST,
                "upgrade_not_allowed",
                "this upgrade is not allowed here (upstream.upgrades lists the protocols that are)",
            ),
            Self::BodyMalformed(_) => Description::new(
                S::BAD_REQUEST,
                "bad_request",
                "the request body is malformed (bad chunked framing)",
            ),
            Self::Overloaded => Description::new(
                S::SERVICE_UNAVAILABLE,
                "overloaded",
                "the gateway is at its limit of requests in flight: try again shortly",
            ),
            Self::LoginRateLimited { .. } => Description::new(
                S::TOO_MANY_REQUESTS,
                "login_rate_limited",
                "too many logins from this address: wait for Retry-After seconds, then log in again",
            ),
            Self::BindingUnavailable(_) => Description::new(
                S::SERVICE_UNAVAILABLE,
                "binding_unavailable",
                "the account service could not be asked who this user is: try again shortly",
            ),
            Self::UserNotBound => Description::new(
                S::FORBIDDEN,
                "user_not_bound",
                "this WeChat user has no account here yet: register first",
            ),
            Self::AdminUnauthorized => Description::new(
                S::UNAUTHORIZED,
                "admin_unauthorized",
                "send the admin token as `Authorization: Bearer <admin.token>`",
            ),
            Self::AdminTokenRequired => Description::new(
                S::FORBIDDEN,
                "admin_token_required",
                "operator actions answer on a non-loopback admin address only with admin.token \
                 (or WXGATE_ADMIN_TOKEN) set",
            ),
            Self::UnknownApp(why) => Description::with(S::BAD_REQUEST, "unknown_app", Given(why)),
            Self::NoUpstream => {
                Description::new(S::NOT_FOUND, "no_upstream", "no backend serves this path")
            }
            Self::PathAmbiguous(why) => Description::with(
                S::BAD_REQUEST,
                "path_ambiguous",
                Made(format!(
                    "{why}: send the path as the backend should read it"
                )),
            ),
            Self::RedirectInvalid => Description::new(
                S::BAD_REQUEST,
                "redirect_invalid",
                "`redirect` must be a path on this site, such as /orders (no scheme, no host, \
                 no //, no backslash, at most 1,024 bytes)",
            ),
            Self::StateInvalid => Description::new(
                S::FORBIDDEN,
                "state_invalid",
                "this login link is not this browser's, has expired or was used already: start \
                 the login again",
            ),
            Self::OAuthDenied => Description::new(
                S::BAD_REQUEST,
                "oauth_denied",
                "the login was not authorised in WeChat: start it again to retry",
            ),
            Self::CsrfRejected => Description::new(
                S::FORBIDDEN,
                "csrf_rejected",
                "a request with the session cookie must come from this site's own pages \
                 (Origin); send X-Session-Id from other clients",
            ),
            Self::NoSessionKey => Description::new(
                S::BAD_REQUEST,
                "no_session_key",
                "this route is for mini-program sessions: a browser session has no session_key",
            ),
            Self::AccessDenied(refusal) => Description::with(
                S::FORBIDDEN,
                "access_denied",
                Made(format!(
                    "access denied by rule `{}`: {}",
                    refusal.rule, refusal.why
                )),
            ),
            Self::Assertion(_) => Description::new(
                S::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error: the identity assertion could not be signed",
            )
            .operator_fault(),
            // The panic's text is for the log only.
            Self::Internal(_) => Description::new(
                S::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error: the request failed inside wxgate",
            )
            .operator_fault(),
        }
    }

    /// Every (status, code) an error answer can carry, from one sample of
    /// each variant and each errcode of WeChat's wxgate tells apart: what
    /// docs/endpoints.md's table must list (tests/it/docs.rs checks).
    pub fn catalogue() -> Vec<(u16, &'static str)> {
        let mut all: Vec<(u16, &'static str)> = Self::samples()
            .iter()
            .map(|e| (e.status().as_u16(), e.code()))
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// One of each variant (a WeChat refusal per described errcode and
    /// one undescribed), each of WeChat's failures.
    fn samples() -> Vec<Self> {
        let api = |errcode| WeChatError::Api {
            errcode,
            errmsg: String::new(),
        };
        let second = Duration::from_secs(1);
        let mut samples = vec![
            Self::SessionInvalid,
            Self::BadRequest(String::new()),
            Self::PayloadTooLarge { limit: 1 },
            Self::MethodNotAllowed { allow: "GET" },
            Self::NotFound(""),
            Self::SessionKeyStale,
            Self::WatermarkMismatch,
            Self::SignatureMismatch,
            Self::WeChat(api(0)),
            Self::WeChat(WeChatError::Unreachable(String::new())),
            Self::WeChat(WeChatError::Timeout(second)),
            Self::WeChat(WeChatError::Status(500)),
            Self::WeChat(WeChatError::BadResponse("")),
            Self::WeChat(WeChatError::Saturated(second)),
            Self::Store(StoreError::Unavailable(String::new())),
            Self::UpstreamUnavailable(String::new()),
            Self::UpstreamTimeout(second),
            Self::BodyIdle(second),
            Self::Overloaded,
            Self::LoginRateLimited {
                retry_after: second,
            },
            Self::UpgradeNotAllowed,
            Self::BodyMalformed(String::new()),
            Self::BindingUnavailable(String::new()),
            Self::UserNotBound,
            Self::AdminUnauthorized,
            Self::AdminTokenRequired,
            Self::UnknownApp(String::new()),
            Self::NoUpstream,
            Self::PathAmbiguous(PathError::NotAPath),
            Self::RedirectInvalid,
            Self::StateInvalid,
            Self::OAuthDenied,
            Self::CsrfRejected,
            Self::NoSessionKey,
            Self::AccessDenied(Box::new(Refusal {
                rule: "#1".into(),
                why: "",
            })),
            Self::Assertion(AssertionError::Sign),
            Self::Internal(String::new()),
        ];
        samples.extend(
            errcode::ERRCODES
                .iter()
                .map(|e| Self::WeChat(api(e.errcode))),
        );
        // An openid WeChat never gives (empty): the record refuses it.
        let app = crate::domain::session::AppTag::new("wxsample", true);
        let secret = crate::config::secret::Secret::new(String::new());
        if let Err(e) = crate::domain::session::UserRecord::new(&app, "", None, secret) {
            samples.push(Self::InvalidIdentity(e));
        }
        samples
    }

    /// The answer's status.
    pub fn status(&self) -> StatusCode {
        self.describe().status
    }

    /// The answer's `code`.
    pub fn code(&self) -> &'static str {
        self.describe().code
    }

    /// Faults only the operator can fix (wrong appid or secret), and bugs
    /// (a handler panicked): logged loudly.
    pub fn is_operator_fault(&self) -> bool {
        self.describe().operator_fault
    }

    /// The answer's `message`, what the client is told.
    pub fn message(&self) -> String {
        match self.describe().message {
            Message::Says(text) | Message::Given(text) => text.to_owned(),
            Message::Made(text) => text,
        }
    }

    /// The answer as `html`, a page for a browser (the web login's routes,
    /// `endpoints::web_pages` writes it): the JSON answer's status and
    /// headers.
    pub fn into_page(&self, html: String) -> Response<Body> {
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

    /// The JSON answer.
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

/// The status of a WeChat refusal, by whose it is.
fn fault_status(fault: Fault) -> StatusCode {
    match fault {
        Fault::Client => StatusCode::BAD_REQUEST,
        Fault::User => StatusCode::FORBIDDEN,
        Fault::Busy => StatusCode::SERVICE_UNAVAILABLE,
        Fault::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        Fault::Operator => StatusCode::BAD_GATEWAY,
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
            (api(45009), 429, "wechat_quota_exhausted", false),
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

    /// Which variant `e` is: exhaustive, so a new variant must be added
    /// here, and the test below makes it join the samples too.
    fn variant(e: &HttpError) -> usize {
        use HttpError as E;
        match e {
            E::SessionInvalid => 0,
            E::BadRequest(_) => 1,
            E::PayloadTooLarge { .. } => 2,
            E::MethodNotAllowed { .. } => 3,
            E::NotFound(_) => 4,
            E::SessionKeyStale => 5,
            E::WatermarkMismatch => 6,
            E::SignatureMismatch => 7,
            E::WeChat(_) => 8,
            E::InvalidIdentity(_) => 9,
            E::Store(_) => 10,
            E::UpstreamUnavailable(_) => 11,
            E::UpstreamTimeout(_) => 12,
            E::BodyIdle(_) => 13,
            E::Overloaded => 14,
            E::LoginRateLimited { .. } => 15,
            E::UpgradeNotAllowed => 16,
            E::BodyMalformed(_) => 17,
            E::BindingUnavailable(_) => 18,
            E::UserNotBound => 19,
            E::AdminUnauthorized => 20,
            E::AdminTokenRequired => 21,
            E::UnknownApp(_) => 22,
            E::NoUpstream => 23,
            E::PathAmbiguous(_) => 24,
            E::RedirectInvalid => 25,
            E::StateInvalid => 26,
            E::OAuthDenied => 27,
            E::CsrfRejected => 28,
            E::NoSessionKey => 29,
            E::Internal(_) => 30,
            E::AccessDenied(_) => 31,
            E::Assertion(_) => 32,
        }
    }

    #[test]
    fn the_samples_hold_every_variant() {
        let seen: std::collections::BTreeSet<usize> =
            HttpError::samples().iter().map(variant).collect();
        assert_eq!(seen, (0..=32).collect());
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
