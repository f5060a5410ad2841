#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use super::*;

fn batch_of(
    tracker: &Arc<FlushTracker>,
    memory: &Arc<Semaphore>,
    values: &[&'static str],
) -> BatchRecords {
    let mut batch = BatchRecords::new(tracker.clone(), MemoryShare::empty(memory.clone()));
    for value in values {
        let share = MemoryShare::try_take(memory, 10).unwrap();
        batch.push(Record::to("t").value(*value), share, None);
    }
    batch
}

fn future(batch: &BatchRecords, index: usize) -> DeliveryFuture {
    DeliveryFuture::new(batch.completion().clone(), index, None, 7)
}

#[tokio::test]
async fn a_future_polled_before_completion_is_woken() {
    let tracker = Arc::new(FlushTracker::default());
    let memory = Arc::new(Semaphore::new(100));
    let batch = batch_of(&tracker, &memory, &["a", "b"]);
    let second = future(&batch, 1);
    let waiting = tokio::spawn(second);
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished());
    batch.succeed(2, 40, -1);
    let delivery = waiting.await.unwrap().unwrap();
    assert_eq!(
        (delivery.partition, delivery.offset, delivery.timestamp),
        (2, 41, 7)
    );
    assert_eq!(memory.available_permits(), 100);
    assert_eq!(tracker.outstanding_records(), 0);
}

#[tokio::test]
async fn failure_hands_each_record_back_and_acks_zero_gives_minus_one() {
    let tracker = Arc::new(FlushTracker::default());
    let memory = Arc::new(Semaphore::new(100));
    let failed = batch_of(&tracker, &memory, &["a", "b"]);
    let (a, b) = (future(&failed, 0), future(&failed, 1));
    failed.fail(&Error::Closed("test"));
    let error_b = b.await.unwrap_err();
    assert_eq!(error_b.record.value.as_deref(), Some(&b"b"[..]));
    assert_eq!(
        &*error_b.record.topic, "t",
        "the batch keeps the topic for its records"
    );
    assert_eq!(
        a.await.unwrap_err().record.value.as_deref(),
        Some(&b"a"[..])
    );

    let unanswered = batch_of(&tracker, &memory, &["c"]);
    let c = future(&unanswered, 0);
    unanswered.succeed(0, -1, 99);
    let delivery = c.await.unwrap();
    assert_eq!((delivery.offset, delivery.timestamp), (-1, 99));
}

#[tokio::test]
async fn linked_records_get_their_offset_in_the_batch() {
    let tracker = Arc::new(FlushTracker::default());
    let memory = Arc::new(Semaphore::new(100));
    let mut batch = batch_of(&tracker, &memory, &["a"]);
    let own = Arc::new(BatchCompletion::for_topic(Arc::from("t")));
    let ticket = tracker.register();
    tracker.records_added(1);
    batch.push(
        Record::to("t").value("linked"),
        MemoryShare::empty(memory.clone()),
        Some(Linked {
            completion: own.clone(),
            ticket,
        }),
    );
    assert_eq!(batch.min_ticket(), ticket.min(1));
    let linked = DeliveryFuture::new(own, 0, None, 7);
    assert_eq!(tracker.outstanding_records(), 2);
    batch.succeed(0, 10, -1);
    assert_eq!(linked.await.unwrap().offset, 11);
    assert_eq!(
        tracker.outstanding_records(),
        0,
        "a linked record is counted once"
    );
    tracker.flush().await;
}

#[tokio::test(start_paused = true)]
async fn flush_waits_for_batches_opened_before_it_only() {
    let tracker = Arc::new(FlushTracker::default());
    let memory = Arc::new(Semaphore::new(100));
    let first = batch_of(&tracker, &memory, &["a"]);
    let flush = {
        let tracker = tracker.clone();
        tokio::spawn(async move { tracker.flush().await })
    };
    tokio::task::yield_now().await;
    let later = batch_of(&tracker, &memory, &["b"]);
    assert!(!flush.is_finished());
    assert_eq!(
        *tracker.subscribe().borrow(),
        1,
        "the flush target is the first batch"
    );
    first.succeed(0, 0, -1);
    tokio::time::timeout(Duration::from_secs(1), flush)
        .await
        .expect("flush ends once the earlier batch completed")
        .unwrap();
    assert_eq!(tracker.outstanding_records(), 1);
    drop(later);
    assert_eq!(tracker.outstanding_records(), 0);
}

#[tokio::test]
async fn a_dropped_batch_fails_with_closed_and_frees_its_memory() {
    let tracker = Arc::new(FlushTracker::default());
    let memory = Arc::new(Semaphore::new(100));
    let batch = batch_of(&tracker, &memory, &["v"]);
    let pending = future(&batch, 0);
    assert_eq!(memory.available_permits(), 90);
    drop(batch);
    let error = pending.await.unwrap_err();
    assert!(matches!(error.error, Error::Closed(_)));
    assert_eq!(error.record.value.as_deref(), Some(&b"v"[..]));
    assert_eq!(memory.available_permits(), 100);
    tracker.flush().await;
}
