//! One deadline for a SIGTERM shutdown (`shutdown_grace_ms`), shared by its steps.
//!
//! The broker's shutdown has two waits: the controlled shutdown (the controller moves
//! leadership of this broker's partitions away while it still serves) and the drain (the
//! connections close, or are cut). Each had its own limit, half the grace and then the
//! whole grace, so a shutdown could take one and a half times `shutdown_grace_ms` before
//! the logs were closed: past a supervisor's limit set to the grace. [`ShutdownBudget`]
//! starts one deadline at the signal; the controlled shutdown may use at most half of it
//! (and at most [`ShutdownBudget::start`]'s `controlled_max`), and the drain waits only
//! for what is left. Closing the logs and writing the clean-shutdown marker come after
//! the deadline and take what the fsyncs take.

use std::time::{Duration, Instant};

/// The deadlines of one shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownBudget {
    leave_by: Instant,
    deadline: Instant,
}

impl ShutdownBudget {
    /// The budget of a shutdown whose signal came at `now`: `grace` in all, of which the
    /// controlled shutdown gets at most half and at most `controlled_max`.
    pub fn start(now: Instant, grace: Duration, controlled_max: Duration) -> ShutdownBudget {
        ShutdownBudget {
            leave_by: now + (grace / 2).min(controlled_max),
            deadline: now + grace,
        }
    }

    /// When the controlled shutdown stops waiting for the controller.
    pub fn leave_by(&self) -> Instant {
        self.leave_by
    }

    /// When the drain stops waiting for connections: the end of the whole budget.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// How long the drain may wait, starting at `now`: what is left of the budget.
    pub fn drain_within(&self, now: Instant) -> Duration {
        self.deadline.saturating_duration_since(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(30);
    const CONTROLLED_MAX: Duration = Duration::from_secs(15);

    #[test]
    fn the_controlled_shutdown_gets_at_most_half_of_the_grace() {
        let now = Instant::now();
        let budget = ShutdownBudget::start(now, GRACE, CONTROLLED_MAX);
        assert_eq!(budget.leave_by(), now + Duration::from_secs(15));
        let short = ShutdownBudget::start(now, Duration::from_secs(4), CONTROLLED_MAX);
        assert_eq!(short.leave_by(), now + Duration::from_secs(2));
        let capped = ShutdownBudget::start(now, Duration::from_secs(60), CONTROLLED_MAX);
        assert_eq!(capped.leave_by(), now + CONTROLLED_MAX);
    }

    #[test]
    fn both_waits_together_fit_in_the_grace_whatever_the_first_took() {
        let now = Instant::now();
        let budget = ShutdownBudget::start(now, GRACE, CONTROLLED_MAX);
        for leave_took_ms in [0, 1, 5_000, 15_000, 29_999, 30_000] {
            let leave_took = Duration::from_millis(leave_took_ms);
            let drain = budget.drain_within(now + leave_took);
            assert_eq!(leave_took + drain, GRACE, "{leave_took:?}");
        }
        // Past the deadline the drain does not wait at all.
        let late = now + Duration::from_secs(45);
        assert_eq!(budget.drain_within(late), Duration::ZERO);
        // The controlled shutdown used all of its half: the drain gets the other half,
        // not a whole grace.
        assert_eq!(
            budget.drain_within(budget.leave_by()),
            Duration::from_secs(15)
        );
    }
}
