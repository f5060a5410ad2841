//! Bounded waits for conditions that become true eventually: a leader is elected, a
//! restarted broker serves again. They poll; the time limit only bounds a hang, so a
//! broken broker fails the test instead of blocking CI, and never decides a verdict (a
//! test must not assert that something took less than some time).
//!
//! Each attempt runs under what is left of the limit, so an attempt that hangs (a request
//! to a paused broker) cannot stretch the wait either.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use anyhow::bail;
use tokio::time::Instant;

/// Time between two attempts.
const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// Polls `condition` until it returns true; fails when `within` has passed first, naming
/// `what` was waited for.
pub async fn wait_until<F, Fut>(
    what: &str,
    within: Duration,
    mut condition: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_for(what, within, || {
        let attempt = condition();
        async move {
            if attempt.await {
                Ok(())
            } else {
                Err("not yet")
            }
        }
    })
    .await
}

/// Polls `attempt` until it returns `Ok`, and returns that value; fails when `within` has
/// passed first, with the last error seen (e.g. "leader unknown" or "connection
/// refused").
pub async fn wait_for<T, E, F, Fut>(
    what: &str,
    within: Duration,
    mut attempt: F,
) -> anyhow::Result<T>
where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let deadline = Instant::now() + within;
    let mut attempts = 0_u64;
    loop {
        attempts += 1;
        let last_error = match tokio::time::timeout_at(deadline, attempt()).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => error.to_string(),
            Err(_) => "the last attempt was still running".to_owned(),
        };
        if Instant::now() + POLL_INTERVAL >= deadline {
            bail!("timed out after {within:?} ({attempts} attempts) waiting until {what}: {last_error}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}
