//! Browser logins for official-account (公众号 H5) and website apps, and
//! the cookie session they end in — oauth2-proxy's shape on WeChat's
//! endpoints:
//!
//! 1. `GET {prefix}/oauth/start?app=&redirect=` files a pending login under
//!    a random `state` (in the store, `session::pending`), sets it in a
//!    short-lived HttpOnly cookie scoped to the callback, and answers 302 to
//!    WeChat's authorize page (or, in mock mode, to wxgate's own page).
//! 2. WeChat sends the browser back to `{public_url}{prefix}/oauth/callback`
//!    with `code` and `state`. The state must equal the cookie's (CSRF: a
//!    callback an attacker made another browser open has no such cookie),
//!    and is taken from the store once (a replay finds nothing). The code
//!    is exchanged, the user record made and bound like a mini-program
//!    login's, the session cookie set, and the browser sent to `redirect`.
//!
//! `redirect` is a same-site path only (`/…`, never `//…`, a scheme, `\`
//! or a control byte): the start route cannot be made an open redirect.
//! Errors on these routes are plain pages for a browser (the route table's
//! `page`).

use std::net::IpAddr;
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};

use super::context::{Caller, Context};
use super::login::store_and_bind;
use crate::config::secret::Secret;
use crate::config::{AppKind, RoutesConfig, WebConfig};
use crate::domain::session::{PendingLogin, REDIRECT_LIMIT, SessionId, SessionStore, UserRecord};
use crate::domain::wechat::web_oauth::{authorize_page, authorize_url};
use crate::response::{self, Body, HttpError};
use crate::wire::body_idle::RequestBody;
use crate::wire::canonical_path::same_site_path;
use crate::wire::cookie::{self, CookieAttributes, Found};
use crate::wire::html::escape;

/// The cookie-name prefix that binds a cookie to the host (`Secure`,
/// `Path=/`, no `Domain`): no sibling subdomain can set or toss it.
pub(crate) const HOST_PREFIX: &str = "__Host-";

/// The browser-login routes and the cookie session's settings.
/// `GET …/oauth/start?app=&redirect=` ([`WebLogin::start`]).
pub(crate) async fn start(
    cx: &mut Context<'_>,
    caller: Caller,
    request: Request<RequestBody>,
) -> Result<Response<Body>, HttpError> {
    cx.web()?.start(cx, caller.client()?, &request).await
}

/// `GET …/oauth/callback?code&state` ([`WebLogin::callback`]).
pub(crate) async fn callback(
    cx: &mut Context<'_>,
    _caller: Caller,
    request: Request<RequestBody>,
) -> Result<Response<Body>, HttpError> {
    cx.web()?.callback(cx, &request).await
}

/// Mock mode's authorize page ([`WebLogin::mock_page`]).
pub(crate) async fn mock_page(
    cx: &mut Context<'_>,
    _caller: Caller,
    request: Request<RequestBody>,
) -> Result<Response<Body>, HttpError> {
    cx.web()?.mock_page(cx, &request)
}

pub(crate) struct WebLogin {
    config: WebConfig,
    start: String,
    callback: String,
    mock: String,
    /// `public_url` + the callback: WeChat's `redirect_uri`.
    callback_url: String,
    state_cookie: String,
    /// The state cookie's `Path`: the callback, or `/` under the
    /// `__Host-` prefix, whose rules (RFC 6265bis §4.1.3.2) demand it.
    state_path: String,
    /// Where a sibling subdomain may have tossed a session cookie of the
    /// same name (`Domain=` each parent of `public_url`'s host).
    toss_domains: Vec<String>,
    session_ttl: Duration,
}

impl WebLogin {
    /// Whether `url` is a page of this site: http(s) on `public_url`'s
    /// host (and port, when it names one).
    pub(crate) fn is_own_page(&self, url: &str) -> bool {
        let own = host_of(&self.config.public_url);
        own.is_some() && host_of(url) == own
    }

    /// `public_url`'s host, for messages.
    pub(crate) fn public_host(&self) -> String {
        host_of(&self.config.public_url).map_or_else(String::new, |(host, _)| host)
    }

    pub(crate) fn new(config: &WebConfig, routes: &RoutesConfig, session_ttl: Duration) -> Self {
        let [start, callback, mock] = routes.web_paths();
        let host_prefixed = config.cookie_name.starts_with(HOST_PREFIX);
        let host = config
            .public_url
            .split_once("://")
            .map_or("", |(_, rest)| rest.split(':').next().unwrap_or(rest));
        // A `__Host-` cookie cannot be set with `Domain=`: nothing to toss.
        let toss_domains = if host_prefixed || host.parse::<std::net::IpAddr>().is_ok() {
            Vec::new()
        } else {
            let labels: Vec<&str> = host.split('.').collect();
            (0..labels.len().saturating_sub(1))
                .map(|i| labels[i..].join("."))
                .collect()
        };
        Self {
            callback_url: format!("{}{callback}", config.public_url),
            state_cookie: format!("{}_state", config.cookie_name),
            state_path: if host_prefixed {
                "/".to_owned()
            } else {
                callback.clone()
            },
            toss_domains,
            config: config.clone(),
            start,
            callback,
            mock,
            session_ttl,
        }
    }

    /// `web.error_redirect`: the site's own error page, when it has one.
    pub(crate) fn error_redirect(&self) -> Option<&str> {
        self.config.error_redirect.as_deref()
    }

    /// The start route, where a failed login begins again.
    pub(crate) fn start_path(&self) -> &str {
        &self.start
    }

    /// The cookies wxgate owns (the session's and the login state's):
    /// never passed to a backend.
    pub(crate) fn cookie_names(&self) -> [&str; 2] {
        [&self.config.cookie_name, &self.state_cookie]
    }

    /// `GET …/oauth/start`: off to WeChat's authorize page. `client`'s
    /// oldest login in flight is dropped past its quota (`session::pending`).
    async fn start(
        &self,
        cx: &mut Context<'_>,
        client: IpAddr,
        request: &Request<RequestBody>,
    ) -> Result<Response<Body>, HttpError> {
        let shared = cx.shared;
        let (store, quota) = (&shared.sessions, &shared.login_quota);
        let query = request.uri().query().unwrap_or("");
        let redirect = match param(query, "redirect")? {
            Some(path) if path.len() > REDIRECT_LIMIT => return Err(HttpError::RedirectInvalid),
            Some(path) => same_site_path(&path)
                .ok_or(HttpError::RedirectInvalid)?
                .to_owned(),
            None => "/".to_owned(),
        };
        let named = param(query, "app")?;
        let app = shared
            .apps
            .for_web(named.as_deref(), in_wechat(request.headers()))?;
        cx.handled.app = Some(app.tag.appid_shared().clone());
        let state = new_state()?;
        let pending = PendingLogin {
            appid: app.tag.appid().to_owned(),
            redirect,
        };
        store
            .put_pending(&state, pending, self.config.state_ttl)
            .await?;
        if let Some(oldest) = quota.file(client, &state) {
            store.forget_pending(&oldest).await?;
        }
        let page = if app.wechat.is_mock() {
            format!("{}{}", self.config.public_url, self.mock)
        } else {
            authorize_page(app.kind)
        };
        let location = authorize_url(&page, app.kind, app.tag.appid(), &self.callback_url, &state);
        let mut response = found(&location)?;
        let attributes = self.attributes(&self.state_path, Some(self.config.state_ttl));
        if let Some(value) = cookie::set_cookie(&self.state_cookie, &state, &attributes) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
        Ok(response)
    }

    /// `GET …/oauth/callback?code&state`: the session cookie, and back to
    /// where the login began.
    async fn callback(
        &self,
        cx: &mut Context<'_>,
        request: &Request<RequestBody>,
    ) -> Result<Response<Body>, HttpError> {
        let shared = cx.shared;
        let (store, binding) = (&shared.sessions, shared.binding.as_ref());
        let query = request.uri().query().unwrap_or("");
        let state = param(query, "state")?
            .filter(|state| is_state(state))
            .ok_or(HttpError::StateInvalid)?;
        let cookie = cookie::value(request.headers(), &self.state_cookie).single();
        if !cookie.is_some_and(|c| constant_time_eq(c, state.as_bytes())) {
            return Err(HttpError::StateInvalid);
        }
        // Taken once: a replayed callback finds nothing, an old one neither.
        let pending = store
            .take_pending(&state)
            .await?
            .ok_or(HttpError::StateInvalid)?;
        // WeChat comes back without a code when the user declines.
        let code = param(query, "code")?
            .filter(|code| !code.is_empty() && code.len() <= super::login::CODE_LIMIT)
            .ok_or(HttpError::OAuthDenied)?;
        let app = shared
            .apps
            .get(&pending.appid)
            .filter(|app| app.kind.is_web())
            .ok_or_else(|| {
                HttpError::UnknownApp(format!("`{}` is no longer configured", pending.appid))
            })?;
        cx.handled.app = Some(app.tag.appid_shared().clone());
        let userinfo = app.kind == AppKind::OfficialAccount { userinfo: true };
        let identity = app.wechat.web_login(&code, userinfo).await?;
        // No session_key: a browser session cannot decrypt mini-program data.
        let mut user = UserRecord::new(
            &app.tag,
            &identity.openid,
            identity.unionid.as_deref(),
            Secret::new(String::new()),
        )?;
        user.profile = identity.profile.map(Box::new);
        let (id, user) = store_and_bind(store, binding, user).await?;
        tracing::debug!(session = %id.redacted(), "browser login");
        cx.handled.user = Some(user);
        let mut response = found(&pending.redirect)?;
        let headers = response.headers_mut();
        // Two session cookies came (one tossed by a sibling subdomain):
        // clear the tossed ones wxgate can name, or the new session would
        // be as ambiguous as the old one.
        if cookie::value(request.headers(), &self.config.cookie_name) == Found::Ambiguous {
            for domain in &self.toss_domains {
                let attributes = CookieAttributes {
                    domain: Some(domain),
                    ..self.attributes("/", None)
                };
                if let Some(value) = cookie::clear_cookie(&self.config.cookie_name, &attributes) {
                    headers.append(header::SET_COOKIE, value);
                }
            }
        }
        if let Some(value) = self.session_cookie(&id) {
            headers.append(header::SET_COOKIE, value);
        }
        let state_attributes = self.attributes(&self.state_path, None);
        if let Some(value) = cookie::clear_cookie(&self.state_cookie, &state_attributes) {
            headers.append(header::SET_COOKIE, value);
        }
        Ok(response)
    }

    /// Mock mode's stand-in for WeChat's authorize page: the app, a name
    /// to log in as, and 同意 / Allow, which comes back to the callback
    /// with that name as the code (the mock's users, `wechat::mock`).
    fn mock_page(
        &self,
        cx: &Context<'_>,
        request: &Request<RequestBody>,
    ) -> Result<Response<Body>, HttpError> {
        let query = request.uri().query().unwrap_or("");
        let appid = param(query, "appid")?.unwrap_or_default();
        let app = cx
            .shared
            .apps
            .get(&appid)
            .filter(|app| app.kind.is_web() && app.wechat.is_mock())
            .ok_or(HttpError::NotFound(
                "nothing here: this page stands in for WeChat's only for mock-mode web apps",
            ))?;
        // Only ever back to this gateway's own callback.
        if param(query, "redirect_uri")?.as_deref() != Some(self.callback_url.as_str()) {
            return Err(HttpError::BadRequest(
                "redirect_uri is not this gateway's callback".to_owned(),
            ));
        }
        let state = param(query, "state")?.unwrap_or_default();
        let scope = app.kind.scope();
        let (appid, state) = (escape(app.tag.appid()), escape(&state));
        let callback = escape(&self.callback);
        let page = format!(
            r#"<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>wxgate mock: 微信授权</title></head>
<body style="font-family: sans-serif; max-width: 28em; margin: 3em auto">
<h1>微信授权（模拟）</h1>
<p>wxgate is in mock mode: this page stands in for WeChat's. App <b id="app">{appid}</b> asks for <code>{scope}</code>.</p>
<form method="get" action="{callback}">
<input type="hidden" name="state" value="{state}">
<label>Log in as <input name="code" id="code" value="alice" autocomplete="off"></label>
<p><button id="allow" type="submit">同意 / Allow</button>
<a id="deny" href="{callback}?state={state}">拒绝 / Deny</a></p>
</form>
<p><small>The same name is the same person here and in the mini-program (see docs/client.md).</small></p>
</body></html>
"#
        );
        Ok(response::page(StatusCode::OK, page))
    }

    /// `Set-Cookie` for a new session, living as long as the session may.
    pub(crate) fn session_cookie(&self, id: &SessionId) -> Option<HeaderValue> {
        let attributes = self.attributes("/", Some(self.session_ttl));
        cookie::set_cookie(&self.config.cookie_name, &id.encode(), &attributes)
    }

    /// `Set-Cookie` that ends the session cookie (logout).
    pub(crate) fn clear_session_cookie(&self) -> Option<HeaderValue> {
        cookie::clear_cookie(&self.config.cookie_name, &self.attributes("/", None))
    }

    /// The session id of the session cookie, when there is one
    /// well-formed value (two different ones are none).
    pub(crate) fn session_id(&self, headers: &HeaderMap) -> Option<SessionId> {
        cookie::value(headers, &self.config.cookie_name)
            .single()
            .and_then(SessionId::parse)
    }

    /// CSRF: whether an unsafe request authenticated by the cookie alone
    /// comes from `public_url`'s own pages: `Origin` is it, or the browser
    /// says `Sec-Fetch-Site: same-origin`. Safe methods always pass.
    pub(crate) fn allows(&self, method: &Method, headers: &HeaderMap) -> bool {
        if matches!(
            *method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
        ) {
            return true;
        }
        let same = |name: &str, expected: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.eq_ignore_ascii_case(expected))
        };
        same("origin", &self.config.public_url) || same("sec-fetch-site", "same-origin")
    }

    /// For a browser opening a protected page without a session: 302 to
    /// the start route, back to this page afterwards. Only top-level
    /// navigations (`GET`, `Accept: text/html`); an API call keeps its 401.
    pub(crate) fn login_redirect(&self, request: &Request<RequestBody>) -> Option<Response<Body>> {
        let navigates = request.method() == Method::GET
            && request
                .headers()
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|accept| accept.contains("text/html"));
        if !navigates {
            return None;
        }
        let back = request.uri().path_and_query().map_or("/", |p| p.as_str());
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("redirect", back)
            .finish();
        found(&format!("{}?{query}", self.start)).ok()
    }

    fn attributes<'a>(&'a self, path: &'a str, max_age: Option<Duration>) -> CookieAttributes<'a> {
        CookieAttributes {
            path,
            domain: self.config.cookie_domain.as_deref(),
            secure: self.config.cookie_secure,
            max_age,
        }
    }
}

/// The one value of query parameter `name`, decoded; a repeated one is a 400.
fn param(query: &str, name: &str) -> Result<Option<String>, HttpError> {
    let mut values = form_urlencoded::parse(query.as_bytes())
        .filter(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned());
    match (values.next(), values.next()) {
        (_, Some(_)) => Err(HttpError::BadRequest(format!("`{name}` is repeated"))),
        (value, None) => Ok(value),
    }
}

/// WeChat's own browser says so in its User-Agent.
fn in_wechat(headers: &HeaderMap) -> bool {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ua| ua.contains("MicroMessenger"))
}

/// `302` to `location`, never cached.
pub(crate) fn found(location: &str) -> Result<Response<Body>, HttpError> {
    let value = HeaderValue::from_str(location).map_err(|_| HttpError::RedirectInvalid)?;
    let mut response = response::empty(StatusCode::FOUND);
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, value);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// A new login's `state`: 256 random bits as 64 hex digits, inside
/// WeChat's documented `state` (`a-zA-Z0-9`, at most 128 bytes).
fn new_state() -> Result<String, HttpError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| HttpError::Internal(format!("no randomness for a login state: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A `state` as WeChat documents it; anything else was not made here.
fn is_state(state: &str) -> bool {
    (1..=128).contains(&state.len()) && state.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// The host (and port) of an absolute http(s) URL.
fn host_of(url: &str) -> Option<(String, Option<u16>)> {
    let uri: http::Uri = url.parse().ok()?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return None;
    }
    let authority = uri.authority()?;
    // No userinfo: `https://m.example.com@evil.example/` is evil.example's.
    if authority.as_str().contains('@') {
        return None;
    }
    Some((authority.host().to_ascii_lowercase(), authority.port_u16()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_decoded_and_never_ambiguous() {
        assert_eq!(
            param("redirect=%2Fa%3Fb%3D1", "redirect")
                .unwrap()
                .as_deref(),
            Some("/a?b=1")
        );
        assert_eq!(param("x=1", "redirect").unwrap(), None);
        assert!(param("state=a&state=b", "state").is_err());
    }
}
