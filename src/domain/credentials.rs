//! WeChat credentials, checked once at start (and after each reload): a
//! wrong AppSecret or a missing IP-whitelist entry must show at once, as a
//! pod that is not Ready with an error line naming the fix, not at the
//! first user's login as `502 wechat_misconfigured`. WeChat being
//! unreachable is not a reason to be unready (a WeChat outage must not
//! take every pod out of the Service): it is a warning.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::domain::apps::Apps;
use crate::domain::wechat::{WeChatError, errcode};

/// What WeChat said of the apps' credentials at the last check: the apps
/// it refused, with why. (Not `endpoints::credential`, how a request names its
/// session.)
#[derive(Default)]
pub struct CredentialCheck {
    refused: Mutex<Vec<(String, i64)>>,
    /// The first check has answered (`/readyz` says "starting" before).
    checked: AtomicBool,
}

impl CredentialCheck {
    /// Whether the first check has answered, one way or the other.
    pub fn checked(&self) -> bool {
        self.checked.load(Ordering::Acquire)
    }

    /// AppIDs WeChat refused at the last check (with WeChat's errcode).
    pub fn refused(&self) -> Vec<(String, i64)> {
        self.refused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Whether WeChat refused `appid`'s running credentials at the last check.
    pub fn refuses(&self, appid: &str) -> bool {
        self.refused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .any(|(refused, _)| refused == appid)
    }

    /// Asks WeChat for a token for every app, concurrently, and records
    /// which it refused.
    pub async fn check(&self, apps: &Apps) {
        let checks = apps.iter().map(|app| async move {
            let appid = app.tag.appid().to_owned();
            let renewal = app.secret_origin.load().renewal();
            (appid, renewal, app.wechat.check_credentials().await)
        });
        let mut refused = Vec::new();
        for (appid, renewal, result) in futures_util::future::join_all(checks).await {
            match result {
                Ok(()) => tracing::info!(app = %appid, "WeChat accepts the app's credentials"),
                Err(e) => match refusal(&e) {
                    Some((errcode, fix)) => {
                        tracing::error!(app = %appid, errcode, "WeChat refused the app's credentials: {fix}; not ready until fixed (a new AppSecret: {renewal})");
                        refused.push((appid, errcode));
                    }
                    None => {
                        tracing::warn!(app = %appid, error = %e, "cannot check the app's credentials with WeChat; ready anyway")
                    }
                },
            }
        }
        *self
            .refused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = refused;
        self.checked.store(true, Ordering::Release);
    }
}

/// WeChat's errcode and what the operator must do about it, when `e` is
/// a refusal of the credentials (`errcode::ERRCODES`' fixes); `None` for
/// any other failure.
pub fn refusal(e: &WeChatError) -> Option<(i64, &'static str)> {
    let WeChatError::Api { errcode, .. } = e else {
        return None;
    };
    let fix = errcode::describe(*errcode)?.fix?;
    Some((*errcode, fix))
}
