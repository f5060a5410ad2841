//! One group's state: members, epochs, target assignment and reconciliation.
//!
//! - The **group epoch** rises whenever membership, a subscription or the assignor
//!   changes, and when the subscribed topics change the target. The target is recomputed
//!   at once (the **assignment epoch** then equals the group epoch); it waits
//!   ([`GroupState::Assigning`]) only while the topics are unknown, after a restore and
//!   before the first heartbeat or [`Group::on_topics_changed`].
//! - Heartbeats are handled by kind in module `member_heartbeat`.
//! - Each member reconciles on its own heartbeats (module `reconcile`): it is told to
//!   give up what left its target, keeps its epoch until it has released all of it, then
//!   takes the assignment epoch and the partitions of its target no other member holds.
//! - Heartbeats are fenced by member epoch; commits too (older: stale, newer: fenced).
//! - A static member (instance id) that leaves with -2 keeps its partitions reserved until
//!   its session lapses; a join with its instance id takes them over under a new member id
//!   without a rebalance.
//! - A member that sends epoch 0 with its own member id rejoins: it has dropped all it
//!   owned (after being fenced), so its partitions are free at once.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use super::assignor::Assignor;
use super::member::{self, invalid, Member};
use super::{
    Assignment, GroupConfig, GroupError, GroupSnapshot, GroupState, HeartbeatAnswer,
    HeartbeatRequest, TopicsView, JOIN_EPOCH, LEAVE_EPOCH, STATIC_LEAVE_EPOCH,
};

/// One consumer group, as its coordinator holds it in memory.
#[derive(Debug, Clone)]
pub struct Group {
    pub(super) group_id: String,
    pub(super) group_epoch: i32,
    pub(super) assignment_epoch: i32,
    pub(super) assignor: Assignor,
    /// Every member by id, static members that left with -2 included.
    pub(super) members: BTreeMap<String, Member>,
    /// The topics view of the last target computation; `None` after a restore until the
    /// node passes one.
    pub(super) topics: Option<TopicsView>,
    /// Set by every change of group-wide persistent state during one call.
    pub(super) dirty: bool,
}

impl Group {
    /// A new, empty group (group epoch 0, assignor `uniform`).
    pub fn new(group_id: impl Into<String>) -> Group {
        Group {
            group_id: group_id.into(),
            group_epoch: 0,
            assignment_epoch: 0,
            assignor: Assignor::Uniform,
            members: BTreeMap::new(),
            topics: None,
            dirty: false,
        }
    }

    /// A group read back from its latest snapshot record; every member gets a fresh
    /// session from `now`. A snapshot that breaks the group's invariants (it was written
    /// by this code, so only a bug or corruption does that) is mended rather than trusted:
    /// a partition held by two members stays with the first by member id.
    pub fn restore(snapshot: GroupSnapshot, config: &GroupConfig, now: Instant) -> Group {
        let mut held: BTreeSet<(String, i32)> = BTreeSet::new();
        let mut members = BTreeMap::new();
        let mut snapshots = snapshot.members;
        snapshots.sort_by(|left, right| left.member_id.cmp(&right.member_id));
        for member in snapshots {
            let mut member = Member::restore(member, config.session_timeout, now);
            for assignment in [&mut member.assigned, &mut member.revoking] {
                member::retain(assignment, |topic, partition| {
                    held.insert((topic.to_owned(), partition))
                });
            }
            member::retain(&mut member.target, |_, _| true);
            if member.revoking.is_empty() {
                member.revocation_deadline = None;
            }
            members.insert(member.member_id.clone(), member);
        }
        Group {
            group_id: snapshot.group_id,
            group_epoch: snapshot.group_epoch,
            assignment_epoch: snapshot.assignment_epoch.min(snapshot.group_epoch),
            assignor: Assignor::from_name(&snapshot.assignor).unwrap_or(Assignor::Uniform),
            members,
            topics: None,
            dirty: false,
        }
    }

    pub fn id(&self) -> &str {
        &self.group_id
    }

    /// A member's heartbeat (join with epoch 0, stay, or leave with -1/-2). `new_member_id`
    /// makes the id of a joining member. A refused heartbeat changes nothing.
    pub fn heartbeat(
        &mut self,
        request: HeartbeatRequest,
        topics: &TopicsView,
        config: &GroupConfig,
        now: Instant,
        new_member_id: &mut dyn FnMut() -> String,
    ) -> Result<HeartbeatAnswer, GroupError> {
        self.dirty = false;
        match request.member_epoch {
            JOIN_EPOCH => self.join(request, topics, config, now, new_member_id),
            LEAVE_EPOCH | STATIC_LEAVE_EPOCH => self.leave(request, topics, config, now),
            epoch if epoch > 0 => self.stay(request, topics, config, now),
            epoch => Err(invalid(&format!("member epoch {epoch} is not valid"))),
        }
    }

    /// The cluster's topics changed (created, deleted, partitions added): recompute the
    /// target if a subscription is affected. Returns whether the group changed (persist).
    pub fn on_topics_changed(&mut self, topics: &TopicsView, now: Instant) -> bool {
        // Deadlines start when a member is told to revoke, on its own heartbeat.
        let _ = now;
        self.dirty = false;
        self.observe_topics(topics, false);
        self.dirty
    }

    /// Expels members whose session lapsed at `now`, or that have not released revoked
    /// partitions within their rebalance timeout; returns their ids (persist if any).
    pub fn expire(&mut self, now: Instant) -> Vec<String> {
        let expelled: Vec<String> = self
            .members
            .values()
            .filter(|member| {
                member.session_deadline <= now
                    || member
                        .revocation_deadline
                        .is_some_and(|deadline| deadline <= now)
            })
            .map(|member| member.member_id.clone())
            .collect();
        if !expelled.is_empty() {
            self.dirty = false;
            for member_id in &expelled {
                self.members.remove(member_id);
            }
            self.choose_assignor();
            self.update_target(true);
        }
        expelled
    }

    /// The earliest instant at which [`Group::expire`] could expel someone.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.members
            .values()
            .flat_map(|member| [Some(member.session_deadline), member.revocation_deadline])
            .flatten()
            .min()
    }

    /// Whether `member_id` at `member_epoch` may commit an offset for `topic`-`partition`:
    /// it must be a member, with its current epoch (an older one is `StaleMemberEpoch`,
    /// a newer one `FencedMemberEpoch`), owning the partition or giving it up. An
    /// administrative commit (empty member id, epoch -1) is allowed only while the group
    /// has no members (`NonEmptyGroup`).
    pub fn check_commit(
        &self,
        member_id: &str,
        member_epoch: i32,
        topic: &str,
        partition: i32,
    ) -> Result<(), GroupError> {
        if member_id.is_empty() && member_epoch == LEAVE_EPOCH {
            if self.members.is_empty() {
                return Ok(());
            }
            return Err(GroupError::NonEmptyGroup {
                group_id: self.group_id.clone(),
                members: self.members.len(),
            });
        }
        let member = self.member(member_id)?;
        if member_epoch < member.member_epoch {
            return Err(GroupError::StaleMemberEpoch {
                member_id: member_id.to_owned(),
                sent: member_epoch,
                current: member.member_epoch,
            });
        }
        if member_epoch > member.member_epoch {
            return Err(GroupError::FencedMemberEpoch {
                member_id: member_id.to_owned(),
                sent: member_epoch,
                current: member.member_epoch,
            });
        }
        if !member.holds(topic, partition) {
            return Err(GroupError::PartitionNotAssigned {
                member_id: member_id.to_owned(),
                topic: topic.to_owned(),
                partition,
            });
        }
        Ok(())
    }

    pub fn state(&self) -> GroupState {
        if self.members.is_empty() {
            return GroupState::Empty;
        }
        if self.assignment_epoch < self.group_epoch {
            return GroupState::Assigning;
        }
        let reconciling = self.members.values().any(|member| {
            !member.is_static_left()
                && (member.member_epoch != self.assignment_epoch
                    || !member.revoking.is_empty()
                    || member.assigned != member.target)
        });
        if reconciling {
            GroupState::Reconciling
        } else {
            GroupState::Stable
        }
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn group_epoch(&self) -> i32 {
        self.group_epoch
    }

    /// The whole persistent state (also what DescribeGroups shows).
    pub fn snapshot(&self) -> GroupSnapshot {
        GroupSnapshot {
            group_id: self.group_id.clone(),
            group_epoch: self.group_epoch,
            assignment_epoch: self.assignment_epoch,
            assignor: self.assignor.name().to_owned(),
            members: self.members.values().map(Member::snapshot).collect(),
        }
    }

    /// The member that may consume `topic`-`partition` now, if any: the one it is
    /// assigned to, or the one still giving it up.
    pub fn owner_of(&self, topic: &str, partition: i32) -> Option<&str> {
        self.members
            .values()
            .find(|member| member.holds(topic, partition))
            .map(|member| member.member_id.as_str())
    }

    /// Every partition some member owns now (assigned or being given up).
    pub fn owned(&self) -> Assignment {
        let mut owned = Assignment::new();
        for member in self.members.values() {
            for assignment in [&member.assigned, &member.revoking] {
                for (topic, partitions) in assignment {
                    owned.entry(topic.clone()).or_default().extend(partitions);
                }
            }
        }
        owned
    }

    pub(super) fn member(&self, member_id: &str) -> Result<&Member, GroupError> {
        self.members
            .get(member_id)
            .ok_or_else(|| GroupError::UnknownMemberId {
                group_id: self.group_id.clone(),
                member_id: member_id.to_owned(),
            })
    }
}
