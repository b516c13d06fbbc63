//! A real nginx for the tests, on free loopback ports, one process
//! (killed at drop, leaving no orphaned worker). scripts/test installs
//! nginx when missing.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub struct Nginx {
    child: Child,
    dir: PathBuf,
    /// A master process with workers (graceful reloads), not one process.
    master: bool,
}

/// A free loopback port for a `listen` directive.
pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

impl Nginx {
    /// Runs `servers` (the `server { … }` blocks, or an `include` of them;
    /// `{dir}` is replaced by nginx's own folder) and waits until each of
    /// `listening` accepts.
    pub async fn start(servers: &str, listening: &[SocketAddr]) -> Self {
        Self::start_as(servers, listening, false).await
    }

    /// With a master process and a worker, as nginx runs in production: a
    /// reload lets the old worker finish its connections (one process
    /// alone drops them).
    pub async fn start_with_master(servers: &str, listening: &[SocketAddr]) -> Self {
        Self::start_as(servers, listening, true).await
    }

    async fn start_as(servers: &str, listening: &[SocketAddr], master: bool) -> Self {
        static RUNS: AtomicUsize = AtomicUsize::new(0);
        let run = RUNS.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("wxgate-nginx-{}-{run}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("nginx dir");
        write_conf(&dir, servers, master);
        // Debian puts it in /usr/sbin, which a non-root PATH may lack.
        let bin = ["/usr/sbin/nginx", "/usr/local/sbin/nginx"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or("nginx");
        let child = Command::new(bin)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .args(["-e", "stderr", "-g", "daemon off;"])
            .stdout(Stdio::null())
            .spawn()
            .expect("nginx (scripts/test installs it)");
        for addr in listening {
            super::until(format!("nginx did not listen on {addr}"), || async {
                tokio::net::TcpStream::connect(addr).await.is_ok()
            })
            .await;
        }
        Self { child, dir, master }
    }

    /// Replaces the `server` blocks and reloads (SIGHUP, as `nginx -s
    /// reload` sends): new connections get the new config; the caller
    /// tells when it has taken effect.
    pub fn reload(&self, servers: &str) {
        write_conf(&self.dir, servers, self.master);
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }
}

fn write_conf(dir: &std::path::Path, servers: &str, master: bool) {
    let d = dir.display();
    let servers = servers.replace("{dir}", &d.to_string());
    let master = if master { "on" } else { "off" };
    let main = format!(
        "master_process {master};\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{}}\nhttp {{\n access_log off;\n client_body_temp_path {d}/body;\n \
         proxy_temp_path {d}/proxy;\n fastcgi_temp_path {d}/fastcgi;\n \
         uwsgi_temp_path {d}/uwsgi;\n scgi_temp_path {d}/scgi;\n{servers}\n}}\n"
    );
    std::fs::write(dir.join("nginx.conf"), main).expect("nginx.conf");
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if self.master {
            // Fast shutdown: the master stops its workers, then itself.
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
