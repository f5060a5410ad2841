//! `--print-config` and the start-up log line: the merged settings as TOML, each value
//! followed by the source it came from.

use std::fmt::Write as _;

use super::{BrokerSettings, LogFormat};

impl BrokerSettings {
    /// The merged configuration as TOML, each value followed by its source.
    pub fn to_annotated_toml(&self) -> String {
        let source = |key: &str| {
            self.sources
                .get(key)
                .map_or("default", |source| source.name())
        };
        let mut out = String::new();
        let mut line = |key: &str, value: String| {
            let _ = writeln!(out, "{key} = {value} # {}", source(key));
        };
        line("node_id", self.node_id.to_string());
        line(
            "data_dir",
            format!("{:?}", self.data_dir.display().to_string()),
        );
        line(
            "controller_voters",
            format!("{:?}", self.controller_voters.to_string()),
        );
        if let Some(rack) = &self.rack {
            line("rack", format!("{rack:?}"));
        }
        line(
            "broker_heartbeat_interval_ms",
            self.broker_heartbeat_interval_ms.to_string(),
        );
        line(
            "broker_session_timeout_ms",
            self.broker_session_timeout_ms.to_string(),
        );
        line(
            "replica_lag_time_max_ms",
            self.replica_lag_time_max_ms.to_string(),
        );
        if let Some(partitions) = self.offsets_topic_partitions {
            line("offsets_topic_partitions", partitions.to_string());
        }
        line(
            "group_session_timeout_ms",
            self.group_session_timeout_ms.to_string(),
        );
        line(
            "group_heartbeat_interval_ms",
            self.group_heartbeat_interval_ms.to_string(),
        );
        line("flush", format!("{:?}", self.flush.to_string()));
        line("segment_bytes", self.segment_bytes.to_string());
        line("retention_ms", self.retention_ms.to_string());
        line("retention_bytes", self.retention_bytes.to_string());
        line(
            "retention_check_interval_ms",
            self.retention_check_interval_ms.to_string(),
        );
        line("message_max_bytes", self.message_max_bytes.to_string());
        line("log_io", format!("{:?}", self.log_io.name()));
        line("worker_threads", self.worker_threads.to_string());
        line(
            "log_format",
            format!(
                "{:?}",
                if self.log_format == LogFormat::Json {
                    "json"
                } else {
                    "text"
                }
            ),
        );
        line("shutdown_grace_ms", self.shutdown_grace_ms.to_string());
        line(
            "max_connections_per_ip",
            self.max_connections_per_ip.to_string(),
        );
        line("max_streams_per_ip", self.max_streams_per_ip.to_string());
        line(
            "handshake_timeout_ms",
            self.handshake_timeout_ms.to_string(),
        );
        line(
            "connections_max_idle_ms",
            self.connections_max_idle_ms.to_string(),
        );
        line("admin_peek", self.admin_peek.to_string());
        line(
            "metrics_per_partition",
            self.metrics_per_partition.to_string(),
        );
        let _ = writeln!(
            out,
            "\n[listeners]\ngrpc = {:?} # {}",
            self.listen.to_string(),
            source("listeners.grpc"),
        );
        if let Some(external) = &self.external_listen {
            let _ = writeln!(
                out,
                "external = {:?} # {}",
                external.to_string(),
                source("listeners.external")
            );
        }
        let _ = writeln!(
            out,
            "admin = {:?} # {}",
            self.admin_listen.to_string(),
            source("listeners.admin")
        );
        let _ = writeln!(
            out,
            "\n[advertised]\ngrpc = {:?} # {}",
            self.advertised_address,
            source("advertised.grpc")
        );
        if let Some(external) = &self.external_advertised_address {
            let _ = writeln!(
                out,
                "external = {external:?} # {}",
                source("advertised.external")
            );
        }
        out
    }
}
