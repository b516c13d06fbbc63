//! Accepting connections and shutting down gracefully.
//!
//! Each connection is served by hyper (HTTP/1.1 with upgrades), through
//! the tower stack of `stack` (one per connection, sharing its worker's
//! bound on requests in flight), and watched for the drain signal. When the shutdown future completes
//! (SIGTERM or SIGINT in `main`), the listeners close at once, `/readyz`
//! turns 503, idle keep-alive connections are closed, and in-flight requests
//! get up to `drain_timeout` to finish before `run` returns.
//!
//! `[server] threads` listeners share the port (`SO_REUSEPORT`);
//! [`Server::run_per_core`], which `main` calls, serves each on its own thread. The admin listener runs
//! on the caller's runtime until the drain is over. `SO_REUSEPORT` would
//! also let a second process (another wxgate started by mistake) join the
//! port and take half its connections, so the port is first probed
//! without it: a port anyone already listens on fails start-up.
//!
//! Every port is bound in [`Server::bind`], so a port in use fails start-up
//! before anything serves.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

pub mod admin;
pub mod check_policy;
mod connection;
mod demo;
pub mod memory_limit;
pub mod reload;
pub mod tls;

use crate::app::App;
use crate::config::{Config, WechatMode};
use crate::proxy::Peer;
use crate::stack::{self, PerConnection, Worker};
use connection::Protocols;
use reload::Reloader;

#[derive(Debug, thiserror::Error)]
/// Why the server did not start.
#[allow(missing_docs)] // each variant's `#[error]` text describes it
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the demo echo upstream on {addr}: {source}")]
    Demo {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot set up TLS: {0}")]
    Tls(#[from] rustls::Error),
    #[error(transparent)]
    App(#[from] crate::app::BuildError),
}

/// wxgate, bound and ready to serve.
pub struct Server {
    listeners: Vec<TcpListener>,
    admin: TcpListener,
    app: Arc<App>,
    config: Config,
    /// With `server.tls_cert_file`: the handshakes, and the certificate a
    /// reload swaps.
    tls: Option<(TlsAcceptor, Arc<tls::Certificates>)>,
}

impl Server {
    /// Builds everything and binds the port: one `SO_REUSEPORT` listener per
    /// worker thread, so the kernel spreads connections across threads.
    /// `config` is already validated.
    pub async fn bind(config: &Config) -> Result<Self, StartError> {
        if config.apps.iter().any(|app| app.mode == WechatMode::Mock) {
            tracing::warn!(
                "wechat.mode = \"mock\": ANY code logs in, as a user derived from the code. \
                 This is for trying wxgate out; set mode = \"live\" with your AppID and secret \
                 before real users reach it"
            );
        }
        let app = Arc::new(App::new(config)?);
        if config.demo_echo_upstream {
            for addr in config.upstreams.iter().filter_map(|u| u.socket_addr()) {
                demo::spawn(addr)
                    .await
                    .map_err(|source| StartError::Demo { addr, source })?;
                tracing::info!(%addr, "demo echo upstream listening");
            }
        }
        let mut addr = exclusive_port(config.server.listen).map_err(|source| StartError::Bind {
            addr: config.server.listen,
            source,
        })?;
        let mut listeners = Vec::with_capacity(config.server.threads);
        for _ in 0..config.server.threads {
            let listener =
                reuse_port_listener(addr).map_err(|source| StartError::Bind { addr, source })?;
            // With port 0 the first bind picks the port; the others share it.
            addr = listener
                .local_addr()
                .map_err(|source| StartError::Bind { addr, source })?;
            listeners.push(listener);
        }
        let admin_addr = config.admin.listen;
        let admin = TcpListener::bind(admin_addr)
            .await
            .map_err(|source| StartError::Bind {
                addr: admin_addr,
                source,
            })?;
        let tls = config.server.tls.as_ref().map(tls::acceptor).transpose()?;
        Ok(Self {
            listeners,
            admin,
            app,
            config: config.clone(),
            tls,
        })
    }

    /// The admin listener's address.
    pub fn admin_addr(&self) -> std::io::Result<SocketAddr> {
        self.admin.local_addr()
    }

    /// Applies new configs to this server (SIGHUP in `main`).
    pub fn reloader(&self) -> Reloader {
        let certificates = self
            .tls
            .as_ref()
            .map(|(_, certificates)| certificates.clone());
        Reloader::new(self.app.clone(), self.config.clone(), certificates)
    }

    /// The proxy listener's address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match self.listeners.first() {
            Some(listener) => listener.local_addr(),
            None => Err(std::io::Error::other("no listener")),
        }
    }

    /// Serves every listener on the current runtime until `shutdown`
    /// completes, then drains. (Tests, and callers that bring a runtime.)
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let (stop, stopped) = watch::channel(false);
        let stop_admin = begin(&self.app, self.admin);
        let serving: Vec<_> = self
            .listeners
            .into_iter()
            .map(|listener| {
                let acceptor = self.tls.as_ref().map(|(acceptor, _)| acceptor.clone());
                tokio::spawn(serve(self.app.clone(), listener, acceptor, stopped.clone()))
            })
            .collect();
        shutdown.await;
        self.app.start_draining();
        let _ = stop.send(true);
        for task in serving {
            let _ = task.await;
        }
        let _ = stop_admin.send(true);
        self.app.stop_tracing().await;
    }

    /// Thread per core, as Envoy and nginx run: each listener is served by
    /// its own thread with a single-threaded runtime, so a request, its
    /// connection and its upstream connection never wake another thread.
    /// The calling thread serves the first listener. Shared state (sessions,
    /// logins, WeChat and Redis clients) lives in one `App`.
    pub async fn run_per_core(self, shutdown: impl Future<Output = ()>) {
        let (stop, stopped) = watch::channel(false);
        let stop_admin = begin(&self.app, self.admin);
        let mut listeners = self.listeners.into_iter();
        let Some(first) = listeners.next() else {
            return;
        };
        let mut threads = Vec::new();
        for (i, listener) in listeners.enumerate() {
            let (app, stopped) = (self.app.clone(), stopped.clone());
            let acceptor = self.tls.as_ref().map(|(acceptor, _)| acceptor.clone());
            let listener = match listener.into_std() {
                Ok(listener) => listener,
                Err(e) => {
                    tracing::error!(error = %e, "cannot hand a listener to its thread");
                    continue;
                }
            };
            let thread = std::thread::Builder::new()
                .name(format!("wxgate-{}", i + 1))
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build();
                    match runtime {
                        Ok(runtime) => runtime.block_on(async move {
                            match TcpListener::from_std(listener) {
                                Ok(listener) => serve(app, listener, acceptor, stopped).await,
                                Err(e) => tracing::error!(error = %e, "cannot serve a listener"),
                            }
                        }),
                        Err(e) => tracing::error!(error = %e, "cannot start a worker runtime"),
                    }
                });
            match thread {
                Ok(thread) => threads.push(thread),
                Err(e) => tracing::error!(error = %e, "cannot start a worker thread"),
            }
        }
        let acceptor = self.tls.as_ref().map(|(acceptor, _)| acceptor.clone());
        let own = tokio::spawn(serve(self.app.clone(), first, acceptor, stopped));
        shutdown.await;
        self.app.start_draining();
        let _ = stop.send(true);
        let _ = own.await;
        let _ = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        })
        .await;
        let _ = stop_admin.send(true);
        self.app.stop_tracing().await;
    }
}

/// Binds `addr` without `SO_REUSEPORT` and lets it go: that fails when
/// anyone listens there, with or without `SO_REUSEPORT`. Returns the address
/// with the port the kernel picked (for port 0), for the real listeners.
fn exclusive_port(addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let probe = socket_for(addr)?;
    probe.bind(addr)?;
    probe.local_addr()
}

fn reuse_port_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = socket_for(addr)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// A TCP socket of `addr`'s family with `SO_REUSEADDR`, so that TIME_WAIT
/// from a previous run does not count as "in use".
fn socket_for(addr: SocketAddr) -> std::io::Result<TcpSocket> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    Ok(socket)
}

/// One listener's accept loop, until `stop` turns true; then drains its
/// connections for up to `server.drain_timeout` (as last reloaded).
/// What both ways of running begin with: the app marked started (the
/// listeners were bound in `bind`: connections queue from now on), WeChat
/// asked about the credentials, the admin port served until the sender
/// returned says stop.
fn begin(app: &Arc<App>, admin: TcpListener) -> watch::Sender<bool> {
    let (stop_admin, admin_stopped) = watch::channel(false);
    app.mark_started();
    let checking = app.clone();
    tokio::spawn(async move { checking.check_credentials().await });
    tokio::spawn(admin::serve(app.clone(), admin, admin_stopped));
    stop_admin
}

async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
) {
    let protocols = Protocols::new(app.h2c());
    let worker = Worker::new(app.max_in_flight());
    // Each connection task holds a receiver: `drain.send` asks them to
    // finish, and `drain.closed()` resolves once the last one has ended.
    let (drain, draining) = watch::channel(());
    let Ok(local) = listener.local_addr() else {
        tracing::error!("the listener has no address; not serving it");
        return;
    };
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Typically EMFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            // The only change ever sent is "stop"; a dropped sender stops too.
            _ = stop.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let peer = Peer::new(peer, local, app.trusted_proxies());
        let draining = draining.clone();
        let Some(acceptor) = &tls else {
            let service = PerConnection::new(stack::connection(&app, peer, &worker));
            tokio::spawn(protocols.clone().plain(stream, service, draining));
            continue;
        };
        let service = PerConnection::new(stack::connection(&app, peer.over_tls(), &worker));
        let (acceptor, protocols) = (acceptor.clone(), protocols.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(tls::HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => protocols.negotiated(stream, service, draining).await,
                Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!("TLS handshake timed out"),
            }
        });
    }

    drop((listener, draining));
    let drain_timeout = app.drain_timeout();
    tracing::info!(timeout = ?drain_timeout, "shutting down: draining in-flight requests");
    let _ = drain.send(());
    tokio::select! {
        () = drain.closed() => tracing::info!("all connections drained"),
        () = tokio::time::sleep(drain_timeout) => {
            tracing::warn!("drain timeout reached; closing the remaining connections");
        }
    }
}
