//! An `https://` upstream: a real nginx that asks for a client certificate
//! (`ssl_verify_client on`), behind a CA of the test's own (openssl). wxgate
//! reaches it with `ca_file` and its client certificate, and `ready_check`
//! works over TLS; without the client certificate nginx refuses (its 400
//! relayed), a certificate not signed by `ca_file` or a `tls_server_name`
//! it is not for is a 502 from wxgate; settings that make no sense are
//! named by `check-config`.

use std::path::{Path, PathBuf};

use crate::common::certs::{assert_accepted, assert_refused, certs, client_certificate};
use crate::common::nginx::{Nginx, free_addr};
use crate::common::{GateConfig, WeChatDouble, assert_error};

fn quoted(path: PathBuf) -> String {
    format!("\"{}\"", path.display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_upstream_is_reached_with_its_ca_and_a_client_certificate() {
    let (ours, theirs) = (certs("ours"), certs("theirs"));
    client_certificate(&ours);
    let addr = free_addr();
    let d = ours.display();
    let server = format!(
        "server {{\n listen {addr} ssl;\n ssl_certificate {d}/server.pem;\n \
         ssl_certificate_key {d}/server.key;\n ssl_client_certificate {d}/ca.pem;\n \
         ssl_verify_client on;\n location = /health {{ return 204; }}\n location / {{\n  \
         default_type application/json;\n  \
         return 200 '{{\"client\":\"$ssl_client_s_dn\",\"host\":\"$http_host\",\"uri\":\"$request_uri\",\"openid\":\"$http_x_wx_openid\"}}';\n \
         }}\n}}\n"
    );
    let _nginx = Nginx::start(&server, &[addr]).await;
    let wechat = WeChatDouble::start().await;
    let url = format!("https://127.0.0.1:{}", addr.port());
    let config = |ca: &Path, client: bool, name: Option<&str>| {
        let mut config = GateConfig::with_upstream_url(&wechat, &url);
        config
            .set("upstream", "ca_file", &quoted(ca.join("ca.pem")))
            .set("upstream", "ready_check", "\"/health\"");
        if client {
            config
                .set(
                    "upstream",
                    "client_cert_file",
                    &quoted(ours.join("client.pem")),
                )
                .set(
                    "upstream",
                    "client_key_file",
                    &quoted(ours.join("client.key")),
                );
        }
        if let Some(name) = name {
            config.set("upstream", "tls_server_name", &format!("\"{name}\""));
        }
        config
    };

    // Mutual TLS, verified against ca_file; ready over TLS.
    let gate = config(&ours, true, None).start().await;
    gate.until_ready().await;
    let id = gate.login("olga").await;
    let answer = crate::common::json(gate.get("/orders?x=1", &id)).await;
    assert_eq!(answer["client"], "CN=wxgate-client", "{answer}");
    assert_eq!(answer["uri"], "/orders?x=1", "{answer}");
    // The client's Host, as to a plain upstream.
    assert_eq!(answer["host"], gate.addr.to_string(), "{answer}");
    assert_eq!(answer["openid"], crate::common::wechat::openid_of("olga"));
    // Pooled and kept alive like a plain upstream's: a second request works.
    let again = crate::common::json(gate.get("/orders", &id)).await;
    assert_eq!(again["client"], "CN=wxgate-client");
    gate.stop().await;

    // The name verified can be another than the URL's host (SNI too).
    let gate = config(&ours, true, Some("localhost")).start().await;
    let id = gate.login("pia").await;
    assert_eq!(gate.get("/orders", &id).send().await.unwrap().status(), 200);
    gate.stop().await;

    // No client certificate: nginx refuses, and says so.
    let gate = config(&ours, false, None).start().await;
    let id = gate.login("quin").await;
    let refused = gate.get("/orders", &id).send().await.unwrap();
    assert_eq!(refused.status(), 400);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("No required SSL certificate")
    );
    gate.stop().await;

    // A certificate ca_file did not sign, or made for another name: 502.
    for (ca, name) in [(&theirs, None), (&ours, Some("wrong.example"))] {
        let gate = config(ca, true, name).start().await;
        let id = gate.login(&format!("slow:1:rex{}", name.is_some())).await;
        let response = gate.get("/orders", &id).send().await.unwrap();
        assert_error(response, 502, "upstream_unavailable").await;
        gate.stop().await;
    }
}

#[test]
fn check_config_names_upstream_tls_mistakes() {
    let dir = certs("check");
    client_certificate(&dir);
    let base = "[wechat]\nappid = \"wx1\"\nsecret = \"s\"\n[upstream]\n";
    let file = |name: &str| quoted(dir.join(name));
    for (upstream, key, says) in [
        (
            format!("url = \"http://127.0.0.1:1\"\nca_file = {}", file("ca.pem")),
            "upstream.ca_file",
            "https://",
        ),
        (
            format!(
                "url = \"https://127.0.0.1:1\"\nclient_cert_file = {}",
                file("client.pem")
            ),
            "upstream.client_key_file",
            "is required",
        ),
        (
            format!(
                "url = \"https://127.0.0.1:1\"\nclient_cert_file = {}\nclient_key_file = {}",
                file("client.pem"),
                file("server.key")
            ),
            "upstream.client_key_file",
            "is not a key of the client certificate",
        ),
        (
            format!(
                "url = \"https://127.0.0.1:1\"\nca_file = {}",
                file("nowhere.pem")
            ),
            "upstream.ca_file",
            "nowhere.pem",
        ),
        (
            "url = \"ftp://127.0.0.1:1\"".to_owned(),
            "upstream.url",
            "http:// or https://",
        ),
    ] {
        assert_refused(&format!("{base}{upstream}\n"), key, says);
    }
    let good = format!(
        "{base}url = \"https://127.0.0.1:1\"\nca_file = {}\nclient_cert_file = {}\nclient_key_file = {}\n",
        file("ca.pem"),
        file("client.pem"),
        file("client.key")
    );
    assert_accepted(&good);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_relay_to_wechat_is_trusted_by_its_ca_file() {
    let ours = certs("relay");
    let wechat = WeChatDouble::start().await;
    let addr = free_addr();
    let d = ours.display();
    // A relay with a certificate of a private CA, in front of WeChat.
    let server = format!(
        "server {{\n listen {addr} ssl;\n ssl_certificate {d}/server.pem;\n \
         ssl_certificate_key {d}/server.key;\n location / {{ proxy_pass http://{}; }}\n}}\n",
        wechat.addr
    );
    let _nginx = Nginx::start(&server, &[addr]).await;
    let upstream = crate::common::Upstream::start().await;
    for trusted in [false, true] {
        let mut config = GateConfig::new(&wechat, &upstream);
        config.set(
            "wechat",
            "api_base",
            &format!("\"https://localhost:{}\"", addr.port()),
        );
        if trusted {
            config.set("wechat", "ca_file", &quoted(ours.join("ca.pem")));
        }
        let gate = config.start().await;
        let login = gate
            .post_login(&format!(r#"{{"code":"sam{trusted}"}}"#))
            .await;
        if trusted {
            assert_eq!(login.status(), 200);
        } else {
            assert_error(login, 502, "wechat_unavailable").await;
        }
        gate.stop().await;
    }
}
