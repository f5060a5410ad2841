//! `strata produce TOPIC [VALUES...]` (docs/CLI.md, "Produce").
//!
//! Records come from the arguments or from stdin, cut by the `-f` input format (default
//! `%v\n`). Stdin is read on a plain thread (not tokio's blocking pool, which would keep the
//! process alive on a read that never returns after Ctrl-C) and handed over a bounded channel.
//!
//! Each record is `enqueue`d in input order, so the producer's per-partition ordering holds,
//! and its delivery future goes to a reporter task that awaits them in the same order and
//! prints one report per record: stderr in text mode (reports are metadata next to the
//! user's own data), stdout as JSON lines with `--format json` (then they are the result).
//! The first Ctrl-C stops reading input; records already queued are still delivered and
//! reported. Any record not delivered, or any input line that does not match the format,
//! makes the exit code 1, with a count on stderr.

use std::io::BufReader;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use strata_client::{Acks, Delivery, DeliveryFuture, Producer, Record};
use strata_proto::record::Compression;
use tokio::sync::{mpsc, Notify};

use super::{client_error, Context};
use crate::args::{AcksArg, CompressionArg, ProduceArgs};
use crate::exit::{CliError, ExitStatus};
use crate::format::Format;
use crate::format_input::{InputError, ParsedRecord};
use crate::output::{status, Output, OutputFormat};
use crate::signals::Interrupts;

/// Parsed input records waiting to be produced; bounds memory when stdin is fast.
const INPUT_QUEUE_RECORDS: usize = 1024;
/// Delivery futures waiting for their report.
const REPORT_QUEUE_RECORDS: usize = 16 * 1024;

type InputItem = Result<ParsedRecord, InputError>;

pub async fn run(
    context: &mut Context,
    args: ProduceArgs,
    mut interrupts: Interrupts,
) -> Result<ExitStatus, CliError> {
    let producer = build_producer(context, &args)?;
    let mut input = start_input(&args)?;
    let completed = std::sync::Arc::new(Notify::new());
    let (reports, report_queue) = mpsc::channel(REPORT_QUEUE_RECORDS);
    let reporter = tokio::spawn(report_deliveries(
        report_queue,
        context.format(),
        args.quiet,
        completed.clone(),
    ));
    let (mut sent, mut unparsed) = (0_u64, 0_u64);
    loop {
        let item = tokio::select! {
            item = input.recv() => item,
            () = interrupts.requested() => {
                status!("interrupted: delivering the {sent} records read so far");
                break;
            }
        };
        let Some(item) = item else { break };
        let parsed = match item {
            Ok(parsed) => parsed,
            Err(error) => {
                unparsed += 1;
                if let InputError::Io(error) = &error {
                    CliError::io("reading stdin", error).report(context.format());
                    break;
                }
                CliError::usage(format!("skipping input {error}")).report(context.format());
                continue;
            }
        };
        sent += 1;
        let future = enqueue(&producer, to_record(&args, parsed), &completed).await;
        if reports.send((sent, future)).await.is_err() {
            break; // the reporter stopped: stdout closed
        }
    }
    drop(reports);
    let close = producer.close().await;
    let failed = reporter.await.unwrap_or(sent);
    if let Err(error) = close {
        return Err(client_error(error).context("closing the producer"));
    }
    summarize(sent, failed, unparsed)
}

fn summarize(sent: u64, failed: u64, unparsed: u64) -> Result<ExitStatus, CliError> {
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
    for (key, value) in &context.global.client_settings {
        builder = builder.set(key, value);
    }
    builder.build().map_err(|error| {
        client_error(error)
            .context("configuring the producer")
            .with_hint("check the -X settings (Kafka producer names such as linger.ms, acks)")
    })
}

/// Starts the input: argument values, or stdin cut by the format.
fn start_input(args: &ProduceArgs) -> Result<mpsc::Receiver<InputItem>, CliError> {
    let (sender, receiver) = mpsc::channel(INPUT_QUEUE_RECORDS);
    if !args.values.is_empty() {
        if args.input_format.is_some() {
            return Err(CliError::usage(
                "-f applies to stdin; it cannot be combined with values given as arguments",
            ));
        }
        let values = args.values.clone();
        tokio::spawn(async move {
            for value in values {
                let parsed = ParsedRecord {
                    value: value.into_bytes(),
                    ..ParsedRecord::default()
                };
                if sender.send(Ok(parsed)).await.is_err() {
                    break;
                }
            }
        });
        return Ok(receiver);
    }
    let source = args
        .input_format
        .clone()
        .unwrap_or_else(|| "%v\\n".to_owned());
    let mut format = Format::parse(&source)
        .and_then(|format| format.for_input(&source))
        .map_err(CliError::usage)?;
    std::thread::spawn(move || {
        let mut reader = BufReader::new(std::io::stdin().lock());
        loop {
            let item = format.read_record(&mut reader).transpose();
            let Some(item) = item else { break };
            let stop = matches!(item, Err(InputError::Io(_)));
            if sender.blocking_send(item).is_err() || stop {
                break;
            }
        }
    });
    Ok(receiver)
}

fn to_record(args: &ProduceArgs, parsed: ParsedRecord) -> Record {
    let mut record = Record::to(args.topic.clone());
    let key = parsed
        .key
        .map(Bytes::from)
        .or_else(|| args.key.clone().map(Bytes::from));
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

#[derive(Serialize)]
struct JsonReport<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
    timestamp: i64,
}

/// Awaits deliveries in order and prints one report each; returns how many failed.
async fn report_deliveries(
    mut queue: mpsc::Receiver<(u64, Pending)>,
    format: OutputFormat,
    quiet: bool,
    completed: std::sync::Arc<Notify>,
) -> u64 {
    let mut out = Output::stdout();
    let mut failed = 0;
    while let Some((number, pending)) = queue.recv().await {
        let result = match pending {
            Pending::Queued(future) => future.await.map_err(|error| client_error(error.error)),
            Pending::Failed(error) => Err(error),
        };
        completed.notify_one();
        match result {
            Ok(delivery) if !quiet => {
                if report(&mut out, format, &delivery).is_err() {
                    break; // stdout closed: stop reporting, records still get delivered
                }
            }
            Ok(_) => {}
            Err(error) => {
                failed += 1;
                error
                    .context(format!("record {number} not delivered"))
                    .report(format);
            }
        }
    }
    failed
}

fn report(
    out: &mut Output,
    format: OutputFormat,
    delivery: &Delivery,
) -> Result<(), crate::output::OutputError> {
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
