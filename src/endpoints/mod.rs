//! wxgate's own routes, as one table: each of its [`Route`]s is an
//! [`Endpoint`] that states the method it answers and what it needs of the
//! caller (nothing, a login-rate token, a mini-program session; a route
//! that needs any session, such as the rules of the identity issue, adds
//! that need beside them). [`Endpoint::call`] runs that preamble once, in one order, then
//! the endpoint: one function of `(&mut Context, Caller, Request)`
//! (`context`), handed the caller the preamble found.
//! The proxied routes (public, protected) are the app's, not here.
//!
//! A new route (the access token, JS-SDK signatures…) is a row below and
//! one function of that signature, as the JWKS's is.

use std::future::Future;
use std::pin::Pin;

use http::{Method, Request, Response};

use crate::domain::route::Route;
use crate::metrics::Outcome;
use crate::response::{Audited, Body, HttpError};
use crate::wire::body_idle::RequestBody;

pub(crate) mod access;
pub(crate) mod context;
pub(crate) mod credential;
pub(crate) mod decrypt;
pub(crate) mod forward_auth;
pub(crate) mod jssdk;
pub(crate) mod jwks;
pub(crate) mod login;
pub(crate) mod login_limit;
pub(crate) mod logout;
pub(crate) mod phone;
pub(crate) mod session_check;
pub(crate) mod web_login;
pub(crate) mod web_pages;

use context::{Caller, Context};

/// The methods an endpoint answers; any other is a 405 naming the first.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Verb {
    Post,
    Get,
    /// A page a browser opens: `GET` or `HEAD`.
    Page,
    /// The endpoint judges the method itself (forward-auth asks about any).
    Any,
}

impl Verb {
    pub(crate) fn admits(self, method: &Method) -> Result<(), HttpError> {
        let (allow, admitted) = match self {
            Self::Any => return Ok(()),
            Self::Post => ("POST", *method == Method::POST),
            Self::Get => ("GET", *method == Method::GET),
            Self::Page => ("GET", matches!(*method, Method::GET | Method::HEAD)),
        };
        if admitted {
            Ok(())
        } else {
            Err(HttpError::MethodNotAllowed { allow })
        }
    }
}

/// What an endpoint needs of the caller before it runs.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Needs {
    Nothing,
    /// A token of the client's login rate limit (each such request costs
    /// a WeChat call made with the app's credentials): [`Caller::Client`].
    LoginToken,
    /// A valid session of a mini-program ([`Caller::Session`]): only its
    /// session_key serves the route.
    MiniProgram,
}

/// An endpoint's future, boxed: the WeChat calls inside them are large,
/// and every proxied request's future would otherwise be as large.
pub(crate) type Answering<'c> =
    Pin<Box<dyn Future<Output = Result<Response<Body>, HttpError>> + Send + 'c>>;

/// Every endpoint's signature.
pub(crate) type Run =
    for<'c, 'a> fn(&'c mut Context<'a>, Caller, Request<RequestBody>) -> Answering<'c>;

/// One of wxgate's own routes.
pub(crate) struct Endpoint {
    pub verb: Verb,
    pub needs: Needs,
    /// What the log line calls the request from the start, answered or
    /// refused (a refused login is still a login).
    pub outcome: Option<Outcome>,
    /// `[web]`'s: 404 when it is not configured.
    pub web: bool,
    /// A browser's: errors are answered as a plain page, not JSON.
    pub page: bool,
    /// The audit trail's action for this route (`crate::audit`), answered
    /// or refused.
    pub audit: Option<&'static str>,
    pub run: Run,
}

/// The endpoint of one of wxgate's own routes; `None` for the proxied ones.
pub(crate) fn endpoint(route: Route) -> Option<&'static Endpoint> {
    use Needs::*;
    use Verb::*;
    static LOGIN: Endpoint = audited(
        "login",
        own(Post, LoginToken, Some(Outcome::Login), |cx, c, r| {
            Box::pin(login::handle(cx, c, r))
        }),
    );
    static LOGOUT: Endpoint = audited(
        "logout",
        own(Post, Nothing, Some(Outcome::Logout), |cx, c, r| {
            Box::pin(logout::handle(cx, c, r))
        }),
    );
    static DECRYPT: Endpoint = audited(
        "decrypt",
        own(Post, MiniProgram, None, |cx, c, r| {
            Box::pin(decrypt::handle(cx, c, r))
        }),
    );
    static PHONE: Endpoint = audited(
        "phone_number",
        own(Post, MiniProgram, None, |cx, c, r| {
            Box::pin(phone::handle(cx, c, r))
        }),
    );
    static SESSION_CHECK: Endpoint = own(Get, MiniProgram, None, |cx, c, r| {
        Box::pin(session_check::handle(cx, c, r))
    });
    static FORWARD_AUTH: Endpoint = own(Any, Nothing, None, |cx, c, r| {
        Box::pin(forward_auth::handle(cx, c, r))
    });
    static WEB_START: Endpoint = audited(
        "browser_login_start",
        browser(LoginToken, Some(Outcome::LoginStart), |cx, c, r| {
            Box::pin(web_login::start(cx, c, r))
        }),
    );
    static WEB_CALLBACK: Endpoint = audited(
        "browser_login",
        browser(Nothing, Some(Outcome::Login), |cx, c, r| {
            Box::pin(web_login::callback(cx, c, r))
        }),
    );
    static WEB_MOCK: Endpoint = browser(Nothing, Some(Outcome::LoginStart), |cx, c, r| {
        Box::pin(web_login::mock_page(cx, c, r))
    });
    static JWKS: Endpoint = own(Page, Nothing, Some(Outcome::Public), |cx, c, r| {
        Box::pin(jwks::handle(cx, c, r))
    });
    // `[web]`'s, answered in JSON (an H5 page's script asks), rate
    // limited like a login: a ticket fetched costs WeChat quota.
    static JSSDK: Endpoint = Endpoint {
        web: true,
        ..own(Get, LoginToken, None, |cx, c, r| {
            Box::pin(jssdk::handle(cx, c, r))
        })
    };
    static RESERVED: Endpoint = own(Any, Nothing, None, |_, _, _| Box::pin(reserved()));
    Some(match route {
        Route::Login => &LOGIN,
        Route::Logout => &LOGOUT,
        Route::Decrypt => &DECRYPT,
        Route::Phone => &PHONE,
        Route::SessionCheck => &SESSION_CHECK,
        Route::ForwardAuth => &FORWARD_AUTH,
        Route::WebStart => &WEB_START,
        Route::WebCallback => &WEB_CALLBACK,
        Route::WebMock => &WEB_MOCK,
        Route::Jwks => &JWKS,
        Route::Jssdk => &JSSDK,
        Route::Reserved => &RESERVED,
        Route::Public | Route::Protected => return None,
    })
}

const fn own(verb: Verb, needs: Needs, outcome: Option<Outcome>, run: Run) -> Endpoint {
    Endpoint {
        verb,
        needs,
        outcome,
        web: false,
        page: false,
        audit: None,
        run,
    }
}

/// `endpoint`, with an audit event of `action` for each request.
const fn audited(action: &'static str, endpoint: Endpoint) -> Endpoint {
    Endpoint {
        audit: Some(action),
        ..endpoint
    }
}

/// A route of the browser login (`[web]`): a page, `GET` or `HEAD`.
const fn browser(needs: Needs, outcome: Option<Outcome>, run: Run) -> Endpoint {
    Endpoint {
        verb: Verb::Page,
        needs,
        outcome,
        web: true,
        page: true,
        audit: None,
        run,
    }
}

impl Endpoint {
    /// The preamble, then the endpoint. The order is the answer's: the
    /// log's outcome first (a refused login counts as one), a route of an
    /// unconfigured `[web]` is not there, then the method, then the caller.
    pub(crate) async fn call(
        &self,
        cx: &mut Context<'_>,
        request: Request<RequestBody>,
    ) -> Result<Response<Body>, HttpError> {
        if let Some(outcome) = self.outcome {
            cx.handled.outcome = outcome;
        }
        if let Some(action) = self.audit {
            let client_ip = cx.client_of(request.headers());
            cx.handled.audit = Some(Box::new(Audited { action, client_ip }));
        }
        if self.web {
            cx.web()?;
        }
        cx.page = self.page.then(|| web_pages::Lang::of(request.headers()));
        self.verb.admits(request.method())?;
        let caller = match self.needs {
            Needs::Nothing => Caller::Anyone,
            Needs::LoginToken => Caller::Client(cx.limit_login(&request)?),
            Needs::MiniProgram => {
                let session = cx.authenticate(&request).await?;
                cx.mini_program(&session)?;
                Caller::Session(session)
            }
        };
        (self.run)(cx, caller, request).await
    }
}

async fn reserved() -> Result<Response<Body>, HttpError> {
    Err(HttpError::NotFound(
        "nothing here: this prefix is reserved for wxgate's own routes \
         (decrypt, phone, session, auth, jwks.json, jssdk)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_admit_their_methods_and_name_the_first_in_allow() {
        let cases = [
            (Verb::Post, Method::POST, None),
            (Verb::Post, Method::GET, Some("POST")),
            (Verb::Get, Method::GET, None),
            (Verb::Get, Method::HEAD, Some("GET")),
            (Verb::Page, Method::HEAD, None),
            (Verb::Page, Method::POST, Some("GET")),
            (Verb::Any, Method::DELETE, None),
        ];
        for (verb, method, refused) in cases {
            match (verb.admits(&method), refused) {
                (Ok(()), None) => {}
                (Err(HttpError::MethodNotAllowed { allow }), Some(expected)) => {
                    assert_eq!(allow, expected, "{verb:?} {method}");
                }
                (other, _) => panic!("{verb:?} {method}: {other:?}"),
            }
        }
    }

    #[test]
    fn every_own_route_has_an_endpoint_and_the_proxied_none() {
        use Route::*;
        for route in [
            Login,
            Logout,
            Decrypt,
            Phone,
            SessionCheck,
            ForwardAuth,
            WebStart,
            WebCallback,
            WebMock,
            Jwks,
            Jssdk,
            Reserved,
        ] {
            assert!(endpoint(route).is_some(), "{route:?}");
        }
        assert!(endpoint(Public).is_none() && endpoint(Protected).is_none());
        // The browser's routes answer errors as pages, the others as JSON.
        assert!(endpoint(WebCallback).is_some_and(|e| e.page && e.web));
        assert!(endpoint(Login).is_some_and(|e| !e.page && !e.web));
    }
}
