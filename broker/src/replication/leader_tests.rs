#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Unit tests of [`LeaderPartition`], one rule each.

use std::time::{Duration, Instant};

use strata_proto::types::{BrokerId, LeaderEpoch, Offset};

use super::epoch_fence::EpochMismatch;
use super::leader::*;
use crate::controller::PartitionImage;

const LEADER: BrokerId = BrokerId(1);
const B: BrokerId = BrokerId(2);
const C: BrokerId = BrokerId(3);
const LAG: Duration = Duration::from_secs(10);

fn ids(raw: &[i32]) -> Vec<BrokerId> {
    raw.iter().map(|id| BrokerId(*id)).collect()
}

/// Replicas 1, 2, 3 led by 1 at epoch 5, partition epoch 7, LEO 10, HW 10.
fn leader_with_isr(isr: &[i32], min_insync_replicas: usize, now: Instant) -> LeaderPartition {
    let start = LeaderStart {
        local: LEADER,
        replicas: ids(&[1, 2, 3]),
        isr: ids(isr),
        leader_epoch: LeaderEpoch(5),
        partition_epoch: 7,
        log_end_offset: Offset(10),
        high_watermark: Offset(10),
    };
    let config = LeaderConfig {
        min_insync_replicas,
        replica_lag_max: LAG,
    };
    LeaderPartition::new(start, config, now)
}

fn fetch(
    leader: &mut LeaderPartition,
    follower: BrokerId,
    offset: i64,
    now: Instant,
) -> Result<FetchDecision, FetchRefusal> {
    let fetch = FollowerFetch {
        follower,
        fetch_offset: Offset(offset),
        current_leader_epoch: LeaderEpoch(5),
    };
    leader.on_follower_fetch(fetch, now)
}

fn image(
    leader: Option<i32>,
    leader_epoch: i32,
    isr: &[i32],
    partition_epoch: i32,
) -> PartitionImage {
    PartitionImage {
        replicas: ids(&[1, 2, 3]),
        leader: leader.map(BrokerId),
        leader_epoch,
        isr: ids(isr),
        partition_epoch,
    }
}

#[test]
fn hw_follows_the_leader_when_it_is_the_only_isr_member() {
    let now = Instant::now();
    let mut leader = leader_with_isr(&[1], 1, now);
    assert_eq!(leader.on_leader_append(Offset(15)), Some(Offset(15)));
    assert_eq!(leader.high_watermark(), Offset(15));
}

#[test]
fn a_stale_log_end_report_is_ignored() {
    // Two appenders read the durable offset, then take the leader's lock in the other
    // order: the older, smaller report arrives second (row 11 of the fault matrix).
    let now = Instant::now();
    let mut leader = leader_with_isr(&[1], 1, now);
    assert_eq!(leader.on_leader_append(Offset(20)), Some(Offset(20)));
    assert_eq!(leader.on_leader_append(Offset(15)), None);
    assert_eq!(leader.log_end_offset(), Offset(20));
    assert_eq!(leader.high_watermark(), Offset(20));
}

#[test]
fn hw_is_the_minimum_isr_leo_and_never_decreases() {
    let now = Instant::now();
    let mut leader = leader_with_isr(&[1, 2, 3], 2, now);
    assert_eq!(
        leader.on_leader_append(Offset(20)),
        None,
        "followers unknown"
    );
    let decision = fetch(&mut leader, B, 18, now).unwrap();
    assert_eq!(
        decision.new_high_watermark, None,
        "C's LEO is still unknown"
    );
    assert_eq!(decision.high_watermark, Offset(10));
    let decision = fetch(&mut leader, C, 14, now).unwrap();
    assert_eq!(decision.new_high_watermark, Some(Offset(14)));
    assert_eq!(
        fetch(&mut leader, C, 20, now).unwrap().new_high_watermark,
        Some(Offset(18))
    );
    // A follower fetching from lower (it restarted and lost a tail) cannot lower the HW.
    assert_eq!(
        fetch(&mut leader, B, 12, now).unwrap().new_high_watermark,
        None
    );
    assert_eq!(leader.high_watermark(), Offset(18));
}

#[test]
fn a_non_replica_a_stale_epoch_and_an_offset_past_the_leo_are_refused() {
    let now = Instant::now();
    let mut leader = leader_with_isr(&[1, 2, 3], 2, now);
    assert_eq!(
        fetch(&mut leader, BrokerId(9), 10, now),
        Err(FetchRefusal::NotAReplica {
            broker: BrokerId(9)
        })
    );
    assert_eq!(
        fetch(&mut leader, LEADER, 10, now),
        Err(FetchRefusal::NotAReplica { broker: LEADER })
    );
    assert_eq!(
        fetch(&mut leader, B, 11, now),
        Err(FetchRefusal::OffsetOutOfRange {
            fetch_offset: Offset(11),
            log_end_offset: Offset(10)
        })
    );
    let stale = FollowerFetch {
        follower: B,
        fetch_offset: Offset(10),
        current_leader_epoch: LeaderEpoch(4),
    };
    assert_eq!(
        leader.on_follower_fetch(stale, now),
        Err(FetchRefusal::Epoch(EpochMismatch::Fenced {
            received: LeaderEpoch(4),
            current: LeaderEpoch(5)
        }))
    );
    assert_eq!(leader.follower_log_end_offset(B), None, "nothing recorded");
}

#[test]
fn a_follower_lagging_past_replica_lag_max_is_proposed_out() {
    let start = Instant::now();
    let mut leader = leader_with_isr(&[1, 2, 3], 2, start);
    fetch(&mut leader, B, 10, start).unwrap();
    fetch(&mut leader, C, 10, start).unwrap();
    leader.on_leader_append(Offset(20));
    // B keeps up: each fetch reaches the LEO the leader had at its previous fetch.
    for second in 1..=12 {
        let now = start + Duration::from_secs(second);
        fetch(&mut leader, B, 20, now).unwrap();
        leader.on_leader_append(Offset(20 + second as i64));
        fetch(&mut leader, B, 20 + second as i64 - 1, now).unwrap();
    }
    let at = start + LAG;
    assert_eq!(
        leader.isr_change(at),
        None,
        "C is exactly replica_lag_max behind"
    );
    let later = at + Duration::from_millis(1);
    let proposal = leader.isr_change(later).unwrap();
    assert_eq!(proposal.change, IsrChange::Shrink { removed: vec![C] });
    assert_eq!(proposal.new_isr, ids(&[1, 2]));
    assert_eq!(proposal.partition_epoch, 7);
    assert_eq!(leader.isr_change(later), None, "one proposal in flight");
}

#[test]
fn caught_up_follows_kafkas_last_caught_up_time() {
    let start = Instant::now();
    let mut leader = leader_with_isr(&[1, 2], 1, start);
    let second = |n: u64| start + Duration::from_secs(n);
    // At t=5 B fetches 10 while the LEO is 10: caught up at t=5. LEO then grows to 30.
    fetch(&mut leader, B, 10, second(5)).unwrap();
    leader.on_leader_append(Offset(30));
    // At t=14 B fetches 20: below both the LEO now (30) and the LEO at its previous fetch
    // (10 ≤ 20, so it reached that): caught up as of its previous fetch, t=5.
    fetch(&mut leader, B, 20, second(14)).unwrap();
    assert_eq!(
        leader.isr_change(second(15)),
        None,
        "t=15 is 10 s after t=5"
    );
    // At t=16 B fetches 25 < 30, the LEO at its previous fetch: no progress recorded.
    fetch(&mut leader, B, 25, second(16)).unwrap();
    assert!(leader.isr_change(second(16)).is_some(), "11 s since t=5");
}

#[test]
fn an_idle_follower_at_the_leader_leo_stays_in_sync() {
    let start = Instant::now();
    let mut leader = leader_with_isr(&[1, 2], 1, start);
    fetch(&mut leader, B, 10, start).unwrap();
    assert_eq!(leader.isr_change(start + Duration::from_secs(3600)), None);
}

#[test]
fn a_pending_shrink_holds_the_hw_until_committed() {
    let start = Instant::now();
    let mut leader = leader_with_isr(&[1, 2, 3], 2, start);
    fetch(&mut leader, B, 10, start).unwrap();
    fetch(&mut leader, C, 10, start).unwrap();
    leader.on_leader_append(Offset(20));
    let later = start + LAG + Duration::from_secs(1);
    fetch(&mut leader, B, 20, later).unwrap();
    let proposal = leader.isr_change(later).unwrap();
    assert_eq!(proposal.new_isr, ids(&[1, 2]));
    // C is leaving but the controller has not said so: the HW still waits for it.
    assert_eq!(leader.high_watermark(), Offset(10));
    assert_eq!(leader.acks_all_ready(Offset(15)), AckState::Waiting);
    assert_eq!(leader.on_isr_committed(ids(&[1, 2]), 8), Some(Offset(20)));
    assert_eq!(leader.isr(), ids(&[1, 2]));
    assert_eq!(leader.pending(), None);
    assert_eq!(leader.acks_all_ready(Offset(15)), AckState::Ready);
    assert_eq!(leader.on_isr_committed(ids(&[1]), 8), None, "stale answer");
    assert_eq!(leader.isr(), ids(&[1, 2]));
}

#[test]
fn a_refused_proposal_leaves_the_isr_and_may_be_proposed_again() {
    let start = Instant::now();
    let mut leader = leader_with_isr(&[1, 2], 1, start);
    leader.on_leader_append(Offset(20));
    let later = start + LAG + Duration::from_secs(1);
    let first = leader.isr_change(later).unwrap();
    let mut other = first.clone();
    other.partition_epoch = 6;
    leader.on_isr_refused(&other);
    assert_eq!(leader.pending(), Some(&first), "not the pending proposal");
    leader.on_isr_refused(&first);
    assert_eq!(leader.isr(), ids(&[1, 2]));
    assert_eq!(leader.pending(), None);
    assert_eq!(leader.isr_change(later), Some(first));
}

#[test]
fn a_replica_joins_once_at_the_hw_and_the_epoch_start() {
    let start = Instant::now();
    let mut leader = leader_with_isr(&[1, 2], 1, start);
    fetch(&mut leader, B, 10, start).unwrap();
    leader.on_leader_append(Offset(20));
    fetch(&mut leader, B, 20, start).unwrap();
    assert_eq!(leader.high_watermark(), Offset(20));
    fetch(&mut leader, C, 19, start).unwrap();
    assert_eq!(leader.isr_change(start), None, "C is below the HW");
    fetch(&mut leader, C, 20, start).unwrap();
    let proposal = leader.isr_change(start).unwrap();
    assert_eq!(proposal.change, IsrChange::Expand { added: vec![C] });
    assert_eq!(proposal.new_isr, ids(&[1, 2, 3]));
    // While C's join is pending, the HW counts C: it must hold what the HW covers once
    // the controller commits it.
    leader.on_leader_append(Offset(30));
    fetch(&mut leader, B, 30, start).unwrap();
    assert_eq!(leader.high_watermark(), Offset(20));
    assert_eq!(
        fetch(&mut leader, C, 30, start).unwrap().new_high_watermark,
        Some(Offset(30))
    );
}

#[test]
fn a_replica_below_the_epoch_start_does_not_join() {
    let start = Instant::now();
    // HW 4 but this leader epoch started at 10: a replica at 8 may hold records of an
    // older epoch that this leader's log does not have.
    let begin = LeaderStart {
        local: LEADER,
        replicas: ids(&[1, 2]),
        isr: ids(&[1]),
        leader_epoch: LeaderEpoch(5),
        partition_epoch: 7,
        log_end_offset: Offset(10),
        high_watermark: Offset(4),
    };
    let mut leader = LeaderPartition::new(begin, LeaderConfig::default(), start);
    // The ISR alone: its HW is its log end at once.
    assert_eq!(leader.high_watermark(), Offset(10));
    fetch(&mut leader, B, 8, start).unwrap();
    assert_eq!(leader.isr_change(start), None);
    fetch(&mut leader, B, 10, start).unwrap();
    assert!(leader.isr_change(start).is_some());
}

#[test]
fn acks_all_needs_the_hw_past_the_batch_and_enough_replicas() {
    let start = Instant::now();
    let mut leader = leader_with_isr(&[1, 2], 2, start);
    assert_eq!(leader.check_append_allowed(), Ok(()));
    leader.on_leader_append(Offset(15));
    assert_eq!(leader.acks_all_ready(Offset(14)), AckState::Waiting);
    fetch(&mut leader, B, 15, start).unwrap();
    assert_eq!(leader.acks_all_ready(Offset(14)), AckState::Ready);
    assert_eq!(leader.acks_all_ready(Offset(15)), AckState::Waiting);
    // The ISR shrinks to the leader alone: the HW passes the batch, but too few copies.
    leader.on_leader_append(Offset(20));
    assert_eq!(leader.on_isr_committed(ids(&[1]), 8), Some(Offset(20)));
    assert_eq!(
        leader.acks_all_ready(Offset(19)),
        AckState::NotEnoughReplicas
    );
    assert_eq!(
        leader.check_append_allowed(),
        Err(NotEnoughReplicas {
            isr_size: 1,
            min_insync_replicas: 2
        })
    );
}

/// A topic's `min.insync.replicas` altered while this broker leads takes effect at the
/// next check, both ways; a new lag limit changes when a lagging follower is proposed out.
#[test]
fn a_changed_config_applies_to_the_next_check_while_leading() {
    let start = Instant::now();
    let mut leader = leader_with_isr(&[1, 2], 1, start);
    assert_eq!(leader.check_append_allowed(), Ok(()));
    let raised = LeaderConfig {
        min_insync_replicas: 3,
        replica_lag_max: LAG,
    };
    leader.set_config(raised);
    assert_eq!(leader.config(), raised);
    assert_eq!(
        leader.check_append_allowed(),
        Err(NotEnoughReplicas {
            isr_size: 2,
            min_insync_replicas: 3
        })
    );
    leader.on_leader_append(Offset(15));
    fetch(&mut leader, B, 15, start).unwrap();
    assert_eq!(
        leader.acks_all_ready(Offset(14)),
        AckState::NotEnoughReplicas,
        "the HW passed the batch but the ISR is below the raised minimum"
    );
    leader.set_config(LeaderConfig {
        min_insync_replicas: 2,
        replica_lag_max: LAG,
    });
    assert_eq!(leader.check_append_allowed(), Ok(()));
    assert_eq!(leader.acks_all_ready(Offset(14)), AckState::Ready);
    assert_eq!(leader.high_watermark(), Offset(15), "the HW is untouched");

    // B stops fetching: with a 10 s limit it stays in the ISR at 5 s; with 2 s it is
    // proposed out.
    leader.on_leader_append(Offset(16));
    let at = start + Duration::from_secs(5);
    assert_eq!(leader.isr_change(at), None);
    leader.set_config(LeaderConfig {
        min_insync_replicas: 2,
        replica_lag_max: Duration::from_secs(2),
    });
    let proposal = leader.isr_change(at).unwrap();
    assert_eq!(proposal.change, IsrChange::Shrink { removed: vec![B] });
}

#[test]
fn metadata_from_another_leader_resigns_and_older_metadata_is_ignored() {
    let now = Instant::now();
    let mut leader = leader_with_isr(&[1, 2, 3], 2, now);
    assert_eq!(
        leader.on_metadata(&image(Some(1), 4, &[1], 9), now),
        LeaderMetadataDecision::Stale
    );
    assert_eq!(
        leader.on_metadata(&image(Some(1), 5, &[1, 2, 3], 7), now),
        LeaderMetadataDecision::Stale,
        "same partition epoch"
    );
    assert_eq!(
        leader.on_metadata(&image(Some(2), 6, &[2, 3], 8), now),
        LeaderMetadataDecision::Resign {
            leader: Some(B),
            leader_epoch: LeaderEpoch(6)
        }
    );
    assert_eq!(
        leader.on_metadata(&image(None, 6, &[1], 8), now),
        LeaderMetadataDecision::Resign {
            leader: None,
            leader_epoch: LeaderEpoch(6)
        }
    );
}

#[test]
fn metadata_adopts_the_isr_and_drops_an_outdated_proposal() {
    let start = Instant::now();
    let mut leader = leader_with_isr(&[1, 2, 3], 2, start);
    fetch(&mut leader, B, 10, start).unwrap();
    leader.on_leader_append(Offset(20));
    fetch(&mut leader, B, 20, start).unwrap();
    let later = start + LAG + Duration::from_secs(1);
    assert!(leader.isr_change(later).is_some());
    // The controller fenced C itself (partition epoch 8): the proposal is moot.
    let decision = leader.on_metadata(&image(Some(1), 5, &[1, 2], 8), later);
    assert_eq!(
        decision,
        LeaderMetadataDecision::Continue {
            new_high_watermark: Some(Offset(20))
        }
    );
    assert_eq!(leader.pending(), None);
    assert_eq!(leader.partition_epoch(), 8);
}

#[test]
fn a_new_leader_epoch_restarts_follower_progress() {
    let start = Instant::now();
    let mut leader = leader_with_isr(&[1, 2], 2, start);
    leader.on_leader_append(Offset(12));
    fetch(&mut leader, B, 12, start).unwrap();
    let decision = leader.on_metadata(&image(Some(1), 6, &[1, 2], 8), start);
    assert_eq!(
        decision,
        LeaderMetadataDecision::NewLeaderEpoch {
            leader_epoch: LeaderEpoch(6),
            epoch_start_offset: Offset(12)
        }
    );
    assert_eq!(leader.leader_epoch(), LeaderEpoch(6));
    assert_eq!(leader.follower_log_end_offset(B), None);
    assert_eq!(leader.high_watermark(), Offset(12), "the HW is kept");
}

/// KIP-903: a follower the controller took out of the ISR (it restarted, maybe with less
/// than it had reported) is not added back on what its old process reported; only a
/// fetch after the removal that reaches the HW counts.
#[test]
fn a_member_removed_by_the_controller_rejoins_only_on_new_fetches() {
    let now = Instant::now();
    let mut leader = leader_with_isr(&[1, 2, 3], 1, now);
    leader.on_leader_append(Offset(20));
    fetch(&mut leader, B, 20, now).unwrap();
    fetch(&mut leader, C, 20, now).unwrap();
    assert_eq!(leader.high_watermark(), Offset(20));
    // C restarts; the controller takes it out of the ISR.
    leader.on_metadata(&image(Some(1), 5, &[1, 2], 8), now);
    assert_eq!(
        leader.isr_change(now),
        None,
        "C is not added back on its old LEO"
    );
    // Its new process fetches from a cut log, then catches up.
    fetch(&mut leader, C, 12, now).unwrap();
    assert_eq!(leader.isr_change(now), None, "below the HW");
    fetch(&mut leader, C, 20, now).unwrap();
    let proposal = leader.isr_change(now).expect("caught up: proposed back in");
    assert_eq!(proposal.new_isr, ids(&[1, 2, 3]));
}

/// A leader that starts as the ISR alone, with a HW checkpoint behind its log end (it was
/// killed before the checkpoint caught up), moves the HW to its log end at once. It once
/// waited for a follower's fetch: with writes refused below `min_insync_replicas` and the
/// followers slow to come back, the HW stayed below the epoch's start and listing offsets
/// was refused for a minute (fault matrix row 4).
#[test]
fn a_leader_that_is_the_isr_alone_starts_with_its_log_end_as_hw() {
    let now = Instant::now();
    let start = |isr: &[i32]| LeaderStart {
        local: LEADER,
        replicas: ids(&[1, 2, 3]),
        isr: ids(isr),
        leader_epoch: LeaderEpoch(5),
        partition_epoch: 7,
        log_end_offset: Offset(48),
        high_watermark: Offset(0),
    };
    let config = LeaderConfig {
        min_insync_replicas: 2,
        replica_lag_max: LAG,
    };
    let alone = LeaderPartition::new(start(&[1]), config, now);
    assert_eq!(alone.high_watermark(), Offset(48));
    assert_eq!(alone.epoch_start_offset(), Offset(48));
    // With followers in the ISR, their log ends are unknown until they fetch: unchanged.
    let with_followers = LeaderPartition::new(start(&[1, 2]), config, now);
    assert_eq!(with_followers.high_watermark(), Offset(0));
}
