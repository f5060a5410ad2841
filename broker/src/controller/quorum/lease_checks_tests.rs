//! The lease checks of a controller whose broker is shutting down.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use strata_proto::types::BrokerId;

use super::*;
use crate::node::test_node::node_with_session_timeout;

/// The longest the test waits for the silent broker's lease to lapse.
const WAIT_MAX: Duration = Duration::from_secs(30);

/// A controller that is shutting down must not fence the brokers whose heartbeats it may
/// be refusing. In a rolling restart the stopping broker was the active controller: its
/// listener refused new connections, the other brokers' leases lapsed, and it fenced two
/// healthy brokers, moving their leadership for nothing.
#[tokio::test]
async fn a_controller_that_is_leaving_fences_no_broker() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_with_session_timeout(dir.path(), "t", Duration::from_millis(300)).await;
    let quorum = node.quorum();
    // This broker begins its controlled shutdown (the deadline has passed: no request).
    assert!(!quorum.leave(Instant::now()).await);

    // Broker 2 registers, heartbeats once and falls silent.
    let silent = BrokerId(2);
    let reply = quorum
        .submit(ControllerRequest::RegisterBroker {
            broker_id: silent.0,
            address: "127.0.0.2:7070".to_owned(),
            rack: None,
            external_address: None,
        })
        .await
        .unwrap();
    let ReplyBody::Registered { incarnation } = reply.body else {
        panic!("not registered: {:?}", reply.body);
    };
    quorum
        .submit(ControllerRequest::Heartbeat {
            broker_id: silent.0,
            incarnation,
        })
        .await
        .unwrap();
    let fenced = |quorum: &Quorum| quorum.image().broker(silent).map(|broker| broker.fenced);
    assert_eq!(fenced(quorum), Some(false));

    // Its lease lapses; the lease checks of the leaving controller (the background ones
    // included) leave it alone.
    let deadline = Instant::now() + WAIT_MAX;
    while !quorum.active.lease_lapsed(silent) {
        assert!(Instant::now() < deadline, "the lease never lapsed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(quorum.check_leases().await.unwrap(), 0);
    assert_eq!(fenced(quorum), Some(false));

    // The lease did lapse: the same pass without the shutdown rule fences it.
    assert_eq!(quorum.active.fence_expired().await.unwrap(), 1);
    assert_eq!(fenced(quorum), Some(true));
    node.shutdown().unwrap();
}
