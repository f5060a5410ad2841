#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use tokio::sync::oneshot;

use super::*;
use crate::producer::pending::FlushTracker;
use crate::producer::SendError;
use crate::record::{Delivery, Record};

type Receiver = oneshot::Receiver<Result<Delivery, SendError>>;

fn pending(tracker: &Arc<FlushTracker>, value_bytes: usize) -> (Pending, Receiver) {
    let (done, receiver) = oneshot::channel();
    let record = Record::to("t").value(vec![b'x'; value_bytes]);
    let deadline = Instant::now() + Duration::from_secs(120);
    let pending = Pending::new(record, 1_000, deadline, done, tracker.clone(), None);
    (pending, receiver)
}

fn accumulator(batch_size_bytes: usize) -> Accumulator {
    Accumulator::new(
        Compression::None,
        batch_size_bytes,
        1 << 20,
        Duration::from_millis(5),
    )
}

#[tokio::test(start_paused = true)]
async fn batches_close_at_batch_size() {
    let tracker = Arc::new(FlushTracker::default());
    let mut accumulator = accumulator(1_000);
    let mut receivers = Vec::new();
    for _ in 0..10 {
        let (record, receiver) = pending(&tracker, 200);
        receivers.push(receiver);
        accumulator.append(record, Instant::now());
    }
    let mut sizes = Vec::new();
    while let Some(batch) = accumulator.pop_sealed() {
        assert!(
            batch.bytes.len() <= 1_000,
            "batch of {} bytes",
            batch.bytes.len()
        );
        sizes.push(batch.records.len());
    }
    // 200-byte values: four fit under 1 000 bytes with the header, the fifth would not.
    assert_eq!(sizes, [4, 4]);
    assert!(
        accumulator.linger_deadline().is_some(),
        "two records still open"
    );
}

#[tokio::test(start_paused = true)]
async fn a_batch_is_sealed_once_it_lingered() {
    let tracker = Arc::new(FlushTracker::default());
    let mut accumulator = accumulator(16_384);
    let start = Instant::now();
    let (first, _first) = pending(&tracker, 10);
    accumulator.append(first, start);
    tokio::time::advance(Duration::from_millis(3)).await;
    let (second, _second) = pending(&tracker, 10);
    accumulator.append(second, Instant::now());
    assert_eq!(
        accumulator.linger_deadline(),
        Some(start + Duration::from_millis(5))
    );
    accumulator.seal_if_lingered(Instant::now());
    assert!(!accumulator.has_sealed(), "only 3 ms lingered");
    tokio::time::advance(Duration::from_millis(2)).await;
    accumulator.seal_if_lingered(Instant::now());
    let batch = accumulator.pop_sealed().unwrap();
    assert_eq!(
        batch.records.len(),
        2,
        "linger counts from the first record"
    );
    assert!(accumulator.is_empty());
}

#[tokio::test(start_paused = true)]
async fn oversized_records_get_their_own_batch_or_fail() {
    let tracker = Arc::new(FlushTracker::default());
    let mut accumulator = Accumulator::new(Compression::Lz4, 100, 10_000, Duration::from_millis(5));
    let (small, _small) = pending(&tracker, 10);
    accumulator.append(small, Instant::now());
    let (large, _large) = pending(&tracker, 500);
    accumulator.append(large, Instant::now());
    assert_eq!(accumulator.pop_sealed().unwrap().records.len(), 1);
    assert_eq!(accumulator.pop_sealed().unwrap().records.len(), 1);
    let (huge, huge_result) = pending(&tracker, 20_000);
    accumulator.append(huge, Instant::now());
    let error = huge_result.await.unwrap().unwrap_err();
    assert_eq!(error.error.code(), Some(ErrorCode::MessageTooLarge));
    assert_eq!(error.record.value.map(|value| value.len()), Some(20_000));
}

#[tokio::test(start_paused = true)]
async fn flush_seals_batches_holding_earlier_tickets_and_expiry_fails_unsent_records() {
    let tracker = Arc::new(FlushTracker::default());
    let mut accumulator = accumulator(16_384);
    let (first, first_result) = pending(&tracker, 10);
    let ticket = first.ticket;
    accumulator.append(first, Instant::now());
    accumulator.seal_for_flush(ticket - 1);
    assert!(
        !accumulator.has_sealed(),
        "the flush began before this record"
    );
    accumulator.seal_for_flush(ticket);
    assert!(accumulator.has_sealed());
    let (second, _second) = pending(&tracker, 10);
    accumulator.append(second, Instant::now());
    assert!(accumulator.earliest_deadline().is_some());
    tokio::time::advance(Duration::from_secs(121)).await;
    accumulator.expire(Instant::now(), Duration::from_secs(120));
    assert!(accumulator.is_empty());
    let error = first_result.await.unwrap().unwrap_err();
    assert!(matches!(
        error.error,
        Error::Timeout {
            outcome: crate::error::WriteOutcome::NotApplied,
            ..
        }
    ));
    assert_eq!(tracker.outstanding(), 0);
}
