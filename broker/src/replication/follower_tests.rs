#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Unit tests of [`FollowerPartition`].

use strata_proto::types::{BrokerId, LeaderEpoch, Offset};

use super::epoch_fence::EpochMismatch;
use super::follower::*;
use super::truncation::TruncationStep;
use crate::controller::PartitionImage;

const LEADER: BrokerId = BrokerId(1);
const LOCAL: BrokerId = BrokerId(2);

fn epochs(pairs: &[(i32, i64)]) -> Vec<(LeaderEpoch, Offset)> {
    pairs
        .iter()
        .map(|(epoch, start)| (LeaderEpoch(*epoch), Offset(*start)))
        .collect()
}

fn answer(epoch: i32, last_offset: Option<i64>, hw: i64) -> FetchAnswer {
    FetchAnswer {
        request_leader_epoch: LeaderEpoch(epoch),
        last_offset: last_offset.map(Offset),
        leader_high_watermark: Offset(hw),
        leader_log_start_offset: Offset(0),
    }
}

fn image(leader: Option<i32>, leader_epoch: i32) -> PartitionImage {
    PartitionImage {
        replicas: vec![LEADER, LOCAL],
        leader: leader.map(BrokerId),
        leader_epoch,
        isr: vec![LEADER, LOCAL],
        partition_epoch: 1,
    }
}

#[test]
fn a_follower_asks_for_its_latest_epoch_then_fetches_from_the_truncation_point() {
    let mut follower = FollowerPartition::new(LEADER, LeaderEpoch(3));
    let local = epochs(&[(1, 0), (2, 10)]);
    assert_eq!(
        follower.next_request(&local, Offset(15)),
        FollowerRequest::OffsetsForLeaderEpoch {
            current_leader_epoch: LeaderEpoch(3),
            epoch: LeaderEpoch(2)
        }
    );
    let reply = EpochAnswer {
        request_leader_epoch: LeaderEpoch(3),
        epoch: LeaderEpoch(2),
        end_offset: Offset(12),
    };
    assert_eq!(
        follower.on_epoch_answer(reply, &local, Offset(15)),
        Ok(TruncationStep::TruncateTo(Offset(12)))
    );
    assert_eq!(
        follower.state(),
        FollowerState::Fetching {
            fetch_offset: Offset(12)
        }
    );
    assert_eq!(
        follower.next_request(&local, Offset(12)),
        FollowerRequest::Fetch {
            current_leader_epoch: LeaderEpoch(3),
            fetch_offset: Offset(12)
        }
    );
    assert_eq!(
        follower.on_epoch_answer(reply, &local, Offset(12)),
        Err(FollowerRefusal::NotTruncating)
    );
}

#[test]
fn ask_again_keeps_truncating() {
    let mut follower = FollowerPartition::new(LEADER, LeaderEpoch(4));
    let local = epochs(&[(1, 0), (3, 30)]);
    let reply = EpochAnswer {
        request_leader_epoch: LeaderEpoch(4),
        epoch: LeaderEpoch(2),
        end_offset: Offset(40),
    };
    assert_eq!(
        follower.on_epoch_answer(reply, &local, Offset(35)),
        Ok(TruncationStep::AskAgain {
            truncate_to: Offset(30),
            epoch: LeaderEpoch(1)
        })
    );
    assert_eq!(follower.state(), FollowerState::Truncating);
    assert_eq!(
        follower.next_request(&epochs(&[(1, 0)]), Offset(30)),
        FollowerRequest::OffsetsForLeaderEpoch {
            current_leader_epoch: LeaderEpoch(4),
            epoch: LeaderEpoch(1)
        }
    );
}

#[test]
fn an_empty_log_fetches_from_its_log_end_without_asking() {
    let mut follower = FollowerPartition::new(LEADER, LeaderEpoch(1));
    assert_eq!(
        follower.next_request(&[], Offset(7)),
        FollowerRequest::Fetch {
            current_leader_epoch: LeaderEpoch(1),
            fetch_offset: Offset(7)
        }
    );
}

#[test]
fn a_fetch_answer_moves_the_fetch_offset_and_caps_the_hw_at_the_local_leo() {
    let mut follower = FollowerPartition::new(LEADER, LeaderEpoch(1));
    follower.next_request(&[], Offset(0));
    assert_eq!(
        follower
            .on_fetch_answer(answer(1, None, 0))
            .unwrap()
            .next_fetch_offset,
        Offset(0)
    );
    let progress = follower.on_fetch_answer(answer(1, Some(9), 25)).unwrap();
    assert_eq!(progress.next_fetch_offset, Offset(10));
    assert_eq!(
        progress.high_watermark,
        Offset(10),
        "not past the local LEO"
    );
    let progress = follower.on_fetch_answer(answer(1, Some(29), 25)).unwrap();
    assert_eq!(progress.high_watermark, Offset(25));
    assert_eq!(
        follower.on_fetch_answer(answer(1, Some(5), 25)),
        Err(FollowerRefusal::AnswerBeforeFetchOffset {
            last_offset: Offset(5),
            fetch_offset: Offset(30)
        })
    );
}

#[test]
fn answers_of_another_epoch_are_fenced() {
    let mut follower = FollowerPartition::new(LEADER, LeaderEpoch(3));
    follower.next_request(&[], Offset(0));
    assert_eq!(
        follower.on_fetch_answer(answer(2, Some(4), 5)),
        Err(FollowerRefusal::Epoch(EpochMismatch::Fenced {
            received: LeaderEpoch(2),
            current: LeaderEpoch(3)
        }))
    );
    assert_eq!(
        follower.state(),
        FollowerState::Fetching {
            fetch_offset: Offset(0)
        },
        "a fenced answer changes nothing"
    );
    let reply = EpochAnswer {
        request_leader_epoch: LeaderEpoch(2),
        epoch: LeaderEpoch(1),
        end_offset: Offset(0),
    };
    let mut truncating = FollowerPartition::new(LEADER, LeaderEpoch(3));
    assert!(matches!(
        truncating.on_epoch_answer(reply, &epochs(&[(1, 0)]), Offset(5)),
        Err(FollowerRefusal::Epoch(EpochMismatch::Fenced { .. }))
    ));
    assert_eq!(
        truncating.on_fetch_answer(answer(3, None, 0)),
        Err(FollowerRefusal::NotFetching)
    );
}

#[test]
fn metadata_restarts_truncation_on_a_new_epoch_or_hands_over_leadership() {
    let mut follower = FollowerPartition::new(LEADER, LeaderEpoch(3));
    follower.next_request(&[], Offset(0));
    assert_eq!(
        follower.on_metadata(&image(Some(1), 3), LOCAL),
        FollowerMetadataDecision::Unchanged
    );
    assert_eq!(
        follower.on_metadata(&image(Some(3), 2), LOCAL),
        FollowerMetadataDecision::Unchanged,
        "older epoch"
    );
    assert_eq!(
        follower.on_metadata(&image(Some(1), 4), LOCAL),
        FollowerMetadataDecision::Follow {
            leader: LEADER,
            leader_epoch: LeaderEpoch(4)
        }
    );
    assert_eq!(follower.state(), FollowerState::Truncating);
    assert_eq!(follower.leader_epoch(), LeaderEpoch(4));
    assert_eq!(
        follower.on_metadata(&image(None, 5), LOCAL),
        FollowerMetadataDecision::NoLeader {
            leader_epoch: LeaderEpoch(5)
        }
    );
    assert_eq!(
        follower.on_metadata(&image(Some(2), 6), LOCAL),
        FollowerMetadataDecision::Lead {
            leader_epoch: LeaderEpoch(6)
        }
    );
    assert_eq!(follower.leader(), LEADER);
}
