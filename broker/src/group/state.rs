//! One group's state: members, epochs, target assignment and reconciliation.
//! (Interface fixed for the node; the bodies are being written.)

use std::time::Instant;

use super::{
    Assignment, GroupConfig, GroupError, GroupSnapshot, GroupState, HeartbeatAnswer,
    HeartbeatRequest, MemberSnapshot, TopicsView,
};

/// One consumer group, as its coordinator holds it in memory.
#[derive(Debug, Clone)]
pub struct Group {
    group_id: String,
}

impl Group {
    /// A new, empty group (group epoch 0, assignor `uniform`).
    pub fn new(group_id: impl Into<String>) -> Group {
        Group {
            group_id: group_id.into(),
        }
    }

    /// A group read back from its latest snapshot record; every member gets a fresh
    /// session from `now`.
    pub fn restore(snapshot: GroupSnapshot, config: &GroupConfig, now: Instant) -> Group {
        let _ = (config, now);
        Group {
            group_id: snapshot.group_id,
        }
    }

    pub fn id(&self) -> &str {
        &self.group_id
    }

    /// A member's heartbeat (join with epoch 0, stay, or leave with -1/-2). `new_member_id`
    /// makes the id of a joining member.
    pub fn heartbeat(
        &mut self,
        request: HeartbeatRequest,
        topics: &TopicsView,
        config: &GroupConfig,
        now: Instant,
        new_member_id: &mut dyn FnMut() -> String,
    ) -> Result<HeartbeatAnswer, GroupError> {
        let _ = (request, topics, config, now, new_member_id);
        unimplemented!("group heartbeat")
    }

    /// The cluster's topics changed (created, deleted, partitions added): recompute the
    /// target if a subscription is affected. Returns whether the group changed (persist).
    pub fn on_topics_changed(&mut self, topics: &TopicsView, now: Instant) -> bool {
        let _ = (topics, now);
        false
    }

    /// Expels members whose session lapsed at `now`, or that have not released revoked
    /// partitions within their rebalance timeout; returns their ids (persist if any).
    pub fn expire(&mut self, now: Instant) -> Vec<String> {
        let _ = now;
        Vec::new()
    }

    /// The earliest instant at which [`Group::expire`] could expel someone.
    pub fn next_deadline(&self) -> Option<Instant> {
        None
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
        let _ = (member_id, member_epoch, topic, partition);
        unimplemented!("group commit check")
    }

    pub fn state(&self) -> GroupState {
        GroupState::Empty
    }

    pub fn is_empty(&self) -> bool {
        true
    }

    pub fn group_epoch(&self) -> i32 {
        0
    }

    /// The whole persistent state (also what DescribeGroups shows).
    pub fn snapshot(&self) -> GroupSnapshot {
        GroupSnapshot {
            group_id: self.group_id.clone(),
            group_epoch: 0,
            assignment_epoch: 0,
            assignor: "uniform".to_owned(),
            members: Vec::<MemberSnapshot>::new(),
        }
    }

    /// The member that may consume `topic`-`partition` now, if any.
    pub fn owner_of(&self, topic: &str, partition: i32) -> Option<&str> {
        let _ = (topic, partition);
        None
    }

    /// Every partition some member owns now.
    pub fn owned(&self) -> Assignment {
        Assignment::new()
    }
}
