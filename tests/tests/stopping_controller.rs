//! A broker that is the active controller, stopped with SIGTERM while a connection keeps
//! it waiting (its shutdown grace), leaves the controller quorum before that wait: the
//! other voters elect a controller among themselves and the cluster goes on.
//!
//! It once kept its voter running until its connections had closed. Its listener refused
//! new connections meanwhile, so the other brokers' heartbeats and requests could not
//! reach it, while its own outgoing Raft traffic kept it the leader (or made it one
//! again): the other brokers lost their leases and stopped serving until it exited.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use strata_tests::cluster::Cluster;
use strata_tests::cluster_views::{three_voters, WAIT};
use strata_tests::quorum_watch::{create_retrying_at, formed, leader_among};

fn block<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// A TCP connection that never speaks HTTP/2: the broker can only cut it when its grace
/// period ends.
fn frozen_connection(address: SocketAddr) -> TcpStream {
    let mut connection = TcpStream::connect(address).unwrap();
    connection
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut settings = [0u8; 9];
    std::io::Read::read_exact(&mut connection, &mut settings)
        .expect("the broker accepts the connection and sends its SETTINGS frame");
    connection
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_controller_leaves_the_quorum_before_its_connections_drain() {
    let mut options = three_voters();
    options.extra_args.extend(
        [
            "--shutdown-grace-ms",
            "120000",
            "--handshake-timeout-ms",
            "600000",
        ]
        .map(str::to_owned),
    );
    let cluster = block(|| Cluster::start(options)).unwrap();
    let (stopping, _) = formed(&cluster).await.expect("the cluster forms");
    let others: Vec<u8> = cluster
        .nodes()
        .into_iter()
        .filter(|node| *node != stopping)
        .collect();
    let _held_open = frozen_connection(cluster.address(stopping));
    let pid = cluster.pid(stopping).expect("the controller runs");
    let pid = i32::try_from(pid).unwrap();
    // SAFETY: kill(2) on the pid of a child process this test started and still holds.
    let signalled = unsafe { libc::kill(pid, libc::SIGTERM) };
    assert_eq!(signalled, 0);

    let elected = leader_among(&cluster, &others)
        .await
        .expect("the other voters elect a controller while the old one drains");
    assert_ne!(elected, stopping);
    assert!(
        cluster.is_running(stopping),
        "the stopped controller still waits for its connection"
    );
    create_retrying_at(&cluster, others[0], "after-the-handover", 1, WAIT)
        .await
        .expect("the cluster creates topics without the stopping broker");
    assert!(cluster.is_running(stopping));
}
