//! What a run prints: Kafka's progress and summary lines, consumer-perf-test's CSV, the
//! HdrHistogram percentile distribution (`--hgrm`), and the OMB-shaped JSON document.
//! Pure functions of the measured figures, so the wording is unit-tested without a broker.
//!
//! MB is 2^20 bytes of record values, as in Kafka's tools; the JSON adds `wire_mb_per_sec`
//! from the estimated record-format bytes (keys, headers and framing included).

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::params::Params;
use super::progress::Series;
use super::stats::{LatencySummary, Totals};
use crate::timestamp::format_rfc3339;

/// Kafka's word for what was counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Sent,
    Received,
}

impl Verb {
    fn word(self) -> &'static str {
        match self {
            Verb::Sent => "sent",
            Verb::Received => "received",
        }
    }
}

/// Bytes in MB as Kafka counts them (2^20).
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1_u32 << 20)
}

/// The measured part of one side: after the warm-up, up to its last record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SideSummary {
    pub totals: Totals,
    pub elapsed_s: f64,
    pub latency: Option<LatencySummary>,
}

impl SideSummary {
    pub fn records_per_sec(&self) -> f64 {
        per_second(self.totals.records as f64, self.elapsed_s)
    }

    pub fn mb_per_sec(&self) -> f64 {
        per_second(mib(self.totals.value_bytes), self.elapsed_s)
    }

    pub fn wire_mb_per_sec(&self) -> f64 {
        per_second(mib(self.totals.wire_bytes), self.elapsed_s)
    }
}

fn per_second(amount: f64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        amount / seconds
    } else {
        0.0
    }
}

/// `5.0 s: 2512384 records sent, 502476.8 records/sec (47.92 MB/sec), 3.1 ms avg latency,
/// 41.2 ms max latency.` — one interval; without latencies when none completed in it.
pub fn interval_line(
    since_start_s: f64,
    verb: Verb,
    delta: Totals,
    elapsed_s: f64,
    latency: Option<&LatencySummary>,
) -> String {
    let mut line = format!(
        "{since_start_s:.1} s: {} records {}, {:.1} records/sec ({:.2} MB/sec)",
        delta.records,
        verb.word(),
        per_second(delta.records as f64, elapsed_s),
        per_second(mib(delta.value_bytes), elapsed_s),
    );
    if let Some(latency) = latency {
        let _ = write!(
            line,
            ", {:.1} ms avg latency, {:.1} ms max latency",
            latency.avg, latency.max
        );
    }
    line.push('.');
    line
}

/// Kafka's final line with sub-millisecond precision: `N records sent, X records/sec
/// (Y MB/sec), A ms avg latency, M ms max latency, P50 ms 50th, P95 ms 95th, P99 ms 99th,
/// P999 ms 99.9th.`
pub fn summary_line(verb: Verb, side: &SideSummary) -> String {
    let mut line = format!(
        "{} records {}, {:.1} records/sec ({:.2} MB/sec)",
        side.totals.records,
        verb.word(),
        side.records_per_sec(),
        side.mb_per_sec(),
    );
    if let Some(latency) = &side.latency {
        let _ = write!(
            line,
            ", {:.2} ms avg latency, {:.2} ms max latency, {:.2} ms 50th, {:.2} ms 95th, \
             {:.2} ms 99th, {:.2} ms 99.9th",
            latency.avg, latency.max, latency.p50, latency.p95, latency.p99, latency.p999
        );
    }
    line.push('.');
    line
}

/// OMB's "Pub Delay Latency": how late sends left against the `--rate` schedule.
pub fn send_delay_line(delay: &LatencySummary) -> String {
    format!(
        "send delay: {:.2} ms avg, {:.2} ms max, {:.2} ms 50th, {:.2} ms 95th, {:.2} ms 99th, \
         {:.2} ms 99.9th.",
        delay.avg, delay.max, delay.p50, delay.p95, delay.p99, delay.p999
    )
}

/// The line every run ends with, so a clean result is never assumed.
pub fn errors_line(errors: u64, missing: Option<u64>) -> String {
    match missing {
        Some(missing) => format!("{errors} errors, {missing} missing."),
        None => format!("{errors} errors."),
    }
}

/// consumer-perf-test's columns.
pub const CONSUMER_PERF_HEADER: &str = "start.time, end.time, data.consumed.in.MB, MB.sec, \
     data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec";

/// consumer-perf-test's header and summary row. `rebalance_ms` is the part of the
/// measured time spent before the group's assignment settled (0 without a group); as in
/// Kafka's tool, the fetch time is the rest, and the fetch rates divide everything read by
/// it.
pub fn consumer_perf_csv(start_unix_ms: i64, side: &SideSummary, rebalance_ms: u64) -> String {
    let elapsed_ms = (side.elapsed_s * 1000.0).round() as i64;
    let rebalance_ms = i64::try_from(rebalance_ms)
        .unwrap_or(i64::MAX)
        .min(elapsed_ms.max(0));
    let fetch_ms = elapsed_ms - rebalance_ms;
    let fetch_s = fetch_ms as f64 / 1000.0;
    let megabytes = mib(side.totals.value_bytes);
    format!(
        "{CONSUMER_PERF_HEADER}\n{}, {}, {megabytes:.4}, {:.4}, {}, {:.4}, {rebalance_ms}, {fetch_ms}, {:.4}, {:.4}\n",
        kafka_time(start_unix_ms),
        kafka_time(start_unix_ms + elapsed_ms),
        side.mb_per_sec(),
        side.totals.records,
        side.records_per_sec(),
        per_second(megabytes, fetch_s),
        per_second(side.totals.records as f64, fetch_s),
    )
}

/// `consume --group`: what the group did besides reading.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupSummary {
    pub group: String,
    pub members: u16,
    /// From the start of the run until the partitions were spread evenly over the members
    /// (`None`: that never happened before the run ended).
    pub rebalance_ms: Option<f64>,
    /// Records yielded again after another member had already counted them (not counted
    /// twice in the figures).
    pub redelivered: u64,
    /// Partitions the group was given records of, and how many of them have a committed
    /// offset at the end offset the run read up to, after the members closed.
    pub partitions: usize,
    pub partitions_committed_to_end: usize,
    /// Records between where the group started and its committed offsets at the end.
    pub committed_records: u64,
    /// Records each member counted, in the order the members were started.
    pub member_records: Vec<u64>,
}

/// `group bench-1: 4 members, assignment settled after 31.2 ms; records per member
/// 500000/500000/500000/500000; 0 redelivered; committed 2000000 records, 6 of 6
/// partitions at their end offset.`
pub fn group_line(group: &GroupSummary) -> String {
    let settled = match group.rebalance_ms {
        Some(ms) => format!("assignment settled after {ms:.1} ms"),
        None => "the assignment never settled evenly before the run ended".to_owned(),
    };
    let shares: Vec<String> = group.member_records.iter().map(u64::to_string).collect();
    format!(
        "group {}: {} members, {settled}; records per member {}; {} redelivered; committed {} records, {} of {} partitions at their end offset.",
        group.group,
        group.members,
        shares.join("/"),
        group.redelivered,
        group.committed_records,
        group.partitions_committed_to_end,
        group.partitions,
    )
}

/// Kafka's `yyyy-MM-dd HH:mm:ss:SSS` (UTC).
fn kafka_time(unix_ms: i64) -> String {
    let rfc3339 = format_rfc3339(unix_ms); // 2023-11-14T22:13:20.000Z
    rfc3339
        .trim_end_matches('Z')
        .replacen('T', " ", 1)
        .replacen('.', ":", 1)
}

/// The HdrHistogram percentile distribution (`outputPercentileDistribution` with 5 ticks
/// per half distance), values in ms, which HdrHistogram's plotters read.
pub fn percentile_distribution(histogram: &Histogram<u64>) -> String {
    let mut out = String::from("       Value     Percentile TotalCount 1/(1-Percentile)\n\n");
    if histogram.is_empty() {
        return out;
    }
    let ms = |micros: u64| micros as f64 / 1000.0;
    let mut total_count = 0_u64;
    for step in histogram.iter_quantiles(5) {
        total_count += step.count_since_last_iteration();
        let quantile = step.quantile_iterated_to();
        let value = ms(step.value_iterated_to());
        if quantile < 1.0 {
            let _ = writeln!(
                out,
                "{value:12.3} {quantile:2.12} {total_count:10} {:14.2}",
                1.0 / (1.0 - quantile)
            );
        } else {
            let _ = writeln!(out, "{value:12.3} {quantile:2.12} {total_count:10}");
        }
    }
    let _ = writeln!(
        out,
        "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]",
        histogram.mean() / 1000.0,
        histogram.stdev() / 1000.0
    );
    let _ = writeln!(
        out,
        "#[Max     = {:12.3}, Total count    = {:12}]",
        ms(histogram.max()),
        histogram.len()
    );
    let _ = writeln!(
        out,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        histogram.buckets(),
        sub_bucket_count(histogram.sigfig())
    );
    out
}

/// Sub-buckets per bucket for `sigfig` digits: the power of two at or above 2 × 10^sigfig
/// (2048 for 3 digits), as the HdrHistogram footer reports it.
fn sub_bucket_count(sigfig: u8) -> u64 {
    (2 * 10_u64.pow(u32::from(sigfig))).next_power_of_two()
}

/// The `--format json` document, shaped like OMB's `TestResult`.
#[derive(Debug, Serialize)]
pub struct Document {
    pub tool: &'static str,
    pub version: &'static str,
    /// From `STRATA_GIT_SHA` at build time, when it was set.
    pub git_sha: Option<&'static str>,
    pub started_at: String,
    pub env: Environment,
    pub params: Params,
    pub series: Series,
    pub summary: JsonSummary,
}

#[derive(Debug, Serialize)]
pub struct JsonSummary {
    /// Records measured (after the warm-up) on the primary side: published for produce and
    /// e2e, consumed for consume.
    pub records: u64,
    /// Failed records (or fetches), warm-up included: any error fails the run.
    pub errors: u64,
    /// e2e: records acknowledged but never received.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<u64>,
    pub bytes: u64,
    pub wire_bytes: u64,
    pub duration_s: f64,
    pub records_per_sec: f64,
    pub mb_per_sec: f64,
    pub wire_mb_per_sec: f64,
    pub publish_ms: Option<LatencySummary>,
    pub e2e_ms: Option<LatencySummary>,
    /// With `--rate`: how late sends left against the schedule.
    pub send_delay_ms: Option<LatencySummary>,
    /// e2e: the consumers' measured side.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumed: Option<JsonSide>,
    /// Records of the whole run, warm-up included.
    pub records_total: u64,
    /// `consume --group`: rebalance time, redeliveries and committed offsets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupSummary>,
}

#[derive(Debug, Serialize)]
pub struct JsonSide {
    pub records: u64,
    pub bytes: u64,
    pub duration_s: f64,
    pub records_per_sec: f64,
    pub mb_per_sec: f64,
}

impl JsonSide {
    pub fn of(side: &SideSummary) -> JsonSide {
        JsonSide {
            records: side.totals.records,
            bytes: side.totals.value_bytes,
            duration_s: side.elapsed_s,
            records_per_sec: side.records_per_sec(),
            mb_per_sec: side.mb_per_sec(),
        }
    }
}

/// The machine the load generator ran on.
#[derive(Debug, Serialize)]
pub struct Environment {
    pub hostname: String,
    pub cpus: usize,
    pub memory_gb: f64,
    pub kernel: String,
}

impl Environment {
    /// Reads `/proc`; fields it cannot learn are empty or 0.
    pub fn detect() -> Environment {
        let read = |path: &str| {
            std::fs::read_to_string(path)
                .map(|text| text.trim().to_owned())
                .unwrap_or_default()
        };
        let memory_kib: f64 = read("/proc/meminfo")
            .lines()
            .find_map(|line| line.strip_prefix("MemTotal:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0);
        Environment {
            hostname: read("/proc/sys/kernel/hostname"),
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            memory_gb: (memory_kib / f64::from(1_u32 << 20) * 10.0).round() / 10.0,
            kernel: read("/proc/sys/kernel/osrelease"),
        }
    }
}

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
