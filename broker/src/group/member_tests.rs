//! Tests of a member's life in a group: joins refused, fencing and forged ids, lost
//! answers, rejoining, leaving, static membership, subscription and assignor changes.
//! Same harness as `state_tests.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use super::state_tests::{assignment, count, three_of_six, topics_subscription, Client, Harness};
use super::{
    Assignment, GroupError, HeartbeatRequest, Subscription, LEAVE_EPOCH, STATIC_LEAVE_EPOCH,
};

#[test]
fn forged_or_fenced_heartbeats_are_refused_and_change_nothing() {
    let (mut harness, clients) = three_of_six();
    let before = harness.group.snapshot();
    let forged = harness.send(HeartbeatRequest {
        member_id: "forged".to_owned(),
        member_epoch: clients[0].epoch,
        ..HeartbeatRequest::default()
    });
    assert!(matches!(forged, Err(GroupError::UnknownMemberId { .. })));
    let forged_join = harness.send(HeartbeatRequest {
        member_id: "forged".to_owned(),
        ..Harness::join_request(topics_subscription(&["t"]))
    });
    assert!(matches!(
        forged_join,
        Err(GroupError::UnknownMemberId { .. })
    ));
    for epoch in [clients[0].epoch + 1, clients[0].epoch - 1] {
        let fenced = harness.send(HeartbeatRequest {
            member_id: clients[0].member_id.clone(),
            member_epoch: epoch,
            ..HeartbeatRequest::default()
        });
        assert!(
            matches!(fenced, Err(GroupError::FencedMemberEpoch { .. })),
            "{fenced:?}"
        );
    }
    let bad_epoch = harness.send(HeartbeatRequest {
        member_id: clients[0].member_id.clone(),
        member_epoch: -3,
        ..HeartbeatRequest::default()
    });
    assert!(matches!(bad_epoch, Err(GroupError::InvalidRequest { .. })));
    assert_eq!(harness.group.snapshot(), before);
}

#[test]
fn a_fenced_member_rejoining_with_its_id_frees_its_partitions_at_once() {
    let (mut harness, mut clients) = three_of_six();
    let zombie = clients[0].clone();
    let answer = harness
        .send(HeartbeatRequest {
            member_id: zombie.member_id.clone(),
            ..Harness::join_request(topics_subscription(&["t"]))
        })
        .expect("rejoin");
    assert_eq!(answer.member_id, zombie.member_id);
    // It was asked for nothing else, so it gets its own partitions back at once.
    assert_eq!(answer.assignment, Some(zombie.owns.clone()));
    clients[0].apply(&answer);
    harness.settle(&mut clients);
}

#[test]
fn a_lost_answer_is_tolerated_once() {
    let (mut harness, mut clients) = three_of_six();
    harness.join(&["t"]);
    // A member whose epoch advances at once (it gives nothing up) loses that answer.
    let mut lost = None;
    for client in clients.iter_mut() {
        let mut replica = client.clone();
        let answer = harness.poll(&mut replica);
        if answer.member_epoch > client.epoch {
            lost = Some(client.clone());
            break;
        }
        *client = replica;
    }
    let stale = lost.expect("a member advanced");
    // Without owned partitions it cannot be told from a zombie: fenced.
    let error = harness.send(HeartbeatRequest {
        member_id: stale.member_id.clone(),
        member_epoch: stale.epoch,
        ..HeartbeatRequest::default()
    });
    assert!(
        matches!(error, Err(GroupError::FencedMemberEpoch { .. })),
        "{error:?}"
    );
    // Claiming a partition it does not hold: fenced.
    let error = harness.send(HeartbeatRequest {
        member_id: stale.member_id.clone(),
        member_epoch: stale.epoch,
        owned: Some(assignment(&[("t", &[0, 1, 2, 3, 4, 5])])),
        ..HeartbeatRequest::default()
    });
    assert!(
        matches!(error, Err(GroupError::FencedMemberEpoch { .. })),
        "{error:?}"
    );
    // Its previous epoch with what it owns is accepted, and the assignment sent again.
    let answer = harness
        .send(HeartbeatRequest {
            member_id: stale.member_id.clone(),
            member_epoch: stale.epoch,
            owned: Some(stale.owns.clone()),
            ..HeartbeatRequest::default()
        })
        .expect("the previous epoch is tolerated");
    assert!(answer.member_epoch > stale.epoch);
    assert_eq!(answer.assignment, Some(stale.owns.clone()));
}

#[test]
fn a_plain_heartbeat_changes_nothing() {
    let (mut harness, mut clients) = three_of_six();
    harness.advance(Duration::from_secs(1));
    let answer = harness.poll(&mut clients[0]);
    assert!(!answer.changed);
    assert_eq!(answer.assignment, None);
    assert_eq!(answer.heartbeat_interval, harness.config.heartbeat_interval);
    // Nor does one that lists a topic without partitions, or says nothing of what it owns.
    let mut owned = clients[0].owns.clone();
    owned.insert("other".to_owned(), BTreeSet::new());
    for owned in [Some(owned), None] {
        let answer = harness
            .send(HeartbeatRequest {
                member_id: clients[0].member_id.clone(),
                member_epoch: clients[0].epoch,
                owned,
                ..HeartbeatRequest::default()
            })
            .expect("heartbeat");
        assert!(!answer.changed);
        assert_eq!(answer.assignment, None);
    }
    // The session was extended all the same.
    assert!(harness
        .group
        .expire(harness.now + harness.config.session_timeout - Duration::from_millis(1))
        .iter()
        .all(|id| *id != clients[0].member_id));
}

#[test]
fn a_member_that_leaves_frees_its_partitions_at_once() {
    let (mut harness, mut clients) = three_of_six();
    let leaver = clients.remove(2);
    let epoch = harness.group.group_epoch();
    let answer = harness
        .send(HeartbeatRequest {
            member_id: leaver.member_id.clone(),
            member_epoch: LEAVE_EPOCH,
            ..HeartbeatRequest::default()
        })
        .expect("leave");
    assert_eq!(answer.member_epoch, LEAVE_EPOCH);
    assert!(answer.changed);
    assert_eq!(harness.group.group_epoch(), epoch + 1);
    assert_eq!(harness.group.owned()["t"].len(), 4);
    let kept: Vec<Assignment> = clients.iter().map(|client| client.owns.clone()).collect();
    harness.settle(&mut clients);
    for (client, kept) in clients.iter().zip(&kept) {
        assert_eq!(count(&client.owns), 3);
        assert!(
            super::member::difference(kept, &client.owns).is_empty(),
            "sticky"
        );
    }
}

#[test]
fn a_static_member_keeps_its_partitions_across_a_restart() {
    let mut harness = Harness::new(&[("t", 6)]);
    let mut request = Harness::join_request(topics_subscription(&["t"]));
    request.instance_id = Some("i-1".to_owned());
    let answer = harness.send(request.clone()).expect("static join");
    let mut clients = vec![Client {
        member_id: answer.member_id.clone(),
        epoch: answer.member_epoch,
        owns: answer.assignment.clone().expect("assignment"),
    }];
    clients.push(harness.join(&["t"]));
    harness.settle(&mut clients);
    let owned = clients[0].owns.clone();
    assert_eq!(count(&owned), 3);

    // Its instance id is taken while it lives.
    let error = harness.send(request.clone()).unwrap_err();
    assert_eq!(
        error,
        GroupError::UnreleasedInstanceId {
            instance_id: "i-1".to_owned(),
            member_id: clients[0].member_id.clone(),
        }
    );

    // It leaves with -2: no rebalance, its partitions stay reserved.
    let epoch = harness.group.group_epoch();
    let answer = harness
        .send(HeartbeatRequest {
            member_id: clients[0].member_id.clone(),
            member_epoch: STATIC_LEAVE_EPOCH,
            ..HeartbeatRequest::default()
        })
        .expect("static leave");
    assert_eq!(answer.member_epoch, STATIC_LEAVE_EPOCH);
    assert_eq!(harness.group.group_epoch(), epoch);
    let other = clients.remove(1);
    let mut others = vec![other];
    harness.settle(&mut others);
    assert_eq!(count(&others[0].owns), 3);
    let (topic, partitions) = owned.iter().next().expect("owned");
    for partition in partitions {
        assert_eq!(
            harness.group.owner_of(topic, *partition),
            Some(clients[0].member_id.as_str())
        );
    }
    // Its old member id is fenced.
    let error = harness.send(HeartbeatRequest {
        member_id: clients[0].member_id.clone(),
        member_epoch: clients[0].epoch,
        ..HeartbeatRequest::default()
    });
    assert!(matches!(error, Err(GroupError::FencedMemberEpoch { .. })));

    // It comes back: a new member id, the same partitions, still no rebalance.
    harness.advance(Duration::from_secs(10));
    let answer = harness.send(request.clone()).expect("static rejoin");
    assert_ne!(answer.member_id, clients[0].member_id);
    assert_eq!(answer.assignment, Some(owned.clone()));
    assert_eq!(harness.group.group_epoch(), epoch);
    assert_eq!(harness.group.snapshot().members.len(), 2);

    // Gone with -2 for longer than its session: expelled, its partitions reassigned.
    let rejoined = answer.member_id.clone();
    harness
        .send(HeartbeatRequest {
            member_id: rejoined.clone(),
            member_epoch: STATIC_LEAVE_EPOCH,
            ..HeartbeatRequest::default()
        })
        .expect("static leave");
    for _ in 0..3 {
        harness.advance(harness.config.session_timeout / 2);
        harness.poll(&mut others[0]);
        let _ = harness.group.expire(harness.now);
    }
    assert!(harness
        .group
        .snapshot()
        .members
        .iter()
        .all(|member| member.member_id != rejoined));
    assert_eq!(harness.group.group_epoch(), epoch + 1);
    harness.settle(&mut others);
    assert_eq!(count(&others[0].owns), 6);
}

#[test]
fn a_subscription_change_rebalances() {
    let mut harness = Harness::new(&[("a", 2), ("b", 2)]);
    let mut clients = vec![harness.join(&["a"]), harness.join(&["a"])];
    harness.settle(&mut clients);
    let epoch = harness.group.group_epoch();
    let answer = harness
        .send(HeartbeatRequest {
            member_id: clients[0].member_id.clone(),
            member_epoch: clients[0].epoch,
            subscription: Some(topics_subscription(&["a", "b"])),
            owned: Some(clients[0].owns.clone()),
            ..HeartbeatRequest::default()
        })
        .expect("subscription change");
    assert!(answer.changed);
    assert_eq!(harness.group.group_epoch(), epoch + 1);
    clients[0].apply(&answer);
    harness.settle(&mut clients);
    assert_eq!(clients[0].owns["b"], [0, 1].into_iter().collect());
    assert_eq!(count(&clients[0].owns) + count(&clients[1].owns), 4);
}

#[test]
fn the_range_assignor_is_chosen_by_the_members() {
    let mut harness = Harness::new(&[("t", 5)]);
    let mut request = Harness::join_request(topics_subscription(&["t"]));
    request.server_assignor = Some("range".to_owned());
    let first = harness.send(request.clone()).expect("join");
    let second = harness.send(request).expect("join");
    let mut clients: Vec<Client> = [first, second]
        .into_iter()
        .map(|answer| Client {
            member_id: answer.member_id,
            epoch: answer.member_epoch,
            owns: answer.assignment.unwrap_or_default(),
        })
        .collect();
    harness.settle(&mut clients);
    assert_eq!(harness.group.snapshot().assignor, "range");
    assert_eq!(clients[0].owns, assignment(&[("t", &[0, 1, 2])]));
    assert_eq!(clients[1].owns, assignment(&[("t", &[3, 4])]));
}

#[test]
fn bad_joins_are_refused_and_change_nothing() {
    let mut harness = Harness::new(&[("t", 2)]);
    harness.config.max_size = 1;
    let mut clients = vec![harness.join(&["t"])];
    harness.settle(&mut clients);
    let before = harness.group.snapshot();
    let cases = [
        HeartbeatRequest {
            subscription: None,
            ..Harness::join_request(Subscription::default())
        },
        Harness::join_request(Subscription::default()),
        Harness::join_request(topics_subscription(&[""])),
        Harness::join_request(Subscription {
            topics: BTreeSet::new(),
            regex: Some("(".to_owned()),
        }),
        Harness::join_request(Subscription {
            topics: BTreeSet::new(),
            regex: Some(String::new()),
        }),
    ];
    for request in cases {
        let error = harness.send(request.clone()).unwrap_err();
        assert!(
            matches!(error, GroupError::InvalidRequest { .. }),
            "{request:?}: {error}"
        );
    }
    let mut request = Harness::join_request(topics_subscription(&["t"]));
    request.server_assignor = Some("sticky".to_owned());
    assert_eq!(
        harness.send(request).unwrap_err(),
        GroupError::UnsupportedAssignor {
            name: "sticky".to_owned()
        }
    );
    assert!(matches!(
        harness.send(Harness::join_request(topics_subscription(&["t"]))),
        Err(GroupError::GroupMaxSizeReached { max_size: 1, .. })
    ));
    assert_eq!(harness.group.snapshot(), before);
}

/// Shrunk from the reconciliation proptest: a member that missed the answer asking it to
/// give partitions up kept reporting them, was never told again, and was expelled when
/// its rebalance timeout lapsed.
#[test]
fn a_lost_revocation_is_sent_again() {
    let mut harness = Harness::new(&[("t", 4)]);
    let mut first = harness.join(&["t"]);
    assert_eq!(count(&first.owns), 4);
    let second = harness.join(&["t"]);
    // The answer asking `first` to give two partitions up is lost.
    let lost = harness
        .send(HeartbeatRequest {
            member_id: first.member_id.clone(),
            member_epoch: first.epoch,
            owned: Some(first.owns.clone()),
            ..HeartbeatRequest::default()
        })
        .expect("heartbeat");
    assert_eq!(lost.assignment.as_ref().map(count), Some(2));
    // It still reports all four: it is told again, at the same epoch.
    let answer = harness.poll(&mut first);
    assert_eq!(answer.assignment, lost.assignment);
    assert_eq!(answer.member_epoch, lost.member_epoch);
    let mut clients = vec![first, second];
    harness.settle(&mut clients);
    assert_eq!(count(&clients[1].owns), 2);
    assert!(harness.group.expire(harness.now).is_empty());
}
