//! The active controller's one-at-a-time rule, on a one-voter quorum.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::pin::pin;
use std::task::Poll;

use super::*;

fn producer_ids(reply: &ControllerReply) -> (i64, i64) {
    match &reply.body {
        ReplyBody::ProducerIds { first_id, count } => (*first_id, *count),
        other => panic!("not a producer id block: {other:?}"),
    }
}

/// A request whose caller stops waiting once its entry is on its way (as
/// `Quorum::submit` does when the leader changes, or a client that leaves) must keep the
/// controller to itself until the entry is applied. It once let go at once: the next
/// request was decided on the image before that entry, and two brokers could be handed
/// the same block of producer ids (a debug build stopped on the version mismatch).
#[tokio::test]
async fn a_dropped_request_keeps_the_next_one_waiting_until_its_entry_is_applied() {
    let dir = tempfile::tempdir().unwrap();
    let node = crate::node::test_node::node_with_topic(dir.path(), "t").await;
    let active = &node.quorum().active;
    let next_before = active.state_machine.image().next_producer_id;
    {
        let mut dropped = pin!(active.handle(ControllerRequest::AllocateProducerIds));
        // One poll takes the controller and sends the entry to Raft; nothing else runs
        // on this single-threaded runtime before the request is dropped.
        let polled = std::future::poll_fn(|context| {
            Poll::Ready(dropped.as_mut().poll(context).is_pending())
        })
        .await;
        assert!(polled, "the write finished within one poll");
    }
    let reply = active
        .handle(ControllerRequest::AllocateProducerIds)
        .await
        .unwrap();
    let (first_id, count) = producer_ids(&reply);
    assert_eq!(count, PRODUCER_ID_BLOCK_SIZE);
    assert_eq!(
        first_id,
        next_before + PRODUCER_ID_BLOCK_SIZE,
        "the second block follows the first (dropped) one"
    );
    assert_eq!(
        active.state_machine.image().next_producer_id,
        next_before + 2 * PRODUCER_ID_BLOCK_SIZE
    );
    node.shutdown().unwrap();
}

#[test]
fn an_isr_change_is_named_by_its_direction() {
    assert_eq!(isr_change(3, 2), "shrink");
    assert_eq!(isr_change(2, 3), "expand");
    assert_eq!(isr_change(2, 2), "replace");
}
