//! Forward-auth: a front proxy asks "who is this?" and wxgate answers.
//!
//! For teams that keep nginx (`auth_request`), Traefik (`ForwardAuth`) or
//! Envoy (`ext_authz`) in front of their backend. The front proxy sends the
//! client's headers here; wxgate answers 200 with the identity headers
//! (and, with `[assertion]`, the signed assertion for the upstream the path
//! routes to) on the RESPONSE when the session is valid (the proxy copies
//! them onto the request it forwards), 200 without them for a public route,
//! 403 where a `[[rules]]` entry refuses (`access`, as the proxy port
//! judges), and 401 JSON otherwise.
//!
//! The route being asked about comes from `X-Forwarded-Method` and
//! `X-Forwarded-Uri` (nginx, Traefik), or, in Envoy's `path_prefix` form,
//! from the path after the auth route with the request's own method — then
//! any `X-Forwarded-*` a client sent is ignored, never taken over the path
//! Envoy asked about. The path is cut at `?` and judged by the proxy
//! port's rules (`canonical_path`): a path no upstream covers is
//! `404 no_upstream` here too, an ambiguous one `400 path_ambiguous`. Unlike
//! the proxy port, which forwards the canonical path it judged, wxgate does
//! not forward here: the front proxy routes the path as written (Envoy's
//! default `normalize_path: false`, a prefix rewrite), so a path whose
//! written form is not already canonical (`/x/../shop`, `//`, `%73tatic`)
//! or that carries a `#` is refused as `path_ambiguous`, never judged on a
//! form the front proxy may not route to. A repeated or non-text `X-Forwarded-Method` or
//! `X-Forwarded-Uri`, or one that is no method or URI, is a 400: never a
//! fallback to the auth request's own method or path.
//!
//! Stripping client-sent identity headers, the session header and wxgate's
//! session cookie is the front proxy's job in this mode; the answer carries
//! the request's other cookies for it (`pass_cookies`), and `deploy/`
//! shows how for each proxy.

use http::header::{COOKIE, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode};

use super::context::{Caller, Context};
use super::web_login::WebLogin;

use super::access::Access;
use super::context::Live;
use crate::domain::route::{Routes, forwarded_path};
use crate::domain::session::Resolved;
use crate::metrics::Outcome;
use crate::response::Handled;
use crate::response::HttpError;
use crate::response::{self, Body};
use crate::wire::body_idle::RequestBody;
use crate::wire::canonical_path::{PathError, as_written};
use crate::wire::cookie;

/// The endpoint: `/_wxgate/auth`, or Envoy's `/_wxgate/auth/<original path>`
/// (told by the raw path, or by a spelling canonical only now).
pub(crate) async fn handle(
    cx: &mut Context<'_>,
    _caller: Caller,
    request: Request<RequestBody>,
) -> Result<Response<Body>, HttpError> {
    let live = cx.live;
    let envoy = live.routes.forward_auth(request.uri().path()).flatten();
    let question = Question::of(live, &request, envoy)?;
    // CSRF is judged on the request asked about (nginx and Envoy pass
    // its headers, Origin included, on to the auth subrequest).
    let session = cx.resolve_for(&question.asked.0, request.headers()).await?;
    let owned_cookies = live.web.as_ref().map(WebLogin::cookie_names);
    let asked = (
        request.headers(),
        owned_cookies.as_ref().map_or(&[][..], |n| &n[..]),
    );
    answer(live, question, session.as_ref(), asked, &mut cx.handled)
}

pub(crate) const FORWARDED_METHOD: &str = "x-forwarded-method";
pub(crate) const FORWARDED_URI: &str = "x-forwarded-uri";

/// The request the front proxy is asking about.
pub(crate) struct Question<'l> {
    /// What it needs (`access`): the proxy port's answer.
    pub access: Access<'l>,
    /// Its method and canonical path, for the log line.
    pub asked: (Method, String),
}

impl<'l> Question<'l> {
    /// `envoy`: the original path of Envoy's form, `None` for the
    /// `X-Forwarded-*` form.
    pub(crate) fn of(
        live: &'l Live,
        request: &Request<RequestBody>,
        envoy: Option<&str>,
    ) -> Result<Self, HttpError> {
        let (method, path) = asked(&live.routes, request.method(), envoy, request.headers())?;
        // Judged as the proxy port judges it: a path no upstream covers
        // has no answer there either, a rule decides the same.
        let access = Access::of(live, &method, &path, live.routes.is_public(&method, &path))?;
        Ok(Self {
            access,
            asked: (method, path),
        })
    }
}

/// The method and canonical path the front proxy asks about.
fn asked(
    routes: &Routes,
    method: &Method,
    envoy: Option<&str>,
    headers: &HeaderMap,
) -> Result<(Method, String), HttpError> {
    let (method, path) = match envoy {
        Some(original) => (method.clone(), original),
        None => {
            let method = match forwarded(headers, FORWARDED_METHOD)? {
                Some(text) => Method::from_bytes(text.as_bytes())
                    .ok()
                    .filter(|m| m.as_str().bytes().all(|b| b.is_ascii_alphabetic()))
                    .ok_or_else(|| bad(FORWARDED_METHOD, "is not an HTTP method"))?,
                None => method.clone(),
            };
            let path = match forwarded(headers, FORWARDED_URI)? {
                Some(uri) if uri.contains('#') => return Err(PathError::Fragment.into()),
                Some(uri) => forwarded_path(uri)
                    .ok_or_else(|| bad(FORWARDED_URI, "is not a path or an absolute URI"))?,
                None => "/",
            };
            (method, path)
        }
    };
    let path = as_written(path, routes.normalize())?;
    Ok((method, path.into_owned()))
}

/// The one value of `name` when present; a repeated or non-text one is a 400.
fn forwarded<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<Option<&'a str>, HttpError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(bad(name, "is repeated"));
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| bad(name, "is not text"))
}

fn bad(name: &str, why: &str) -> HttpError {
    HttpError::BadRequest(format!("the front proxy's `{name}` header {why}"))
}

/// The answer to `question`, asked with `asked`'s headers. `owned_cookies`:
/// the cookies wxgate owns (`[web]`), which the backend must not get.
pub(crate) fn answer(
    live: &Live,
    question: Question<'_>,
    session: Option<&Resolved>,
    (asked, owned_cookies): (&HeaderMap, &[&str]),
    handled: &mut Handled,
) -> Result<Response<Body>, HttpError> {
    let outcome = &mut handled.outcome;
    let access = &question.access;
    let mut response = match (session, access.public) {
        (Some(session), public) => {
            handled.user = Some(session.user.clone());
            let (method, path) = &question.asked;
            access.admits(live, (method, path), &session.user)?;
            *outcome = if public {
                Outcome::Public
            } else {
                Outcome::Authenticated
            };
            let mut response = response::empty(StatusCode::OK);
            live.identity.inject(response.headers_mut(), &session.user);
            // The front proxy copies it onto the request it forwards
            // (nginx `auth_request_set`, Traefik `authResponseHeaders`,
            // Envoy `allowed_upstream_headers`).
            if let Some(assertion) = &live.assertion {
                let token = assertion.token(session, access.upstream.index)?;
                response
                    .headers_mut()
                    .insert(assertion.header().clone(), token);
            }
            response
        }
        (None, true) => {
            *outcome = Outcome::Public;
            response::empty(StatusCode::OK)
        }
        (None, false) => return Err(HttpError::SessionInvalid),
    };
    handled.asked = Some(Box::new(question.asked));
    // An answer about one user must never be reused for another.
    response.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    pass_cookies(asked, owned_cookies, response.headers_mut());
    Ok(response)
}

/// Envoy's ext_authz removes the request headers this answer header names.
static ENVOY_REMOVE: HeaderName = HeaderName::from_static("x-envoy-auth-headers-to-remove");

/// The request's cookies without wxgate's, as `Cookie` on the answer, for
/// the front proxy to put on the request it forwards in place of the
/// client's (nginx `auth_request_set`, Traefik `authResponseHeaders`,
/// Envoy `allowed_upstream_headers`): in this mode only the front proxy
/// can keep wxgate's session id from the backend. None left: no `Cookie`
/// (nginx sends none, Traefik deletes the client's) and Envoy is told to
/// remove the client's.
fn pass_cookies(asked: &HeaderMap, owned: &[&str], answer: &mut HeaderMap) {
    if !asked.contains_key(COOKIE) {
        return;
    }
    match HeaderValue::from_maybe_shared(bytes::Bytes::from(cookie::others(asked, owned))) {
        Ok(value) if !value.is_empty() => {
            answer.insert(COOKIE, value);
        }
        _ => {
            answer.insert(&ENVOY_REMOVE, HeaderValue::from_static("cookie"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether the question is public; `Err(code)` when it is refused.
    fn public(
        method: &str,
        envoy: Option<&str>,
        forwarded: &[(&'static str, &[u8])],
    ) -> Result<bool, &'static str> {
        let mut headers = HeaderMap::new();
        for (name, value) in forwarded {
            headers.append(*name, HeaderValue::from_bytes(value).unwrap());
        }
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let config = crate::config::Config::parse(
            "[wechat]\nappid = \"wxapp\"\nsecret = \"s\"\n[upstream]\nurl = \"http://127.0.0.1:1\"\n\
             [routes]\npublic = [\"/public\", \"GET /api/products\"]\n",
            &|_| None,
        )
        .unwrap();
        let live = Live::new(&config, None, None);
        let (method, path) = asked(&live.routes, &method, envoy, &headers).map_err(|e| e.code())?;
        let routes_public = live.routes.is_public(&method, &path);
        Access::of(&live, &method, &path, routes_public)
            .map(|access| access.public)
            .map_err(|e| e.code())
    }

    fn uri(uri: &str) -> Result<bool, &'static str> {
        public("GET", None, &[(FORWARDED_URI, uri.as_bytes())])
    }

    #[test]
    fn forwarded_uri_table() {
        let cases = [
            ("/public/a", Ok(true)),
            ("/public/a?x=1", Ok(true)),
            ("/public/../admin", Err("path_ambiguous")),
            ("/admin/../public/a", Err("path_ambiguous")),
            ("/x/../public/a", Err("path_ambiguous")),
            ("/%70ublic/a", Err("path_ambiguous")),
            ("//public/a", Err("path_ambiguous")),
            ("/public/./a", Err("path_ambiguous")),
            ("/public/%c3%a9", Ok(true)),
            ("/public/%2e%2e/admin", Err("path_ambiguous")),
            ("/public/%2E%2E/admin?x", Err("path_ambiguous")),
            ("/public/..%2fadmin", Err("path_ambiguous")),
            ("/admin/..;/public", Err("path_ambiguous")),
            ("/public/../../admin", Err("path_ambiguous")),
            ("/admin?/public", Ok(false)),
            ("/admin?next=/public/a", Ok(false)),
            ("/admin#/public", Err("path_ambiguous")),
            ("/public#/../admin", Err("path_ambiguous")),
            ("https://evil.example/public/a", Ok(true)),
            ("public/a", Err("bad_request")),
            ("", Err("bad_request")),
        ];
        for (forwarded, want) in cases {
            assert_eq!(uri(forwarded), want, "{forwarded}");
        }
    }

    #[test]
    fn method_comes_from_the_forwarded_header() {
        let uri = (FORWARDED_URI, &b"/api/products/1"[..]);
        assert_eq!(
            public("POST", None, &[uri, (FORWARDED_METHOD, b"GET")]),
            Ok(true)
        );
        assert_eq!(
            public("GET", None, &[uri, (FORWARDED_METHOD, b"DELETE")]),
            Ok(false)
        );
        // Without the header, the request's own method.
        assert_eq!(public("GET", None, &[uri]), Ok(true));
    }

    #[test]
    fn ambiguous_forwarded_headers_are_refused() {
        let uri = (FORWARDED_URI, &b"/api/products/1"[..]);
        let cases: [&[(&'static str, &[u8])]; 5] = [
            &[uri, (FORWARDED_METHOD, b"G E T")],
            &[uri, (FORWARDED_METHOD, b"GET"), (FORWARDED_METHOD, b"GET")],
            &[uri, (FORWARDED_METHOD, b"GE\xffT")],
            &[uri, uri],
            &[(FORWARDED_URI, b"/api/products/\xff")],
        ];
        for headers in cases {
            assert_eq!(
                public("POST", None, headers),
                Err("bad_request"),
                "{headers:?}"
            );
        }
    }

    #[test]
    fn envoy_path_prefix_form() {
        let envoy = |method, path| public(method, Some(path), &[]);
        assert_eq!(envoy("GET", "/public/a"), Ok(true));
        assert_eq!(envoy("GET", "/admin"), Ok(false));
        assert_eq!(envoy("GET", "/public/../admin"), Err("path_ambiguous"));
        assert_eq!(envoy("GET", "/vault/../public/a"), Err("path_ambiguous"));
        assert_eq!(envoy("GET", "/public/%2e%2e/admin"), Err("path_ambiguous"));
        assert_eq!(envoy("GET", "/api/products"), Ok(true));
        assert_eq!(envoy("POST", "/api/products"), Ok(false));
        // A client's X-Forwarded-* never replaces what Envoy asked about.
        let forged = [
            (FORWARDED_URI, &b"/public/a"[..]),
            (FORWARDED_METHOD, &b"GET"[..]),
        ];
        assert_eq!(public("GET", Some("/admin"), &forged), Ok(false));
        assert_eq!(public("POST", Some("/api/products"), &forged), Ok(false));
    }
}
