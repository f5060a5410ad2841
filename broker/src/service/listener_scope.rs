//! What each gRPC listener serves.
//!
//! The internal listener (`--listen`) serves every service: clients, and the other
//! brokers' replica fetches and controller quorum traffic. The external listener
//! (`--external-listen`) is for clients outside the brokers' network and serves only what
//! clients use: the client API, the group API, gRPC health and reflection. A call there to
//! a broker-to-broker service ([`BROKER_TO_BROKER_SERVICES`]: replication and the
//! controller's Raft and forwarded requests) is answered `UNIMPLEMENTED` before it reaches
//! the service, as for a service the server does not have: nobody outside the brokers'
//! network can vote in the controller quorum, forward a registration, or fetch as a
//! replica.
//!
//! [`ListenerScopeLayer`] applies the rule to every call by the listener its connection
//! came through (`super::connections::listener_of`); gRPC health answers `NOT_FOUND` on
//! the external listener for the services it does not serve ([`serves_service`]).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use strata_proto::api::v1::controller_server::ControllerServer;
use strata_proto::api::v1::replication_server::ReplicationServer;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::Status;

use super::connections::ClientConnection;
use crate::controller::Listener;

/// The services only brokers call, served on the internal listener alone.
pub const BROKER_TO_BROKER_SERVICES: [&str; 2] = [
    <ReplicationServer<super::replication_api::ReplicationService> as NamedService>::NAME,
    <ControllerServer<super::controller_api::ControllerService> as NamedService>::NAME,
];

/// Whether `listener` serves the gRPC service named `service` (`strata.v1.ClientApi`).
pub fn serves_service(listener: Listener, service: &str) -> bool {
    match listener {
        Listener::Internal => true,
        Listener::External => !BROKER_TO_BROKER_SERVICES.contains(&service),
    }
}

/// Whether `listener` serves the call to `path` (`/strata.v1.ClientApi/Metadata`).
pub fn serves_path(listener: Listener, path: &str) -> bool {
    let service = path
        .strip_prefix('/')
        .and_then(|rest| rest.split_once('/'))
        .map_or(path, |(service, _method)| service);
    serves_service(listener, service)
}

/// Puts [`ListenerScope`] in front of a service.
#[derive(Debug, Clone, Copy, Default)]
pub struct ListenerScopeLayer;

impl<S> tower::Layer<S> for ListenerScopeLayer {
    type Service = ListenerScope<S>;

    fn layer(&self, inner: S) -> ListenerScope<S> {
        ListenerScope { inner }
    }
}

/// Answers `UNIMPLEMENTED` to a call its listener does not serve.
#[derive(Debug, Clone)]
pub struct ListenerScope<S> {
    inner: S,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S> tower::Service<http::Request<Body>> for ListenerScope<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<http::Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let listener = request
            .extensions()
            .get::<ClientConnection>()
            .map_or(Listener::Internal, ClientConnection::listener);
        let path = request.uri().path();
        if serves_path(listener, path) {
            return Box::pin(self.inner.call(request));
        }
        let status = Status::unimplemented(format!(
            "{path} is not served on the external listener: only brokers call it, on the \
             internal listener"
        ));
        Box::pin(async move { Ok(status.into_http()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_external_listener_serves_client_calls_only() {
        for path in [
            "/strata.v1.ClientApi/Metadata",
            "/strata.v1.ClientApi/Produce",
            "/strata.v1.GroupApi/OffsetCommit",
            "/grpc.health.v1.Health/Check",
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        ] {
            assert!(serves_path(Listener::External, path), "{path}");
            assert!(serves_path(Listener::Internal, path), "{path}");
        }
        for path in [
            "/strata.v1.Replication/ReplicaFetch",
            "/strata.v1.Replication/OffsetForLeaderEpoch",
            "/strata.v1.Controller/RaftVote",
            "/strata.v1.Controller/Submit",
        ] {
            assert!(!serves_path(Listener::External, path), "{path}");
            assert!(serves_path(Listener::Internal, path), "{path}");
        }
    }
}
