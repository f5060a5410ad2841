//! One member of a group as its coordinator holds it: the persisted part (ids, epoch,
//! subscription, assigned / revoking / target partitions) and what is re-derived after a
//! restore (session and revocation deadlines, the compiled regex, the assignment last
//! sent, the assignor it asked for, the epoch before its last advance).
//!
//! Invariant kept by the group: a partition is in at most one member's
//! `assigned ∪ revoking`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use regex::Regex;

use super::{Assignment, GroupError, MemberSnapshot, Subscription, TopicsView, STATIC_LEAVE_EPOCH};

/// The most a subscription regex may compile to; a larger one is refused as invalid.
const REGEX_SIZE_BYTES_MAX: usize = 1 << 20;

#[derive(Debug, Clone)]
pub(super) struct Member {
    pub(super) member_id: String,
    pub(super) instance_id: Option<String>,
    pub(super) client_id: String,
    pub(super) client_host: String,
    /// `STATIC_LEAVE_EPOCH` while a static member is away (left with -2).
    pub(super) member_epoch: i32,
    /// The epoch before the last advance: a heartbeat carrying it is accepted once more
    /// when the answer that advanced the epoch may have been lost (KIP-848).
    pub(super) previous_epoch: i32,
    pub(super) subscription: Subscription,
    /// `subscription.regex`, anchored and compiled.
    pub(super) regex: Option<Regex>,
    pub(super) rebalance_timeout: Duration,
    pub(super) assigned: Assignment,
    pub(super) revoking: Assignment,
    pub(super) target: Assignment,
    pub(super) session_deadline: Instant,
    /// Set while `revoking` is not empty: the member is expelled if it has not released
    /// them by then.
    pub(super) revocation_deadline: Option<Instant>,
    /// The assignment in the last answer, `None` when it must be sent again.
    pub(super) last_sent: Option<Assignment>,
    pub(super) preferred_assignor: Option<String>,
}

impl Member {
    pub(super) fn is_static_left(&self) -> bool {
        self.member_epoch == STATIC_LEAVE_EPOCH
    }

    /// The topics of `topics` this member subscribes to: the names it lists that exist,
    /// and the non-internal names its regex matches.
    pub(super) fn subscribed_topics(&self, topics: &TopicsView) -> BTreeSet<String> {
        topics
            .keys()
            .filter(|name| {
                self.subscription.topics.contains(*name)
                    || (!name.starts_with("__")
                        && self
                            .regex
                            .as_ref()
                            .is_some_and(|regex| regex.is_match(name)))
            })
            .cloned()
            .collect()
    }

    /// Whether `topic`-`partition` is in `assigned` or `revoking`.
    pub(super) fn holds(&self, topic: &str, partition: i32) -> bool {
        contains(&self.assigned, topic, partition) || contains(&self.revoking, topic, partition)
    }

    pub(super) fn snapshot(&self) -> MemberSnapshot {
        MemberSnapshot {
            member_id: self.member_id.clone(),
            instance_id: self.instance_id.clone(),
            client_id: self.client_id.clone(),
            client_host: self.client_host.clone(),
            member_epoch: self.member_epoch,
            subscription: self.subscription.clone(),
            rebalance_timeout: self.rebalance_timeout,
            assigned: self.assigned.clone(),
            revoking: self.revoking.clone(),
            target: self.target.clone(),
        }
    }

    /// A member read back from a snapshot, with a session starting at `now`. A regex that
    /// no longer compiles (it was checked when it was accepted) matches nothing.
    pub(super) fn restore(
        snapshot: MemberSnapshot,
        session_timeout: Duration,
        now: Instant,
    ) -> Member {
        let regex = snapshot
            .subscription
            .regex
            .as_deref()
            .and_then(|pattern| compile_regex(pattern).ok());
        let revocation_deadline =
            (!snapshot.revoking.is_empty()).then(|| now + snapshot.rebalance_timeout);
        Member {
            member_id: snapshot.member_id,
            instance_id: snapshot.instance_id,
            client_id: snapshot.client_id,
            client_host: snapshot.client_host,
            member_epoch: snapshot.member_epoch,
            previous_epoch: snapshot.member_epoch,
            subscription: snapshot.subscription,
            regex,
            rebalance_timeout: snapshot.rebalance_timeout,
            assigned: snapshot.assigned,
            revoking: snapshot.revoking,
            target: snapshot.target,
            session_deadline: now + session_timeout,
            revocation_deadline,
            last_sent: None,
            preferred_assignor: None,
        }
    }
}

/// Checks a subscription sent by a member and compiles its regex: it must name at least
/// one topic or carry a non-empty regex that compiles.
pub(super) fn validate_subscription(
    subscription: &Subscription,
) -> Result<Option<Regex>, GroupError> {
    if subscription.topics.iter().any(|topic| topic.is_empty()) {
        return Err(invalid("the subscription names an empty topic"));
    }
    let regex = match subscription.regex.as_deref() {
        None => None,
        Some("") => return Err(invalid("the subscription regex is empty")),
        Some(pattern) => Some(compile_regex(pattern).map_err(|error| {
            invalid(&format!(
                "the subscription regex {pattern:?} is invalid: {error}"
            ))
        })?),
    };
    if subscription.topics.is_empty() && regex.is_none() {
        return Err(invalid("the subscription names no topic and no regex"));
    }
    Ok(regex)
}

fn compile_regex(pattern: &str) -> Result<Regex, regex::Error> {
    regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(REGEX_SIZE_BYTES_MAX)
        .dfa_size_limit(REGEX_SIZE_BYTES_MAX)
        .build()
}

pub(super) fn invalid(reason: &str) -> GroupError {
    GroupError::InvalidRequest {
        reason: reason.to_owned(),
    }
}

pub(super) fn contains(assignment: &Assignment, topic: &str, partition: i32) -> bool {
    assignment
        .get(topic)
        .is_some_and(|partitions| partitions.contains(&partition))
}

pub(super) fn insert(assignment: &mut Assignment, topic: &str, partition: i32) {
    assignment
        .entry(topic.to_owned())
        .or_default()
        .insert(partition);
}

/// Removes `topic`-`partition`, and the topic once it has no partition left.
pub(super) fn remove(assignment: &mut Assignment, topic: &str, partition: i32) -> bool {
    let Some(partitions) = assignment.get_mut(topic) else {
        return false;
    };
    let removed = partitions.remove(&partition);
    if partitions.is_empty() {
        assignment.remove(topic);
    }
    removed
}

/// The partitions of `left` that are not in `right`, as (topic, partition) pairs in order.
pub(super) fn difference(left: &Assignment, right: &Assignment) -> Vec<(String, i32)> {
    left.iter()
        .flat_map(|(topic, partitions)| {
            partitions
                .iter()
                .filter(move |partition| !contains(right, topic, **partition))
                .map(move |partition| (topic.clone(), *partition))
        })
        .collect()
}

/// Whether both hold the same partitions (topics listed without partitions do not count).
pub(super) fn same_partitions(left: &Assignment, right: &Assignment) -> bool {
    difference(left, right).is_empty() && difference(right, left).is_empty()
}

/// Keeps only the partitions `keep` accepts, dropping topics left empty.
pub(super) fn retain(assignment: &mut Assignment, mut keep: impl FnMut(&str, i32) -> bool) -> bool {
    let mut changed = false;
    assignment.retain(|topic, partitions| {
        let before = partitions.len();
        partitions.retain(|partition| keep(topic, *partition));
        changed |= partitions.len() != before;
        !partitions.is_empty()
    });
    changed
}
