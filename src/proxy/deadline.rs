//! The upstream response timeout: one tokio timer per client connection,
//! shared by its requests.
//!
//! A timer registered for every request and cancelled when the answer
//! came cost about 1,700 instructions per proxied request (a wheel insert
//! and remove under the time driver's lock, and the driver's work at every
//! park): 4% of the request. An HTTP/1.1 connection has at most one request
//! at the upstream at a time, so its requests can share one timer, as
//! hyper's header-read timeout is one per connection: the first request
//! arms it at its deadline and it stays armed. A later request has a later
//! deadline, so it keeps the timer as it is; if the timer fires before that
//! request's deadline, it is re-armed to it then. The wheel is touched about
//! once per `timeout` per connection instead of twice per request, and
//! every request still times out at its own deadline, never early.
//!
//! A timer armed later than a request's deadline (a reload shortened the
//! timeout, or an upstream with a shorter one) is re-armed at once. A
//! request dropped mid-way (the client left) gives the timer back too.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// The response timer of one client connection.
#[derive(Default)]
pub struct ResponseDeadline {
    /// Taken by the request waiting for the upstream, given back after.
    timer: Mutex<Option<Pin<Box<Sleep>>>>,
}

/// The request's `future` did not finish within its timeout.
#[derive(Debug)]
pub struct Elapsed;

impl ResponseDeadline {
    /// `future`'s output, or `Elapsed` once `timeout` has passed from now.
    pub async fn run<F: Future>(&self, timeout: Duration, future: F) -> Result<F::Output, Elapsed> {
        let deadline = Instant::now() + timeout;
        let mut held = Held {
            owner: self,
            timer: None,
        };
        let timer = held.timer.insert(self.take(deadline));
        tokio::select! {
            biased;
            output = future => Ok(output),
            () = expire(timer, deadline) => Err(Elapsed),
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
}

/// Resolves at `deadline`: the timer may be armed earlier (a past request's
/// deadline), and is then re-armed once it fires.
async fn expire(timer: &mut Pin<Box<Sleep>>, deadline: Instant) {
    loop {
        timer.as_mut().await;
        if timer.deadline() >= deadline {
            return;
        }
        timer.as_mut().reset(deadline);
    }
}

/// Gives the timer back to its connection however the request ends.
struct Held<'a> {
    owner: &'a ResponseDeadline,
    timer: Option<Pin<Box<Sleep>>>,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if let Ok(mut slot) = self.owner.timer.lock() {
            *slot = self.timer.take();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Real time (tokio's paused clock would need its test-util feature in
    // every build of bench-tool too): the bound that matters, never early,
    // holds on any machine; the upper bounds only catch a timer that never fires.
    const TIMEOUT: Duration = Duration::from_millis(300);
    const LATE: Duration = Duration::from_secs(10);

    async fn times_out(deadline: &ResponseDeadline, timeout: Duration) -> Duration {
        let started = Instant::now();
        let answered = deadline.run(timeout, std::future::pending::<()>()).await;
        assert!(answered.is_err());
        started.elapsed()
    }

    #[tokio::test]
    async fn each_request_times_out_at_its_own_deadline() {
        let deadline = ResponseDeadline::default();
        // Arms the timer at t0 + 300 ms...
        assert!(deadline.run(TIMEOUT, async {}).await.is_ok());
        tokio::time::sleep(Duration::from_millis(200)).await;
        // ...which must not end a request started at t0 + 200 ms.
        let waited = times_out(&deadline, TIMEOUT).await;
        assert!(waited >= TIMEOUT && waited < LATE, "{waited:?}");
    }

    #[tokio::test]
    async fn a_shorter_timeout_rearms_the_timer_at_once() {
        let deadline = ResponseDeadline::default();
        assert!(deadline.run(LATE * 6, async {}).await.is_ok());
        let waited = times_out(&deadline, TIMEOUT).await;
        assert!(waited >= TIMEOUT && waited < LATE, "{waited:?}");
    }

    #[tokio::test]
    async fn an_answer_in_time_wins_and_a_dropped_request_gives_the_timer_back() {
        let deadline = ResponseDeadline::default();
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
