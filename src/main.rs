//! The `wxgate` command: run the proxy, or check a config file.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use wxgate::{Config, Server};

#[derive(Parser)]
#[command(
    version,
    about = "WeChat mini-program login in front of any HTTP backend"
)]
struct Cli {
    /// Path of the config file.
    #[arg(long, global = true, default_value = "config.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate the config file and exit (non-zero, naming the bad key, when invalid).
    CheckConfig,
}

fn env(key: &str) -> Option<String> {
    std::env::var(key).ok()
}

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let config = match Config::load(&cli.config, &env) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("wxgate: {}: {e}", cli.config.display());
            return Ok(ExitCode::FAILURE);
        }
    };
    match cli.command {
        Some(Command::CheckConfig) => {
            println!("{}: ok", cli.config.display());
            Ok(ExitCode::SUCCESS)
        }
        None => {
            init_logging();
            // The main thread's runtime serves the first listener; `run_per_core`
            // gives every other listener a thread and runtime of its own.
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?
                .block_on(run(config))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    let server = Server::bind(&config).await?;
    let addr = server.local_addr()?;
    tracing::info!(%addr, version = env!("CARGO_PKG_VERSION"), "wxgate listening");
    server.run_per_core(shutdown_signal()).await;
    Ok(())
}

fn init_logging() {
    let filter = EnvFilter::try_from_env("WXGATE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Completes on SIGTERM (Kubernetes) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let terminate = async {
        match signal(SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}
