//! The admin listener: `/metrics`, `/healthz`, `/readyz`, and the operator
//! actions on users (`users`), on a port of their own.
//!
//! Kept off the proxy port so the Kubernetes Service (which targets the
//! proxy port only) never exposes metrics or user actions to clients, and
//! so probes and scrapes never queue behind client traffic. It keeps
//! answering while the proxy drains (`/readyz` then says 503 "draining")
//! and stops after.

mod apps;
mod users;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::app::App;
use crate::metrics::CONTENT_TYPE;
use crate::response::HttpError;
use crate::response::{self, Body};

/// Serves `listener` until `stop` turns true.
pub async fn serve(app: Arc<App>, listener: TcpListener, mut stop: watch::Receiver<bool>) {
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let app = app.clone();
        let service = service_fn(move |request| {
            let app = app.clone();
            async move { Ok::<_, Infallible>(respond(&app, request).await) }
        });
        tokio::spawn(async move {
            let served = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(e) = served {
                tracing::debug!(error = %e, "admin connection ended with an error");
            }
        });
    }
}

async fn respond(app: &App, request: Request<Incoming>) -> Response<Body> {
    if let Some(rest) = request.uri().path().strip_prefix("/apps/") {
        let rest = rest.to_owned();
        return match apps::handle(app, request, &rest).await {
            Ok(response) => response,
            Err(e) => e.into_response(),
        };
    }
    if let Some(rest) = request.uri().path().strip_prefix("/users/") {
        return match users::handle(app, &request, rest).await {
            Ok(response) => response,
            Err(e) => e.into_response(),
        };
    }
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        return HttpError::MethodNotAllowed { allow: "GET" }.into_response();
    }
    match request.uri().path() {
        "/metrics" => {
            let mut response = response::empty(StatusCode::OK);
            *response.body_mut() = Either::Right(Full::new(Bytes::from(app.metrics_text().await)));
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
            response
        }
        "/healthz" => app.liveness(),
        "/jwks.json" => match app.jwks() {
            Some(response) => response,
            None => HttpError::NotFound(
                "wxgate signs no identity assertions ([assertion] is not configured)",
            )
            .into_response(),
        },
        "/readyz" => app.readiness().await,
        _ => HttpError::NotFound(
            "the admin port serves /metrics, /healthz, /readyz, /jwks.json, /users/{openid} \
             and /apps/{appid}/access_token",
        )
        .into_response(),
    }
}

/// The operator actions (and the access token) need the admin token when
/// one is set; without one they answer only on a loopback admin address.
pub(super) fn authorize(app: &App, headers: &HeaderMap) -> Result<(), HttpError> {
    let admin = app.admin();
    let Some(token) = &admin.token else {
        return if admin.actions_open() {
            Ok(())
        } else {
            Err(HttpError::AdminTokenRequired)
        };
    };
    let offered = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Digests of equal length, compared in constant time: neither the
    // token's bytes nor its length leak through timing.
    let matches: bool = Sha256::digest(offered.as_bytes())
        .ct_eq(&Sha256::digest(token.expose().as_bytes()))
        .into();
    if matches {
        Ok(())
    } else {
        crate::audit::Event {
            action: "admin",
            result: HttpError::AdminUnauthorized.code(),
            ..Default::default()
        }
        .record();
        Err(HttpError::AdminUnauthorized)
    }
}
