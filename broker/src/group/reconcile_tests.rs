//! A model-based property test of reconciliation: random joins, leaves, heartbeats, lost
//! answers, crashes, clock ticks with expiry, topic growth, and static members leaving
//! with -2 and coming back, with simulated members that
//! obey their answers. After every step no partition has two owners (on the coordinator's
//! side or the members'), and `changed` says exactly whether the snapshot changed; the
//! target stays balanced and sticky; once the members keep heartbeating, every member
//! converges to its target.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use proptest::prelude::*;

use super::member::difference;
use super::state_tests::{assert_exclusive, Client, Harness};
use super::{
    Assignment, GroupError, GroupState, HeartbeatRequest, Subscription, JOIN_EPOCH, LEAVE_EPOCH,
    STATIC_LEAVE_EPOCH,
};

#[derive(Debug, Clone)]
enum Step {
    Join,
    Heartbeat(usize),
    /// The member heartbeats but never hears the answer.
    LoseAnswer(usize),
    Leave(usize),
    /// The member process dies: it never heartbeats again.
    Crash(usize),
    /// A third of a session passes; live members heartbeat; the group expires members.
    Tick,
    /// A partition is added to topic `u`.
    Grow,
    /// A member with instance id `i<n>` joins, or comes back.
    StaticJoin(usize),
    /// A live static member leaves with -2.
    StaticLeave(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        2 => Just(Step::Join),
        6 => (0..8usize).prop_map(Step::Heartbeat),
        1 => (0..8usize).prop_map(Step::LoseAnswer),
        1 => (0..8usize).prop_map(Step::Leave),
        1 => (0..8usize).prop_map(Step::Crash),
        2 => Just(Step::Tick),
        1 => Just(Step::Grow),
        2 => (0..3usize).prop_map(Step::StaticJoin),
        1 => (0..8usize).prop_map(Step::StaticLeave),
    ]
}

struct Model {
    harness: Harness,
    live: Vec<Client>,
    crashed: BTreeSet<String>,
    u_partitions: i32,
}

fn subscription() -> Subscription {
    Subscription {
        topics: ["t".to_owned()].into_iter().collect(),
        regex: Some("u".to_owned()),
    }
}

impl Model {
    fn targets(&self) -> Vec<(String, Assignment)> {
        self.harness
            .group
            .snapshot()
            .members
            .into_iter()
            .map(|member| (member.member_id, member.target))
            .collect()
    }

    fn send_checked(
        &mut self,
        request: HeartbeatRequest,
    ) -> Result<super::HeartbeatAnswer, GroupError> {
        let before = self.harness.group.snapshot();
        let result = self.harness.send(request);
        let after = self.harness.group.snapshot();
        match &result {
            Ok(answer) => assert_eq!(answer.changed, before != after, "changed: {answer:?}"),
            Err(_) => assert_eq!(before, after, "a refused heartbeat changed the group"),
        }
        result
    }

    /// One heartbeat of live member `index`; `hear`: whether it receives the answer. A
    /// fenced member drops everything and rejoins under its id.
    fn heartbeat(&mut self, index: usize, hear: bool) {
        let client = self.live[index].clone();
        let result = self.send_checked(HeartbeatRequest {
            member_id: client.member_id.clone(),
            member_epoch: client.epoch,
            owned: Some(client.owns.clone()),
            ..HeartbeatRequest::default()
        });
        match result {
            Ok(answer) if hear => {
                let client = &mut self.live[index];
                client.epoch = answer.member_epoch;
                if let Some(assignment) = answer.assignment {
                    client.owns = assignment;
                }
            }
            Ok(_) => {}
            Err(GroupError::FencedMemberEpoch { .. }) => {
                self.live[index].owns = Assignment::new();
                let answer = self
                    .send_checked(HeartbeatRequest {
                        member_id: client.member_id.clone(),
                        member_epoch: JOIN_EPOCH,
                        subscription: Some(subscription()),
                        ..HeartbeatRequest::default()
                    })
                    .expect("a fenced member rejoins under its id");
                let client = &mut self.live[index];
                client.epoch = answer.member_epoch;
                client.owns = answer.assignment.expect("a join gets an assignment");
            }
            Err(error) => panic!("heartbeat of a live member refused: {error}"),
        }
    }

    fn apply(&mut self, step: &Step) {
        let before = self.targets();
        match step {
            Step::Join => {
                let answer = self
                    .send_checked(Harness::join_request(subscription()))
                    .expect("join");
                self.live.push(Client {
                    member_id: answer.member_id,
                    epoch: answer.member_epoch,
                    owns: answer.assignment.expect("a join gets an assignment"),
                });
                // Sticky: the others only lose partitions to the newcomer.
                let after = self.targets();
                for (member_id, target) in &before {
                    let now = &after
                        .iter()
                        .find(|(id, _)| id == member_id)
                        .expect("kept")
                        .1;
                    assert!(
                        difference(now, target).is_empty(),
                        "{member_id} gained on a join"
                    );
                }
            }
            Step::Heartbeat(index) if *index < self.live.len() => self.heartbeat(*index, true),
            Step::LoseAnswer(index) if *index < self.live.len() => self.heartbeat(*index, false),
            Step::Leave(index) if *index < self.live.len() => {
                let client = self.live.remove(*index);
                let answer = self
                    .send_checked(HeartbeatRequest {
                        member_id: client.member_id,
                        member_epoch: LEAVE_EPOCH,
                        ..HeartbeatRequest::default()
                    })
                    .expect("leave");
                assert_eq!(answer.member_epoch, LEAVE_EPOCH);
                self.assert_only_gained(&before);
            }
            Step::Crash(index) if *index < self.live.len() => {
                let client = self.live.remove(*index);
                self.crashed.insert(client.member_id);
            }
            Step::StaticJoin(instance) => self.static_join(&format!("i{instance}")),
            Step::StaticLeave(index) if *index < self.live.len() => self.static_leave(*index),
            Step::Tick => {
                let session = self.harness.config.session_timeout;
                self.harness.advance(session / 3);
                for index in 0..self.live.len() {
                    self.heartbeat(index, true);
                }
                let before = self.targets();
                let away: BTreeSet<String> = self
                    .harness
                    .group
                    .snapshot()
                    .members
                    .into_iter()
                    .filter(|member| member.member_epoch == STATIC_LEAVE_EPOCH)
                    .map(|member| member.member_id)
                    .collect();
                let expelled = self.harness.group.expire(self.harness.now);
                for member_id in &expelled {
                    assert!(
                        self.crashed.remove(member_id) || away.contains(member_id),
                        "a live member was expelled: {member_id}"
                    );
                }
                self.assert_only_gained(&before);
            }
            Step::Grow => {
                self.u_partitions += 1;
                let partitions = self.u_partitions;
                let changed =
                    self.harness
                        .update_topics(&[("t", 5), ("u", partitions), ("__internal", 2)]);
                assert_eq!(changed, !before.is_empty());
                self.assert_only_gained(&before);
            }
            _ => {}
        }
        assert_exclusive(&self.harness.group, &self.live);
        self.assert_balanced();
    }

    fn static_join(&mut self, instance_id: &str) {
        let before = self.harness.group.snapshot();
        let holder = before
            .members
            .iter()
            .find(|member| member.instance_id.as_deref() == Some(instance_id))
            .cloned();
        let mut request = Harness::join_request(subscription());
        request.instance_id = Some(instance_id.to_owned());
        let result = self.send_checked(request);
        match holder {
            Some(holder) if holder.member_epoch != STATIC_LEAVE_EPOCH => {
                let error = result.expect_err("the instance id is held");
                assert!(
                    matches!(error, GroupError::UnreleasedInstanceId { .. }),
                    "{error}"
                );
            }
            Some(holder) => {
                // Back under a new id, with what was reserved, without a rebalance.
                let answer = result.expect("a static member comes back");
                assert_ne!(answer.member_id, holder.member_id);
                let assignment = answer.assignment.clone().expect("assignment");
                assert!(difference(&holder.assigned, &assignment).is_empty());
                assert_eq!(self.harness.group.group_epoch(), before.group_epoch);
                self.live.push(Client {
                    member_id: answer.member_id,
                    epoch: answer.member_epoch,
                    owns: assignment,
                });
            }
            None => {
                let answer = result.expect("a static member joins");
                self.live.push(Client {
                    member_id: answer.member_id,
                    epoch: answer.member_epoch,
                    owns: answer.assignment.expect("a join gets an assignment"),
                });
            }
        }
    }

    fn static_leave(&mut self, index: usize) {
        let member_id = self.live[index].member_id.clone();
        let before = self.harness.group.snapshot();
        let is_static = before
            .members
            .iter()
            .any(|member| member.member_id == member_id && member.instance_id.is_some());
        if !is_static {
            return;
        }
        self.live.remove(index);
        let answer = self
            .send_checked(HeartbeatRequest {
                member_id,
                member_epoch: STATIC_LEAVE_EPOCH,
                ..HeartbeatRequest::default()
            })
            .expect("static leave");
        assert_eq!(answer.member_epoch, STATIC_LEAVE_EPOCH);
        assert_eq!(self.harness.group.group_epoch(), before.group_epoch);
    }

    /// Members still present only gained partitions (after a member went away or
    /// partitions were added).
    fn assert_only_gained(&self, before: &[(String, Assignment)]) {
        for (member_id, now) in self.targets() {
            if let Some((_, target)) = before.iter().find(|(id, _)| *id == member_id) {
                assert!(
                    difference(target, &now).is_empty(),
                    "{member_id} lost a partition"
                );
            }
        }
    }

    fn assert_balanced(&self) {
        let counts: Vec<usize> = self
            .targets()
            .iter()
            .map(|(_, target)| target.values().map(BTreeSet::len).sum())
            .collect();
        if let (Some(max), Some(min)) = (counts.iter().max(), counts.iter().min()) {
            assert!(max - min <= 1, "unbalanced target: {counts:?}");
            let total = 5 + usize::try_from(self.u_partitions).unwrap_or(0);
            assert_eq!(counts.iter().sum::<usize>(), total);
        }
    }

    /// Crashed members expire; live ones keep heartbeating until nothing changes.
    fn converge(&mut self) {
        for _ in 0..4 {
            self.apply(&Step::Tick);
        }
        assert!(
            self.crashed.is_empty(),
            "crashed members left: {:?}",
            self.crashed
        );
        let mut live = std::mem::take(&mut self.live);
        self.harness.settle(&mut live);
        self.live = live;
        let snapshot = self.harness.group.snapshot();
        assert_eq!(snapshot.members.len(), self.live.len());
        if self.live.is_empty() {
            assert_eq!(self.harness.group.state(), GroupState::Empty);
            return;
        }
        assert_eq!(self.harness.group.state(), GroupState::Stable);
        for member in &snapshot.members {
            let client = self
                .live
                .iter()
                .find(|client| client.member_id == member.member_id)
                .expect("a live client");
            assert_eq!(member.assigned, member.target);
            assert!(member.revoking.is_empty());
            assert_eq!(client.owns, member.target);
            assert_eq!(client.epoch, snapshot.assignment_epoch);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn members_converge_and_never_share_a_partition(
        steps in proptest::collection::vec(step(), 1..60)
    ) {
        let mut model = Model {
            harness: Harness::new(&[("t", 5), ("u", 1), ("__internal", 2)]),
            live: Vec::new(),
            crashed: BTreeSet::new(),
            u_partitions: 1,
        };
        model.harness.config.heartbeat_interval = Duration::from_secs(3);
        for step in &steps {
            model.apply(step);
        }
        model.converge();
    }
}
