//! The browser login's hops, for tests that follow them by hand: the
//! setup (the double's mini-program, an official account, `[web]`), a
//! client that follows no redirect and keeps no cookie, and the start and
//! callback requests.

use reqwest::header::{ACCEPT, COOKIE, LOCATION, SET_COOKIE};

use super::{Gate, GateConfig, Upstream, WeChatDouble};

pub const OA: &str = "wxofficialacct01";
pub const OA_SECRET: &str = "oa-app-secret";
pub const SITE: &str = "wxwebsiteapp0001";
pub const PUBLIC: &str = "https://m.example.com";
pub const CALLBACK: &str = "/_wxgate/oauth/callback";

pub struct Setup {
    pub wechat: WeChatDouble,
    pub upstream: Upstream,
}

impl Setup {
    pub async fn new() -> Self {
        let wechat = WeChatDouble::start().await;
        wechat.add_app(OA, OA_SECRET);
        wechat.add_app(SITE, "site-secret");
        Self {
            wechat,
            upstream: Upstream::start().await,
        }
    }

    /// The double's mini-program in `[wechat]`, an official account in
    /// `[[apps]]` (`scope` when given), `[web]` at [`PUBLIC`].
    pub fn config(&self, scope: Option<&str>) -> GateConfig {
        let mut config = GateConfig::new(&self.wechat, &self.upstream);
        let scope = scope.map_or(String::new(), |s| format!("scope = \"{s}\"\n"));
        config
            .append(&format!(
                "[[apps]]\nappid = \"{OA}\"\nkind = \"official_account\"\n{scope}\
                 secret_env = \"OA_SECRET\"\napi_base = \"http://{}\"\ntimeout = \"2s\"\n",
                self.wechat.addr
            ))
            .env("OA_SECRET", OA_SECRET)
            .set("web", "public_url", &format!("\"{PUBLIC}\""));
        config
    }
}

/// A client that follows no redirect and keeps no cookie: each hop is seen.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The `Set-Cookie` of `name` on `response`, whole.
pub fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

/// `name=value` of a `Set-Cookie`, as a browser sends it back.
pub fn pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

pub fn location(response: &reqwest::Response) -> String {
    response.headers()[LOCATION].to_str().unwrap().to_owned()
}

/// A query parameter of `url`, decoded.
pub fn param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1.split('#').next()?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// What the start route gave: the state and the state cookie.
pub struct Started {
    pub state: String,
    pub cookie: String,
    pub authorize: String,
}

pub async fn start(gate: &Gate, query: &str) -> Started {
    start_as(gate, query, "wxgate_session_state", None).await
}

/// [`start`] with the state cookie `state_cookie`, for the client at
/// `forwarded_for` (told by a trusted proxy) when given.
pub async fn start_as(
    gate: &Gate,
    query: &str,
    state_cookie: &str,
    forwarded_for: Option<&str>,
) -> Started {
    let mut request = browser().get(gate.url(&format!("/_wxgate/oauth/start{query}")));
    if let Some(client) = forwarded_for {
        request = request.header("x-forwarded-for", client);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 302, "start{query}");
    let authorize = location(&response);
    let cookie = set_cookie(&response, state_cookie).expect("a state cookie");
    Started {
        state: param(&authorize, "state").expect("a state"),
        cookie: pair(&cookie),
        authorize,
    }
}

pub async fn callback(gate: &Gate, query: &str, cookie: Option<&str>) -> reqwest::Response {
    let mut request = browser()
        .get(gate.url(&format!("{CALLBACK}{query}")))
        .header(ACCEPT, "text/html");
    if let Some(cookie) = cookie {
        request = request.header(COOKIE, cookie);
    }
    request.send().await.unwrap()
}

/// A browser login at `at`, back at `back` (another replica, say): the
/// session cookie, as `name=value`.
pub async fn log_in(at: &Gate, back: &Gate, code: &str) -> String {
    let started = start(at, "?redirect=%2Forders").await;
    let query = format!("?code={code}&state={}", started.state);
    let done = callback(back, &query, Some(&started.cookie)).await;
    assert_eq!(done.status(), 302, "{code}: {:?}", done.text().await);
    pair(&set_cookie(&done, "wxgate_session").expect("a session cookie"))
}
