//! Issue 20's benchmark lines, read off the replication rows of one sitting: per flush
//! mode, RF 3 / `acks=all` produce MB/s over RF 1 / `acks=1` produce MB/s (target ≥ 0.5;
//! Kafka's own figure is 0.51 on three machines), and the end-to-end latency of the RF 3
//! e2e row at 10,000 records/s (p50, p99, p99.9, max; goal p99 ≤ 5 ms under
//! `flush = interval`).
//!
//! Both produce rows of a ratio come from the same sitting and flush mode, on the same
//! kind of three-broker cluster, so the ratio compares like with like. A row that had
//! errors still shows its figure, and its verdict says it is not a clean result.

use std::fmt::Write as _;

use super::bench::Latency;
use super::plan::{Flush, E2E_RF3, PRODUCE_RF1, PRODUCE_RF3};
use super::runner::{Row, SessionRecord};

/// RF 3 ÷ RF 1 throughput at or above which the line holds.
pub const RATIO_TARGET: f64 = 0.5;
/// The e2e p99 goal under `flush = interval`, in milliseconds.
pub const E2E_P99_GOAL_MS: f64 = 5.0;

/// One flush mode's throughput ratio.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RatioLine {
    pub flush: Flush,
    pub rf1_mb_per_sec: Option<f64>,
    pub rf3_mb_per_sec: Option<f64>,
    /// RF 3 / acks=all MB/s ÷ RF 1 / acks=1 MB/s.
    pub ratio: Option<f64>,
    pub verdict: String,
}

/// One flush mode's RF 3 end-to-end latency.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LatencyLine {
    pub flush: Flush,
    pub e2e_ms: Latency,
    pub publish_p99_ms: Option<f64>,
    pub verdict: String,
}

/// The replication lines whose rows ran (empty when none did).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ReplicationSummary {
    pub ratios: Vec<RatioLine>,
    pub e2e: Vec<LatencyLine>,
}

impl ReplicationSummary {
    pub fn new(sessions: &[SessionRecord]) -> ReplicationSummary {
        let mut summary = ReplicationSummary::default();
        for flush in Flush::BOTH {
            let rf1 = find_row(sessions, PRODUCE_RF1, flush);
            let rf3 = find_row(sessions, PRODUCE_RF3, flush);
            if rf1.is_some() || rf3.is_some() {
                summary.ratios.push(ratio_line(flush, rf1, rf3));
            }
            if let Some(row) = find_row(sessions, E2E_RF3, flush) {
                summary.e2e.push(latency_line(flush, row));
            }
        }
        summary
    }

    pub fn is_empty(&self) -> bool {
        self.ratios.is_empty() && self.e2e.is_empty()
    }

    /// The lines as two markdown tables.
    pub fn markdown(&self) -> String {
        let mut out = String::from("### Replication (RF 3, three brokers)\n\n");
        if !self.ratios.is_empty() {
            out.push_str(
                "| flush | RF 1 acks=1 MB/s | RF 3 acks=all MB/s | RF 3 ÷ RF 1 | target | verdict |\n\
                 |---|---|---|---|---|---|\n",
            );
            for line in &self.ratios {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | ≥ {RATIO_TARGET} | {} |",
                    line.flush.name(),
                    cell(line.rf1_mb_per_sec, 1),
                    cell(line.rf3_mb_per_sec, 1),
                    cell(line.ratio, 2),
                    line.verdict
                );
            }
        }
        if !self.e2e.is_empty() {
            if !self.ratios.is_empty() {
                out.push('\n');
            }
            out.push_str(
                "| e2e 10,000 rec/s, RF 3 acks=all | p50 ms | p99 ms | p99.9 ms | max ms | publish p99 ms | verdict |\n\
                 |---|---|---|---|---|---|---|\n",
            );
            for line in &self.e2e {
                let _ = writeln!(
                    out,
                    "| flush={} | {} | {} | {} | {} | {} | {} |",
                    line.flush.name(),
                    cell(line.e2e_ms.p50, 2),
                    cell(line.e2e_ms.p99, 2),
                    cell(line.e2e_ms.p999, 2),
                    cell(line.e2e_ms.max, 2),
                    cell(line.publish_p99_ms, 2),
                    line.verdict
                );
            }
        }
        out
    }

    /// One line per ratio, for stderr at the end of a run.
    pub fn ratio_lines(&self) -> Vec<String> {
        self.ratios
            .iter()
            .map(|line| {
                format!(
                    "RF 3 acks=all ÷ RF 1 acks=1, flush={}: {} ({} ÷ {} MB/s) — {}",
                    line.flush.name(),
                    cell(line.ratio, 2),
                    cell(line.rf3_mb_per_sec, 1),
                    cell(line.rf1_mb_per_sec, 1),
                    line.verdict
                )
            })
            .collect()
    }
}

fn find_row<'a>(sessions: &'a [SessionRecord], name: &str, flush: Flush) -> Option<&'a Row> {
    sessions
        .iter()
        .filter(|record| record.session == name && record.flush == flush)
        .flat_map(|record| &record.rows)
        .find(|row| row.step.name == name)
}

fn ratio_line(flush: Flush, rf1: Option<&Row>, rf3: Option<&Row>) -> RatioLine {
    let mb_per_sec = |row: Option<&Row>| row.and_then(|row| row.bench.summary.mb_per_sec);
    let (rf1_mb_per_sec, rf3_mb_per_sec) = (mb_per_sec(rf1), mb_per_sec(rf3));
    let ratio = rf3_mb_per_sec
        .zip(rf1_mb_per_sec.filter(|rf1| *rf1 > 0.0))
        .map(|(rf3, rf1)| rf3 / rf1);
    let unclean: Vec<&str> = [rf1, rf3]
        .into_iter()
        .flatten()
        .filter(|row| row.error.is_some())
        .map(|row| row.step.name)
        .collect();
    let verdict = if !unclean.is_empty() {
        format!("not clean: {} had errors", unclean.join(" and "))
    } else {
        match ratio {
            None => "no figure".to_owned(),
            Some(ratio) if ratio >= RATIO_TARGET => "pass".to_owned(),
            Some(ratio) => format!(
                "MISS by {:.0} %",
                (RATIO_TARGET - ratio) / RATIO_TARGET * 100.0
            ),
        }
    };
    RatioLine {
        flush,
        rf1_mb_per_sec,
        rf3_mb_per_sec,
        ratio,
        verdict,
    }
}

fn latency_line(flush: Flush, row: &Row) -> LatencyLine {
    let e2e_ms = row.bench.summary.e2e_ms.clone();
    let verdict = match (row.error.is_some(), e2e_ms.p99, flush) {
        (true, _, _) => "not clean: the row had errors".to_owned(),
        (false, None, _) => "no figure".to_owned(),
        (false, Some(p99), Flush::Interval) if p99 <= E2E_P99_GOAL_MS => {
            format!("within the {E2E_P99_GOAL_MS} ms goal")
        }
        (false, Some(_), Flush::Interval) => format!("above the {E2E_P99_GOAL_MS} ms goal"),
        (false, Some(_), Flush::Always) => "recorded (no goal)".to_owned(),
    };
    LatencyLine {
        flush,
        e2e_ms,
        publish_p99_ms: row.bench.summary.publish_ms.p99,
        verdict,
    }
}

fn cell(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "–".to_owned(), |value| format!("{value:.decimals$}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenarios::bench::{BenchRun, Summary};
    use crate::scenarios::plan::{self, Topology};

    fn row(name: &'static str, flush: Flush, summary: Summary, error: Option<&str>) -> Row {
        let step = plan::all_sessions()
            .into_iter()
            .flat_map(|session| session.steps)
            .find(|step| step.name == name)
            .unwrap_or_else(|| panic!("no step {name}"));
        Row {
            session: step.name,
            flush,
            step,
            topic_records: None,
            in_sync_wait_seconds: None,
            broker_cpu_seconds: None,
            values_gib: None,
            broker_cpu_seconds_per_gib: None,
            ratio_to_iperf3: None,
            ratio_to_dd: None,
            ratio_to_page_cache: None,
            bench: BenchRun {
                command: String::new(),
                exit_code: Some(0),
                summary,
                document: None,
                error: error.map(str::to_owned),
            },
            error: error.map(str::to_owned),
            settle_wait_seconds: None,
            host_quiet_before: None,
            host_steal_seconds: None,
        }
    }

    fn record(row: Row) -> SessionRecord {
        SessionRecord {
            session: row.session,
            flush: row.flush,
            topology: Topology::Cluster,
            broker_addresses: Vec::new(),
            cluster_formed_seconds: None,
            broker_exit: None,
            rows: vec![row],
        }
    }

    fn throughput(mb_per_sec: f64) -> Summary {
        Summary {
            mb_per_sec: Some(mb_per_sec),
            ..Summary::default()
        }
    }

    #[test]
    fn the_ratio_is_taken_per_flush_mode_and_judged_against_one_half() {
        let sessions = [
            record(row(PRODUCE_RF1, Flush::Interval, throughput(200.0), None)),
            record(row(PRODUCE_RF3, Flush::Interval, throughput(120.0), None)),
            record(row(PRODUCE_RF1, Flush::Always, throughput(100.0), None)),
            record(row(PRODUCE_RF3, Flush::Always, throughput(40.0), None)),
        ];
        let summary = ReplicationSummary::new(&sessions);
        let [interval, always] = summary.ratios.as_slice() else {
            panic!("expected two ratio lines, got {:?}", summary.ratios);
        };
        assert_eq!(
            (interval.flush, interval.ratio),
            (Flush::Interval, Some(0.6))
        );
        assert_eq!(interval.verdict, "pass");
        assert_eq!((always.flush, always.ratio), (Flush::Always, Some(0.4)));
        assert_eq!(always.verdict, "MISS by 20 %");
        assert!(summary.e2e.is_empty());
        assert!(summary
            .markdown()
            .contains("| interval | 200.0 | 120.0 | 0.60 | ≥ 0.5 | pass |"));
        assert_eq!(summary.ratio_lines().len(), 2);
    }

    #[test]
    fn a_row_with_errors_is_not_a_clean_result_and_a_missing_row_has_no_figure() {
        let sessions = [
            record(row(PRODUCE_RF1, Flush::Interval, throughput(200.0), None)),
            record(row(
                PRODUCE_RF3,
                Flush::Interval,
                throughput(150.0),
                Some("3 records errors"),
            )),
            record(row(PRODUCE_RF1, Flush::Always, throughput(100.0), None)),
        ];
        let summary = ReplicationSummary::new(&sessions);
        assert_eq!(
            summary.ratios[0].verdict,
            format!("not clean: {PRODUCE_RF3} had errors")
        );
        assert_eq!(summary.ratios[1].ratio, None);
        assert_eq!(summary.ratios[1].verdict, "no figure");
    }

    #[test]
    fn the_e2e_lines_report_the_tail_and_only_interval_has_a_goal() {
        let latency = |p99| Summary {
            e2e_ms: Latency {
                p50: Some(1.0),
                p99: Some(p99),
                p999: Some(9.0),
                max: Some(20.0),
                ..Latency::default()
            },
            ..Summary::default()
        };
        let sessions = [
            record(row(E2E_RF3, Flush::Interval, latency(4.0), None)),
            record(row(E2E_RF3, Flush::Always, latency(8.0), None)),
        ];
        let summary = ReplicationSummary::new(&sessions);
        assert!(summary.ratios.is_empty());
        assert_eq!(summary.e2e[0].verdict, "within the 5 ms goal");
        assert_eq!(summary.e2e[1].verdict, "recorded (no goal)");
        assert!(summary.markdown().contains(
            "| flush=interval | 1.00 | 4.00 | 9.00 | 20.00 | – | within the 5 ms goal |"
        ));
        assert!(ReplicationSummary::new(&[]).is_empty());
    }
}
