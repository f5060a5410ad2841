//! [`RetryPolicy`]: how many times a failed record is tried, how long it waits between
//! attempts, which failures are not retried, and whether retries keep the partition's
//! order ([`Ordering`]).
//!
//! Defaults (`docs/RETRY.md`): 3 attempts in all (the first and two retries), waits of
//! 1 s then 2 s (×2 per retry, capped at 30 s), each with ±20 % jitter.
//!
//! Retry levels: each distinct nominal wait gets its own retry topic, in order
//! (`retry.0` for 1 s, `retry.1` for 2 s, ...); retries at the cap share the last one. A
//! retry topic then holds records that all wait about as long, so the head record of a
//! partition is (up to the jitter) the one due first.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;

use super::handler_error::HandlerError;
use crate::error::Error;

/// The most attempts a policy may make; also bounds the number of retry topics.
pub const MAX_ATTEMPTS_LIMIT: u32 = 100;

/// What a classifier says of an error: `true` when it must not be retried.
type Classifier = Arc<dyn Fn(&HandlerError) -> bool + Send + Sync>;

/// How retries keep, or give up, the order of a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Ordering {
    /// Failed records go to the group's retry topics and the partition goes on: records
    /// behind a failed one are handled before its retry (the default).
    #[default]
    None,
    /// A failed record is retried in place, after the same waits: the partition stops
    /// until it succeeds or goes to the dead-letter topic. No retry topics.
    BlockPartition,
}

/// Retries of failed records through the group's retry topics, then its dead-letter
/// topic: `RetryPolicy::default().max_attempts(5).non_retryable(|e| e.is::<MyError>())`.
#[derive(Clone)]
#[must_use]
pub struct RetryPolicy {
    pub(crate) max_attempts: u32,
    pub(crate) backoff_initial: Duration,
    pub(crate) backoff_multiplier: f64,
    pub(crate) backoff_max: Duration,
    pub(crate) jitter: f64,
    pub(crate) ordering: Ordering,
    pub(crate) handoff_timeout: Duration,
    classifier: Option<Classifier>,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            backoff_initial: Duration::from_secs(1),
            backoff_multiplier: 2.0,
            backoff_max: Duration::from_secs(30),
            jitter: 0.2,
            ordering: Ordering::None,
            handoff_timeout: Duration::from_secs(30),
            classifier: None,
        }
    }
}

impl fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("max_attempts", &self.max_attempts)
            .field("backoff_initial", &self.backoff_initial)
            .field("backoff_multiplier", &self.backoff_multiplier)
            .field("backoff_max", &self.backoff_max)
            .field("jitter", &self.jitter)
            .field("ordering", &self.ordering)
            .field("handoff_timeout", &self.handoff_timeout)
            .field("classifier", &self.classifier.is_some())
            .finish()
    }
}

/// What becomes of a record whose handler failed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Decision {
    /// Try again after `delay` (jitter applied), through retry level `level`.
    Retry { level: u32, delay: Duration },
    /// Give up: to the dead-letter topic, for this reason.
    DeadLetter(FailureKind),
}

/// Why a record is where it is (`strata.error.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureKind {
    /// It failed and will be tried again.
    Retryable,
    /// It failed with an error that no retry can fix.
    NonRetryable,
    /// It failed on its last attempt.
    Exhausted,
}

impl FailureKind {
    /// The header value: `retryable`, `non-retryable` or `exhausted`.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Retryable => "retryable",
            FailureKind::NonRetryable => "non-retryable",
            FailureKind::Exhausted => "exhausted",
        }
    }
}

impl RetryPolicy {
    /// Attempts in all, the first one included (3). 1 sends every failure to the
    /// dead-letter topic at once.
    pub fn max_attempts(mut self, attempts: u32) -> RetryPolicy {
        self.max_attempts = attempts;
        self
    }

    /// The wait before the first retry (1 s), the factor for each later one (2.0) and
    /// the cap (30 s).
    pub fn backoff(mut self, initial: Duration, multiplier: f64, max: Duration) -> RetryPolicy {
        self.backoff_initial = initial;
        self.backoff_multiplier = multiplier;
        self.backoff_max = max;
        self
    }

    /// Each wait is drawn from `nominal × (1 ± fraction)` (0.2).
    pub fn jitter(mut self, fraction: f64) -> RetryPolicy {
        self.jitter = fraction;
        self
    }

    /// Whether retries keep the partition's order ([`Ordering::None`]).
    pub fn ordering(mut self, ordering: Ordering) -> RetryPolicy {
        self.ordering = ordering;
        self
    }

    /// How long one hand-off produce may take, its retries included (30 s), before the
    /// partition is held at the record and the forward resent in the background.
    pub fn handoff_timeout(mut self, timeout: Duration) -> RetryPolicy {
        self.handoff_timeout = timeout;
        self
    }

    /// Errors for which `classify` returns `true` go to the dead-letter topic without a
    /// retry, next to those marked with [`HandlerError::non_retryable`] and decode
    /// errors.
    pub fn non_retryable<F>(mut self, classify: F) -> RetryPolicy
    where
        F: Fn(&HandlerError) -> bool + Send + Sync + 'static,
    {
        self.classifier = Some(Arc::new(classify));
        self
    }

    /// Refuses a policy that cannot work, before anything is created.
    pub(crate) fn check(&self) -> Result<(), Error> {
        let invalid = |message: String| Err(Error::InvalidConfig(message));
        if !(1..=MAX_ATTEMPTS_LIMIT).contains(&self.max_attempts) {
            return invalid(format!(
                "retry max_attempts must be from 1 to {MAX_ATTEMPTS_LIMIT}, not {}",
                self.max_attempts
            ));
        }
        if self.backoff_initial.is_zero() || self.backoff_max < self.backoff_initial {
            return invalid(format!(
                "retry backoff must start above zero and its cap must not be below the \
                 start ({:?} > {:?})",
                self.backoff_initial, self.backoff_max
            ));
        }
        if !(1.0..=1000.0).contains(&self.backoff_multiplier) {
            return invalid(format!(
                "retry backoff multiplier must be from 1 to 1000, not {}",
                self.backoff_multiplier
            ));
        }
        if self.handoff_timeout < Duration::from_millis(100) {
            return invalid(format!(
                "retry handoff_timeout must be at least 100 ms, not {:?}",
                self.handoff_timeout
            ));
        }
        if !(0.0..1.0).contains(&self.jitter) {
            return invalid(format!(
                "retry jitter must be from 0 (included) to 1, not {}",
                self.jitter
            ));
        }
        Ok(())
    }

    /// The nominal wait before retry `retry` (1 for the first), without jitter.
    pub(crate) fn nominal_delay(&self, retry: u32) -> Duration {
        let exponent = i32::try_from(retry.saturating_sub(1)).unwrap_or(i32::MAX);
        let factor = self.backoff_multiplier.powi(exponent);
        let seconds =
            (self.backoff_initial.as_secs_f64() * factor).min(self.backoff_max.as_secs_f64());
        Duration::try_from_secs_f64(seconds).unwrap_or(self.backoff_max)
    }

    /// The distinct nominal waits, in order: the waits of retry levels 0, 1, ...
    pub(crate) fn level_delays(&self) -> Vec<Duration> {
        let mut delays: Vec<Duration> = Vec::new();
        for retry in 1..self.max_attempts {
            let delay = self.nominal_delay(retry);
            if delays.last() != Some(&delay) {
                delays.push(delay);
            }
        }
        delays
    }

    /// The retry level (topic `retry.<level>`) of retry `retry` (1 for the first).
    pub(crate) fn level_of(&self, retry: u32) -> u32 {
        let delay = self.nominal_delay(retry);
        let position = self
            .level_delays()
            .iter()
            .position(|level| *level == delay)
            .unwrap_or(0);
        u32::try_from(position).unwrap_or(0)
    }

    /// `delay` with the policy's jitter applied.
    pub(crate) fn jittered(&self, delay: Duration) -> Duration {
        if self.jitter == 0.0 {
            return delay;
        }
        let factor = rand::thread_rng().gen_range(1.0 - self.jitter..=1.0 + self.jitter);
        delay.mul_f64(factor)
    }

    /// Whether `error` may be retried.
    pub(crate) fn is_retryable(&self, error: &HandlerError) -> bool {
        !error.is_marked_non_retryable()
            && !self
                .classifier
                .as_ref()
                .is_some_and(|classify| classify(error))
    }

    /// What to do with a record whose attempt number `attempt` (1 for the first) failed
    /// with `error`.
    pub(crate) fn decide(&self, attempt: u32, error: &HandlerError) -> Decision {
        if !self.is_retryable(error) {
            return Decision::DeadLetter(FailureKind::NonRetryable);
        }
        if attempt >= self.max_attempts {
            return Decision::DeadLetter(FailureKind::Exhausted);
        }
        Decision::Retry {
            level: self.level_of(attempt),
            delay: self.jittered(self.nominal_delay(attempt)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(seconds: u64) -> Duration {
        Duration::from_secs(seconds)
    }

    #[test]
    fn defaults_retry_twice_after_about_one_and_two_seconds() {
        let policy = RetryPolicy::default();
        assert!(policy.check().is_ok());
        assert_eq!(policy.level_delays(), vec![secs(1), secs(2)]);
        let failure = HandlerError::msg("later");
        for (attempt, level, nominal_ms) in [(1, 0, 1000.0), (2, 1, 2000.0)] {
            match policy.decide(attempt, &failure) {
                Decision::Retry { level: got, delay } => {
                    assert_eq!(got, level);
                    let ms = delay.as_secs_f64() * 1000.0;
                    assert!(ms >= nominal_ms * 0.8 - 0.001 && ms <= nominal_ms * 1.2 + 0.001);
                }
                other => panic!("attempt {attempt}: {other:?}"),
            }
        }
        assert_eq!(
            policy.decide(3, &failure),
            Decision::DeadLetter(FailureKind::Exhausted)
        );
    }

    #[test]
    fn waits_at_the_cap_share_the_last_level() {
        let policy = RetryPolicy::default()
            .max_attempts(10)
            .backoff(secs(1), 2.0, secs(30))
            .jitter(0.0);
        assert_eq!(
            policy.level_delays(),
            vec![secs(1), secs(2), secs(4), secs(8), secs(16), secs(30)]
        );
        assert_eq!(policy.level_of(6), 5);
        assert_eq!(policy.level_of(9), 5);
        assert_eq!(policy.nominal_delay(40), secs(30));
        let flat = RetryPolicy::default()
            .max_attempts(4)
            .backoff(secs(5), 1.0, secs(5));
        assert_eq!(flat.level_delays(), vec![secs(5)]);
        assert_eq!(flat.level_of(3), 0);
    }

    #[test]
    fn non_retryable_errors_skip_the_retries() {
        #[derive(Debug, thiserror::Error)]
        #[error("bad order")]
        struct BadOrder;
        let policy = RetryPolicy::default().non_retryable(|error| error.is::<BadOrder>());
        let kind = |error| policy.decide(1, &error);
        assert_eq!(
            kind(HandlerError::from(BadOrder)),
            Decision::DeadLetter(FailureKind::NonRetryable)
        );
        assert_eq!(
            kind(HandlerError::non_retryable(std::io::Error::other("x"))),
            Decision::DeadLetter(FailureKind::NonRetryable)
        );
        assert!(matches!(
            kind(HandlerError::msg("later")),
            Decision::Retry { level: 0, .. }
        ));
        assert_eq!(
            RetryPolicy::default()
                .max_attempts(1)
                .decide(1, &HandlerError::msg("x")),
            Decision::DeadLetter(FailureKind::Exhausted)
        );
    }

    #[test]
    fn policies_that_cannot_work_are_refused() {
        let bad = [
            RetryPolicy::default().max_attempts(0),
            RetryPolicy::default().max_attempts(MAX_ATTEMPTS_LIMIT + 1),
            RetryPolicy::default().backoff(Duration::ZERO, 2.0, secs(1)),
            RetryPolicy::default().backoff(secs(2), 2.0, secs(1)),
            RetryPolicy::default().backoff(secs(1), 0.5, secs(1)),
            RetryPolicy::default().jitter(1.0),
            RetryPolicy::default().jitter(-0.1),
            RetryPolicy::default().handoff_timeout(Duration::from_millis(99)),
        ];
        for policy in bad {
            let error = policy.check().err();
            assert!(
                error.is_some_and(|error| error.code_name() == "INVALID_CONFIG"),
                "{policy:?}"
            );
        }
    }
}
