//! Which route a request path belongs to.
//!
//! Built-in routes match the raw path exactly. Public prefixes must hold
//! under *every* reading a backend may give the path (`readings`: raw or
//! percent-decoded, `\` or `/`, `;params` kept or dropped, `..` over empty
//! segments or not): `/public/../admin`, `/public/%2e%2e/admin` or
//! `/%70ublic/x` must not reach another path without a session
//! (oauth2-proxy's route-bypass advisories). Where backends disagree, the
//! path is protected. tests/properties.rs and fuzz/public_route check it.
//! Prefixes match whole segments: `/static` covers `/static/a.css`, not
//! `/statics`. A public route may name a method (`"GET /api/products"`).
//!
//! The forward-auth route matches its path and everything under it: Envoy's
//! `ext_authz` asks with `path_prefix` + the original path.

use std::borrow::Cow;

use http::Method;

use crate::config::{PublicRoute, RoutesConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Login,
    Logout,
    Decrypt,
    Phone,
    SessionCheck,
    /// "Who is this?" from a front proxy (nginx, Traefik, Envoy).
    ForwardAuth,
    /// Under the reserved prefix but no route: 404, never forwarded.
    Reserved,
    /// Proxied without a session (identity injected when one is present).
    Public,
    /// Proxied only with a valid session.
    Protected,
}

pub struct Routes {
    prefix: String,
    login: String,
    logout: String,
    decrypt: String,
    phone: String,
    session: String,
    auth: Option<String>,
    public: PublicRoutes,
}

/// Public routes: normalised prefixes, each with the one method it allows, if any.
#[derive(Debug, Clone, Default)]
pub struct PublicRoutes(Vec<(Option<Method>, String)>);

impl PublicRoutes {
    pub fn new(routes: &[PublicRoute]) -> Self {
        Self(
            routes
                .iter()
                .map(|p| (p.method.clone(), prefix(&p.path)))
                .collect(),
        )
    }

    /// Whether every reading of `path` is under one prefix that allows `method`.
    pub fn matches(&self, method: &Method, path: &str) -> bool {
        if self.0.is_empty() {
            return false;
        }
        let readings = readings(path);
        self.0.iter().any(|(allowed, prefix)| {
            allowed.as_ref().is_none_or(|m| m == method)
                && readings.iter().all(|reading| under(reading, prefix))
        })
    }
}

impl Routes {
    pub fn new(config: &RoutesConfig) -> Self {
        Self {
            prefix: config.prefix.clone(),
            login: config.login.clone(),
            logout: config.logout.clone(),
            decrypt: config.decrypt.clone(),
            phone: config.phone.clone(),
            session: config.session.clone(),
            auth: config.auth.clone(),
            public: PublicRoutes::new(&config.public),
        }
    }

    pub fn classify(&self, method: &Method, path: &str) -> Route {
        if path == self.login {
            Route::Login
        } else if path == self.logout {
            Route::Logout
        } else if path == self.decrypt {
            Route::Decrypt
        } else if path == self.phone {
            Route::Phone
        } else if path == self.session {
            Route::SessionCheck
        } else if self.auth.as_deref().is_some_and(|auth| under(path, auth)) {
            Route::ForwardAuth
        } else if under(path, &self.prefix) {
            Route::Reserved
        } else if self.is_public(method, path) {
            Route::Public
        } else {
            Route::Protected
        }
    }

    /// The original path a forward-auth request asks about: Envoy's form
    /// (`/auth` + original path), or `/` for nginx and Traefik, which send
    /// `X-Forwarded-Uri` instead.
    pub fn forward_auth_suffix<'a>(&self, path: &'a str) -> &'a str {
        match self
            .auth
            .as_deref()
            .and_then(|auth| path.strip_prefix(auth))
        {
            Some(rest) if rest.starts_with('/') => rest,
            _ => "/",
        }
    }

    pub fn is_login(&self, path: &str) -> bool {
        path == self.login
    }

    /// Public by `routes.public` (an upstream may add its own, `proxy::UpstreamRoutes`).
    pub fn is_public(&self, method: &Method, path: &str) -> bool {
        self.public.matches(method, path)
    }
}

/// The path of a URI as a front proxy reports it in `X-Forwarded-Uri`:
/// origin form (`/a?b#c`) or absolute form (`https://host/a?b`); query and
/// fragment dropped. `None` when it is neither, which callers treat as
/// protected.
pub fn forwarded_path(uri: &str) -> Option<&str> {
    let uri = match uri.split_once("://") {
        Some((scheme, rest)) if !scheme.contains('/') => &rest[rest.find('/')?..],
        _ => uri,
    };
    let end = uri.find(['?', '#']).unwrap_or(uri.len());
    let path = &uri[..end];
    path.starts_with('/').then_some(path)
}

/// A configured prefix in the form [`under`] expects: normalised, no trailing `/`.
fn prefix(configured: &str) -> String {
    // Config validation refuses dot segments, so every reading agrees.
    let normalized = resolve(&percent_decode(configured).replace('\\', "/"), false);
    match normalized.trim_end_matches('/') {
        "" => "/".to_owned(),
        trimmed => trimmed.to_owned(),
    }
}

/// `path` is `prefix` or below it, on whole segments (`/` is above everything).
pub(crate) fn under(path: &str, prefix: &str) -> bool {
    prefix == "/"
        || path == prefix
        || (path.starts_with(prefix) && path.as_bytes().get(prefix.len()) == Some(&b'/'))
}

/// Every way a backend may read `path`, each reading applied once: raw or
/// percent-decoded; `\` kept or read as `/`; Java's `;params` kept or
/// dropped; `..` resolved over empty segments or after collapsing them.
/// A path is public only when every reading is under the prefix: where
/// backends disagree, wxgate asks for a session.
fn readings(path: &str) -> Vec<Cow<'_, str>> {
    let plain = !path.contains(['%', '\\', ';'])
        && !path.contains("//")
        && !path.split('/').any(|s| s == "." || s == "..");
    if plain {
        return vec![Cow::Borrowed(path)];
    }
    let mut out = Vec::with_capacity(16);
    for base in [path.to_owned(), percent_decode(path)] {
        for slashed in [base.clone(), base.replace('\\', "/")] {
            for params in [slashed.clone(), strip_params(&slashed)] {
                for keep_empty in [false, true] {
                    out.push(Cow::Owned(resolve(&params, keep_empty)));
                }
            }
        }
    }
    out
}

/// `/a;x/b;y=1` → `/a/b`, as Java servlet containers read it.
fn strip_params(path: &str) -> String {
    path.split('/')
        .map(|segment| segment.split(';').next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("/")
}

/// `.` and `..` resolved (RFC 3986 §5.2.4). `keep_empty`: `..` climbs
/// over empty segments too, as a backend that does not collapse `//` does;
/// the result is collapsed afterwards, as its router may.
fn resolve(path: &str, keep_empty: bool) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" if !keep_empty => {}
            "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let segments: Vec<&str> = segments.into_iter().filter(|s| !s.is_empty()).collect();
    format!("/{}", segments.join("/"))
}

fn percent_decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).and_then(|&b| hex(b)),
                bytes.get(i + 2).and_then(|&b| hex(b)),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The default routes with `public` entries (`"/p"` or `"GET /p"`), for tests.
#[cfg(test)]
pub(crate) fn test_routes(public: &[&str]) -> Routes {
    Routes::new(&RoutesConfig {
        prefix: "/_wxgate".into(),
        login: "/login".into(),
        logout: "/logout".into(),
        decrypt: "/_wxgate/decrypt".into(),
        phone: "/_wxgate/phone".into(),
        session: "/_wxgate/session".into(),
        auth: Some("/_wxgate/auth".into()),
        public: public
            .iter()
            .map(|s| match s.split_once(' ') {
                Some((m, p)) => PublicRoute {
                    method: Some(m.parse().unwrap()),
                    path: p.into(),
                },
                None => PublicRoute {
                    method: None,
                    path: s.to_string(),
                },
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes(public: &[&str]) -> Routes {
        test_routes(public)
    }

    #[test]
    fn classify_table() {
        let r = routes(&["/public", "/static/"]);
        let cases = [
            ("/login", Route::Login),
            ("/logout", Route::Logout),
            ("/_wxgate/decrypt", Route::Decrypt),
            ("/_wxgate/phone", Route::Phone),
            ("/_wxgate/session", Route::SessionCheck),
            ("/_wxgate/auth", Route::ForwardAuth),
            ("/_wxgate/auth/api/orders", Route::ForwardAuth),
            ("/_wxgate/authx", Route::Reserved),
            ("/_wxgate", Route::Reserved),
            ("/_wxgate/", Route::Reserved),
            ("/_wxgatex", Route::Protected),
            // The backend's own paths, which wxgate once claimed.
            ("/decrypt", Route::Protected),
            ("/phone", Route::Protected),
            ("/session", Route::Protected),
            ("/auth", Route::Protected),
            ("/auth/profile", Route::Protected),
            ("/healthz", Route::Protected),
            ("/readyz", Route::Protected),
            ("/login/x", Route::Protected),
            ("/public", Route::Public),
            ("/public/a/b", Route::Public),
            ("/publicity", Route::Protected),
            ("/static/app.css", Route::Public),
            ("/api/orders", Route::Protected),
            // Traversal out of a public prefix is not public.
            ("/public/../admin", Route::Protected),
            ("/public/%2e%2e/admin", Route::Protected),
            ("/public/%2E%2E%2Fadmin", Route::Protected),
            ("/public/..%5cadmin", Route::Protected),
            ("/public\\..\\admin", Route::Protected),
            ("/public/..;/admin", Route::Protected),
            ("/public/..;jsessionid=1/admin", Route::Protected),
            ("/public;x/a", Route::Protected),
            // Every reading of this one stays under /public.
            ("/public/.;/a", Route::Public),
            ("/admin/..;/public", Route::Protected),
            // Traversal that stays inside is still public.
            ("/public/a/../b", Route::Public),
            ("//public//a", Route::Public),
            ("/public/./a", Route::Public),
            // Traversal into a public prefix is public, as the backend sees it.
            ("/admin/../public/a", Route::Public),
            // Where backends disagree, a session is required.
            ("/%2e/public", Route::Protected),
            ("/%70ublic/a", Route::Protected),
            ("/admin//..//public", Route::Protected),
            ("/public/;/../admin", Route::Protected),
            // Found by fuzz/public_route: a target without its leading `/`.
            ("```//public", Route::Protected),
            ("*", Route::Protected),
        ];
        for (path, want) in cases {
            assert_eq!(r.classify(&Method::GET, path), want, "{path}");
        }
    }

    #[test]
    fn no_public_routes_means_everything_protected() {
        assert_eq!(
            routes(&[]).classify(&Method::GET, "/anything"),
            Route::Protected
        );
        assert_eq!(
            routes(&["/"]).classify(&Method::GET, "/anything"),
            Route::Public
        );
    }

    #[test]
    fn public_routes_with_a_method() {
        let r = routes(&["GET /api/products", "/static"]);
        let cases = [
            (Method::GET, "/api/products/7", true),
            (Method::POST, "/api/products/7", false),
            (Method::HEAD, "/api/products", false),
            (Method::DELETE, "/static/a.css", true),
        ];
        for (method, path, public) in cases {
            assert_eq!(r.is_public(&method, path), public, "{method} {path}");
        }
    }

    #[test]
    fn forwarded_uri_table() {
        let cases = [
            ("/public/a?x=1", Some("/public/a")),
            ("/public/a#frag", Some("/public/a")),
            ("/a?next=/public", Some("/a")),
            ("https://example.com/public/a?b", Some("/public/a")),
            ("http://example.com", None),
            ("", None),
            ("public/a", None),
            ("?/public", None),
            ("#/public", None),
        ];
        for (uri, want) in cases {
            assert_eq!(forwarded_path(uri), want, "{uri}");
        }
    }

    #[test]
    fn forward_auth_suffix_is_the_envoy_original_path() {
        let r = routes(&[]);
        assert_eq!(r.forward_auth_suffix("/_wxgate/auth"), "/");
        assert_eq!(
            r.forward_auth_suffix("/_wxgate/auth/api/orders"),
            "/api/orders"
        );
    }

    #[test]
    fn readings_of_odd_input() {
        let all = |path: &str| -> Vec<String> {
            let mut v: Vec<String> = readings(path).into_iter().map(Cow::into_owned).collect();
            v.sort();
            v.dedup();
            v
        };
        assert_eq!(all("/a/b"), ["/a/b"]);
        assert_eq!(all("/a/%zz/%"), ["/a/%zz/%"]);
        assert_eq!(all("/../../"), ["/"]);
        assert_eq!(all("/a/%ff"), ["/a/%ff", "/a/\u{fffd}"]);
        assert_eq!(all("/a;v=1/b"), ["/a/b", "/a;v=1/b"]);
        assert_eq!(all("/a/..;/b"), ["/a/..;/b", "/b"]);
        assert_eq!(all("/a//../b"), ["/a/b", "/b"]);
        assert_eq!(all("/%2e%2e/x"), ["/%2e%2e/x", "/x"]);
    }
}
