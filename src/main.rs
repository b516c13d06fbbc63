//! The `wxgate` command: run the proxy, check a config file, or ask which
//! rule a request would hit.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, fmt, reload};
use wxgate::config::{LogConfig, LogFormat};
use wxgate::server::reload::Reloader;
use wxgate::server::{check_policy, memory_limit};
use wxgate::{Config, Server};

/// Changes the log filter of the running process.
type LogLevel = reload::Handle<EnvFilter, Registry>;

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
    /// Print which `[[rules]]` entry a request would hit and wxgate's answer
    /// (exit 0: forwarded, 3: refused).
    CheckPolicy {
        /// The request's method, e.g. GET.
        method: String,
        /// The request's path, e.g. /orders/1.
        path: String,
        /// The session asked as: `openid:ID`, `user_id:ID` (repeat for
        /// both), or a bare openid. Without it: no session.
        #[arg(long = "as", value_name = "openid:ID|user_id:ID")]
        caller: Vec<String>,
        /// The session's app (default: the first configured).
        #[arg(long)]
        app: Option<String>,
        /// The session has a phone number.
        #[arg(long)]
        phone: bool,
    },
}

fn env(key: &str) -> Option<String> {
    std::env::var(key).ok()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(&cli.config, &env) {
        Ok(config) => config,
        Err(e) => {
            // No config, so no log settings yet: the defaults say how to write it.
            if cli.command.is_none() {
                let _ = init_logging(&LogConfig::default());
                tracing::error!(config = %cli.config.display(), error = %e, "wxgate cannot start");
            } else {
                eprintln!("wxgate: {}: {e}", cli.config.display());
            }
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Some(Command::CheckConfig) => {
            for warning in &config.warnings {
                eprintln!("wxgate: {}: warning: {warning}", cli.config.display());
            }
            println!("{}: ok", cli.config.display());
            ExitCode::SUCCESS
        }
        Some(Command::CheckPolicy {
            method,
            path,
            caller,
            app,
            phone,
        }) => {
            let mut who = check_policy::Caller {
                appid: app,
                phone,
                ..Default::default()
            };
            for value in &caller {
                who.take(value);
            }
            match check_policy::check(&config, &method, &path, &who) {
                Ok(report) => {
                    for line in &report.lines {
                        println!("{line}");
                    }
                    if report.status < 300 {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(3)
                    }
                }
                Err(e) => {
                    eprintln!("wxgate: check-policy: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        None => {
            let log_level = init_logging(&config.log);
            // The main thread's runtime serves the first listener; `run_per_core`
            // gives every other listener a thread and runtime of its own.
            let ran = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))
                .and_then(|runtime| runtime.block_on(run(config, cli.config, log_level)));
            match ran {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    // One line, in the log's format. The errors' own messages
                    // already name their cause (`cannot listen on ADDR: …`),
                    // so anyhow's chain and backtrace would only repeat it.
                    tracing::error!(error = %e, "wxgate cannot start");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

async fn run(config: Config, path: PathBuf, log_level: LogLevel) -> anyhow::Result<()> {
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let limit = memory_limit::cgroup_limit(&|path| std::fs::read_to_string(path).ok());
    if let Some(warning) = memory_limit::warning(config.session.capacity, limit) {
        tracing::warn!("{warning}");
    }
    let server = Server::bind(&config).await?;
    let addr = server.local_addr()?;
    let admin = server.admin_addr()?;
    tracing::info!(%addr, %admin, version = env!("CARGO_PKG_VERSION"), "wxgate listening");
    tokio::spawn(reload_on_sighup(path, server.reloader(), log_level));
    server.run_per_core(shutdown_signal()).await;
    Ok(())
}

/// `level` (checked when the config loaded), with the audit trail's events
/// always on: a quieter level never silences them.
fn log_filter(level: &str) -> EnvFilter {
    EnvFilter::try_new(format!("{level},{}=info", wxgate::audit::TARGET))
        .unwrap_or_else(|_| EnvFilter::new("info"))
}

/// JSON lines in containers, readable text on a terminal; the filter can be
/// changed later through the returned handle. With `log.audit_file`, the
/// audit trail's events go to that file too, as JSON lines.
fn init_logging(config: &LogConfig) -> LogLevel {
    // `level` was checked when the config loaded.
    let filter = log_filter(&config.level);
    let (filter, handle) = reload::Layer::new(filter);
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let json = match config.format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !tty,
    };
    let audit_file = config.audit_file.as_ref().and_then(|path| {
        match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            Ok(file) => Some(file),
            Err(e) => {
                eprintln!("wxgate: cannot open log.audit_file {}: {e}", path.display());
                None
            }
        }
    });
    let audit = audit_file.map(|file| {
        fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_writer(std::sync::Mutex::new(file))
            .with_filter(
                tracing_subscriber::filter::Targets::new()
                    .with_target(wxgate::audit::TARGET, tracing::Level::INFO),
            )
    });
    let registry = tracing_subscriber::registry().with(filter).with(audit);
    if json {
        let layer = fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_writer(std::io::stderr);
        registry.with(layer).init();
    } else {
        let layer = fmt::layer().with_writer(std::io::stderr).with_ansi(tty);
        registry.with(layer).init();
    }
    handle
}

/// On SIGHUP, reads the config file again and applies what can change
/// while running; anything else is refused and the running config stays.
async fn reload_on_sighup(path: PathBuf, reloader: Reloader, log_level: LogLevel) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(hangups) => hangups,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; config reload is off");
            return;
        }
    };
    while hangups.recv().await.is_some() {
        let config = match Config::load(&path, &env) {
            Ok(config) => config,
            Err(e) => {
                tracing::error!(error = %e, path = %path.display(), "config reload refused: the file does not load; the running config stays");
                reloader.refused_unloadable();
                continue;
            }
        };
        let level = config.log.level.clone();
        match reloader.reload(config).await {
            Ok(()) => {
                if let Err(e) = log_level.modify(|filter| *filter = log_filter(&level)) {
                    tracing::warn!(error = %e, "cannot change the log level");
                }
                tracing::info!(path = %path.display(), "config reloaded");
            }
            Err(e) => tracing::error!(error = %e, path = %path.display(), "config reload refused"),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_quieter_level_never_silences_the_audit_trail() {
        for level in ["off", "error", "warn", "wxgate=error,warn"] {
            let captured = Captured::default();
            let writer = captured.clone();
            let subscriber = tracing_subscriber::registry()
                .with(log_filter(level))
                .with(fmt::layer().with_writer(move || writer.clone()));
            tracing::subscriber::with_default(subscriber, || {
                tracing::info!(target: "wxgate::audit", "an audit event");
                tracing::info!(target: "wxgate::stack::observe", "a request line");
            });
            let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
            assert!(text.contains("an audit event"), "{level}: {text}");
            assert!(!text.contains("a request line"), "{level}: {text}");
        }
    }
}
