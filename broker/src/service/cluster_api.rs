//! Cluster calls of the client API: describe the cluster, elect preferred leaders, reassign
//! partitions. Each converts the request, makes one call into [`Node`] and converts the
//! answer.

use strata_proto::api::v1::{
    DescribeClusterRequest, DescribeClusterResponse, ElectLeadersRequest, ElectLeadersResponse,
    ErrorCode, ReassignPartitionsRequest, ReassignPartitionsResponse,
};

use crate::node::Node;

fn not_yet() -> Option<strata_proto::api::v1::Error> {
    Some(strata_proto::api::v1::Error::new(
        ErrorCode::InvalidRequest,
        "not available yet",
    ))
}

pub async fn describe_cluster(
    _node: &Node,
    _request: DescribeClusterRequest,
) -> DescribeClusterResponse {
    DescribeClusterResponse {
        error: not_yet(),
        ..DescribeClusterResponse::default()
    }
}

pub async fn elect_leaders(_node: &Node, _request: ElectLeadersRequest) -> ElectLeadersResponse {
    ElectLeadersResponse {
        error: not_yet(),
        ..ElectLeadersResponse::default()
    }
}

pub async fn reassign_partitions(
    _node: &Node,
    _request: ReassignPartitionsRequest,
) -> ReassignPartitionsResponse {
    ReassignPartitionsResponse {
        error: not_yet(),
        ..ReassignPartitionsResponse::default()
    }
}
