//! Test harness: real sockets on loopback, nothing of wxgate's own mocked.
//!
//! - [`WeChatDouble`]: a WeChat API test double following the documented
//!   behaviour of `jscode2session`.
//! - [`Upstream`]: an echo backend that reports what it received.
//! - [`GateConfig`]: builds a config and starts wxgate in-process on an
//!   ephemeral port.

pub mod assertion;
pub mod binding;
pub mod certs;
pub mod eventually;
pub mod link;
pub mod nginx;
pub mod otlp;
pub mod process;
pub mod redis;
pub mod upstream;
pub mod web;
pub mod wechat;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use eventually::{PATIENCE, eventually, until};
pub use upstream::Upstream;
pub use wechat::WeChatDouble;

pub const APPID: &str = "wxtestappid0001";
/// The IV of the tests' encrypted data.
pub const IV: &str = "r7BXXKkLb8qrSNn05n0qiA==";
pub const SECRET: &str = "test-app-secret";

/// A config under construction: `table → key → value` (values are TOML).
#[derive(Clone)]
pub struct GateConfig {
    tables: BTreeMap<String, BTreeMap<String, String>>,
    env: BTreeMap<String, String>,
    /// TOML appended after the tables: `[[apps]]`, `[[upstreams]]`.
    appended: String,
}

impl GateConfig {
    pub fn new(wechat: &WeChatDouble, upstream: &Upstream) -> Self {
        Self::with_upstream_url(wechat, &format!("http://{}", upstream.addr))
    }

    pub fn with_upstream_url(wechat: &WeChatDouble, url: &str) -> Self {
        let mut config = Self {
            tables: BTreeMap::new(),
            env: BTreeMap::new(),
            appended: String::new(),
        };
        config
            .set("server", "listen", "\"127.0.0.1:0\"")
            .set("server", "drain_timeout", "\"5s\"")
            .set("upstream", "url", &format!("\"{url}\""))
            .set("upstream", "timeout", "\"5s\"")
            .set("wechat", "appid", &format!("\"{APPID}\""))
            .set("wechat", "secret", &format!("\"{SECRET}\""))
            .set("wechat", "api_base", &format!("\"http://{}\"", wechat.addr))
            .set("wechat", "timeout", "\"2s\"")
            .set("admin", "listen", "\"127.0.0.1:0\"")
            .set("log", "format", "\"text\"");
        config
    }

    pub fn set(&mut self, table: &str, key: &str, value: &str) -> &mut Self {
        self.tables
            .entry(table.to_owned())
            .or_default()
            .insert(key.to_owned(), value.to_owned());
        self
    }

    /// TOML written after the tables, as is (arrays of tables).
    pub fn append(&mut self, toml: &str) -> &mut Self {
        self.appended.push_str(toml);
        self.appended.push('\n');
        self
    }

    /// Drops a table (`[upstream]`, say) from the config.
    pub fn remove(&mut self, table: &str) -> &mut Self {
        self.tables.remove(table);
        self
    }

    /// Removes one key of a table.
    pub fn unset(&mut self, table: &str, key: &str) -> &mut Self {
        if let Some(keys) = self.tables.get_mut(table) {
            keys.remove(key);
        }
        self
    }

    /// An environment variable as wxgate's config loader would see it.
    pub fn env(&mut self, key: &str, value: &str) -> &mut Self {
        self.env.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Shares sessions through the Redis server at `url`. The command
    /// timeout is generous: a loaded CI machine must not turn into 503s
    /// (the outage tests set their own).
    pub fn redis(&mut self, url: &str) -> &mut Self {
        self.set("session", "store", "\"redis\"")
            .set("redis", "url", &format!("\"{url}\""))
            .set("redis", "command_timeout", "\"2s\"")
    }

    pub fn text(&self) -> String {
        let mut out = String::new();
        for (table, keys) in &self.tables {
            out.push_str(&format!("[{table}]\n"));
            for (k, v) in keys {
                out.push_str(&format!("{k} = {v}\n"));
            }
        }
        out.push_str(&self.appended);
        out
    }

    pub async fn start(&self) -> Gate {
        let env = |k: &str| self.env.get(k).cloned();
        let config = wxgate::Config::parse(&self.text(), &env).expect("test config is valid");
        let server = wxgate::Server::bind(&config).await.expect("wxgate binds");
        let addr = server.local_addr().expect("local addr");
        let admin = server.admin_addr().expect("admin addr");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = rx.await;
        }));
        let gate = Gate {
            addr,
            admin,
            shutdown: Some(tx),
            task,
            http: reqwest::Client::new(),
        };
        gate.until_started().await;
        gate
    }
}

/// A running wxgate.
pub struct Gate {
    pub addr: SocketAddr,
    /// The admin listener: /metrics, /healthz, /readyz.
    pub admin: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    pub http: reqwest::Client,
}

impl Gate {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// The admin port's `/metrics` text.
    pub async fn metrics(&self) -> String {
        let response = self
            .http
            .get(self.admin_url("/metrics"))
            .send()
            .await
            .expect("metrics request");
        assert_eq!(response.status(), 200);
        response.text().await.expect("metrics text")
    }

    pub async fn post_login(&self, body: &str) -> reqwest::Response {
        self.http
            .post(self.url("/login"))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .expect("login request")
    }

    /// [`Self::login`] with an owned code, for futures run side by side.
    pub async fn login_code(&self, code: String) -> String {
        self.login(&code).await
    }

    /// Logs in with `code` and returns the session id.
    pub async fn login(&self, code: &str) -> String {
        let response = self.post_login(&format!(r#"{{"code":"{code}"}}"#)).await;
        assert_eq!(response.status(), 200, "login with {code}");
        let body: serde_json::Value = response.json().await.expect("login JSON");
        body["session_id"].as_str().expect("session_id").to_owned()
    }

    /// `/readyz`'s status and JSON body, once `done` says so of them
    /// (panics after 10 s, naming what it last saw).
    pub async fn readyz_until(
        &self,
        done: impl Fn(u16, &serde_json::Value) -> bool,
    ) -> (u16, serde_json::Value) {
        let last = std::sync::Mutex::new((0, serde_json::Value::Null));
        let what = eventually::Later(|| {
            let last = last.lock().unwrap();
            format!(
                "wxgate at {}: /readyz never got there; last {last:?}",
                self.addr
            )
        });
        eventually(PATIENCE, what, || async {
            let ready = self.http.get(self.admin_url("/readyz")).send().await.ok()?;
            let status = ready.status().as_u16();
            let body = ready.json::<serde_json::Value>().await.ok()?;
            if done(status, &body) {
                return Some((status, body));
            }
            *last.lock().unwrap() = (status, body);
            None
        })
        .await
    }

    /// Waits until `/readyz` no longer says "starting" (its first WeChat
    /// credentials check has answered), as the kubelet would.
    pub async fn until_started(&self) {
        self.readyz_until(|_, body| body["status"] != "starting")
            .await;
    }

    /// Waits until `/readyz` answers 200 and its session store is not
    /// down: ready to serve sessions too.
    pub async fn until_ready(&self) {
        self.readyz_until(|status, body| status == 200 && body["store"] != "down")
            .await;
    }

    /// `POST /_wxgate/phone` with a getPhoneNumber `code`, in `session`.
    pub async fn post_phone(&self, session: &str, code: &str) -> reqwest::Response {
        self.http
            .post(self.url("/_wxgate/phone"))
            .header("x-session-id", session)
            .json(&serde_json::json!({ "code": code }))
            .send()
            .await
            .expect("phone request")
    }

    /// `POST /_wxgate/decrypt` with `body`, in `session`.
    pub async fn post_decrypt(&self, session: &str, body: serde_json::Value) -> reqwest::Response {
        self.http
            .post(self.url("/_wxgate/decrypt"))
            .header("x-session-id", session)
            .json(&body)
            .send()
            .await
            .expect("decrypt request")
    }

    pub fn get(&self, path: &str, session: &str) -> reqwest::RequestBuilder {
        self.http
            .get(self.url(path))
            .header("x-session-id", session)
    }

    /// Stops accepting, drains, and waits for `run` to return.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Encrypts `payload` as WeChat does (AES-128-CBC, PKCS#7) with the base64 `key` and [`IV`].
pub fn encrypt(key: &str, payload: &serde_json::Value) -> String {
    use aes::cipher::{BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    let key = STANDARD.decode(key).unwrap();
    let iv = STANDARD.decode(IV).unwrap();
    let cipher = cbc::Encryptor::<aes::Aes128>::new_from_slices(&key, &iv).unwrap();
    STANDARD.encode(cipher.encrypt_padded_vec_mut::<Pkcs7>(payload.to_string().as_bytes()))
}

/// Sends `request` and reads its JSON answer (the echo, usually).
pub async fn json(request: reqwest::RequestBuilder) -> serde_json::Value {
    let response = request.send().await.expect("request");
    response.json().await.expect("JSON answer")
}

/// Asserts an error response of wxgate's own: status, JSON `code`, a
/// non-empty message, and the `X-Wxgate-Error` mark naming the same code.
pub async fn assert_error(
    response: reqwest::Response,
    status: u16,
    code: &str,
) -> serde_json::Value {
    assert_eq!(response.status(), status, "expected {status} {code}");
    let marks: Vec<_> = response
        .headers()
        .get_all("x-wxgate-error")
        .iter()
        .collect();
    assert_eq!(marks, [code], "expected the mark of wxgate's {code}");
    let ct = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(ct.starts_with("application/json"), "content-type {ct}");
    let body: serde_json::Value = response.json().await.expect("error JSON");
    assert_eq!(body["code"], code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    body
}

/// Sends `request` as raw bytes (it should carry `Connection: close`) and
/// returns `(status, head, body)`. For requests an HTTP client would tidy up.
pub async fn raw(addr: SocketAddr, request: &str) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).await.expect("read");
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

/// Serves HTTP/1.1 on `listener` for the rest of the test, each request
/// answered by `answer` (the doubles' shared accept loop).
pub fn serve<F, Fut>(listener: tokio::net::TcpListener, answer: F)
where
    F: Fn(http::Request<hyper::body::Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = http::Response<http_body_util::Full<bytes::Bytes>>>
        + Send
        + 'static,
{
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let answer = answer.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let answer = answer.clone();
                    async move { Ok::<_, std::convert::Infallible>(answer(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

/// A loopback address nothing listens on, which stays free for the test to
/// bind later (a backend coming up): below the kernel's ephemeral range
/// (32768 up), so no socket of another test can be handed it meanwhile.
pub async fn closed_port() -> SocketAddr {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = 20_000 + std::process::id() % 10_000;
    loop {
        let port = 20_000 + (base + NEXT.fetch_add(1, Ordering::SeqCst)) % 12_000;
        let addr = SocketAddr::from(([127, 0, 0, 1], port as u16));
        if tokio::net::TcpListener::bind(addr).await.is_ok() {
            return addr;
        }
    }
}

/// The value of one sample in Prometheus text, e.g.
/// `metric(&text, r#"wxgate_logins_total{result="ok"}"#)`; 0 when absent.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |value| value.trim().parse().expect("a number"))
}
