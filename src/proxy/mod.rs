//! Forwarding a cleaned request to the upstream and streaming the answer back.
//!
//! Bodies are never buffered: hyper streams `Incoming` frames through with
//! backpressure both ways, so a 1 GiB upload runs in constant memory.
//! Connections to the upstream are pooled and kept alive. The timeout runs
//! from the end of the request body to the response head: neither a long
//! upload nor a long download is cut off.
//! HTTP upgrades (WebSocket) are spliced into a byte tunnel once the
//! upstream answers `101 Switching Protocols`.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::uri::{PathAndQuery, Uri};
use http::{Request, Response, StatusCode, Version};
use http_body_util::Either;
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use crate::body::Body;
use crate::config::UpstreamConfig;
use crate::error::{HttpError, describe};
use crate::hop_by_hop;

mod body_end;
use body_end::BodyEnd;

static X_FORWARDED_FOR: header::HeaderName = header::HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: header::HeaderName = header::HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: header::HeaderName = header::HeaderName::from_static("x-forwarded-host");

type UpstreamClient = Client<HttpConnector, BodyEnd>;

thread_local! {
    /// Each thread's own upstream pools, one per `Upstream` (by id). A
    /// pooled connection's driver task runs on the thread that opened it;
    /// keeping pools per thread means a request never waits on a task that
    /// another thread must be woken to run.
    static CLIENTS: RefCell<Vec<(u64, UpstreamClient)>> = const { RefCell::new(Vec::new()) };
}

pub struct Upstream {
    id: u64,
    config: UpstreamConfig,
}

impl Upstream {
    pub fn new(config: &UpstreamConfig) -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            config: config.clone(),
        }
    }

    /// This thread's connection pool to the upstream.
    fn client(&self) -> UpstreamClient {
        CLIENTS.with_borrow_mut(|clients| {
            if let Some((_, client)) = clients.iter().find(|(id, _)| *id == self.id) {
                return client.clone();
            }
            let mut connector = HttpConnector::new();
            connector.set_nodelay(true);
            connector.set_connect_timeout(Some(self.config.timeout));
            let client = Client::builder(TokioExecutor::new())
                .timer(TokioTimer::new())
                .pool_timer(TokioTimer::new())
                .pool_idle_timeout(Duration::from_secs(90))
                .build(connector);
            clients.push((self.id, client.clone()));
            client
        })
    }

    /// Sends `request`, whose hop-by-hop and identity headers the caller has
    /// already settled, and returns the upstream's streaming response.
    pub async fn forward(
        &self,
        mut request: Request<Incoming>,
        peer: SocketAddr,
        upgrade: bool,
        timeout: Duration,
    ) -> Result<Response<Body>, HttpError> {
        self.retarget(&mut request, peer)?;
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
        let (parts, body) = request.into_parts();
        let (body, body_ended) = BodyEnd::new(body);
        let sent = self.client().request(Request::from_parts(parts, body));
        tokio::pin!(sent);
        // The upstream may answer before the body has ended (an early 413, say).
        let answered = tokio::select! {
            answered = &mut sent => answered,
            _ = body_ended => match tokio::time::timeout(timeout, &mut sent).await {
                Ok(answered) => answered,
                Err(_) => return Err(HttpError::UpstreamTimeout(timeout)),
            },
        };
        let mut response = answered.map_err(|e| HttpError::UpstreamUnavailable(describe(&e)))?;
        let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
        if switching {
            let Some(client) = client_upgrade else {
                return Err(HttpError::UpstreamUnavailable(
                    "the backend switched protocols without being asked to".to_owned(),
                ));
            };
            tokio::spawn(tunnel(client, hyper::upgrade::on(&mut response)));
        }
        hop_by_hop::strip(response.headers_mut(), switching);
        Ok(response.map(Either::Left))
    }

    /// Points the request at the upstream and adds the `X-Forwarded-*` headers.
    fn retarget(&self, request: &mut Request<Incoming>, peer: SocketAddr) -> Result<(), HttpError> {
        let original = request.uri().clone();
        let path_and_query = original.path_and_query().map_or("/", PathAndQuery::as_str);
        let path_and_query = if self.config.path_prefix.is_empty() {
            original
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/"))
        } else {
            PathAndQuery::try_from(format!("{}{path_and_query}", self.config.path_prefix))
                .map_err(|_| HttpError::BadRequest("the request path is not valid".to_owned()))?
        };
        *request.uri_mut() = Uri::builder()
            .scheme(self.config.scheme.clone())
            .authority(self.config.authority.clone())
            .path_and_query(path_and_query)
            .build()
            .map_err(|_| HttpError::BadRequest("the request path is not valid".to_owned()))?;
        // An HTTP/2 client sends :authority instead of Host; the upstream
        // speaks HTTP/1.1 and should still see the host the client asked for.
        *request.version_mut() = Version::HTTP_11;
        let headers = request.headers_mut();
        if !headers.contains_key(header::HOST)
            && let Some(authority) = original.authority()
            && let Ok(host) = HeaderValue::from_str(authority.as_str())
        {
            headers.insert(header::HOST, host);
        }

        // X-Forwarded-For is appended to, as nginx's $proxy_add_x_forwarded_for
        // does; Proto and Host set by a proxy in front of wxgate are kept.
        let ip = peer.ip().to_string();
        let forwarded_for = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
            Some(prior) => format!("{prior}, {ip}"),
            None => ip,
        };
        if let Ok(value) = HeaderValue::from_str(&forwarded_for) {
            headers.insert(X_FORWARDED_FOR.clone(), value);
        }
        if !headers.contains_key(&X_FORWARDED_PROTO) {
            headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
        }
        if !headers.contains_key(&X_FORWARDED_HOST)
            && let Some(host) = headers.get(header::HOST).cloned()
        {
            headers.insert(X_FORWARDED_HOST.clone(), host);
        }
        Ok(())
    }
}

/// Copies bytes both ways between an upgraded client and upstream connection.
async fn tunnel(client: OnUpgrade, upstream: OnUpgrade) {
    match tokio::try_join!(client, upstream) {
        Ok((client, upstream)) => {
            let (mut client, mut upstream) = (TokioIo::new(client), TokioIo::new(upstream));
            if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
                tracing::debug!(error = %e, "upgraded connection ended with an error");
            }
        }
        Err(e) => tracing::debug!(error = %e, "upgrade failed"),
    }
}
