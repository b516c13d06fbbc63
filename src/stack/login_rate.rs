//! The `/login` rate limit as a layer: `POST` on the login route (and
//! `GET` on the browser login's start route) is counted per client IP against `endpoints::login_limit::LoginLimiter`
//! (its module says why and how) before it reaches the app; past the limit, 429 `login_rate_limited`
//! with `Retry-After`, and no call to WeChat.

use std::net::IpAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::{Either, Ready, ready};
use http::{Method, Request, Response};
use tower::{Layer, Service};

use super::client_ip::client_ip;
use crate::app::App;
use crate::metrics::Outcome;
use crate::response::{Body, Handled, HttpError};

/// Applies the app's `LoginLimiter` to `POST` on the login route.
#[derive(Clone)]
pub struct LoginRateLayer {
    pub app: Arc<App>,
    pub peer: IpAddr,
}

impl<S> Layer<S> for LoginRateLayer {
    type Service = LoginRate<S>;

    fn layer(&self, inner: S) -> LoginRate<S> {
        LoginRate {
            inner,
            app: self.app.clone(),
            peer: self.peer,
        }
    }
}

#[derive(Clone)]
pub struct LoginRate<S> {
    inner: S,
    app: Arc<App>,
    peer: IpAddr,
}

impl<S, B> Service<Request<B>> for LoginRate<S>
where
    S: Service<Request<B>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Either<Ready<Result<Response<Body>, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let path = request.uri().path();
        let limited = match *request.method() {
            Method::POST => self.app.is_login(path),
            Method::GET => self.app.is_web_start(path),
            _ => false,
        };
        if limited {
            let ip = client_ip(self.peer, request.headers(), self.app.trusted_proxies());
            if let Err(retry_after) = self.app.login_limiter().check(ip) {
                let mut response = HttpError::LoginRateLimited { retry_after }.into_response();
                response
                    .extensions_mut()
                    .insert(Handled::from(Outcome::Login));
                return Either::Left(ready(Ok(response)));
            }
        }
        Either::Right(self.inner.call(request))
    }
}
