//! Per-route access rules (`[[rules]]`), judged on the canonical path
//! after routing, the same for the proxy port, forward-auth and
//! `wxgate check-policy`.
//!
//! The first rule that matches a request decides: `deny` (403 for
//! everyone), public, or a session meeting its requirements. No rule
//! matching, `routes.public` and the upstream's `public` decide as they
//! always have (public, else a session). Under a relaxed
//! `[routes.normalize]` a path has several readings (`canonical_path::readings`)
//! and each may hit another rule: the request must then pass every rule
//! hit, so no backend's reading escapes the rule meant for it.

use std::collections::HashSet;

use http::Method;

use crate::config::{
    AppKinds, KindName, PathMatch, Requirements, RuleAction, RuleConfig, WechatConfig,
};
use crate::domain::session::UserRecord;
use crate::wire::canonical_path::{PathPolicy, readings, under};

/// The rules of a config, in order.
pub struct Policy {
    rules: Vec<Rule>,
    strict: bool,
    kinds: AppKinds,
}

/// One rule.
pub struct Rule {
    /// Its `name`, or `#N`.
    pub name: Box<str>,
    paths: PathMatch,
    methods: Vec<Method>,
    upstream: Option<usize>,
    action: Action,
}

enum Action {
    Deny,
    Public,
    Allow(Box<Need>),
}

struct Need {
    user_id: bool,
    phone: bool,
    apps: Vec<Box<str>>,
    kinds: Vec<KindName>,
    openids: Option<HashSet<Box<str>>>,
    user_ids: Option<HashSet<Box<str>>>,
    deny_openids: HashSet<Box<str>>,
    deny_user_ids: HashSet<Box<str>>,
}

/// What the rules say of a request, before its session is looked at.
#[derive(Debug)]
pub enum Judgement<'p> {
    /// No rule matched: `routes.public` and the upstream's `public` decide.
    Unruled,
    /// A `deny` rule: 403.
    Deny(&'p Rule),
    /// Public by a rule.
    Public(&'p Rule),
    /// A session is needed, meeting every rule here (several only under a
    /// relaxed path policy, whose readings may each hit one; a reading no
    /// rule matched then needs a session too, whatever `routes.public`
    /// says: the stricter answer).
    Session([Option<&'p Rule>; 4]),
}

/// Why a session does not meet a rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("access denied by rule {rule}: {why}")]
pub struct Refusal {
    /// The rule's name.
    pub rule: Box<str>,
    /// What it asks and the session lacks.
    pub why: &'static str,
}

impl Refusal {
    /// The refusal of a `deny` rule.
    pub fn deny(rule: &Rule) -> Self {
        Self {
            rule: rule.name.clone(),
            why: "it denies every request",
        }
    }
}

impl std::fmt::Debug for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Rule({})", self.name)
    }
}

impl Policy {
    /// The rules of `configs`, paths read under `policy`.
    pub fn new(configs: &[RuleConfig], policy: &PathPolicy, apps: &[WechatConfig]) -> Self {
        Self {
            rules: configs.iter().map(Rule::new).collect(),
            strict: policy.is_strict(),
            kinds: AppKinds::new(apps),
        }
    }

    /// No `[[rules]]`: the request path pays one branch.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// What the rules say of `method` on the canonical `path`, routed to
    /// the upstream of index `upstream`.
    #[inline]
    pub fn judge(&self, method: &Method, path: &str, upstream: usize) -> Judgement<'_> {
        if self.rules.is_empty() {
            return Judgement::Unruled;
        }
        self.judge_rules(method, path, upstream)
    }

    fn judge_rules(&self, method: &Method, path: &str, upstream: usize) -> Judgement<'_> {
        let first = |reading: &str| {
            self.rules
                .iter()
                .find(|rule| rule.matches(method, reading, upstream))
        };
        if self.strict {
            return match first(path) {
                None => Judgement::Unruled,
                Some(rule) => match rule.action {
                    Action::Deny => Judgement::Deny(rule),
                    Action::Public => Judgement::Public(rule),
                    Action::Allow(_) => Judgement::Session([Some(rule), None, None, None]),
                },
            };
        }
        let mut hits: [Option<&Rule>; 4] = [None; 4];
        let mut unruled = false;
        for (i, reading) in readings(path).iter().take(4).enumerate() {
            match first(reading) {
                Some(rule) if hits.iter().flatten().any(|h| std::ptr::eq(*h, rule)) => {}
                Some(rule) => hits[i] = Some(rule),
                None => unruled = true,
            }
        }
        let rules = || hits.iter().flatten().copied();
        if let Some(deny) = rules().find(|r| matches!(r.action, Action::Deny)) {
            return Judgement::Deny(deny);
        }
        match rules().next() {
            None => Judgement::Unruled,
            Some(rule) if !unruled && rules().all(|r| matches!(r.action, Action::Public)) => {
                Judgement::Public(rule)
            }
            Some(_) => {
                // Public rules among them ask nothing of a session.
                for hit in &mut hits {
                    if hit.is_some_and(|r| matches!(r.action, Action::Public)) {
                        *hit = None;
                    }
                }
                Judgement::Session(hits)
            }
        }
    }

    /// Whether `user` meets every rule of `judgement` (a session judgement).
    pub fn admits(&self, judgement: &Judgement<'_>, user: &UserRecord) -> Result<(), Refusal> {
        let Judgement::Session(rules) = judgement else {
            return Ok(());
        };
        let kind = self.kinds.of(user.appid());
        for rule in rules.iter().flatten() {
            if let Action::Allow(need) = &rule.action
                && let Err(why) = need.admits(user, kind)
            {
                return Err(Refusal {
                    rule: rule.name.clone(),
                    why,
                });
            }
        }
        Ok(())
    }
}

impl Rule {
    fn new(config: &RuleConfig) -> Self {
        let set = |v: &[String]| v.iter().map(|s| s.as_str().into()).collect();
        Self {
            name: config.name.as_str().into(),
            paths: config.paths.clone(),
            methods: config.methods.clone(),
            upstream: config.upstream,
            action: match &config.action {
                RuleAction::Deny => Action::Deny,
                RuleAction::Public => Action::Public,
                RuleAction::Allow(r) => Action::Allow(Box::new(Need::new(r, set))),
            },
        }
    }

    fn matches(&self, method: &Method, path: &str, upstream: usize) -> bool {
        let on_path = match &self.paths {
            PathMatch::Prefix(prefix) => under(path, prefix),
            PathMatch::Exact(exact) => path == exact,
        };
        on_path
            && (self.methods.is_empty() || self.methods.contains(method))
            && self.upstream.is_none_or(|u| u == upstream)
    }

    /// What the rule says, for `check-policy`.
    pub fn describe(&self) -> String {
        let paths = match &self.paths {
            PathMatch::Prefix(p) => format!("prefix {p}"),
            PathMatch::Exact(p) => format!("path {p}"),
        };
        let methods = if self.methods.is_empty() {
            String::new()
        } else {
            let names: Vec<&str> = self.methods.iter().map(Method::as_str).collect();
            format!(", methods {}", names.join(" "))
        };
        let action = match &self.action {
            Action::Deny => "deny".to_owned(),
            Action::Public => "public".to_owned(),
            Action::Allow(need) => need.describe(),
        };
        format!("{paths}{methods}: {action}")
    }
}

impl Need {
    fn new(r: &Requirements, set: impl Fn(&[String]) -> HashSet<Box<str>>) -> Self {
        Self {
            user_id: r.user_id,
            phone: r.phone,
            apps: r.apps.iter().map(|a| a.as_str().into()).collect(),
            kinds: r.kinds.clone(),
            openids: r.openids.as_deref().map(&set),
            user_ids: r.user_ids.as_deref().map(&set),
            deny_openids: set(&r.deny_openids),
            deny_user_ids: set(&r.deny_user_ids),
        }
    }

    fn admits(&self, user: &UserRecord, kind: KindName) -> Result<(), &'static str> {
        let user_id = user.user_id().map(|id| id.as_str());
        let listed =
            |set: &HashSet<Box<str>>, id: Option<&str>| id.is_some_and(|id| set.contains(id));
        if self.deny_openids.contains(user.openid()) {
            return Err("the user's openid is on its deny list");
        }
        if listed(&self.deny_user_ids, user_id) {
            return Err("the user's id is on its deny list");
        }
        if self.user_id && user_id.is_none() {
            return Err("it needs a session bound to a business user (user_id)");
        }
        if self.phone && user.phone.is_none() {
            return Err(
                "it needs the user's phone number (fetch it through the phone route first)",
            );
        }
        if !self.apps.is_empty() && !self.apps.iter().any(|a| **a == *user.appid()) {
            return Err("the session's app is not one it admits");
        }
        if !self.kinds.is_empty() && !self.kinds.contains(&kind) {
            return Err("the session's kind (mini-program or browser) is not one it admits");
        }
        if self
            .openids
            .as_ref()
            .is_some_and(|set| !set.contains(user.openid()))
        {
            return Err("the user's openid is not on its allow list");
        }
        if self
            .user_ids
            .as_ref()
            .is_some_and(|set| !listed(set, user_id))
        {
            return Err("the user's id is not on its allow list");
        }
        Ok(())
    }

    fn describe(&self) -> String {
        let mut parts = vec!["a session".to_owned()];
        if self.user_id {
            parts.push("bound (user_id)".to_owned());
        }
        if self.phone {
            parts.push("with a phone number".to_owned());
        }
        if !self.apps.is_empty() {
            parts.push(format!("of app {}", self.apps.join(" or ")));
        }
        if !self.kinds.is_empty() {
            let kinds: Vec<&str> = self.kinds.iter().map(|k| k.as_str()).collect();
            parts.push(format!("of kind {}", kinds.join(" or ")));
        }
        if let Some(set) = &self.openids {
            parts.push(format!("openid among {}", set.len()));
        }
        if let Some(set) = &self.user_ids {
            parts.push(format!("user id among {}", set.len()));
        }
        if !self.deny_openids.is_empty() || !self.deny_user_ids.is_empty() {
            parts.push("not on its deny lists".to_owned());
        }
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn policy(normalize: &str, rules: &str) -> (Policy, Config) {
        let text = format!(
            "[upstream]\nurl = \"http://127.0.0.1:1\"\n[wechat]\nappid = \"wxapp\"\nsecret = \"s\"\n\
             [routes.normalize]\n{normalize}\n{rules}"
        );
        let config = Config::parse(&text, &|_| None).unwrap();
        let policy = Policy::new(&config.rules, &config.routes.normalize, &config.apps);
        (policy, config)
    }

    /// The rule names a judgement names, and its kind.
    fn judged(policy: &Policy, method: &str, path: &str) -> (&'static str, Vec<String>) {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        match policy.judge(&method, path, 0) {
            Judgement::Unruled => ("unruled", vec![]),
            Judgement::Deny(r) => ("deny", vec![r.name.to_string()]),
            Judgement::Public(r) => ("public", vec![r.name.to_string()]),
            Judgement::Session(rs) => (
                "session",
                rs.iter().flatten().map(|r| r.name.to_string()).collect(),
            ),
        }
    }

    const RULES: &str = "\
        [[rules]]\nname = \"vault\"\nprefix = \"/vault\"\naction = \"deny\"\n\
        [[rules]]\nname = \"open\"\nprefix = \"/open\"\npublic = true\n\
        [[rules]]\nname = \"writes\"\npath = \"/orders\"\nmethods = [\"POST\"]\nuser_id = true\n\
        [[rules]]\nname = \"staff\"\nprefix = \"/staff\"\nphone = true\n";

    #[test]
    fn the_first_matching_rule_decides() {
        let (p, _) = policy("", RULES);
        let cases = [
            ("GET", "/vault", ("deny", vec!["vault"])),
            ("GET", "/vault/a/b", ("deny", vec!["vault"])),
            ("GET", "/vaults", ("unruled", vec![])),
            ("GET", "/open/x", ("public", vec!["open"])),
            ("POST", "/orders", ("session", vec!["writes"])),
            ("GET", "/orders", ("unruled", vec![])),
            ("POST", "/orders/1", ("unruled", vec![])),
            ("GET", "/staff", ("session", vec!["staff"])),
        ];
        for (method, path, (kind, names)) in cases {
            let names: Vec<String> = names.into_iter().map(str::to_owned).collect();
            assert_eq!(judged(&p, method, path), (kind, names), "{method} {path}");
        }
    }

    #[test]
    fn under_relaxed_paths_every_reading_must_pass() {
        // `;params` pass: a path has two readings, as sent and without
        // its params (what Tomcat and others route by).
        let (p, _) = policy("path_params = \"allow\"", RULES);
        // `/vault;x` is /vault to a backend that drops params: denied.
        assert_eq!(judged(&p, "GET", "/vault;x").0, "deny");
        assert_eq!(judged(&p, "GET", "/open/x;y").0, "public");
        // No rule under one reading, a session's rule under the other: the
        // rule holds (a public route around it does not open it).
        let (p, _) = policy(
            "path_params = \"allow\"",
            "[[rules]]\nname = \"staff\"\nprefix = \"/open/a\"\nphone = true\n\
             [[rules]]\nname = \"open\"\nprefix = \"/open\"\npublic = true\n",
        );
        assert_eq!(
            judged(&p, "GET", "/open;x/a"),
            ("session", vec!["staff".to_owned()])
        );
    }

    #[test]
    fn a_session_must_meet_every_requirement() {
        use crate::config::secret::Secret;
        use crate::domain::session::{AppTag, BoundId, UserRecord};
        let (p, _) = policy(
            "",
            "[[rules]]\nname = \"r\"\nprefix = \"/\"\nuser_id = true\nopenids = [\"o1\", \"o2\"]\n\
             deny_user_ids = [\"bad\"]\nkinds = [\"miniprogram\"]\n",
        );
        let user = |openid: &str, id: Option<&str>| {
            let record =
                UserRecord::new(&AppTag::new("wxapp", true), openid, None, Secret::new("k"))
                    .unwrap();
            match id {
                Some(id) => record.bound_to(BoundId::new(id).unwrap()),
                None => record,
            }
        };
        let judgement = p.judge(&Method::GET, "/x", 0);
        assert!(p.admits(&judgement, &user("o1", Some("42"))).is_ok());
        let refused = |u: UserRecord| p.admits(&judgement, &u).unwrap_err().why;
        assert!(refused(user("o1", None)).contains("user_id"));
        assert!(refused(user("o3", Some("42"))).contains("allow list"));
        assert!(refused(user("o2", Some("bad"))).contains("deny list"));
    }
}
