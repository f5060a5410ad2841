//! The external listener (`--external-listen`, `--external-advertised-address`), with
//! three real brokers: each has its internal listener on `127.0.0.4x:<port>` (clients,
//! replication, the controller quorum) and an external one on `127.0.0.5x:<port>`.
//!
//! - A client bootstrapped on one broker's external address is told every broker's
//!   external address, and produces (`acks=all`, replication factor 3) and consumes
//!   through the external listeners alone.
//! - A client bootstrapped on an internal address is told the internal addresses.
//! - The external listener serves client calls only: a replication or controller call
//!   there is `UNIMPLEMENTED` (the same call on the internal listener is served), and
//!   gRPC health there knows the client services and not the broker-to-broker ones.
//!
//! Timing decides nothing: the waits only bound how long the cluster may take to form.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::time::Duration;

use strata_client::{Acks, Client, NewTopic, Offset, Record};
use strata_proto::api::v1::controller_client::ControllerClient;
use strata_proto::api::v1::replication_client::ReplicationClient;
use strata_proto::api::v1::{OffsetForLeaderEpochRequest, RaftMessage};
use strata_tests::broker_process::{BrokerOptions, BrokerProcess};
use strata_tests::wait::wait_for;
use tokio_stream::StreamExt;
use tonic::transport::Channel;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

const TOPIC: &str = "external";
/// Bounds every wait; a cluster that needs longer is broken.
const WAIT: Duration = Duration::from_secs(60);
const NODES: [u8; 3] = [1, 2, 3];

fn internal_ip(node: u8) -> IpAddr {
    Ipv4Addr::new(127, 0, 0, 40 + node).into()
}

fn external_ip(node: u8) -> IpAddr {
    Ipv4Addr::new(127, 0, 0, 50 + node).into()
}

/// A port free on every one of `ips` (bound on each, then released for the brokers).
fn port_free_on(ips: &[IpAddr]) -> u16 {
    for _ in 0..100 {
        let first = TcpListener::bind(SocketAddr::new(ips[0], 0)).unwrap();
        let port = first.local_addr().unwrap().port();
        let others: Result<Vec<_>, _> = ips[1..]
            .iter()
            .map(|ip| TcpListener::bind(SocketAddr::new(*ip, port)))
            .collect();
        if others.is_ok() {
            return port;
        }
    }
    panic!("no port free on all of {ips:?}");
}

struct Brokers {
    /// Kept for their `Drop`, which kills the processes.
    _processes: Vec<BrokerProcess>,
    _directory: tempfile::TempDir,
    internal: Vec<SocketAddr>,
    external: Vec<SocketAddr>,
}

fn start_brokers() -> Brokers {
    let ips: Vec<IpAddr> = NODES
        .iter()
        .flat_map(|node| [internal_ip(*node), external_ip(*node)])
        .collect();
    let port = port_free_on(&ips);
    let internal: Vec<SocketAddr> = NODES
        .iter()
        .map(|node| SocketAddr::new(internal_ip(*node), port))
        .collect();
    let external: Vec<SocketAddr> = NODES
        .iter()
        .map(|node| SocketAddr::new(external_ip(*node), port))
        .collect();
    let voters = NODES
        .iter()
        .zip(&internal)
        .map(|(node, address)| format!("{node}@{address}"))
        .collect::<Vec<_>>()
        .join(",");
    let directory = tempfile::tempdir().unwrap();
    let processes = NODES
        .iter()
        .map(|node| {
            let data_dir = directory.path().join(format!("node-{node}"));
            std::fs::create_dir_all(&data_dir).unwrap();
            let index = usize::from(*node - 1);
            let options = BrokerOptions {
                listen: Some(internal[index]),
                extra_args: vec![
                    "--node-id".into(),
                    node.to_string(),
                    "--controller-voters".into(),
                    voters.clone(),
                    "--external-listen".into(),
                    external[index].to_string(),
                ],
                log_file: Some(directory.path().join(format!("broker-{node}.log"))),
                ..BrokerOptions::default()
            };
            BrokerProcess::start_with_options(&data_dir, options).unwrap()
        })
        .collect();
    Brokers {
        _processes: processes,
        _directory: directory,
        internal,
        external,
    }
}

/// The brokers a client bootstrapped on `bootstrap` is told of, once all three are
/// registered: (id, address), sorted.
async fn brokers_seen_from(bootstrap: SocketAddr) -> Vec<(i32, String)> {
    wait_for("three brokers registered", WAIT, || async {
        let client = Client::builder()
            .brokers([bootstrap.to_string()])
            .build()
            .await?;
        let info = client.admin().cluster_info().await?;
        let mut brokers: Vec<(i32, String)> = info
            .brokers
            .iter()
            .map(|broker| (broker.node_id, broker.address.clone()))
            .collect();
        brokers.sort();
        if brokers.len() < NODES.len() {
            anyhow::bail!("not all registered yet: {brokers:?}");
        }
        anyhow::Ok(brokers)
    })
    .await
    .unwrap()
}

fn expected(addresses: &[SocketAddr]) -> Vec<(i32, String)> {
    NODES
        .iter()
        .zip(addresses)
        .map(|(node, address)| (i32::from(*node), address.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_of_the_external_listener_are_given_external_addresses_and_produce_and_consume() {
    let brokers = tokio::task::block_in_place(start_brokers);

    for index in 0..NODES.len() {
        assert_eq!(
            brokers_seen_from(brokers.external[index]).await,
            expected(&brokers.external),
            "metadata asked on an external listener names the external addresses"
        );
        assert_eq!(
            brokers_seen_from(brokers.internal[index]).await,
            expected(&brokers.internal),
            "metadata asked on an internal listener names the internal addresses"
        );
    }

    // Every broker leads one partition, so the producer must reach all three, through the
    // addresses the external listener gave it.
    let client = Client::builder()
        .brokers([brokers.external[1].to_string()])
        .build()
        .await
        .unwrap();
    client
        .admin()
        .create_topic(NewTopic::new(TOPIC).partitions(3).replication_factor(3))
        .await
        .unwrap();
    let producer = client.producer().acks(Acks::All).build().unwrap();
    let mut deliveries = Vec::new();
    for partition in 0..3 {
        let value = format!("through-external-{partition}");
        let record = Record::to(TOPIC).partition(partition).value(value.clone());
        let delivery = producer.send(record).await.unwrap();
        deliveries.push((delivery.partition, delivery.offset, value));
    }
    producer.close().await.unwrap();

    let mut consumer = client
        .consumer()
        .topics([TOPIC])
        .start(Offset::Earliest)
        .build()
        .await
        .unwrap();
    let mut fetched = Vec::new();
    while fetched.len() < deliveries.len() {
        let record = tokio::time::timeout(WAIT, consumer.next())
            .await
            .expect("the records arrive")
            .unwrap()
            .unwrap();
        let value = String::from_utf8(record.value.unwrap().to_vec()).unwrap();
        fetched.push((record.partition, record.offset, value));
    }
    consumer.close().await.unwrap();
    fetched.sort();
    deliveries.sort();
    assert_eq!(fetched, deliveries);

    check_only_client_calls_are_served_externally(&brokers).await;
}

async fn channel(address: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// The gRPC code of `OffsetForLeaderEpoch` (replication) and `RaftVote` (controller)
/// asked at `address`: `Code::Ok` when answered.
async fn broker_to_broker_codes(address: SocketAddr) -> [Code; 2] {
    let channel = channel(address).await;
    let request = OffsetForLeaderEpochRequest {
        replica_id: -1,
        partitions: Vec::new(),
    };
    let replication = ReplicationClient::new(channel.clone())
        .offset_for_leader_epoch(request)
        .await;
    // A voter id the quorum does not have: refused by the controller, if it is reached.
    let vote = RaftMessage {
        from: 99,
        json: bytes::Bytes::from_static(b"{}"),
    };
    let controller = ControllerClient::new(channel).raft_vote(vote).await;
    [
        replication.map_or_else(|status| status.code(), |_| Code::Ok),
        controller.map_or_else(|status| status.code(), |_| Code::Ok),
    ]
}

/// Replication and controller calls are refused on the external listener and served on
/// the internal one; health on the external listener knows only what it serves.
async fn check_only_client_calls_are_served_externally(brokers: &Brokers) {
    assert_eq!(
        broker_to_broker_codes(brokers.external[0]).await,
        [Code::Unimplemented, Code::Unimplemented],
        "replication and controller calls on the external listener"
    );
    let internal = broker_to_broker_codes(brokers.internal[0]).await;
    assert!(
        !internal.contains(&Code::Unimplemented),
        "the internal listener serves them: {internal:?}"
    );

    let mut health = HealthClient::new(channel(brokers.external[0]).await);
    let check = |service: &str| HealthCheckRequest {
        service: service.to_owned(),
    };
    for service in ["", "strata.v1.ClientApi", "strata.v1.GroupApi"] {
        let answer = health.check(check(service)).await.unwrap().into_inner();
        assert_eq!(answer.status(), ServingStatus::Serving, "{service:?}");
    }
    for service in ["strata.v1.Replication", "strata.v1.Controller"] {
        let answer = health.check(check(service)).await.unwrap_err();
        assert_eq!(answer.code(), Code::NotFound, "{service:?}: {answer:?}");
    }
}
