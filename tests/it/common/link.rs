//! A TCP link of the tests' own between a wxgate replica and Redis, to
//! make races deterministic: while [`Link::hold`] is on, Redis's answers
//! to command connections are kept back (the commands themselves go
//! through), until [`Link::release`]. Pub/sub connections (the first to
//! send `SUBSCRIBE`) are never held, so revocations still arrive.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Clone)]
pub struct Link {
    pub addr: SocketAddr,
    held: watch::Sender<bool>,
    /// Answers kept back since start.
    answers_held: Arc<AtomicUsize>,
    /// What Redis sent down pub/sub connections, chunk by chunk.
    pubsub: Arc<Mutex<Vec<String>>>,
}

impl Link {
    pub async fn start(redis: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind link");
        let (held, _) = watch::channel(false);
        let link = Self {
            addr: listener.local_addr().expect("addr"),
            held,
            answers_held: Arc::default(),
            pubsub: Arc::default(),
        };
        let accepting = link.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(redis).await else {
                    continue;
                };
                tokio::spawn(accepting.clone().carry(client, server));
            }
        });
        link
    }

    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    pub fn hold(&self) {
        self.held.send_replace(true);
    }

    pub fn release(&self) {
        self.held.send_replace(false);
    }

    pub fn answers_held(&self) -> usize {
        self.answers_held.load(Ordering::SeqCst)
    }

    /// Waits until `probe` exceeds `than`.
    pub async fn until(&self, probe: impl Fn(&Self) -> usize, than: usize) {
        super::until("the link never saw it", || async { probe(self) > than }).await;
    }

    async fn carry(self, client: TcpStream, server: TcpStream) {
        let (mut client_read, mut client_write) = client.into_split();
        let (mut server_read, mut server_write) = server.into_split();
        let (pubsub_tx, pubsub) = watch::channel(false);
        let up = tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let n = match client_read.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if buf[..n]
                    .windows(9)
                    .any(|w| w.eq_ignore_ascii_case(b"SUBSCRIBE"))
                {
                    pubsub_tx.send_replace(true);
                }
                if server_write.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        });
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if *pubsub.borrow() {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                self.pubsub.lock().unwrap().push(text);
            } else if *self.held.borrow() {
                // The health check's PINGs share the connection: their answers
                // pass, or a hold longer than a command timeout would mark the
                // store down and the read under test would never be sent.
                let text = String::from_utf8_lossy(&buf[..n]).replace("+PONG\r\n", "");
                if !text.is_empty() {
                    self.answers_held.fetch_add(1, Ordering::SeqCst);
                    let mut held = self.held.subscribe();
                    let _ = held.wait_for(|on| !on).await;
                }
            }
            if client_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        up.abort();
    }
}
