//! Back-off between retries, shared by the producer's partition tasks and the consumer's
//! fetch loops: `base × 2^(attempt-1)`, capped, with ±20 % jitter so partitions that
//! failed together do not retry in lock-step.

use std::time::Duration;

use rand::Rng;

/// The wait before retry number `attempt` (1 for the first retry).
pub(crate) fn backoff(base: Duration, max: Duration, attempt: u32) -> Duration {
    let exponent = attempt.saturating_sub(1).min(16);
    let delay = base.saturating_mul(1 << exponent).min(max);
    let jitter = rand::thread_rng().gen_range(0.8..=1.2);
    delay.mul_f64(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_bounded_jitter() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(1);
        for (attempt, nominal_ms) in [(1, 100.0), (2, 200.0), (3, 400.0), (4, 800.0), (9, 1000.0)] {
            let delay = backoff(base, max, attempt).as_secs_f64() * 1000.0;
            assert!(
                delay >= nominal_ms * 0.8 - 0.001 && delay <= nominal_ms * 1.2 + 0.001,
                "attempt {attempt}: {delay} ms"
            );
        }
        assert!(backoff(base, max, u32::MAX) <= Duration::from_millis(1200));
    }
}
