//! Where a follower truncates its log before fetching from a new leader: KIP-101 (truncate
//! by leader epoch, never by the high watermark) with KIP-279's fix for fast leader
//! changes. Pure: the caller sends `OffsetsForLeaderEpoch(epoch)` to the leader, feeds the
//! answer here, and either truncates and fetches, or truncates and asks again.
//!
//! The epoch to ask for is the latest epoch of the local log. The leader answers with the
//! largest epoch it knows that is ≤ the one asked for, and the offset where that epoch
//! ends in its log (the start of its next epoch, or its LEO for its latest epoch; for an
//! epoch below its first, the epoch asked for and its log start).
//!
//! Why not the HW: the HW a follower knows lags the leader's. KIP-101's first example: A
//! leads with `m1, m2`, B has both but its HW says 1; B restarts and truncates `m2` to its
//! HW, A dies, B leads, and `m2` — acknowledged — is gone. Asking A for the end of epoch 0
//! returns 2 and B keeps `m2`. The second example: A and B both restart with different
//! `m2`s at offset 1 (A's of epoch 0, B's of epoch 1 once B led); truncating to the HW
//! keeps both and the logs diverge for ever. Asking B for the end of epoch 0 returns 1:
//! A drops its `m2` and fetches B's.

use strata_proto::types::{LeaderEpoch, Offset};

/// What the follower does with the leader's `OffsetsForLeaderEpoch` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TruncationStep {
    /// Truncate the local log to this offset (a no-op when it is the LEO) and fetch from
    /// it. An offset below the local log start means the whole local log goes and the log
    /// restarts empty at that offset.
    TruncateTo(Offset),
    /// KIP-279: the leader answered with an epoch this log does not hold. Truncate to
    /// `truncate_to` (the end of the largest local epoch below the leader's answer: every
    /// record above it is of an epoch the leader never had), then ask again for `epoch`,
    /// which is now the latest local epoch.
    AskAgain {
        truncate_to: Offset,
        epoch: LeaderEpoch,
    },
}

/// The truncation decision for a local log with `local_epochs` (each epoch with its start
/// offset, ascending, as `PartitionLog::leader_epochs` returns them) and `local_log_end_offset`,
/// given the leader's answer `(epoch, end_offset)`:
///
/// 1. The local log holds the answered epoch (KIP-101): both logs agree up to where that
///    epoch ends in the *shorter* of the two; truncate to
///    `min(leader end, local end of that epoch, local LEO)`. Example: we ask for epoch 2;
///    the leader says epoch 2 ends at 25 in its log; ours ends at 30 (our LEO) → 25.
/// 2. The local log does not hold the answered epoch but holds an older one (KIP-279):
///    e.g. we hold epochs 1 and 3, asked for 3, the leader has 1 and 2 and answers
///    `(2, 40)`. Our epoch-3 records are of an epoch the leader never saw → drop them
///    (truncate to where our epoch 1 ends) and ask for epoch 1, which the leader answers
///    with where *its* epoch 1 ends.
/// 3. Every local epoch is newer than the answered one, or the local log has no epochs:
///    nothing local is common with the leader past the answer's end offset or our first
///    epoch's start; truncate to the lower of them.
pub fn truncation_point(
    local_epochs: &[(LeaderEpoch, Offset)],
    local_log_end_offset: Offset,
    leader_answer: (LeaderEpoch, Offset),
) -> TruncationStep {
    let (leader_epoch, leader_end_offset) = leader_answer;
    match local_end_offset_for(local_epochs, local_log_end_offset, leader_epoch) {
        Some((local_epoch, local_end_offset)) if local_epoch == leader_epoch => {
            TruncationStep::TruncateTo(
                leader_end_offset
                    .min(local_end_offset)
                    .min(local_log_end_offset),
            )
        }
        Some((local_epoch, local_end_offset)) => TruncationStep::AskAgain {
            truncate_to: local_end_offset.min(local_log_end_offset),
            epoch: local_epoch,
        },
        None => {
            let first_start = local_epochs
                .first()
                .map_or(local_log_end_offset, |(_, start)| *start);
            TruncationStep::TruncateTo(leader_end_offset.min(first_start).min(local_log_end_offset))
        }
    }
}

/// The largest local epoch ≤ `epoch` and where it ends locally (the next epoch's start, or
/// the LEO for the latest); `None` when every local epoch is newer (or there are none).
fn local_end_offset_for(
    local_epochs: &[(LeaderEpoch, Offset)],
    local_log_end_offset: Offset,
    epoch: LeaderEpoch,
) -> Option<(LeaderEpoch, Offset)> {
    let at_or_below = local_epochs.partition_point(|(known, _)| *known <= epoch);
    let floor = at_or_below.checked_sub(1)?;
    let (floor_epoch, _) = local_epochs.get(floor)?;
    let end = local_epochs
        .get(at_or_below)
        .map_or(local_log_end_offset, |(_, next_start)| *next_start);
    Some((*floor_epoch, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epochs(pairs: &[(i32, i64)]) -> Vec<(LeaderEpoch, Offset)> {
        pairs
            .iter()
            .map(|(epoch, start)| (LeaderEpoch(*epoch), Offset(*start)))
            .collect()
    }

    fn step(local: &[(i32, i64)], leo: i64, answer: (i32, i64)) -> TruncationStep {
        truncation_point(
            &epochs(local),
            Offset(leo),
            (LeaderEpoch(answer.0), Offset(answer.1)),
        )
    }

    #[test]
    fn kip_101_example_1_keeps_what_the_hw_would_lose() {
        // B holds m1, m2 of epoch 0 with a stale HW of 1; leader A's epoch 0 ends at 2.
        assert_eq!(
            step(&[(0, 0)], 2, (0, 2)),
            TruncationStep::TruncateTo(Offset(2))
        );
    }

    #[test]
    fn kip_101_example_2_drops_the_divergent_suffix() {
        // A holds m1, m2 of epoch 0; B led epoch 1 from offset 1; B's epoch 0 ends at 1.
        assert_eq!(
            step(&[(0, 0)], 2, (0, 1)),
            TruncationStep::TruncateTo(Offset(1))
        );
    }

    #[test]
    fn the_local_end_of_the_common_epoch_bounds_the_truncation() {
        // We asked for epoch 3; the leader's largest epoch ≤ 3 is 1, ending at 50 in its log;
        // ours ends at 20, where our epoch 3 starts: keep 20.
        assert_eq!(
            step(&[(1, 0), (3, 20)], 30, (1, 50)),
            TruncationStep::TruncateTo(Offset(20))
        );
        assert_eq!(
            step(&[(1, 0), (2, 10)], 15, (2, 12)),
            TruncationStep::TruncateTo(Offset(12))
        );
        assert_eq!(
            step(&[(1, 0), (2, 10)], 15, (2, 40)),
            TruncationStep::TruncateTo(Offset(15)),
            "the leader is ahead in our epoch: nothing to drop"
        );
    }

    #[test]
    fn kip_279_an_epoch_the_leader_never_had_is_dropped_then_asked_again() {
        // We hold epochs 1 and 3 (3 from offset 30, LEO 35); the leader has 1 (to 25) and 2
        // and answers our question for epoch 3 with (2, 40).
        assert_eq!(
            step(&[(1, 0), (3, 30)], 35, (2, 40)),
            TruncationStep::AskAgain {
                truncate_to: Offset(30),
                epoch: LeaderEpoch(1),
            }
        );
        // Asked again for epoch 1, the leader says it ends at 25 in its log.
        assert_eq!(
            step(&[(1, 0)], 30, (1, 25)),
            TruncationStep::TruncateTo(Offset(25))
        );
    }

    #[test]
    fn no_common_epoch_truncates_to_the_first_local_epoch_or_the_leader_end() {
        assert_eq!(
            step(&[(4, 10)], 30, (2, 50)),
            TruncationStep::TruncateTo(Offset(10))
        );
        assert_eq!(
            step(&[(4, 10)], 30, (2, 5)),
            TruncationStep::TruncateTo(Offset(5)),
            "below our log start: the whole local log goes"
        );
        assert_eq!(step(&[], 0, (2, 5)), TruncationStep::TruncateTo(Offset(0)));
    }

    #[test]
    fn the_leader_answering_below_its_first_epoch_gives_its_log_start() {
        // Leader's log starts at 100 in epoch 5; we asked for epoch 3, it answers (3, 100).
        assert_eq!(
            step(&[(3, 40)], 120, (3, 100)),
            TruncationStep::TruncateTo(Offset(100))
        );
    }
}
