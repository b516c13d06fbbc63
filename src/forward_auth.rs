//! Forward-auth: a front proxy asks "who is this?" and wxgate answers.
//!
//! For teams that keep nginx (`auth_request`), Traefik (`ForwardAuth`) or
//! Envoy (`ext_authz`) in front of their backend. The front proxy sends the
//! client's headers here; wxgate answers 200 with the identity headers on
//! the RESPONSE when the session is valid (the proxy copies them onto the
//! request it forwards), 200 without them for a public route, and 401 JSON
//! otherwise.
//!
//! The route being asked about comes from `X-Forwarded-Method` and
//! `X-Forwarded-Uri` (nginx, Traefik), or from the path after the auth
//! route (Envoy's `path_prefix`) with the request's own method. The path is
//! cut at `?` and `#` and normalised before public prefixes are matched,
//! so `/public/../admin?x` or `/admin#/public` are never public. An
//! unreadable `X-Forwarded-Uri` counts as protected.
//!
//! Stripping client-sent identity headers is the front proxy's job in this
//! mode; `deploy/` shows how for each proxy.

use crate::stack::RequestBody;
use http::{HeaderMap, Method, Request, Response, StatusCode};

use crate::app::Live;
use crate::body::{self, Body};
use crate::error::HttpError;
use crate::header;
use crate::outcome::{Handled, Outcome};
use crate::proxy::UpstreamRoutes;
use crate::route::{Routes, forwarded_path};
use crate::session::Resolved;

pub const FORWARDED_METHOD: &str = "x-forwarded-method";
pub const FORWARDED_URI: &str = "x-forwarded-uri";

/// The request the front proxy is asking about.
#[derive(Debug, PartialEq, Eq)]
pub struct Question {
    /// Whether that request is on a public route.
    pub public: bool,
    /// Its method and path, for the log line; `None` when unreadable.
    pub asked: Option<(Method, String)>,
}

impl Question {
    pub fn of(live: &Live, request: &Request<RequestBody>) -> Self {
        Self::from_parts(
            &live.routes,
            &live.upstreams,
            request.method(),
            request.uri().path(),
            request.headers(),
        )
    }

    fn from_parts(
        routes: &Routes,
        upstreams: &UpstreamRoutes,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
    ) -> Self {
        let method = match single(headers, FORWARDED_METHOD) {
            Some(text) => Method::from_bytes(text.as_bytes()).ok(),
            None => Some(method.clone()),
        };
        let path = match single(headers, FORWARDED_URI) {
            Some(uri) => forwarded_path(uri),
            // Present but repeated or not text: ambiguous, so not public.
            None if headers.contains_key(FORWARDED_URI) => None,
            None => Some(routes.forward_auth_suffix(path)),
        };
        match (method, path) {
            (Some(method), Some(path)) => Self {
                // Public by `routes.public`, or by the public routes of the
                // upstream wxgate would route the path to.
                public: routes.is_public(&method, path)
                    || upstreams
                        .find(path)
                        .is_some_and(|upstream| upstream.is_public(&method, path)),
                asked: Some((method, path.to_owned())),
            },
            _ => Self {
                public: false,
                asked: None,
            },
        }
    }
}

/// The one value of `name`, if there is exactly one and it is text.
fn single<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    header::single(headers, name)?.to_str().ok()
}

pub fn answer(
    live: &Live,
    question: Question,
    session: Option<&Resolved>,
    handled: &mut Handled,
) -> Result<Response<Body>, HttpError> {
    handled.asked = question.asked.map(Box::new);
    let outcome = &mut handled.outcome;
    let mut response = match (session, question.public) {
        (Some(session), public) => {
            handled.user = Some(session.user.clone());
            *outcome = if public {
                Outcome::Public
            } else {
                Outcome::Authenticated
            };
            let mut response = body::empty(StatusCode::OK);
            live.identity.inject(response.headers_mut(), &session.user);
            response
        }
        (None, true) => {
            *outcome = Outcome::Public;
            body::empty(StatusCode::OK)
        }
        (None, false) => return Err(HttpError::SessionInvalid),
    };
    // An answer about one user must never be reused for another.
    response.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn routes() -> Routes {
        crate::route::test_routes(&["/public", "GET /api/products"])
    }

    fn public(method: &str, path: &str, forwarded: &[(&'static str, &str)]) -> bool {
        let mut headers = HeaderMap::new();
        for (name, value) in forwarded {
            headers.append(*name, HeaderValue::from_str(value).unwrap());
        }
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let upstreams = UpstreamRoutes::new(&[]);
        Question::from_parts(&routes(), &upstreams, &method, path, &headers).public
    }

    #[test]
    fn forwarded_uri_tricks_are_not_public() {
        let cases = [
            ("/public/a", true),
            ("/public/a?x=1", true),
            ("/public/../admin", false),
            ("/public/%2e%2e/admin", false),
            ("/public/%2E%2E/admin?x", false),
            ("/public/..%2fadmin", false),
            ("/admin?/public", false),
            ("/admin?next=/public/a", false),
            ("/admin#/public", false),
            ("/admin/..;/public", false),
            ("https://evil.example/public/a", true),
            ("public/a", false),
            ("", false),
        ];
        for (uri, want) in cases {
            assert_eq!(
                public("GET", "/_wxgate/auth", &[(FORWARDED_URI, uri)]),
                want,
                "{uri}"
            );
        }
    }

    #[test]
    fn method_comes_from_the_forwarded_header() {
        let uri = (FORWARDED_URI, "/api/products/1");
        assert!(public(
            "POST",
            "/_wxgate/auth",
            &[uri, (FORWARDED_METHOD, "GET")]
        ));
        assert!(!public(
            "GET",
            "/_wxgate/auth",
            &[uri, (FORWARDED_METHOD, "DELETE")]
        ));
        assert!(!public(
            "GET",
            "/_wxgate/auth",
            &[uri, (FORWARDED_METHOD, "G E T")]
        ));
        // Without the header, the request's own method (Envoy forwards it).
        assert!(public("GET", "/_wxgate/auth", &[uri]));
    }

    #[test]
    fn envoy_path_prefix_form() {
        assert!(public("GET", "/_wxgate/auth/public/a", &[]));
        assert!(!public("GET", "/_wxgate/auth/admin", &[]));
        assert!(!public("GET", "/_wxgate/auth/public/../admin", &[]));
        assert!(public("GET", "/_wxgate/auth/api/products", &[]));
        assert!(!public("POST", "/_wxgate/auth/api/products", &[]));
    }

    #[test]
    fn repeated_forwarded_uri_is_not_public() {
        assert!(!public(
            "GET",
            "/_wxgate/auth/public/a",
            &[(FORWARDED_URI, "/public/a"), (FORWARDED_URI, "/public/b")]
        ));
    }
}
