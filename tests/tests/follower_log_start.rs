//! A follower whose log ends below its leader's log start (it was down while the leader's
//! retention deleted what it lacks) starts again, empty, at the leader's log start,
//! catches up and rejoins the ISR; before, it asked for offset 0 forever and was refused
//! with `OFFSET_OUT_OF_RANGE`.
//!
//! Three real brokers, one RF-3 partition with 1 KiB segments and 4 KiB retention; a
//! follower SIGKILLed before anything is written, 300 records produced with `acks=all`
//! (its replica leaves the ISR after the 2 s lag limit), the leader's retention moves its
//! log start past 0, then the follower restarts. The verdicts: the ISR holds all three
//! again, and the follower's copy (read with `strata-broker dump-log`) starts above 0 and
//! ends where the leader's does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use strata_client::{Acks, OffsetSpec, Record};
use strata_proto::api::v1::TopicSpec;
use strata_tests::broker_process::workspace_binary;
use strata_tests::cluster::{Cluster, ClusterOptions};
use strata_tests::cluster_views::{create_topic, formed, partitions_until, three_voters, WAIT};
use strata_tests::wait::wait_for;

const TOPIC: &str = "log-start";
const RECORDS: usize = 300;

/// The first and the next offset of the batches in `node`'s copy of partition 0.
fn held_offsets(cluster: &Cluster, node: u8) -> Option<(i64, i64)> {
    let dir = cluster.data_dir(node).join(format!("{TOPIC}-0"));
    let output = std::process::Command::new(workspace_binary("strata-broker"))
        .arg("dump-log")
        .arg(&dir)
        .output()
        .expect("run strata-broker dump-log");
    assert!(
        output.status.success(),
        "dump-log finds no damage: {output:?}"
    );
    let mut first = None;
    let mut next = None;
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let field = |name: &str| -> Option<i64> {
            line.split(' ')
                .skip_while(|word| *word != name)
                .nth(1)
                .and_then(|offset| offset.parse().ok())
        };
        if !line.starts_with("baseOffset:") {
            continue;
        }
        first = first.or(field("baseOffset:"));
        next = field("lastOffset:").map(|last| last + 1).or(next);
    }
    Some((first?, next?))
}

fn options() -> ClusterOptions {
    let mut options = three_voters();
    options.extra_args.extend(
        [
            "--replica-lag-time-max-ms",
            "2000",
            "--retention-check-interval-ms",
            "300",
        ]
        .map(String::from),
    );
    options
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_behind_the_leaders_log_start_starts_again_there_and_rejoins_the_isr() {
    let mut cluster = Cluster::start(options()).unwrap();
    formed(&cluster).await;
    let configs = HashMap::from([
        ("segment_bytes".to_owned(), "1024".to_owned()),
        ("retention_bytes".to_owned(), "4096".to_owned()),
    ]);
    let spec = TopicSpec {
        name: TOPIC.to_owned(),
        partitions: 1,
        replication_factor: 3,
        configs,
    };
    create_topic(&cluster, 1, spec).await;
    let partitions = partitions_until(&cluster, 1, TOPIC, "ISR = all three", |all| {
        all.len() == 1 && all[0].leader >= 1 && all[0].isr.len() == 3
    })
    .await;
    let leader = u8::try_from(partitions[0].leader).unwrap();
    let follower = (1..=3u8).find(|node| *node != leader).unwrap();
    cluster.kill(follower).unwrap();

    let client = cluster.client(leader).await.unwrap();
    let producer = client.producer().acks(Acks::All).build().unwrap();
    let mut pending = Vec::new();
    for i in 0..RECORDS {
        let value = format!("{i:0>100}");
        pending.push(
            producer
                .enqueue(Record::to(TOPIC).partition(0).value(value))
                .unwrap(),
        );
    }
    producer.flush().await.unwrap();
    for delivery in pending {
        tokio::time::timeout(WAIT, delivery)
            .await
            .expect("delivered in time")
            .expect("acks=all produce succeeds once the dead follower left the ISR");
    }
    let admin = client.admin();
    let leader_start = wait_for(
        "the leader's retention moves its log start past 0",
        WAIT,
        || {
            let admin = admin.clone();
            async move {
                let (start, _) = admin
                    .list_offsets(TOPIC, 0, OffsetSpec::Earliest)
                    .await
                    .map_err(|error| error.to_string())?;
                if start > 0 {
                    Ok(start)
                } else {
                    Err(format!("the log start is {start}"))
                }
            }
        },
    )
    .await
    .unwrap();

    cluster.restart(follower).unwrap();
    partitions_until(
        &cluster,
        leader,
        TOPIC,
        "the restarted follower back in the ISR",
        |all| all.len() == 1 && all[0].isr.len() == 3,
    )
    .await;
    let (leader_end, _) = admin
        .list_offsets(TOPIC, 0, OffsetSpec::Latest)
        .await
        .unwrap();
    cluster.terminate(follower).unwrap();
    let (first, next) = held_offsets(&cluster, follower).expect("the follower holds batches");
    assert!(
        first >= leader_start.min(leader_end),
        "the follower's copy starts at the leader's log start ({leader_start}), not at 0: {first}"
    );
    assert!(first > 0, "the follower started again above 0");
    assert_eq!(
        next, leader_end,
        "the follower holds everything up to the leader's end"
    );
}
