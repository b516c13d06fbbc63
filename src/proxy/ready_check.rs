//! Whether a backend can serve, for `/readyz` (`ready_check`): a sidecar's
//! pod must not turn Ready while its app is still starting (a JVM not yet
//! listening), and the app, listening on 127.0.0.1 as advised, cannot be
//! probed by the kubelet itself. `"tcp"`: a connection is accepted;
//! `"/path"`: `GET /path` answers 2xx or 3xx. Each check is bounded by
//! one second, on a connection of its own (never the pool's).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::ReadyCheck;

const LIMIT: Duration = Duration::from_secs(1);

/// `Ok` when the backend at `address` (`host:port`) passes `check`, else why not.
pub async fn probe(address: &str, host: &str, check: &ReadyCheck) -> Result<(), String> {
    match tokio::time::timeout(LIMIT, attempt(address, host, check)).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {LIMIT:?}")),
    }
}

async fn attempt(address: &str, host: &str, check: &ReadyCheck) -> Result<(), String> {
    let mut stream = TcpStream::connect(address)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let ReadyCheck::Http(path) = check else {
        return Ok(());
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: wxgate-ready-check\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("cannot send: {e}"))?;
    // The status line is all that is read: `HTTP/1.1 200 …`.
    let mut head = [0u8; 16];
    let mut read = 0;
    while read < head.len() {
        match stream.read(&mut head[read..]).await {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(e) => return Err(format!("cannot read the answer: {e}")),
        }
    }
    let status = std::str::from_utf8(&head[..read])
        .ok()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse::<u16>().ok());
    match status {
        Some(200..=399) => Ok(()),
        Some(code) => Err(format!("GET {path} answered {code}")),
        None => Err(format!("GET {path} gave no HTTP answer")),
    }
}
