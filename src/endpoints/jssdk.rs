//! `GET /_wxgate/jssdk?url=…[&app=…]` (with `[web]`): the `wx.config`
//! signature an official account's H5 page needs before it may use the
//! JS-SDK (share, scan, pay…): `{"appId", "timestamp", "nonceStr",
//! "signature"}`, signed with the account's `jsapi_ticket`, which wxgate
//! fetches with the access token it holds (`domain::wechat::jsapi`), so no
//! backend needs the AppSecret for it.
//!
//! `url` must be a page on `web.public_url`'s host (anything else is
//! `400`): a signature is a grant for one page of this site. Rate limited
//! like a login (a fetched ticket costs WeChat quota); no session needed,
//! as the page signs before anything else.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{Request, Response, StatusCode};
use serde_json::json;

use super::context::{Caller, Context};
use crate::config::AppKind;
use crate::domain::wechat::jsapi;
use crate::response::{self, Body, HttpError};
use crate::wire::body_idle::RequestBody;

/// Longest `url` accepted (a page's address, its query included).
const URL_LIMIT: usize = 2048;

pub(crate) async fn handle(
    cx: &mut Context<'_>,
    _caller: Caller,
    request: Request<RequestBody>,
) -> Result<Response<Body>, HttpError> {
    let web = cx.web()?;
    let query = request.uri().query().unwrap_or("");
    let (mut url, mut named) = (None, None);
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match &*key {
            "url" => url = Some(value.into_owned()),
            "app" => named = Some(value.into_owned()),
            _ => {}
        }
    }
    let url = url.ok_or_else(|| {
        HttpError::BadRequest(
            "give the page: ?url=<location.href without its #fragment>, URL-encoded".to_owned(),
        )
    })?;
    let page = url.split('#').next().unwrap_or(&url);
    if page.len() > URL_LIMIT || !web.is_own_page(page) {
        return Err(HttpError::BadRequest(format!(
            "`url` must be a page of this site (http(s) on {}), at most {URL_LIMIT} bytes",
            web.public_host()
        )));
    }
    let apps = &cx.shared.apps;
    let account = match named.as_deref() {
        Some(appid) => apps.get(appid),
        None => apps
            .iter()
            .find(|app| matches!(app.kind, AppKind::OfficialAccount { .. })),
    }
    .filter(|app| matches!(app.kind, AppKind::OfficialAccount { .. }))
    .ok_or_else(|| {
        HttpError::UnknownApp(
            "JS-SDK signatures are an official account's: name one with ?app=".to_owned(),
        )
    })?;
    let ticket = account.wechat.jsapi_ticket().await?;
    let mut random = [0u8; 12];
    getrandom::fill(&mut random).map_err(|e| HttpError::Internal(e.to_string()))?;
    let nonce = URL_SAFE_NO_PAD.encode(random);
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let signature = jsapi::signature(ticket.expose(), &nonce, timestamp, page);
    Ok(response::json(
        StatusCode::OK,
        &json!({
            "appId": account.tag.appid(),
            "timestamp": timestamp,
            "nonceStr": nonce,
            "signature": signature,
        }),
    ))
}
