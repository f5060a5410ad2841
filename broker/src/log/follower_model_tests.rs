//! A follower log built by [`PartitionLog::append_as_follower`] from its leader's bytes,
//! fetched in random chunk sizes, through follower truncations and crashes and leader
//! changes that cut the leader's log (reconciled by epoch, KIP-101), ends byte for byte
//! the leader's log with the same leader-epoch cache.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use strata_proto::types::{LeaderEpoch, Offset};

use super::test_support::{open, read_bytes_from, small_config, tagged_batch};
use super::{LogConfig, ManualClock, PartitionLog, PreviousShutdown};

const NOW_MS: i64 = 1_700_000_000_000;

#[derive(Debug, Clone)]
enum Op {
    /// The leader appends a batch of `records`, in a new epoch when `new_epoch`.
    LeaderAppend {
        records: usize,
        new_epoch: bool,
    },
    /// A new leader whose log ends at this fraction (per mille) of the old one's, and
    /// which appends a batch in its new epoch at once.
    LeaderChange {
        per_mille: u16,
        records: usize,
    },
    /// The follower fetches once, at most `max_bytes` (but at least one batch).
    Fetch {
        max_bytes: usize,
    },
    /// The follower truncates to this fraction (per mille) of its log.
    FollowerTruncate {
        per_mille: u16,
    },
    FollowerCrash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (1usize..6, prop::bool::weighted(0.2))
            .prop_map(|(records, new_epoch)| Op::LeaderAppend { records, new_epoch }),
        1 => (0u16..1000, 1usize..4)
            .prop_map(|(per_mille, records)| Op::LeaderChange { per_mille, records }),
        4 => (1usize..1500).prop_map(|max_bytes| Op::Fetch { max_bytes }),
        1 => (0u16..1000).prop_map(|per_mille| Op::FollowerTruncate { per_mille }),
        1 => Just(Op::FollowerCrash),
    ]
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 600,
        index_interval_bytes: 100,
        index_bytes_max: 1024,
        ..small_config()
    }
}

/// What a fetcher does before fetching: asks the leader where the follower's latest
/// epoch ends and truncates there when its own log goes further (KIP-101).
fn reconcile(leader: &PartitionLog, follower: &PartitionLog) {
    let Some((epoch, _)) = follower.leader_epochs().last().copied() else {
        return;
    };
    let (_, end) = leader
        .end_offset_for_epoch(epoch)
        .expect("a leader always knows an epoch at or below a follower's");
    if end < follower.log_end_offset() {
        follower.truncate_to(end).unwrap();
    }
}

/// One fetch of at most `max_bytes` from the follower's log end; returns whether it got
/// anything.
fn fetch(leader: &PartitionLog, follower: &PartitionLog, max_bytes: usize) -> bool {
    reconcile(leader, follower);
    let fetched = leader
        .read(follower.log_end_offset(), max_bytes, None)
        .unwrap();
    if fetched.batches.is_empty() {
        return false;
    }
    let info = follower.append_as_follower(&fetched.batches).unwrap();
    assert_eq!(info.log_end_offset, follower.log_end_offset());
    true
}

fn cut_point(log: &PartitionLog, per_mille: u16) -> Offset {
    let (start, end) = (log.log_start_offset().0, log.log_end_offset().0);
    Offset(start + (end - start) * i64::from(per_mille) / 1000)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn follower_log_is_the_leaders_log(ops in prop::collection::vec(op(), 1..40)) {
        let (leader_dir, follower_dir) =
            (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let clock = ManualClock::new(NOW_MS);
        let config = config();
        let leader = open(leader_dir.path(), &config, &clock, PreviousShutdown::Crashed);
        let mut follower = open(follower_dir.path(), &config, &clock, PreviousShutdown::Crashed);
        let (mut epoch, mut tag) = (LeaderEpoch(0), 0u32);
        let mut leader_append = |leader: &PartitionLog, records, epoch| {
            tag += 1;
            leader.append(&tagged_batch(&format!("v{tag}"), records, NOW_MS), epoch).unwrap();
        };
        for op in ops {
            match op {
                Op::LeaderAppend { records, new_epoch } => {
                    if new_epoch { epoch = LeaderEpoch(epoch.0 + 1); }
                    leader_append(&leader, records, epoch);
                }
                Op::LeaderChange { per_mille, records } => {
                    leader.truncate_to(cut_point(&leader, per_mille)).unwrap();
                    epoch = LeaderEpoch(epoch.0 + 1);
                    leader_append(&leader, records, epoch);
                }
                Op::Fetch { max_bytes } => {
                    fetch(&leader, &follower, max_bytes);
                    let copied = read_bytes_from(&follower, Offset(0));
                    let source = read_bytes_from(&leader, Offset(0));
                    prop_assert!(source.starts_with(&copied), "follower_log_is_prefix_of_leader");
                }
                Op::FollowerTruncate { per_mille } => {
                    follower.truncate_to(cut_point(&follower, per_mille)).unwrap();
                }
                Op::FollowerCrash => {
                    drop(follower);
                    follower = open(follower_dir.path(), &config, &clock, PreviousShutdown::Crashed);
                    prop_assert_eq!(follower.recovery_report().truncated_bytes, 0);
                }
            }
            prop_assert!(follower.high_watermark() == Offset(0), "only set_high_watermark moves it");
        }
        while fetch(&leader, &follower, 700) {}
        prop_assert_eq!(follower.log_end_offset(), leader.log_end_offset());
        prop_assert_eq!(read_bytes_from(&follower, Offset(0)), read_bytes_from(&leader, Offset(0)));
        prop_assert_eq!(follower.leader_epochs(), leader.leader_epochs());
        for known in 0..=epoch.0 + 1 {
            prop_assert_eq!(
                follower.end_offset_for_epoch(LeaderEpoch(known)),
                leader.end_offset_for_epoch(LeaderEpoch(known))
            );
        }
        // Recovery rebuilds the same epochs from the follower's batches (a damaged cache
        // is rebuilt from a scan of every segment).
        drop(follower);
        std::fs::write(follower_dir.path().join("leader-epoch.checkpoint"), b"damaged").unwrap();
        let follower = open(follower_dir.path(), &config, &clock, PreviousShutdown::Crashed);
        prop_assert_eq!(follower.leader_epochs(), leader.leader_epochs());
        prop_assert_eq!(read_bytes_from(&follower, Offset(0)), read_bytes_from(&leader, Offset(0)));
    }
}
