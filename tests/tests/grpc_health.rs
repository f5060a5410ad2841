//! gRPC health checking (`grpc.health.v1.Health`) on the gRPC port of a real
//! `strata-broker`, by the readiness rule of `/readyz`:
//!
//! - a broker without a controller quorum answers `NOT_SERVING` for the whole server and
//!   for each Strata service, and `NOT_FOUND` for a name it does not serve;
//! - a one-node broker answers `SERVING` once ready; a `Watch` opened then says
//!   `SERVING`, then `NOT_SERVING` after SIGTERM, and ends as the broker stops.
//!
//! Timing decides nothing: waits only bound how long a broker may take to get ready.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{bounded, start_broker, WAIT};
use strata_tests::broker_process::{free_port, BrokerOptions, BrokerProcess};
use strata_tests::wait::wait_until;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// The names a client may ask about: the whole server and each Strata service.
const SERVICES: [&str; 5] = [
    "",
    "strata.v1.ClientApi",
    "strata.v1.GroupApi",
    "strata.v1.Replication",
    "strata.v1.Controller",
];

async fn health_client(broker: &BrokerProcess) -> HealthClient<Channel> {
    let channel = Channel::from_shared(broker.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    HealthClient::new(channel)
}

async fn check(client: &mut HealthClient<Channel>, service: &str) -> ServingStatus {
    let request = HealthCheckRequest {
        service: service.to_owned(),
    };
    let response = bounded("Health/Check", client.check(request))
        .await
        .unwrap_or_else(|status| panic!("Check({service:?}): {status:?}"));
    response.into_inner().status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_controller_quorum_every_service_is_not_serving() {
    let dir = tempfile::tempdir().unwrap();
    let own = format!("127.0.0.1:{}", free_port().unwrap());
    // Voters 2 and 3 never start: no controller leader can be elected, and /readyz says
    // "booting".
    let voters = format!(
        "1@{own},2@127.0.0.1:{},3@127.0.0.1:{}",
        free_port().unwrap(),
        free_port().unwrap()
    );
    let broker = tokio::task::block_in_place(|| {
        BrokerProcess::start_with_options(
            dir.path(),
            BrokerOptions {
                extra_args: vec!["--controller-voters".into(), voters],
                listen: Some(own.parse().unwrap()),
                // Unreachable voters are expected: keep their lines out of the test output.
                log_filter: Some("off".to_owned()),
                ..BrokerOptions::default()
            },
        )
    })
    .unwrap();
    let mut client = health_client(&broker).await;
    for service in SERVICES {
        assert_eq!(
            check(&mut client, service).await,
            ServingStatus::NotServing,
            "{service:?}"
        );
    }
    let unknown = client
        .check(HealthCheckRequest {
            service: "no.such.Service".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound, "{unknown:?}");
    drop(broker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ready_broker_is_serving_until_the_first_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path(), &[]);
    let mut client = health_client(&broker).await;
    wait_until("the broker reports SERVING", WAIT, || {
        let mut client = client.clone();
        async move { check(&mut client, "").await == ServingStatus::Serving }
    })
    .await
    .unwrap();
    for service in SERVICES {
        assert_eq!(
            check(&mut client, service).await,
            ServingStatus::Serving,
            "{service:?}"
        );
    }

    let request = HealthCheckRequest {
        service: "strata.v1.ClientApi".to_owned(),
    };
    let mut watch = bounded("Health/Watch", client.watch(request))
        .await
        .unwrap()
        .into_inner();
    let first = bounded("the first status", watch.message()).await.unwrap();
    assert_eq!(first.map(|m| m.status()), Some(ServingStatus::Serving));

    let pid = libc::pid_t::try_from(broker.pid().unwrap()).unwrap();
    // SAFETY: kill takes two integers by value; the pid is our own running child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let next = bounded("the status after SIGTERM", watch.message()).await;
    assert_eq!(
        next.unwrap().map(|m| m.status()),
        Some(ServingStatus::NotServing)
    );
    // The watch does not hold the shutdown open: the broker ends it as it stops.
    let end = bounded("the end of the watch", watch.message()).await;
    assert!(matches!(end, Ok(None) | Err(_)), "{end:?}");
    drop(broker);
}
