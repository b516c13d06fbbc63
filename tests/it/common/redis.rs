//! A real `redis-server` for the tests, on an ephemeral loopback port.
//!
//! Data is kept in an append-only file synced on every write, so a server
//! that is killed and started again (an outage) comes back with its data.
//! `.ci/run` installs Debian's redis-server; these tests never skip.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

pub struct RedisServer {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// A node of a Redis Cluster (`RedisCluster`).
    cluster_node: bool,
    /// TLS on a port of its own, with `server.pem`/`server.key`/`ca.pem`
    /// from this folder (`test_ca`), beside the plain port.
    tls: Option<(u16, PathBuf)>,
}

impl RedisServer {
    pub fn start() -> Self {
        Self::start_as(false)
    }

    fn start_as(cluster_node: bool) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "wxgate-redis-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        let mut server = Self {
            port,
            dir,
            child: None,
            cluster_node,
            tls: None,
        };
        server.resume();
        server
    }

    /// A server that also speaks TLS (`rediss://`), with the certificate
    /// `test_ca` made in `certs`.
    pub fn start_tls(certs: &std::path::Path) -> Self {
        let mut server = Self::start();
        server.kill();
        server.tls = Some((free_port(), certs.to_owned()));
        server.resume();
        server
    }

    /// `rediss://localhost:<tls port>` (the name the certificate is for).
    pub fn tls_url(&self) -> String {
        let (port, _) = self.tls.as_ref().expect("a server started with start_tls");
        format!("rediss://localhost:{port}")
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server at once (SIGKILL): an outage.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server (again) on the same port with the same data.
    pub fn resume(&mut self) {
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ]);
        if let Some((port, certs)) = &self.tls {
            command.args(["--tls-port", &port.to_string(), "--tls-auth-clients", "no"]);
            for (option, file) in [
                ("--tls-cert-file", "server.pem"),
                ("--tls-key-file", "server.key"),
                ("--tls-ca-cert-file", "ca.pem"),
            ] {
                command.arg(option).arg(certs.join(file));
            }
        }
        if self.cluster_node {
            command.args([
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
            ]);
        }
        let child = command
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be on PATH (`.ci/run` installs it; apt-get install redis-server)");
        self.child = Some(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        super::eventually::blocking(
            super::PATIENCE,
            format!("redis-server did not start on port {}", self.port),
            || {
                let up = TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok();
                (up && self.ping()).then_some(())
            },
        );
    }

    fn ping(&self) -> bool {
        self.connection()
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c).ok())
            .is_some()
    }

    pub fn connection(&self) -> Option<redis::Connection> {
        redis::Client::open(self.url()).ok()?.get_connection().ok()
    }

    /// Every key and its value (strings only), for "nothing usable at rest" checks.
    pub fn dump(&self) -> Vec<(String, String)> {
        let mut c = self.connection().expect("redis connection");
        let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut c).unwrap();
        keys.into_iter()
            .map(|k| {
                let v: Option<String> = redis::cmd("GET").arg(&k).query(&mut c).unwrap_or(None);
                (k, v.unwrap_or_default())
            })
            .collect()
    }

    /// Empties the server, for the next part of a test.
    pub fn flush(&self) {
        let mut c = self.connection().expect("redis connection");
        redis::cmd("FLUSHALL").query::<()>(&mut c).unwrap();
    }

    /// Milliseconds left on `key` (-2: missing, -1: no expiry).
    pub fn pttl(&self, key: &str) -> i64 {
        let mut c = self.connection().expect("redis connection");
        redis::cmd("PTTL").arg(key).query(&mut c).unwrap()
    }
}

/// A Redis Cluster of three masters (no replicas) on loopback, made with
/// `redis-cli --cluster create`, as an operator would.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start() -> Self {
        let nodes: Vec<RedisServer> = (0..3).map(|_| RedisServer::start_as(true)).collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli (Debian's redis-tools, which redis-server depends on)");
        assert!(created.success(), "redis-cli --cluster create failed");
        let cluster = Self { nodes };
        super::eventually::blocking(
            2 * super::PATIENCE,
            "the cluster never reached cluster_state:ok",
            || {
                cluster
                    .nodes
                    .iter()
                    .all(RedisServer::cluster_ok)
                    .then_some(())
            },
        );
        cluster
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }
}

impl RedisServer {
    fn cluster_ok(&self) -> bool {
        self.connection()
            .and_then(|mut c| {
                redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query::<String>(&mut c)
                    .ok()
            })
            .is_some_and(|info| info.contains("cluster_state:ok"))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
