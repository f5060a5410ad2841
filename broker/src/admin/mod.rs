//! # Admin HTTP (`broker::admin`)
//!
//! The broker's second listener, `--admin-listen` (default `127.0.0.1:7080`), for
//! operators and orchestrators (`docs/OPERATIONS.md`, "Metrics and health"):
//!
//! - [`http`]: the axum routes `/healthz` (alive), `/readyz` (ready to serve, by the rule
//!   of [`readiness`]) and `/metrics` (Prometheus text).
//! - [`metrics`]: the series' names, the Prometheus recorder, and the state gauges
//!   computed from the node at each scrape. Request and traffic counters are updated in
//!   `service/request_metrics.rs`.
//! - [`readiness`]: the readiness rule, pure, and the start/stop facts the binary sets.
//! - [`probe`]: the blocking HTTP GET behind `strata-broker probe --ready`.
//! - [`api`]: the read-only JSON admin API, `GET /v1/…` (one file per resource), whose
//!   bodies are the `strata_proto::views` structs the CLI prints with `--format json`.
//! - [`ui`]: the built-in page `/ui`, one HTML file that reads the `/v1` API.
//!
//! [`AdminState`] is what the routes read: the binary creates it before the data
//! directory is opened (so `/readyz` can say `booting` during recovery) and fills it in as
//! the broker starts and stops.

pub mod api;
pub mod http;
pub mod metrics;
pub mod probe;
pub mod readiness;
pub mod ui;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use metrics_exporter_prometheus::PrometheusHandle;

use crate::node::{GroupCoordinator, Node};
use crate::service::connection_metrics::ConnectionGauges;
use readiness::{Facts, Lifecycle};

/// What the admin routes read, shared with the binary that starts and stops the broker.
#[derive(Debug)]
pub struct AdminState {
    lifecycle: Lifecycle,
    serving: OnceLock<(Arc<Node>, Arc<GroupCoordinator>)>,
    /// The gRPC server's open connections, once it serves.
    connections: OnceLock<Arc<ConnectionGauges>>,
    metrics: Option<PrometheusHandle>,
    /// Whether `GET /v1/topics/{topic}/records` may show records (`admin_peek`).
    peek_enabled: AtomicBool,
    /// Whether `/metrics` has per-partition series (`metrics_per_partition`).
    per_partition_metrics: AtomicBool,
}

impl AdminState {
    /// A broker that has not opened its data directory yet. `metrics`: the installed
    /// recorder's handle (`None`: `/metrics` answers 404).
    pub fn new(metrics: Option<PrometheusHandle>) -> Arc<AdminState> {
        Arc::new(AdminState {
            lifecycle: Lifecycle::default(),
            serving: OnceLock::new(),
            connections: OnceLock::new(),
            metrics,
            peek_enabled: AtomicBool::new(true),
            per_partition_metrics: AtomicBool::new(false),
        })
    }

    /// Allows or forbids the records peek of the admin API (`admin_peek`; allowed by
    /// default).
    pub fn set_peek_enabled(&self, enabled: bool) {
        self.peek_enabled.store(enabled, Ordering::Relaxed);
    }

    pub fn peek_enabled(&self) -> bool {
        self.peek_enabled.load(Ordering::Relaxed)
    }

    /// Adds the per-partition series to `/metrics` (`metrics_per_partition`; off by
    /// default, so that labels stay at most per topic).
    pub fn set_per_partition_metrics(&self, enabled: bool) {
        self.per_partition_metrics.store(enabled, Ordering::Relaxed);
    }

    pub fn per_partition_metrics(&self) -> bool {
        self.per_partition_metrics.load(Ordering::Relaxed)
    }

    /// The node has started (its logs recovered) and its group coordinator runs.
    pub fn started(&self, node: Arc<Node>, groups: Arc<GroupCoordinator>) {
        // A second call changes nothing: the binary starts one node.
        let _ = self.serving.set((node, groups));
    }

    /// The gRPC server serves, counting its connections in `gauges`.
    pub fn connections_started(&self, gauges: Arc<ConnectionGauges>) {
        // A second call changes nothing: the binary starts one server.
        let _ = self.connections.set(gauges);
    }

    /// The gRPC server's open connections, once it serves.
    pub fn connections(&self) -> Option<&Arc<ConnectionGauges>> {
        self.connections.get()
    }

    pub fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    /// The node and its group coordinator, once started.
    pub fn serving(&self) -> Option<(&Arc<Node>, &Arc<GroupCoordinator>)> {
        self.serving.get().map(|(node, groups)| (node, groups))
    }

    pub fn metrics(&self) -> Option<&PrometheusHandle> {
        self.metrics.as_ref()
    }

    /// The readiness facts now.
    pub fn facts(&self) -> Facts {
        let (registered, controller_leader) = match self.serving.get() {
            Some((node, _)) => (
                *node.quorum().registrations().borrow(),
                node.quorum().leader(),
            ),
            None => (false, None),
        };
        Facts {
            recovered: self.serving.get().is_some(),
            registered,
            controller_leader,
            listeners_bound: self.lifecycle.is_listening(),
            shutting_down: self.lifecycle.is_shutting_down(),
        }
    }
}
