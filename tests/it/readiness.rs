//! `/readyz` says whether this replica can serve: a backend with a
//! `ready_check` that cannot serve keeps it unready, and so do app
//! credentials WeChat refuses (checked at start); the session store's
//! state is only named (tests/fleet.rs).

use crate::common::{Gate, GateConfig, Upstream, WeChatDouble, closed_port};

/// `/readyz`'s body once it answers `want`.
async fn until_readyz(gate: &Gate, want: u16) -> serde_json::Value {
    gate.readyz_until(|status, _| status == want).await.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_cannot_serve_keeps_the_replica_unready() {
    let wechat = WeChatDouble::start().await;
    for check in ["\"tcp\"", "\"/health\""] {
        let addr = closed_port().await;
        let mut config = GateConfig::with_upstream_url(&wechat, &format!("http://{addr}"));
        config.set("upstream", "ready_check", check);
        let gate = config.start().await;
        let body = until_readyz(&gate, 503).await;
        assert_eq!(body["status"], "upstream_unavailable", "{check}: {body}");
        assert_eq!(body["upstream"]["prefix"], "/", "{body}");
        // The app comes up, on the address wxgate was told.
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        crate::common::serve(listener, |_| async {
            http::Response::new(http_body_util::Full::new(bytes::Bytes::from_static(b"up")))
        });
        let body = until_readyz(&gate, 200).await;
        assert_eq!(body["status"], "ready", "{check}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_ready_check_wants_a_2xx_or_3xx() {
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let mut config = GateConfig::new(&wechat, &upstream);
    config.set("upstream", "ready_check", "\"/status/503\"");
    let gate = config.start().await;
    let body = until_readyz(&gate, 503).await;
    assert!(
        body["upstream"]["error"].as_str().unwrap().contains("503"),
        "{body}"
    );
    let mut config = GateConfig::new(&wechat, &upstream);
    config.set("upstream", "ready_check", "\"/status/204\"");
    let gate = config.start().await;
    until_readyz(&gate, 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_ready_check_a_dead_backend_does_not_matter_to_readiness() {
    let wechat = WeChatDouble::start().await;
    let addr = closed_port().await;
    let gate = GateConfig::with_upstream_url(&wechat, &format!("http://{addr}"))
        .start()
        .await;
    let body = until_readyz(&gate, 200).await;
    assert_eq!(body["status"], "ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_wechat_refuses_keep_the_replica_unready() {
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let mut config = GateConfig::new(&wechat, &upstream);
    config.set("wechat", "secret", "\"a-wrong-secret\"");
    let gate = config.start().await;
    let body = until_readyz(&gate, 503).await;
    assert_eq!(body["status"], "wechat_misconfigured", "{body}");
    assert_eq!(body["apps"][0]["errcode"], 40125, "{body}");
    assert!(!body.to_string().contains("a-wrong-secret"), "{body}");
    // A WeChat that cannot be reached is no reason to be unready.
    let mut config = GateConfig::new(&wechat, &upstream);
    let unreachable = closed_port().await;
    config.set("wechat", "api_base", &format!("\"http://{unreachable}\""));
    let gate = config.start().await;
    assert_eq!(until_readyz(&gate, 200).await["status"], "ready");
}

/// How each ready-check connection ended at a backend that logs it: the
/// probe must read the whole answer and close, never reset the connection
/// (a reset is an error line in many backends' logs, at every probe).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_ready_check_reads_the_answer_to_its_end_and_closes_cleanly() {
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let wechat = WeChatDouble::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let endings = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = endings.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if stream.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let body = vec![b'x'; 16 * 1024];
                let answer = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
                let wrote = async {
                    stream.write_all(answer.as_bytes()).await?;
                    stream.write_all(&body).await
                }
                .await;
                let ending = match (wrote, stream.read(&mut byte).await) {
                    (Ok(()), Ok(0)) => "closed cleanly".to_owned(),
                    (Ok(()), Ok(_)) => "sent more".to_owned(),
                    (Err(e), _) | (_, Err(e)) => format!("{:?}", e.kind()),
                };
                seen.lock().unwrap().push(ending);
            });
        }
    });
    let mut config = GateConfig::with_upstream_url(&wechat, &format!("http://{addr}"));
    config.set("upstream", "ready_check", "\"/health\"");
    let gate = config.start().await;
    until_readyz(&gate, 200).await;
    // Each /readyz probes the backend once more.
    crate::common::until("two probes ended", || async {
        let _ = gate.http.get(gate.admin_url("/readyz")).send().await;
        endings.lock().unwrap().len() >= 2
    })
    .await;
    let endings = endings.lock().unwrap().clone();
    assert!(endings.iter().all(|e| e == "closed cleanly"), "{endings:?}");
}
