//! The cluster harness (`strata_tests::cluster`) does what it says, with real processes
//! and real iptables rules:
//!
//! - a one-node cluster on 127.0.0.1 (given `--controller-voters` with itself) is
//!   SIGKILLed, SIGSTOPped and continued, SIGTERMed (exit 0) and restarted, and keeps its
//!   data across the restarts; dropping the cluster leaves no broker running;
//! - two unrelated brokers on 127.0.0.2 and 127.0.0.3: cutting their link makes a TCP
//!   connect from 127.0.0.2 to 127.0.0.3:<port> (and back) hang while 127.0.0.1 still
//!   gets through, healing restores it, a node restarts while cut, and no rule outlives
//!   the cluster;
//! - a firewall's rules go when it is dropped, also by a panic, and only its own;
//! - three nodes given `--controller-voters` form one cluster: the metadata of each names
//!   a controller and the three brokers at 127.0.0.1–3.
//!
//! The partition cases need root for iptables; without it they are skipped, loudly.
//! Timing decides nothing: a connect across a cut is expected to fail because its packets
//! are dropped, and the 1 s it is given only bounds the attempt.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use strata_broker::log::manager::CLEAN_SHUTDOWN_FILE;
use strata_client::{Acks, Client, ClusterInfo, NewTopic, OffsetSpec, Record};
use strata_tests::broker_process::connect_from;
use strata_tests::cluster::{node_ip, Cluster, ClusterOptions, ControllerVoters};
use strata_tests::firewall::{self, Firewall};
use strata_tests::wait::{wait_for, wait_until};

const TOPIC: &str = "harness";
/// Bounds every wait; a broker that needs longer is broken.
const WAIT: Duration = Duration::from_secs(60);
/// Bounds one connect attempt across a cut link.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

fn block<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// The scheduler state of a process (`R`, `S`, `T` for stopped, …), from /proc.
fn process_state(pid: u32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 1..];
    after_name.trim_start().chars().next().unwrap()
}

/// Whether a process `pid` runs a broker listening on `address` (a pid reused by another
/// program after the broker was reaped does not count).
fn broker_runs(pid: u32, address: SocketAddr) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|cmdline| String::from_utf8_lossy(&cmdline).contains(&address.to_string()))
        .unwrap_or(false)
}

async fn send_records(client: &Client, prefix: &str, count: usize) {
    let producer = client.producer().acks(Acks::All).build().unwrap();
    for n in 0..count {
        let value = format!("{prefix}{n}");
        producer.send(Record::to(TOPIC).value(value)).await.unwrap();
    }
}

/// The log end offset of the topic's only partition, asked of a fresh client (bounded:
/// the node may still be starting).
async fn log_end(cluster: &Cluster, node: u8) -> i64 {
    wait_for("the node answers ListOffsets", WAIT, || async {
        let client = cluster.client(node).await?;
        let (offset, _) = client
            .admin()
            .list_offsets(TOPIC, 0, OffsetSpec::Latest)
            .await?;
        anyhow::Ok(offset)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_node_cluster_is_killed_paused_terminated_and_restarted_on_its_data() {
    let options = ClusterOptions {
        controller_voters: ControllerVoters::All,
        ..ClusterOptions::new(1)
    };
    let mut cluster = block(|| Cluster::start(options)).unwrap();
    let address = cluster.address(1);
    assert_eq!(address.ip(), IpAddr::from(Ipv4Addr::LOCALHOST));
    assert_eq!(cluster.voters_flag(), Some(format!("1@{address}").as_str()));
    let client = cluster.client(1).await.unwrap();
    let info = client.admin().cluster_info().await.unwrap();
    assert_eq!(info.brokers.len(), 1, "{info:?}");
    assert_eq!(info.brokers[0].node_id, 1, "{info:?}");
    assert_eq!(info.brokers[0].address, address.to_string(), "{info:?}");
    client
        .admin()
        .create_topic(NewTopic::new(TOPIC).partitions(1))
        .await
        .unwrap();
    send_records(&client, "a", 20).await;
    drop(client);

    // SIGSTOP, SIGCONT.
    let pid = cluster.pid(1).unwrap();
    cluster.pause(1).unwrap();
    assert!(cluster.is_paused(1));
    assert_eq!(process_state(pid), 'T', "SIGSTOPped");
    cluster.resume(1).unwrap();
    assert!(!cluster.is_paused(1));
    assert_ne!(process_state(pid), 'T', "continued");
    assert_eq!(log_end(&cluster, 1).await, 20);

    // SIGKILL, restart on the same data.
    let status = cluster.kill(1).unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");
    assert!(!cluster.is_running(1));
    assert_eq!(cluster.pid(1), None);
    block(|| cluster.restart(1)).unwrap();
    assert!(cluster.is_running(1));
    assert_ne!(cluster.pid(1), Some(pid), "a new process");
    assert_eq!(cluster.address(1), address, "the same address");
    assert_eq!(log_end(&cluster, 1).await, 20, "the data survived SIGKILL");

    // SIGTERM: exit 0 and a clean-shutdown marker; restart on the same data.
    send_records(&cluster.client(1).await.unwrap(), "b", 5).await;
    let status = block(|| cluster.terminate(1)).unwrap();
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(cluster.data_dir(1).join(CLEAN_SHUTDOWN_FILE).exists());
    block(|| cluster.restart(1)).unwrap();
    assert_eq!(log_end(&cluster, 1).await, 25, "the data survived SIGTERM");

    // Every start logged to the node's file.
    let log = cluster.log(1);
    assert_eq!(log.matches("broker ready").count(), 3, "{log}");

    let pid = cluster.pid(1).unwrap();
    assert!(broker_runs(pid, address));
    drop(cluster);
    assert!(
        !broker_runs(pid, address),
        "the cluster's drop kills its brokers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cutting_and_healing_a_link_blocks_and_restores_connects_between_two_brokers() {
    let options = ClusterOptions {
        first_node: 2,
        controller_voters: ControllerVoters::None,
        ..ClusterOptions::new(2)
    };
    let mut cluster = block(|| Cluster::start(options)).unwrap();
    assert_eq!(cluster.nodes(), vec![2, 3]);
    assert_eq!(cluster.voters_flag(), None);
    for node in [2, 3] {
        let info = cluster
            .client(node)
            .await
            .unwrap()
            .admin()
            .cluster_info()
            .await;
        let brokers = info.unwrap().brokers;
        assert_eq!(brokers.len(), 1, "each broker is a one-node cluster");
        assert_eq!(brokers[0].node_id, i32::from(node));
    }
    let (two, three) = (IpAddr::from(node_ip(2)), IpAddr::from(node_ip(3)));
    let to_two = cluster.address(2);
    let to_three = cluster.address(3);
    let connects = |source: IpAddr, target: SocketAddr| {
        block(|| connect_from(source, target, CONNECT_TIMEOUT)).is_ok()
    };
    assert!(connects(two, to_three), "connected before the cut");

    if !firewall::skip_unless_available("cluster_harness: cut and heal") {
        return;
    }
    let comment = cluster.firewall_comment().to_owned();
    let rules = || block(|| firewall::rules_with_comment(&comment)).unwrap();

    cluster.cut(2, 3).unwrap();
    assert_eq!(rules().len(), 2, "one rule per direction: {:?}", rules());
    assert!(!connects(two, to_three), "2 → 3 is cut");
    assert!(!connects(three, to_two), "3 → 2 is cut");
    assert!(
        connects(Ipv4Addr::LOCALHOST.into(), to_three),
        "the cut is only the link between 2 and 3"
    );
    assert!(connects(three, to_three), "a node still reaches itself");

    // A node restarts while cut off: the harness's readiness probe is not cut.
    cluster.kill(3).unwrap();
    block(|| cluster.restart(3)).unwrap();
    assert!(!connects(two, to_three), "still cut after the restart");

    cluster.heal(2, 3).unwrap();
    assert!(rules().is_empty(), "healed: {:?}", rules());
    wait_until("2 → 3 connects again", WAIT, || async {
        connects(two, to_three)
    })
    .await
    .unwrap();
    assert!(connects(three, to_two));

    cluster.isolate(2).unwrap();
    assert!(!connects(two, to_three), "isolated");
    cluster.heal_all().unwrap();
    assert!(connects(two, to_three), "healed all");

    // Dropping the cluster deletes the rules of a cut still in place.
    cluster.cut(3, 2).unwrap();
    assert_eq!(rules().len(), 2);
    drop(cluster);
    assert!(rules().is_empty(), "rules left after drop: {:?}", rules());
}

#[test]
fn a_firewall_removes_only_its_own_rules_when_dropped_even_by_a_panic() {
    if !firewall::skip_unless_available("cluster_harness: firewall rules") {
        return;
    }
    // Addresses no other test here uses, and a port nothing listens on.
    let (a, b, c) = (
        Ipv4Addr::new(127, 0, 0, 12),
        Ipv4Addr::new(127, 0, 0, 13),
        Ipv4Addr::new(127, 0, 0, 14),
    );
    let mut kept = Firewall::new(&[9]);
    kept.cut(a, b).unwrap();

    let panicked = std::thread::spawn(move || {
        let mut doomed = Firewall::new(&[9]);
        doomed.cut(a, b).unwrap();
        doomed.cut(b, c).unwrap();
        let comment = doomed.comment().to_owned();
        assert_eq!(firewall::rules_with_comment(&comment).unwrap().len(), 4);
        std::panic::panic_any(comment);
    })
    .join()
    .expect_err("the thread panics");
    let doomed_comment = panicked.downcast::<String>().unwrap();

    assert!(
        firewall::rules_with_comment(&doomed_comment)
            .unwrap()
            .is_empty(),
        "the panicking test's rules are gone"
    );
    assert_eq!(
        kept.rules().unwrap().len(),
        2,
        "the other test's rules stay"
    );
    let comment = kept.comment().to_owned();
    drop(kept);
    assert!(firewall::rules_with_comment(&comment).unwrap().is_empty());
}

/// The cluster as `node`'s metadata shows it, once it names a controller and three
/// brokers. (`describe_cluster` would show the voters too; the broker does not serve it
/// yet.)
async fn formed_cluster(cluster: &Cluster, node: u8) -> anyhow::Result<ClusterInfo> {
    let info = cluster.client(node).await?.admin().cluster_info().await?;
    if info.controller_id < 1 || info.brokers.len() < 3 {
        anyhow::bail!("not formed yet: {info:?}");
    }
    Ok(info)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_with_controller_voters_form_one_cluster() {
    let mut cluster = block(|| Cluster::start(ClusterOptions::new(3))).unwrap();
    let port = cluster.port();
    assert_eq!(
        cluster.voters_flag(),
        Some(format!("1@127.0.0.1:{port},2@127.0.0.2:{port},3@127.0.0.3:{port}").as_str())
    );
    let expected: Vec<(i32, String)> = cluster
        .nodes()
        .into_iter()
        .map(|node| (i32::from(node), cluster.address(node).to_string()))
        .collect();
    let mut controllers = Vec::new();
    for node in cluster.nodes() {
        let what = format!("node {node} shows a formed cluster");
        let info = wait_for(&what, WAIT, || formed_cluster(&cluster, node))
            .await
            .unwrap();
        let mut brokers: Vec<(i32, String)> = info
            .brokers
            .iter()
            .map(|broker| (broker.node_id, broker.address.clone()))
            .collect();
        brokers.sort();
        assert_eq!(brokers, expected, "{info:?}");
        controllers.push(info.controller_id);
    }
    eprintln!("controller as nodes 1, 2, 3 see it: {controllers:?}");
    let status = block(|| cluster.terminate(2)).unwrap();
    assert_eq!(status.code(), Some(0), "{status}");
}
