//! The `strata.v1.Controller` gRPC service: broker to broker. Raft RPCs go to this
//! broker's voter ([`Quorum::raft`](crate::controller::quorum::Quorum::raft)); forwarded
//! requests to its active controller, answered only if it leads (never forwarded again).
//! Only configured voters are listened to.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use strata_proto::api::v1::controller_server::Controller;
use strata_proto::api::v1::{ControllerCall, ControllerReply, ErrorCode, RaftMessage};
use tonic::{Request, Response, Status};

use super::status;
use crate::controller::quorum::{ControllerRequest, Quorum};
use crate::controller::ControllerError;
use crate::node::NodeError;

/// The controller service of one broker.
#[derive(Debug, Clone)]
pub struct ControllerService {
    quorum: Arc<Quorum>,
}

impl ControllerService {
    pub fn new(quorum: Arc<Quorum>) -> ControllerService {
        ControllerService { quorum }
    }

    /// The openraft request carried by a Raft RPC from a configured voter.
    fn voter_rpc<T: DeserializeOwned>(&self, request: Request<RaftMessage>) -> Result<T, Status> {
        let message = request.into_inner();
        self.check_voter(message.from)?;
        decode(&message.json)
    }

    fn check_voter(&self, from: i32) -> Result<(), Status> {
        if self.quorum.is_voter(from) {
            Ok(())
        } else {
            Err(Status::permission_denied(format!(
                "broker {from} is not a controller voter of this cluster ({})",
                self.quorum.voters()
            )))
        }
    }
}

fn decode<T: DeserializeOwned>(json: &[u8]) -> Result<T, Status> {
    serde_json::from_slice(json)
        .map_err(|error| Status::invalid_argument(format!("undecodable message: {error}")))
}

fn encode<T: Serialize>(value: &T) -> Result<Response<RaftMessage>, Status> {
    let json = serde_json::to_vec(value)
        .map_err(|error| Status::internal(format!("cannot encode the answer: {error}")))?;
    Ok(Response::new(RaftMessage {
        from: -1,
        json: json.into(),
    }))
}

#[tonic::async_trait]
impl Controller for ControllerService {
    async fn raft_append(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let rpc = self.voter_rpc(request)?;
        encode(&self.quorum.raft().append_entries(rpc).await)
    }

    async fn raft_vote(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let rpc = self.voter_rpc(request)?;
        encode(&self.quorum.raft().vote(rpc).await)
    }

    async fn raft_snapshot(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let rpc = self.voter_rpc(request)?;
        encode(&self.quorum.raft().install_snapshot(rpc).await)
    }

    async fn submit(
        &self,
        request: Request<ControllerCall>,
    ) -> Result<Response<ControllerReply>, Status> {
        let call = request.into_inner();
        self.check_voter(call.from)?;
        let controller_request: ControllerRequest = decode(&call.json)?;
        let reply = match self.quorum.handle_forwarded(controller_request).await {
            Ok(reply) => {
                let json = serde_json::to_vec(&reply).map_err(|error| {
                    Status::internal(format!("cannot encode the answer: {error}"))
                })?;
                ControllerReply {
                    error: Some(status::none()),
                    leader_hint: -1,
                    json: json.into(),
                }
            }
            Err(error) => {
                let leader_hint = match &error {
                    ControllerError::NotController { leader: Some(id) } => *id,
                    _ => -1,
                };
                let wire = status::to_wire(&NodeError::Controller(error));
                debug_assert!(wire.code != ErrorCode::None as i32);
                ControllerReply {
                    error: Some(wire),
                    leader_hint,
                    json: Default::default(),
                }
            }
        };
        Ok(Response::new(reply))
    }
}
