//! One `strata bench` invocation: its command line (the bench flags, global `-b` and
//! `--format json`), running it with a deadline, and reading the OMB-shaped JSON document
//! it prints.
//!
//! Nothing here fails the whole run: a bench that cannot start, times out, exits non-zero
//! or prints a document without some field yields a [`BenchRun`] whose `error` says so,
//! with whatever figures could still be read.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::plan::{Mode, Step, Timing};
use super::process::{tail, ChildProcess};

/// Extra time a time-bounded bench gets past its warm-up and duration before it is killed.
const DEADLINE_SLACK: Duration = Duration::from_secs(120);
/// Deadline of a `consume` step, which runs until it has read the whole backlog, and of
/// the `produce` step that writes that backlog.
const CONSUME_DEADLINE: Duration = Duration::from_secs(600);

/// Latency percentiles in milliseconds, as `summary.publish_ms` / `summary.e2e_ms`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Latency {
    pub avg: Option<f64>,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub p999: Option<f64>,
    pub max: Option<f64>,
}

/// The figures of a bench document's `summary`; `None` where the document lacks them.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Summary {
    pub records: Option<f64>,
    pub errors: Option<f64>,
    /// e2e: records acknowledged but never received.
    pub missing: Option<f64>,
    pub records_per_sec: Option<f64>,
    pub mb_per_sec: Option<f64>,
    pub publish_ms: Latency,
    pub e2e_ms: Latency,
}

/// The outcome of one `strata bench` run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchRun {
    pub command: String,
    pub exit_code: Option<i32>,
    pub summary: Summary,
    /// The whole document, for the JSON report.
    pub document: Option<Value>,
    pub error: Option<String>,
}

/// The arguments after the `strata` program name. `consume` reads from the earliest
/// offset up to the end offsets it sees at start: the whole backlog of the session.
/// `bootstrap` is the `-b` list: every broker of the session.
pub fn arguments(step: &Step, timing: Timing, bootstrap: &str) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "-b".into(),
        bootstrap.into(),
        "--format".into(),
        "json".into(),
        "bench".into(),
        step.mode.subcommand().into(),
        "--topic".into(),
        step.topic.into(),
    ];
    let seconds = |duration: Duration| format!("{}s", duration.as_secs());
    if step.mode == Mode::Consume {
        args.extend([
            "--consumers".into(),
            step.consumers.to_string(),
            "--warmup".into(),
            "0s".into(),
        ]);
        if step
            .batching
            .is_some_and(|batching| batching.batch_size_bytes >= 1 << 19)
        {
            // Batches near 1 MB: let one fetch carry two of them (the client default of
            // 1 MiB, Kafka's, carries one; see `MAX_PARTITION_FETCH_BYTES_DEFAULT`).
            args.extend(["-X".into(), "max.partition.fetch.bytes=2097152".into()]);
        }
        return args;
    }
    args.extend([
        "--create".into(),
        "-p".into(),
        step.partitions.to_string(),
        "-r".into(),
        step.replication_factor.to_string(),
    ]);
    if step.backlog {
        args.extend([
            "--records".into(),
            timing.backlog_records(step.record_size_bytes).to_string(),
        ]);
    } else {
        args.extend(["--duration".into(), seconds(timing.duration)]);
    }
    args.extend([
        "--warmup".into(),
        seconds(timing.warmup),
        "--record-size".into(),
        step.record_size_bytes.to_string(),
        "--producers".into(),
        step.producers.to_string(),
        "--acks".into(),
        step.acks.into(),
    ]);
    if let Some(rate) = step.rate {
        args.extend(["--rate".into(), rate.to_string()]);
    }
    if let Some(batching) = step.batching {
        args.extend([
            "--batch-size".into(),
            batching.batch_size_bytes.to_string(),
            "--linger".into(),
            format!("{}ms", batching.linger_ms),
        ]);
    }
    if step.mode == Mode::E2e {
        args.extend(["--consumers".into(), step.consumers.to_string()]);
    }
    args
}

/// How long the step may run before it is stopped.
pub fn deadline(step: &Step, timing: Timing) -> Duration {
    match step.mode {
        Mode::Consume => CONSUME_DEADLINE,
        Mode::Produce if step.backlog => CONSUME_DEADLINE,
        Mode::Produce | Mode::E2e => timing.warmup + timing.duration + DEADLINE_SLACK,
    }
}

/// Runs `strata` with `args`, its output going to files under `scratch_dir`.
pub fn run(
    strata: &Path,
    args: &[String],
    mode: Mode,
    scratch_dir: &Path,
    deadline: Duration,
) -> BenchRun {
    let command_line = format!("strata {}", args.join(" "));
    let mut command = Command::new(strata);
    command.args(args);
    let stem = scratch_dir.join(format!("bench-{}", mode.subcommand()));
    let finished = ChildProcess::spawn(command, "strata bench", &stem)
        .and_then(|child| child.wait_until(deadline));
    let finished = match finished {
        Ok(finished) => finished,
        Err(error) => return BenchRun::failed(command_line, format!("{error:#}")),
    };
    let document = find_document(&finished.stdout);
    let summary = document.as_ref().map(Summary::read).unwrap_or_default();
    let mut problems = Vec::new();
    match finished.status {
        None if finished.interrupted => problems.push("stopped: the run was interrupted".into()),
        None => problems.push(format!("stopped after its deadline of {deadline:?}")),
        Some(status) if !status.success() => problems.push(format!("exited with {status}")),
        Some(_) => {}
    }
    for (count, what) in [(summary.errors, "errors"), (summary.missing, "missing")] {
        if let Some(count) = count.filter(|count| *count > 0.0) {
            problems.push(format!("{count} records {what}"));
        }
    }
    match &document {
        None => problems.push("no JSON document on stdout".to_owned()),
        Some(_) => problems.extend(
            summary
                .missing(mode)
                .into_iter()
                .map(|field| format!("JSON lacks {field}")),
        ),
    }
    if !problems.is_empty() {
        let stderr = stderr_gist(&finished.stderr);
        if !stderr.is_empty() {
            problems.push(format!("stderr: {}", stderr.replace('\n', " | ")));
        }
    }
    BenchRun {
        command: command_line,
        exit_code: finished.status.and_then(|status| status.code()),
        summary,
        document,
        error: (!problems.is_empty()).then(|| problems.join("; ")),
    }
}

/// The lines of a failed bench's stderr worth a table cell: its `error` lines, else its
/// last lines.
fn stderr_gist(stderr: &str) -> String {
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|line| line.to_ascii_lowercase().contains("error"))
        .collect();
    if errors.is_empty() {
        tail(stderr.trim(), 3)
    } else {
        tail(&errors.join("\n"), 2)
    }
}

impl BenchRun {
    pub fn failed(command: String, error: String) -> BenchRun {
        BenchRun {
            command,
            exit_code: None,
            summary: Summary::default(),
            document: None,
            error: Some(error),
        }
    }
}

/// The JSON object on stdout: the whole output, else the last line that is one, else
/// the span from the first `{` to the last `}`.
pub fn find_document(stdout: &str) -> Option<Value> {
    let object = |text: &str| {
        serde_json::from_str::<Value>(text.trim())
            .ok()
            .filter(Value::is_object)
    };
    object(stdout)
        .or_else(|| stdout.lines().rev().find_map(object))
        .or_else(|| {
            let start = stdout.find('{')?;
            let end = stdout.rfind('}')?;
            object(stdout.get(start..=end)?)
        })
}

impl Summary {
    pub fn read(document: &Value) -> Summary {
        let summary = &document["summary"];
        Summary {
            records: number(&summary["records"]),
            errors: number(&summary["errors"]),
            missing: number(&summary["missing"]),
            records_per_sec: number(&summary["records_per_sec"]),
            mb_per_sec: number(&summary["mb_per_sec"]),
            publish_ms: Latency::read(&summary["publish_ms"]),
            e2e_ms: Latency::read(&summary["e2e_ms"]),
        }
    }

    /// The fields a `mode` run must report that this summary lacks.
    pub fn missing(&self, mode: Mode) -> Vec<&'static str> {
        let mut required = vec![
            ("summary.records_per_sec", self.records_per_sec),
            ("summary.mb_per_sec", self.mb_per_sec),
            ("summary.errors", self.errors),
        ];
        if mode != Mode::Consume {
            required.push(("summary.publish_ms.p99", self.publish_ms.p99));
        }
        if mode == Mode::E2e {
            required.push(("summary.e2e_ms.p99", self.e2e_ms.p99));
        }
        required
            .into_iter()
            .filter(|(_, value)| value.is_none())
            .map(|(name, _)| name)
            .collect()
    }
}

impl Latency {
    fn read(value: &Value) -> Latency {
        Latency {
            avg: number(&value["avg"]),
            p50: number(&value["p50"]),
            p95: number(&value["p95"]),
            p99: number(&value["p99"]),
            p999: number(&value["p999"]),
            max: number(&value["max"]),
        }
    }
}

fn number(value: &Value) -> Option<f64> {
    value.as_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_is_found_after_other_output() {
        let stdout = "100 records sent, 10.0 records/sec\n{\"summary\":{\"records\":100}}\n";
        let document = find_document(stdout);
        assert_eq!(
            document.map(|document| Summary::read(&document).records),
            Some(Some(100.0))
        );
    }

    #[test]
    fn pretty_printed_document_is_found() {
        let stdout = "note\n{\n  \"summary\": {\n    \"errors\": 0\n  }\n}\n";
        assert!(find_document(stdout).is_some());
    }

    #[test]
    fn missing_fields_depend_on_the_mode() {
        let document: Value = serde_json::json!({"summary": {
            "records_per_sec": 1.0, "mb_per_sec": 1.0, "errors": 0,
            "publish_ms": {"p99": 2.0}}});
        let summary = Summary::read(&document);
        assert!(summary.missing(Mode::Consume).is_empty());
        assert!(summary.missing(Mode::Produce).is_empty());
        assert_eq!(summary.missing(Mode::E2e), vec!["summary.e2e_ms.p99"]);
    }
}
