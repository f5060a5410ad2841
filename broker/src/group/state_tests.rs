//! Tests of the group state machine, driven by a fake clock (a base `Instant` plus
//! durations) and simulated members that obey their answers: a member owns exactly the
//! assignment of its last answer, and reports it in every heartbeat.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::{
    Assignment, Group, GroupConfig, GroupError, GroupSnapshot, GroupState, HeartbeatAnswer,
    HeartbeatRequest, Subscription, TopicsView, JOIN_EPOCH, LEAVE_EPOCH,
};

pub(super) fn assignment(entries: &[(&str, &[i32])]) -> Assignment {
    entries
        .iter()
        .map(|(topic, partitions)| (topic.to_string(), partitions.iter().copied().collect()))
        .collect()
}

pub(super) fn count(assignment: &Assignment) -> usize {
    assignment.values().map(BTreeSet::len).sum()
}

pub(super) fn topics_subscription(topics: &[&str]) -> Subscription {
    Subscription {
        topics: topics.iter().map(|topic| topic.to_string()).collect(),
        regex: None,
    }
}

/// A member process as the coordinator sees it from outside.
#[derive(Debug, Clone)]
pub(super) struct Client {
    pub(super) member_id: String,
    pub(super) epoch: i32,
    pub(super) owns: Assignment,
}

impl Client {
    pub(super) fn apply(&mut self, answer: &HeartbeatAnswer) {
        self.epoch = answer.member_epoch;
        if let Some(assignment) = &answer.assignment {
            self.owns = assignment.clone();
        }
    }
}

pub(super) struct Harness {
    pub(super) group: Group,
    pub(super) topics: TopicsView,
    pub(super) config: GroupConfig,
    pub(super) now: Instant,
    next_id: u32,
}

impl Harness {
    pub(super) fn new(topics: &[(&str, i32)]) -> Harness {
        Harness {
            group: Group::new("g"),
            topics: topics
                .iter()
                .map(|(name, count)| (name.to_string(), *count))
                .collect(),
            config: GroupConfig::default(),
            now: Instant::now(),
            next_id: 0,
        }
    }

    pub(super) fn advance(&mut self, duration: Duration) {
        self.now += duration;
    }

    pub(super) fn send(
        &mut self,
        request: HeartbeatRequest,
    ) -> Result<HeartbeatAnswer, GroupError> {
        let next_id = &mut self.next_id;
        let mut new_member_id = || {
            *next_id += 1;
            format!("member-{next_id:02}")
        };
        self.group.heartbeat(
            request,
            &self.topics,
            &self.config,
            self.now,
            &mut new_member_id,
        )
    }

    pub(super) fn join_request(subscription: Subscription) -> HeartbeatRequest {
        HeartbeatRequest {
            member_epoch: JOIN_EPOCH,
            subscription: Some(subscription),
            client_id: "test".to_owned(),
            client_host: "127.0.0.1".to_owned(),
            ..HeartbeatRequest::default()
        }
    }

    pub(super) fn join(&mut self, topics: &[&str]) -> Client {
        let answer = self
            .send(Harness::join_request(topics_subscription(topics)))
            .expect("join");
        assert!(answer.changed);
        let assignment = answer
            .assignment
            .clone()
            .expect("a join is always answered with an assignment");
        Client {
            member_id: answer.member_id,
            epoch: answer.member_epoch,
            owns: assignment,
        }
    }

    /// One heartbeat of `client`, reporting what it owns; it obeys the answer.
    pub(super) fn poll(&mut self, client: &mut Client) -> HeartbeatAnswer {
        let answer = self
            .send(HeartbeatRequest {
                member_id: client.member_id.clone(),
                member_epoch: client.epoch,
                owned: Some(client.owns.clone()),
                ..HeartbeatRequest::default()
            })
            .expect("heartbeat");
        client.apply(&answer);
        answer
    }

    pub(super) fn update_topics(&mut self, topics: &[(&str, i32)]) -> bool {
        self.topics = topics
            .iter()
            .map(|(name, count)| (name.to_string(), *count))
            .collect();
        self.group.on_topics_changed(&self.topics, self.now)
    }

    /// Polls every client in turn until a whole round changes nothing, checking that no
    /// partition has two owners after each heartbeat.
    pub(super) fn settle(&mut self, clients: &mut [Client]) {
        for _ in 0..10 {
            let before = self.group.snapshot();
            for index in 0..clients.len() {
                let mut client = clients[index].clone();
                self.poll(&mut client);
                clients[index] = client;
                assert_exclusive(&self.group, clients);
            }
            if self.group.snapshot() == before
                && matches!(self.group.state(), GroupState::Stable | GroupState::Empty)
            {
                return;
            }
        }
        panic!("group did not settle: {:#?}", self.group.snapshot());
    }
}

/// No partition is held by two members, on the coordinator's side (assigned ∪ revoking)
/// and on the clients' side (what each believes it owns); and no client owns what the
/// coordinator does not think it holds.
pub(super) fn assert_exclusive(group: &Group, clients: &[Client]) {
    let snapshot = group.snapshot();
    let mut holders: BTreeMap<(String, i32), String> = BTreeMap::new();
    for member in &snapshot.members {
        for held in [&member.assigned, &member.revoking] {
            for (topic, partitions) in held {
                for partition in partitions {
                    let previous =
                        holders.insert((topic.clone(), *partition), member.member_id.clone());
                    assert!(
                        previous.is_none(),
                        "{topic}-{partition} held by {previous:?} and {}",
                        member.member_id
                    );
                }
            }
        }
    }
    let mut owners: BTreeMap<(String, i32), &str> = BTreeMap::new();
    for client in clients {
        for (topic, partitions) in &client.owns {
            for partition in partitions {
                let key = (topic.clone(), *partition);
                assert_eq!(
                    holders.get(&key).map(String::as_str),
                    Some(client.member_id.as_str()),
                    "{} owns {topic}-{partition} without holding it",
                    client.member_id
                );
                assert!(owners.insert(key, &client.member_id).is_none());
            }
        }
    }
}

fn member<'a>(snapshot: &'a GroupSnapshot, member_id: &str) -> &'a super::MemberSnapshot {
    snapshot
        .members
        .iter()
        .find(|member| member.member_id == member_id)
        .expect("member in snapshot")
}

pub(super) fn three_of_six() -> (Harness, Vec<Client>) {
    let mut harness = Harness::new(&[("t", 6)]);
    let mut clients: Vec<Client> = (0..3).map(|_| harness.join(&["t"])).collect();
    harness.settle(&mut clients);
    (harness, clients)
}

#[test]
fn three_members_of_six_partitions_get_two_each() {
    let (harness, clients) = three_of_six();
    assert_eq!(harness.group.state(), GroupState::Stable);
    let mut all = BTreeSet::new();
    for client in &clients {
        assert_eq!(count(&client.owns), 2, "{client:?}");
        all.extend(client.owns["t"].iter().copied());
        assert_eq!(client.epoch, harness.group.group_epoch());
    }
    assert_eq!(all, (0..6).collect());
    assert_eq!(
        harness.group.owned(),
        assignment(&[("t", &[0, 1, 2, 3, 4, 5])])
    );
}

#[test]
fn a_fourth_member_takes_partitions_only_after_their_owner_released_them() {
    let (mut harness, mut clients) = three_of_six();
    let before: Vec<Assignment> = clients.iter().map(|client| client.owns.clone()).collect();
    let epoch = harness.group.group_epoch();

    let mut fourth = harness.join(&["t"]);
    assert_eq!(harness.group.group_epoch(), epoch + 1);
    // Everything is held: the newcomer gets nothing yet.
    assert_eq!(fourth.owns, Assignment::new());
    assert_eq!(harness.group.state(), GroupState::Reconciling);
    clients.push(fourth.clone());
    assert_exclusive(&harness.group, &clients);

    // The member that gives one up is told so first; the others keep everything.
    let mut giver = None;
    for index in 0..3 {
        let answer = harness.poll(&mut clients[index]);
        assert_exclusive(&harness.group, &clients);
        if clients[index].owns != before[index] {
            assert!(giver.is_none(), "only one member gives up a partition");
            assert_eq!(count(&clients[index].owns), 1);
            assert!(answer.assignment.is_some());
            // Still at its old epoch until it has released.
            assert_eq!(answer.member_epoch, epoch);
            giver = Some(index);
        } else {
            assert_eq!(answer.assignment, None);
        }
    }
    let giver = giver.expect("one member gives a partition up");
    let moved = super::member::difference(&before[giver], &clients[giver].owns);
    assert_eq!(moved.len(), 1);
    let (topic, partition) = moved[0].clone();
    assert_eq!(
        harness.group.owner_of(&topic, partition),
        Some(clients[giver].member_id.as_str())
    );

    // The newcomer polls before the release was reported: still nothing.
    let answer = harness.poll(&mut fourth);
    assert_eq!(fourth.owns, Assignment::new());
    assert_eq!(answer.assignment, None);

    // The giver reports it released the partition; it now moves up to the new epoch.
    let answer = harness.poll(&mut clients[giver]);
    assert_eq!(answer.member_epoch, epoch + 1);
    assert_eq!(harness.group.owner_of(&topic, partition), None);
    let answer = harness.poll(&mut fourth);
    assert_eq!(fourth.owns, assignment(&[(&topic, &[partition])]));
    assert!(answer.changed);
    clients[3] = fourth;
    harness.settle(&mut clients);

    // Only the moved partition changed hands; every old member kept the rest throughout.
    for index in 0..3 {
        let lost = super::member::difference(&before[index], &clients[index].owns);
        assert!(super::member::difference(&clients[index].owns, &before[index]).is_empty());
        assert_eq!(lost.len(), usize::from(index == giver));
    }
    let counts: Vec<usize> = clients.iter().map(|client| count(&client.owns)).collect();
    assert_eq!(counts.iter().sum::<usize>(), 6);
    assert!(
        counts.iter().all(|count| (1..=2).contains(count)),
        "{counts:?}"
    );
}

#[test]
fn an_expired_members_partitions_are_reassigned() {
    let (mut harness, mut clients) = three_of_six();
    let dead = clients.remove(1);
    let session = harness.config.session_timeout;
    let epoch = harness.group.group_epoch();
    // The others keep heartbeating; the dead one does not.
    for _ in 0..4 {
        harness.advance(session / 4);
        for client in clients.iter_mut() {
            harness.poll(client);
        }
        assert!(harness.group.next_deadline().is_some());
    }
    // Its partitions stay its own until its session lapses.
    assert!(harness.group.owned()["t"].len() == 6);
    let deadline = harness.group.next_deadline().expect("deadline");
    assert!(harness
        .group
        .expire(deadline - Duration::from_millis(1))
        .is_empty());
    assert_eq!(harness.group.expire(deadline), vec![dead.member_id.clone()]);
    assert_eq!(harness.group.group_epoch(), epoch + 1);
    // Freed at once: the others take them on their next heartbeats.
    assert_eq!(harness.group.owned()["t"].len(), 4);
    harness.settle(&mut clients);
    assert!(clients.iter().all(|client| count(&client.owns) == 3));
    // The dead member is gone for good.
    let error = harness
        .send(HeartbeatRequest {
            member_id: dead.member_id.clone(),
            member_epoch: dead.epoch,
            ..HeartbeatRequest::default()
        })
        .unwrap_err();
    assert!(
        matches!(error, GroupError::UnknownMemberId { .. }),
        "{error}"
    );
}

#[test]
fn commits_are_checked_against_member_epoch_and_assignment() {
    let (mut harness, mut clients) = three_of_six();
    let client = clients[0].clone();
    let (topic, partitions) = client
        .owns
        .iter()
        .next()
        .map(|(t, p)| (t.clone(), p.clone()))
        .expect("owns");
    let partition = *partitions.iter().next().expect("a partition");
    let group = &harness.group;
    assert_eq!(
        group.check_commit(&client.member_id, client.epoch, &topic, partition),
        Ok(())
    );
    let not_owned = (0..6)
        .find(|p| !partitions.contains(p))
        .expect("one it does not own");
    assert!(matches!(
        group.check_commit(&client.member_id, client.epoch, &topic, not_owned),
        Err(GroupError::PartitionNotAssigned { .. })
    ));
    assert!(matches!(
        group.check_commit(&client.member_id, client.epoch + 1, &topic, partition),
        Err(GroupError::FencedMemberEpoch { .. })
    ));
    assert!(matches!(
        group.check_commit("forged", client.epoch, &topic, partition),
        Err(GroupError::UnknownMemberId { .. })
    ));
    assert!(matches!(
        group.check_commit("", LEAVE_EPOCH, &topic, partition),
        Err(GroupError::NonEmptyGroup { members: 3, .. })
    ));

    // A rebalance moves the member to a newer epoch: its old epoch is stale.
    let old_epoch = client.epoch;
    let mut fourth = harness.join(&["t"]);
    clients.push(fourth.clone());
    harness.settle(&mut clients);
    fourth = clients[3].clone();
    let client = clients[0].clone();
    assert!(client.epoch > old_epoch);
    let (topic, partitions) = client
        .owns
        .iter()
        .next()
        .map(|(t, p)| (t.clone(), p.clone()))
        .expect("owns");
    let partition = *partitions.iter().next().expect("a partition");
    assert_eq!(
        harness
            .group
            .check_commit(&client.member_id, old_epoch, &topic, partition),
        Err(GroupError::StaleMemberEpoch {
            member_id: client.member_id.clone(),
            sent: old_epoch,
            current: client.epoch,
        })
    );

    // With nobody left, an administrative commit is allowed.
    for client in clients.iter().chain([&fourth]) {
        let _ = harness.send(HeartbeatRequest {
            member_id: client.member_id.clone(),
            member_epoch: LEAVE_EPOCH,
            ..HeartbeatRequest::default()
        });
    }
    assert!(harness.group.is_empty());
    assert_eq!(harness.group.state(), GroupState::Empty);
    assert_eq!(harness.group.check_commit("", LEAVE_EPOCH, "t", 0), Ok(()));
}

#[test]
fn a_partition_being_revoked_may_still_be_committed() {
    let (mut harness, mut clients) = three_of_six();
    let before: Vec<Assignment> = clients.iter().map(|client| client.owns.clone()).collect();
    harness.join(&["t"]);
    for index in 0..3 {
        let epoch = clients[index].epoch;
        harness.poll(&mut clients[index]);
        if let Some((topic, partition)) =
            super::member::difference(&before[index], &clients[index].owns).first()
        {
            assert_eq!(
                harness
                    .group
                    .check_commit(&clients[index].member_id, epoch, topic, *partition),
                Ok(())
            );
            return;
        }
    }
    panic!("nobody was asked to give a partition up");
}

#[test]
fn a_regex_subscription_follows_new_and_deleted_topics() {
    let mut harness = Harness::new(&[("orders-eu", 2), ("payments", 2), ("__consumer_offsets", 3)]);
    let answer = harness
        .send(Harness::join_request(Subscription {
            topics: BTreeSet::new(),
            regex: Some("orders-.*|__.*".to_owned()),
        }))
        .expect("join");
    let mut clients = vec![Client {
        member_id: answer.member_id,
        epoch: answer.member_epoch,
        owns: answer.assignment.expect("assignment"),
    }];
    harness.settle(&mut clients);
    // Internal topics never match a regex; unmatched ones are not assigned.
    assert_eq!(clients[0].owns, assignment(&[("orders-eu", &[0, 1])]));

    let epoch = harness.group.group_epoch();
    // A topic nobody subscribes to changes nothing.
    assert!(!harness.update_topics(&[("orders-eu", 2), ("payments", 2), ("audit", 1)]));
    assert_eq!(harness.group.group_epoch(), epoch);
    // A matching topic is created: the target grows, the epoch rises.
    assert!(harness.update_topics(&[("orders-eu", 2), ("orders-us", 1), ("payments", 2)]));
    assert_eq!(harness.group.group_epoch(), epoch + 1);
    harness.settle(&mut clients);
    assert_eq!(
        clients[0].owns,
        assignment(&[("orders-eu", &[0, 1]), ("orders-us", &[0])])
    );
    // Partitions are added.
    assert!(harness.update_topics(&[("orders-eu", 3), ("orders-us", 1)]));
    harness.settle(&mut clients);
    assert_eq!(
        clients[0].owns,
        assignment(&[("orders-eu", &[0, 1, 2]), ("orders-us", &[0])])
    );
    // A topic is deleted: its partitions are dropped at once.
    assert!(harness.update_topics(&[("orders-us", 1)]));
    assert_eq!(harness.group.owned(), assignment(&[("orders-us", &[0])]));
    let answer = harness.poll(&mut clients[0]);
    assert_eq!(answer.assignment, Some(assignment(&[("orders-us", &[0])])));
}

#[test]
fn a_member_that_does_not_release_in_time_is_expelled() {
    let (mut harness, mut clients) = three_of_six();
    let before: Vec<Assignment> = clients.iter().map(|client| client.owns.clone()).collect();
    let mut fourth = harness.join(&["t"]);
    for client in clients.iter_mut() {
        harness.poll(client);
    }
    let giver = (0..3)
        .find(|index| clients[*index].owns != before[*index])
        .expect("giver");
    // The giver keeps heartbeating but claims the partition it was asked to release.
    let rebalance_timeout = harness.config.default_rebalance_timeout;
    let mut elapsed = Duration::ZERO;
    while elapsed < rebalance_timeout {
        let step = harness.config.session_timeout / 3;
        harness.advance(step);
        elapsed += step;
        for index in 0..3 {
            let owned = if index == giver {
                before[index].clone()
            } else {
                clients[index].owns.clone()
            };
            harness
                .send(HeartbeatRequest {
                    member_id: clients[index].member_id.clone(),
                    member_epoch: clients[index].epoch,
                    owned: Some(owned),
                    ..HeartbeatRequest::default()
                })
                .expect("heartbeat");
        }
        harness.poll(&mut fourth);
        assert_eq!(fourth.owns, Assignment::new());
        let expelled = harness.group.expire(harness.now);
        if !expelled.is_empty() {
            assert_eq!(expelled, vec![clients[giver].member_id.clone()]);
            assert!(elapsed >= rebalance_timeout - step);
            clients.remove(giver);
            clients.push(fourth);
            harness.settle(&mut clients);
            assert!(clients.iter().all(|client| count(&client.owns) == 2));
            return;
        }
    }
    panic!("the giver was not expelled");
}

#[test]
fn a_snapshot_round_trips_and_the_group_carries_on() {
    let (mut harness, mut clients) = three_of_six();
    // Mid-rebalance, so revoking and targets are non-trivial.
    let mut fourth = harness.join(&["t"]);
    harness.poll(&mut clients[0]);
    harness.poll(&mut clients[1]);
    let snapshot = harness.group.snapshot();
    let restored = Group::restore(snapshot.clone(), &harness.config, harness.now);
    assert_eq!(restored.snapshot(), snapshot);
    assert_eq!(restored.state(), harness.group.state());
    assert_eq!(restored.group_epoch(), harness.group.group_epoch());
    assert_eq!(restored.owned(), harness.group.owned());
    assert!(restored.next_deadline().is_some());
    harness.group = restored;
    clients.push(fourth.clone());
    harness.settle(&mut clients);
    fourth = clients[3].clone();
    assert!(count(&fourth.owns) >= 1);
    // A restored group with nothing new answers a plain heartbeat as unchanged.
    let restored = Group::restore(harness.group.snapshot(), &harness.config, harness.now);
    harness.group = restored;
    let answer = harness.poll(&mut clients[0]);
    assert!(!answer.changed);
    assert_eq!(
        answer.assignment,
        Some(clients[0].owns.clone()),
        "sent again after a restore"
    );
}

#[test]
fn a_restored_group_waits_for_the_topics_before_assigning() {
    let (mut harness, _clients) = three_of_six();
    let restored = Group::restore(harness.group.snapshot(), &harness.config, harness.now);
    harness.group = restored;
    let epoch = harness.group.group_epoch();
    let deadline = harness.group.next_deadline().expect("deadline");
    // Everybody expires before any topics view arrives.
    assert_eq!(harness.group.expire(deadline).len(), 3);
    assert_eq!(harness.group.state(), GroupState::Empty);
    assert_eq!(harness.group.group_epoch(), epoch + 1);
    assert!(harness.group.owned().is_empty());
}

#[test]
fn states_follow_reconciliation() {
    let mut harness = Harness::new(&[("t", 4)]);
    assert_eq!(harness.group.state(), GroupState::Empty);
    assert_eq!(GroupState::Empty.as_str(), "empty");
    let mut clients = vec![harness.join(&["t"])];
    assert_eq!(harness.group.state(), GroupState::Stable);
    clients.push(harness.join(&["t"]));
    assert_eq!(harness.group.state(), GroupState::Reconciling);
    harness.settle(&mut clients);
    assert_eq!(harness.group.state(), GroupState::Stable);
    let restored = Group::restore(
        GroupSnapshot {
            group_epoch: harness.group.group_epoch() + 1,
            ..harness.group.snapshot()
        },
        &harness.config,
        harness.now,
    );
    assert_eq!(restored.state(), GroupState::Assigning);
    harness.group = restored;
    harness.settle(&mut clients);
    assert_eq!(harness.group.state(), GroupState::Stable);
    let snapshot = harness.group.snapshot();
    assert_eq!(snapshot.assignment_epoch, snapshot.group_epoch);
    assert_eq!(
        member(&snapshot, &clients[0].member_id).member_epoch,
        snapshot.group_epoch
    );
}

#[test]
fn a_restored_snapshot_never_gives_a_partition_two_owners() {
    let (harness, _clients) = three_of_six();
    let mut snapshot = harness.group.snapshot();
    let first = snapshot.members[0].assigned.clone();
    snapshot.members[1].revoking.extend(
        first
            .iter()
            .map(|(topic, partitions)| (topic.clone(), partitions.clone())),
    );
    snapshot.members[2]
        .target
        .insert("gone".to_owned(), BTreeSet::new());
    snapshot.assignment_epoch = snapshot.group_epoch + 5;
    let restored = Group::restore(snapshot.clone(), &harness.config, harness.now);
    assert_exclusive(&restored, &[]);
    let mended = restored.snapshot();
    assert_eq!(mended.members[0].assigned, first);
    assert!(mended.members[1].revoking.is_empty());
    assert!(!mended.members[2].target.contains_key("gone"));
    assert_eq!(mended.assignment_epoch, snapshot.group_epoch);
}
