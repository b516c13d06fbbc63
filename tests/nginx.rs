//! deploy/nginx/wxgate-auth.conf, run for real: nginx `auth_request` in
//! front of the echo backend, asking wxgate's `/auth`. Only the addresses
//! in the file are replaced. (scripts/test installs nginx when missing.)

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::binding::{BindingDouble, account_of};
use common::upstream::{header_names, header_values};
use common::wechat::openid_of;
use common::{GateConfig, Upstream, WeChatDouble, assert_error};

struct Nginx {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Nginx {
    async fn start(upstream: SocketAddr, wxgate: SocketAddr) -> Self {
        let dir = std::env::temp_dir().join(format!("wxgate-nginx-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let example = include_str!("../deploy/nginx/wxgate-auth.conf")
            .replace("127.0.0.1:3000", &upstream.to_string())
            .replace("127.0.0.1:8080", &wxgate.to_string())
            .replace("listen 8000;", &format!("listen {addr};"));
        std::fs::write(dir.join("wxgate-auth.conf"), example).unwrap();
        let d = dir.display();
        let main = format!(
            // One process: killing it at the end leaves no orphaned worker.
            "master_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{}}\nhttp {{\n access_log off;\n client_body_temp_path {d}/body;\n \
             proxy_temp_path {d}/proxy;\n fastcgi_temp_path {d}/fastcgi;\n \
             uwsgi_temp_path {d}/uwsgi;\n scgi_temp_path {d}/scgi;\n \
             include {d}/wxgate-auth.conf;\n}}\n"
        );
        std::fs::write(dir.join("nginx.conf"), main).unwrap();
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
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            assert!(Instant::now() < deadline, "nginx did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self { child, addr, dir }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nginx_example_lets_only_real_identities_through() {
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let binding = BindingDouble::start().await;
    let mut config = GateConfig::new(&wechat, &upstream);
    config.set("routes", "public", r#"["/public"]"#).set(
        "binding",
        "url",
        &format!("\"{}\"", binding.url()),
    );
    let gate = config.start().await;
    let nginx = Nginx::start(upstream.addr, gate.addr).await;
    let http = reqwest::Client::new();

    // Login goes through nginx to wxgate itself.
    let login = common::json(http.post(nginx.url("/login")).body(r#"{"code":"uma"}"#)).await;
    let id = login["session_id"].as_str().expect("session_id").to_owned();

    let forged = |request: reqwest::RequestBuilder| {
        request
            .header("X-WX-OpenId", "forged")
            .header("x-wx-openid", "forged")
            .header("X_WX_OpenId", "forged")
            .header("X-WX-Phone", "forged")
            .header("X-User-Id", "forged")
    };
    let echo =
        common::json(forged(http.get(nginx.url("/orders?x=1"))).header("x-session-id", &id)).await;
    assert_eq!(header_values(&echo, "x-wx-openid"), [openid_of("uma")]);
    assert_eq!(
        header_values(&echo, "x-user-id"),
        [account_of(&openid_of("uma"))]
    );
    assert!(!echo.to_string().contains("forged"), "{echo}");
    assert!(
        header_names(&echo).iter().all(|n| !n.contains('_')),
        "{echo}"
    );
    assert!(header_values(&echo, "x-session-id").is_empty(), "{echo}");
    assert_eq!(header_values(&echo, "x-request-id").len(), 1, "{echo}");

    // wxgate's own routes under its prefix go to wxgate.
    let check = http
        .get(nginx.url("/_wxgate/session"))
        .header("x-session-id", &id)
        .send()
        .await
        .unwrap();
    assert_eq!(check.status(), 200);
    let check: serde_json::Value = check.json().await.unwrap();
    assert_eq!(check["valid"], true, "{check}");

    // Public route, no session: passes, with no identity at all.
    let echo = common::json(forged(http.get(nginx.url("/public/list")))).await;
    assert!(header_values(&echo, "x-wx-openid").is_empty(), "{echo}");
    assert!(!echo.to_string().contains("forged"), "{echo}");

    let hits = upstream.hits();
    let rejected = forged(http.get(nginx.url("/orders"))).send().await.unwrap();
    assert_error(rejected, 401, "session_invalid").await;
    for trick in [
        "/public/../orders",
        "/public/%2e%2e/orders",
        "/public/..;/orders",
    ] {
        let response = http.get(nginx.url(trick)).send().await.unwrap();
        assert_eq!(response.status(), 401, "{trick}");
    }
    assert_eq!(
        upstream.hits(),
        hits,
        "a rejected request reached the backend"
    );
}
