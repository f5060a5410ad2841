//! The heartbeat of one member, by kind: join (epoch 0, empty member id), rejoin under a
//! known id (epoch 0), leave (-1, or -2 for a static member) and stay (epoch > 0).
//! Each checks the whole request before it changes anything, so a refused heartbeat
//! leaves the group as it was; each ends by reconciling the member and answering it.

use std::time::Instant;

use super::assignor::Assignor;
use super::member::{self, invalid, Member};
use super::state::Group;
use super::{
    Assignment, GroupConfig, GroupError, HeartbeatAnswer, HeartbeatRequest, Subscription,
    TopicsView, JOIN_EPOCH, LEAVE_EPOCH, STATIC_LEAVE_EPOCH,
};

impl Group {
    pub(super) fn join(
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
        let replaced = self.admit(&request, config)?;
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

    /// Whether a new member may join: returns the static member that left with -2 it
    /// replaces, if any.
    fn admit(
        &self,
        request: &HeartbeatRequest,
        config: &GroupConfig,
    ) -> Result<Option<String>, GroupError> {
        if let Some(instance_id) = &request.instance_id {
            if instance_id.is_empty() {
                return Err(invalid("the instance id is empty"));
            }
            let holder = self
                .members
                .values()
                .find(|member| member.instance_id.as_ref() == Some(instance_id));
            if let Some(holder) = holder {
                if !holder.is_static_left() {
                    return Err(GroupError::UnreleasedInstanceId {
                        instance_id: instance_id.clone(),
                        member_id: holder.member_id.clone(),
                    });
                }
                return Ok(Some(holder.member_id.clone()));
            }
        }
        if self.members.len() >= config.max_size {
            return Err(GroupError::GroupMaxSizeReached {
                group_id: self.group_id.clone(),
                max_size: config.max_size,
            });
        }
        Ok(None)
    }

    /// Epoch 0 with a known member id: the member was fenced and dropped everything it
    /// owned, so its partitions are free now; it reconciles from scratch.
    fn rejoin(
        &mut self,
        request: HeartbeatRequest,
        topics: &TopicsView,
        config: &GroupConfig,
        now: Instant,
        (subscription, regex): (Subscription, Option<regex::Regex>),
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

    pub(super) fn leave(
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
    pub(super) fn stay(
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
            || reported.is_some_and(|owned| !member::same_partitions(owned, &member.assigned));
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
