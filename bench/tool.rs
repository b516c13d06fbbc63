//! Helpers for `bench/run` (built as the `bench-tool` example):
//!
//! - `upstream ADDR`: the fast backend the proxies forward to, answering a
//!   small body; it also answers WeChat's `jscode2session` with zero
//!   latency, so logins cost wxgate's own work only.
//! - `sessions GATE_URL COUNT IDS_FILE UNKNOWN_FILE`: creates COUNT sessions
//!   through wxgate's real `/login` (64 concurrent clients), prints logins/s
//!   and latency percentiles as JSON, writes the session ids to IDS_FILE and
//!   as many well-formed unknown ids to UNKNOWN_FILE.
//! - `memory COUNT`: holds COUNT live sessions (one user each) in the memory
//!   store through its public API and prints resident bytes per session.
//! - `bare-proxy ADDR UPSTREAM THREADS`: the cheapest proxy hyper allows —
//!   threads shaped like wxgate's, one upstream connection per client
//!   connection, the request forwarded untouched. Not a product: the floor that shows which share of
//!   wxgate's cost is the HTTP stack and which is wxgate's own work.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use wxgate::config::SessionConfig;
use wxgate::config::secret::Secret;
use wxgate::domain::session::{AppTag, MemoryStore, SessionId, SessionStore, UserRecord};
use wxgate::metrics::StoreMetrics;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["upstream", addr] => runtime.block_on(upstream(addr.parse().expect("address"))),
        ["sessions", gate, count, ids, unknown] => {
            runtime.block_on(sessions(gate, count.parse().expect("count"), ids, unknown))
        }
        ["memory", count] => runtime.block_on(memory(count.parse().expect("count"))),
        ["bare-proxy", addr, upstream, threads] => bare_proxy(
            addr.parse().expect("address"),
            upstream.parse().expect("upstream"),
            threads.parse().expect("threads"),
        ),
        _ => {
            eprintln!(
                "usage: bench-tool upstream ADDR | sessions GATE_URL COUNT IDS UNKNOWN | memory COUNT \
                 | bare-proxy ADDR UPSTREAM THREADS"
            );
            std::process::exit(2);
        }
    }
}

async fn upstream(addr: SocketAddr) {
    let listener = TcpListener::bind(addr).await.expect("bind");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(answer))
                .await;
        });
    }
}

async fn answer(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    if request.uri().path() == "/sns/jscode2session" {
        let code = request
            .uri()
            .query()
            .unwrap_or("")
            .split('&')
            .find_map(|p| p.strip_prefix("js_code="))
            .unwrap_or("x")
            .to_owned();
        let body =
            format!(r#"{{"session_key":"YmVuY2hiZW5jaGJlbmNoMQ==","openid":"o{code:0>27}"}}"#);
        return Ok(Response::new(Full::new(Bytes::from(body))));
    }
    Ok(Response::new(Full::new(Bytes::from_static(
        b"{\"ok\":true}\n",
    ))))
}

/// `threads` threads, each with its own single-threaded runtime and
/// `SO_REUSEPORT` listener: the shape wxgate runs in.
fn bare_proxy(addr: SocketAddr, upstream: SocketAddr, threads: usize) {
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime")
                    .block_on(bare_proxy_thread(addr, upstream))
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.join();
    }
}

async fn bare_proxy_thread(addr: SocketAddr, upstream: SocketAddr) {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_reuseport(true).expect("SO_REUSEPORT");
    socket.bind(addr).expect("bind");
    let listener = socket.listen(1024).expect("listen");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let Ok(backend) = tokio::net::TcpStream::connect(upstream).await else {
            continue;
        };
        let _ = (stream.set_nodelay(true), backend.set_nodelay(true));
        let Ok((sender, connection)) =
            hyper::client::conn::http1::handshake::<_, Incoming>(TokioIo::new(backend)).await
        else {
            continue;
        };
        tokio::spawn(connection);
        let sender = Arc::new(tokio::sync::Mutex::new(sender));
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let sender = sender.clone();
                async move { sender.lock().await.send_request(request).await }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn sessions(gate: &str, count: usize, ids_file: &str, unknown_file: &str) {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let workers = (0..64).map(|_| {
        let (client, next, gate) = (client.clone(), next.clone(), gate.to_owned());
        tokio::spawn(async move {
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= count {
                    return done;
                }
                // A transient 503 (a slow store under full load) is retried with a new code.
                for attempt in 0..5 {
                    let sent = Instant::now();
                    let request = Request::post(format!("{gate}/login"))
                        .body(Full::new(Bytes::from(format!(
                            r#"{{"code":"bench{i}-{attempt}"}}"#
                        ))))
                        .expect("request");
                    let response = client.request(request).await.expect("login");
                    let body = response
                        .into_body()
                        .collect()
                        .await
                        .expect("body")
                        .to_bytes();
                    let value: serde_json::Value =
                        serde_json::from_slice(&body).expect("login JSON");
                    if let Some(id) = value["session_id"].as_str() {
                        done.push((id.to_owned(), sent.elapsed()));
                        break;
                    }
                    eprintln!("login {i} attempt {attempt}: {value}");
                }
            }
        })
    });
    let mut results = Vec::with_capacity(count);
    for worker in workers {
        results.extend(worker.await.expect("worker"));
    }
    let elapsed = started.elapsed();
    if results.len() < count {
        // A bench on fewer sessions than it says would measure something else.
        eprintln!(
            "sessions: only {} of {count} logins succeeded",
            results.len()
        );
        std::process::exit(1);
    }
    let mut latencies: Vec<Duration> = results.iter().map(|(_, l)| *l).collect();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    let ids: Vec<&str> = results.iter().map(|(id, _)| id.as_str()).collect();
    std::fs::write(ids_file, ids.join("\n") + "\n").expect("write ids");
    let unknown: Vec<String> = (0..count)
        .map(|_| SessionId::generate().expect("random").encode())
        .collect();
    std::fs::write(unknown_file, unknown.join("\n") + "\n").expect("write unknown ids");
    println!(
        "{}",
        serde_json::json!({
            "logins": count,
            "logins_per_s": count as f64 / elapsed.as_secs_f64(),
            "p50_ms": pct(0.50).as_secs_f64() * 1e3,
            "p99_ms": pct(0.99).as_secs_f64() * 1e3,
        })
    );
}

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

async fn memory(count: usize) {
    let config = SessionConfig {
        ttl: Duration::from_secs(7 * 86400),
        idle: None,
        capacity: count as u64 * 2,
        header: http::HeaderName::from_static("x-session-id"),
        forward_session_header: false,
    };
    let store = MemoryStore::new(&config, StoreMetrics::default(), false);
    let before = resident_bytes();
    let mut last = None;
    // One app, its AppID shared by every record (as the gateway's app table does).
    let app = AppTag::new("wxbench", true);
    for i in 0..count {
        // Shaped like real data: 28-character openid and unionid, 24-character key.
        let user = UserRecord::new(
            &app,
            &format!("o{i:0>27}"),
            Some(&format!("u{i:0>27}")),
            Secret::new(format!("{i:0>22}==")),
        )
        .expect("user");
        last = Some(store.login(user).await.expect("login").0);
    }
    // Let moka finish its bookkeeping before measuring.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let alive = match &last {
        Some(id) => store.resolve(id).await.expect("resolve").is_some(),
        None => false,
    };
    let after = resident_bytes();
    println!(
        "{}",
        serde_json::json!({
            "sessions": count,
            "resident_mib": after as f64 / 1048576.0,
            "bytes_per_session": (after.saturating_sub(before)) as f64 / count as f64,
            "last_session_alive": alive,
        })
    );
}
