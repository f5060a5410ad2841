//! `strata produce TOPIC [FILE...]` (docs/CLI.md, "Produce").
//!
//! Records come from `--value` arguments, files or stdin (`produce_input`). Each record is
//! `enqueue`d in input order, so the producer's per-partition ordering holds, and its
//! delivery future goes to a reporter task that awaits them in the same order and counts
//! them. At the end one summary line goes to stderr: records, bytes (keys and values),
//! seconds, errors. Per-record reports are opt-in in text mode (`-v`: stderr, they are
//! metadata next to the user's own data); with `--format json` they are the result and go
//! to stdout as JSON lines, and the summary is a JSON object on stderr. `-q` keeps only
//! errors.
//!
//! The first Ctrl-C stops reading input and says how many records are still in flight;
//! those are still delivered and counted. A second Ctrl-C exits at once with 130
//! (`signals`). Any record not delivered, or any input record that does not match the
//! format, makes the exit code 1, with a count on stderr.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use strata_client::{Acks, Delivery, DeliveryFuture, Producer, Record};
use strata_proto::record::Compression;
use tokio::sync::{mpsc, Notify};

use super::produce_input::{Input, SourceError};
use super::{client_error, Context};
use crate::args::{AcksArg, CompressionArg, ProduceArgs};
use crate::exit::{CliError, ExitStatus};
use crate::format_input::{InputError, ParsedRecord};
use crate::output::{status, Output, OutputError, OutputFormat};
use crate::signals::Interrupts;

/// Delivery futures waiting for their report.
const REPORT_QUEUE_RECORDS: usize = 16 * 1024;

/// What can be refused without a broker: the input format, `--value` with `-f`, and files
/// that cannot be opened.
pub fn check_before_connecting(args: &ProduceArgs) -> Result<(), CliError> {
    Input::open(args).map(|_| ())
}

pub async fn run(
    context: &mut Context,
    args: ProduceArgs,
    mut interrupts: Interrupts,
) -> Result<ExitStatus, CliError> {
    let started = Instant::now();
    let producer = build_producer(context, &args)?;
    let mut input = Input::open(&args)?.start();
    let progress = Arc::new(Progress::default());
    let (reports, report_queue) = mpsc::channel(REPORT_QUEUE_RECORDS);
    let reporting = Reporting {
        format: context.format(),
        per_record: !args.quiet
            && (context.format() == OutputFormat::Json || context.global.verbose > 0),
    };
    let reporter = tokio::spawn(report_deliveries(report_queue, reporting, progress.clone()));
    let topic: Arc<str> = Arc::from(args.topic.as_str());
    let (mut sent, mut unparsed, mut interrupted) = (0_u64, 0_u64, false);
    loop {
        let item = tokio::select! {
            item = input.recv() => item,
            () = interrupts.requested() => {
                interrupted = true;
                progress.say_waiting(sent);
                break;
            }
        };
        let Some(item) = item else { break };
        let parsed = match item {
            Ok(parsed) => parsed,
            Err(error) => {
                unparsed += 1;
                report_input_error(&error, context.format());
                continue;
            }
        };
        sent += 1;
        let record = to_record(&args, &topic, parsed);
        let bytes = record_bytes(&record);
        let future = enqueue(&producer, record, &progress.completed).await;
        if reports.send((sent, bytes, future)).await.is_err() {
            break; // the reporter stopped: stdout closed
        }
    }
    drop(reports);
    let finishing = async {
        let close = producer.close().await;
        let totals = reporter.await.unwrap_or(Totals {
            failed: sent,
            ..Totals::default()
        });
        (close, totals)
    };
    tokio::pin!(finishing);
    let (close, totals) = if interrupted {
        finishing.await
    } else {
        tokio::select! {
            done = &mut finishing => done,
            () = interrupts.requested() => {
                progress.say_waiting(sent);
                finishing.await
            }
        }
    };
    if let Err(error) = close {
        return Err(client_error(error).context("closing the producer"));
    }
    let summary = Summary {
        topic: &args.topic,
        records: totals.delivered,
        bytes: totals.bytes,
        seconds: started.elapsed().as_secs_f64(),
        errors: totals.failed + unparsed,
    };
    if !args.quiet {
        summary.print(context.format());
    }
    outcome(sent, totals.failed, unparsed)
}

/// An input record that does not match the format is skipped; a read error ends the input.
fn report_input_error(error: &SourceError, format: OutputFormat) {
    match &error.error {
        InputError::Io(io) => {
            CliError::io(format!("reading {}", error.source_name), io).report(format);
        }
        InputError::Mismatch { .. } => {
            CliError::usage(format!("skipping {error}")).report(format);
        }
    }
}

fn outcome(sent: u64, failed: u64, unparsed: u64) -> Result<ExitStatus, CliError> {
    if failed == 0 && unparsed == 0 {
        return Ok(ExitStatus::Success);
    }
    let mut what = Vec::new();
    if failed > 0 {
        what.push(format!("{failed} of {sent} records not delivered"));
    }
    if unparsed > 0 {
        what.push(format!(
            "{unparsed} input records did not match the format and were skipped"
        ));
    }
    Err(CliError::failure("PRODUCE_FAILED", what.join("; ")))
}

/// The end-of-run line: `Produced 3 records (12 bytes) to orders in 0.01 s, 0 errors.`
#[derive(Debug, Serialize)]
struct Summary<'a> {
    topic: &'a str,
    records: u64,
    bytes: u64,
    seconds: f64,
    errors: u64,
}

impl Summary<'_> {
    fn print(&self, format: OutputFormat) {
        match format {
            OutputFormat::Text => status!("{}", self.text()),
            OutputFormat::Json => {
                #[derive(Serialize)]
                struct Wrapped<'a> {
                    summary: &'a Summary<'a>,
                }
                let line = serde_json::to_string(&Wrapped { summary: self }).unwrap_or_default();
                status!("{line}");
            }
        }
    }

    fn text(&self) -> String {
        let plural = |count: u64, word: &str| match count {
            1 => format!("1 {word}"),
            _ => format!("{count} {word}s"),
        };
        format!(
            "Produced {} ({}) to {} in {:.2} s, {}.",
            plural(self.records, "record"),
            plural(self.bytes, "byte"),
            self.topic,
            self.seconds,
            plural(self.errors, "error")
        )
    }
}

fn build_producer(context: &Context, args: &ProduceArgs) -> Result<Producer, CliError> {
    let mut builder = context.client.producer().acks(match args.acks {
        AcksArg::All => Acks::All,
        AcksArg::Leader => Acks::Leader,
        AcksArg::None => Acks::None,
    });
    builder = builder.compression(match args.compression {
        CompressionArg::None => Compression::None,
        CompressionArg::Lz4 => Compression::Lz4,
        CompressionArg::Zstd => Compression::Zstd,
    });
    for (key, value) in context.global.settings() {
        builder = builder.set(key, value);
    }
    builder.build().map_err(|error| {
        client_error(error)
            .context("configuring the producer")
            .with_hint("check the -X settings (strata -X list shows the names)")
    })
}

fn to_record(args: &ProduceArgs, topic: &Arc<str>, parsed: ParsedRecord) -> Record {
    let mut record = Record::to(topic.clone());
    let key = parsed
        .key
        .or_else(|| args.key.clone().map(String::into_bytes));
    if let Some(key) = key {
        record = record.key(key);
    }
    if !(args.tombstone && parsed.value.is_empty()) {
        record = record.value(parsed.value);
    }
    for (key, value) in &args.headers {
        record = record.header(key.clone(), value.clone());
    }
    for (key, value) in parsed.headers {
        record = record.header(key, value);
    }
    if let Some(partition) = parsed.partition.or(args.partition) {
        record = record.partition(partition);
    }
    if let Some(timestamp_ms) = parsed.timestamp_ms {
        record = record.timestamp(timestamp_ms);
    }
    record
}

/// The bytes a record counts in the summary: key and value.
fn record_bytes(record: &Record) -> u64 {
    let length = |bytes: &Option<bytes::Bytes>| bytes.as_ref().map_or(0, |b| b.len() as u64);
    length(&record.key) + length(&record.value)
}

/// Queues `record`, waiting for deliveries to free buffer space when it is full. Errors
/// other than a full buffer come back as an already-failed delivery.
async fn enqueue(producer: &Producer, mut record: Record, completed: &Notify) -> Pending {
    loop {
        match producer.enqueue(record) {
            Ok(future) => return Pending::Queued(future),
            Err(error) if error.error.code_name() == "BUFFER_FULL" => {
                record = error.record;
                // Woken by the reporter as deliveries complete; the timeout covers records
                // that complete without a report in between (linger, retries).
                let _ = tokio::time::timeout(Duration::from_millis(10), completed.notified()).await;
            }
            Err(error) => return Pending::Failed(client_error(error.error)),
        }
    }
}

/// A record's delivery, in input order.
#[derive(Debug)]
enum Pending {
    Queued(DeliveryFuture),
    Failed(CliError),
}

/// Shared between the input loop and the reporter: how many records have settled
/// (delivered or failed), so a Ctrl-C can say how many are still in flight.
#[derive(Debug, Default)]
struct Progress {
    settled: AtomicU64,
    /// Woken on every settled record, for `enqueue` waiting on a full buffer.
    completed: Notify,
}

impl Progress {
    fn say_waiting(&self, sent: u64) {
        let in_flight = sent.saturating_sub(self.settled.load(Ordering::Relaxed));
        status!("waiting for {in_flight} records in flight; Ctrl-C again to exit now");
    }
}

/// How deliveries are reported.
#[derive(Debug, Clone, Copy)]
struct Reporting {
    format: OutputFormat,
    /// One report per delivered record (`-v`, or `--format json`).
    per_record: bool,
}

/// What the reporter counted.
#[derive(Debug, Default)]
struct Totals {
    delivered: u64,
    bytes: u64,
    failed: u64,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
    timestamp: i64,
}

/// Awaits deliveries in order, prints a report each when asked, and counts them.
async fn report_deliveries(
    mut queue: mpsc::Receiver<(u64, u64, Pending)>,
    reporting: Reporting,
    progress: Arc<Progress>,
) -> Totals {
    let mut out = Output::stdout();
    let mut totals = Totals::default();
    let mut reports_wanted = reporting.per_record;
    while let Some((number, bytes, pending)) = queue.recv().await {
        let result = match pending {
            Pending::Queued(future) => future.await.map_err(|error| client_error(error.error)),
            Pending::Failed(error) => Err(error),
        };
        progress.settled.fetch_add(1, Ordering::Relaxed);
        progress.completed.notify_one();
        match result {
            Ok(delivery) => {
                totals.delivered += 1;
                totals.bytes += bytes;
                if reports_wanted && report(&mut out, reporting.format, &delivery).is_err() {
                    reports_wanted = false; // stdout closed: records still get delivered
                }
            }
            Err(error) => {
                totals.failed += 1;
                error
                    .context(format!("record {number} not delivered"))
                    .report(reporting.format);
            }
        }
    }
    totals
}

fn report(out: &mut Output, format: OutputFormat, delivery: &Delivery) -> Result<(), OutputError> {
    match format {
        OutputFormat::Text => {
            status!(
                "Produced to partition {} at offset {} with timestamp {}.",
                delivery.partition,
                delivery.offset,
                delivery.timestamp
            );
            Ok(())
        }
        OutputFormat::Json => {
            let json = JsonReport {
                topic: &delivery.topic,
                partition: delivery.partition,
                offset: delivery.offset,
                timestamp: delivery.timestamp,
            };
            let line = serde_json::to_string(&json).unwrap_or_default();
            out.write(line.as_bytes())?;
            out.print("\n")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_is_one_sentence() {
        let summary = Summary {
            topic: "orders",
            records: 100_000,
            bytes: 588_890,
            seconds: 1.234,
            errors: 0,
        };
        assert_eq!(
            summary.text(),
            "Produced 100000 records (588890 bytes) to orders in 1.23 s, 0 errors."
        );
        let one = Summary {
            records: 1,
            bytes: 1,
            errors: 1,
            ..summary
        };
        assert_eq!(
            one.text(),
            "Produced 1 record (1 byte) to orders in 1.23 s, 1 error."
        );
    }
}
