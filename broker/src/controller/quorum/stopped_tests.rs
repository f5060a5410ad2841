//! A stopped voter answers at once instead of waiting for a leader or an image that
//! cannot come.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use super::*;
use crate::node::test_node::node_with_topic;

/// Far longer than any answer takes: only a call that waits out its own timeout
/// reaches it.
const WAIT_MAX: Duration = Duration::from_secs(60);

/// A rolling restart once held a stopping broker's drain for its whole grace: calls
/// that reach the controller through this broker (`InitProducerId`, admin requests)
/// waited up to 15 s for a leader, and then for the local image, from a voter that had
/// already stopped and would learn neither.
#[tokio::test]
async fn a_stopped_voter_does_not_wait_for_a_leader_or_an_image() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_with_topic(dir.path(), "t").await;
    let quorum = node.quorum();
    let next_version = quorum.image().version + 1;
    quorum.shutdown().await;

    let waited = tokio::time::timeout(
        WAIT_MAX,
        quorum.wait_for_version(next_version, Duration::from_secs(3600)),
    )
    .await
    .expect("waiting for a version on a stopped voter waited out its timeout");
    assert!(
        matches!(waited, Err(ControllerError::Quorum { .. })),
        "{waited:?}"
    );

    let submitted = tokio::time::timeout(
        WAIT_MAX,
        quorum.submit_within(ControllerRequest::QuorumStatus, Duration::from_secs(3600)),
    )
    .await
    .expect("a request through a stopped voter waited out its timeout");
    assert!(
        matches!(
            submitted,
            Err(ControllerError::NotController { leader: None })
        ),
        "{submitted:?}"
    );
}
