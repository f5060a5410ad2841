//! [`PollClock`]: when the application last asked a group consumer for a record. The
//! consumer sets it at every poll; the coordinator task leaves the group when it is older
//! than `max.poll.interval` (Kafka's `max.poll.interval.ms`), so a stuck application does
//! not hold its partitions while its heartbeats go on.
//!
//! A poll that found nothing to yield means the application is waiting for records, not
//! busy: no deadline runs until it is handed something.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
pub(crate) struct PollClock {
    base: Instant,
    /// Milliseconds from `base` to the last poll.
    last_poll_ms: AtomicU64,
    /// The last poll returned `Pending`.
    waiting: AtomicBool,
    /// Polls so far, to tell exactly whether the application polled since a moment.
    polls: AtomicU64,
}

impl PollClock {
    pub(crate) fn new() -> PollClock {
        PollClock {
            base: Instant::now(),
            last_poll_ms: AtomicU64::new(0),
            waiting: AtomicBool::new(true),
            polls: AtomicU64::new(0),
        }
    }

    /// The application asked for a record.
    pub(crate) fn polled(&self) {
        let elapsed_ms = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_poll_ms.store(elapsed_ms, Ordering::Relaxed);
        self.waiting.store(false, Ordering::Relaxed);
        self.polls.fetch_add(1, Ordering::Relaxed);
    }

    /// How many polls there were so far (compare two readings to learn whether the
    /// application polled in between).
    pub(crate) fn polls(&self) -> u64 {
        self.polls.load(Ordering::Relaxed)
    }

    /// The poll found nothing to yield: the application waits for records.
    pub(crate) fn waiting(&self) {
        self.waiting.store(true, Ordering::Relaxed);
    }

    pub(crate) fn last_poll(&self) -> Instant {
        self.base + Duration::from_millis(self.last_poll_ms.load(Ordering::Relaxed))
    }

    /// When the application will have gone `interval` without asking for a record;
    /// `None` while it waits for one.
    pub(crate) fn deadline(&self, interval: Duration) -> Option<Instant> {
        if self.waiting.load(Ordering::Relaxed) {
            return None;
        }
        Some(self.last_poll() + interval)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_deadline_runs_only_while_the_application_holds_a_record() {
        let clock = PollClock::new();
        let interval = Duration::from_secs(10);
        assert_eq!(clock.deadline(interval), None, "nothing handed out yet");
        clock.polled();
        let first = clock.deadline(interval).unwrap();
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(clock.deadline(interval), Some(first));
        clock.polled();
        assert!(clock.deadline(interval).unwrap() >= first + Duration::from_secs(3));
        let polls = clock.polls();
        clock.waiting();
        assert_eq!(clock.deadline(interval), None);
        assert_eq!(clock.polls(), polls);
        clock.polled();
        assert_eq!(clock.polls(), polls + 1);
        assert!(clock.last_poll() > Instant::now() - Duration::from_secs(1));
    }
}
