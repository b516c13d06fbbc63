//! A wxgate child process, as an operator runs it: its config in a file,
//! its stderr lines collected, signalled with `kill` (SIGHUP reloads).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::GateConfig;

pub const BIN: &str = env!("CARGO_BIN_EXE_wxgate");

pub fn temp_config(text: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
        "wxgate-test-{}-{}.toml",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::write(&path, text).unwrap();
    path
}

/// A wxgate child process; its stderr lines are collected.
pub struct Process {
    pub child: Child,
    pub addr: SocketAddr,
    /// The admin listener: probes, metrics, operator actions.
    pub admin: SocketAddr,
    pub logs: Arc<Mutex<Vec<String>>>,
    pub config_path: PathBuf,
}

impl Process {
    pub fn start(config: &GateConfig, env: &[(&str, &str)]) -> Self {
        let path = temp_config(&config.text());
        let mut command = Command::new(BIN);
        command
            .arg("--config")
            .arg(&path)
            .stderr(Stdio::piped())
            .stdout(Stdio::null());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("spawn wxgate");
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let collected = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("wxgate listening") {
                    let _ = tx.send((logged(&line, "addr"), logged(&line, "admin")));
                }
                collected.lock().unwrap().push(line);
            }
        });
        let (addr, admin) = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("wxgate logs its address");
        Self {
            child,
            addr: addr.parse().expect("address"),
            admin: admin.parse().expect("admin address"),
            logs,
            config_path: path,
        }
    }

    /// Rewrites the config file and sends SIGHUP.
    pub fn reload(&self, text: &str) {
        std::fs::write(&self.config_path, text).unwrap();
        self.signal("HUP");
    }

    /// Waits until a log line contains every one of `parts`.
    pub async fn until_logged(&self, parts: &[&str]) {
        let logged = || {
            let lines = self.logs.lock().unwrap();
            lines
                .iter()
                .any(|line| parts.iter().all(|p| line.contains(p)))
        };
        let what = crate::common::eventually::Later(|| {
            format!("no line with {parts:?}:\n{}", self.logs())
        });
        crate::common::until(what, || async { logged() }).await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// `/readyz` is 200 and the session store not down.
    pub async fn until_ready(&self) {
        let http = reqwest::Client::new();
        let url = self.admin_url("/readyz");
        let what = crate::common::eventually::Later(|| format!("never ready:\n{}", self.logs()));
        crate::common::until(what, || async {
            if let Ok(ready) = http.get(&url).send().await
                && ready.status() == 200
                && let Ok(body) = ready.json::<serde_json::Value>().await
            {
                body["store"] != "down"
            } else {
                false
            }
        })
        .await;
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit; panics after `limit`.
    pub fn wait(&mut self, limit: Duration) -> std::process::ExitStatus {
        let child = &mut self.child;
        crate::common::eventually::blocking(limit, "wxgate did not exit", || {
            child.try_wait().unwrap()
        })
    }

    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM")
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of `field` in a log line, JSON or text.
pub fn logged(line: &str, field: &str) -> String {
    if let Ok(json) = serde_json::from_str::<serde_json::Value>(line) {
        return json[field].as_str().unwrap_or("").to_owned();
    }
    let value = line.split(&format!("{field}=")).nth(1).unwrap_or("");
    value.split_whitespace().next().unwrap_or("").to_owned()
}

/// `wxgate check-config` on `text`, written to a file of its own.
pub fn check_config(text: &str) -> std::process::Output {
    let file = temp_config(text);
    Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&file)
        .output()
        .expect("wxgate runs")
}
