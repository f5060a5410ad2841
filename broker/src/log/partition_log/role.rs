//! Which side may append to a replica's log, so a change of leadership never lets a
//! write of the side that left land after the side that arrived has read the log end.
//!
//! - [`ReplicaRole::Leading`]: set by the node before it opens the log to lead (reads its
//!   log end, rebuilds the producer state). A follower append still in flight from the
//!   fetcher then either landed before (and is counted) or is refused with
//!   [`LogError::NotFollowing`]; without this a late follower append would add batches
//!   the new leader's producer state never saw, and a retry of one of them would be
//!   appended twice.
//! - [`ReplicaRole::Following`]: set before the fetcher gets the log. A produce still in
//!   flight from when this broker led is refused with [`LogError::NotLeading`] instead
//!   of being appended after the fetcher truncated to the new leader's log.
//! - [`ReplicaRole::Unassigned`] (a log just opened, or one the node does not manage):
//!   both appends are allowed.
//!
//! The role is changed and checked under the log's write lock, so it orders with every
//! append.

use std::sync::atomic::Ordering;

use super::super::error::{LogError, LogResult};
use super::PartitionLog;

/// Who appends to this replica's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaRole {
    Unassigned,
    Leading,
    Following,
}

impl ReplicaRole {
    pub(super) fn to_u8(self) -> u8 {
        match self {
            ReplicaRole::Unassigned => 0,
            ReplicaRole::Leading => 1,
            ReplicaRole::Following => 2,
        }
    }

    fn from_u8(value: u8) -> ReplicaRole {
        match value {
            1 => ReplicaRole::Leading,
            2 => ReplicaRole::Following,
            _ => ReplicaRole::Unassigned,
        }
    }
}

impl PartitionLog {
    /// Sets who may append from now on; every append that started before has finished
    /// when this returns.
    pub fn set_role(&self, role: ReplicaRole) {
        let _appends = self.write_state();
        self.role.store(role.to_u8(), Ordering::Release);
    }

    pub fn role(&self) -> ReplicaRole {
        ReplicaRole::from_u8(self.role.load(Ordering::Acquire))
    }

    /// Refuses a leader append unless the log is leading or unassigned. Call it under the
    /// write lock.
    pub(super) fn check_may_lead(&self) -> LogResult<()> {
        match self.role() {
            ReplicaRole::Following => Err(LogError::NotLeading {
                dir: self.dir.clone(),
            }),
            ReplicaRole::Leading | ReplicaRole::Unassigned => Ok(()),
        }
    }

    /// Refuses a follower append unless the log is following or unassigned. Call it under
    /// the write lock.
    pub(super) fn check_may_follow(&self) -> LogResult<()> {
        match self.role() {
            ReplicaRole::Leading => Err(LogError::NotFollowing {
                dir: self.dir.clone(),
            }),
            ReplicaRole::Following | ReplicaRole::Unassigned => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use strata_proto::record::{set_base_offset, set_partition_leader_epoch};
    use strata_proto::types::LeaderEpoch;

    use super::super::super::test_support::{open, small_config, tagged_batch};
    use super::super::super::{ManualClock, PreviousShutdown};
    use super::*;

    const NOW_MS: i64 = 1_700_000_000_000;

    #[test]
    fn each_role_refuses_the_other_sides_appends_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(
            dir.path(),
            &small_config(),
            &ManualClock::new(NOW_MS),
            PreviousShutdown::Crashed,
        );
        assert_eq!(log.role(), ReplicaRole::Unassigned);
        log.append(&tagged_batch("a", 2, NOW_MS), LeaderEpoch(1))
            .unwrap();
        let mut fetched = tagged_batch("b", 2, NOW_MS);
        set_base_offset(&mut fetched, log.log_end_offset());
        set_partition_leader_epoch(&mut fetched, LeaderEpoch(1));
        log.append_as_follower(&fetched).unwrap();

        log.set_role(ReplicaRole::Leading);
        let mut late = tagged_batch("late", 2, NOW_MS);
        set_base_offset(&mut late, log.log_end_offset());
        set_partition_leader_epoch(&mut late, LeaderEpoch(1));
        let end = log.log_end_offset();
        assert!(matches!(
            log.append_as_follower(&late),
            Err(LogError::NotFollowing { .. })
        ));
        assert_eq!(log.log_end_offset(), end);
        log.append(&tagged_batch("c", 1, NOW_MS), LeaderEpoch(2))
            .unwrap();

        log.set_role(ReplicaRole::Following);
        let end = log.log_end_offset();
        assert!(matches!(
            log.append(&tagged_batch("d", 1, NOW_MS), LeaderEpoch(2)),
            Err(LogError::NotLeading { .. })
        ));
        assert_eq!(log.log_end_offset(), end);
        let mut next = tagged_batch("e", 1, NOW_MS);
        set_base_offset(&mut next, end);
        set_partition_leader_epoch(&mut next, LeaderEpoch(3));
        log.append_as_follower(&next).unwrap();
    }
}
