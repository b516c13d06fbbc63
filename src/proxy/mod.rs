//! Forwarding a cleaned request to the upstream and streaming the answer back.
//!
//! Bodies are never buffered: hyper streams `Incoming` frames through with
//! backpressure both ways, so a 1 GiB upload runs in constant memory.
//! Connections to the upstream are pooled and kept alive. The timeout runs
//! from the end of the request body to the response head: neither a long
//! upload nor a long download is cut off.
//! HTTP upgrades (WebSocket) are spliced into a byte tunnel once the
//! upstream answers `101 Switching Protocols`.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, Entry, HeaderValue};
use http::uri::{PathAndQuery, Uri};
use http::{Request, Response, StatusCode, Version};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use ipnet::IpNet;

use crate::config::UpstreamConfig;
use crate::telemetry::{self, KeyValue, Span, SpanKind};
use crate::wire::body_end;
use crate::wire::body_idle::RequestBody;
use crate::wire::connection_timer::ConnectionTimer;
use crate::wire::header::WXGATE_ERROR;
use crate::wire::hop_by_hop;

mod forwarded;
mod pool;
mod ready_check;
mod routing;
pub use forwarded::UntrustedForwarded;
use pool::Pool;
pub use pool::ResponseBody;
pub use routing::{UpstreamRoute, UpstreamRoutes};

/// Why a request was not forwarded, or its answer not received.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)] // each variant's `#[error]` text describes it
pub enum ProxyError {
    #[error("upstream did not answer within {0:?}")]
    Timeout(Duration),
    /// The client's body went silent while it was being sent on.
    #[error("the request body sent nothing for {0:?}")]
    BodyIdle(Duration),
    /// The client's body could not be read (bad chunked framing).
    #[error("malformed request body: {0}")]
    ClientBody(String),
    #[error("upstream unavailable: {0}")]
    Unavailable(String),
    /// The path, rewritten for the upstream, is not a valid request target.
    #[error("the request path is not valid")]
    BadPath,
}

/// What the proxy keeps per accepted connection: the far end, whether it
/// is a trusted proxy, its `X-Forwarded-For` entry and the port it reached
/// formatted once rather than once per request, and the timer its requests
/// share for the upstream's answer.
pub struct Peer {
    addr: IpAddr,
    /// `addr` as a header value.
    ip: HeaderValue,
    /// The port the peer connected to, as a header value.
    port: HeaderValue,
    /// `server.trusted_proxies`, when the peer is one of them.
    trusted: Option<Arc<[IpNet]>>,
    /// The listener is bound to a loopback address: only this host's
    /// processes connect (no ingress can be in front).
    loopback_listener: bool,
    /// It connected over TLS (`server.tls_cert_file`): `X-Forwarded-Proto: https`.
    tls: bool,
    upstream_timer: ConnectionTimer,
}

impl Peer {
    /// `addr` connected to `local`; `trusted_proxies` decide what its proxy
    /// headers are worth (`forwarded`).
    pub fn new(addr: SocketAddr, local: SocketAddr, trusted_proxies: &Arc<[IpNet]>) -> Self {
        // An IP address and a port always make valid header values.
        let ip = HeaderValue::from_maybe_shared(Bytes::from(addr.ip().to_string()))
            .unwrap_or(HeaderValue::from_static("unknown"));
        let trusted = trusted_proxies
            .iter()
            .any(|net| net.contains(&addr.ip()))
            .then(|| trusted_proxies.clone());
        Self {
            addr: addr.ip(),
            ip,
            port: HeaderValue::from(local.port()),
            trusted,
            loopback_listener: local.ip().is_loopback(),
            tls: false,
            upstream_timer: ConnectionTimer::default(),
        }
    }

    /// The same peer, connected over TLS.
    pub fn over_tls(self) -> Self {
        Self { tls: true, ..self }
    }

    /// Whether it connected over TLS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Whether the listener it came through is bound to a loopback address.
    pub fn on_loopback_listener(&self) -> bool {
        self.loopback_listener
    }

    /// The peer's address.
    pub fn ip(&self) -> IpAddr {
        self.addr
    }

    /// Whether the peer is a trusted proxy, whose proxy headers count.
    pub fn is_trusted(&self) -> bool {
        self.trusted.is_some()
    }
}

/// One backend: its URL and its connections.
pub struct Upstream {
    config: UpstreamConfig,
    pool: Pool,
}

impl Upstream {
    /// The backend `config` names.
    pub fn new(config: &UpstreamConfig) -> Self {
        Self {
            config: config.clone(),
            // The connect timeout is fixed at start-up (not reloadable).
            pool: Pool::new(
                config.address(),
                config.timeout,
                config.tls.as_ref().map(pool::Tls::new),
            ),
        }
    }

    /// `Ok` unless this upstream has a `ready_check` it fails (the reason).
    pub async fn ready(&self) -> Result<(), String> {
        match &self.config.ready_check {
            None => Ok(()),
            Some(check) => {
                ready_check::probe(
                    &self.config.address(),
                    self.config.authority.as_str(),
                    check,
                    self.pool.tls(),
                )
                .await
            }
        }
    }

    /// Its path prefix.
    pub fn prefix(&self) -> &str {
        &self.config.prefix
    }

    /// Whether every protocol an upgrade request offers is allowed
    /// (`upstream.upgrades`). `h2c` never is by default: behind a lenient
    /// backend it would let a client speak HTTP/2 past wxgate and set
    /// identity headers per stream.
    pub fn allows_upgrade(&self, headers: &http::HeaderMap) -> bool {
        let mut offered = hop_by_hop::upgrade_protocols(headers).peekable();
        offered.peek().is_some()
            && offered.all(|p| {
                self.config
                    .upgrades
                    .iter()
                    .any(|u| u.eq_ignore_ascii_case(p))
            })
    }

    /// The client span of one round trip to this upstream (nothing unless
    /// a trace records): method, server and the request's path, never its query.
    #[inline]
    pub fn span(&self, method: &http::Method, path: &str) -> Span {
        Span::start(SpanKind::Client, || {
            let authority = &self.config.authority;
            let mut attributes = vec![
                KeyValue::new("http.request.method", method.as_str().to_owned()),
                KeyValue::new("server.address", authority.host().to_owned()),
                KeyValue::new("url.path", telemetry::bounded(path)),
                KeyValue::new("network.protocol.version", "1.1"),
            ];
            let tls = self.config.tls.is_some();
            let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
            attributes.push(KeyValue::new("server.port", i64::from(port)));
            (method.as_str().to_owned().into(), attributes)
        })
    }

    /// Sends `request`, whose hop-by-hop and identity headers the caller has
    /// already settled, and returns the upstream's streaming response.
    pub async fn forward(
        &self,
        mut request: Request<RequestBody>,
        peer: &Peer,
        upgrade: bool,
        timeout: Duration,
    ) -> Result<Response<ResponseBody>, ProxyError> {
        self.retarget(&mut request, peer)?;
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
        let (mut parts, body) = request.into_parts();
        // The request's extensions (its request id) travel on to the
        // response, which then needs no map of its own: each map cost an
        // allocation per message. The upstream's client reads none of them.
        let extensions = std::mem::take(&mut parts.extensions);
        let (body, body_ended) = body_end::body_end(body);
        let mut sent = std::pin::pin!(self.pool.send(Request::from_parts(parts, body)));
        let (answered, request_sent) = match body_ended {
            None => (peer.upstream_timer.run(timeout, sent).await, true),
            // The upstream may answer before the body has ended (an early 413, say).
            Some(body_ended) => tokio::select! {
                biased;
                _ = body_ended => (peer.upstream_timer.run(timeout, &mut sent).await, true),
                answered = &mut sent => (Ok(answered), false),
            },
        };
        let answered = answered.map_err(|_| ProxyError::Timeout(timeout))?;
        let mut response = answered.map_err(|e| match e {
            pool::SendError::BodyIdle(timeout) => ProxyError::BodyIdle(timeout),
            pool::SendError::ClientBody(why) => ProxyError::ClientBody(why),
            e => ProxyError::Unavailable(e.to_string()),
        })?;
        pool::head_received(response.body_mut(), request_sent);
        let upstream_extensions = std::mem::replace(response.extensions_mut(), extensions);
        response.extensions_mut().extend(upstream_extensions);
        let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
        if switching {
            let Some(client) = client_upgrade else {
                return Err(ProxyError::Unavailable(
                    "the backend switched protocols without being asked to".to_owned(),
                ));
            };
            tokio::spawn(tunnel(client, hyper::upgrade::on(&mut response)));
        }
        hop_by_hop::strip(response.headers_mut(), switching);
        // Only wxgate marks its own answers: a backend's mark would make the
        // client take the backend's 401 for wxgate's and send the request again.
        // A pass comparing names costs less than the hashed remove that
        // almost every response would not need.
        if response.headers().keys().any(|name| *name == WXGATE_ERROR) {
            response.headers_mut().remove(&WXGATE_ERROR);
        }
        Ok(response)
    }

    /// Points the request at the upstream and adds the `X-Forwarded-*` headers.
    /// The request's path is canonical (the app made it so before routing).
    fn retarget(&self, request: &mut Request<RequestBody>, peer: &Peer) -> Result<(), ProxyError> {
        let original = std::mem::take(request.uri_mut()).into_parts();
        let path_and_query = original
            .path_and_query
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        // `[[upstreams]] strip_prefix`, then the upstream URL's own path;
        // the query's bytes as they came.
        let path_and_query = match routing::upstream_path(&self.config, path_and_query.path()) {
            Cow::Borrowed(path) if path.len() == path_and_query.path().len() => path_and_query,
            path => with_query(&path, path_and_query.query())?,
        };
        // Origin form (`/path?query`): what an HTTP/1.1 server expects.
        *request.uri_mut() = Uri::from(path_and_query);
        // The pool speaks HTTP/1.1, whatever version the client spoke.
        *request.version_mut() = Version::HTTP_11;
        // Entries, not contains-then-insert: each header is hashed once.
        let headers = request.headers_mut();
        let host = match (original.authority, headers.entry(header::HOST)) {
            // The target's authority is the one that counts, over a Host
            // header: HTTP/2's `:authority` (RFC 9113 §8.3.1), an absolute-form
            // HTTP/1.1 target (RFC 9112 §3.2.2). Read once, sent as Host.
            (Some(authority), entry) => {
                HeaderValue::from_str(authority.as_str())
                    .ok()
                    .map(|host| match entry {
                        Entry::Occupied(mut occupied) => {
                            occupied.insert(host.clone());
                            host
                        }
                        Entry::Vacant(vacant) => vacant.insert(host).clone(),
                    })
            }
            (None, Entry::Occupied(host)) => Some(host.get().clone()),
            // No Host (HTTP/1.0 allows that): the upstream's.
            (None, Entry::Vacant(vacant)) => HeaderValue::from_str(self.config.authority.as_str())
                .ok()
                .map(|host| vacant.insert(host).clone()),
        };

        forwarded::set(headers, peer, host);
        Ok(())
    }
}

/// Ends an upstream span with what came back: a client span's 4xx and
/// 5xx are errors (OpenTelemetry's HTTP conventions).
pub fn answered<B>(span: &Span, result: &Result<Response<B>, ProxyError>) {
    if !span.records() {
        return;
    }
    match result {
        Ok(response) => {
            let status = response.status().as_u16();
            span.set(KeyValue::new(
                "http.response.status_code",
                i64::from(status),
            ));
            if status >= 400 {
                span.fail(status.to_string());
            }
        }
        Err(e) => span.fail(match e {
            ProxyError::Timeout(_) => "timeout",
            ProxyError::BodyIdle(_) | ProxyError::ClientBody(_) => "client_body",
            ProxyError::Unavailable(_) => "unavailable",
            ProxyError::BadPath => "bad_path",
        }),
    }
}

/// `path` with `query`'s bytes as they came: `/a` + `x=1` → `/a?x=1`.
pub(crate) fn with_query(path: &str, query: Option<&str>) -> Result<PathAndQuery, ProxyError> {
    let text = match query {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    PathAndQuery::try_from(text).map_err(|_| ProxyError::BadPath)
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
