//! What a run prints and saves: the markdown table of every row, the raw limits, issue 4's
//! acceptance checks ([`super::checks`]), issue 20's replication lines
//! ([`super::replication`]), and the JSON document with everything (each bench's own
//! document included).
//!
//! MB are MiB (2^20 bytes) of record values throughout, like Kafka's tools; the limits are
//! converted to MiB/s so that every ratio compares like with like.

use std::fmt::Write as _;

use super::broker::BrokerOptions;
use super::checks::Check;
use super::environment::Environment;
use super::latency::{LatencyFloors, LatencyLimit};
use super::limits::Limit;
use super::plan::{Mode, Timing};
use super::replication::ReplicationSummary;
use super::runner::{Row, SessionRecord};

/// Everything one run produced.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub tool: &'static str,
    pub quick: bool,
    /// The flags every broker got besides its directory, listener and flush.
    pub broker_options: BrokerOptions,
    /// The user stopped the run early; only the rows measured so far are present.
    pub interrupted: bool,
    pub timing: Timing,
    pub environment: Environment,
    pub iperf3: Limit,
    pub dd: Limit,
    pub page_cache_write: Limit,
    pub disk_read: Limit,
    /// The e2e rows' floors: loopback round trip and 4 KiB fdatasync.
    pub latency: LatencyFloors,
    pub sessions: Vec<SessionRecord>,
    pub checks: Vec<Check>,
    /// RF 3 ÷ RF 1 per flush mode and the RF 3 e2e latency, when those rows ran.
    pub replication: ReplicationSummary,
}

impl Report {
    /// The whole report as markdown.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "## Strata scenarios{}{}\n",
            if self.quick { " (--quick)" } else { "" },
            if self.interrupted {
                " — INTERRUPTED, partial"
            } else {
                ""
            }
        );
        out.push_str(&self.environment.markdown());
        let _ = writeln!(
            out,
            "- timing: {} s per produce/e2e step after {} s warm-up, except that a produce \
             step read back later writes {:.1} GiB of values (warm-up included); consume \
             reads the whole backlog\n\
             - broker: a fresh `strata-broker --data-dir <temp> --listen 127.0.0.1:<free port> \
             --flush interval:1000|always {}` per scenario and flush mode (RF 1); the \
             replication rows run on a fresh cluster of three such brokers on \
             127.0.0.1–3 (`--node-id N --controller-voters 1@127.0.0.1:P,…`), each step \
             after its topic's ISR holds every replica; their CPU is the three brokers' \
             sum\n\
             - MB = MiB (2^20 B) of record values; broker CPU s/GiB = (utime + stime) during \
             the step ÷ GiB of values it moved; exact commands in the JSON \
             (`sessions[].rows[].bench.command`)\n",
            self.timing.duration.as_secs(),
            self.timing.warmup.as_secs(),
            self.timing.backlog_bytes as f64 / f64::from(1u32 << 30),
            self.broker_options.args().join(" ")
        );
        out.push_str(&limits_table(&[
            ("loopback TCP, 1 stream (iperf3)", &self.iperf3),
            ("disk write (dd, fdatasync)", &self.dd),
            ("disk read (dd, O_DIRECT)", &self.disk_read),
            ("page-cache write (dd, no sync)", &self.page_cache_write),
        ]));
        out.push('\n');
        out.push_str(&latency_table(&[
            (
                "loopback TCP round trip, 1000 B (sockperf)",
                &self.latency.round_trip,
            ),
            ("4 KiB write + fdatasync (fio)", &self.latency.fdatasync),
        ]));
        out.push('\n');
        out.push_str(&rows_table(&self.sessions));
        if !self.checks.is_empty() {
            out.push('\n');
            out.push_str(&checks_table(&self.checks));
        }
        if !self.replication.is_empty() {
            out.push('\n');
            out.push_str(&self.replication.markdown());
        }
        out
    }
}

fn limits_table(limits: &[(&str, &Limit)]) -> String {
    let mut out = String::from(
        "| limit | MiB/s (median) | runs | status | command |\n|---|---|---|---|---|\n",
    );
    for &(name, limit) in limits {
        let runs: Vec<String> = limit
            .runs_mib_per_sec
            .iter()
            .map(|run| format!("{run:.0}"))
            .collect();
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | `{}` |",
            cell(limit.mib_per_sec, 0),
            runs.join(", "),
            limit.status,
            limit.command
        );
    }
    out
}

fn latency_table(floors: &[(&str, &LatencyLimit)]) -> String {
    let mut out = String::from(
        "| latency floor | p50 ms | p99 ms | p99.9 ms | status | command |\n|---|---|---|---|---|---|\n",
    );
    let ms = |us: Option<f64>| cell(us.map(|us| us / 1000.0), 2);
    for &(name, floor) in floors {
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} | `{}` |",
            ms(floor.p50_us),
            ms(floor.p99_us),
            ms(floor.p999_us),
            floor.status,
            floor.command
        );
    }
    out
}

fn rows_table(sessions: &[SessionRecord]) -> String {
    let mut out = String::from(
        "| scenario | flush | prod/cons | partitions | RF | record B | records/s | MB/s | publish p99 ms | e2e p99 ms | broker CPU s/GiB | ÷ iperf3 | ÷ dd | ÷ page cache | note |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for row in sessions.iter().flat_map(|record| &record.rows) {
        let _ = writeln!(out, "{}", row_line(row));
    }
    out
}

fn row_line(row: &Row) -> String {
    let step = &row.step;
    let summary = &row.bench.summary;
    let clients = match step.mode {
        Mode::Produce => format!("{}p", step.producers),
        Mode::Consume => format!("{}c", step.consumers),
        Mode::E2e => format!("{}p/{}c", step.producers, step.consumers),
    };
    let mut name = format!("{} ({}", step.name, step.mode.subcommand());
    if let Some(rate) = step.rate {
        let _ = write!(name, " @{rate}/s");
    }
    if step.acks != "1" {
        let _ = write!(name, ", acks={}", step.acks);
    }
    name.push(')');
    format!(
        "| {name} | {} | {clients} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
        row.flush.name(),
        step.partitions,
        step.replication_factor,
        step.record_size_bytes,
        cell(summary.records_per_sec, 0),
        cell(summary.mb_per_sec, 1),
        cell(summary.publish_ms.p99, 2),
        cell(summary.e2e_ms.p99, 2),
        cell(row.broker_cpu_seconds_per_gib, 2),
        cell(row.ratio_to_iperf3, 2),
        cell(row.ratio_to_dd, 2),
        cell(row.ratio_to_page_cache, 2),
        [row.error.clone(), row.host_note()]
            .into_iter()
            .flatten()
            .map(|note| escape(&note))
            .collect::<Vec<_>>()
            .join("; "),
    )
}

fn checks_table(checks: &[Check]) -> String {
    let mut out = String::from(
        "| issue 4 acceptance | row | measured | target | verdict | the machine |\n|---|---|---|---|---|---|\n",
    );
    for check in checks {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            check.criterion,
            check.row,
            cell(check.measured, 2),
            check.target,
            check.verdict,
            check.machine.as_deref().unwrap_or("")
        );
    }
    out
}

fn cell(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "–".to_owned(), |value| format!("{value:.decimals$}"))
}

/// A note fit for one table cell.
fn escape(text: &str) -> String {
    let text: String = text.replace('|', "\\|").replace('\n', " ");
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_escaped_and_shortened() {
        assert_eq!(escape("a|b\nc"), "a\\|b c");
        assert_eq!(escape(&"x".repeat(300)).chars().count(), 201);
    }
}
