//! One tokio timer per client connection, shared by its successive waits:
//! the upstream's answer ([`ConnectionTimer::run`]) and, through hyper's
//! `Timer` trait ([`HeadTimer`]), the next request head.
//!
//! A timer registered for every wait and cancelled when the wait ended cost
//! about 1,700 instructions per proxied request for the upstream timeout
//! alone (a wheel insert and remove under the time driver's lock, and the
//! driver's work at every park), and hyper's header-read timeout, a new
//! timer for every head, another 500. An HTTP/1.1 connection waits
//! for one thing of a kind at a time, so its waits can share a timer: the
//! first wait arms it at its deadline and it stays armed. A later wait has a
//! later deadline, so it keeps the timer as it is; if the timer fires before
//! that wait's deadline, it is re-armed to it then. The wheel is touched
//! about once per timeout per connection instead of twice per request, and
//! every wait still ends at its own deadline, never early.
//!
//! A timer armed later than a wait's deadline (a reload shortened the
//! timeout, or an upstream with a shorter one) is re-armed at once. A wait
//! dropped mid-way (the client left, the head came) gives the timer back.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// A timer one connection's waits of one kind take turns on.
#[derive(Default)]
pub struct ConnectionTimer {
    /// Taken by the wait in progress, given back after.
    timer: Mutex<Option<Pin<Box<Sleep>>>>,
}

/// The `future` did not finish within its timeout.
#[derive(Debug)]
pub struct Elapsed;

impl ConnectionTimer {
    /// `future`'s output, or `Elapsed` once `timeout` has passed from now.
    pub async fn run<F: Future>(&self, timeout: Duration, future: F) -> Result<F::Output, Elapsed> {
        let wait = Wait {
            owner: self,
            timer: None,
            deadline: Instant::now() + timeout,
        };
        tokio::select! {
            biased;
            output = future => Ok(output),
            () = wait => Err(Elapsed),
        }
    }

    /// The connection's timer, armed no later than `deadline`.
    fn take(&self, deadline: Instant) -> Pin<Box<Sleep>> {
        let held = self.timer.lock().ok().and_then(|mut slot| slot.take());
        match held {
            Some(mut timer) => {
                if timer.deadline() > deadline {
                    timer.as_mut().reset(deadline);
                }
                timer
            }
            None => Box::pin(tokio::time::sleep_until(deadline)),
        }
    }

    fn give_back(&self, timer: Pin<Box<Sleep>>) {
        if let Ok(mut slot) = self.timer.lock() {
            *slot = Some(timer);
        }
    }
}

/// Resolves at `deadline`, on its owner's timer (taken at the first poll:
/// a wait that ends before it is polled never touches the timer).
struct Wait<O: AsRef<ConnectionTimer>> {
    owner: O,
    timer: Option<Pin<Box<Sleep>>>,
    deadline: Instant,
}

impl AsRef<ConnectionTimer> for &ConnectionTimer {
    fn as_ref(&self) -> &ConnectionTimer {
        self
    }
}

impl<O: AsRef<ConnectionTimer> + Unpin> Future for Wait<O> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let deadline = this.deadline;
        let timer = match &mut this.timer {
            Some(timer) => timer,
            None => this.timer.insert(this.owner.as_ref().take(deadline)),
        };
        loop {
            ready!(timer.as_mut().poll(cx));
            if timer.deadline() >= deadline {
                return Poll::Ready(());
            }
            // It fired at an earlier wait's deadline: re-armed to this one,
            // and polled again (the loop) to register the waker.
            timer.as_mut().reset(deadline);
        }
    }
}

impl<O: AsRef<ConnectionTimer>> Drop for Wait<O> {
    fn drop(&mut self) {
        if let Some(timer) = self.timer.take() {
            self.owner.as_ref().give_back(timer);
        }
    }
}

/// hyper's header-read timeout on a connection's own timer.
#[derive(Clone, Default)]
pub struct HeadTimer(Arc<ConnectionTimer>);

impl hyper::rt::Timer for HeadTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep_until(std::time::Instant::now() + duration)
    }

    fn sleep_until(&self, deadline: std::time::Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(Wait {
            owner: self.0.clone(),
            timer: None,
            deadline: deadline.into(),
        })
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn hyper::rt::Sleep>>, new_deadline: std::time::Instant) {
        let Some(wait) = sleep
            .as_mut()
            .downcast_mut_pin::<Wait<Arc<ConnectionTimer>>>()
        else {
            *sleep = self.sleep_until(new_deadline);
            return;
        };
        let wait = wait.get_mut();
        wait.deadline = new_deadline.into();
        if let Some(timer) = &mut wait.timer
            && timer.deadline() > wait.deadline
        {
            timer.as_mut().reset(wait.deadline);
        }
    }
}

impl hyper::rt::Sleep for Wait<Arc<ConnectionTimer>> {}

#[cfg(test)]
mod tests {
    use super::*;

    // Real time (tokio's paused clock would need its test-util feature in
    // every build of bench-tool too): the bound that matters, never early,
    // holds on any machine; the upper bounds only catch a timer that never fires.
    const TIMEOUT: Duration = Duration::from_millis(300);
    const LATE: Duration = Duration::from_secs(10);

    /// Done after the timer has been polled, so it is armed.
    async fn brief() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    async fn times_out(deadline: &ConnectionTimer, timeout: Duration) -> Duration {
        let started = Instant::now();
        let answered = deadline.run(timeout, std::future::pending::<()>()).await;
        assert!(answered.is_err());
        started.elapsed()
    }

    #[tokio::test]
    async fn each_request_times_out_at_its_own_deadline() {
        let deadline = ConnectionTimer::default();
        // Arms the timer at t0 + 300 ms (a wait polled at least once)...
        assert!(deadline.run(TIMEOUT, brief()).await.is_ok());
        tokio::time::sleep(Duration::from_millis(200)).await;
        // ...which must not end a request started at t0 + 200 ms.
        let waited = times_out(&deadline, TIMEOUT).await;
        assert!(waited >= TIMEOUT && waited < LATE, "{waited:?}");
    }

    #[tokio::test]
    async fn a_shorter_timeout_rearms_the_timer_at_once() {
        let deadline = ConnectionTimer::default();
        assert!(deadline.run(LATE * 6, brief()).await.is_ok());
        let waited = times_out(&deadline, TIMEOUT).await;
        assert!(waited >= TIMEOUT && waited < LATE, "{waited:?}");
    }

    #[tokio::test]
    async fn an_answer_in_time_wins_and_a_dropped_request_gives_the_timer_back() {
        let deadline = ConnectionTimer::default();
        let slow = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            "answer"
        };
        assert_eq!(deadline.run(LATE, slow).await.ok(), Some("answer"));
        // The client leaves while the upstream thinks.
        let abandoned = deadline.run(TIMEOUT, std::future::pending::<()>());
        let _ = tokio::time::timeout(Duration::from_millis(50), abandoned).await;
        assert!(deadline.timer.lock().unwrap().is_some(), "timer given back");
        let waited = times_out(&deadline, TIMEOUT).await;
        assert!(waited >= TIMEOUT && waited < LATE, "{waited:?}");
    }
}

#[cfg(test)]
mod head_tests {
    use std::convert::Infallible;

    use bytes::Bytes;
    use http_body_util::Empty;
    use hyper::server::conn::http1;
    use hyper_util::rt::TokioIo;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    const HEAD_TIMEOUT: Duration = Duration::from_millis(300);

    /// A hyper server whose connections time heads out on a [`HeadTimer`].
    async fn server() -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let service = hyper::service::service_fn(|_| async {
                    Ok::<_, Infallible>(http::Response::new(Empty::<Bytes>::new()))
                });
                let connection = http1::Builder::new()
                    .timer(HeadTimer::default())
                    .header_read_timeout(HEAD_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), service);
                tokio::spawn(connection);
            }
        });
        addr
    }

    /// Reads until the server closes; what it sent.
    async fn until_closed(stream: &mut TcpStream) -> String {
        let mut read = Vec::new();
        let _ = stream.read_to_end(&mut read).await;
        String::from_utf8_lossy(&read).into_owned()
    }

    #[tokio::test]
    async fn a_stalled_head_is_cut_off() {
        let addr = server().await;
        let started = Instant::now();
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        until_closed(&mut stream).await;
        let waited = started.elapsed();
        assert!(
            waited >= HEAD_TIMEOUT && waited < Duration::from_secs(10),
            "{waited:?}"
        );
    }

    #[tokio::test]
    async fn the_next_head_gets_its_own_deadline() {
        let addr = server().await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        // The first head's wait arms the timer at connect + 300 ms; the head
        // comes 200 ms in. The second head's wait starts after it, so the
        // stall below may end the connection no sooner than 300 ms after.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let sent = Instant::now();
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\n")
            .await
            .unwrap();
        let answer = until_closed(&mut stream).await;
        let waited = sent.elapsed();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(
            waited >= HEAD_TIMEOUT && waited < Duration::from_secs(10),
            "{waited:?}"
        );
    }
}
