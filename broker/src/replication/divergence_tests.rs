#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Seeded simulation of divergence: three replicas through many leader changes, each
//! leader (any replica: clean or not) appending records of its epoch, followers catching
//! up partly or not at all, and replicas losing an unflushed tail between epochs. Each log
//! is the list of the epochs of its records. A follower reconciles through
//! [`FollowerPartition`] and [`truncation_point`](super::truncation::truncation_point),
//! with the leader's answers from the real [`LeaderEpochCache`].
//!
//! Checked: `follower_log_is_prefix_of_leader` after every truncation, which lands
//! exactly on the longest common prefix (never more is dropped); at the end, all three
//! logs are identical.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use strata_proto::types::{BrokerId, LeaderEpoch, Offset};

use super::follower::{EpochAnswer, FetchAnswer, FollowerPartition, FollowerRequest};
use super::truncation::TruncationStep;
use crate::log::leader_epoch_cache::LeaderEpochCache;

/// A log as the epoch of each record, offset = index.
type Log = Vec<i32>;

/// The epoch cache entries of `log`: each epoch with the offset of its first record.
fn epochs_of(log: &Log) -> Vec<(LeaderEpoch, Offset)> {
    let mut epochs: Vec<(LeaderEpoch, Offset)> = Vec::new();
    for (offset, epoch) in log.iter().enumerate() {
        if epochs.last().is_none_or(|(last, _)| last.0 != *epoch) {
            epochs.push((LeaderEpoch(*epoch), Offset(offset as i64)));
        }
    }
    epochs
}

fn common_prefix(a: &Log, b: &Log) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// The leader's `OffsetsForLeaderEpoch` answer: its cache holds its log's epochs plus the
/// current epoch, assigned at its LEO when it took over.
fn leader_answer(
    dir: &std::path::Path,
    log: &Log,
    epoch: LeaderEpoch,
    asked: LeaderEpoch,
) -> (LeaderEpoch, Offset) {
    let mut cache = LeaderEpochCache::empty(dir);
    for (known, start) in epochs_of(log) {
        cache.assign(known, start);
    }
    cache.assign(epoch, Offset(log.len() as i64));
    cache
        .end_offset_for(asked, Offset(log.len() as i64))
        .expect("a follower never holds an epoch above the leader's")
}

/// `follower` reconciles with `leader` at `epoch`, then fetches up to `records_max`.
fn follow(
    dir: &std::path::Path,
    seed: u64,
    logs: &mut [Log],
    (leader, follower): (usize, usize),
    epoch: LeaderEpoch,
    records_max: usize,
) {
    let leader_log = logs[leader].clone();
    let local = &mut logs[follower];
    let mut state = FollowerPartition::new(BrokerId(leader as i32), epoch);
    for _round in 0..=epoch.0 + 1 {
        let request = state.next_request(&epochs_of(local), Offset(local.len() as i64));
        let FollowerRequest::OffsetsForLeaderEpoch { epoch: asked, .. } = request else {
            break;
        };
        let (answered, end_offset) = leader_answer(dir, &leader_log, epoch, asked);
        let answer = EpochAnswer {
            request_leader_epoch: epoch,
            epoch: answered,
            end_offset,
        };
        let step = state
            .on_epoch_answer(answer, &epochs_of(local), Offset(local.len() as i64))
            .unwrap();
        let (TruncationStep::TruncateTo(offset)
        | TruncationStep::AskAgain {
            truncate_to: offset,
            ..
        }) = step;
        let expected = common_prefix(local, &leader_log);
        assert!(
            offset.0 as usize >= expected,
            "seed {seed}: truncating to {offset} drops records common with the leader \
             (common prefix {expected}); local {local:?}, leader {leader_log:?}"
        );
        local.truncate(offset.0.max(0) as usize);
        if let TruncationStep::AskAgain { epoch: again, .. } = step {
            assert_eq!(epochs_of(local).last().map(|(last, _)| *last), Some(again));
        }
    }
    let FollowerRequest::Fetch { fetch_offset, .. } =
        state.next_request(&epochs_of(local), Offset(local.len() as i64))
    else {
        panic!("seed {seed}: still truncating after {} rounds", epoch.0 + 1);
    };
    // follower_log_is_prefix_of_leader, at exactly the divergence point.
    assert_eq!(fetch_offset.0 as usize, local.len());
    assert_eq!(
        local.len(),
        common_prefix(local, &leader_log),
        "seed {seed}: local {local:?} is not a prefix of leader {leader_log:?}"
    );
    let end = leader_log
        .len()
        .min(local.len().saturating_add(records_max));
    let fetched = leader_log[local.len()..end].to_vec();
    local.extend(&fetched);
    let answer = FetchAnswer {
        request_leader_epoch: epoch,
        last_offset: (!fetched.is_empty()).then(|| Offset(local.len() as i64 - 1)),
        leader_high_watermark: Offset(0),
        leader_log_start_offset: Offset(0),
    };
    state.on_fetch_answer(answer).unwrap();
}

#[test]
fn divergent_logs_truncate_to_the_kip_101_point_and_end_identical() {
    let dir = tempfile::tempdir().unwrap();
    let mut divergences = 0;
    for seed in 0..500 {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut logs: Vec<Log> = vec![Vec::new(); 3];
        let epochs = rng.gen_range(2..12);
        for epoch in 1..=epochs {
            let leader = rng.gen_range(0..3);
            let appended = rng.gen_range(0..6);
            logs[leader].extend(std::iter::repeat_n(epoch, appended));
            for follower in (0..3).filter(|replica| *replica != leader) {
                if rng.gen_bool(0.6) {
                    let records_max = rng.gen_range(0..12);
                    let before = logs[follower].clone();
                    let pair = (leader, follower);
                    follow(
                        dir.path(),
                        seed,
                        &mut logs,
                        pair,
                        LeaderEpoch(epoch),
                        records_max,
                    );
                    if common_prefix(&before, &logs[follower]) < before.len() {
                        divergences += 1;
                    }
                }
            }
            // A crash loses an unflushed tail.
            if rng.gen_bool(0.2) {
                let replica = rng.gen_range(0..3);
                let kept = logs[replica].len().saturating_sub(rng.gen_range(0..4));
                logs[replica].truncate(kept);
            }
        }
        let leader = rng.gen_range(0..3);
        let last = LeaderEpoch(epochs + 1);
        for follower in (0..3).filter(|replica| *replica != leader) {
            follow(
                dir.path(),
                seed,
                &mut logs,
                (leader, follower),
                last,
                usize::MAX,
            );
        }
        assert!(
            logs.iter().all(|log| *log == logs[leader]),
            "seed {seed}: {logs:?}"
        );
    }
    assert!(
        divergences > 100,
        "only {divergences} divergent truncations"
    );
}
