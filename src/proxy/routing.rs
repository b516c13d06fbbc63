//! Which upstream a request goes to (`[upstream]`, `[[upstreams]]`).
//!
//! Longest prefix wins, on whole segments of the raw path (`/shop`
//! covers `/shop/a`, never `/shopping`), as oauth2-proxy and nginx
//! prefix locations route. Routing picks a backend; it grants nothing:
//! whether a session is needed is decided separately, and an upstream's
//! own public routes hold under every reading of the path, as
//! `routes.public` do (`route.rs`), so `/shop/static/../../admin` routed to
//! the shop is still protected.
//!
//! The table lives in the app's reloadable settings (timeouts and public
//! routes may change on SIGHUP); the connection pools, one per upstream,
//! do not.

use std::borrow::Cow;
use std::time::Duration;

use http::Method;

use crate::config::UpstreamConfig;
use crate::route::{PublicRoutes, under};

pub struct UpstreamRoute {
    /// Index into the app's upstreams (config order).
    pub index: usize,
    prefix: String,
    pub timeout: Duration,
    public: PublicRoutes,
}

impl UpstreamRoute {
    /// Public by this upstream's own `public` list.
    pub fn is_public(&self, method: &Method, path: &str) -> bool {
        self.public.matches(method, path)
    }
}

pub struct UpstreamRoutes {
    /// Longest prefix first.
    routes: Vec<UpstreamRoute>,
}

impl UpstreamRoutes {
    pub fn new(configs: &[UpstreamConfig]) -> Self {
        let mut routes: Vec<UpstreamRoute> = configs
            .iter()
            .enumerate()
            .map(|(index, config)| UpstreamRoute {
                index,
                prefix: config.prefix.clone(),
                timeout: config.timeout,
                public: PublicRoutes::new(&config.public),
            })
            .collect();
        routes.sort_by_key(|route| std::cmp::Reverse(route.prefix.len()));
        Self { routes }
    }

    /// The upstream for `path`; `None` when no prefix covers it.
    pub fn find(&self, path: &str) -> Option<&UpstreamRoute> {
        self.routes.iter().find(|route| under(path, &route.prefix))
    }
}

/// `path_and_query` without `prefix` (which it is under): `/shop/a?x` → `/a?x`, `/shop` → `/`.
pub fn strip_prefix<'a>(path_and_query: &'a str, prefix: &str) -> Cow<'a, str> {
    if prefix == "/" {
        return Cow::Borrowed(path_and_query);
    }
    match path_and_query.strip_prefix(prefix) {
        Some(rest) if rest.starts_with('/') => Cow::Borrowed(rest),
        Some(rest) => Cow::Owned(format!("/{rest}")),
        None => Cow::Borrowed(path_and_query),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn routes(extra: &str) -> UpstreamRoutes {
        let text = format!("[wechat]\nappid = \"wxapp\"\nsecret = \"s\"\n{extra}");
        UpstreamRoutes::new(&Config::parse(&text, &|_| None).unwrap().upstreams)
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
        assert!(!shop.is_public(&Method::GET, "/shop/static/../cart"));
        assert!(!shop.is_public(&Method::GET, "/shop/cart"));
    }

    #[test]
    fn strip_prefix_table() {
        let cases = [
            ("/shop/a?x=1", "/shop", "/a?x=1"),
            ("/shop", "/shop", "/"),
            ("/shop?x", "/shop", "/?x"),
            ("/shop/", "/shop", "/"),
            ("/a/b", "/", "/a/b"),
        ];
        for (path, prefix, want) in cases {
            assert_eq!(strip_prefix(path, prefix), want, "{path} - {prefix}");
        }
    }
}
