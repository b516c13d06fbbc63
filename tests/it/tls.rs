//! Inbound TLS (`server.tls_cert_file` / `tls_key_file`) with certificates
//! the test makes with openssl: curl reaches the backend through it (which
//! hears `X-Forwarded-Proto: https`), TLS 1.1 and plain HTTP are refused,
//! a SIGHUP serves a renewed certificate to new handshakes while a
//! connection opened before keeps working, and mistakes are named by
//! `check-config`.

use std::path::Path;
use std::process::Command;

use http_body_util::{BodyExt, Empty};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::common::certs::{assert_accepted, assert_refused, certs, expired_certificate};
use crate::common::process::Process;
use crate::common::upstream::header_values;
use crate::common::{GateConfig, Upstream, WeChatDouble};

fn with_tls(config: &mut GateConfig, dir: &Path) -> String {
    config
        .set(
            "server",
            "tls_cert_file",
            &format!("\"{}\"", dir.join("server.pem").display()),
        )
        .set(
            "server",
            "tls_key_file",
            &format!("\"{}\"", dir.join("server.key").display()),
        );
    config.text()
}

fn curl(args: &[&str]) -> (i32, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl must be on PATH (scripts/test installs it)");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A TLS connection of the test's own (rustls, trusting `cas`), with the
/// certificate the server presented.
async fn connect(
    port: u16,
    cas: &[&Path],
) -> (
    hyper::client::conn::http1::SendRequest<Empty<bytes::Bytes>>,
    CertificateDer<'static>,
) {
    let tls = crate::common::certs::connect(port, cas, &[]).await;
    let presented = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    let (send, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(connection);
    (send, presented)
}

/// A request without a session: wxgate's own 401.
async fn anonymous(send: &mut hyper::client::conn::http1::SendRequest<Empty<bytes::Bytes>>) -> u16 {
    let request = http::Request::get("/orders")
        .header("host", "localhost")
        .body(Empty::new())
        .unwrap();
    let response = send.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    response.into_body().collect().await.unwrap();
    status
}

fn leaf(dir: &Path) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(dir.join("server.pem")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_reaches_the_backend_over_tls_and_a_sighup_renews_the_certificate() {
    let (old, new) = (certs("old"), certs("new"));
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let mut config = GateConfig::new(&wechat, &upstream);
    with_tls(&mut config, &old);
    let gate = Process::start(&config, &[]);
    let port = gate.addr.port();
    let resolve = format!("localhost:{port}:127.0.0.1");
    let base = format!("https://localhost:{port}");
    let ca = old.join("ca.pem");
    let ca = ca.to_str().unwrap();

    // A login and a proxied request, curl verifying wxgate's certificate.
    let (code, out) = curl(&[
        "--cacert",
        ca,
        "--resolve",
        &resolve,
        "-d",
        r#"{"code":"tess"}"#,
        &format!("{base}/login"),
    ]);
    assert_eq!(code, 0, "{out}");
    let login: serde_json::Value = serde_json::from_str(&out).expect(&out);
    let session = login["session_id"].as_str().unwrap();
    let (code, out) = curl(&[
        "--cacert",
        ca,
        "--resolve",
        &resolve,
        "--http1.1",
        "-H",
        &format!("x-session-id: {session}"),
        &format!("{base}/orders"),
    ]);
    assert_eq!(code, 0, "{out}");
    let echo: serde_json::Value = serde_json::from_str(&out).expect(&out);
    assert_eq!(header_values(&echo, "x-forwarded-proto"), ["https"]);
    // Not below TLS 1.2, and no plain HTTP on the TLS port.
    let (code, out) = curl(&[
        "--cacert",
        ca,
        "--resolve",
        &resolve,
        "--tls-max",
        "1.1",
        &format!("{base}/_wxgate/healthz"),
    ]);
    assert_ne!(code, 0, "TLS 1.1 was accepted: {out}");
    let (code, out) = curl(&[&format!("http://127.0.0.1:{port}/_wxgate/healthz")]);
    assert_ne!(code, 0, "plain HTTP was answered: {out}");

    // A connection opened before the renewal keeps working after it; a new
    // one gets the new certificate.
    let (mut before, presented) = connect(port, &[&old, &new]).await;
    assert_eq!(presented, leaf(&old));
    assert_eq!(anonymous(&mut before).await, 401);
    gate.reload(&with_tls(&mut config, &new));
    gate.until_logged(&["config reloaded"]).await;
    let (mut after, presented) = connect(port, &[&old, &new]).await;
    assert_eq!(presented, leaf(&new));
    assert_eq!(anonymous(&mut after).await, 401);
    assert_eq!(anonymous(&mut before).await, 401);

    // A renewal whose key does not match is refused; the new one serves on.
    let mut broken = GateConfig::new(&wechat, &upstream);
    with_tls(&mut broken, &new);
    broken.set(
        "server",
        "tls_key_file",
        &format!("\"{}\"", old.join("server.key").display()),
    );
    gate.reload(&broken.text());
    gate.until_logged(&["config reload refused", "server.tls_key_file"])
        .await;
    let (mut last, presented) = connect(port, &[&old, &new]).await;
    assert_eq!(presented, leaf(&new));
    assert_eq!(anonymous(&mut last).await, 401);
}

#[tokio::test]
async fn check_config_names_each_tls_mistake() {
    let (one, two) = (certs("check-one"), certs("check-two"));
    expired_certificate(&one);
    let wechat_free =
        "[upstream]\nurl = \"http://127.0.0.1:1\"\n[wechat]\nappid = \"wx1\"\nsecret = \"s\"\n";
    let file = |dir: &Path, name: &str| dir.join(name).display().to_string();
    for (server, key, says) in [
        (
            format!("tls_cert_file = \"{}\"", file(&one, "server.pem")),
            "server.tls_key_file",
            "is required",
        ),
        (
            format!(
                "tls_cert_file = \"{}\"\ntls_key_file = \"{}\"",
                file(&one, "missing.pem"),
                file(&one, "server.key")
            ),
            "server.tls_cert_file",
            "missing.pem",
        ),
        (
            format!(
                "tls_cert_file = \"{}\"\ntls_key_file = \"{}\"",
                file(&one, "server.pem"),
                file(&two, "server.key")
            ),
            "server.tls_key_file",
            "does not match",
        ),
        (
            format!(
                "tls_cert_file = \"{}\"\ntls_key_file = \"{}\"",
                file(&one, "server.key"),
                file(&one, "server.key")
            ),
            "server.tls_cert_file",
            "no CERTIFICATE",
        ),
        (
            format!(
                "tls_cert_file = \"{}\"\ntls_key_file = \"{}\"",
                file(&one, "expired.pem"),
                file(&one, "expired.key")
            ),
            "server.tls_cert_file",
            "expired on 2020-01-02",
        ),
    ] {
        let stderr = assert_refused(&format!("{wechat_free}[server]\n{server}\n"), key, says);
        // Never the key itself.
        let pem = std::fs::read_to_string(two.join("server.key")).unwrap();
        let body = pem.lines().nth(1).unwrap();
        assert!(!stderr.contains(body), "{stderr}");
    }
    let good = format!(
        "{wechat_free}[server]\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n",
        file(&one, "server.pem"),
        file(&one, "server.key")
    );
    assert_accepted(&good);
}
