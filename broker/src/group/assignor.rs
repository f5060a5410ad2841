//! Server-side assignors: they compute a group's target assignment from its members'
//! subscriptions, the topics' partition counts and the current target. Pure and
//! deterministic: the same input gives the same output (ordered maps only, no randomness),
//! so a coordinator that takes over computes what its predecessor would have.
//!
//! - `uniform` (the default) is balanced and sticky, in three passes:
//!   1. every member keeps the partitions of its current target that still exist and
//!      that it still subscribes to;
//!   2. each partition nobody holds goes to the member with the fewest partitions among
//!      those subscribing to its topic (topics with the fewest subscribers first, as they
//!      have the least choice);
//!   3. while a member holds at least two partitions more than a member that could take
//!      one of them, one partition moves from the fuller to the emptier (fullest member
//!      first, then the emptiest taker). Each move lowers the sum of squared counts, so
//!      this ends.
//!
//!   With equal subscriptions the counts end within one of each other, and only the
//!   partitions that must move do: a member that joins takes partitions from the fullest
//!   members and nobody else changes hands; the partitions of a member that leaves go to
//!   the emptiest members. With different subscriptions no member can take a partition
//!   from one holding two more that it could consume.
//! - `range` assigns each topic on its own: its subscribers sorted by member id take
//!   contiguous ranges of partitions, the first `partitions % subscribers` one more. Not
//!   sticky; useful to co-partition topics with equal partition counts.

use std::collections::{BTreeMap, BTreeSet};

use super::{Assignment, TopicsView};

pub const UNIFORM: &str = "uniform";
pub const RANGE: &str = "range";
/// Every assignor this broker offers, by name.
pub const NAMES: [&str; 2] = [UNIFORM, RANGE];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignor {
    Uniform,
    Range,
}

/// What an assignor knows of one member.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberSpec {
    /// The topics it subscribes to (names missing from the topics view are ignored).
    pub topics: BTreeSet<String>,
    /// Its current target, which `uniform` keeps where balance allows.
    pub current: Assignment,
}

impl Assignor {
    pub fn from_name(name: &str) -> Option<Assignor> {
        match name {
            UNIFORM => Some(Assignor::Uniform),
            RANGE => Some(Assignor::Range),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Assignor::Uniform => UNIFORM,
            Assignor::Range => RANGE,
        }
    }

    /// The target of every member of `members` (an empty assignment for those that get
    /// nothing). Every existing partition of a subscribed topic goes to exactly one of its
    /// subscribers.
    pub fn assign(
        self,
        members: &BTreeMap<String, MemberSpec>,
        topics: &TopicsView,
    ) -> BTreeMap<String, Assignment> {
        match self {
            Assignor::Uniform => Uniform::new(members, topics).assign(),
            Assignor::Range => assign_range(members, topics),
        }
    }
}

fn assign_range(
    members: &BTreeMap<String, MemberSpec>,
    topics: &TopicsView,
) -> BTreeMap<String, Assignment> {
    let mut result: BTreeMap<String, Assignment> = members
        .keys()
        .map(|member_id| (member_id.clone(), Assignment::new()))
        .collect();
    for (topic, count) in topics {
        let subscribers: Vec<&String> = members
            .iter()
            .filter(|(_, spec)| spec.topics.contains(topic))
            .map(|(member_id, _)| member_id)
            .collect();
        let Ok(subscriber_count) = i32::try_from(subscribers.len()) else {
            continue;
        };
        let count = *count;
        if count <= 0 || subscriber_count == 0 {
            continue;
        }
        let (per_member, extra) = (count / subscriber_count, count % subscriber_count);
        let mut start = 0;
        for (index, member_id) in (0..).zip(subscribers) {
            let length = per_member + i32::from(index < extra);
            if length > 0 {
                if let Some(assignment) = result.get_mut(member_id) {
                    assignment.insert(topic.clone(), (start..start + length).collect());
                }
            }
            start += length;
        }
    }
    result
}

/// The `uniform` assignor's working state.
struct Uniform<'a> {
    members: &'a BTreeMap<String, MemberSpec>,
    topics: &'a TopicsView,
    result: BTreeMap<String, Assignment>,
    /// (partition count, member id) of every member: the emptiest first.
    by_count: BTreeSet<(usize, String)>,
    count: BTreeMap<String, usize>,
}

impl<'a> Uniform<'a> {
    fn new(members: &'a BTreeMap<String, MemberSpec>, topics: &'a TopicsView) -> Uniform<'a> {
        Uniform {
            members,
            topics,
            result: members
                .keys()
                .map(|member_id| (member_id.clone(), Assignment::new()))
                .collect(),
            by_count: members
                .keys()
                .map(|member_id| (0, member_id.clone()))
                .collect(),
            count: members
                .keys()
                .map(|member_id| (member_id.clone(), 0))
                .collect(),
        }
    }

    fn assign(mut self) -> BTreeMap<String, Assignment> {
        let mut taken: BTreeSet<(&str, i32)> = BTreeSet::new();
        // 1. Sticky: keep what still exists and is still subscribed.
        for (member_id, spec) in self.members {
            for (topic, partitions) in &spec.current {
                let Some(&count) = self.topics.get(topic) else {
                    continue;
                };
                if count <= 0 || !spec.topics.contains(topic) {
                    continue;
                }
                for &partition in partitions.range(0..count) {
                    if taken.insert((topic.as_str(), partition)) {
                        self.give(member_id, topic, partition);
                    }
                }
            }
        }
        // 2. Free partitions to the emptiest subscriber, most constrained topics first.
        let mut topic_order: Vec<(usize, &String, i32)> = self
            .topics
            .iter()
            .map(|(topic, count)| {
                let subscriber_count = self
                    .members
                    .values()
                    .filter(|spec| spec.topics.contains(topic))
                    .count();
                (subscriber_count, topic, *count)
            })
            .filter(|(subscriber_count, _, _)| *subscriber_count > 0)
            .collect();
        topic_order.sort();
        for (_, topic, count) in topic_order {
            for partition in 0..count {
                if taken.contains(&(topic.as_str(), partition)) {
                    continue;
                }
                // The emptiest first: with equal subscriptions the first one subscribes.
                let emptiest = self
                    .by_count
                    .iter()
                    .map(|(_, member_id)| member_id)
                    .find(|member_id| {
                        self.members
                            .get(*member_id)
                            .is_some_and(|spec| spec.topics.contains(topic))
                    })
                    .cloned();
                if let Some(member_id) = emptiest {
                    self.give(&member_id, topic, partition);
                }
            }
        }
        // 3. Balance.
        while let Some((from, to, topic, partition)) = self.next_move() {
            self.take(&from, &topic, partition);
            self.give(&to, &topic, partition);
        }
        self.result
    }

    /// The next move of pass 3: from the fullest member that has a partition some member
    /// with at least two fewer could take, to the emptiest such member.
    fn next_move(&self) -> Option<(String, String, String, i32)> {
        for (from_count, from) in self.by_count.iter().rev() {
            for (to_count, to) in &self.by_count {
                if to_count + 2 > *from_count {
                    break;
                }
                let Some(spec) = self.members.get(to) else {
                    continue;
                };
                if let Some((topic, partition)) = self.movable(from, &spec.topics) {
                    return Some((from.clone(), to.clone(), topic, partition));
                }
            }
        }
        None
    }

    /// Of `from`'s partitions in `topics`, the last one of the topic it holds most of.
    fn movable(&self, from: &str, topics: &BTreeSet<String>) -> Option<(String, i32)> {
        let held = self.result.get(from)?;
        held.iter()
            .filter(|(topic, _)| topics.contains(*topic))
            .max_by_key(|(topic, partitions)| (partitions.len(), std::cmp::Reverse(*topic)))
            .and_then(|(topic, partitions)| {
                partitions
                    .last()
                    .map(|partition| (topic.clone(), *partition))
            })
    }

    fn give(&mut self, member_id: &str, topic: &str, partition: i32) {
        if let Some(assignment) = self.result.get_mut(member_id) {
            super::member::insert(assignment, topic, partition);
            self.recount(member_id, 1, 0);
        }
    }

    fn take(&mut self, member_id: &str, topic: &str, partition: i32) {
        if let Some(assignment) = self.result.get_mut(member_id) {
            if super::member::remove(assignment, topic, partition) {
                self.recount(member_id, 0, 1);
            }
        }
    }

    fn recount(&mut self, member_id: &str, plus: usize, minus: usize) {
        if let Some(count) = self.count.get_mut(member_id) {
            self.by_count.remove(&(*count, member_id.to_owned()));
            *count = *count + plus - minus;
            self.by_count.insert((*count, member_id.to_owned()));
        }
    }
}
