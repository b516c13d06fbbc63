//! The harness's one wait: poll until something holds, for a bounded time,
//! then fail saying what never happened. Every "until" of the tests goes
//! through it, so a slow CI machine gets the same patience everywhere and
//! no test sleeps and hopes.

use std::fmt::Display;
use std::future::Future;
use std::time::{Duration, Instant};

/// How long a test waits for what must happen (a loaded 2-core machine).
pub const PATIENCE: Duration = Duration::from_secs(10);
/// How often it looks.
const EVERY: Duration = Duration::from_millis(10);

/// `probe`'s first `Some`, polled every 10 ms; panics after `within`,
/// saying `what` never happened.
pub async fn eventually<T, F, Fut>(within: Duration, what: impl Display, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(Instant::now() < deadline, "{what} (waited {within:?})");
        tokio::time::sleep(EVERY).await;
    }
}

/// [`eventually`] for a condition.
pub async fn until<F, Fut>(what: impl Display, mut holds: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    eventually(PATIENCE, what, || {
        let check = holds();
        async move { check.await.then_some(()) }
    })
    .await
}

/// A message made only when it is shown: the logs at the moment of failure.
pub struct Later<F>(pub F);

impl<F: Fn() -> String> Display for Later<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&(self.0)())
    }
}

/// [`eventually`] outside a runtime (a `Drop`, a thread of its own).
pub fn blocking<T>(
    within: Duration,
    what: impl Display,
    mut probe: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(Instant::now() < deadline, "{what} (waited {within:?})");
        std::thread::sleep(EVERY);
    }
}
