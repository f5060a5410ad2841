//! [`Reconciler`]: a group member's view of its assignment, as KIP-848 has the member
//! reconcile it. Pure bookkeeping, no I/O: the coordinator task (`coordinator.rs`) feeds
//! it the heartbeat answers and what the consumer reports, and asks it what to do next.
//!
//! The coordinator sends a *target*; the member owns what it has taken up and not yet
//! released. A partition missing from the target is revoked: the consumer stops it and
//! commits, and only then is it released (no longer reported owned). A partition in the
//! target and not owned is taken up once its start offset is known. The coordinator hands
//! a partition to this member only after its previous owner released it, so taking up
//! new partitions never waits for this member's own revocations.
//!
//! Invariants: `revoking ⊆ owned`; what the heartbeat reports as owned is `owned`
//! (revoked partitions stay owned until released, as the protocol asks).

use std::collections::BTreeSet;

/// A (topic, partition) pair.
pub(crate) type TopicPartition = (String, i32);

/// Owned, target and being-revoked partitions of one member incarnation.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Reconciler {
    owned: BTreeSet<TopicPartition>,
    target: BTreeSet<TopicPartition>,
    revoking: BTreeSet<TopicPartition>,
}

impl Reconciler {
    /// The coordinator's latest target for this member.
    pub(crate) fn set_target(&mut self, target: impl IntoIterator<Item = TopicPartition>) {
        self.target = target.into_iter().collect();
    }

    /// Owned partitions the target no longer holds and that are not being revoked yet;
    /// they count as being revoked from now on.
    pub(crate) fn start_revoking(&mut self) -> Vec<TopicPartition> {
        let revoke: Vec<TopicPartition> = self
            .owned
            .iter()
            .filter(|partition| !self.target.contains(*partition))
            .filter(|partition| !self.revoking.contains(*partition))
            .cloned()
            .collect();
        self.revoking.extend(revoke.iter().cloned());
        revoke
    }

    /// Target partitions not owned yet (to take up once their start offsets are known).
    /// A partition still being revoked is taken up again only after its release.
    pub(crate) fn to_assign(&self) -> Vec<TopicPartition> {
        self.target
            .iter()
            .filter(|partition| !self.owned.contains(*partition))
            .cloned()
            .collect()
    }

    /// The consumer took these up; those the target dropped meanwhile are ignored (they
    /// were not handed to the consumer). Returns the ones now owned.
    pub(crate) fn assigned(
        &mut self,
        partitions: impl IntoIterator<Item = TopicPartition>,
    ) -> Vec<TopicPartition> {
        let mut taken = Vec::new();
        for partition in partitions {
            if self.target.contains(&partition) && self.owned.insert(partition.clone()) {
                taken.push(partition);
            }
        }
        taken
    }

    /// The consumer stopped these and committed: they are no longer owned.
    pub(crate) fn released(&mut self, partitions: &[TopicPartition]) {
        for partition in partitions {
            if self.revoking.remove(partition) {
                self.owned.remove(partition);
            }
        }
    }

    /// The member was fenced or expelled: it owns nothing any more, and waits for a new
    /// target. Returns what it owned (to report lost).
    pub(crate) fn lose_all(&mut self) -> Vec<TopicPartition> {
        let lost = std::mem::take(&mut self.owned).into_iter().collect();
        self.target.clear();
        self.revoking.clear();
        lost
    }

    /// What the heartbeat reports as owned.
    pub(crate) fn owned(&self) -> impl Iterator<Item = &TopicPartition> {
        self.owned.iter()
    }

    pub(crate) fn is_owned(&self, partition: &TopicPartition) -> bool {
        self.owned.contains(partition)
    }

    #[cfg(test)]
    pub(crate) fn is_revoking(&self, partition: &TopicPartition) -> bool {
        self.revoking.contains(partition)
    }

    #[cfg(test)]
    /// Whether every owned partition is in the target and every target one owned.
    pub(crate) fn is_reconciled(&self) -> bool {
        self.owned == self.target
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(topic: &str, partition: i32) -> TopicPartition {
        (topic.to_owned(), partition)
    }

    #[test]
    fn a_first_target_is_taken_up_without_revoking_anything() {
        let mut reconciler = Reconciler::default();
        reconciler.set_target([tp("t", 0), tp("t", 1)]);
        assert!(reconciler.start_revoking().is_empty());
        assert_eq!(reconciler.to_assign(), vec![tp("t", 0), tp("t", 1)]);
        assert_eq!(
            reconciler.assigned([tp("t", 0), tp("t", 1)]),
            vec![tp("t", 0), tp("t", 1)]
        );
        assert!(reconciler.is_reconciled());
        assert!(reconciler.to_assign().is_empty());
    }

    #[test]
    fn a_revoked_partition_stays_owned_until_released_and_kept_ones_are_untouched() {
        let mut reconciler = Reconciler::default();
        reconciler.set_target([tp("t", 0), tp("t", 1), tp("t", 2)]);
        reconciler.assigned(reconciler.to_assign());
        reconciler.set_target([tp("t", 0), tp("t", 1)]);
        assert_eq!(reconciler.start_revoking(), vec![tp("t", 2)]);
        // Asked once only, however many heartbeats answer before the release.
        assert!(reconciler.start_revoking().is_empty());
        assert!(reconciler.is_owned(&tp("t", 2)));
        assert!(reconciler.is_revoking(&tp("t", 2)));
        assert_eq!(reconciler.owned().count(), 3);
        reconciler.released(&[tp("t", 2)]);
        assert_eq!(
            reconciler.owned().cloned().collect::<Vec<_>>(),
            vec![tp("t", 0), tp("t", 1)]
        );
        assert!(reconciler.is_reconciled());
    }

    #[test]
    fn a_partition_given_back_while_being_revoked_is_taken_up_after_its_release() {
        let mut reconciler = Reconciler::default();
        reconciler.set_target([tp("t", 0)]);
        reconciler.assigned(reconciler.to_assign());
        reconciler.set_target([]);
        assert_eq!(reconciler.start_revoking(), vec![tp("t", 0)]);
        reconciler.set_target([tp("t", 0)]);
        assert!(
            reconciler.to_assign().is_empty(),
            "still owned until released"
        );
        reconciler.released(&[tp("t", 0)]);
        assert_eq!(reconciler.to_assign(), vec![tp("t", 0)]);
    }

    #[test]
    fn a_partition_the_target_dropped_while_its_offset_was_looked_up_is_not_taken() {
        let mut reconciler = Reconciler::default();
        reconciler.set_target([tp("t", 0), tp("t", 1)]);
        let wanted = reconciler.to_assign();
        reconciler.set_target([tp("t", 0)]);
        assert_eq!(reconciler.assigned(wanted), vec![tp("t", 0)]);
        assert!(!reconciler.is_owned(&tp("t", 1)));
    }

    #[test]
    fn releasing_what_is_not_being_revoked_changes_nothing() {
        let mut reconciler = Reconciler::default();
        reconciler.set_target([tp("t", 0)]);
        reconciler.assigned(reconciler.to_assign());
        reconciler.released(&[tp("t", 0), tp("u", 3)]);
        assert!(reconciler.is_owned(&tp("t", 0)));
    }

    #[test]
    fn losing_everything_clears_owned_target_and_revocations() {
        let mut reconciler = Reconciler::default();
        reconciler.set_target([tp("t", 0), tp("t", 1)]);
        reconciler.assigned(reconciler.to_assign());
        reconciler.set_target([tp("t", 0)]);
        reconciler.start_revoking();
        assert_eq!(reconciler.lose_all(), vec![tp("t", 0), tp("t", 1)]);
        assert_eq!(reconciler.owned().count(), 0);
        assert!(reconciler.to_assign().is_empty());
        assert!(reconciler.start_revoking().is_empty());
        assert!(!reconciler.is_revoking(&tp("t", 1)));
    }
}
