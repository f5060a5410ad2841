//! # gRPC adapters (`broker::service`)
//!
//! Convert → one call into [`crate::node`] → convert. The only place that knows tonic
//! and the generated types besides `main.rs`.
//!
//! - [`client_api`]: the `strata.v1.ClientApi` service.
//! - [`controller_api`]: the `strata.v1.Controller` service (Raft RPCs and requests
//!   forwarded to the active controller, broker to broker).
//! - [`connections`]: caps per client address, handshake and idle timeouts.
//! - [`connection_metrics`]: connections open per listener, and those rejected.
//! - [`drain_report`]: while a shutdown drains, which calls it still waits for.
//! - [`decompression`]: the broker-wide bound on memory for checking compressed batches.
//! - [`fast_path`]: fetch and produce answered in front of tonic's router, so batches
//!   are not copied into or out of tonic's buffers.
//! - [`fetch_session`]: the fetch stream, answered ahead of the reader.
//! - [`group_api`]: the `strata.v1.GroupApi` service (consumer groups and committed
//!   offsets) in front of [`crate::node::GroupCoordinator`].
//! - [`health`]: `grpc.health.v1.Health`, by the readiness rule of `/readyz`.
//! - [`listener_scope`]: the external listener serves client calls only.
//!
//! gRPC server reflection (`grpc.reflection.v1` and `v1alpha`, tonic-reflection) describes
//! the Strata services and health from [`strata_proto::FILE_DESCRIPTOR_SET`], so grpcurl
//! and Postman work without the `.proto` files.
//! - [`produce`]: the produce stream (ordered writes, concurrent commits).
//! - [`metadata`]: metadata and describe answers from the metadata image.
//! - [`replication_api`]: the `strata.v1.Replication` service, the leader side of
//!   replica fetch sessions and `OffsetForLeaderEpoch` (broker to broker).
//! - [`request_metrics`]: request duration and count per RPC, bytes and records in and
//!   out per topic (the series `GET /metrics` shows).
//! - [`status`]: the one domain-error → wire-code mapping.
//! - [`transport_status`]: tonic's own refusals (decode limit, bad protobuf) answered
//!   with the codes of hostile inputs 9 and 12 (`docs/RELIABILITY.md`).
//! - [`traffic`]: record bytes moved, so the binary can tell a quiet broker.
//!
//! [`serve`] serves the internal listener and, when there is one, the external listener
//! (the client services only, see [`listener_scope`]; metadata answers there name the
//! brokers' external addresses, see [`metadata`]). It builds the
//! server with explicit limits, none of tonic's defaults: decode
//! limit = the largest batch plus framing, encode limit = the largest fetch plus framing,
//! bounded concurrent streams and header list size, HTTP/2 keepalive, and the per-address
//! caps and timeouts of [`connections`].

pub mod client_api;
pub mod cluster_api;
pub mod connection_metrics;
pub mod connections;
pub mod controller_api;
pub mod decompression;
mod drain_report;
pub mod fast_path;
pub mod fetch_session;
pub mod group_api;
pub mod health;
pub mod listener_scope;
pub mod metadata;
pub mod produce;
pub mod replication_api;
pub mod request_metrics;
pub mod status;
pub mod traffic;
pub mod transport_status;

use std::sync::Arc;
use std::time::Duration;

use strata_proto::api::v1::client_api_server::ClientApiServer;
use strata_proto::api::v1::controller_server::ControllerServer;
use strata_proto::api::v1::group_api_server::GroupApiServer;
use strata_proto::api::v1::replication_server::ReplicationServer;

use crate::admin::AdminState;
use crate::controller::Listener;
use crate::node::{GroupCoordinator, Node};

/// The bound gRPC listeners: the internal one (clients, other brokers, the controller
/// quorum) and the optional external one (clients outside the brokers' network).
#[derive(Debug)]
pub struct Listeners {
    pub internal: tokio::net::TcpListener,
    pub external: Option<tokio::net::TcpListener>,
}

/// HTTP/2 flow-control window per stream.
const HTTP2_STREAM_WINDOW_BYTES: u32 = 8 << 20;
/// HTTP/2 flow-control window per connection.
const HTTP2_CONNECTION_WINDOW_BYTES: u32 = 16 << 20;
/// Largest HTTP/2 frame a client may send (the default is 16 KiB): a produced batch of
/// MiBs then arrives in a few frames, and each socket read takes up to a frame.
const HTTP2_FRAME_BYTES_MAX: u32 = 1 << 20;

/// The largest Raft message between brokers (a batch of metadata entries, a snapshot
/// chunk, as JSON).
const CONTROLLER_MESSAGE_BYTES_MAX: usize = 64 << 20;

/// Room for the protobuf fields around a batch or a fetch's records.
const FRAMING_BYTES: usize = 64 * 1024;

/// What the gRPC services answer from.
#[derive(Debug, Clone)]
pub struct Serving {
    pub node: Arc<Node>,
    pub groups: Arc<GroupCoordinator>,
    /// The readiness facts gRPC health reports (the admin listener's).
    pub admin: Arc<AdminState>,
}

/// Why the gRPC server stopped, or could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Transport(#[from] tonic::transport::Error),
    #[error("the gRPC reflection descriptors do not load: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

/// The descriptors server reflection describes: Strata's services and gRPC health (the
/// reflection service adds its own).
fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(strata_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
}

/// Serves the gRPC services on `listeners` until `shutdown` resolves.
pub async fn serve(
    serving: Serving,
    listeners: Listeners,
    connections: connections::ConnectionSettings,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let Serving {
        node,
        groups,
        admin,
    } = serving;
    let (health, follow_readiness) =
        health::HealthService::new(Arc::clone(&admin), Arc::clone(&node));
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;
    let limits = node.config().limits.clone();
    let decode_limit = limits.message_max_bytes + FRAMING_BYTES;
    let fast_path = fast_path::FastPathLayer::new(Arc::clone(&node), decode_limit);
    let controller = ControllerServer::new(controller_api::ControllerService::new(Arc::clone(
        node.quorum(),
    )))
    .max_decoding_message_size(CONTROLLER_MESSAGE_BYTES_MAX)
    .max_encoding_message_size(CONTROLLER_MESSAGE_BYTES_MAX);
    let replication =
        ReplicationServer::new(replication_api::ReplicationService::new(Arc::clone(&node)))
            .max_decoding_message_size(decode_limit)
            .max_encoding_message_size(limits.fetch_max_bytes + FRAMING_BYTES);
    let service = ClientApiServer::new(client_api::ClientApiService::new(node))
        .max_decoding_message_size(decode_limit)
        .max_encoding_message_size(limits.fetch_max_bytes + FRAMING_BYTES);
    let groups = GroupApiServer::new(group_api::GroupApiService::new(groups));
    // One server for both listeners: their connections share the per-address caps and
    // the shutdown; each connection remembers its listener.
    let clients = connections::Clients::new(connections);
    let draining = Arc::clone(&clients);
    let shutdown = async move {
        shutdown.await;
        tokio::spawn(drain_report::report_open_calls(draining));
    };
    admin.connections_started(Arc::clone(clients.gauges()));
    let mut incoming = tokio_stream::StreamMap::new();
    let internal =
        connections::Incoming::new(listeners.internal, Listener::Internal, Arc::clone(&clients));
    incoming.insert(Listener::Internal, internal);
    if let Some(external) = listeners.external {
        let external = connections::Incoming::new(external, Listener::External, clients);
        incoming.insert(Listener::External, external);
    }
    let incoming = tokio_stream::StreamExt::map(incoming, |(_, connection)| connection);
    let server = tonic::transport::Server::builder()
        // Outermost: the time of a unary call includes every layer's work.
        .layer(request_metrics::RequestMetricsLayer)
        .layer(connections::StreamLimitLayer)
        .layer(listener_scope::ListenerScopeLayer)
        .layer(tower::util::MapResponseLayer::new(
            transport_status::rewrite_response,
        ))
        .layer(fast_path)
        .max_concurrent_streams(Some(1024))
        // HTTP/2's default 64 KiB windows cap a produce stream at one window per round
        // trip; batches are up to `message_max_bytes`.
        .initial_stream_window_size(Some(HTTP2_STREAM_WINDOW_BYTES))
        .initial_connection_window_size(Some(HTTP2_CONNECTION_WINDOW_BYTES))
        .max_frame_size(Some(HTTP2_FRAME_BYTES_MAX))
        .http2_max_header_list_size(Some(16 * 1024))
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .tcp_nodelay(true)
        .add_service(service)
        .add_service(controller)
        .add_service(replication)
        .add_service(groups)
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .serve_with_incoming_shutdown(incoming, shutdown);
    tokio::pin!(server);
    let served = tokio::select! {
        served = &mut server => served,
        // It returns only once the server (its health service) is gone.
        () = follow_readiness => server.await,
    };
    Ok(served?)
}
