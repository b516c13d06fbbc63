//! `[[rules]]`: who may reach which proxied route, in order, the first
//! match deciding (as Authelia's `access_control` rules and Oathkeeper's
//! access rules do).
//!
//! A rule matches by `prefix` (whole segments) or exact `path`, optionally
//! `methods` and the `upstream` (its prefix) the request is routed to, and
//! says `action = "deny"` (403 for everyone), `public = true` (no session
//! needed) or, by default, allow a session that meets its requirements:
//! `user_id` (bound to a business user), `phone` (a number known), `apps`,
//! `kinds`, the `openids`/`user_ids` allow-lists and the
//! `deny_openids`/`deny_user_ids` deny-lists. No rule matching: what
//! `routes.public` and an upstream's `public` say, else a session.
//! Everything is checked here, before any port is bound: an AppID no app
//! has, an upstream no entry routes, a rule under wxgate's own prefix
//! (which no proxied request reaches) are errors that name the rule.

// The typed sections' fields are their TOML keys, each documented once in
// docs/configuration.md (tests/it/docs.rs checks that every key the parser
// accepts is there): a doc comment per field would say it twice.
#![allow(missing_docs)]

use http::Method;

use super::raw::RawRule;
use super::routes::path;
use super::{AppKind, ConfigError, UpstreamConfig, WechatConfig};
use crate::wire::canonical_path::under;

#[derive(Debug, Clone, PartialEq)]
pub struct RuleConfig {
    /// Its `name`, else `#N` (1-based), for check-policy and the log.
    pub name: String,
    pub paths: PathMatch,
    /// Empty: any method.
    pub methods: Vec<Method>,
    /// The index of the upstream it is limited to.
    pub upstream: Option<usize>,
    pub action: RuleAction,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    /// The path and everything under it (whole segments).
    Prefix(String),
    /// This path only.
    Exact(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum RuleAction {
    /// 403, session or not.
    Deny,
    /// No session needed (identity injected when one is sent).
    Public,
    /// A session that meets these.
    Allow(Requirements),
}

/// What a session must have for an `allow` rule; empty lists ask nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Requirements {
    pub user_id: bool,
    pub phone: bool,
    pub apps: Vec<String>,
    pub kinds: Vec<KindName>,
    /// `None`: any openid.
    pub openids: Option<Vec<String>>,
    pub user_ids: Option<Vec<String>>,
    pub deny_openids: Vec<String>,
    pub deny_user_ids: Vec<String>,
}

/// A session's kind as rules (and the assertion's `kind` claim) name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KindName {
    MiniProgram,
    OfficialAccount,
    Website,
}

impl KindName {
    /// The name in rules and in the `kind` claim.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MiniProgram => "miniprogram",
            Self::OfficialAccount => "official_account",
            Self::Website => "website",
        }
    }

    /// The kind of an app.
    pub fn of(kind: AppKind) -> Self {
        match kind {
            AppKind::MiniProgram => Self::MiniProgram,
            AppKind::OfficialAccount { .. } => Self::OfficialAccount,
            AppKind::Website => Self::Website,
        }
    }
}

/// Each configured app's kind, by AppID, for the rules and the assertion's
/// `kind` claim.
#[derive(Debug, Clone, Default)]
pub struct AppKinds(Vec<(Box<str>, KindName)>);

impl AppKinds {
    /// The kinds of `apps`.
    pub fn new(apps: &[WechatConfig]) -> Self {
        Self(
            apps.iter()
                .map(|app| (app.appid.as_str().into(), KindName::of(app.kind)))
                .collect(),
        )
    }

    /// The kind of the app `appid` (a mini-program when it is none of them).
    pub fn of(&self, appid: &str) -> KindName {
        self.0
            .iter()
            .find(|(id, _)| **id == *appid)
            .map_or(KindName::MiniProgram, |(_, kind)| *kind)
    }
}

/// The rules of the file, checked against its upstreams, apps and reserved prefix.
pub(super) fn from_raw(
    raw: Vec<RawRule>,
    upstreams: &[UpstreamConfig],
    apps: &[WechatConfig],
    reserved: &str,
) -> Result<Vec<RuleConfig>, ConfigError> {
    raw.into_iter()
        .enumerate()
        .map(|(i, rule)| one(rule, i + 1, upstreams, apps, reserved))
        .collect()
}

fn one(
    raw: RawRule,
    n: usize,
    upstreams: &[UpstreamConfig],
    apps: &[WechatConfig],
    reserved: &str,
) -> Result<RuleConfig, ConfigError> {
    let name = raw.name.clone().unwrap_or_else(|| format!("#{n}"));
    let at = |key: &'static str, message: String| {
        ConfigError::invalid(key, format!("[[rules]] {name}: {message}"))
    };
    let paths = match (raw.prefix, raw.path) {
        (Some(prefix), None) => {
            let prefix = path("rules.prefix", Some(prefix), "")
                .map_err(|e| at("rules.prefix", e.message()))?;
            PathMatch::Prefix(match prefix.trim_end_matches('/') {
                "" => "/".to_owned(),
                trimmed => trimmed.to_owned(),
            })
        }
        (None, Some(exact)) => PathMatch::Exact(
            path("rules.path", Some(exact), "").map_err(|e| at("rules.path", e.message()))?,
        ),
        _ => {
            return Err(at(
                "rules.prefix",
                "give either prefix (a path and everything under it) or path (that path \
                 only)"
                    .to_owned(),
            ));
        }
    };
    let written = match &paths {
        PathMatch::Prefix(p) | PathMatch::Exact(p) => p,
    };
    if written != "/" && under(written, reserved) {
        return Err(at(
            "rules.prefix",
            format!(
                "`{written}` is under wxgate's own prefix `{reserved}`: those routes are \
                 wxgate's, never proxied, so the rule would never apply"
            ),
        ));
    }
    let methods = raw
        .methods
        .unwrap_or_default()
        .into_iter()
        .map(|m| {
            Method::from_bytes(m.as_bytes())
                .ok()
                .filter(|method| method.as_str().bytes().all(|b| b.is_ascii_uppercase()))
                .ok_or_else(|| {
                    at(
                        "rules.methods",
                        format!("`{m}` is not a method: write it in capitals, e.g. \"GET\""),
                    )
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let upstream = match raw.upstream {
        None => None,
        Some(prefix) => Some(
            upstreams
                .iter()
                .position(|u| u.prefix == prefix.trim_end_matches('/') || u.prefix == prefix)
                .ok_or_else(|| {
                    at(
                        "rules.upstream",
                        format!("`{prefix}` is the prefix of no upstream"),
                    )
                })?,
        ),
    };
    let list = |key: &'static str, values: Option<Vec<String>>| {
        let values = values.unwrap_or_default();
        if values.iter().any(String::is_empty) {
            return Err(at(key, "holds an empty string".to_owned()));
        }
        Ok(values)
    };
    let apps_named = list("rules.apps", raw.apps)?;
    if let Some(unknown) = apps_named
        .iter()
        .find(|id| !apps.iter().any(|app| app.appid == **id))
    {
        return Err(at(
            "rules.apps",
            format!("`{unknown}` is the AppID of no configured app"),
        ));
    }
    let kinds = list("rules.kinds", raw.kinds)?
        .iter()
        .map(|kind| match kind.as_str() {
            "miniprogram" => Ok(vec![KindName::MiniProgram]),
            "official_account" => Ok(vec![KindName::OfficialAccount]),
            "website" => Ok(vec![KindName::Website]),
            "browser" => Ok(vec![KindName::OfficialAccount, KindName::Website]),
            other => Err(at(
                "rules.kinds",
                format!(
                    "`{other}`: use \"miniprogram\", \"official_account\", \"website\" or \
                     \"browser\" (both of the last two)"
                ),
            )),
        })
        .collect::<Result<Vec<_>, _>>()?
        .concat();
    let requirements = Requirements {
        user_id: raw.user_id.unwrap_or(false),
        phone: raw.phone.unwrap_or(false),
        apps: apps_named,
        kinds,
        openids: raw
            .openids
            .map(|v| list("rules.openids", Some(v)))
            .transpose()?,
        user_ids: raw
            .user_ids
            .map(|v| list("rules.user_ids", Some(v)))
            .transpose()?,
        deny_openids: list("rules.deny_openids", raw.deny_openids)?,
        deny_user_ids: list("rules.deny_user_ids", raw.deny_user_ids)?,
    };
    let asks = requirements != Requirements::default();
    let action = match (raw.action.as_deref(), raw.public.unwrap_or(false)) {
        (Some("deny"), false) if !asks => RuleAction::Deny,
        (Some("deny"), _) => {
            return Err(at(
                "rules.action",
                "a deny rule refuses everyone: it takes no requirements and is not public"
                    .to_owned(),
            ));
        }
        (None | Some("allow"), true) if !asks => RuleAction::Public,
        (None | Some("allow"), true) => {
            return Err(at(
                "rules.public",
                "a public rule needs no session, so it cannot require anything of one".to_owned(),
            ));
        }
        (None | Some("allow"), false) => RuleAction::Allow(requirements),
        (Some(other), _) => {
            return Err(at(
                "rules.action",
                format!("`{other}`: use \"allow\" (the default) or \"deny\""),
            ));
        }
    };
    Ok(RuleConfig {
        name,
        paths,
        methods,
        upstream,
        action,
    })
}
