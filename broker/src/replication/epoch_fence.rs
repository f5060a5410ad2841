//! Leader-epoch fencing (KIP-320): every replication request and answer carries the leader
//! epoch its sender believes current, and the receiver compares it with its own before
//! acting on it.
//!
//! - A lower epoch than ours is *fenced*: it comes from, or was meant for, a leadership
//!   that is over (a deposed leader still answering, a follower that has not yet seen the
//!   election). Acting on it could append or count data of a dead epoch.
//! - A higher epoch than ours is *unknown*: our own metadata is behind. The sender is
//!   probably right, but we cannot check it yet; the caller retries after the next
//!   metadata update.
//!
//! Kafka's codes: `FENCED_LEADER_EPOCH` and `UNKNOWN_LEADER_EPOCH`, both retriable.

use strata_proto::types::LeaderEpoch;

/// Why a request or answer stamped with `received` was not acted on by a replica at
/// `current`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EpochMismatch {
    /// Kafka's `FENCED_LEADER_EPOCH`: the message belongs to an older leadership.
    #[error("leader epoch {received} is fenced: this replica is at leader epoch {current}")]
    Fenced {
        received: LeaderEpoch,
        current: LeaderEpoch,
    },
    /// Kafka's `UNKNOWN_LEADER_EPOCH`: this replica has not yet seen leader epoch
    /// `received`.
    #[error("leader epoch {received} is unknown: this replica is still at leader epoch {current}")]
    Unknown {
        received: LeaderEpoch,
        current: LeaderEpoch,
    },
}

/// `Ok` when `received` is exactly `current`; otherwise which way it is off.
pub fn check_leader_epoch(
    received: LeaderEpoch,
    current: LeaderEpoch,
) -> Result<(), EpochMismatch> {
    if received < current {
        Err(EpochMismatch::Fenced { received, current })
    } else if received > current {
        Err(EpochMismatch::Unknown { received, current })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_current_epoch_passes() {
        let current = LeaderEpoch(5);
        assert_eq!(check_leader_epoch(LeaderEpoch(5), current), Ok(()));
        assert_eq!(
            check_leader_epoch(LeaderEpoch(4), current),
            Err(EpochMismatch::Fenced {
                received: LeaderEpoch(4),
                current
            })
        );
        assert_eq!(
            check_leader_epoch(LeaderEpoch(6), current),
            Err(EpochMismatch::Unknown {
                received: LeaderEpoch(6),
                current
            })
        );
    }
}
