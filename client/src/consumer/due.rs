//! Due times on the consumer's side: which records the stream must not yield yet, and
//! how the fetch loop wakes for a partition that becomes due.
//!
//! A record is not due while the consumer's clock is before its due time: the
//! producer's `strata.deliver-at-ms` (delayed delivery, any consumer of this library),
//! or, for a record of one of the group's retry topics, `strata.retry.due-ms`; with both,
//! the later one. The stream then moves the partition back to the record
//! (`Consumer::defer`): its fetch state gets `retry_at`, and no fetch loop asks for it
//! before then.
//!
//! A fetch loop that has no work sleeps until the earliest `retry_at`. One that waits
//! on a fetch (a long poll for its other partitions, up to `fetch.max.wait.ms`) would
//! only ask for the due partition once that fetch returns; [`partition_due`] resolves
//! when a partition of the loop's broker becomes fetchable by reaching its `retry_at`,
//! and the loop then gives up the outstanding fetch and asks again with the due
//! partition. Only a fetch outstanding for [`CUT_AFTER`] is given up: one with data to
//! answer is back well within it, so only long polls are cut; and the fetch after a cut
//! is never cut, so a loaded host whose fetches all take longer still makes progress.

use std::time::Duration;

use tokio::time::Instant;

use super::{Consumer, ConsumerShared};
use crate::delayed_delivery::{deliver_at_ms, wait_for};
use crate::record::ConsumedRecord;

/// How long a fetch must have been outstanding before a due partition makes the loop
/// give it up: the longest a due record waits for a long poll on other partitions.
pub(super) const CUT_AFTER: Duration = Duration::from_millis(20);

impl Consumer {
    /// When `record` must not be yielded yet: the instant it is due.
    pub(super) fn not_due(&self, record: &ConsumedRecord) -> Option<Instant> {
        let retry_due_ms = self.retry.as_ref().and_then(|retry| retry.due_ms(record));
        let due_ms = match (retry_due_ms, deliver_at_ms(record)) {
            (Some(retry), Some(delivery)) => retry.max(delivery),
            (retry, delivery) => retry.or(delivery)?,
        };
        wait_for(due_ms)
    }
}

/// When a partition led by `address` that waits for its `retry_at` becomes fetchable.
enum NextDue {
    Now,
    At(Instant),
    Never,
}

fn next_due(shared: &ConsumerShared, address: &str, now: Instant) -> NextDue {
    let metadata = shared.client.metadata();
    let state = shared.state();
    let mut next = NextDue::Never;
    for fetch in state.iter() {
        let Some(retry_at) = fetch.retry_at.filter(|_| !fetch.in_fetch) else {
            continue;
        };
        let fetchable_then = fetch.assigned
            && !fetch.paused
            && !fetch.blocked
            && fetch.buffered_chunks < super::PREFETCH_CHUNKS;
        let led_here = || {
            metadata
                .leader(&fetch.topic, fetch.partition)
                .is_some_and(|leader| leader.address == address)
        };
        if !fetchable_then || !led_here() {
            continue;
        }
        if retry_at <= now {
            return NextDue::Now;
        }
        next = match next {
            NextDue::At(earlier) if earlier <= retry_at => NextDue::At(earlier),
            _ => NextDue::At(retry_at),
        };
    }
    next
}

/// Resolves once a partition led by `address` and not being fetched reached its
/// `retry_at` (a due time or a back-off), but not before [`CUT_AFTER`] after
/// `fetch_started`. Sleeps until the earliest such time, and looks again when the
/// consumer signals a change (a `defer`, a `seek`).
pub(super) async fn partition_due(shared: &ConsumerShared, address: &str, fetch_started: Instant) {
    loop {
        let notified = shared.wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        match next_due(shared, address, Instant::now()) {
            NextDue::Now => break,
            NextDue::At(at) => {
                tokio::select! {
                    () = &mut notified => {}
                    () = tokio::time::sleep_until(at) => {}
                }
            }
            NextDue::Never => notified.await,
        }
    }
    tokio::time::sleep_until(fetch_started + CUT_AFTER).await;
}

#[cfg(test)]
#[path = "due_tests.rs"]
mod tests;
