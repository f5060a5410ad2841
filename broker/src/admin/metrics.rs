//! The Prometheus series of `GET /metrics`: their names, the recorder that holds them,
//! and the gauges computed from the node's state at each scrape.
//!
//! Counters and histograms are updated where the work happens, through the `metrics`
//! facade (`service/request_metrics.rs`: requests, bytes and records in and out;
//! `log/metrics.rs`: fsyncs, recovery and damage; `node/partition.rs`: leader
//! elections). Without
//! an installed recorder (unit tests, `dump-log`) those updates cost a check and do
//! nothing. Gauges that describe state (partitions, ISR health, the controller, log sizes,
//! consumer lag) are not kept up to date in hot paths: [`refresh_gauges`] computes them
//! from the node just before each render.
//!
//! Names follow Prometheus conventions: `strata_` prefix, base units in the name
//! (`_seconds`, `_bytes`), `_total` on counters. Every `_seconds` series is a histogram
//! with the buckets of [`DURATION_BUCKETS_SECONDS`] (without buckets the exporter would
//! render summaries). Labels stay low-cardinality: per topic, per RPC, per group.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::mem::MaybeUninit;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use metrics::{describe_counter, describe_gauge, describe_histogram, gauge, Unit};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;

use crate::node::{GroupCoordinator, Node, NodeError};

/// `strata_build_info{version,git_sha}` = 1: what is running.
pub const BUILD_INFO: &str = "strata_build_info";
/// The commit the binary was built from (`build.rs`), or "unknown".
pub const GIT_SHA: &str = env!("STRATA_GIT_SHA");
/// Bytes free for the broker on the file system of its data directory.
pub const DISK_FREE_BYTES: &str = "strata_disk_free_bytes";
pub use crate::log::metrics::{
    FSYNC_DURATION_SECONDS, LOG_CORRUPTION_DETECTED_TOTAL, LOG_RECOVERY_TRUNCATED_BYTES_TOTAL,
};
pub use crate::node::partition::LEADER_ELECTIONS_TOTAL;
pub use crate::service::connection_metrics::{CONNECTIONS, CONNECTIONS_REJECTED_TOTAL};
/// Record bytes appended by producers, per topic.
pub const BYTES_IN_TOTAL: &str = "strata_bytes_in_total";
/// Records appended by producers, per topic.
pub const RECORDS_IN_TOTAL: &str = "strata_records_in_total";
/// Record bytes sent to consumers (followers excluded), per topic.
pub const BYTES_OUT_TOTAL: &str = "strata_bytes_out_total";
/// Records sent to consumers (followers excluded), per topic.
pub const RECORDS_OUT_TOTAL: &str = "strata_records_out_total";
/// Server-side time per request, per RPC.
pub const REQUEST_DURATION_SECONDS: &str = "strata_request_duration_seconds";
/// Requests per RPC and result code.
pub const REQUESTS_TOTAL: &str = "strata_requests_total";
/// Partition replicas hosted here.
pub const PARTITIONS: &str = "strata_partitions";
/// Partitions led here.
pub const LEADER_PARTITIONS: &str = "strata_leader_partitions";
/// Partitions led here whose ISR is smaller than their replica set.
pub const UNDER_REPLICATED_PARTITIONS: &str = "strata_under_replicated_partitions";
/// Partitions led here that refuse `acks=all` writes (ISR below `min_insync_replicas`).
pub const UNDER_MIN_ISR_PARTITIONS: &str = "strata_under_min_isr_partitions";
/// Partitions of the cluster without a leader, as this broker's metadata shows them.
pub const LEADERLESS_PARTITIONS: &str = "strata_leaderless_partitions";
/// 1 when this broker is the active controller (the Raft leader), else 0.
pub const CONTROLLER_ACTIVE: &str = "strata_controller_active";
/// Registered, unfenced brokers of the cluster.
pub const CLUSTER_BROKERS: &str = "strata_cluster_brokers";
/// Bytes of the partition logs on this broker's disk, per topic.
pub const LOG_SIZE_BYTES: &str = "strata_log_size_bytes";
/// Largest lag of any partition of a group coordinated here.
pub const CONSUMER_GROUP_LAG_MAX: &str = "strata_consumer_group_lag_max";
/// Sum of the lag of every partition of a group coordinated here.
pub const CONSUMER_GROUP_LAG_SUM: &str = "strata_consumer_group_lag_sum";
/// The lag of one partition of a group coordinated here; only with
/// `metrics_per_partition` (one series per group and partition).
pub const CONSUMER_GROUP_LAG: &str = "strata_consumer_group_lag";

/// Histogram buckets of every `_seconds` series, in seconds: 0.5 ms to 10 s.
pub const DURATION_BUCKETS_SECONDS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A gauge not set for this long disappears from the output: a deleted topic's log size
/// or a removed group's lag is not reported forever. Gauges are set at every scrape, so
/// a scraped broker keeps all of its live ones.
const GAUGE_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// The longest a scrape waits for group lag (it asks partition leaders for their high
/// watermarks); past it the lag series keep their previous values.
const LAG_TIMEOUT: Duration = Duration::from_secs(2);

/// How often histogram samples are folded into their buckets between scrapes, so an
/// unscraped broker does not keep every sample.
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The exporter's builder with Strata's buckets and gauge expiry.
fn builder() -> Result<PrometheusBuilder, BuildError> {
    Ok(PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Suffix("_seconds".to_owned()),
            &DURATION_BUCKETS_SECONDS,
        )?
        .idle_timeout(MetricKindMask::GAUGE, Some(GAUGE_IDLE_TIMEOUT)))
}

/// Installs the process-wide recorder (once, in the binary) and describes every series.
pub fn install() -> Result<PrometheusHandle, BuildError> {
    let handle = builder()?.install_recorder()?;
    describe();
    Ok(handle)
}

/// A recorder that is not installed, for tests: use it with `metrics::with_local_recorder`.
pub fn local_recorder() -> Result<metrics_exporter_prometheus::PrometheusRecorder, BuildError> {
    Ok(builder()?.build_recorder())
}

/// The `# HELP` lines.
pub fn describe() {
    describe_gauge!(
        BUILD_INFO,
        "What is running: version and git_sha labels, value 1"
    );
    describe_histogram!(
        FSYNC_DURATION_SECONDS,
        Unit::Seconds,
        "Time per fsync of partition data, directories and indexes"
    );
    describe_counter!(
        LOG_RECOVERY_TRUNCATED_BYTES_TOTAL,
        Unit::Bytes,
        "Bytes of torn tails cut away by log recovery"
    );
    describe_counter!(
        LOG_CORRUPTION_DETECTED_TOTAL,
        "Partition logs found damaged at start-up, by kind"
    );
    describe_counter!(
        LEADER_ELECTIONS_TOTAL,
        "Partitions whose leadership this broker took"
    );
    describe_gauge!(
        DISK_FREE_BYTES,
        Unit::Bytes,
        "Bytes free on the file system of the data directory"
    );
    describe_counter!(
        BYTES_IN_TOTAL,
        Unit::Bytes,
        "Record bytes appended by producers"
    );
    describe_counter!(RECORDS_IN_TOTAL, "Records appended by producers");
    describe_counter!(
        BYTES_OUT_TOTAL,
        Unit::Bytes,
        "Record bytes sent to consumers (followers excluded)"
    );
    describe_counter!(
        RECORDS_OUT_TOTAL,
        "Records sent to consumers (followers excluded)"
    );
    describe_histogram!(
        REQUEST_DURATION_SECONDS,
        Unit::Seconds,
        "Server-side time per request"
    );
    describe_counter!(REQUESTS_TOTAL, "Requests by RPC and result code");
    describe_gauge!(PARTITIONS, "Partition replicas hosted here");
    describe_gauge!(LEADER_PARTITIONS, "Partitions led here");
    describe_gauge!(
        UNDER_REPLICATED_PARTITIONS,
        "Partitions led here whose ISR is smaller than their replica set"
    );
    describe_gauge!(
        UNDER_MIN_ISR_PARTITIONS,
        "Partitions led here refusing acks=all writes"
    );
    describe_gauge!(
        LEADERLESS_PARTITIONS,
        "Partitions with no leader in this broker's metadata"
    );
    describe_gauge!(
        CONTROLLER_ACTIVE,
        "1 if this broker is the active controller"
    );
    describe_gauge!(CLUSTER_BROKERS, "Registered, unfenced brokers");
    describe_gauge!(CONNECTIONS, "Client connections open, per gRPC listener");
    describe_counter!(
        CONNECTIONS_REJECTED_TOTAL,
        "Connections closed before they carried a call, per gRPC listener and reason"
    );
    describe_gauge!(
        LOG_SIZE_BYTES,
        Unit::Bytes,
        "Bytes of partition logs on this broker's disk"
    );
    describe_gauge!(
        CONSUMER_GROUP_LAG_MAX,
        "Largest partition lag (high watermark minus committed offset) of a group"
    );
    describe_gauge!(
        CONSUMER_GROUP_LAG_SUM,
        "Sum of the partition lags of a group"
    );
    describe_gauge!(
        CONSUMER_GROUP_LAG,
        "Lag of one partition of a group (high watermark minus committed offset); only with metrics_per_partition"
    );
}

/// Sets `strata_build_info`; at every scrape, like the other gauges, so that it never
/// expires ([`GAUGE_IDLE_TIMEOUT`]).
pub fn publish_build_info() {
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION"), "git_sha" => GIT_SHA).set(1.0);
}

/// The state gauges of one broker, computed from its metadata image and logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeGauges {
    pub partitions: usize,
    pub leader_partitions: usize,
    pub under_replicated_partitions: usize,
    pub under_min_isr_partitions: usize,
    pub leaderless_partitions: usize,
    pub controller_active: bool,
    pub cluster_brokers: usize,
    pub log_size_bytes: BTreeMap<String, u64>,
    /// `None` when the file system could not be asked.
    pub disk_free_bytes: Option<u64>,
}

impl NodeGauges {
    /// Reads the gauges of `node` now.
    pub fn of(node: &Node) -> NodeGauges {
        let image = node.image();
        let me = node.config().node_id;
        let mut gauges = NodeGauges {
            controller_active: node.quorum().leader() == Some(me.0),
            cluster_brokers: image.brokers.values().filter(|b| !b.fenced).count(),
            log_size_bytes: node.log_sizes(),
            disk_free_bytes: disk_free_bytes(&node.config().data_dir),
            ..NodeGauges::default()
        };
        for (topic, topic_image) in &image.topics {
            for (partition, partition_image) in &topic_image.partitions {
                gauges.partitions += usize::from(partition_image.replicas.contains(&me));
                gauges.leaderless_partitions += usize::from(partition_image.leader.is_none());
                if partition_image.leader != Some(me) {
                    continue;
                }
                gauges.leader_partitions += 1;
                if partition_image.isr.len() < partition_image.replicas.len() {
                    gauges.under_replicated_partitions += 1;
                }
                if let Err(NodeError::NotEnoughReplicas { .. }) =
                    node.check_acks_all(topic, *partition)
                {
                    gauges.under_min_isr_partitions += 1;
                }
            }
        }
        gauges
    }

    /// Sets the gauges in the installed recorder.
    pub fn publish(&self) {
        // Counts far below 2^52 convert exactly.
        let count = |value: usize| value as f64;
        gauge!(PARTITIONS).set(count(self.partitions));
        gauge!(LEADER_PARTITIONS).set(count(self.leader_partitions));
        gauge!(UNDER_REPLICATED_PARTITIONS).set(count(self.under_replicated_partitions));
        gauge!(UNDER_MIN_ISR_PARTITIONS).set(count(self.under_min_isr_partitions));
        gauge!(LEADERLESS_PARTITIONS).set(count(self.leaderless_partitions));
        gauge!(CONTROLLER_ACTIVE).set(if self.controller_active { 1.0 } else { 0.0 });
        gauge!(CLUSTER_BROKERS).set(count(self.cluster_brokers));
        for (topic, bytes) in &self.log_size_bytes {
            gauge!(LOG_SIZE_BYTES, "topic" => topic.clone()).set(*bytes as f64);
        }
        if let Some(bytes) = self.disk_free_bytes {
            gauge!(DISK_FREE_BYTES).set(bytes as f64);
        }
    }
}

/// Bytes an unprivileged writer may still use on the file system holding `dir`
/// (`statvfs`: available blocks × fragment size); `None` if it cannot be asked.
fn disk_free_bytes(dir: &Path) -> Option<u64> {
    let path = CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut stats = MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `path` is NUL-terminated and outlives the call; the kernel writes `stats`,
    // a properly sized and aligned statvfs.
    let result = unsafe { libc::statvfs(path.as_ptr(), stats.as_mut_ptr()) };
    if result != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it filled `stats` (and it was zeroed before).
    let stats = unsafe { stats.assume_init() };
    // The field types differ between platforms (u32 on some 32-bit ones).
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    let (available, fragment) = (u64::from(stats.f_bavail), stats.f_frsize as u64);
    Some(available.saturating_mul(fragment))
}

/// Lag of one group: the largest and the sum over its partitions with a known lag.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupLag {
    pub max: i64,
    pub sum: i64,
}

/// Folds per-partition lags (`None`: the leader could not be asked) into per-group lags.
/// A group whose partitions all have an unknown lag is left out rather than shown as 0.
pub fn group_lags<'a>(
    partitions: impl IntoIterator<Item = (&'a str, Option<i64>)>,
) -> BTreeMap<String, GroupLag> {
    let mut groups: BTreeMap<String, GroupLag> = BTreeMap::new();
    for (group_id, lag) in partitions {
        let Some(lag) = lag else { continue };
        let entry = groups.entry(group_id.to_owned()).or_default();
        entry.max = entry.max.max(lag);
        entry.sum = entry.sum.saturating_add(lag);
    }
    groups
}

/// Computes every state gauge and sets it, just before a render; `per_partition` adds the
/// per-partition series.
pub async fn refresh_gauges(node: &Arc<Node>, groups: &Arc<GroupCoordinator>, per_partition: bool) {
    let gauges = {
        let node = Arc::clone(node);
        // Log sizes take each log's state lock: off the async workers.
        match tokio::task::spawn_blocking(move || NodeGauges::of(&node)).await {
            Ok(gauges) => gauges,
            Err(error) => {
                tracing::warn!(%error, "computing the metrics gauges failed");
                return;
            }
        }
    };
    gauges.publish();
    let Ok(partitions) = tokio::time::timeout(LAG_TIMEOUT, groups.lag()).await else {
        tracing::debug!("group lag not refreshed: the partition leaders were slow to answer");
        return;
    };
    let lags = group_lags(
        partitions
            .iter()
            .map(|partition| (partition.group_id.as_str(), partition.lag())),
    );
    for (group_id, lag) in lags {
        gauge!(CONSUMER_GROUP_LAG_MAX, "group" => group_id.clone()).set(lag.max as f64);
        gauge!(CONSUMER_GROUP_LAG_SUM, "group" => group_id).set(lag.sum as f64);
    }
    if per_partition {
        for partition in &partitions {
            let Some(lag) = partition.lag() else { continue };
            gauge!(CONSUMER_GROUP_LAG,
                "group" => partition.group_id.clone(),
                "topic" => partition.topic.clone(),
                "partition" => partition.partition.to_string())
            .set(lag as f64);
        }
    }
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
