//! The browser login's error pages, for the people who see them: users
//! inside WeChat's browser, mostly in China.
//!
//! In Chinese unless the browser prefers English (`Accept-Language`, RFC
//! 9110 §12.5.4: the first of `zh`/`en` by weight), each with a link that
//! starts the login again. With `web.error_redirect` set, no page at all:
//! a 302 to the site's own error page with `?code=<error code>`, so a
//! branded page can say it in the site's own words. Either way the log
//! line and the metrics name the error, as for any other answer.

use http::header::{self, HeaderMap};
use http::{Response, StatusCode};

use super::web_login::{WebLogin, found};
use crate::response::{Body, HttpError};
use crate::wire::html::escape;

/// The language an error page is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lang {
    Chinese,
    English,
}

impl Lang {
    /// Chinese, unless the browser weighs an English tag above every
    /// Chinese one.
    pub(crate) fn of(headers: &HeaderMap) -> Self {
        let mut best: Option<(f32, Self)> = None;
        let ranges = headers
            .get_all(header::ACCEPT_LANGUAGE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','));
        for range in ranges {
            let mut parts = range.split(';');
            let tag = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let weight = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            let lang = match tag.split('-').next() {
                Some("zh") => Self::Chinese,
                Some("en") => Self::English,
                _ => continue,
            };
            // The first of equal weights wins: the browser's own order.
            if best.is_none_or(|(w, _)| weight > w) {
                best = Some((weight, lang));
            }
        }
        best.map_or(Self::Chinese, |(_, lang)| lang)
    }
}

/// The answer to `error` on a browser route of `web`.
pub(crate) fn error_page(web: &WebLogin, error: &HttpError, lang: Lang) -> Response<Body> {
    if let Some(target) = web.error_redirect() {
        let separator = if target.contains('?') { '&' } else { '?' };
        let location = format!("{target}{separator}code={}", error.code());
        if let Ok(response) = found(&location) {
            return response;
        }
    }
    let (lang_tag, title, message, again) = match lang {
        Lang::Chinese => ("zh-CN", "登录未完成", chinese(error), "重新登录"),
        Lang::English => (
            "en",
            "The login did not complete",
            error.message(),
            "Log in again",
        ),
    };
    let html = format!(
        "<!doctype html>\n<html lang=\"{lang_tag}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\"><title>{title}</title></head>\n\
         <body style=\"font-family: sans-serif; max-width: 36em; margin: 3em auto; padding: 0 1em\">\n\
         <h1>{title}</h1>\n<p id=\"message\">{message}</p>\n\
         <p><a id=\"again\" href=\"{start}\">{again}</a></p>\n\
         <p><small><code id=\"code\">{code}</code> · {status}</small></p>\n</body></html>\n",
        message = escape(&message),
        start = escape(web.start_path()),
        code = error.code(),
        status = error.status().as_u16(),
    );
    error.into_page(html)
}

/// What went wrong, in Chinese, for the errors a browser route answers.
fn chinese(error: &HttpError) -> String {
    let text = match error.code() {
        "oauth_denied" => "你没有在微信中同意授权，所以没有登录。",
        "state_invalid" => {
            "这个登录链接已失效：可能已经用过、停留太久，或是在另一个浏览器中打开的。请重新登录。"
        }
        "redirect_invalid" => "登录后要返回的地址无效。",
        "login_rate_limited" => "登录太频繁了，请稍后再试。",
        "csrf_rejected" => "这个请求来自其他网站，已被拒绝。",
        "user_not_bound" => "这个微信用户在本站还没有账号，请先注册。",
        "unknown_app" => "这个登录所属的应用没有配置在本网关上。",
        "code_invalid" | "code_used" => "微信的授权码无效或已用过，请重新登录。",
        "user_high_risk" => "微信判定这个账号存在风险，暂时无法登录。",
        "method_not_allowed" | "bad_request" | "not_found" => "这个登录请求无效。",
        _ if error.status().is_server_error()
            || error.status() == StatusCode::TOO_MANY_REQUESTS =>
        {
            "服务暂时不可用，请稍后再试。"
        }
        _ => "登录没有完成。",
    };
    text.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn chinese_unless_english_is_preferred() {
        let cases = [
            (None, Lang::Chinese),
            (Some("zh-CN,zh;q=0.9,en;q=0.8"), Lang::Chinese),
            (Some("en-US,en;q=0.9,zh-CN;q=0.8"), Lang::English),
            (Some("fr-FR,en;q=0.5"), Lang::English),
            (Some("fr-FR"), Lang::Chinese),
            (Some("en;q=0.4, zh-TW;q=0.6"), Lang::Chinese),
            (Some("EN-gb"), Lang::English),
            (Some("zh, en"), Lang::Chinese),
            (Some("en, zh"), Lang::English),
            (Some("en;q=zz, zh;q=0.1"), Lang::English),
        ];
        for (accept, want) in cases {
            let mut headers = HeaderMap::new();
            if let Some(accept) = accept {
                headers.insert(header::ACCEPT_LANGUAGE, HeaderValue::from_static(accept));
            }
            assert_eq!(Lang::of(&headers), want, "{accept:?}");
        }
    }
}
