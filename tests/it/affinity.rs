//! Connection affinity: an HTTP/1.1 client connection's requests go over
//! one upstream connection of its own; when it closes, that connection is
//! reused by later clients; a gateway's other upstreams use the pool.
//! Each answer of the echo upstream names the connection it came over.

use bytes::Bytes;
use http::Request;
use http_body_util::Empty;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::common::eventually::{PATIENCE, eventually};
use crate::common::upstream::CONNECTION;
use crate::common::{Gate, GateConfig, Upstream, WeChatDouble};

/// A keep-alive HTTP/1.1 connection to the gateway.
async fn client(gate: &Gate) -> SendRequest<Empty<Bytes>> {
    let stream = TcpStream::connect(gate.addr).await.unwrap();
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    sender
}

/// The upstream connection `path`'s answer came over.
async fn connection_of(sender: &mut SendRequest<Empty<Bytes>>, path: &str, id: &str) -> u64 {
    sender.ready().await.unwrap();
    let request = Request::get(path)
        .header("host", "gate")
        .header("x-session-id", id)
        .body(Empty::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200, "{path}");
    let number = response.headers()[CONNECTION].to_str().unwrap().parse();
    // The body read to its end: the exchange is over.
    http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap();
    number.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_client_connection_keeps_one_upstream_connection_of_its_own() {
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let gate = GateConfig::new(&wechat, &upstream).start().await;
    let id = gate.login("ada").await;
    let (mut a, mut b) = (client(&gate).await, client(&gate).await);
    // Interleaved, one at a time: a shared pool would hand the one idle
    // connection to whichever client asks next.
    let mut seen = (Vec::new(), Vec::new());
    for _ in 0..3 {
        seen.0.push(connection_of(&mut a, "/x", &id).await);
        seen.1.push(connection_of(&mut b, "/x", &id).await);
    }
    assert!(seen.0.iter().all(|c| *c == seen.0[0]), "{seen:?}");
    assert!(seen.1.iter().all(|c| *c == seen.1[0]), "{seen:?}");
    assert_ne!(seen.0[0], seen.1[0], "{seen:?}");
    // The login's round trip to WeChat opens no upstream connection.
    assert_eq!(upstream.connections(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_client_connection_leaves_its_upstream_connection_to_later_clients() {
    let wechat = WeChatDouble::start().await;
    let upstream = Upstream::start().await;
    let gate = GateConfig::new(&wechat, &upstream).start().await;
    let id = gate.login("ada").await;
    let mut first = client(&gate).await;
    let used = connection_of(&mut first, "/x", &id).await;
    drop(first);
    // Each try a new client connection, closed after one request: once the
    // gateway has seen a close, the next client reuses what it left, where
    // without it every client would open a connection of its own.
    let newest = std::cell::Cell::new(used);
    eventually(PATIENCE, "no client reused an upstream connection", || {
        let (gate, id, newest) = (&gate, &id, &newest);
        async move {
            let mut next = client(gate).await;
            let connection = connection_of(&mut next, "/x", id).await;
            let reused = connection <= newest.get();
            newest.set(connection.max(newest.get()));
            reused.then_some(())
        }
    })
    .await;
}

// One thread, as each of wxgate's per-core workers: the pool is one stack
// per thread, so the count is exact.
#[tokio::test(flavor = "current_thread")]
async fn a_gateway_client_alternating_upstreams_opens_one_connection_to_each() {
    let wechat = WeChatDouble::start().await;
    let (shop, orders) = (Upstream::start().await, Upstream::start().await);
    let mut config = GateConfig::with_upstream_url(&wechat, "http://127.0.0.1:1");
    config.remove("upstream").append(&format!(
        "[[upstreams]]\nprefix = \"/shop\"\nurl = \"http://{}\"\n\n\
         [[upstreams]]\nprefix = \"/orders\"\nurl = \"http://{}\"\n",
        shop.addr, orders.addr
    ));
    let gate = config.start().await;
    let id = gate.login("ada").await;
    let mut one = client(&gate).await;
    for _ in 0..4 {
        connection_of(&mut one, "/shop/x", &id).await;
        connection_of(&mut one, "/orders/x", &id).await;
    }
    // The client drives the first one's; the other's is pooled and reused,
    // never one new connection per switch.
    assert_eq!((shop.connections(), orders.connections()), (1, 1));
    assert_eq!((shop.hits(), orders.hits()), (4, 4));
}
