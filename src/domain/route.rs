//! Which route a request path belongs to.
//!
//! Every decision here takes the request's canonical path
//! (`canonical_path`): dot segments resolved, `//` merged, unreserved
//! escapes decoded, and whatever backends read differently refused before
//! routing. The backend is sent that same path, so a public prefix judged
//! here is the one the backend serves: `/public/../admin` is `/admin`,
//! `/public/%2e%2e/admin` and `/public/..;/admin` never get this far. With
//! a relaxed `[routes.normalize]`, a public prefix must hold under every
//! reading the relaxation lets through (`canonical_path::readings`).
//! Prefixes match whole segments: `/static` covers `/static/a.css`, not
//! `/statics`. A public route may name a method (`"GET /api/products"`).
//!
//! The forward-auth route matches its path and everything under it: Envoy's
//! `ext_authz` asks with `path_prefix` + the original path.

use http::Method;

use crate::config::{PublicRoute, RoutesConfig};
use crate::wire::canonical_path::{PathPolicy, readings, routing_form, under};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// What a request is, by its method and canonical path.
pub enum Route {
    /// `POST /login`.
    Login,
    /// `POST /logout`.
    Logout,
    /// Decrypting the user's encrypted data.
    Decrypt,
    /// The phone number behind a `getPhoneNumber` code.
    Phone,
    /// Whether the user's session_key is still valid.
    SessionCheck,
    /// "Who is this?" from a front proxy (nginx, Traefik, Envoy).
    ForwardAuth,
    /// The browser login: off to WeChat, back from it, mock mode's page.
    WebStart,
    /// WeChat sends the browser back here.
    WebCallback,
    /// Mock mode's stand-in for WeChat's authorize page.
    WebMock,
    /// The keys the identity assertions are signed with (`[assertion]`).
    Jwks,
    /// JS-SDK signatures for an official account's H5 pages (`[web]`).
    Jssdk,
    /// Under the reserved prefix but no route: 404, never forwarded.
    Reserved,
    /// Proxied without a session (identity injected when one is present).
    Public,
    /// Proxied only with a valid session.
    Protected,
}

/// The configured routes, read once per request.
pub struct Routes {
    prefix: String,
    login: String,
    logout: String,
    decrypt: String,
    phone: String,
    session: String,
    auth: Option<String>,
    /// Start, callback, mock page.
    web: [String; 3],
    /// `{prefix}/jwks.json`.
    jwks: String,
    /// `{prefix}/jssdk`.
    jssdk: String,
    public: PublicRoutes,
    normalize: PathPolicy,
}

/// Public routes: normalised prefixes, each with the one method it allows, if any.
#[derive(Debug, Clone, Default)]
pub struct PublicRoutes {
    routes: Vec<(Option<Method>, String)>,
    /// The path policy is strict: a canonical path has one reading.
    strict: bool,
}

impl PublicRoutes {
    /// `routes`, each judged under `policy`'s readings.
    pub fn new(routes: &[PublicRoute], policy: &PathPolicy) -> Self {
        Self {
            routes: routes
                .iter()
                .map(|p| (p.method.clone(), prefix(&p.path)))
                .collect(),
            strict: policy.is_strict(),
        }
    }

    /// Whether every reading of the canonical `path` is under one prefix
    /// that allows `method`.
    pub fn matches(&self, method: &Method, path: &str) -> bool {
        if self.routes.is_empty() {
            return false;
        }
        let allows = |allowed: &Option<Method>| allowed.as_ref().is_none_or(|m| m == method);
        if self.strict {
            return self
                .routes
                .iter()
                .any(|(allowed, prefix)| allows(allowed) && under(path, prefix));
        }
        let readings = readings(path);
        self.routes.iter().any(|(allowed, prefix)| {
            allows(allowed) && readings.iter().all(|reading| under(reading, prefix))
        })
    }
}

impl Routes {
    /// The routes of `[routes]`.
    pub fn new(config: &RoutesConfig) -> Self {
        Self {
            prefix: config.prefix.clone(),
            login: config.login.clone(),
            logout: config.logout.clone(),
            decrypt: config.decrypt.clone(),
            phone: config.phone.clone(),
            session: config.session.clone(),
            auth: config.auth.clone(),
            web: config.web_paths(),
            jwks: format!("{}/jwks.json", config.prefix.trim_end_matches('/')),
            jssdk: format!("{}/jssdk", config.prefix.trim_end_matches('/')),
            public: PublicRoutes::new(&config.public, &config.normalize),
            normalize: config.normalize,
        }
    }

    /// How request paths are made canonical (`[routes.normalize]`).
    pub fn normalize(&self) -> &PathPolicy {
        &self.normalize
    }

    /// The route of a canonical path (`canonical_path::canonicalize`).
    pub fn classify(&self, method: &Method, canonical: &str) -> Route {
        let path = &*routing_form(canonical, &self.normalize);
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
            match &self.web {
                [start, ..] if path == start => Route::WebStart,
                [_, callback, _] if path == callback => Route::WebCallback,
                [.., mock] if path == mock => Route::WebMock,
                _ if path == self.jwks => Route::Jwks,
                _ if path == self.jssdk => Route::Jssdk,
                _ => Route::Reserved,
            }
        } else if self.is_public(method, canonical) {
            Route::Public
        } else {
            Route::Protected
        }
    }

    /// A forward-auth request, told by its raw path (before it is made
    /// canonical: Envoy's original path is judged on its own):
    /// `Some(None)` for the auth route itself (nginx and Traefik, which send
    /// `X-Forwarded-Uri`), `Some(Some(original))` for Envoy's form (`/auth`
    /// + original path), `None` for any other path.
    pub fn forward_auth<'a>(&self, raw: &'a str) -> Option<Option<&'a str>> {
        let rest = raw.strip_prefix(self.auth.as_deref()?)?;
        match rest {
            "" => Some(None),
            rest if rest.starts_with('/') => Some(Some(rest)),
            _ => None,
        }
    }

    /// Whether `path` is the login route.
    pub fn is_login(&self, path: &str) -> bool {
        path == self.login
    }

    /// The browser login's start route (rate limited like a login).
    pub fn is_web_start(&self, path: &str) -> bool {
        path == self.web[0]
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

/// A configured prefix in the form [`under`] expects: no trailing `/`.
/// Config validation made it canonical.
fn prefix(configured: &str) -> String {
    match configured.trim_end_matches('/') {
        "" => "/".to_owned(),
        trimmed => trimmed.to_owned(),
    }
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
        normalize: PathPolicy::default(),
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

    /// The route of a raw path, made canonical first as the app does;
    /// `None` when it is refused (`path_ambiguous`).
    fn classify(r: &Routes, path: &str) -> Option<Route> {
        let canonical = crate::wire::canonical_path::canonicalize(path, r.normalize()).ok()?;
        Some(r.classify(&Method::GET, &canonical))
    }

    #[test]
    fn classify_table() {
        use Route::*;
        let r = routes(&["/public", "/static/"]);
        let cases = [
            ("/login", Some(Login)),
            ("/logout", Some(Logout)),
            ("/_wxgate/decrypt", Some(Decrypt)),
            ("/_wxgate/phone", Some(Phone)),
            ("/_wxgate/session", Some(SessionCheck)),
            ("/_wxgate/auth", Some(ForwardAuth)),
            ("/_wxgate/auth/api/orders", Some(ForwardAuth)),
            ("/_wxgate/authx", Some(Reserved)),
            ("/_wxgate", Some(Reserved)),
            ("/_wxgate/", Some(Reserved)),
            ("/_wxgatex", Some(Protected)),
            // Built-in routes by their canonical spelling too.
            ("/x/../login", Some(Login)),
            ("//_wxgate/./decrypt", Some(Decrypt)),
            ("/%5Fwxgate/phone", Some(Phone)),
            // The backend's own paths, which wxgate once claimed.
            ("/decrypt", Some(Protected)),
            ("/phone", Some(Protected)),
            ("/session", Some(Protected)),
            ("/auth", Some(Protected)),
            ("/auth/profile", Some(Protected)),
            ("/healthz", Some(Protected)),
            ("/readyz", Some(Protected)),
            ("/login/x", Some(Protected)),
            ("/public", Some(Public)),
            ("/public/a/b", Some(Public)),
            ("/publicity", Some(Protected)),
            ("/static/app.css", Some(Public)),
            ("/api/orders", Some(Protected)),
            // Traversal out of a public prefix is the path it leads to.
            ("/public/../admin", Some(Protected)),
            ("/public/a/../../admin", Some(Protected)),
            // Traversal that stays inside is still public.
            ("/public/a/../b", Some(Public)),
            ("//public//a", Some(Public)),
            ("/public/./a", Some(Public)),
            ("/admin/../public/a", Some(Public)),
            ("/admin//..//public", Some(Public)),
            ("/%70ublic/a", Some(Public)),
            // What backends read differently never gets a route.
            ("/public/%2e%2e/admin", None),
            ("/public/%2E%2E%2Fadmin", None),
            ("/public/..%5cadmin", None),
            ("/public\\..\\admin", None),
            ("/public/..;/admin", None),
            ("/public/..;jsessionid=1/admin", None),
            ("/public;x/a", None),
            ("/public/.;/a", None),
            ("/admin/..;/public", None),
            ("/%2e/public", None),
            ("/public/;/../admin", None),
            ("/..", None),
            ("/public/../../admin", None),
            // Found by fuzz/public_route: a target without its leading `/`.
            ("```//public", None),
            ("*", None),
        ];
        for (path, want) in cases {
            assert_eq!(classify(&r, path), want, "{path}");
        }
    }

    #[test]
    fn relaxed_paths_are_public_only_under_every_reading() {
        let text = "[upstream]\nurl = \"http://127.0.0.1:1\"\n[wechat]\nappid = \"wxapp\"\n\
                    secret = \"s\"\n[routes]\npublic = [\"/public\"]\n[routes.normalize]\n\
                    path_params = \"allow\"\nencoded_slashes = \"keep\"\n";
        let r = Routes::new(
            &crate::config::Config::parse(text, &|_| None)
                .unwrap()
                .routes,
        );
        let cases = [
            ("/public/a;jsessionid=1", Some(Route::Public)),
            ("/public;x/a", Some(Route::Protected)),
            ("/public%2Fa", Some(Route::Protected)),
            ("/public/a%2Fb", Some(Route::Public)),
            ("/login;jsessionid=1", Some(Route::Login)),
            ("/public/..;/admin", None),
            ("/public/..%2Fadmin", None),
        ];
        for (path, want) in cases {
            assert_eq!(classify(&r, path), want, "{path}");
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
    fn forward_auth_forms() {
        let r = routes(&[]);
        assert_eq!(r.forward_auth("/_wxgate/auth"), Some(None));
        assert_eq!(
            r.forward_auth("/_wxgate/auth/api/orders"),
            Some(Some("/api/orders"))
        );
        assert_eq!(r.forward_auth("/_wxgate/authx"), None);
        assert_eq!(r.forward_auth("/api"), None);
    }
}
