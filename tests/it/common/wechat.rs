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
//! `cgi-bin/stable_token`: returns the current token while it is valid
//! (a new one once it has expired), `force_refresh: true` replaces it,
//! `expires_in` is 7200 unless set, and with the quota used up it answers
//! 45009. APIs called with an expired token answer 42001, with any other
//! but the current one 40001. `getuserphonenumber`: code `phone:DIGITS` → that number,
//! `err:N` → errcode N. `checksession`: 87009 unless the signature is made
//! with the user's current key. `ticket/getticket?type=jsapi`: the app's
//! jsapi_ticket, for the current token only.
//!
//! Web authorisation (`sns/oauth2/access_token`, official accounts and
//! websites): a code works once per app (40163 after), wrong credentials
//! 40013 / 40125, `err:N` errcode N, `union:USER` with a unionid,
//! `html` an HTTP 502 page, any other code the user it names, without a
//! unionid. The user's web access token opens `sns/userinfo` (nickname
//! `nick_USER`) for that openid only; any other answers 40001.
//!
//! Several apps (`add_app`): each has its own secret, access token and
//! session_keys (a user's key rotates per app, as at WeChat), and a phone
//! number's watermark names the app whose token asked. Unlike WeChat, a
//! user's openid is the SAME in every app here, so a gateway that filed
//! users by openid alone would mix the apps up and the tests would see it.

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
    /// appid → secret, beyond the default app.
    apps: HashMap<String, String>,
    calls: HashMap<String, usize>,
    /// Logins (key rotations) per user (`app_user`).
    rotations: HashMap<String, u32>,
    /// The current token per appid.
    tokens: HashMap<String, String>,
    /// The app of every getuserphonenumber call, by the token it came with.
    phone_apps: Vec<String>,
    tokens_issued: u32,
    /// Tokens past their end (`expire_token`): 42001.
    expired: std::collections::HashSet<String>,
    token_lifetime: Option<u64>,
    quota_exhausted: bool,
    normal_token_calls: usize,
    forced_token_calls: usize,
    /// Reject this many more API calls with 40001, whatever the token.
    reject_tokens: usize,
    token_delay: Duration,
    /// jscode2session calls being answered now, and the most at once.
    in_flight: usize,
    peak_in_flight: usize,
    /// Web access tokens issued: token → (openid, unionid).
    web_tokens: HashMap<String, (String, Option<String>)>,
    /// The next getuserphonenumber calls held until this many have come,
    /// then answered together (`hold_phone_calls`).
    phone_hold: Option<(Arc<tokio::sync::Barrier>, usize)>,
    /// getticket calls, and the ticket per appid.
    ticket_calls: usize,
    tickets: HashMap<String, String>,
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

    /// Another mini-program, with its own secret; for an app already
    /// known (`APPID` too), its AppSecret reset: the old one stops working
    /// at once, as on 微信公众平台.
    pub fn add_app(&self, appid: &str, secret: &str) {
        let mut state = self.state.lock().unwrap();
        state.apps.insert(appid.to_owned(), secret.to_owned());
    }

    fn secret_of(&self, appid: &str) -> Option<String> {
        let state = self.state.lock().unwrap();
        match state.apps.get(appid) {
            Some(secret) => Some(secret.clone()),
            None => (appid == APPID).then(|| SECRET.to_owned()),
        }
    }

    /// The apps of the getuserphonenumber calls so far, by their tokens.
    pub fn phone_apps(&self) -> Vec<String> {
        self.state.lock().unwrap().phone_apps.clone()
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

    /// The user's current session_key in `appid`.
    pub fn current_key_in(&self, appid: &str, user: &str) -> String {
        let name = app_user(appid, user);
        key_of(&name, self.rotations(&name))
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

    /// Replaces the default app's access token behind wxgate's back (another holder forced a refresh).
    pub fn revoke_token(&self) {
        let mut state = self.state.lock().unwrap();
        state.tokens_issued += 1;
        let token = format!("token-{}", state.tokens_issued);
        state.tokens.insert(APPID.to_owned(), token);
    }

    /// The default app's current token reaches its end at WeChat: APIs
    /// answer 42001 with it, and stable_token issues a new one.
    pub fn expire_token(&self) {
        let mut state = self.state.lock().unwrap();
        if let Some(token) = state.tokens.get(APPID).cloned() {
            state.expired.insert(token);
        }
    }

    /// The `expires_in` stable_token answers with (7200 by default).
    pub fn token_lifetime(&self, seconds: u64) {
        self.state.lock().unwrap().token_lifetime = Some(seconds);
    }

    /// stable_token answers 45009 (the app's daily quota is used up).
    pub fn exhaust_quota(&self, exhausted: bool) {
        self.state.lock().unwrap().quota_exhausted = exhausted;
    }

    /// The next `n` API calls answer 40001 even with the current token.
    pub fn reject_tokens(&self, n: usize) {
        self.state.lock().unwrap().reject_tokens = n;
    }

    /// The next `n` getuserphonenumber calls wait until all `n` have come,
    /// then are answered: a race of `n` callers made deterministic.
    pub fn hold_phone_calls(&self, n: usize) {
        self.state.lock().unwrap().phone_hold = Some((Arc::new(tokio::sync::Barrier::new(n)), n));
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
            "/cgi-bin/ticket/getticket" => self.ticket(req),
            "/wxa/checksession" => self.check_session(req),
            "/sns/oauth2/access_token" => self.web_access_token(req),
            "/sns/userinfo" => self.userinfo(req),
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
        let appid = body["appid"].as_str().unwrap_or_default().to_owned();
        let Some(secret) = self.secret_of(&appid) else {
            return api_error(40013, "invalid appid");
        };
        if body["secret"] != secret.as_str() {
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
        if state.quota_exhausted {
            return api_error(45009, "reach max api daily quota limit");
        }
        let expired = state
            .tokens
            .get(&appid)
            .is_none_or(|token| state.expired.contains(token));
        if force || expired {
            state.tokens_issued += 1;
            let token = format!("token-{}", state.tokens_issued);
            state.tokens.insert(appid.clone(), token);
        }
        let token = state.tokens[&appid].clone();
        let lifetime = state.token_lifetime.unwrap_or(7200);
        reply(
            StatusCode::OK,
            "text/plain",
            format!(r#"{{"access_token":"{token}","expires_in":{lifetime}}}"#),
        )
    }

    /// The app whose current access token `query` carries; else WeChat's
    /// answer: 42001 for an expired token, 40001 for any other.
    fn token_app(&self, query: &HashMap<String, String>) -> Result<String, (i64, &'static str)> {
        let mut state = self.state.lock().unwrap();
        if state.reject_tokens > 0 {
            state.reject_tokens -= 1;
            return Err(TOKEN_REJECTED);
        }
        let token = query.get("access_token").ok_or(TOKEN_REJECTED)?;
        if state.expired.contains(token) {
            return Err((42001, "access_token expired"));
        }
        state
            .tokens
            .iter()
            .find(|(_, current)| *current == token)
            .map(|(appid, _)| appid.clone())
            .ok_or(TOKEN_REJECTED)
    }

    /// `cgi-bin/ticket/getticket?access_token=&type=jsapi`: the app's
    /// jsapi_ticket (`ticket-<app>-<n>`), counted.
    fn ticket(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let query = url_pairs(req.uri().query().unwrap_or(""));
        let appid = match self.token_app(&query) {
            Ok(appid) => appid,
            Err((errcode, errmsg)) => return api_error(errcode, errmsg),
        };
        if query.get("type").map(String::as_str) != Some("jsapi") {
            return api_error(40097, "invalid args");
        }
        let mut state = self.state.lock().unwrap();
        state.ticket_calls += 1;
        let n = state.ticket_calls;
        let ticket = state
            .tickets
            .entry(appid.clone())
            .or_insert_with(|| format!("ticket-{appid}-{n}"))
            .clone();
        reply(
            StatusCode::OK,
            "text/plain",
            format!(r#"{{"errcode":0,"errmsg":"ok","ticket":"{ticket}","expires_in":7200}}"#),
        )
    }

    /// getticket calls so far, and the ticket of `appid`.
    pub fn ticket_of(&self, appid: &str) -> (usize, Option<String>) {
        let state = self.state.lock().unwrap();
        (state.ticket_calls, state.tickets.get(appid).cloned())
    }

    async fn phone_number(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let held = {
            let mut state = self.state.lock().unwrap();
            match &mut state.phone_hold {
                Some((barrier, left)) if *left > 0 => {
                    *left -= 1;
                    Some(barrier.clone())
                }
                _ => None,
            }
        };
        if let Some(barrier) = held {
            barrier.wait().await;
        }
        let query = url_pairs(req.uri().query().unwrap_or(""));
        let appid = match self.token_app(&query) {
            Ok(appid) => appid,
            Err((errcode, errmsg)) => return api_error(errcode, errmsg),
        };
        self.state.lock().unwrap().phone_apps.push(appid.clone());
        let body: serde_json::Value =
            serde_json::from_slice(&req.into_body().collect().await.unwrap().to_bytes())
                .unwrap_or_default();
        let code = body["code"].as_str().unwrap_or_default();
        match code.split_once(':') {
            Some(("phone", digits)) => reply(
                StatusCode::OK,
                "text/plain",
                format!(
                    r#"{{"errcode":0,"errmsg":"ok","phone_info":{{"phoneNumber":"{digits}","purePhoneNumber":"{digits}","countryCode":"86","watermark":{{"timestamp":1637744274,"appid":"{appid}"}}}}}}"#
                ),
            ),
            Some(("err", n)) => api_error(n.parse().unwrap_or(-1), "test error"),
            _ => api_error(40029, "invalid code"),
        }
    }

    fn check_session(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let query = url_pairs(req.uri().query().unwrap_or(""));
        let appid = match self.token_app(&query) {
            Ok(appid) => appid,
            Err((errcode, errmsg)) => return api_error(errcode, errmsg),
        };
        let get = |k: &str| query.get(k).map(String::as_str).unwrap_or("");
        let user = get("openid").strip_prefix("o_").unwrap_or_default();
        let expected = hmac_hex(self.current_key_in(&appid, user).as_bytes());
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

    /// How many times `code` was presented to `sns/oauth2/access_token` for `appid`.
    pub fn web_calls(&self, appid: &str, code: &str) -> usize {
        let state = self.state.lock().unwrap();
        state
            .calls
            .get(&format!("web/{appid}/{code}"))
            .copied()
            .unwrap_or(0)
    }

    /// The grant type and the app's credentials, as both code exchanges
    /// check them: the AppID, or WeChat's documented refusal.
    fn authorized(&self, query: &HashMap<String, String>) -> Result<String, (i64, &'static str)> {
        let get = |k: &str| query.get(k).map(String::as_str).unwrap_or("");
        if get("grant_type") != "authorization_code" {
            return Err((40002, "invalid grant_type"));
        }
        let appid = get("appid").to_owned();
        let Some(secret) = self.secret_of(&appid) else {
            return Err((40013, "invalid appid"));
        };
        if get("secret") != secret {
            return Err((40125, "invalid appsecret"));
        }
        Ok(appid)
    }

    fn web_access_token(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let query = url_pairs(req.uri().query().unwrap_or(""));
        let appid = match self.authorized(&query) {
            Ok(appid) => appid,
            Err((errcode, errmsg)) => return api_error(errcode, errmsg),
        };
        let code = query.get("code").cloned().unwrap_or_default();
        let uses = {
            let mut state = self.state.lock().unwrap();
            let n = state
                .calls
                .entry(format!("web/{appid}/{code}"))
                .or_default();
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
            _ if uses > 1 => return api_error(40163, "code been used"),
            _ => {}
        }
        let user = if kind == "union" { rest } else { code.as_str() };
        let openid = openid_of(user);
        let unionid = (kind == "union").then(|| unionid_of(user));
        let token = format!("wat_{appid}_{user}");
        self.state
            .lock()
            .unwrap()
            .web_tokens
            .insert(token.clone(), (openid.clone(), unionid.clone()));
        let mut body = serde_json::json!({
            "access_token": token,
            "expires_in": 7200,
            "refresh_token": "rt",
            "openid": openid,
            "scope": "snsapi_userinfo",
        });
        if let Some(unionid) = unionid {
            body["unionid"] = serde_json::json!(unionid);
        }
        reply(StatusCode::OK, "text/plain", body.to_string())
    }

    fn userinfo(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let query = url_pairs(req.uri().query().unwrap_or(""));
        let get = |k: &str| query.get(k).map(String::as_str).unwrap_or("");
        let known = self
            .state
            .lock()
            .unwrap()
            .web_tokens
            .get(get("access_token"))
            .cloned();
        let Some((openid, unionid)) = known.filter(|(openid, _)| openid == get("openid")) else {
            return api_error(40001, "invalid credential, access_token is invalid");
        };
        let user = openid.trim_start_matches("o_").to_owned();
        let mut body = serde_json::json!({
            "openid": openid,
            "nickname": format!("nick_{user}"),
            "sex": 0,
            "province": "", "city": "", "country": "",
            "headimgurl": format!("https://thirdwx.qlogo.cn/{user}/132"),
            "privilege": [],
        });
        if let Some(unionid) = unionid {
            body["unionid"] = serde_json::json!(unionid);
        }
        reply(StatusCode::OK, "text/plain", body.to_string())
    }

    async fn code2session(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let query: HashMap<String, String> = url_pairs(req.uri().query().unwrap_or(""));
        let appid = match self.authorized(&query) {
            Ok(appid) => appid,
            Err((errcode, errmsg)) => return api_error(errcode, errmsg),
        };
        let code = query.get("js_code").cloned().unwrap_or_default();
        let uses = {
            let mut state = self.state.lock().unwrap();
            // Codes are per app: the default app's counted by code alone.
            let counted = match appid.as_str() {
                APPID => code.clone(),
                other => format!("{other}/{code}"),
            };
            let n = state.calls.entry(counted).or_default();
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
            // Ids exactly as given (`rawid:a:b`), outside WeChat's alphabet.
            ("rawid" | "rawunion", id) => {
                let (openid, unionid) = match kind {
                    "rawid" => (id.to_owned(), openid_of("raw")),
                    _ => (openid_of("raw"), id.to_owned()),
                };
                let body = serde_json::json!({
                    "session_key": "cmF3cmF3cmF3cmF3cmF3cg==",
                    "openid": openid,
                    "unionid": unionid,
                });
                return reply(StatusCode::OK, "text/plain", body.to_string());
            }
            (_, user) => user,
        };
        let key = {
            let name = app_user(&appid, user);
            let mut state = self.state.lock().unwrap();
            let n = state.rotations.entry(name.clone()).or_default();
            *n += 1;
            key_of(&name, *n)
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

/// The user as keys are counted: per app (the default app's users by name alone).
fn app_user(appid: &str, user: &str) -> String {
    match appid {
        APPID => user.to_owned(),
        // The app's last characters first: key_of keeps a name's first 12.
        other => format!("{}x{user}", &other[other.len().saturating_sub(3)..]),
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

const TOKEN_REJECTED: (i64, &str) = (
    40001,
    "invalid credential, access_token is invalid or not latest",
);

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
