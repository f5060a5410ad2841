#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use tokio::sync::Semaphore;

use super::*;
use crate::producer::completion::{DeliveryFuture, FlushTracker, MemoryShare};
use crate::record::Record;

const MEMORY: usize = 1 << 20;

struct Fixture {
    tracker: Arc<FlushTracker>,
    memory: Arc<Semaphore>,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            tracker: Arc::new(FlushTracker::default()),
            memory: Arc::new(Semaphore::new(MEMORY)),
        }
    }

    fn accumulator(
        &self,
        compression: Compression,
        batch_size: usize,
        request_max: usize,
    ) -> Accumulator {
        Accumulator::new(
            compression,
            batch_size,
            request_max,
            Duration::from_millis(5),
            Duration::from_secs(120),
            self.tracker.clone(),
            self.memory.clone(),
        )
    }

    fn incoming(&self, value_bytes: usize) -> Incoming {
        Incoming {
            record: Record::to("t").value(vec![b'x'; value_bytes]),
            timestamp_ms: 1_000,
            memory: MemoryShare::try_take(&self.memory, 100).unwrap(),
            deadline: None,
            link: None,
        }
    }

    /// Appends a record and returns its future.
    fn append(&self, accumulator: &mut Accumulator, value_bytes: usize) -> DeliveryFuture {
        let placed = accumulator.append(self.incoming(value_bytes)).unwrap();
        DeliveryFuture::new(placed.completion, placed.index, Some(0), 1_000)
    }
}

#[tokio::test(start_paused = true)]
async fn batches_close_at_batch_size_and_futures_get_their_offsets() {
    let fixture = Fixture::new();
    let mut accumulator = fixture.accumulator(Compression::None, 1_000, 1 << 20);
    let futures: Vec<DeliveryFuture> = (0..10)
        .map(|_| fixture.append(&mut accumulator, 200))
        .collect();
    let mut sizes = Vec::new();
    let mut base = 100;
    while let Some(batch) = accumulator.pop_sealed() {
        assert!(
            batch.bytes.len() <= 1_000,
            "batch of {} bytes",
            batch.bytes.len()
        );
        sizes.push(batch.records.len());
        let count = batch.records.len() as i64;
        batch.records.succeed(3, base, -1);
        base += count;
    }
    // 200-byte values: four fit under 1 000 bytes with the header, the fifth would not.
    assert_eq!(sizes, [4, 4]);
    assert!(
        accumulator.linger_deadline().is_some(),
        "two records still open"
    );
    let mut futures = futures.into_iter();
    for expected in 100..108 {
        let delivery = futures.next().unwrap().await.unwrap();
        assert_eq!(
            (delivery.partition, delivery.offset, delivery.timestamp),
            (3, expected, 1_000)
        );
    }
    assert_eq!(fixture.tracker.outstanding_records(), 2);
    assert_eq!(
        fixture.memory.available_permits(),
        MEMORY - 200,
        "the completed records gave their memory back"
    );
}

#[tokio::test(start_paused = true)]
async fn a_batch_is_sealed_once_it_lingered() {
    let fixture = Fixture::new();
    let mut accumulator = fixture.accumulator(Compression::None, 16_384, 1 << 20);
    let start = Instant::now();
    let _first = fixture.append(&mut accumulator, 10);
    tokio::time::advance(Duration::from_millis(3)).await;
    let _second = fixture.append(&mut accumulator, 10);
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
async fn oversized_records_get_their_own_batch_or_are_handed_back() {
    let fixture = Fixture::new();
    let mut accumulator = fixture.accumulator(Compression::Lz4, 100, 10_000);
    let _small = fixture.append(&mut accumulator, 10);
    let _large = fixture.append(&mut accumulator, 500);
    assert_eq!(accumulator.pop_sealed().unwrap().records.len(), 1);
    accumulator.seal();
    assert_eq!(accumulator.pop_sealed().unwrap().records.len(), 1);
    let (error, incoming) = accumulator.append(fixture.incoming(20_000)).unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::MessageTooLarge));
    assert_eq!(incoming.record.value.map(|value| value.len()), Some(20_000));
    assert!(accumulator.is_empty(), "a refused record changes nothing");
}

#[tokio::test(start_paused = true)]
async fn flush_seals_batches_holding_earlier_tickets_and_expiry_fails_unsent_records() {
    let fixture = Fixture::new();
    let mut accumulator = fixture.accumulator(Compression::None, 16_384, 1 << 20);
    let first = fixture.append(&mut accumulator, 10);
    // The open batch took the newest ticket when it opened.
    let ticket = {
        let probe = fixture.tracker.register();
        probe - 1
    };
    accumulator.seal_for_flush(ticket - 1);
    assert!(
        !accumulator.has_sealed(),
        "the flush began before this batch"
    );
    accumulator.seal_for_flush(ticket);
    assert!(accumulator.has_sealed());
    let _second = fixture.append(&mut accumulator, 10);
    assert!(accumulator.earliest_deadline().is_some());
    tokio::time::advance(Duration::from_secs(121)).await;
    let last = "NOT_ENOUGH_REPLICAS (the ISR has 1 replicas, fewer than min_insync_replicas = 2)";
    accumulator.expire(Instant::now(), Duration::from_secs(120), Some(last));
    assert!(accumulator.is_empty());
    let error = first.await.unwrap_err();
    assert!(matches!(
        error.error,
        Error::Timeout {
            outcome: crate::error::WriteOutcome::NotApplied,
            ..
        }
    ));
    let message = error.error.to_string();
    assert!(
        message.contains("timed out")
            && message.ends_with(&format!("the last attempt failed with: {last}")),
        "the delivery timeout names the last retriable error: {message}"
    );
    assert_eq!(error.record.value.map(|value| value.len()), Some(10));
    assert_eq!(fixture.tracker.outstanding_records(), 0);
    assert_eq!(fixture.memory.available_permits(), MEMORY);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_accumulator_fails_its_records_with_closed() {
    let fixture = Fixture::new();
    let mut accumulator = fixture.accumulator(Compression::None, 16_384, 1 << 20);
    let open = fixture.append(&mut accumulator, 10);
    drop(accumulator);
    let error = open.await.unwrap_err();
    assert!(matches!(error.error, Error::Closed(_)), "{:?}", error.error);
    assert_eq!(fixture.tracker.outstanding_records(), 0);
    assert_eq!(fixture.memory.available_permits(), MEMORY);
}

/// Adaptive batching: while every request slot is taken, the open batch grows past
/// `batch.size` up to `max.request.size`; once a slot frees it leaves at once, without
/// waiting for its linger time, and batches close at `batch.size` again.
#[tokio::test(start_paused = true)]
async fn a_full_pipeline_grows_the_open_batch_up_to_the_request_limit() {
    let fixture = Fixture::new();
    let mut accumulator = fixture.accumulator(Compression::None, 1_000, 10_000);
    accumulator.set_pipeline_full(true);
    for _ in 0..20 {
        drop(fixture.append(&mut accumulator, 200));
    }
    assert!(
        !accumulator.has_sealed(),
        "4,000 bytes: still one open batch"
    );
    for _ in 0..40 {
        drop(fixture.append(&mut accumulator, 200));
    }
    let first = accumulator
        .pop_sealed()
        .expect("sealed at max.request.size");
    assert!(first.bytes.len() <= 10_000 && first.bytes.len() > 9_000);
    assert!(first.records.len() > 40);

    accumulator.set_pipeline_full(false);
    let now = Instant::now();
    accumulator.seal_if_ready(now);
    let grown = accumulator
        .pop_sealed()
        .expect("a grown batch leaves when a slot frees");
    assert!(grown.bytes.len() > 1_000, "{} bytes", grown.bytes.len());

    for _ in 0..10 {
        drop(fixture.append(&mut accumulator, 200));
    }
    while let Some(batch) = accumulator.pop_sealed() {
        assert!(
            batch.bytes.len() <= 1_000,
            "batch.size again: {}",
            batch.bytes.len()
        );
    }
    accumulator.seal_if_ready(now);
    assert!(
        !accumulator.has_sealed(),
        "a small open batch still waits for its linger time"
    );
}
