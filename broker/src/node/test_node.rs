//! A one-node broker with one topic in a temporary directory, for the tests of `node`
//! and `service`: what `strata-broker` opens, without the process around it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use strata_proto::types::BrokerId;

use super::descriptors::DescriptorBudget;
use super::{Limits, Node, NodeConfig};
use crate::controller::quorum::{ControllerRequest, Voters};
use crate::controller::topic_commands::NewTopic;
use crate::controller::BrokerDefaults;
use crate::log::{FlushPolicy, LogConfig};

/// A one-node broker in `dir` whose logs fsync every commit (`flush = always`), with
/// `topic` (one partition) created.
pub(crate) async fn node_with_topic(dir: &std::path::Path, topic: &str) -> Arc<Node> {
    node_with_session_timeout(dir, topic, Duration::from_secs(30)).await
}

/// [`node_with_topic`] whose controller fences a broker `session_timeout` after its last
/// heartbeat.
pub(crate) async fn node_with_session_timeout(
    dir: &std::path::Path,
    topic: &str,
    session_timeout: Duration,
) -> Arc<Node> {
    let log_defaults = LogConfig {
        flush: FlushPolicy::Always,
        ..LogConfig::default()
    };
    let node = Node::start(NodeConfig {
        node_id: BrokerId(1),
        advertised_address: "127.0.0.1:1".to_owned(),
        external_advertised_address: None,
        data_dir: dir.to_path_buf(),
        topic_defaults: BrokerDefaults::from_log_config(&log_defaults, 1 << 20),
        log_defaults,
        limits: Limits::default(),
        retention_check_interval: Duration::from_secs(60),
        descriptor_budget: DescriptorBudget::measure(false).unwrap(),
        voters: Voters::single(1, "127.0.0.1:1"),
        rack: None,
        local_ip: None,
        heartbeat_interval: Duration::from_millis(500),
        session_timeout,
        replica_lag_max: crate::replication::leader::REPLICA_LAG_MAX_DEFAULT,
    })
    .await
    .unwrap();
    let spec = NewTopic {
        name: topic.to_owned(),
        partitions: Some(1),
        replication_factor: Some(1),
        configs: BTreeMap::new(),
    };
    node.submit(ControllerRequest::CreateTopic {
        spec,
        internal: false,
        validate_only: false,
    })
    .await
    .unwrap();
    node
}
