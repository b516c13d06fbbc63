//! Connection affinity: an HTTP/1.1 client connection sends its requests
//! over one upstream connection of its own, driven by the client
//! connection's own task ([`beside`]).
//!
//! Why: a pooled upstream connection is driven by a task of its own, so
//! every proxied request crossed tasks twice (the request handed to that
//! task through hyper's channel, the answer woken back) and went through a
//! checkout and a give-back. Counted with callgrind that was about 1,500
//! instructions per request, the dearest part of the hop after the header
//! map. An HTTP/1.1 client connection sends one request at a time, so one
//! upstream connection serves it whole; polling that connection's driver
//! in the same task makes every wake-up a wake-up of the task already
//! running (as linkerd2-proxy and Envoy keep an upstream connection on the
//! worker that opened it).
//!
//! What keeps the pool's promises:
//! - Only HTTP/1.1 client connections (served by `server::connection`,
//!   which runs [`beside`]) are driven; HTTP/2 streams and upgrades
//!   (WebSocket: the connection then belongs to a tunnel) use the pool.
//! - A client connection drives one upstream connection at a time: a
//!   gateway's request for another upstream than the one driven uses the
//!   pool, so alternating backends never churn connections.
//! - The first request takes the warmest pooled connection (adopting its
//!   driver from the task that kept it), or opens one; when the client
//!   connection ends, its upstream connection, if idle, goes back to the
//!   pool with a task of its own. Clients that reconnect often still reuse
//!   upstream connections.
//! - An exchange that did not end cleanly drops the sender, and the
//!   connection closes, exactly as in the pool.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

use futures_util::task::AtomicWaker;

use hyper::client::conn::http1::SendRequest;

use super::pool::{self, Driver, IDLE_TIMEOUT};
use crate::wire::body_end::BodyEnd;

/// One client connection's upstream connection, shared by its requests
/// (through `Peer`) and its task (through [`beside`]).
#[derive(Default)]
pub struct Affinity {
    /// A task runs [`beside`] for this connection: without it a driver
    /// installed here would never be polled.
    driven: AtomicBool,
    /// A driver waits in `slot.fresh` for the task to pick it up.
    fresh: AtomicBool,
    // Never contended: one HTTP/1.1 connection's requests and its task run
    // one at a time; the lock is for `Sync`.
    slot: Mutex<Slot>,
}

#[derive(Default)]
struct Slot {
    /// The pool (upstream) whose connection is driven, while there is one.
    owner: Option<u64>,
    /// Its sender between two exchanges, and since when.
    idle: Option<(SendRequest<BodyEnd>, Instant)>,
    /// A driver just installed, not yet polled by the task.
    fresh: Option<Driver>,
}

impl Affinity {
    /// Whether a task drives this connection's upstream connection.
    pub(super) fn is_driven(&self) -> bool {
        self.driven.load(Ordering::Relaxed)
    }

    /// The idle upstream connection to `pool`, if it is still open and
    /// not idle for too long (see `pool::IDLE_TIMEOUT`).
    pub(super) fn take(&self, pool: u64) -> Option<SendRequest<BodyEnd>> {
        let mut slot = self.slot.lock().ok()?;
        if slot.owner != Some(pool) {
            return None;
        }
        let (sender, since) = slot.idle.take()?;
        (!sender.is_closed() && since.elapsed() < IDLE_TIMEOUT).then_some(sender)
    }

    /// Whether a connection to `pool` may become this one's: none is
    /// driven, or the one driven is to `pool` (and was found unusable).
    pub(super) fn claims(&self, pool: u64) -> bool {
        self.slot
            .lock()
            .is_ok_and(|slot| slot.owner.is_none_or(|owner| owner == pool))
    }

    /// Makes `driver`'s connection to `pool` this one's, replacing any.
    pub(super) fn install(&self, pool: u64, driver: Driver) {
        if let Ok(mut slot) = self.slot.lock() {
            slot.owner = Some(pool);
            slot.idle = None;
            slot.fresh = Some(driver);
            self.fresh.store(true, Ordering::Relaxed);
        }
    }

    /// An exchange over the connection to `pool` ended cleanly.
    pub(super) fn give_back(&self, pool: u64, sender: SendRequest<BodyEnd>) {
        if let Ok(mut slot) = self.slot.lock()
            && slot.owner == Some(pool)
        {
            slot.idle = Some((sender, Instant::now()));
        }
    }
}

/// Runs `serving` (a client connection) with its upstream connection's
/// driver polled beside it; when `serving` ends, an idle upstream
/// connection goes back to the pool.
///
/// Each of the two is polled only when it was woken, as
/// `FuturesUnordered` does: polling both at every wake-up of the task cost
/// more than the task hop it saves (a poll of an idle hyper connection
/// tries its socket). Until a driver is installed (a connection answered
/// by wxgate alone, a 401, never has one), `serving` is polled with the
/// task's own waker and nothing is counted.
pub async fn beside<F: Future>(affinity: Arc<Affinity>, serving: F) -> F::Output {
    affinity.driven.store(true, Ordering::Relaxed);
    let mut serving = std::pin::pin!(serving);
    let mut driver: Option<Driver> = None;
    let mut wakers: Option<Wakers> = None;
    let output = std::future::poll_fn(|cx| {
        let Some(wakers) = &wakers else {
            let output = serving.as_mut().poll(cx);
            if output.is_pending() && affinity.fresh.load(Ordering::Relaxed) {
                // From now on each wake-up says whom it is for; `serving`
                // is polled again below to register its new waker.
                let new = wakers.insert(Wakers::new());
                new.wakes.woken.store(SERVING, Ordering::SeqCst);
                return new.poll(cx, &mut serving, &mut driver, &affinity);
            }
            return output;
        };
        wakers.poll(cx, &mut serving, &mut driver, &affinity)
    })
    .await;
    affinity.driven.store(false, Ordering::Relaxed);
    if let (Some(driver), Ok(mut slot)) = (driver, affinity.slot.lock())
        && let (Some(pool), Some((sender, _))) = (slot.owner.take(), slot.idle.take())
        && !sender.is_closed()
    {
        pool::park(pool, sender, driver);
    }
    output
}

const SERVING: u8 = 1;
const DRIVER: u8 = 2;

/// Whom a wake-up was for, and the task to wake.
struct Wakes {
    task: AtomicWaker,
    /// `SERVING | DRIVER`, set by their wakers.
    woken: AtomicU8,
    /// Set while the task polls: a wake-up then is seen by its loop, and
    /// waking the task again would cost it a poll.
    polling: AtomicBool,
}

/// Wakes the task, saying whom for.
struct Woken(Arc<Wakes>, u8);

impl Wake for Woken {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let wakes = &self.0;
        wakes.woken.fetch_or(self.1, Ordering::SeqCst);
        if !wakes.polling.load(Ordering::SeqCst) {
            wakes.task.wake();
        }
    }
}

/// The two wakers of a client connection that drives an upstream one.
struct Wakers {
    wakes: Arc<Wakes>,
    serving: Waker,
    driver: Waker,
}

impl Wakers {
    fn new() -> Self {
        let wakes = Arc::new(Wakes {
            task: AtomicWaker::new(),
            woken: AtomicU8::new(0),
            polling: AtomicBool::new(false),
        });
        Self {
            serving: Waker::from(Arc::new(Woken(wakes.clone(), SERVING))),
            driver: Waker::from(Arc::new(Woken(wakes.clone(), DRIVER))),
            wakes,
        }
    }

    /// Polls what was woken until nothing is.
    fn poll<F: Future>(
        &self,
        cx: &mut Context<'_>,
        serving: &mut Pin<&mut F>,
        driver: &mut Option<Driver>,
        affinity: &Affinity,
    ) -> Poll<F::Output> {
        let wakes = &self.wakes;
        wakes.task.register(cx.waker());
        // A wake-up that set nothing (a waker registered before these
        // existed) is taken to be for `serving`.
        let mut unattributed = true;
        loop {
            wakes.polling.store(true, Ordering::SeqCst);
            let woken = wakes.woken.swap(0, Ordering::SeqCst);
            if (woken & SERVING != 0 || (unattributed && woken == 0))
                && let Poll::Ready(output) = serving
                    .as_mut()
                    .poll(&mut Context::from_waker(&self.serving))
            {
                return Poll::Ready(output);
            }
            unattributed = false;
            // Installed by the request just polled: its driver runs now,
            // before the request waits for it.
            let mut fresh = false;
            if affinity.fresh.swap(false, Ordering::Relaxed)
                && let Ok(mut slot) = affinity.slot.lock()
            {
                *driver = slot.fresh.take();
                fresh = true;
            }
            let driver_woken = woken & DRIVER != 0
                || wakes.woken.fetch_and(!DRIVER, Ordering::SeqCst) & DRIVER != 0;
            if (fresh || driver_woken)
                && let Some(running) = driver.as_mut()
                && running
                    .as_mut()
                    .poll(&mut Context::from_waker(&self.driver))
                    .is_ready()
            {
                // The connection closed: requests open a new one.
                *driver = None;
                if let Ok(mut slot) = affinity.slot.lock() {
                    slot.owner = None;
                    slot.idle = None;
                }
            }
            wakes.polling.store(false, Ordering::SeqCst);
            if wakes.woken.load(Ordering::SeqCst) == 0 {
                return Poll::Pending;
            }
        }
    }
}
