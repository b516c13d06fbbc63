//! HTTP/2 in: over TLS by ALPN, and h2c with prior knowledge when
//! `server.h2c` allows it. Every request is asked once with curl's HTTP/1.1
//! and once with its HTTP/2 (real clients, real TLS), and must get the same
//! answer: the identity strip in any case of the name, dot segments and
//! encoded slashes in `:path`, no session. HTTP/2's own hostile inputs —
//! CONNECT, a header block past the limit, a stream flood (h2load), a body
//! that goes silent — are answered as HTTP/1.1's are.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::Frame;

use crate::common::certs::certs;
use crate::common::upstream::header_values;
use crate::common::wechat::openid_of;
use crate::common::{Gate, GateConfig, Upstream, WeChatDouble, raw};

struct Tls {
    _wechat: WeChatDouble,
    _upstream: Upstream,
    gate: Gate,
    dir: PathBuf,
}

impl Tls {
    async fn start(extra: impl FnOnce(&mut GateConfig)) -> Self {
        let dir = certs("h2");
        let wechat = WeChatDouble::start().await;
        let upstream = Upstream::start().await;
        let mut config = GateConfig::new(&wechat, &upstream);
        let file = |name: &str| format!("\"{}\"", dir.join(name).display());
        config
            .set("server", "tls_cert_file", &file("server.pem"))
            .set("server", "tls_key_file", &file("server.key"));
        extra(&mut config);
        let gate = config.start().await;
        Self {
            _wechat: wechat,
            _upstream: upstream,
            gate,
            dir,
        }
    }

    fn base(&self) -> String {
        format!("https://localhost:{}", self.gate.addr.port())
    }

    /// curl over TLS as `version` (`--http1.1`, `--http2`): (exit code,
    /// status, the version it spoke, body).
    fn curl(&self, version: &str, args: &[&str]) -> (i32, u16, String, String) {
        let resolve = format!("localhost:{}:127.0.0.1", self.gate.addr.port());
        let ca = self.dir.join("ca.pem");
        let mut all = vec![
            version,
            "--cacert",
            ca.to_str().unwrap(),
            "--resolve",
            &resolve,
        ];
        all.extend_from_slice(args);
        curl(&all)
    }

    async fn login(&self, user: &str) -> String {
        let (code, status, _, body) = self.curl(
            "--http2",
            &[
                "-d",
                &format!(r#"{{"code":"{user}"}}"#),
                &format!("{}/login", self.base()),
            ],
        );
        assert_eq!((code, status), (0, 200), "{body}");
        let login: serde_json::Value = serde_json::from_str(&body).unwrap();
        login["session_id"].as_str().unwrap().to_owned()
    }

    /// A TLS connection speaking HTTP/2 (ALPN `h2`), from the test's own client.
    async fn h2(&self) -> hyper::client::conn::http2::SendRequest<TestBody> {
        let tls =
            crate::common::certs::connect(self.gate.addr.port(), &[&self.dir], &[b"h2"]).await;
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (send, connection) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tls),
        )
        .await
        .unwrap();
        tokio::spawn(connection);
        send
    }
}

type TestBody = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

fn curl(args: &[&str]) -> (i32, u16, String, String) {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "-w",
            "\n%{http_code} %{http_version}",
        ])
        .args(args)
        .output()
        .expect("curl must be on PATH (scripts/test installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, tail) = text.rsplit_once('\n').unwrap_or(("", &text));
    let mut tail = tail.split(' ');
    let status = tail.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let version = tail.next().unwrap_or("").to_owned();
    let body = format!("{body}{}", String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), status, version, body)
}

/// What a backend or a client would tell apart in an answer: the status,
/// and the path the backend saw, or wxgate's error code.
fn reading(status: u16, body: &str) -> (u16, String) {
    let json: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let seen = json["uri"].as_str().or(json["code"].as_str()).unwrap_or("");
    (status, seen.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_over_tls_is_answered_as_http1_is() {
    let tls = Tls::start(|_| {}).await;
    let session = tls.login("hanna").await;
    let with_session = format!("x-session-id: {session}");
    let base = tls.base();
    let cases: [(&str, &[&str]); 8] = [
        ("/orders", &["-H", &with_session]),
        // A forged identity in every spelling curl lets through.
        (
            "/orders",
            &[
                "-H",
                &with_session,
                "-H",
                "X-WX-OPENID: forged",
                "-H",
                "x-Wx-Openid: forged2",
            ],
        ),
        ("/a/../orders", &["-H", &with_session, "--path-as-is"]),
        ("/a/%2e%2e/orders", &["-H", &with_session, "--path-as-is"]),
        ("/a%2Forders", &["-H", &with_session]),
        ("/_wxgate/../orders", &["-H", &with_session, "--path-as-is"]),
        ("/orders", &[]),
        ("/orders", &["-H", "x-session-id: not-a-session"]),
    ];
    for (path, args) in cases {
        let url = format!("{base}{path}");
        let mut answers = Vec::new();
        for (version, spoken) in [("--http1.1", "1.1"), ("--http2", "2")] {
            let mut all = args.to_vec();
            all.push(&url);
            let (code, status, seen_version, body) = tls.curl(version, &all);
            assert_eq!(code, 0, "{path} {version}: {body}");
            assert_eq!(seen_version, spoken, "{path}: {body}");
            if status == 200 {
                let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
                assert_eq!(header_values(&echo, "x-wx-openid"), [openid_of("hanna")]);
                assert_eq!(header_values(&echo, "x-forwarded-proto"), ["https"]);
                // :authority became the backend's Host, once.
                assert_eq!(header_values(&echo, "host").len(), 1, "{body}");
            }
            answers.push(reading(status, &body));
        }
        assert_eq!(answers[0], answers[1], "{path} {args:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_s_own_hostile_inputs_are_answered_as_on_http1() {
    let tls = Tls::start(|config| {
        config.set("server", "body_idle_timeout", "\"1s\"");
    })
    .await;
    let session = tls.login("ines").await;
    let base = tls.base();

    // A header block past the limit, refused unread.
    let big = tls.dir.join("big-header");
    std::fs::write(&big, format!("x-big: {}\n", "a".repeat(200 * 1024))).unwrap();
    let big = format!("@{}", big.display());
    let (_, status, _, body) = tls.curl("--http1.1", &["-H", &big, &format!("{base}/orders")]);
    assert_eq!(status, 431, "{body}");
    // HTTP/2 (h2's HPACK decoder): 431, or the connection ended; never read.
    let (code, status, _, body) = tls.curl("--http2", &["-H", &big, &format!("{base}/orders")]);
    assert!(
        status == 431 || (code != 0 && status == 0),
        "{status} {body}"
    );

    // CONNECT (and so extended CONNECT, which is not offered): refused.
    let mut h2 = tls.h2().await;
    let connect = http::Request::connect("localhost:443")
        .body(Empty::new().boxed())
        .unwrap();
    let refused = h2.send_request(connect).await.unwrap();
    assert_eq!(refused.status(), 405, "{:?}", refused.headers());

    // A body that goes silent ends as it does on HTTP/1.1: 408.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::convert::Infallible>>(1);
    tx.send(Ok(Frame::data(Bytes::from_static(b"part of a body"))))
        .await
        .unwrap();
    let body = StreamBody::new(tokio_stream_of(rx)).boxed();
    let upload = http::Request::post(format!("{base}/upload"))
        .header("x-session-id", &session)
        .body(body)
        .unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(10), h2.send_request(upload))
        .await
        .expect("answered");
    match answer {
        Ok(response) => assert_eq!(response.status(), 408),
        // Or the stream reset after the 408's head, which hyper may report first.
        Err(e) => assert!(e.to_string().contains("stream"), "{e}"),
    }
    drop(tx);

    // A stream flood on two connections: every request answered.
    let out = Command::new("h2load")
        .args(["-n", "2000", "-c", "2", "-m", "250", "-H"])
        .arg(format!("x-session-id: {session}"))
        .arg(format!("https://127.0.0.1:{}/orders", tls.gate.addr.port()))
        .output()
        .expect("h2load must be on PATH (scripts/test installs nghttp2-client)");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("2000 succeeded"), "{report}");
    assert!(report.contains("status codes: 2000 2xx"), "{report}");
    assert!(report.contains("Application protocol: h2"), "{report}");
}

fn tokio_stream_of<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_with_prior_knowledge_is_opt_in() {
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    for h2c in [true, false] {
        let mut config = GateConfig::new(&wechat, &upstream);
        config.set("server", "h2c", &h2c.to_string());
        let gate = config.start().await;
        let url = gate.url("/orders");
        let (code, status, version, body) = curl(&["--http2-prior-knowledge", &url]);
        if h2c {
            assert_eq!((code, status, version.as_str()), (0, 401, "2"), "{body}");
        } else {
            assert_ne!((status, version.as_str()), (401, "2"), "{body}");
        }
        // HTTP/1.1 on the same port either way.
        let (code, status, version, body) = curl(&["--http1.1", &url]);
        assert_eq!((code, status, version.as_str()), (0, 401, "1.1"), "{body}");
        // CONNECT over HTTP/1.1, for comparison with HTTP/2's above.
        let (status, head, body) = raw(
            gate.addr,
            "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(status, 405, "{head}\n{body}");
        gate.stop().await;
    }
}
