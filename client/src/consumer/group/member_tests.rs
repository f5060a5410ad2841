//! The consumer's side of a group, driven by hand: controls go in as the coordinator task
//! would send them, fetched chunks as the fetcher would push them, and the requests the
//! consumer sends back are checked. No broker, no coordinator task.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use strata_proto::record::{
    set_base_offset, set_partition_leader_epoch, BatchBuilder, BatchSettings, Record,
};
use strata_proto::types::{LeaderEpoch, Offset as WireOffset};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;

use super::*;
use crate::client::Client;
use crate::consumer::batches::{FetchedBatches, FetchedFrom};
use crate::consumer::builder::ConsumerConfig;
use crate::consumer::{Chunk, ChunkContent, ConsumerShared};

/// A group consumer without a fetcher or coordinator task, and the ends of its channels.
struct Harness {
    consumer: Consumer,
    control: mpsc::UnboundedSender<Control>,
    requests: mpsc::UnboundedReceiver<Request>,
    chunks: mpsc::Sender<Chunk>,
    events: crate::consumer::RebalanceEvents,
}

fn harness(mode: CommitMode) -> Harness {
    let shared = Arc::new(ConsumerShared::new(
        Client::for_tests(),
        ConsumerConfig::default(),
        &[],
        &[],
    ));
    let (chunks, chunk_receiver) = mpsc::channel(16);
    let (control, control_receiver) = mpsc::unbounded_channel();
    let (request_sender, requests) = mpsc::unbounded_channel();
    let clock = Arc::new(super::super::poll_clock::PollClock::new());
    let member = MemberView::new(mode, control_receiver, request_sender, clock);
    let mut consumer = Consumer::new(shared, chunk_receiver, Vec::new(), Some(member));
    let events = consumer.rebalance_events().unwrap();
    Harness {
        consumer,
        control,
        requests,
        chunks,
        events,
    }
}

/// A chunk of `topic`/`partition` holding records `first..first + count` with leader
/// epoch 7, for slot `index` at `generation`.
fn chunk(index: usize, generation: u64, partition: i32, first: i64, count: usize) -> Chunk {
    let mut builder = BatchBuilder::new(BatchSettings::default());
    for number in 0..count {
        builder
            .append(&Record::from_key_value(
                1_000,
                "k",
                format!("v{number}").into_bytes(),
            ))
            .unwrap();
    }
    let mut bytes = builder.build().unwrap().to_vec();
    set_base_offset(&mut bytes, WireOffset(first));
    set_partition_leader_epoch(&mut bytes, LeaderEpoch(7));
    let from = FetchedFrom {
        topic: Arc::from("t"),
        partition,
        fetch_offset: first,
        high_watermark: first + count as i64,
        log_start_offset: 0,
    };
    Chunk {
        index,
        generation,
        content: ChunkContent::Batches(FetchedBatches::new(from, vec![Bytes::from(bytes)])),
    }
}

fn assign(incarnation: u64, partitions: &[(i32, i64)]) -> Control {
    Control::Assign {
        incarnation,
        partitions: partitions
            .iter()
            .map(|(partition, offset)| ("t".to_owned(), *partition, *offset))
            .collect(),
    }
}

fn partitions(numbers: &[i32]) -> Vec<(String, i32)> {
    numbers
        .iter()
        .map(|number| ("t".to_owned(), *number))
        .collect()
}

/// The next record's offset, failing if none comes.
async fn next_offset(consumer: &mut Consumer) -> i64 {
    tokio::time::timeout(Duration::from_secs(5), consumer.next())
        .await
        .expect("no record")
        .expect("stream ended")
        .expect("an error item")
        .offset
}

/// Polls once more, expecting nothing to yield (the controls sent so far get applied).
async fn poll_idle(consumer: &mut Consumer) {
    let polled = tokio::time::timeout(Duration::from_millis(50), consumer.next()).await;
    assert!(polled.is_err(), "yielded {polled:?}");
}

fn offsets_of(offsets: &[OffsetToCommit]) -> Vec<(i32, i64)> {
    offsets
        .iter()
        .map(|offset| (offset.partition, offset.offset))
        .collect()
}

#[tokio::test]
async fn auto_mode_commits_what_was_processed_before_releasing_a_revoked_partition() {
    let mut h = harness(CommitMode::default());
    h.control.send(assign(0, &[(0, 0), (1, 0)])).unwrap();
    poll_idle(&mut h.consumer).await;
    assert_eq!(h.consumer.assignment(), partitions(&[0, 1]));
    // Slots 0 and 1 are at generation 1 after their first assignment.
    h.chunks.send(chunk(0, 1, 0, 0, 3)).await.unwrap();
    assert_eq!(next_offset(&mut h.consumer).await, 0);
    assert_eq!(next_offset(&mut h.consumer).await, 1);
    h.control
        .send(Control::Revoke {
            incarnation: 0,
            partitions: partitions(&[0]),
        })
        .unwrap();
    // Asking for the next record marks offset 1 processed, then applies the revocation:
    // offset 2 is never yielded, and the commit is the position after offset 1.
    poll_idle(&mut h.consumer).await;
    assert_eq!(h.consumer.assignment(), partitions(&[1]));
    match h.requests.try_recv().unwrap() {
        Request::Released {
            incarnation,
            partitions: released,
            offsets,
        } => {
            assert_eq!(incarnation, 0);
            assert_eq!(released, partitions(&[0]));
            assert_eq!(offsets_of(&offsets), vec![(0, 2)]);
            assert_eq!(offsets[0].leader_epoch, 7, "the record's leader epoch");
        }
        other => panic!("expected Released, got {other:?}"),
    }
    assert_eq!(
        h.events.try_recv(),
        Some(RebalanceEvent::Assigned(partitions(&[0, 1])))
    );
    assert_eq!(
        h.events.try_recv(),
        Some(RebalanceEvent::Revoked(partitions(&[0])))
    );
}

#[tokio::test]
async fn a_periodic_commit_leaves_out_the_record_being_processed() {
    let mut h = harness(CommitMode::default());
    h.control.send(assign(0, &[(0, 5)])).unwrap();
    poll_idle(&mut h.consumer).await;
    h.chunks.send(chunk(0, 1, 0, 5, 3)).await.unwrap();
    assert_eq!(next_offset(&mut h.consumer).await, 5);
    assert_eq!(next_offset(&mut h.consumer).await, 6);
    // Offset 6 was handed out and the application has not come back: not processed.
    h.control.send(Control::CommitDue).unwrap();
    h.consumer
        .poll_group(&mut std::task::Context::from_waker(std::task::Waker::noop()));
    match h.requests.try_recv().unwrap() {
        Request::Commit { offsets, reply, .. } => {
            assert_eq!(offsets_of(&offsets), vec![(0, 6)]);
            assert!(reply.is_none());
        }
        other => panic!("expected Commit, got {other:?}"),
    }
    // commit() takes everything yielded (the application calls it after processing).
    let pending = h.consumer.commit_nowait();
    match h.requests.try_recv().unwrap() {
        Request::Commit { offsets, reply, .. } => {
            assert_eq!(offsets_of(&offsets), vec![(0, 7)]);
            reply.unwrap().send(Ok(())).unwrap();
        }
        other => panic!("expected Commit, got {other:?}"),
    }
    pending.await.unwrap();
}

#[tokio::test]
async fn marked_mode_commits_only_marks_and_manual_mode_nothing_on_revocation() {
    let mut marked = harness(CommitMode::Marked {
        interval: Duration::from_secs(5),
    });
    marked.control.send(assign(0, &[(0, 0)])).unwrap();
    poll_idle(&mut marked.consumer).await;
    marked.chunks.send(chunk(0, 1, 0, 0, 3)).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), marked.consumer.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let marker = marked.consumer.marker().unwrap();
    assert_eq!(next_offset(&mut marked.consumer).await, 1);
    marker.mark(&first);
    marked
        .control
        .send(Control::Revoke {
            incarnation: 0,
            partitions: partitions(&[0]),
        })
        .unwrap();
    poll_idle(&mut marked.consumer).await;
    match marked.requests.try_recv().unwrap() {
        Request::Released { offsets, .. } => assert_eq!(offsets_of(&offsets), vec![(0, 1)]),
        other => panic!("expected Released, got {other:?}"),
    }

    let mut manual = harness(CommitMode::Manual);
    manual.control.send(assign(0, &[(0, 0)])).unwrap();
    poll_idle(&mut manual.consumer).await;
    manual.chunks.send(chunk(0, 1, 0, 0, 3)).await.unwrap();
    assert_eq!(next_offset(&mut manual.consumer).await, 0);
    manual
        .control
        .send(Control::Revoke {
            incarnation: 0,
            partitions: partitions(&[0]),
        })
        .unwrap();
    poll_idle(&mut manual.consumer).await;
    match manual.requests.try_recv().unwrap() {
        Request::Released { offsets, .. } => assert!(offsets.is_empty()),
        other => panic!("expected Released, got {other:?}"),
    }
}

#[tokio::test]
async fn a_lost_partition_is_dropped_without_commit_and_later_commits_carry_the_new_incarnation() {
    let mut h = harness(CommitMode::Manual);
    h.control.send(assign(0, &[(0, 0)])).unwrap();
    poll_idle(&mut h.consumer).await;
    h.chunks.send(chunk(0, 1, 0, 0, 3)).await.unwrap();
    assert_eq!(next_offset(&mut h.consumer).await, 0);
    h.control
        .send(Control::Lost {
            incarnation: 1,
            partitions: partitions(&[0]),
        })
        .unwrap();
    poll_idle(&mut h.consumer).await;
    assert!(h.consumer.assignment().is_empty());
    assert!(
        h.requests.try_recv().is_err(),
        "nothing committed or released"
    );
    h.events.try_recv();
    assert_eq!(
        h.events.try_recv(),
        Some(RebalanceEvent::Lost(partitions(&[0])))
    );
    // Given back by the new incarnation, from the committed offset 0: the records
    // fetched before the loss are not yielded again from the old chunk.
    h.control.send(assign(1, &[(0, 0)])).unwrap();
    poll_idle(&mut h.consumer).await;
    h.chunks.send(chunk(0, 3, 0, 0, 2)).await.unwrap();
    assert_eq!(next_offset(&mut h.consumer).await, 0);
    let _pending = h.consumer.commit_nowait();
    match h.requests.try_recv().unwrap() {
        Request::Commit {
            incarnation,
            offsets,
            ..
        } => {
            assert_eq!(incarnation, 1);
            assert_eq!(offsets_of(&offsets), vec![(0, 1)]);
        }
        other => panic!("expected Commit, got {other:?}"),
    }
}

#[tokio::test]
async fn chunks_fetched_before_a_revocation_are_never_yielded_after_it() {
    let mut h = harness(CommitMode::default());
    h.control.send(assign(0, &[(0, 0)])).unwrap();
    poll_idle(&mut h.consumer).await;
    h.chunks.send(chunk(0, 1, 0, 0, 3)).await.unwrap();
    h.chunks.send(chunk(0, 1, 0, 3, 3)).await.unwrap();
    assert_eq!(next_offset(&mut h.consumer).await, 0);
    h.control
        .send(Control::Revoke {
            incarnation: 0,
            partitions: partitions(&[0]),
        })
        .unwrap();
    h.control.send(assign(0, &[(0, 40)])).unwrap();
    // Both controls apply at this poll; the stale chunk (generation 1) is dropped.
    poll_idle(&mut h.consumer).await;
    h.chunks.send(chunk(0, 3, 0, 40, 1)).await.unwrap();
    assert_eq!(next_offset(&mut h.consumer).await, 40);
    assert_eq!(h.consumer.position("t", 0), Some(41));
}

#[tokio::test]
async fn close_commits_every_record_yielded_and_drop_only_the_processed_ones() {
    let mut closing = harness(CommitMode::default());
    closing.control.send(assign(0, &[(0, 0)])).unwrap();
    poll_idle(&mut closing.consumer).await;
    closing.chunks.send(chunk(0, 1, 0, 0, 3)).await.unwrap();
    assert_eq!(next_offset(&mut closing.consumer).await, 0);
    assert_eq!(next_offset(&mut closing.consumer).await, 1);
    let mut requests = closing.requests;
    let close = tokio::spawn(closing.consumer.close());
    match requests.recv().await.unwrap() {
        Request::Close { offsets, reply, .. } => {
            assert_eq!(offsets_of(&offsets), vec![(0, 2)]);
            reply.unwrap().send(Ok(())).unwrap();
        }
        other => panic!("expected Close, got {other:?}"),
    }
    close.await.unwrap().unwrap();

    let mut dropped = harness(CommitMode::default());
    dropped.control.send(assign(0, &[(0, 0)])).unwrap();
    poll_idle(&mut dropped.consumer).await;
    dropped.chunks.send(chunk(0, 1, 0, 0, 3)).await.unwrap();
    assert_eq!(next_offset(&mut dropped.consumer).await, 0);
    assert_eq!(next_offset(&mut dropped.consumer).await, 1);
    drop(dropped.consumer);
    match dropped.requests.try_recv().unwrap() {
        Request::Close { offsets, reply, .. } => {
            assert_eq!(offsets_of(&offsets), vec![(0, 1)]);
            assert!(reply.is_none());
        }
        other => panic!("expected Close, got {other:?}"),
    }
}

#[tokio::test]
async fn an_out_of_range_position_is_reset_by_auto_offset_reset_instead_of_yielded() {
    let mut h = harness(CommitMode::default());
    h.control.send(assign(0, &[(0, 3)])).unwrap();
    poll_idle(&mut h.consumer).await;
    let out_of_range = crate::error::Error::broker(
        crate::error::ErrorCode::OffsetOutOfRange,
        "offset 3 is below the log start 50",
    );
    h.chunks
        .send(Chunk {
            index: 0,
            generation: 1,
            content: ChunkContent::Error(out_of_range),
        })
        .await
        .unwrap();
    poll_idle(&mut h.consumer).await;
    match h.requests.try_recv().unwrap() {
        Request::Reset {
            incarnation,
            partition,
        } => {
            assert_eq!(incarnation, 0);
            assert_eq!(partition, ("t".to_owned(), 0));
        }
        other => panic!("expected Reset, got {other:?}"),
    }
    h.control
        .send(Control::Reset {
            incarnation: 0,
            partition: ("t".to_owned(), 0),
            offset: 50,
        })
        .unwrap();
    poll_idle(&mut h.consumer).await;
    assert_eq!(h.consumer.position("t", 0), Some(50));
    h.chunks.send(chunk(0, 2, 0, 50, 1)).await.unwrap();
    assert_eq!(next_offset(&mut h.consumer).await, 50);
    // A reset meant for an older incarnation changes nothing.
    h.control
        .send(Control::Reset {
            incarnation: 7,
            partition: ("t".to_owned(), 0),
            offset: 0,
        })
        .unwrap();
    poll_idle(&mut h.consumer).await;
    assert_eq!(h.consumer.position("t", 0), Some(51));
}

#[tokio::test]
async fn close_and_drop_of_a_marked_consumer_commit_its_marks() {
    for close in [true, false] {
        let mut h = harness(CommitMode::Marked {
            interval: Duration::from_secs(5),
        });
        h.control.send(assign(0, &[(0, 0)])).unwrap();
        poll_idle(&mut h.consumer).await;
        h.chunks.send(chunk(0, 1, 0, 0, 3)).await.unwrap();
        let first = tokio::time::timeout(Duration::from_secs(5), h.consumer.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(next_offset(&mut h.consumer).await, 1);
        h.consumer.mark(&first);
        let mut requests = h.requests;
        if close {
            let closing = tokio::spawn(h.consumer.close());
            match requests.recv().await.unwrap() {
                Request::Close { offsets, reply, .. } => {
                    assert_eq!(offsets_of(&offsets), vec![(0, 1)]);
                    reply.unwrap().send(Ok(())).unwrap();
                }
                other => panic!("expected Close, got {other:?}"),
            }
            closing.await.unwrap().unwrap();
        } else {
            drop(h.consumer);
            match requests.try_recv().unwrap() {
                Request::Close { offsets, .. } => assert_eq!(offsets_of(&offsets), vec![(0, 1)]),
                other => panic!("expected Close, got {other:?}"),
            }
        }
    }
}
