//! One group's state: members, epochs, target assignment and reconciliation.
//!
//! - The **group epoch** rises whenever membership, a subscription or the assignor
//!   changes, and when the subscribed topics change the target. The target is recomputed
//!   at once (the **assignment epoch** then equals the group epoch); it waits
//!   ([`GroupState::Assigning`]) only while the topics are unknown, after a restore and
//!   before the first heartbeat or [`Group::on_topics_changed`].
//! - Each member reconciles on its own heartbeats ([`super::reconcile`]): it is told to
//!   give up what left its target, keeps its epoch until it has released all of it, then
//!   takes the assignment epoch and the partitions of its target no other member holds.
//! - Heartbeats are fenced by member epoch; commits too (older: stale, newer: fenced).
//! - A static member (instance id) that leaves with -2 keeps its partitions reserved until
//!   its session lapses; a join with its instance id takes them over under a new member id
//!   without a rebalance.
//! - A member that sends epoch 0 with its own member id rejoins: it has dropped all it
//!   owned (after being fenced), so its partitions are free at once.

use std::collections::BTreeMap;
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
    /// session from `now`.
    pub fn restore(snapshot: GroupSnapshot, config: &GroupConfig, now: Instant) -> Group {
        let members = snapshot
            .members
            .into_iter()
            .map(|member| {
                let member = Member::restore(member, config.session_timeout, now);
                (member.member_id.clone(), member)
            })
            .collect();
        Group {
            group_id: snapshot.group_id,
            group_epoch: snapshot.group_epoch,
            assignment_epoch: snapshot.assignment_epoch,
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

    fn join(
        &mut self,
        request: HeartbeatRequest,
        topics: &TopicsView,
        config: &GroupConfig,
        now: Instant,
        new_member_id: &mut dyn FnMut() -> String,
    ) -> Result<HeartbeatAnswer, GroupError> {
        let Some(subscription) = request.subscription.clone() else {
            return Err(invalid("a joining member must send its subscription"));
        };
        let regex = member::validate_subscription(&subscription)?;
        let preferred = self.validate_assignor(request.server_assignor.as_deref())?;
        if !request.member_id.is_empty() {
            return self.rejoin(request, topics, config, now, (subscription, regex));
        }
        let holder = request.instance_id.as_ref().and_then(|instance_id| {
            self.members
                .values()
                .find(|member| member.instance_id.as_ref() == Some(instance_id))
        });
        let replaced = match holder {
            Some(holder) if !holder.is_static_left() => {
                return Err(GroupError::UnreleasedInstanceId {
                    instance_id: request.instance_id.clone().unwrap_or_default(),
                    member_id: holder.member_id.clone(),
                })
            }
            Some(holder) => Some(holder.member_id.clone()),
            None if self.members.len() >= config.max_size => {
                return Err(GroupError::GroupMaxSizeReached {
                    group_id: self.group_id.clone(),
                    max_size: config.max_size,
                })
            }
            None => None,
        };
        let member_id = self.unique_member_id(new_member_id)?;
        let mut member = Member {
            member_id: member_id.clone(),
            instance_id: request.instance_id,
            client_id: request.client_id,
            client_host: request.client_host,
            member_epoch: JOIN_EPOCH,
            previous_epoch: JOIN_EPOCH,
            subscription,
            regex,
            rebalance_timeout: request
                .rebalance_timeout
                .unwrap_or(config.default_rebalance_timeout),
            assigned: Assignment::new(),
            revoking: Assignment::new(),
            target: Assignment::new(),
            session_deadline: now + config.session_timeout,
            revocation_deadline: None,
            last_sent: None,
            preferred_assignor: preferred,
        };
        // A static member coming back takes over what is reserved for its instance id;
        // the group rebalances only if its subscription changed.
        let rebalance = match replaced.and_then(|old_id| self.members.remove(&old_id)) {
            Some(old) => {
                member.assigned = old.assigned;
                member.target = old.target;
                old.subscription != member.subscription
            }
            None => true,
        };
        self.members.insert(member_id.clone(), member);
        self.dirty = true;
        let assignor_changed = self.choose_assignor();
        self.observe_topics(topics, rebalance || assignor_changed);
        Ok(self.answer(&member_id, true, None, config, now))
    }

    /// Epoch 0 with a known member id: the member was fenced and dropped everything it
    /// owned, so its partitions are free now; it reconciles from scratch.
    fn rejoin(
        &mut self,
        request: HeartbeatRequest,
        topics: &TopicsView,
        config: &GroupConfig,
        now: Instant,
        (subscription, regex): (super::Subscription, Option<regex::Regex>),
    ) -> Result<HeartbeatAnswer, GroupError> {
        let member = self.member(&request.member_id)?;
        if member.is_static_left() {
            return Err(self.fenced(member, JOIN_EPOCH));
        }
        if let Some(instance_id) = &request.instance_id {
            let holder = self.members.values().find(|other| {
                other.instance_id.as_ref() == Some(instance_id)
                    && other.member_id != request.member_id
            });
            if let Some(holder) = holder {
                return Err(GroupError::UnreleasedInstanceId {
                    instance_id: instance_id.clone(),
                    member_id: holder.member_id.clone(),
                });
            }
        }
        let preferred = request.server_assignor.clone();
        let before = member.snapshot();
        let member_id = request.member_id.clone();
        let rebalance = {
            let Some(member) = self.members.get_mut(&member_id) else {
                return Err(invalid("member vanished"));
            };
            member.member_epoch = JOIN_EPOCH;
            member.previous_epoch = JOIN_EPOCH;
            member.assigned.clear();
            member.revoking.clear();
            member.revocation_deadline = None;
            member.session_deadline = now + config.session_timeout;
            if request.instance_id.is_some() {
                member.instance_id = request.instance_id;
            }
            if let Some(timeout) = request.rebalance_timeout {
                member.rebalance_timeout = timeout;
            }
            if preferred.is_some() {
                member.preferred_assignor = preferred;
            }
            update_client(member, request.client_id, request.client_host);
            let changed = member.subscription != subscription;
            member.subscription = subscription;
            member.regex = regex;
            changed
        };
        let assignor_changed = self.choose_assignor();
        self.observe_topics(topics, rebalance || assignor_changed);
        let mut answer = self.answer(&member_id, true, None, config, now);
        answer.changed |= self.members.get(&member_id).map(Member::snapshot) != Some(before);
        Ok(answer)
    }

    fn leave(
        &mut self,
        request: HeartbeatRequest,
        topics: &TopicsView,
        config: &GroupConfig,
        now: Instant,
    ) -> Result<HeartbeatAnswer, GroupError> {
        let member = self.member(&request.member_id)?;
        let static_leave =
            request.member_epoch == STATIC_LEAVE_EPOCH && member.instance_id.is_some();
        let member_id = request.member_id;
        if static_leave {
            // Stays a member, its partitions reserved, until its session lapses.
            if let Some(member) = self.members.get_mut(&member_id) {
                member.member_epoch = STATIC_LEAVE_EPOCH;
                member.previous_epoch = STATIC_LEAVE_EPOCH;
                member.revoking.clear();
                member.revocation_deadline = None;
                member.session_deadline = now + config.session_timeout;
                member.last_sent = None;
                let target = &member.target;
                member::retain(&mut member.assigned, |topic, partition| {
                    member::contains(target, topic, partition)
                });
            }
        } else {
            self.members.remove(&member_id);
            self.choose_assignor();
            self.observe_topics(topics, true);
        }
        Ok(HeartbeatAnswer {
            member_id,
            member_epoch: if static_leave {
                STATIC_LEAVE_EPOCH
            } else {
                LEAVE_EPOCH
            },
            heartbeat_interval: config.heartbeat_interval,
            assignment: None,
            changed: true,
        })
    }

    /// A heartbeat of a member that has joined (epoch > 0).
    fn stay(
        &mut self,
        request: HeartbeatRequest,
        topics: &TopicsView,
        config: &GroupConfig,
        now: Instant,
    ) -> Result<HeartbeatAnswer, GroupError> {
        let member = self.member(&request.member_id)?;
        let resend = self.check_epoch(member, &request)?;
        let regex = match &request.subscription {
            Some(subscription) => Some(member::validate_subscription(subscription)?),
            None => None,
        };
        let preferred = self.validate_assignor(request.server_assignor.as_deref())?;
        let before = member.snapshot();
        let member_id = request.member_id.clone();
        let rebalance = {
            let Some(member) = self.members.get_mut(&member_id) else {
                return Err(invalid("member vanished"));
            };
            member.session_deadline = now + config.session_timeout;
            if let Some(timeout) = request.rebalance_timeout {
                member.rebalance_timeout = timeout;
            }
            if preferred.is_some() {
                member.preferred_assignor = preferred;
            }
            if resend {
                member.last_sent = None;
            }
            update_client(member, request.client_id, request.client_host);
            match (request.subscription, regex) {
                (Some(subscription), Some(regex)) if subscription != member.subscription => {
                    member.subscription = subscription;
                    member.regex = regex;
                    true
                }
                _ => false,
            }
        };
        let assignor_changed = self.choose_assignor();
        self.observe_topics(topics, rebalance || assignor_changed);
        self.release(&member_id, request.owned.as_ref());
        let mut answer = self.answer(&member_id, false, request.owned.as_ref(), config, now);
        answer.changed |= self.members.get(&member_id).map(Member::snapshot) != Some(before);
        Ok(answer)
    }

    /// Fences a heartbeat whose epoch is not the member's. One exception (KIP-848): the
    /// epoch before the member's last advance, with owned partitions all still assigned,
    /// means the answer that advanced it was lost; it is accepted and the assignment is
    /// sent again (returns true).
    fn check_epoch(&self, member: &Member, request: &HeartbeatRequest) -> Result<bool, GroupError> {
        let sent = request.member_epoch;
        if member.is_static_left() {
            return Err(self.fenced(member, sent));
        }
        if sent == member.member_epoch {
            return Ok(false);
        }
        let lost_answer = sent < member.member_epoch
            && sent == member.previous_epoch
            && request
                .owned
                .as_ref()
                .is_some_and(|owned| member::difference(owned, &member.assigned).is_empty());
        if lost_answer {
            Ok(true)
        } else {
            Err(self.fenced(member, sent))
        }
    }

    fn fenced(&self, member: &Member, sent: i32) -> GroupError {
        GroupError::FencedMemberEpoch {
            member_id: member.member_id.clone(),
            sent,
            current: member.member_epoch,
        }
    }

    fn validate_assignor(&self, name: Option<&str>) -> Result<Option<String>, GroupError> {
        match name {
            None => Ok(None),
            Some(name) if Assignor::from_name(name).is_some() => Ok(Some(name.to_owned())),
            Some(name) => Err(GroupError::UnsupportedAssignor {
                name: name.to_owned(),
            }),
        }
    }

    fn unique_member_id(
        &self,
        new_member_id: &mut dyn FnMut() -> String,
    ) -> Result<String, GroupError> {
        for _ in 0..8 {
            let member_id = new_member_id();
            if !member_id.is_empty() && !self.members.contains_key(&member_id) {
                return Ok(member_id);
            }
        }
        Err(invalid("could not make a unique member id"))
    }

    /// Reconciles `member_id` and answers it. The assignment is sent when it differs from
    /// the last one sent, when `force`d (on a join), and when the member `reported` owning
    /// something else: the answer that told it may have been lost (as Kafka does).
    fn answer(
        &mut self,
        member_id: &str,
        force: bool,
        reported: Option<&Assignment>,
        config: &GroupConfig,
        now: Instant,
    ) -> HeartbeatAnswer {
        self.reconcile(member_id, now);
        let dirty = self.dirty;
        let Some(member) = self.members.get_mut(member_id) else {
            debug_assert!(false, "answer for a member that is gone");
            return HeartbeatAnswer {
                member_id: member_id.to_owned(),
                member_epoch: LEAVE_EPOCH,
                heartbeat_interval: config.heartbeat_interval,
                assignment: None,
                changed: dirty,
            };
        };
        let send = force
            || member.last_sent.as_ref() != Some(&member.assigned)
            || reported.is_some_and(|owned| *owned != member.assigned);
        let assignment = if send {
            member.last_sent = Some(member.assigned.clone());
            Some(member.assigned.clone())
        } else {
            None
        };
        HeartbeatAnswer {
            member_id: member_id.to_owned(),
            member_epoch: member.member_epoch,
            heartbeat_interval: config.heartbeat_interval,
            assignment,
            changed: dirty,
        }
    }
}

fn update_client(member: &mut Member, client_id: String, client_host: String) {
    if !client_id.is_empty() {
        member.client_id = client_id;
    }
    if !client_host.is_empty() {
        member.client_host = client_host;
    }
}
