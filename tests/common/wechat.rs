//! A test double of WeChat's server APIs, following their documented
//! behaviour: answers are `text/plain` JSON, a success has no `errcode`.
//!
//! `jscode2session`: a code works once (a second use answers 40163), wrong
//! credentials answer 40013 / 40125, and every login of a user ROTATES the
//! user's session_key (WeChat keeps one valid key per user). Special codes
//! select the other documented or broken answers:
//!
//! | code              | answer                                        |
//! |-------------------|-----------------------------------------------|
//! | `err:N`           | `{"errcode": N, "errmsg": ...}`               |
//! | `slow:MS:USER`    | success for USER after MS milliseconds        |
//! | `union:USER`      | success with a unionid                        |
//! | `html`            | HTTP 502 with an HTML error page              |
//! | `http500`         | HTTP 500                                      |
//! | `garbage`         | HTTP 200, text/plain, not JSON                |
//! | `nokey:USER`      | "success" without a session_key               |
//! | anything else     | success for the user named by the code        |
//!
//! The user behind `alice`, `slow:10:alice` and `union:alice` is the same.
//!
//! `cgi-bin/stable_token`: returns the current token while it is valid;
//! `force_refresh: true` replaces it. APIs called with any other token
//! answer 40001. `getuserphonenumber`: code `phone:DIGITS` → that number,
//! `err:N` → errcode N. `checksession`: 87009 unless the signature is made
//! with the user's current key.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tokio::net::TcpListener;

use super::{APPID, SECRET};

#[derive(Default)]
struct State {
    calls: HashMap<String, usize>,
    /// Logins (key rotations) per user.
    rotations: HashMap<String, u32>,
    token: Option<String>,
    tokens_issued: u32,
    normal_token_calls: usize,
    forced_token_calls: usize,
    /// Reject this many more API calls with 40001, whatever the token.
    reject_tokens: usize,
    token_delay: Duration,
    /// jscode2session calls being answered now, and the most at once.
    in_flight: usize,
    peak_in_flight: usize,
}

#[derive(Clone)]
pub struct WeChatDouble {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

pub fn openid_of(user: &str) -> String {
    format!("o_{user}")
}

pub fn unionid_of(user: &str) -> String {
    format!("u_{user}")
}

impl WeChatDouble {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind double");
        let addr = listener.local_addr().expect("addr");
        let double = Self {
            addr,
            state: Arc::default(),
        };
        let served = double.clone();
        super::serve(listener, move |req| {
            let double = served.clone();
            async move { double.answer(req).await }
        });
        double
    }

    /// How many times `code` was presented to jscode2session.
    pub fn calls(&self, code: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .calls
            .get(code)
            .copied()
            .unwrap_or(0)
    }

    pub fn total_calls(&self) -> usize {
        self.state.lock().unwrap().calls.values().sum()
    }

    /// The most jscode2session calls that were in flight at once.
    pub fn peak_in_flight(&self) -> usize {
        self.state.lock().unwrap().peak_in_flight
    }

    /// How many times the user's key has rotated (logins, plus `rotate_key`).
    fn rotations(&self, user: &str) -> u32 {
        let state = self.state.lock().unwrap();
        state.rotations.get(user).copied().unwrap_or(0)
    }

    /// The user's current session_key (base64 text).
    pub fn current_key(&self, user: &str) -> String {
        key_of(user, self.rotations(user))
    }

    /// The key the user's next login will get.
    pub fn next_key(&self, user: &str) -> String {
        key_of(user, self.rotations(user) + 1)
    }

    /// Rotates the user's key as a `wx.login` that never reached wxgate would.
    pub fn rotate_key(&self, user: &str) {
        *self
            .state
            .lock()
            .unwrap()
            .rotations
            .entry(user.to_owned())
            .or_default() += 1;
    }

    /// `(normal, forced)` stable_token calls so far.
    pub fn token_calls(&self) -> (usize, usize) {
        let state = self.state.lock().unwrap();
        (state.normal_token_calls, state.forced_token_calls)
    }

    /// Replaces the access token behind wxgate's back (another holder forced a refresh).
    pub fn revoke_token(&self) {
        let mut state = self.state.lock().unwrap();
        state.tokens_issued += 1;
        state.token = Some(format!("token-{}", state.tokens_issued));
    }

    /// The next `n` API calls answer 40001 even with the current token.
    pub fn reject_tokens(&self, n: usize) {
        self.state.lock().unwrap().reject_tokens = n;
    }

    pub fn slow_tokens(&self, delay: Duration) {
        self.state.lock().unwrap().token_delay = delay;
    }

    async fn answer(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        match req.uri().path() {
            "/sns/jscode2session" => {
                {
                    let mut state = self.state.lock().unwrap();
                    state.in_flight += 1;
                    state.peak_in_flight = state.peak_in_flight.max(state.in_flight);
                }
                let answer = self.code2session(req).await;
                self.state.lock().unwrap().in_flight -= 1;
                answer
            }
            "/cgi-bin/stable_token" => self.stable_token(req).await,
            "/wxa/business/getuserphonenumber" => self.phone_number(req).await,
            "/wxa/checksession" => self.check_session(req),
            _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found".into()),
        }
    }

    async fn stable_token(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let body: serde_json::Value =
            serde_json::from_slice(&req.into_body().collect().await.unwrap().to_bytes())
                .unwrap_or_default();
        if body["grant_type"] != "client_credential" {
            return api_error(40002, "invalid grant_type");
        }
        if body["appid"] != APPID {
            return api_error(40013, "invalid appid");
        }
        if body["secret"] != SECRET {
            return api_error(40125, "invalid appsecret");
        }
        let delay = self.state.lock().unwrap().token_delay;
        tokio::time::sleep(delay).await;
        let mut state = self.state.lock().unwrap();
        let force = body["force_refresh"] == true;
        if force {
            state.forced_token_calls += 1;
        } else {
            state.normal_token_calls += 1;
        }
        if force || state.token.is_none() {
            state.tokens_issued += 1;
            state.token = Some(format!("token-{}", state.tokens_issued));
        }
        let token = state.token.clone().unwrap_or_default();
        reply(
            StatusCode::OK,
            "text/plain",
            format!(r#"{{"access_token":"{token}","expires_in":7200}}"#),
        )
    }

    /// `Some(error)` when the access token in `query` is not accepted.
    fn token_rejected(&self, query: &HashMap<String, String>) -> Option<Response<Full<Bytes>>> {
        let mut state = self.state.lock().unwrap();
        if state.reject_tokens > 0 {
            state.reject_tokens -= 1;
            return Some(api_error(
                40001,
                "invalid credential, access_token is invalid or not latest",
            ));
        }
        (query.get("access_token") != state.token.as_ref()).then(|| {
            api_error(
                40001,
                "invalid credential, access_token is invalid or not latest",
            )
        })
    }

    async fn phone_number(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let query = url_pairs(req.uri().query().unwrap_or(""));
        if let Some(rejected) = self.token_rejected(&query) {
            return rejected;
        }
        let body: serde_json::Value =
            serde_json::from_slice(&req.into_body().collect().await.unwrap().to_bytes())
                .unwrap_or_default();
        let code = body["code"].as_str().unwrap_or_default();
        match code.split_once(':') {
            Some(("phone", digits)) => reply(
                StatusCode::OK,
                "text/plain",
                format!(
                    r#"{{"errcode":0,"errmsg":"ok","phone_info":{{"phoneNumber":"{digits}","purePhoneNumber":"{digits}","countryCode":"86","watermark":{{"timestamp":1637744274,"appid":"{APPID}"}}}}}}"#
                ),
            ),
            Some(("err", n)) => api_error(n.parse().unwrap_or(-1), "test error"),
            _ => api_error(40029, "invalid code"),
        }
    }

    fn check_session(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let query = url_pairs(req.uri().query().unwrap_or(""));
        if let Some(rejected) = self.token_rejected(&query) {
            return rejected;
        }
        let get = |k: &str| query.get(k).map(String::as_str).unwrap_or("");
        let user = get("openid").strip_prefix("o_").unwrap_or_default();
        let expected = hmac_hex(self.current_key(user).as_bytes());
        if get("sig_method") == "hmac_sha256" && get("signature") == expected {
            reply(
                StatusCode::OK,
                "text/plain",
                r#"{"errcode":0,"errmsg":"ok"}"#.into(),
            )
        } else {
            api_error(87009, "invalid signature")
        }
    }

    async fn code2session(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let query: HashMap<String, String> = url_pairs(req.uri().query().unwrap_or(""));
        let get = |k: &str| query.get(k).map(String::as_str).unwrap_or("");
        if get("grant_type") != "authorization_code" {
            return api_error(40002, "invalid grant_type");
        }
        if get("appid") != APPID {
            return api_error(40013, "invalid appid");
        }
        if get("secret") != SECRET {
            return api_error(40125, "invalid appsecret");
        }
        let code = get("js_code").to_owned();
        let uses = {
            let mut state = self.state.lock().unwrap();
            let n = state.calls.entry(code.clone()).or_default();
            *n += 1;
            *n
        };
        let (kind, rest) = code.split_once(':').unwrap_or(("", &code));
        match (kind, rest) {
            ("err", n) => return api_error(n.parse().unwrap_or(-1), "test error"),
            ("", "html") => {
                return reply(
                    StatusCode::BAD_GATEWAY,
                    "text/html",
                    "<html><body><h1>502 Bad Gateway</h1></body></html>".into(),
                );
            }
            ("", "http500") => {
                return reply(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", "{}".into());
            }
            ("", "garbage") => {
                return reply(
                    StatusCode::OK,
                    "text/plain",
                    "upstream connect error".into(),
                );
            }
            _ => {}
        }
        if uses > 1 {
            return api_error(40163, "code been used");
        }
        let user = match (kind, rest) {
            ("slow", rest) => {
                let (ms, user) = rest.split_once(':').unwrap_or((rest, "slow"));
                tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(0))).await;
                user
            }
            ("nokey", user) => {
                let body = format!(r#"{{"openid":"{}"}}"#, openid_of(user));
                return reply(StatusCode::OK, "text/plain", body);
            }
            (_, user) => user,
        };
        let key = {
            let mut state = self.state.lock().unwrap();
            let n = state.rotations.entry(user.to_owned()).or_default();
            *n += 1;
            key_of(user, *n)
        };
        let body = if kind == "union" {
            format!(
                r#"{{"session_key":"{key}","openid":"{}","unionid":"{}"}}"#,
                openid_of(user),
                unionid_of(user)
            )
        } else {
            format!(
                r#"{{"session_key":"{key}","openid":"{}"}}"#,
                openid_of(user)
            )
        };
        reply(StatusCode::OK, "text/plain", body)
    }
}

/// The user's `n`th session_key: 16 bytes, base64, distinct per user and
/// rotation, and starting with the user's name so a leak is easy to spot.
fn key_of(user: &str, n: u32) -> String {
    let mut key: String = user
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(12)
        .collect();
    key.push_str(&format!("{n:A>8}"));
    format!("{key:A<22}==")
}

fn hmac_hex(key: &[u8]) -> String {
    use hmac::Mac;
    let mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(key).unwrap();
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn api_error(errcode: i64, errmsg: &str) -> Response<Full<Bytes>> {
    reply(
        StatusCode::OK,
        "text/plain",
        format!(r#"{{"errcode":{errcode},"errmsg":"{errmsg}, rid: 0000"}}"#),
    )
}

fn reply(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

fn url_pairs(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("00");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
