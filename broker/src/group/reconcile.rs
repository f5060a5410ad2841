//! Target assignment and incremental reconciliation (KIP-848), as methods of
//! [`Group`].
//!
//! On each of its heartbeats a member, with target `T`, assigned `A` and revoking `R`:
//! 1. releases the partitions of `R` its `owned` no longer lists;
//! 2. moves `A \ T` into `R`: its answer no longer lists them, and it has its rebalance
//!    timeout to report them released;
//! 3. once `R` is empty, takes the assignment epoch and every partition of `T \ A` that no
//!    other member holds in its `A ∪ R`; the rest it gets on a later heartbeat, after
//!    their holder released them or was expelled.
//!
//! A partition is thus never in two members' `A ∪ R`, and a member keeps consuming what
//! stays in its target throughout.

use std::collections::BTreeMap;
use std::time::Instant;

use super::assignor::{Assignor, MemberSpec};
use super::member;
use super::state::Group;
use super::{Assignment, TopicsView};

impl Group {
    /// Takes a topics view and recomputes the target if needed. When the view differs
    /// from the last one, the partitions that no longer exist are dropped from every
    /// member and the target is recomputed, the group epoch rising if it changed. `bump`:
    /// membership, a subscription or the assignor changed; the epoch rises in any case.
    pub(super) fn observe_topics(&mut self, topics: &TopicsView, bump: bool) {
        let new_view = self.topics.as_ref() != Some(topics);
        if new_view {
            self.topics = Some(topics.clone());
            let exists = |topic: &str, partition: i32| {
                topics
                    .get(topic)
                    .is_some_and(|count| (0..*count).contains(&partition))
            };
            for member in self.members.values_mut() {
                let mut dropped = member::retain(&mut member.assigned, exists);
                dropped |= member::retain(&mut member.revoking, exists);
                dropped |= member::retain(&mut member.target, exists);
                if member.revoking.is_empty() {
                    member.revocation_deadline = None;
                }
                self.dirty |= dropped;
            }
        }
        if bump || new_view || self.assignment_epoch < self.group_epoch {
            self.update_target(bump);
        }
    }

    /// The assignor most members asked for (ties: the first name), or the current one
    /// when none asked. Returns whether it changed.
    pub(super) fn choose_assignor(&mut self) -> bool {
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for member in self.members.values() {
            if let Some(name) = &member.preferred_assignor {
                *votes.entry(name.as_str()).or_default() += 1;
            }
        }
        let best = votes
            .iter()
            .max_by_key(|(name, count)| (**count, std::cmp::Reverse(**name)))
            .and_then(|(name, _)| Assignor::from_name(name));
        match best {
            Some(assignor) if assignor != self.assignor => {
                self.assignor = assignor;
                self.dirty = true;
                true
            }
            _ => false,
        }
    }

    /// Recomputes every member's target. `bump`: membership, a subscription or the
    /// assignor changed, so the group epoch rises whatever the outcome; otherwise it
    /// rises only if the target changed. Without a topics view the target waits.
    pub(super) fn update_target(&mut self, bump: bool) {
        if bump {
            self.group_epoch = self.group_epoch.saturating_add(1);
            self.dirty = true;
        }
        let Some(topics) = &self.topics else {
            return;
        };
        let specs: BTreeMap<String, MemberSpec> = self
            .members
            .values()
            .map(|member| {
                let spec = MemberSpec {
                    topics: member.subscribed_topics(topics),
                    current: member.target.clone(),
                };
                (member.member_id.clone(), spec)
            })
            .collect();
        let mut targets = self.assignor.assign(&specs, topics);
        let unchanged = self
            .members
            .values()
            .all(|member| targets.get(&member.member_id) == Some(&member.target));
        if unchanged && self.assignment_epoch == self.group_epoch {
            return;
        }
        if self.assignment_epoch == self.group_epoch {
            self.group_epoch = self.group_epoch.saturating_add(1);
        }
        self.assignment_epoch = self.group_epoch;
        self.dirty = true;
        for member in self.members.values_mut() {
            member.target = targets.remove(&member.member_id).unwrap_or_default();
            if member.is_static_left() {
                // It consumes nothing while away: what left its target is free at once.
                let target = &member.target;
                member::retain(&mut member.assigned, |topic, partition| {
                    member::contains(target, topic, partition)
                });
            }
        }
    }

    /// Step 1: the partitions being revoked that `owned` no longer lists are released.
    pub(super) fn release(&mut self, member_id: &str, owned: Option<&Assignment>) {
        let (Some(member), Some(owned)) = (self.members.get_mut(member_id), owned) else {
            return;
        };
        member::retain(&mut member.revoking, |topic, partition| {
            member::contains(owned, topic, partition)
        });
    }

    /// Steps 2 and 3 for one member.
    pub(super) fn reconcile(&mut self, member_id: &str, now: Instant) {
        let assignment_epoch = self.assignment_epoch;
        let Some(member) = self.members.get_mut(member_id) else {
            return;
        };
        let revoke = member::difference(&member.assigned, &member.target);
        if !revoke.is_empty() {
            for (topic, partition) in &revoke {
                member::remove(&mut member.assigned, topic, *partition);
                member::insert(&mut member.revoking, topic, *partition);
            }
            member.revocation_deadline = Some(now + member.rebalance_timeout);
        }
        if !member.revoking.is_empty() {
            return;
        }
        member.revocation_deadline = None;
        if member.member_epoch != assignment_epoch {
            member.previous_epoch = member.member_epoch;
            member.member_epoch = assignment_epoch;
        }
        let wanted = member::difference(&member.target, &member.assigned);
        if wanted.is_empty() {
            return;
        }
        let free: Vec<(String, i32)> = wanted
            .into_iter()
            .filter(|(topic, partition)| {
                self.members
                    .values()
                    .all(|other| other.member_id == member_id || !other.holds(topic, *partition))
            })
            .collect();
        if let Some(member) = self.members.get_mut(member_id) {
            for (topic, partition) in free {
                member::insert(&mut member.assigned, &topic, partition);
            }
        }
    }
}
