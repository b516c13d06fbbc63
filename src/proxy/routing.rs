//! Which upstream a request goes to (`[upstream]`, `[[upstreams]]`).
//!
//! Longest prefix wins, on whole segments of the canonical path
//! (`canonical_path`: `/shop` covers `/shop/a`, never `/shopping`), as
//! oauth2-proxy and nginx prefix locations route. The canonical path is
//! also what the upstream is sent, so the upstream chosen is the one the
//! backend's own reading belongs to: `/shop/../member/card` goes to the
//! member service, as `/member/card`. Routing picks a backend; it grants
//! nothing: whether a session is needed is decided separately, and an
//! upstream's own public routes are judged as `routes.public` are
//! (`domain::route`).
//!
//! The table lives in the app's reloadable settings (timeouts and public
//! routes may change on SIGHUP); the connection pools, one per upstream,
//! do not.

use std::borrow::Cow;
use std::time::Duration;

use http::Method;

use crate::config::UpstreamConfig;
use crate::domain::route::PublicRoutes;
use crate::wire::canonical_path::{PathPolicy, routing_form, under};

/// Where a path goes.
pub struct UpstreamRoute {
    /// Index into the app's upstreams (config order).
    pub index: usize,
    prefix: String,
    /// The upstream's `timeout`.
    pub timeout: Duration,
    public: PublicRoutes,
}

impl UpstreamRoute {
    /// Public by this upstream's own `public` list.
    pub fn is_public(&self, method: &Method, path: &str) -> bool {
        self.public.matches(method, path)
    }
}

/// The upstreams by prefix, longest first.
pub struct UpstreamRoutes {
    /// Longest prefix first.
    routes: Vec<UpstreamRoute>,
    /// How paths were made canonical, which routing reads them by.
    policy: PathPolicy,
}

impl UpstreamRoutes {
    /// The routes of `configs`, their paths read under `policy`.
    pub fn new(configs: &[UpstreamConfig], policy: &PathPolicy) -> Self {
        let mut routes: Vec<UpstreamRoute> = configs
            .iter()
            .enumerate()
            .map(|(index, config)| UpstreamRoute {
                index,
                prefix: config.prefix.clone(),
                timeout: config.timeout,
                public: PublicRoutes::new(&config.public, policy),
            })
            .collect();
        routes.sort_by_key(|route| std::cmp::Reverse(route.prefix.len()));
        Self {
            routes,
            policy: *policy,
        }
    }

    /// The upstream for a canonical `path`; `None` when no prefix covers it.
    pub fn find(&self, path: &str) -> Option<&UpstreamRoute> {
        let path = routing_form(path, &self.policy);
        self.routes.iter().find(|route| under(&path, &route.prefix))
    }
}

/// A canonical `path` without as many leading segments as `prefix` has
/// (routing found it under `prefix`): `/shop/a` → `/a`, `/shop` → `/`, and
/// with `;params` allowed `/shop;x/a` → `/a`. Never above `/`.
pub(super) fn strip_prefix<'a>(path: &'a str, prefix: &str) -> &'a str {
    let segments = prefix.split('/').filter(|s| !s.is_empty()).count();
    let mut rest = path;
    for _ in 0..segments {
        rest = match rest[1..].find('/') {
            Some(at) => &rest[at + 1..],
            None => return "/",
        };
        if rest.is_empty() {
            return "/";
        }
    }
    rest
}

/// The path an upstream is sent: the canonical `path` (prefix stripped
/// when configured) under the upstream URL's own `path_prefix`. Every
/// piece is canonical, so the result never leaves `path_prefix`.
pub(super) fn upstream_path<'a>(config: &UpstreamConfig, path: &'a str) -> Cow<'a, str> {
    let rest = match config.strip_prefix {
        true => strip_prefix(path, &config.prefix),
        false => path,
    };
    if config.path_prefix.is_empty() {
        Cow::Borrowed(rest)
    } else {
        Cow::Owned(format!("{}{rest}", config.path_prefix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn routes(extra: &str) -> UpstreamRoutes {
        let text = format!("[wechat]\nappid = \"wxapp\"\nsecret = \"s\"\n{extra}");
        let config = Config::parse(&text, &|_| None).unwrap();
        UpstreamRoutes::new(&config.upstreams, &config.routes.normalize)
    }

    #[test]
    fn longest_prefix_on_whole_segments() {
        let r = routes(
            r#"
[upstream]
url = "http://127.0.0.1:1"
[[upstreams]]
prefix = "/shop"
url = "http://127.0.0.1:2"
[[upstreams]]
prefix = "/shop/admin/"
url = "http://127.0.0.1:3"
"#,
        );
        let cases = [
            ("/", Some(0)),
            ("/api/x", Some(0)),
            ("/shop", Some(1)),
            ("/shop/", Some(1)),
            ("/shop/cart", Some(1)),
            ("/shopping", Some(0)),
            ("/shop/admin", Some(2)),
            ("/shop/admin/users", Some(2)),
            ("/shop/administrator", Some(1)),
        ];
        for (path, want) in cases {
            assert_eq!(r.find(path).map(|u| u.index), want, "{path}");
        }
    }

    #[test]
    fn without_a_catch_all_some_paths_have_no_upstream() {
        let r = routes(
            r#"
[[upstreams]]
prefix = "/shop"
url = "http://127.0.0.1:2"
public = ["/shop/static"]
"#,
        );
        assert!(r.find("/other").is_none());
        assert!(r.find("/").is_none());
        let shop = r.find("/shop/static/a.css").unwrap();
        assert!(shop.is_public(&Method::GET, "/shop/static/a.css"));
        // Paths are canonical by now: `/shop/static/../cart` is `/shop/cart`.
        assert!(shop.is_public(&Method::GET, "/shop/static/a/b"));
        assert!(!shop.is_public(&Method::GET, "/shop/cart"));
    }

    #[test]
    fn strip_prefix_table() {
        let cases = [
            ("/shop/a", "/shop", "/a"),
            ("/shop", "/shop", "/"),
            ("/shop/", "/shop", "/"),
            ("/shop/a/", "/shop", "/a/"),
            ("/shop/admin/x", "/shop/admin", "/x"),
            ("/shop;jsessionid=1/a", "/shop", "/a"),
            ("/a/b", "/", "/a/b"),
        ];
        for (path, prefix, want) in cases {
            assert_eq!(strip_prefix(path, prefix), want, "{path} - {prefix}");
        }
    }
}
