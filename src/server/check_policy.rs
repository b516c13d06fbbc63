//! `wxgate check-policy --config FILE METHOD PATH [--as …]`: which rule a
//! request would hit and what wxgate would answer, as
//! `authelia access-control check-policy` tells it for Authelia's rules.
//!
//! It runs the proxy port's own steps on the config as loaded: the path
//! made canonical, wxgate's own routes told apart, the upstream found, the
//! rules judged (`endpoints::access`, which the proxy port and
//! forward-auth use too), then the session `--as` describes admitted or
//! refused. Nothing is bound, no store is opened: a session is as the
//! flags say (the openid, a bound user id, the app, a phone number known).

use http::Method;

use crate::Config;
use crate::config::secret::Secret;
use crate::domain::policy::Judgement;
use crate::domain::route::Route;
use crate::domain::session::{AppTag, BoundId, Phone, UserRecord, UserUpdate};
use crate::endpoints::access::Access;
use crate::endpoints::context::Live;
use crate::response::HttpError;
use crate::wire::canonical_path::canonicalize;

/// The session a request is checked as; all `None`: no session.
#[derive(Debug, Default, Clone)]
pub struct Caller {
    /// The session's openid.
    pub openid: Option<String>,
    /// The business user id it is bound to.
    pub user_id: Option<String>,
    /// Its app (default: the first configured).
    pub appid: Option<String>,
    /// A phone number is known.
    pub phone: bool,
}

impl Caller {
    /// Reads one `--as` value: `openid:ID`, `user_id:ID` (also with `=`),
    /// or a bare openid.
    pub fn take(&mut self, value: &str) {
        let split = value.split_once([':', '=']);
        match split {
            Some(("user_id", id)) => self.user_id = Some(id.to_owned()),
            Some(("openid", id)) => self.openid = Some(id.to_owned()),
            _ => self.openid = Some(value.to_owned()),
        }
    }
}

/// What wxgate would do with the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The lines to print.
    pub lines: Vec<String>,
    /// The status the client would get (200: forwarded).
    pub status: u16,
    /// The error's `code` when refused.
    pub code: Option<&'static str>,
}

/// The check of `method` on `target` (a path, with a query or not) as
/// `caller`; `Err` when the arguments are not a request.
pub fn check(
    config: &Config,
    method: &str,
    target: &str,
    caller: &Caller,
) -> Result<Report, String> {
    let method = Method::from_bytes(method.as_bytes())
        .ok()
        .filter(|m| m.as_str().bytes().all(|b| b.is_ascii_uppercase()))
        .ok_or_else(|| format!("`{method}` is not a method: write it in capitals, e.g. GET"))?;
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    if !path.starts_with('/') {
        return Err(format!("`{target}` is not a path: start it with /"));
    }
    let live = Live::new(config, None, None);
    let mut lines = vec![format!("request:  {method} {target}")];
    let user = caller_record(config, caller)?;
    lines.push(format!("as:       {}", describe(caller, user.as_ref())));
    let refused = |lines: Vec<String>, e: HttpError| Report {
        lines: with_answer(
            lines,
            format!("{} {}: {}", e.status().as_u16(), e.code(), e.message()),
        ),
        status: e.status().as_u16(),
        code: Some(e.code()),
    };
    let canonical = match canonicalize(path, live.routes.normalize()) {
        Ok(canonical) => canonical.into_owned(),
        Err(e) => return Ok(refused(lines, e.into())),
    };
    if canonical != path {
        lines.push(format!("path:     {canonical} (canonical)"));
    }
    let route = live.routes.classify(&method, &canonical);
    if !matches!(route, Route::Public | Route::Protected) {
        lines.push(format!(
            "rule:     none: {route:?} is wxgate's own route, answered by wxgate; rules apply \
             to proxied routes"
        ));
        return Ok(Report {
            lines: with_answer(lines, "wxgate's own route".to_owned()),
            status: 200,
            code: None,
        });
    }
    let access = match Access::of(&live, &method, &canonical, route == Route::Public) {
        Ok(access) => access,
        Err(e) => {
            if let HttpError::AccessDenied(refusal) = &e {
                lines.push(format!("rule:     [[rules]] {} (deny)", refusal.rule));
            }
            return Ok(refused(lines, e));
        }
    };
    if let Some(upstream) = config.upstreams.get(access.upstream.index) {
        lines.push(format!(
            "upstream: {} → http://{}{}",
            upstream.prefix, upstream.authority, upstream.path_prefix
        ));
    }
    let judgement = live
        .policy
        .judge(&method, &canonical, access.upstream.index);
    lines.push(format!(
        "rule:     {}",
        rule_line(&live, &access, &judgement, (&method, &canonical))
    ));
    if access.public {
        let how = if user.is_some() {
            "public, the session's identity injected"
        } else {
            "public, no session needed"
        };
        return Ok(Report {
            lines: with_answer(lines, format!("200 forwarded to the upstream ({how})")),
            status: 200,
            code: None,
        });
    }
    let Some(user) = user else {
        return Ok(refused(lines, HttpError::SessionInvalid));
    };
    match access.admits(&live, (&method, &canonical), &user) {
        Ok(()) => Ok(Report {
            lines: with_answer(
                lines,
                "200 forwarded to the upstream with the session's identity".to_owned(),
            ),
            status: 200,
            code: None,
        }),
        Err(e) => Ok(refused(lines, e)),
    }
}

fn with_answer(mut lines: Vec<String>, answer: String) -> Vec<String> {
    lines.push(format!("answer:   {answer}"));
    lines
}

/// The rule that decided, in words.
fn rule_line(
    live: &Live,
    access: &Access<'_>,
    judgement: &Judgement<'_>,
    (method, path): (&Method, &str),
) -> String {
    let named = |rule: &crate::domain::policy::Rule| {
        format!("[[rules]] {} ({})", rule.name, rule.describe())
    };
    match judgement {
        Judgement::Deny(rule) | Judgement::Public(rule) => named(rule),
        Judgement::Session(rules) => {
            let hit: Vec<String> = rules.iter().flatten().map(|r| named(r)).collect();
            if hit.is_empty() {
                "[[rules]] public under one reading of the path only: a session".to_owned()
            } else {
                hit.join("; and ")
            }
        }
        Judgement::Unruled if live.routes.is_public(method, path) => {
            "no [[rules]] entry matches: public by routes.public".to_owned()
        }
        Judgement::Unruled if access.upstream.is_public(method, path) => {
            "no [[rules]] entry matches: public by the upstream's public".to_owned()
        }
        Judgement::Unruled => {
            "no [[rules]] entry matches: a session is needed (the default)".to_owned()
        }
    }
}

/// The session record `caller` describes; `None` for no session.
fn caller_record(config: &Config, caller: &Caller) -> Result<Option<UserRecord>, String> {
    if caller.openid.is_none()
        && caller.user_id.is_none()
        && caller.appid.is_none()
        && !caller.phone
    {
        return Ok(None);
    }
    let app = match &caller.appid {
        Some(appid) => config
            .apps
            .iter()
            .find(|app| app.appid == *appid)
            .ok_or_else(|| format!("--app {appid}: no configured app has this AppID"))?,
        None => config.apps.first().ok_or("no app is configured")?,
    };
    // A session as check-policy describes it: its openid need not be real.
    let openid = caller.openid.as_deref().unwrap_or("check-policy");
    let mut user = UserRecord::new(&AppTag::of(app), openid, None, Secret::new(String::new()))
        .map_err(|e| format!("--as openid:{openid}: {e}"))?;
    if let Some(id) = &caller.user_id {
        let bound = BoundId::new(id).ok_or_else(|| format!("--as user_id:{id}: not a user id"))?;
        user = user.bound_to(bound);
    }
    if caller.phone {
        UserUpdate::SetPhone(Phone {
            phone_number: "+8613800000000".to_owned(),
            pure_phone_number: "13800000000".to_owned(),
            country_code: "86".to_owned(),
        })
        .apply(&mut user);
    }
    Ok(Some(user))
}

fn describe(caller: &Caller, user: Option<&UserRecord>) -> String {
    let Some(user) = user else {
        return "no session".to_owned();
    };
    let mut parts = vec![format!("a session of app {}", user.appid())];
    if caller.openid.is_some() {
        parts.push(format!("openid {}", user.openid()));
    }
    parts.push(match user.user_id() {
        Some(id) => format!("user_id {}", id.as_str()),
        None => "not bound".to_owned(),
    });
    parts.push(
        if caller.phone {
            "a phone number known"
        } else {
            "no phone number"
        }
        .to_owned(),
    );
    parts.join(", ")
}
