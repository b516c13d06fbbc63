//! The WeChat apps wxgate serves (`[wechat]`, `[[apps]]`): mini-programs,
//! and the official accounts and websites whose users log in in a browser
//! (`kind`); and which one a login is for.
//!
//! Each app has its own WeChat client: its credentials, its access token,
//! its call limit and metrics labelled with its AppID. A login names its
//! app by `appid` in the body or, when absent, by the `Referer` WeChat puts
//! on every `wx.request` (`https://servicewechat.com/{appid}/{version}/page-frame.html`).
//! With one app configured a login need not name it (as before `[[apps]]`)
//! and the Referer is not consulted; with several, an app named nowhere,
//! or one not configured, is `400 unknown_app`. After login the session's
//! user record carries its app, which every later step uses: the injected
//! AppID, the decryption watermark, the access token.
//!
//! Neither the body nor the Referer is trusted for more than choosing whose
//! credentials the code is exchanged with: a code of one app sent with
//! another app's fails at WeChat (40029), so naming the wrong app gains nothing.

use http::{HeaderMap, header};

use crate::config::{AppKind, SecretOrigin, WechatConfig};
use crate::domain::session::{AppTag, FleetSecrets};
use crate::domain::wechat::WeChat;
use crate::metrics::WechatMetrics;

/// The host WeChat's clients send as their `Referer`.
const REFERER_PREFIX: &str = "https://servicewechat.com/";

/// One configured app: who it is, its WeChat client, what kind of app.
pub struct WechatApp {
    /// Its AppID, shared by its users' records.
    pub tag: AppTag,
    /// Its WeChat API client (live or mock).
    pub wechat: WeChat,
    /// Mini-program, official account or website.
    pub kind: AppKind,
    /// Where its AppSecret came from (how a new one goes in); a reload
    /// may move it to another variable or file.
    pub secret_origin: arc_swap::ArcSwap<SecretOrigin>,
}

/// Every configured app, by AppID.
pub struct Apps {
    /// The default app first; never empty (the config guarantees one).
    list: Vec<WechatApp>,
}

impl Apps {
    /// One client per app, each with its counters.
    /// `fleet`: where the replicas share each app's tokens (Redis).
    pub fn new(
        configs: &[WechatConfig],
        metrics: &WechatMetrics,
        fleet: Option<FleetSecrets>,
    ) -> Result<Self, reqwest::Error> {
        let list = configs
            .iter()
            .map(|config| {
                Ok(WechatApp {
                    tag: AppTag::of(config),
                    wechat: WeChat::new(config, metrics.for_app(&config.appid), fleet.clone())?,
                    kind: config.kind,
                    secret_origin: arc_swap::ArcSwap::from_pointee(config.secret_origin.clone()),
                })
            })
            .collect::<Result<_, reqwest::Error>>()?;
        Ok(Self { list })
    }

    /// Every app, the default one first.
    pub fn iter(&self) -> impl Iterator<Item = &WechatApp> {
        self.list.iter()
    }

    /// The app with `appid`, if configured.
    pub fn get(&self, appid: &str) -> Option<&WechatApp> {
        self.list.iter().find(|app| app.tag.appid() == appid)
    }

    /// The one mini-program, when only one is configured.
    pub fn only(&self) -> Option<&WechatApp> {
        let mut programs = self.mini_programs();
        match (programs.next(), programs.next()) {
            (Some(only), None) => Some(only),
            _ => None,
        }
    }

    fn mini_programs(&self) -> impl Iterator<Item = &WechatApp> {
        self.list
            .iter()
            .filter(|app| app.kind == AppKind::MiniProgram)
    }

    /// The web app a browser login is for: `named` (the start route's
    /// `app`), else, inside WeChat's browser (`in_wechat`), the first
    /// official account, elsewhere the first website; else the first web app.
    pub fn for_web(&self, named: Option<&str>, in_wechat: bool) -> Result<&WechatApp, UnknownApp> {
        let web = || self.list.iter().filter(|app| app.kind.is_web());
        if let Some(appid) = named {
            return web().find(|app| app.tag.appid() == appid).ok_or_else(|| {
                UnknownApp(format!(
                    "`{appid}` is not an official account or website app of this gateway"
                ))
            });
        }
        let preferred = |app: &&WechatApp| match app.kind {
            AppKind::OfficialAccount { .. } => in_wechat,
            AppKind::Website => !in_wechat,
            AppKind::MiniProgram => false,
        };
        web()
            .find(preferred)
            .or_else(|| web().next())
            .ok_or_else(|| {
                UnknownApp("this gateway has no official account or website app".to_owned())
            })
    }

    /// The app a login is for: `named` (the body's `appid`), else the
    /// Referer's, else the only app.
    pub fn for_login(
        &self,
        named: Option<&str>,
        headers: &HeaderMap,
    ) -> Result<&WechatApp, UnknownApp> {
        let unknown = |appid: &str| {
            UnknownApp(format!(
                "`{appid}` is not an app of this gateway; send the appid of a configured \
                 mini-program"
            ))
        };
        let program = |appid: &str| {
            self.get(appid)
                .filter(|app| app.kind == AppKind::MiniProgram)
                .ok_or_else(|| unknown(appid))
        };
        if let Some(appid) = named {
            return program(appid);
        }
        if let Some(only) = self.only() {
            return Ok(only);
        }
        match referer_appid(headers) {
            Some(appid) => program(appid),
            None => Err(UnknownApp(
                "this gateway serves several mini-programs: send \"appid\" in the login body \
                 (wx.request sets a Referer naming it, which was missing here)"
                    .to_owned(),
            )),
        }
    }
}

/// A login for no configured app (or, with several, for none named): the
/// text tells the client what to send.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown app: {0}")]
pub struct UnknownApp(pub String);

/// The AppID in WeChat's `Referer`, if the request has exactly one of that form.
fn referer_appid(headers: &HeaderMap) -> Option<&str> {
    let referer = crate::wire::header::single(headers, &header::REFERER)?
        .to_str()
        .ok()?;
    let rest = referer.strip_prefix(REFERER_PREFIX)?;
    let (appid, _) = rest.split_once('/')?;
    (!appid.is_empty()).then_some(appid)
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn referer(value: &str) -> Option<String> {
        let mut headers = HeaderMap::new();
        headers.insert(header::REFERER, HeaderValue::from_str(value).unwrap());
        referer_appid(&headers).map(str::to_owned)
    }

    #[test]
    fn the_referer_names_the_app() {
        let cases = [
            (
                "https://servicewechat.com/wx1234567890abcdef/12/page-frame.html",
                Some("wx1234567890abcdef"),
            ),
            (
                "https://servicewechat.com/wxabc/devtools/page-frame.html",
                Some("wxabc"),
            ),
            ("https://servicewechat.com//12/page-frame.html", None),
            ("https://servicewechat.com/wxabc", None),
            ("http://servicewechat.com/wxabc/1/page-frame.html", None),
            ("https://evil.example/wxabc/1/page-frame.html", None),
            ("https://servicewechat.com.evil.example/wxabc/1/x", None),
        ];
        for (value, want) in cases {
            assert_eq!(referer(value).as_deref(), want, "{value}");
        }
    }
}
