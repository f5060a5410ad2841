//! The end of a run: what was measured after the warm-up ([`SideResult`], [`Measured`]),
//! printed on stdout as text or one JSON document, written to `--hgrm` and `--csv`, and
//! turned into the exit status: 1 when any record failed or went missing.

use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;
use tokio::time::Instant;

use super::args::{BenchSpec, Mode};
use super::params::Params;
use super::progress::Series;
use super::report::{
    consumer_perf_csv, errors_line, group_line, percentile_distribution, send_delay_line,
    summary_line, Document, Environment, GroupSummary, JsonSide, JsonSummary, SideSummary, Verb,
};
use super::stats::{LatencySummary, Side, Totals};
use super::Timing;
use crate::commands::Context;
use crate::exit::{CliError, ExitStatus};
use crate::output::{status, OutputFormat};
use crate::timestamp::format_rfc3339;

/// One side after the warm-up.
#[derive(Debug)]
pub struct SideResult {
    pub summary: SideSummary,
    pub histogram: Histogram<u64>,
    pub send_delay: Option<LatencySummary>,
    /// Records of the whole run, warm-up included.
    pub records_total: u64,
    /// The run ended during the warm-up: nothing was measured.
    pub nothing_measured: bool,
}

impl SideResult {
    /// What `side` measured between the end of the warm-up (`at_warmup_end`, `None` if
    /// never reached) and `finished_at`, its last record.
    pub fn collect(
        side: &Side,
        at_warmup_end: Option<Totals>,
        warmup_end: Instant,
        finished_at: Option<Instant>,
        with_latency: bool,
    ) -> SideResult {
        let totals = side.totals();
        let measured = at_warmup_end.map_or(Totals::default(), |warm| totals.since(warm));
        let elapsed_s = match (at_warmup_end, finished_at) {
            (Some(_), Some(finished_at)) => finished_at
                .saturating_duration_since(warmup_end)
                .as_secs_f64(),
            _ => 0.0,
        };
        let (latencies, send_delay) = side.measured();
        SideResult {
            summary: SideSummary {
                totals: measured,
                elapsed_s,
                latency: latencies.summary().filter(|_| with_latency),
            },
            histogram: latencies.histogram().clone(),
            send_delay: send_delay.summary(),
            records_total: totals.records,
            nothing_measured: at_warmup_end.is_none() && totals.records > 0,
        }
    }
}

/// Everything a finished run reports.
#[derive(Debug)]
pub struct Measured {
    /// Publish for produce and e2e; consume for consume.
    pub primary: SideResult,
    /// e2e: end-to-end.
    pub secondary: Option<SideResult>,
    pub series: Series,
    pub errors: u64,
    /// e2e: acknowledged records never received.
    pub missing: Option<u64>,
    pub timing: Timing,
    /// `consume --group`: what the group did besides reading.
    pub group: Option<GroupSummary>,
}

impl Measured {
    /// consumer-perf-test's `rebalance.time.ms`: until the group's assignment was even
    /// (the whole run when it never was), 0 without a group.
    fn rebalance_ms(&self) -> u64 {
        match &self.group {
            None => 0,
            Some(group) => group.rebalance_ms.map_or(u64::MAX, |ms| ms.round() as u64),
        }
    }
}

/// Prints the result, writes the files, and decides the exit status.
pub fn emit(
    context: &mut Context,
    spec: &BenchSpec,
    params: Params,
    measured: Measured,
) -> Result<ExitStatus, CliError> {
    if measured.primary.nothing_measured {
        status!(
            "warning: the run ended during the {:?} warm-up, so nothing was measured; lower --warmup",
            spec.warmup()
        );
    }
    write_files(spec, &measured)?;
    match context.format() {
        OutputFormat::Text => context.print(&text(spec.mode, &measured))?,
        OutputFormat::Json => {
            context.print_json(&document(spec.mode, params, &measured))?;
        }
    }
    let missing = measured.missing.unwrap_or(0);
    if measured.errors == 0 && missing == 0 {
        return Ok(ExitStatus::Success);
    }
    let mut what = Vec::new();
    if measured.errors > 0 {
        what.push(format!("{} records failed", measured.errors));
    }
    if missing > 0 {
        what.push(format!("{missing} records went missing"));
    }
    Err(CliError::failure("BENCH_FAILED", what.join(", "))
        .with_hint("the figures above do not describe a clean run"))
}

/// The stdout text: Kafka's lines, and always the error count.
fn text(mode: Mode, measured: &Measured) -> String {
    let primary = &measured.primary;
    let mut lines = Vec::new();
    match (mode, &measured.secondary) {
        (Mode::Consume, _) => {
            lines.push(
                consumer_perf_csv(
                    measured.timing.warmup_end_unix_ms(),
                    &primary.summary,
                    measured.rebalance_ms(),
                )
                .trim_end()
                .to_owned(),
            );
            if let Some(group) = &measured.group {
                lines.push(group_line(group));
            }
        }
        (Mode::EndToEnd, Some(end_to_end)) => {
            lines.push(format!(
                "publish: {}",
                summary_line(Verb::Sent, &primary.summary)
            ));
            lines.push(format!(
                "end-to-end: {}",
                summary_line(Verb::Received, &end_to_end.summary)
            ));
        }
        _ => lines.push(summary_line(Verb::Sent, &primary.summary)),
    }
    if let Some(delay) = &primary.send_delay {
        lines.push(send_delay_line(delay));
    }
    lines.push(errors_line(measured.errors, measured.missing));
    lines.join("\n") + "\n"
}

fn document(mode: Mode, params: Params, measured: &Measured) -> Document {
    let primary = &measured.primary;
    let summary = &primary.summary;
    let end_to_end = measured.secondary.as_ref();
    let publishing = mode != Mode::Consume;
    Document {
        tool: "strata-bench",
        version: env!("CARGO_PKG_VERSION"),
        git_sha: option_env!("STRATA_GIT_SHA"),
        started_at: format_rfc3339(measured.timing.start_unix_ms),
        env: Environment::detect(),
        params,
        series: measured.series.clone(),
        summary: JsonSummary {
            records: summary.totals.records,
            errors: measured.errors,
            missing: measured.missing,
            bytes: summary.totals.value_bytes,
            wire_bytes: summary.totals.wire_bytes,
            duration_s: summary.elapsed_s,
            records_per_sec: summary.records_per_sec(),
            mb_per_sec: summary.mb_per_sec(),
            wire_mb_per_sec: summary.wire_mb_per_sec(),
            publish_ms: summary.latency.filter(|_| publishing),
            e2e_ms: end_to_end.and_then(|side| side.summary.latency),
            send_delay_ms: primary.send_delay,
            consumed: end_to_end.map(|side| JsonSide::of(&side.summary)),
            records_total: primary.records_total,
            group: measured.group.clone(),
        },
    }
}

/// `--hgrm` (e2e: FILE end-to-end, FILE.publish.hgrm publish) and `--csv`.
fn write_files(spec: &BenchSpec, measured: &Measured) -> Result<(), CliError> {
    if let Some(path) = &spec.run.hgrm {
        match (&measured.secondary, spec.mode) {
            (Some(end_to_end), Mode::EndToEnd) => {
                write(path, &percentile_distribution(&end_to_end.histogram))?;
                let publish = sibling(path, "publish.hgrm");
                write(
                    &publish,
                    &percentile_distribution(&measured.primary.histogram),
                )?;
            }
            (_, Mode::Consume) => status!("warning: consume measures no latency; --hgrm ignored"),
            _ => write(path, &percentile_distribution(&measured.primary.histogram))?,
        }
    }
    if let Some(path) = &spec.run.csv {
        let side = measured.secondary.as_ref().unwrap_or(&measured.primary);
        write(
            path,
            &consumer_perf_csv(
                measured.timing.warmup_end_unix_ms(),
                &side.summary,
                measured.rebalance_ms(),
            ),
        )?;
    }
    Ok(())
}

/// `out.hgrm` → `out.publish.hgrm`.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let stem = path.file_stem().map_or_else(
        || "latency".to_owned(),
        |stem| stem.to_string_lossy().into_owned(),
    );
    path.with_file_name(format!("{stem}.{suffix}"))
}

fn write(path: &Path, text: &str) -> Result<(), CliError> {
    std::fs::write(path, text)
        .map_err(|error| CliError::io(format!("writing {}", path.display()), &error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_publish_histogram_sits_next_to_the_named_file() {
        assert_eq!(
            sibling(Path::new("/tmp/run/e2e.hgrm"), "publish.hgrm"),
            Path::new("/tmp/run/e2e.publish.hgrm")
        );
        assert_eq!(
            sibling(Path::new("e2e"), "publish.hgrm"),
            Path::new("e2e.publish.hgrm")
        );
    }
}
