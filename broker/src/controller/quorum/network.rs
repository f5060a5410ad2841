//! [`Network`]: openraft's RPCs to the other voters, over the `Controller` gRPC service on
//! each broker's listener (`proto/strata/v1/controller.proto`).
//!
//! The messages are openraft's own request and response types as JSON. The receiving
//! broker answers `Result<response, RaftError>` as JSON; a transport failure (refused,
//! timed out, cut) is `Unreachable`, after which openraft backs off and retries.
//!
//! Outgoing connections are made from this broker's own IP address (`local_ip`, its
//! listener's), so that a test, or a firewall rule, that cuts the link between two
//! brokers' addresses cuts exactly the traffic between them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{AnyError, BasicNode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use strata_proto::api::v1::controller_client::ControllerClient;
use strata_proto::api::v1::{ControllerCall, ErrorCode, RaftMessage};
use tonic::transport::{Channel, Endpoint};

use super::request::{ControllerReply, ControllerRequest};
use super::types::{NodeId, StrataRaft};
use super::voters::Voters;
use crate::controller::error::ControllerError;

/// Makes a [`Peer`] per voter.
#[derive(Debug, Clone)]
pub struct Network {
    me: NodeId,
    local_ip: Option<IpAddr>,
    /// Voters the last call failed to reach, shared by every connection to them.
    unreachable: std::sync::Arc<Mutex<std::collections::HashSet<NodeId>>>,
}

impl Network {
    pub fn new(me: NodeId, local_ip: Option<IpAddr>) -> Network {
        Network {
            me,
            local_ip,
            unreachable: Default::default(),
        }
    }
}

/// A lazily connected channel to `address` (`host:port`) from `local_ip`.
pub fn channel(address: &str, local_ip: Option<IpAddr>) -> Result<Channel, String> {
    let endpoint = Endpoint::from_shared(format!("http://{address}"))
        .map_err(|error| format!("bad voter address {address:?}: {error}"))?
        .connect_timeout(Duration::from_secs(1))
        .tcp_nodelay(true)
        .local_address(local_ip);
    Ok(endpoint.connect_lazy())
}

impl RaftNetworkFactory<StrataRaft> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Peer {
        Peer {
            me: self.me,
            target,
            client: channel(&node.addr, self.local_ip).map(ControllerClient::new),
            unreachable: std::sync::Arc::clone(&self.unreachable),
        }
    }
}

/// The connection to one voter.
#[derive(Debug)]
pub struct Peer {
    me: NodeId,
    target: NodeId,
    client: Result<ControllerClient<Channel>, String>,
    /// Voters the last call failed to reach; a change is logged once (openraft itself logs
    /// every failed call, which the broker's default log filter leaves out).
    unreachable: std::sync::Arc<Mutex<std::collections::HashSet<NodeId>>>,
}

type RpcResult<T, E> = Result<T, RPCError<NodeId, BasicNode, E>>;

fn unreachable<E: std::error::Error>(reason: impl ToString) -> RPCError<NodeId, BasicNode, E> {
    RPCError::Unreachable(Unreachable::from(AnyError::error(reason)))
}

impl Peer {
    /// Records whether the target is unreachable; true if that changed.
    fn set_unreachable(&self, unreachable: bool) -> bool {
        let mut set = self
            .unreachable
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if unreachable {
            set.insert(self.target)
        } else {
            set.remove(&self.target)
        }
    }

    async fn call<Req, Resp, E>(
        &mut self,
        kind: Kind,
        request: &Req,
        option: &RPCOption,
    ) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let client = match &self.client {
            Ok(client) => client.clone(),
            Err(reason) => return Err(unreachable(reason)),
        };
        let json = serde_json::to_vec(request)
            .map_err(|error| RPCError::Network(NetworkError::new(&error)))?;
        let message = RaftMessage {
            from: i32::try_from(self.me).unwrap_or(-1),
            json: json.into(),
        };
        let mut request = tonic::Request::new(message);
        request.set_timeout(option.hard_ttl());
        let mut client = client;
        let sent = match kind {
            Kind::Append => client.raft_append(request).await,
            Kind::Vote => client.raft_vote(request).await,
            Kind::Snapshot => client.raft_snapshot(request).await,
        };
        let reply = match sent {
            Ok(reply) => {
                if self.set_unreachable(false) {
                    tracing::info!(voter = self.target, "controller voter reachable again");
                }
                reply.into_inner()
            }
            Err(status) => {
                if self.set_unreachable(true) {
                    tracing::warn!(voter = self.target, %status, "controller voter unreachable");
                }
                return Err(unreachable(format!("voter {}: {status}", self.target)));
            }
        };
        let answer: Result<Resp, E> = serde_json::from_slice(&reply.json)
            .map_err(|error| RPCError::Network(NetworkError::new(&error)))?;
        answer.map_err(|error| RPCError::RemoteError(RemoteError::new(self.target, error)))
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Append,
    Vote,
    Snapshot,
}

impl RaftNetwork<StrataRaft> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<StrataRaft>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>, RaftError<NodeId>> {
        self.call(Kind::Append, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<StrataRaft>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>> {
        self.call(Kind::Snapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>, RaftError<NodeId>> {
        self.call(Kind::Vote, &rpc, &option).await
    }
}

/// Sends [`ControllerRequest`]s to the controller leader (`Controller.Submit`), one lazily
/// connected client per voter.
#[derive(Debug)]
pub struct Forwarder {
    me: i32,
    voters: Voters,
    local_ip: Option<IpAddr>,
    peers: Mutex<HashMap<i32, ControllerClient<Channel>>>,
}

impl Forwarder {
    pub fn new(me: i32, voters: Voters, local_ip: Option<IpAddr>) -> Forwarder {
        Forwarder {
            me,
            voters,
            local_ip,
            peers: Mutex::new(HashMap::new()),
        }
    }

    fn peer(&self, id: i32) -> Result<ControllerClient<Channel>, ControllerError> {
        let mut peers = self
            .peers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(client) = peers.get(&id) {
            return Ok(client.clone());
        }
        let address = self
            .voters
            .address(id)
            .ok_or(ControllerError::NotController { leader: Some(id) })?;
        let channel =
            channel(address, self.local_ip).map_err(|reason| ControllerError::Quorum { reason })?;
        let client = ControllerClient::new(channel)
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20);
        peers.insert(id, client.clone());
        Ok(client)
    }

    /// Sends `request` to voter `leader`; a transport failure or a NOT_CONTROLLER answer
    /// is `NotController` (the caller waits for a leader and retries).
    pub async fn forward(
        &self,
        leader: NodeId,
        request: &ControllerRequest,
    ) -> Result<ControllerReply, ControllerError> {
        let leader = i32::try_from(leader).unwrap_or(-1);
        let not_controller = || ControllerError::NotController {
            leader: Some(leader),
        };
        let mut client = self.peer(leader)?;
        let json = serde_json::to_vec(request).map_err(|error| ControllerError::Quorum {
            reason: error.to_string(),
        })?;
        let mut call = tonic::Request::new(ControllerCall {
            from: self.me,
            json: json.into(),
        });
        call.set_timeout(Duration::from_secs(10));
        let reply = match client.submit(call).await {
            Ok(reply) => reply.into_inner(),
            Err(status) => {
                tracing::debug!(leader, %status, request = request.kind(), "forwarding to the controller failed");
                return Err(not_controller());
            }
        };
        if let Some(error) = reply
            .error
            .filter(|error| error.code != ErrorCode::None as i32)
        {
            return Err(match error.error_code() {
                ErrorCode::NotController => ControllerError::NotController {
                    leader: (reply.leader_hint >= 0).then_some(reply.leader_hint),
                },
                code => ControllerError::Remote {
                    code: code.as_str_name().to_owned(),
                    message: error.message,
                },
            });
        }
        serde_json::from_slice(&reply.json).map_err(|error| ControllerError::Quorum {
            reason: format!("undecodable controller reply: {error}"),
        })
    }
}
