//! What the assertion tests verify with: jose (node) and PHP's openssl,
//! the docs' own examples (docs/examples/verify-node, verify-php), never
//! wxgate's code; and P-256 key files made by openssl.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub const VERIFY_NODE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/examples/verify-node");
pub const VERIFY_PHP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/examples/verify-php");

/// A P-256 key as `openssl ecparam -genkey` writes it (an `EC PARAMETERS`
/// block, then SEC1), or `genpkey` (PKCS#8) when `pkcs8`.
pub fn key_file(dir: &Path, name: &str, pkcs8: bool) -> PathBuf {
    let path = dir.join(format!("{name}.pem"));
    let mut command = Command::new("openssl");
    if pkcs8 {
        command.args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ]);
    } else {
        command.args(["ecparam", "-name", "prime256v1", "-genkey"]);
    }
    let status = command
        .arg("-out")
        .arg(&path)
        .stderr(Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(status.success(), "openssl made {name}");
    path
}

/// A fresh directory for key files.
pub fn key_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wxgate-keys-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("key dir");
    dir
}

fn node_modules() {
    assert!(
        Path::new(VERIFY_NODE).join("node_modules/jose").exists(),
        "jose is not installed in {VERIFY_NODE}: scripts/test runs `npm ci` there"
    );
}

/// jose's verdict on `token`: `Ok({header, claims, thumbprints, kids})`
/// or `Err(its error code)`.
pub async fn verify(
    jwks_url: &str,
    issuer: &str,
    audience: &str,
    token: &str,
) -> Result<serde_json::Value, String> {
    node_modules();
    let (jwks_url, issuer, audience, token) = (
        jwks_url.to_owned(),
        issuer.to_owned(),
        audience.to_owned(),
        token.to_owned(),
    );
    let out = tokio::task::spawn_blocking(move || {
        let mut child = Command::new("node")
            .arg(format!("{VERIFY_NODE}/verify.mjs"))
            .args([&jwks_url, &issuer, &audience])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("node runs");
        let mut stdin = child.stdin.take().expect("stdin");
        std::io::Write::write_all(&mut stdin, token.as_bytes()).expect("token written");
        drop(stdin);
        child.wait_with_output().expect("node ends")
    })
    .await
    .expect("verify task");
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("verify.mjs prints JSON");
    if out.status.success() {
        Ok(json)
    } else {
        Err(json["error"].as_str().unwrap_or("?").to_owned())
    }
}

/// A backend of the docs' examples, killed on drop.
pub struct Backend {
    pub addr: SocketAddr,
    child: Child,
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The env a verifying backend reads.
pub fn backend_env<'a>(
    jwks: &'a str,
    issuer: &'a str,
    audience: &'a str,
) -> [(&'static str, &'a str); 3] {
    [
        ("WXGATE_JWKS_URL", jwks),
        ("WXGATE_ISSUER", issuer),
        ("WXGATE_AUDIENCE", audience),
    ]
}

/// docs/examples/verify-node/server.mjs (jose), listening on a free port.
pub async fn node_backend(env: &[(&str, &str)]) -> Backend {
    node_modules();
    let mut child = Command::new("node")
        .arg(format!("{VERIFY_NODE}/server.mjs"))
        .env("PORT", "0")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node runs");
    let stdout = child.stdout.take().expect("stdout");
    // Its first line names the port (`listening on N`).
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).map(|_| line)
    })
    .await
    .expect("reader")
    .expect("stdout");
    let port: u16 = line
        .trim()
        .strip_prefix("listening on ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("the node backend did not start: {line:?}"));
    Backend {
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        child,
    }
}

/// docs/examples/verify-php/index.php under `php -S`.
pub async fn php_backend(env: &[(&str, &str)]) -> Backend {
    let addr = super::nginx::free_addr();
    let child = Command::new("php")
        .args(["-S", &addr.to_string(), "index.php"])
        .current_dir(VERIFY_PHP)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("php runs (apt-get install php-cli; scripts/test installs it)");
    let backend = Backend { addr, child };
    super::until("php -S listens", || async {
        tokio::net::TcpStream::connect(addr).await.is_ok()
    })
    .await;
    backend
}
