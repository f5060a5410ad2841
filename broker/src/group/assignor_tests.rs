//! Tests of the assignors: examples, then properties over random groups.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::assignor::{Assignor, MemberSpec, NAMES};
use super::state_tests::assignment;
use super::{Assignment, TopicsView};

fn topics(entries: &[(&str, i32)]) -> TopicsView {
    entries
        .iter()
        .map(|(name, count)| (name.to_string(), *count))
        .collect()
}

fn spec(topics: &[&str], current: Assignment) -> MemberSpec {
    MemberSpec {
        topics: topics.iter().map(|topic| topic.to_string()).collect(),
        current,
    }
}

fn members(specs: Vec<(&str, MemberSpec)>) -> BTreeMap<String, MemberSpec> {
    specs
        .into_iter()
        .map(|(member_id, spec)| (member_id.to_owned(), spec))
        .collect()
}

fn count(assignment: &Assignment) -> usize {
    assignment.values().map(BTreeSet::len).sum()
}

/// Every partition of a subscribed topic goes to exactly one subscriber; nothing else is
/// assigned.
fn assert_complete(
    members: &BTreeMap<String, MemberSpec>,
    topics: &TopicsView,
    result: &BTreeMap<String, Assignment>,
) {
    assert_eq!(
        result.keys().collect::<Vec<_>>(),
        members.keys().collect::<Vec<_>>()
    );
    let mut seen = BTreeSet::new();
    for (member_id, assigned) in result {
        for (topic, partitions) in assigned {
            assert!(!partitions.is_empty(), "no empty topic entries");
            assert!(
                members[member_id].topics.contains(topic),
                "{member_id} got {topic}"
            );
            for partition in partitions {
                assert!((0..topics[topic]).contains(partition));
                assert!(
                    seen.insert((topic.clone(), *partition)),
                    "{topic}-{partition} twice"
                );
            }
        }
    }
    for (topic, partitions) in topics {
        if members.values().any(|spec| spec.topics.contains(topic)) {
            for partition in 0..*partitions {
                assert!(
                    seen.contains(&(topic.clone(), partition)),
                    "{topic}-{partition} unassigned"
                );
            }
        }
    }
}

#[test]
fn names_round_trip() {
    for name in NAMES {
        assert_eq!(Assignor::from_name(name).map(Assignor::name), Some(name));
    }
    assert_eq!(Assignor::from_name("cooperative-sticky"), None);
}

#[test]
fn uniform_balances_equal_subscriptions() {
    let view = topics(&[("a", 5), ("b", 3)]);
    let group = members(
        ["m1", "m2", "m3"]
            .into_iter()
            .map(|member_id| (member_id, spec(&["a", "b"], Assignment::new())))
            .collect(),
    );
    let result = Assignor::Uniform.assign(&group, &view);
    assert_complete(&group, &view, &result);
    let counts: Vec<usize> = result.values().map(count).collect();
    assert_eq!(counts.iter().sum::<usize>(), 8);
    assert!(
        counts.iter().all(|count| (2..=3).contains(count)),
        "{counts:?}"
    );
}

#[test]
fn uniform_moves_only_what_a_newcomer_takes() {
    let view = topics(&[("t", 6)]);
    let mut group = members(vec![
        ("m1", spec(&["t"], assignment(&[("t", &[0, 1])]))),
        ("m2", spec(&["t"], assignment(&[("t", &[2, 3])]))),
        ("m3", spec(&["t"], assignment(&[("t", &[4, 5])]))),
    ]);
    group.insert("m4".to_owned(), spec(&["t"], Assignment::new()));
    let result = Assignor::Uniform.assign(&group, &view);
    assert_complete(&group, &view, &result);
    // Of the fullest members, the last by id gives its last partition.
    assert_eq!(result["m1"], assignment(&[("t", &[0, 1])]));
    assert_eq!(result["m2"], assignment(&[("t", &[2, 3])]));
    assert_eq!(result["m3"], assignment(&[("t", &[4])]));
    assert_eq!(result["m4"], assignment(&[("t", &[5])]));
}

#[test]
fn uniform_gives_a_leavers_partitions_to_the_emptiest() {
    let view = topics(&[("t", 7)]);
    let group = members(vec![
        ("m1", spec(&["t"], assignment(&[("t", &[0, 1])]))),
        ("m2", spec(&["t"], assignment(&[("t", &[2, 3])]))),
        ("m3", spec(&["t"], assignment(&[("t", &[4])]))),
        // m4 (5, 6) left.
    ]);
    let result = Assignor::Uniform.assign(&group, &view);
    assert_complete(&group, &view, &result);
    // 5 to the emptiest (m3), then 6 to the first of the now equal ones.
    assert_eq!(result["m1"], assignment(&[("t", &[0, 1, 6])]));
    assert_eq!(result["m2"], assignment(&[("t", &[2, 3])]));
    assert_eq!(result["m3"], assignment(&[("t", &[4, 5])]));
}

#[test]
fn uniform_drops_what_no_longer_exists_or_is_no_longer_subscribed() {
    let view = topics(&[("a", 2), ("b", 2)]);
    let group = members(vec![
        (
            "m1",
            spec(
                &["a"],
                assignment(&[("a", &[0, 1, 7]), ("b", &[0]), ("gone", &[0])]),
            ),
        ),
        ("m2", spec(&["a", "b"], assignment(&[("a", &[0])]))),
    ]);
    let result = Assignor::Uniform.assign(&group, &view);
    assert_complete(&group, &view, &result);
    // a-0 was claimed twice: the first member (by id) keeps it.
    assert_eq!(result["m1"], assignment(&[("a", &[0, 1])]));
    assert_eq!(result["m2"], assignment(&[("b", &[0, 1])]));
}

#[test]
fn uniform_balances_different_subscriptions_where_it_can() {
    let view = topics(&[("a", 4), ("b", 4)]);
    let group = members(vec![
        ("m1", spec(&["a"], Assignment::new())),
        ("m2", spec(&["a", "b"], Assignment::new())),
    ]);
    let result = Assignor::Uniform.assign(&group, &view);
    assert_complete(&group, &view, &result);
    assert_eq!(result["m1"], assignment(&[("a", &[0, 1, 2, 3])]));
    assert_eq!(result["m2"], assignment(&[("b", &[0, 1, 2, 3])]));

    // One member alone on a big topic cannot be helped; the shared topic goes to the
    // other.
    let view = topics(&[("big", 10), ("small", 2)]);
    let group = members(vec![
        ("m1", spec(&["big", "small"], Assignment::new())),
        ("m2", spec(&["small"], Assignment::new())),
    ]);
    let result = Assignor::Uniform.assign(&group, &view);
    assert_complete(&group, &view, &result);
    assert_eq!(count(&result["m1"]), 10);
    assert_eq!(result["m2"], assignment(&[("small", &[0, 1])]));
}

#[test]
fn range_gives_contiguous_ranges_by_member_id() {
    let view = topics(&[("a", 7), ("b", 2), ("c", 0)]);
    let group = members(vec![
        ("m2", spec(&["a", "b", "c"], Assignment::new())),
        ("m1", spec(&["a", "b"], Assignment::new())),
        ("m3", spec(&["a"], assignment(&[("a", &[0])]))),
    ]);
    let result = Assignor::Range.assign(&group, &view);
    assert_complete(&group, &view, &result);
    assert_eq!(result["m1"], assignment(&[("a", &[0, 1, 2]), ("b", &[0])]));
    assert_eq!(result["m2"], assignment(&[("a", &[3, 4]), ("b", &[1])]));
    assert_eq!(result["m3"], assignment(&[("a", &[5, 6])]));
}

#[test]
fn odd_partition_counts_are_harmless() {
    let view = topics(&[("negative", -3), ("empty", 0)]);
    let group = members(vec![(
        "m1",
        spec(&["negative", "empty"], assignment(&[("negative", &[0])])),
    )]);
    for assignor in [Assignor::Uniform, Assignor::Range] {
        let result = assignor.assign(&group, &view);
        assert_eq!(result["m1"], Assignment::new());
    }
}

const TOPIC_NAMES: [&str; 3] = ["a", "b", "c"];

/// A random group: members subscribe to random subsets of three topics and carry random
/// (possibly overlapping or stale) current targets.
fn arbitrary_group() -> impl Strategy<Value = (BTreeMap<String, MemberSpec>, TopicsView)> {
    let view = proptest::collection::vec(0..12i32, 3).prop_map(|counts| {
        TOPIC_NAMES
            .iter()
            .zip(counts)
            .map(|(name, count)| (name.to_string(), count))
            .collect::<TopicsView>()
    });
    let member = (
        proptest::collection::btree_set(0..3usize, 1..=3),
        proptest::collection::vec((0..3usize, 0..14i32), 0..8),
    )
        .prop_map(|(subscribed, current)| {
            let mut assigned = Assignment::new();
            for (topic, partition) in current {
                super::member::insert(&mut assigned, TOPIC_NAMES[topic], partition);
            }
            MemberSpec {
                topics: subscribed
                    .into_iter()
                    .map(|topic| TOPIC_NAMES[topic].to_owned())
                    .collect(),
                current: assigned,
            }
        });
    let members = proptest::collection::vec(member, 0..7).prop_map(|specs| {
        specs
            .into_iter()
            .enumerate()
            .map(|(index, spec)| (format!("m{index}"), spec))
            .collect()
    });
    (members, view)
}

proptest! {
    #[test]
    fn assignments_are_complete_deterministic_and_stable((group, view) in arbitrary_group()) {
        for assignor in [Assignor::Uniform, Assignor::Range] {
            let result = assignor.assign(&group, &view);
            assert_complete(&group, &view, &result);
            prop_assert_eq!(&assignor.assign(&group, &view), &result);
            // Fed back as the current target, the result is kept as it is.
            let again: BTreeMap<String, MemberSpec> = group
                .iter()
                .map(|(member_id, spec)| {
                    let current = result[member_id].clone();
                    (member_id.clone(), MemberSpec { topics: spec.topics.clone(), current })
                })
                .collect();
            prop_assert_eq!(&assignor.assign(&again, &view), &result);
        }
    }

    #[test]
    fn uniform_leaves_no_move_that_would_balance(
        (group, view) in arbitrary_group()
    ) {
        let result = Assignor::Uniform.assign(&group, &view);
        for (from, held) in &result {
            for (to, spec) in &group {
                if count(held) >= count(&result[to]) + 2 {
                    prop_assert!(
                        held.keys().all(|topic| !spec.topics.contains(topic)),
                        "{} could take from {}", to, from
                    );
                }
            }
        }
        // With equal subscriptions that means within one.
        let subscriptions: BTreeSet<&BTreeSet<String>> =
            group.values().map(|spec| &spec.topics).collect();
        if subscriptions.len() == 1 {
            let counts: Vec<usize> = result.values().map(count).collect();
            let spread = counts.iter().max().zip(counts.iter().min()).map(|(max, min)| max - min);
            prop_assert!(spread.unwrap_or(0) <= 1, "{:?}", counts);
        }
    }

    #[test]
    fn uniform_keeps_a_balanced_target_when_one_member_joins_or_leaves(
        (group, view) in arbitrary_group(),
        leaver in 0..7usize,
    ) {
        // Equal subscriptions, from a balanced starting point.
        let all: BTreeSet<String> = TOPIC_NAMES.iter().map(|t| t.to_string()).collect();
        let equal: BTreeMap<String, MemberSpec> = group
            .keys()
            .map(|member_id| (member_id.clone(), MemberSpec { topics: all.clone(), current: Assignment::new() }))
            .collect();
        let balanced = Assignor::Uniform.assign(&equal, &view);
        let with_current = |member_id: &String| MemberSpec {
            topics: all.clone(),
            current: balanced[member_id].clone(),
        };
        let mut joined: BTreeMap<String, MemberSpec> =
            equal.keys().map(|member_id| (member_id.clone(), with_current(member_id))).collect();
        joined.insert("new".to_owned(), MemberSpec { topics: all.clone(), current: Assignment::new() });
        let after_join = Assignor::Uniform.assign(&joined, &view);
        for (member_id, before) in &balanced {
            prop_assert!(super::member::difference(&after_join[member_id], before).is_empty());
        }
        // Exactly what the newcomer took moved (unless nobody held anything before).
        let moved: usize = balanced
            .iter()
            .map(|(member_id, before)| super::member::difference(before, &after_join[member_id]).len())
            .sum();
        if !balanced.is_empty() {
            prop_assert_eq!(moved, count(&after_join["new"]));
        }

        if let Some(gone) = equal.keys().nth(leaver) {
            let remaining: BTreeMap<String, MemberSpec> = equal
                .keys()
                .filter(|member_id| *member_id != gone)
                .map(|member_id| (member_id.clone(), with_current(member_id)))
                .collect();
            let after_leave = Assignor::Uniform.assign(&remaining, &view);
            for (member_id, after) in &after_leave {
                prop_assert!(super::member::difference(&balanced[member_id], after).is_empty());
            }
        }
    }
}
