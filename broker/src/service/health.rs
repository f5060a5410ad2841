//! gRPC health checking (`grpc.health.v1.Health`, what `grpc_health_probe` and
//! Kubernetes' gRPC probes ask) on the gRPC listeners, by the readiness rule of
//! `GET /readyz` ([`crate::admin::readiness`]): `SERVING` when the broker is ready,
//! `NOT_SERVING` while it boots (not registered, no controller leader known) and from
//! the first step of a shutdown on.
//!
//! The whole server (`""`) and each Strata service report the same status: they stand
//! or fall with the node. Any other name is `NOT_FOUND`, as the protocol asks, and so is
//! a broker-to-broker service asked for on the external listener, which does not serve it
//! (`super::listener_scope`).
//!
//! - `Check` judges the readiness facts at the moment it is asked.
//! - `Watch` sends the status at once and then each change, from a channel that
//!   [`follow_readiness`] keeps up to date: it looks again at once when the binary sets a
//!   lifecycle fact (listeners bound, shutdown begun) and every [`FOLLOW_INTERVAL`] for
//!   the facts that come from the controller. The stream ends once the node stops
//!   serving, with `NOT_SERVING` as its last message, so a watcher never holds the
//!   shutdown's drain open.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_stream::Stream;
use tonic::server::NamedService;
use tonic::{Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use super::connections::listener_of;
use super::listener_scope::serves_service;
use crate::admin::readiness::{judge, Verdict};
use crate::admin::AdminState;
use crate::controller::Listener;
use crate::node::Node;
use strata_proto::api::v1::client_api_server::ClientApiServer;
use strata_proto::api::v1::controller_server::ControllerServer;
use strata_proto::api::v1::group_api_server::GroupApiServer;
use strata_proto::api::v1::replication_server::ReplicationServer;

/// How often [`follow_readiness`] judges readiness when no lifecycle fact changed
/// (registration and the controller leader are read, not announced).
pub const FOLLOW_INTERVAL: Duration = Duration::from_millis(250);

/// The Strata services whose health can be asked for by name.
pub const SERVICE_NAMES: [&str; 4] = [
    <ClientApiServer<super::client_api::ClientApiService> as NamedService>::NAME,
    <GroupApiServer<super::group_api::GroupApiService> as NamedService>::NAME,
    <ReplicationServer<super::replication_api::ReplicationService> as NamedService>::NAME,
    <ControllerServer<super::controller_api::ControllerService> as NamedService>::NAME,
];

/// The health status of a readiness verdict.
pub fn status_of(verdict: &Verdict) -> ServingStatus {
    match verdict {
        Verdict::Ready => ServingStatus::Serving,
        Verdict::Booting(_) | Verdict::ShuttingDown => ServingStatus::NotServing,
    }
}

/// The `grpc.health.v1.Health` service of one broker.
#[derive(Debug, Clone)]
pub struct HealthService {
    admin: Arc<AdminState>,
    node: Arc<Node>,
    statuses: watch::Receiver<ServingStatus>,
}

impl HealthService {
    /// The service, and the task that keeps its `Watch` answers up to date (run it
    /// alongside the server; it ends when the service is dropped).
    pub fn new(
        admin: Arc<AdminState>,
        node: Arc<Node>,
    ) -> (
        HealthServer<HealthService>,
        impl std::future::Future<Output = ()>,
    ) {
        let (sender, statuses) = watch::channel(status_of(&judge(&admin.facts())));
        let follower = follow_readiness(Arc::clone(&admin), sender);
        let service = HealthService {
            admin,
            node,
            statuses,
        };
        (HealthServer::new(service), follower)
    }

    /// `Ok` when `service` is the whole server or a Strata service `listener` serves.
    fn known(service: &str, listener: Listener) -> Result<(), Status> {
        let served = || {
            SERVICE_NAMES
                .iter()
                .filter(|name| serves_service(listener, name))
        };
        if service.is_empty() || served().any(|name| *name == service) {
            Ok(())
        } else {
            let names: Vec<&str> = served().copied().collect();
            Err(Status::not_found(format!(
                "no service {service:?} on this listener; ask for \"\" (the whole server) or one of {names:?}"
            )))
        }
    }
}

fn response(status: ServingStatus) -> HealthCheckResponse {
    HealthCheckResponse {
        status: status.into(),
    }
}

/// Keeps `sender` at the status readiness gives now, until no receiver is left.
pub async fn follow_readiness(admin: Arc<AdminState>, sender: watch::Sender<ServingStatus>) {
    let mut changes = admin.lifecycle().changes();
    loop {
        let status = status_of(&judge(&admin.facts()));
        sender.send_if_modified(|current| std::mem::replace(current, status) != status);
        tokio::select! {
            () = sender.closed() => return,
            // An error: the admin state is gone, and with it the process's lifecycle.
            changed = changes.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(FOLLOW_INTERVAL) => {}
        }
    }
}

/// What a `Watch` call has sent and still follows.
struct Watching {
    statuses: watch::Receiver<ServingStatus>,
    node: Arc<Node>,
    sent: Option<ServingStatus>,
    ended: bool,
}

impl Watching {
    /// The next message: the status when it differs from the last one sent; once the
    /// node stops, `NOT_SERVING` (unless just sent) and then the end.
    async fn next(mut self) -> Option<(Result<HealthCheckResponse, Status>, Watching)> {
        if self.ended {
            return None;
        }
        loop {
            let status = *self.statuses.borrow_and_update();
            if self.sent != Some(status) {
                self.sent = Some(status);
                return Some((Ok(response(status)), self));
            }
            let stopping = tokio::select! {
                changed = self.statuses.changed() => changed.is_err(),
                () = self.node.stopping() => true,
            };
            if stopping {
                self.ended = true;
                if self.sent == Some(ServingStatus::NotServing) {
                    return None;
                }
                return Some((Ok(response(ServingStatus::NotServing)), self));
            }
        }
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Health for HealthService {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        Self::known(&request.get_ref().service, listener_of(&request))?;
        let status = status_of(&judge(&self.admin.facts()));
        Ok(Response::new(response(status)))
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        Self::known(&request.get_ref().service, listener_of(&request))?;
        let mut statuses = self.statuses.clone();
        statuses.mark_changed();
        let watching = Watching {
            statuses,
            node: Arc::clone(&self.node),
            sent: None,
            ended: false,
        };
        let stream = futures_util::stream::unfold(watching, Watching::next);
        Ok(Response::new(Box::pin(stream)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn only_a_ready_broker_is_serving() {
        assert_eq!(status_of(&Verdict::Ready), ServingStatus::Serving);
        assert_eq!(
            status_of(&Verdict::Booting(vec![
                crate::admin::readiness::REASON_NO_CONTROLLER
            ])),
            ServingStatus::NotServing
        );
        assert_eq!(status_of(&Verdict::ShuttingDown), ServingStatus::NotServing);
    }

    #[test]
    fn the_whole_server_and_each_strata_service_are_known_and_nothing_else() {
        assert_eq!(
            SERVICE_NAMES,
            [
                "strata.v1.ClientApi",
                "strata.v1.GroupApi",
                "strata.v1.Replication",
                "strata.v1.Controller"
            ]
        );
        for name in std::iter::once("").chain(SERVICE_NAMES) {
            assert!(
                HealthService::known(name, Listener::Internal).is_ok(),
                "{name}"
            );
        }
        let unknown = HealthService::known("grpc.health.v1.Health", Listener::Internal);
        assert_eq!(unknown.unwrap_err().code(), tonic::Code::NotFound);
    }

    #[test]
    fn the_external_listener_knows_only_the_services_it_serves() {
        for name in ["", "strata.v1.ClientApi", "strata.v1.GroupApi"] {
            assert!(
                HealthService::known(name, Listener::External).is_ok(),
                "{name}"
            );
        }
        for name in ["strata.v1.Replication", "strata.v1.Controller"] {
            let unknown = HealthService::known(name, Listener::External);
            assert_eq!(unknown.unwrap_err().code(), tonic::Code::NotFound, "{name}");
        }
    }
}
