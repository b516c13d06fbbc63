//! Config reload without a restart (SIGHUP in `main`).
//!
//! What can change safely takes effect for the next request: `[routes]`
//! (the reserved prefix too), `[headers]`, `session.header`,
//! `session.forward_session_header`, `[[rules]]`, `[assertion]`'s keys
//! (re-read from `key_files`) and claims, each upstream's `timeout`,
//! `public` routes and `audience`, `server.drain_timeout`, `log.level`,
//! the listener's certificate and key (re-read from their files),
//! and the secrets — the apps'
//! AppSecrets, the admin and binding tokens — re-read from their files
//! (`*_file`) or the environment, swapped in place. Anything else
//! (addresses, threads, the upstreams' URLs and prefixes, the apps, the
//! session store and its key, lifetimes, `[binding]`, `[web]`, whether
//! `[assertion]` is there at all) would need new
//! sockets, clients or stored data, so a
//! file that changes it is refused as a whole: the old config stays, and
//! the error names the first key that needs a restart. A file that does
//! not load is refused the same way; nothing half-applies. And a reload
//! never makes things worse: a changed AppSecret is asked of WeChat first,
//! and one it refuses (40013, 40125, 40164) for an app whose running
//! secret it accepts refuses the whole file.

use std::sync::{Arc, Mutex};

use crate::app::App;
use crate::config::{Config, WechatConfig};
use crate::server::tls::Certificates;

#[derive(Debug, thiserror::Error)]
/// Why a reload was refused (the running config keeps serving).
#[allow(missing_docs)] // each variant's `#[error]` text describes it
pub enum ReloadError {
    #[error("`{0}` cannot change without a restart; the running config stays")]
    NeedsRestart(&'static str),
    /// A new AppSecret WeChat refuses, for an app whose running one it
    /// accepts: applied, it would fail every login to the app (rolled to
    /// every pod by a ConfigMap change, an outage).
    #[error(
        "app {appid}: WeChat refuses the new credentials (errcode {errcode}): {fix}; the running config stays"
    )]
    CredentialsRefused {
        appid: String,
        errcode: i64,
        fix: &'static str,
    },
}

/// Holds the running config and applies new ones.
pub struct Reloader {
    app: Arc<App>,
    running: Mutex<Config>,
    /// The listener's certificate, with `server.tls_cert_file`.
    certificates: Option<Arc<Certificates>>,
}

impl Reloader {
    pub(crate) fn new(
        app: Arc<App>,
        running: Config,
        certificates: Option<Arc<Certificates>>,
    ) -> Self {
        Self {
            app,
            running: Mutex::new(running),
            certificates,
        }
    }

    /// Applies `new` if it changes only reloadable settings and WeChat
    /// does not refuse a secret it changes; counted either way
    /// (`wxgate_config_reloads_total`).
    pub async fn reload(&self, new: Config) -> Result<(), ReloadError> {
        let result = self.apply(new).await;
        self.app.metrics().config_reload(result.is_ok());
        let refusal = result.as_ref().err().map(ToString::to_string);
        crate::audit::Event {
            action: "reload",
            result: if result.is_ok() { "applied" } else { "refused" },
            detail: refusal.as_deref(),
            ..Default::default()
        }
        .record();
        result
    }

    /// A file that does not load was refused before it got here: counted.
    pub fn refused_unloadable(&self) {
        self.app.metrics().config_reload(false);
        crate::audit::Event {
            action: "reload",
            result: "refused",
            detail: Some("the file does not load"),
            ..Default::default()
        }
        .record();
    }

    async fn apply(&self, new: Config) -> Result<(), ReloadError> {
        // The secrets this file changes, asked of WeChat before anything is
        // swapped. (SIGHUPs are handled one at a time: nothing changes the
        // running config between this look and the swap below.)
        let changed: Vec<_> = {
            let running = self.running();
            if let Some(key) = needs_restart(&running, &new) {
                return Err(ReloadError::NeedsRestart(key));
            }
            new.apps
                .iter()
                .filter(|app| {
                    running
                        .apps
                        .iter()
                        .any(|old| old.appid == app.appid && old.secret != app.secret)
                })
                .map(|app| (app.appid.clone(), app.secret.clone()))
                .collect()
        };
        for (appid, secret) in &changed {
            if let Err((errcode, fix)) = self.app.may_swap_secret(appid, secret).await {
                return Err(ReloadError::CredentialsRefused {
                    appid: appid.clone(),
                    errcode,
                    fix,
                });
            }
        }
        let mut running = self.running();
        self.app.reload(&new);
        // Re-read from its files by the load: new handshakes get it.
        if let (Some(certificates), Some(tls)) = (&self.certificates, &new.server.tls) {
            certificates.swap(tls);
        }
        *running = new;
        // A secret may have been re-read: ask WeChat again.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let app = self.app.clone();
            runtime.spawn(async move { app.check_credentials().await });
        }
        Ok(())
    }

    fn running(&self) -> std::sync::MutexGuard<'_, Config> {
        // A panic elsewhere while holding the lock leaves a whole Config.
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The first setting that differs between `old` and `new` and cannot be
/// changed in a running process.
pub fn needs_restart(old: &Config, new: &Config) -> Option<&'static str> {
    // Copy what may change from `old`; whatever still differs may not.
    let mut fixed = new.clone();
    fixed.routes = old.routes.clone();
    fixed.headers = old.headers.clone();
    fixed.session.header = old.session.header.clone();
    fixed.session.forward_session_header = old.session.forward_session_header;
    fixed.server.drain_timeout = old.server.drain_timeout;
    // The certificate and key (re-read from their files, or other files);
    // whether the listener speaks TLS at all is fixed.
    if let (Some(new), Some(old)) = (&mut fixed.server.tls, &old.server.tls) {
        *new = old.clone();
    }
    fixed.log.level = old.log.level.clone();
    fixed.warnings = old.warnings.clone();
    fixed.rules = old.rules.clone();
    // The assertion's keys (re-read from key_files), issuer, lifetime and
    // header; whether there is one at all sizes every session's entry.
    if let (Some(new), Some(old)) = (&mut fixed.assertion, &old.assertion) {
        *new = old.clone();
    }
    // Secrets, re-read from their files (or the environment) on every load,
    // are swapped in place: rotating one needs no restart.
    fixed.admin.token = old.admin.token.clone();
    if let (Some(new), Some(old)) = (&mut fixed.binding, &old.binding) {
        new.token = old.token.clone();
    }
    if fixed.apps.len() == old.apps.len() {
        for (new, old) in fixed.apps.iter_mut().zip(&old.apps) {
            if new.appid == old.appid {
                new.secret = old.secret.clone();
                new.secret_origin = old.secret_origin.clone();
            }
        }
    }
    // The same upstreams (one pool each) may change their timeouts and public routes.
    if fixed.upstreams.len() == old.upstreams.len() {
        for (new, old) in fixed.upstreams.iter_mut().zip(&old.upstreams) {
            new.timeout = old.timeout;
            new.public = old.public.clone();
            new.audience = old.audience.clone();
        }
    }
    let checks: [(&'static str, bool); 15] = [
        ("server.listen", fixed.server.listen != old.server.listen),
        ("server.threads", fixed.server.threads != old.server.threads),
        ("server.tls_cert_file", fixed.server.tls != old.server.tls),
        ("server", fixed.server != old.server),
        ("login", fixed.login != old.login),
        ("upstreams", fixed.upstreams.len() != old.upstreams.len()),
        (
            "upstream.upgrades",
            // Same count here: a different one is `upstreams`, checked first.
            fixed
                .upstreams
                .iter()
                .zip(&old.upstreams)
                .any(|(a, b)| a.upgrades != b.upgrades),
        ),
        ("upstream.url", fixed.upstreams != old.upstreams),
        ("session.ttl", fixed.session.ttl != old.session.ttl),
        ("session.idle", fixed.session.idle != old.session.idle),
        ("session", fixed.session != old.session),
        ("session.store", fixed.store != old.store),
        ("admin.listen", fixed.admin.listen != old.admin.listen),
        ("admin.token", fixed.admin != old.admin),
        ("log.format", fixed.log != old.log),
    ];
    let key = checks
        .iter()
        .find(|(_, differs)| *differs)
        .map(|(key, _)| *key)
        .or_else(|| app_change(&fixed.apps, &old.apps))
        .or_else(|| (fixed.binding != old.binding).then_some("binding"))
        .or_else(|| (fixed.assertion != old.assertion).then_some("assertion"))
        .or_else(|| (fixed.web != old.web).then_some("web"))
        .or_else(|| (fixed.tracing != old.tracing).then_some("tracing"))
        .or_else(|| (fixed.demo_echo_upstream != old.demo_echo_upstream).then_some("demo"));
    debug_assert!(
        key.is_some() || fixed == *old,
        "a section is missing from the checks"
    );
    key
}

/// The first app setting that differs (each app has its own WeChat client).
fn app_change(new: &[WechatConfig], old: &[WechatConfig]) -> Option<&'static str> {
    if new.len() != old.len() {
        return Some("apps");
    }
    let (new, old) = new.iter().zip(old).find(|(a, b)| a != b)?;
    // The keys as each table spells them; the last one is the table.
    let keys = if new.single_app_keys {
        [
            "wechat.appid",
            "wechat.secret",
            "wechat.mode",
            "wechat.api_base",
            "wechat.timeout",
            "wechat.kind",
            "wechat",
        ]
    } else {
        [
            "apps.appid",
            "apps.secret_env",
            "apps.mode",
            "apps.api_base",
            "apps.timeout",
            "apps.kind",
            "apps",
        ]
    };
    let differs = [
        new.appid != old.appid,
        new.secret != old.secret,
        new.mode != old.mode,
        new.api_base != old.api_base,
        new.timeout != old.timeout,
        new.kind != old.kind,
    ];
    Some(keys[differs.iter().position(|d| *d).unwrap_or(differs.len())])
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[server]
listen = "127.0.0.1:8080"
[upstream]
url = "http://127.0.0.1:3000"
[wechat]
appid = "wx1234567890abcdef"
secret = "s"
[routes]
public = ["/public"]
"#;

    fn with(extra: &str) -> Config {
        let text = BASE.replace("[routes]\n", &format!("{extra}\n[routes]\n"));
        // Sections in `extra` may repeat ones in BASE; merge by appending keys.
        Config::parse(&merge(&text), &|_| None).unwrap()
    }

    /// Turns repeated `[section]` headers into one table each.
    fn merge(text: &str) -> String {
        let mut sections: Vec<(String, Vec<String>)> = Vec::new();
        let mut current = String::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            if line.starts_with('[') {
                current = line.to_owned();
                if !sections.iter().any(|(name, _)| *name == current) {
                    sections.push((current.clone(), Vec::new()));
                }
            } else if let Some((_, lines)) = sections.iter_mut().find(|(n, _)| *n == current) {
                let key = line.split('=').next().unwrap_or("").trim().to_owned();
                lines.retain(|l| l.split('=').next().unwrap_or("").trim() != key);
                lines.push(line.to_owned());
            }
        }
        sections
            .into_iter()
            .map(|(name, lines)| format!("{name}\n{}\n", lines.join("\n")))
            .collect()
    }

    #[test]
    fn reloadable_changes_pass() {
        let old = with("");
        for change in [
            "[routes]\npublic = [\"/open\"]\nlogin = \"/signin\"",
            "[headers]\nopenid = \"X-User\"",
            "[session]\nheader = \"X-Token\"\nforward_session_header = true",
            "[upstream]\ntimeout = \"3s\"",
            "[server]\ndrain_timeout = \"5s\"",
            "[log]\nlevel = \"debug\"",
            "[routes]\nprefix = \"/gw\"",
            "[headers]\nuser_id = \"X-Member\"",
        ] {
            assert_eq!(needs_restart(&old, &with(change)), None, "{change}");
        }
    }

    const SHOP: &str = "[[upstreams]]\nprefix = \"/shop\"\nurl = \"http://127.0.0.1:4000\"\n";
    const CLUB: &str = "[[apps]]\nappid = \"wxclub\"\nsecret_env = \"CLUB\"\n";

    fn several(upstream: &str, app: &str) -> Config {
        let text = format!("{}{upstream}{app}", merge(BASE));
        let env = |k: &str| match k {
            "CLUB" => Some("club-secret".to_owned()),
            "OTHER" => Some("other-secret".to_owned()),
            _ => None,
        };
        Config::parse(&text, &env).unwrap()
    }

    #[test]
    fn upstreams_and_apps_reload_what_they_safely_can() {
        let old = several(SHOP, CLUB);
        let timeout = SHOP.replace(
            "4000\"\n",
            "4000\"\ntimeout = \"2s\"\npublic = [\"/shop/s\"]\n",
        );
        assert_eq!(needs_restart(&old, &several(&timeout, CLUB)), None);
        // A secret from another variable (or file): swapped in place.
        let other_secret = CLUB.replace("\"CLUB\"", "\"OTHER\"");
        assert_eq!(needs_restart(&old, &several(SHOP, &other_secret)), None);
        for (upstream, app, key) in [
            ("", CLUB, "upstreams"),
            (&SHOP.replace("4000", "4001") as &str, CLUB, "upstream.url"),
            (&SHOP.replace("/shop", "/store"), CLUB, "upstream.url"),
            (
                &format!("{SHOP}strip_prefix = true\n"),
                CLUB,
                "upstream.url",
            ),
            (&format!("{SHOP}upgrades = []\n"), CLUB, "upstream.upgrades"),
            (SHOP, "", "apps"),
            (SHOP, &CLUB.replace("wxclub", "wxclub2"), "apps.appid"),
            (SHOP, &format!("{CLUB}timeout = \"9s\"\n"), "apps.timeout"),
        ] {
            assert_eq!(
                needs_restart(&old, &several(upstream, app)),
                Some(key),
                "{upstream}{app}"
            );
        }
    }

    #[test]
    fn secrets_reload_in_place() {
        let old = with("");
        for change in [
            "[wechat]\nsecret = \"other\"",
            "[admin]\ntoken = \"0123456789abcdef0\"",
        ] {
            assert_eq!(needs_restart(&old, &with(change)), None, "{change}");
        }
    }

    #[test]
    fn other_changes_name_their_key() {
        let old = with("");
        for (change, key) in [
            ("[server]\nlisten = \"127.0.0.1:9999\"", "server.listen"),
            ("[server]\nthreads = 77", "server.threads"),
            (
                "[upstream]\nurl = \"http://127.0.0.1:4000\"",
                "upstream.url",
            ),
            ("[wechat]\ntimeout = \"9s\"", "wechat.timeout"),
            ("[session]\nttl = \"1h\"", "session.ttl"),
            ("[session]\ncapacity = 5", "session"),
            ("[admin]\nlisten = \"127.0.0.1:1\"", "admin.listen"),
            ("[log]\nformat = \"json\"", "log.format"),
            ("[binding]\nurl = \"http://127.0.0.1:1/bind\"", "binding"),
        ] {
            assert_eq!(needs_restart(&old, &with(change)), Some(key), "{change}");
        }
    }
}
