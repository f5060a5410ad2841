//! The cluster as `strata cluster info --format json` and `GET /v1/cluster` show it, its
//! brokers (`GET /v1/brokers`) and the cluster-health verdict (`GET /v1/cluster/health`).

use serde::{Deserialize, Serialize};

/// Everything `cluster info` prints. `controller_id`, `topic_count` and the brokers'
/// `node_id`, `address`, `rack` predate issue 19 and stay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterView {
    pub cluster_id: String,
    /// The controller leader; `None` while the quorum elects one.
    pub controller_id: Option<i32>,
    pub controller_term: u64,
    pub topic_count: usize,
    /// The broker whose applied metadata this is.
    pub answered_by: i32,
    pub metadata_version: i64,
    pub applied_index: i64,
    pub last_log_index: i64,
    pub brokers: Vec<BrokerView>,
    pub voters: Vec<VoterView>,
    /// The version of the broker that answered (`GET /v1/cluster` only; the CLI leaves it
    /// out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// One registered broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerView {
    pub node_id: i32,
    pub address: String,
    pub rack: Option<String>,
    /// [`BROKER_LIVE`] or [`BROKER_FENCED`].
    pub state: String,
    pub fenced: bool,
    pub incarnation: u64,
}

/// The `state` of a broker the controller hears from.
pub const BROKER_LIVE: &str = "live";
/// The `state` of a broker whose session expired or that is shutting down.
pub const BROKER_FENCED: &str = "fenced";

impl BrokerView {
    /// `state` as the `fenced` flag says.
    pub fn state_name(fenced: bool) -> &'static str {
        if fenced {
            BROKER_FENCED
        } else {
            BROKER_LIVE
        }
    }
}

/// One controller voter, with its replication progress as the controller leader reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoterView {
    pub node_id: i32,
    pub address: String,
    pub leader: bool,
    pub matched_index: Option<i64>,
    pub lag: Option<i64>,
}

/// The cluster-health rule (rpk's `cluster health`): healthy when every voter is a
/// registered, unfenced broker, every partition has a leader and one controller leads.
/// Each broken condition adds one sentence to `reasons`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterHealthView {
    pub healthy: bool,
    pub controller_id: Option<i32>,
    /// Every broker the cluster expects: the controller voters and the registered brokers.
    pub all_nodes: Vec<i32>,
    /// Brokers that are fenced or not registered.
    pub nodes_down: Vec<i32>,
    /// `topic/partition` of each partition without a leader.
    pub leaderless_partitions: Vec<String>,
    /// `topic/partition` of each partition whose ISR is smaller than its replica set.
    pub under_replicated_partitions: Vec<String>,
    pub reasons: Vec<String>,
}
