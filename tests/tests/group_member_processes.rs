//! Group members as real processes (issue 21's first acceptance line): `strata consume -g`
//! processes share a six-partition topic while a producer writes to every partition.
//!
//! - Three members get two partitions each.
//! - A fourth joins: the three keep every partition they end up with (nothing moves
//!   between old members), and each partition they keep goes on delivering records while
//!   the fourth is being given its share, with no offset skipped or read twice.
//! - One member is SIGKILLed: its partitions belong to the others within the session
//!   timeout plus 5 s, and they read them on from the group's committed offsets.
//!
//! Members are told apart by their `group.instance.id` (static membership), which
//! `DescribeGroups` reports; a SIGKILL sends no leave either way, so the coordinator
//! finds out only when the session lapses.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strata_client::{Client, GroupDescription, NewTopic, Record};
use strata_tests::broker_process::{workspace_binary, BrokerProcess};
use strata_tests::wait::wait_for;

const TOPIC: &str = "shared";
const GROUP: &str = "sharers";
const PARTITIONS: i32 = 6;
const SESSION_TIMEOUT: Duration = Duration::from_secs(3);
/// Generous bounds for the waits that are not the acceptance line's own.
const SETTLE: Duration = Duration::from_secs(60);

/// One line a member printed: when the test read it, and which record it was.
#[derive(Debug, Clone, Copy)]
struct Seen {
    at: Instant,
    partition: i32,
    offset: i64,
}

/// A `strata consume -g` process and the records it printed, read by a thread.
struct Member {
    name: String,
    child: Child,
    seen: Arc<Mutex<Vec<Seen>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Member {
    fn start(broker: &BrokerProcess, name: &str) -> Member {
        let mut child = Command::new(workspace_binary("strata"))
            .arg("-b")
            .arg(broker.address().to_string())
            .args([
                "consume", "-g", GROUP, TOPIC, "-o", "start", "-f", "%p %o\n",
            ])
            .arg("-X")
            .arg(format!("group.instance.id={name}"))
            .env_remove("STRATA_BROKERS")
            .env_remove("STRATA_FORMAT")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start strata consume -g");
        let stdout = child.stdout.take().expect("piped stdout");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut fields = line.split_whitespace();
                let (Some(partition), Some(offset)) = (fields.next(), fields.next()) else {
                    continue;
                };
                let (Ok(partition), Ok(offset)) = (partition.parse(), offset.parse()) else {
                    continue;
                };
                sink.lock().unwrap().push(Seen {
                    at: Instant::now(),
                    partition,
                    offset,
                });
            }
        });
        Member {
            name: name.to_owned(),
            child,
            seen,
            reader: Some(reader),
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn kill(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Each member's partitions (by instance id), once the group is stable with `members`
/// members, each owning exactly its target.
async fn stable_assignment(
    client: &Client,
    members: usize,
    within: Duration,
) -> anyhow::Result<BTreeMap<String, BTreeSet<i32>>> {
    wait_for("the group is stable", within, || async {
        let group = client
            .admin()
            .describe_group(GROUP)
            .await
            .map_err(|error| error.to_string())?;
        owners_if_stable(&group, members).ok_or_else(|| format!("{group:?}"))
    })
    .await
}

fn owners_if_stable(
    group: &GroupDescription,
    members: usize,
) -> Option<BTreeMap<String, BTreeSet<i32>>> {
    if group.members.len() != members {
        return None;
    }
    let mut owners = BTreeMap::new();
    for member in &group.members {
        if member.assignment != member.target_assignment {
            return None;
        }
        let partitions: BTreeSet<i32> = member.assignment.iter().map(|(_, p)| *p).collect();
        owners.insert(member.instance_id.clone()?, partitions);
    }
    let owned: usize = owners.values().map(BTreeSet::len).sum();
    (owned == PARTITIONS as usize).then_some(owners)
}

/// Offsets `member` printed for `partition` at or after `from`, in order.
fn offsets_since(member: &Member, partition: i32, from: Instant) -> Vec<(Instant, i64)> {
    member
        .seen()
        .into_iter()
        .filter(|seen| seen.partition == partition && seen.at >= from)
        .map(|seen| (seen.at, seen.offset))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_share_partitions_move_only_what_changes_owner_and_replace_a_killed_one() {
    let data = tempfile::tempdir().unwrap();
    let session = SESSION_TIMEOUT.as_millis().to_string();
    let broker = BrokerProcess::start(
        data.path(),
        &[
            "--group-heartbeat-interval-ms",
            "200",
            "--group-session-timeout-ms",
            &session,
        ],
    )
    .unwrap();
    let client = Client::builder()
        .brokers([broker.address().to_string()])
        .build()
        .await
        .unwrap();
    client
        .admin()
        .create_topic(NewTopic::new(TOPIC).partitions(PARTITIONS))
        .await
        .unwrap();

    // A producer writes to every partition in turn until the test ends.
    let stop = Arc::new(AtomicBool::new(false));
    let producer = client.producer().build().unwrap();
    let producing = {
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            let mut sent = 0_u64;
            while !stop.load(Ordering::Acquire) {
                let partition = (sent % PARTITIONS as u64) as i32;
                producer
                    .send(
                        Record::to(TOPIC)
                            .partition(partition)
                            .value(sent.to_string()),
                    )
                    .await
                    .expect("a send on a healthy broker");
                sent += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            producer.close().await.unwrap();
        })
    };

    // Three members, two partitions each.
    let mut members: Vec<Member> = ["m1", "m2", "m3"]
        .iter()
        .map(|name| Member::start(&broker, name))
        .collect();
    let three = stable_assignment(&client, 3, SETTLE).await.unwrap();
    for (name, partitions) in &three {
        assert_eq!(
            partitions.len(),
            2,
            "{name} owns {partitions:?} of {three:?}"
        );
    }

    // A fourth joins.
    let joined_at = Instant::now();
    members.push(Member::start(&broker, "m4"));
    let four = stable_assignment(&client, 4, SETTLE).await.unwrap();
    let settled_at = Instant::now();
    let counts: Vec<usize> = four.values().map(BTreeSet::len).collect();
    assert!(
        counts.iter().all(|count| (1..=2).contains(count)),
        "balanced within one: {four:?}"
    );
    for old in ["m1", "m2", "m3"] {
        let kept = &four[old];
        assert!(
            kept.is_subset(&three[old]),
            "{old} may only give partitions up, never receive another old member's: {three:?} → {four:?}"
        );
    }
    // The partitions the old members kept went on flowing while m4 joined: records
    // printed between the join and the settled assignment, each offset once, in order.
    for member in &members[..3] {
        for partition in &four[&member.name] {
            let during = offsets_since(member, *partition, joined_at);
            let flowing: Vec<i64> = during
                .iter()
                .filter(|(at, _)| *at <= settled_at)
                .map(|(_, offset)| *offset)
                .collect();
            assert!(
                !flowing.is_empty(),
                "{} printed nothing from partition {partition} while m4 joined: it paused",
                member.name
            );
            let offsets: Vec<i64> = during.iter().map(|(_, offset)| *offset).collect();
            assert!(
                offsets.windows(2).all(|pair| pair[1] == pair[0] + 1),
                "{} read partition {partition} with a gap or a repeat across the rebalance: {offsets:?}",
                member.name
            );
        }
    }

    // SIGKILL the member that owns the most partitions (ties: the first by name).
    let victim_name = four
        .iter()
        .max_by_key(|(_, partitions)| partitions.len())
        .map(|(name, _)| name.clone())
        .unwrap();
    let orphaned = four[&victim_name].clone();
    let victim = members
        .iter_mut()
        .find(|member| member.name == victim_name)
        .unwrap();
    victim.kill();
    let killed_at = Instant::now();
    let last_printed: BTreeMap<i32, i64> = orphaned
        .iter()
        .filter_map(|partition| {
            let offsets = offsets_since(victim, *partition, joined_at);
            offsets.last().map(|(_, offset)| (*partition, *offset))
        })
        .collect();
    // The acceptance line: reassigned within session.timeout.ms + 5 s.
    let three_again = stable_assignment(&client, 3, SESSION_TIMEOUT + Duration::from_secs(5))
        .await
        .unwrap_or_else(|error| {
            panic!("{victim_name}'s partitions {orphaned:?} not reassigned within the session timeout + 5 s: {error}")
        });
    let reassigned_after = killed_at.elapsed();
    assert!(!three_again.contains_key(&victim_name));
    for (name, partitions) in &three_again {
        assert!(
            four[name].is_subset(partitions),
            "{name} kept what it had: {four:?} → {three_again:?}"
        );
    }
    // The new owners read the orphans on: each takes up a killed member's partition at
    // or before the offset after the last one it printed (the group's committed offset
    // can only be behind what was printed, never ahead of it).
    for partition in &orphaned {
        let new_owner = three_again
            .iter()
            .find(|(_, partitions)| partitions.contains(partition))
            .map(|(name, _)| name.clone())
            .unwrap();
        let member = members
            .iter()
            .find(|member| member.name == new_owner)
            .unwrap();
        let resumed = wait_for(
            "the new owner prints the orphaned partition",
            SETTLE,
            || async {
                offsets_since(member, *partition, killed_at)
                    .first()
                    .map(|(_, offset)| *offset)
                    .ok_or("nothing yet")
            },
        )
        .await
        .unwrap();
        if let Some(last) = last_printed.get(partition) {
            assert!(
                resumed <= last + 1,
                "{new_owner} resumed partition {partition} at {resumed}, past {last} + 1: records skipped"
            );
        }
    }
    eprintln!(
        "a SIGKILLed member's {} partitions were reassigned {:.2} s after the kill (session timeout {:?})",
        orphaned.len(),
        reassigned_after.as_secs_f64(),
        SESSION_TIMEOUT
    );

    stop.store(true, Ordering::Release);
    producing.await.unwrap();
    for member in &mut members {
        member.kill();
    }
}
