//! The values the group calls of [`Admin`](super::Admin) return (`groups.rs`), free of
//! wire types. Wire sentinels become `Option`: `-1` offsets, lags and epochs are `None`,
//! empty member and instance ids are `None`.

use std::fmt;

use strata_proto::api::v1 as wire;

/// A group's state, KIP-848's names (Kafka's `GroupState`): `Empty` has no members,
/// `Assigning` waits for a new target assignment, `Reconciling` has members still moving
/// towards it, `Stable` has every member at its target.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GroupState {
    Empty,
    Assigning,
    Reconciling,
    Stable,
    /// A state this client does not know, as the broker named it.
    Other(String),
}

impl GroupState {
    /// From the broker's lower-case name (`"stable"`); unknown names are kept.
    pub fn from_wire(name: &str) -> GroupState {
        match name {
            "empty" => GroupState::Empty,
            "assigning" => GroupState::Assigning,
            "reconciling" => GroupState::Reconciling,
            "stable" => GroupState::Stable,
            other => GroupState::Other(other.to_owned()),
        }
    }

    /// Kafka's spelling: `Empty`, `Assigning`, `Reconciling`, `Stable`.
    pub fn as_str(&self) -> &str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::Assigning => "Assigning",
            GroupState::Reconciling => "Reconciling",
            GroupState::Stable => "Stable",
            GroupState::Other(name) => name,
        }
    }
}

impl fmt::Display for GroupState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One group as `list_groups` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupListing {
    pub group_id: String,
    pub state: GroupState,
    /// Live members.
    pub members: u32,
    /// The broker coordinating the group.
    pub coordinator: i32,
}

impl GroupListing {
    pub(crate) fn from_wire(listing: &wire::GroupListing) -> GroupListing {
        GroupListing {
            group_id: listing.group_id.clone(),
            state: GroupState::from_wire(&listing.state),
            members: u32::try_from(listing.members).unwrap_or(0),
            coordinator: listing.coordinator,
        }
    }
}

/// A broker that could not list its groups: the listing is incomplete.
#[derive(Debug)]
#[non_exhaustive]
pub struct ListGroupsFailure {
    pub node_id: i32,
    pub address: String,
    pub error: crate::Error,
}

/// What `list_groups` found: the groups of every broker that answered, sorted by id, and
/// the brokers that did not (an empty `failures` means the list is complete).
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct GroupListings {
    pub groups: Vec<GroupListing>,
    pub failures: Vec<ListGroupsFailure>,
}

/// One member of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupMemberDescription {
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub instance_id: Option<String>,
    pub client_id: String,
    /// The address its heartbeats come from.
    pub client_host: String,
    pub member_epoch: i32,
    pub subscribed_topics: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    /// What it owns now, sorted by topic and partition.
    pub assignment: Vec<(String, i32)>,
    /// What the coordinator wants it to own once reconciled, sorted.
    pub target_assignment: Vec<(String, i32)>,
}

impl GroupMemberDescription {
    pub(crate) fn from_wire(member: &wire::GroupMember) -> GroupMemberDescription {
        GroupMemberDescription {
            member_id: member.member_id.clone(),
            instance_id: non_empty(&member.instance_id),
            client_id: member.client_id.clone(),
            client_host: member.client_host.clone(),
            member_epoch: member.member_epoch,
            subscribed_topics: member.subscribed_topic_names.clone(),
            subscribed_topic_regex: non_empty(&member.subscribed_topic_regex),
            assignment: flatten(&member.assignment),
            target_assignment: flatten(&member.target_assignment),
        }
    }
}

/// A group's position in one partition, as the coordinator computes it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupPartitionOffset {
    pub topic: String,
    pub partition: i32,
    /// The next offset the group will read; `None` when nothing is committed.
    pub committed_offset: Option<i64>,
    /// The metadata string of the last commit.
    pub metadata: String,
    /// The partition's log start offset, asked of its leader by the client (the
    /// coordinator does not report it); `None` when it could not be had.
    pub log_start_offset: Option<i64>,
    /// The high watermark (log end offset for consumers) as the coordinator last learned it.
    pub high_watermark: Option<i64>,
    /// `high_watermark - committed_offset`, or the whole partition when nothing is
    /// committed; `None` when unknown.
    pub lag: Option<i64>,
    /// The member that owns the partition.
    pub member_id: Option<String>,
}

impl GroupPartitionOffset {
    pub(crate) fn from_wire(offset: &wire::GroupPartitionOffset) -> GroupPartitionOffset {
        GroupPartitionOffset {
            topic: offset.topic.clone(),
            partition: offset.partition,
            committed_offset: known(offset.committed_offset),
            metadata: offset.metadata.clone(),
            log_start_offset: None,
            high_watermark: known(offset.high_watermark),
            lag: known(offset.lag),
            member_id: non_empty(&offset.member_id),
        }
    }
}

/// A group as `describe_groups` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupDescription {
    pub group_id: String,
    pub state: GroupState,
    /// Bumped whenever membership or subscriptions change.
    pub group_epoch: i32,
    /// The group epoch the current target assignment was computed for.
    pub assignment_epoch: i32,
    /// The server assignor the group uses (`uniform` or `range`).
    pub assignor: String,
    pub coordinator: i32,
    /// Sorted by member id.
    pub members: Vec<GroupMemberDescription>,
    /// Every partition the group has committed or owns, sorted by topic and partition.
    pub offsets: Vec<GroupPartitionOffset>,
}

impl GroupDescription {
    pub(crate) fn from_wire(group: &wire::DescribedGroup) -> GroupDescription {
        let mut members: Vec<GroupMemberDescription> = group
            .members
            .iter()
            .map(GroupMemberDescription::from_wire)
            .collect();
        members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
        let mut offsets: Vec<GroupPartitionOffset> = group
            .offsets
            .iter()
            .map(GroupPartitionOffset::from_wire)
            .collect();
        offsets.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        GroupDescription {
            group_id: group.group_id.clone(),
            state: GroupState::from_wire(&group.state),
            group_epoch: group.group_epoch,
            assignment_epoch: group.assignment_epoch,
            assignor: group.assignor.clone(),
            coordinator: group.coordinator,
            members,
            offsets,
        }
    }

    /// The sum of the known per-partition lags; `None` when no lag is known.
    pub fn total_lag(&self) -> Option<i64> {
        self.offsets
            .iter()
            .filter_map(|offset| offset.lag)
            .fold(None, |total, lag| Some(total.unwrap_or(0) + lag))
    }

    /// The member with this id.
    pub fn member(&self, member_id: &str) -> Option<&GroupMemberDescription> {
        self.members
            .iter()
            .find(|member| member.member_id == member_id)
    }
}

/// A group's committed offset for one partition (`committed_offsets`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CommittedOffset {
    pub topic: String,
    pub partition: i32,
    /// The next offset the group will read; `None` when nothing is committed.
    pub offset: Option<i64>,
    /// Leader epoch of the last record consumed, when the committer knew it.
    pub leader_epoch: Option<i32>,
    pub metadata: String,
}

impl CommittedOffset {
    pub(crate) fn from_wire(offset: &wire::CommittedOffset) -> CommittedOffset {
        CommittedOffset {
            topic: offset.topic.clone(),
            partition: offset.partition,
            offset: known(offset.offset),
            leader_epoch: (offset.leader_epoch >= 0).then_some(offset.leader_epoch),
            metadata: offset.metadata.clone(),
        }
    }
}

/// An offset to store for a group from outside it (`alter_group_offsets`): the next
/// offset the group will read in `topic/partition`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

impl<S: Into<String>> From<(S, i32, i64)> for GroupOffset {
    fn from((topic, partition, offset): (S, i32, i64)) -> GroupOffset {
        GroupOffset {
            topic: topic.into(),
            partition,
            offset,
        }
    }
}

/// The outcome of one partition of `alter_group_offsets`.
#[derive(Debug)]
#[non_exhaustive]
pub struct GroupOffsetResult {
    pub topic: String,
    pub partition: i32,
    pub result: Result<(), crate::Error>,
}

fn known(value: i64) -> Option<i64> {
    (value >= 0).then_some(value)
}

fn non_empty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}

/// `[{topic, [p, ..]}, ..]` → sorted `(topic, p)` pairs.
fn flatten(topics: &[wire::GroupTopicPartitions]) -> Vec<(String, i32)> {
    let mut pairs: Vec<(String, i32)> = topics
        .iter()
        .flat_map(|topic| {
            topic
                .partitions
                .iter()
                .map(|partition| (topic.topic.clone(), *partition))
        })
        .collect();
    pairs.sort();
    pairs
}
