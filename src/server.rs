//! Accepting connections and shutting down gracefully.
//!
//! Each connection is served by hyper (HTTP/1.1 with upgrades, or h2c) and
//! watched by a `GracefulShutdown`. When the shutdown future completes
//! (SIGTERM or SIGINT in `main`), the listener closes at once, `/readyz`
//! turns 503, idle keep-alive connections are closed, and in-flight requests
//! get up to `drain_timeout` to finish before `run` returns.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::app::App;
use crate::config::{Config, WechatMode};
use crate::demo;

#[derive(Debug, thiserror::Error)]
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
    #[error(transparent)]
    App(#[from] crate::app::StartError),
}

pub struct Server {
    listener: TcpListener,
    app: Arc<App>,
    drain_timeout: Duration,
}

impl Server {
    /// Builds everything and binds the port. `config` is already validated.
    pub async fn bind(config: &Config) -> Result<Self, StartError> {
        if config.wechat.mode == WechatMode::Mock {
            tracing::warn!(
                "wechat.mode = \"mock\": ANY code logs in, as a user derived from the code. \
                 This is for trying wxgate out; set mode = \"live\" with your AppID and secret \
                 before real users reach it"
            );
        }
        let app = Arc::new(App::new(config)?);
        if config.demo_echo_upstream
            && let Some(addr) = config.upstream.socket_addr()
        {
            demo::spawn(addr)
                .await
                .map_err(|source| StartError::Demo { addr, source })?;
            tracing::info!(%addr, "demo echo upstream listening");
        }
        let addr = config.server.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        Ok(Self {
            listener,
            app,
            drain_timeout: config.server.drain_timeout,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes, then drains.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(30));
        let graceful = GracefulShutdown::new();
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Typically EMFILE: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            let app = self.app.clone();
            let service = service_fn(move |request| {
                let app = app.clone();
                async move { Ok::<_, Infallible>(app.handle_request(request, peer).await) }
            });
            let connection = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .into_owned();
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
            });
        }

        drop(self.listener);
        self.app.start_draining();
        tracing::info!(timeout = ?self.drain_timeout, "shutting down: draining in-flight requests");
        tokio::select! {
            () = graceful.shutdown() => tracing::info!("all connections drained"),
            () = tokio::time::sleep(self.drain_timeout) => {
                tracing::warn!("drain timeout reached; closing the remaining connections");
            }
        }
    }
}
