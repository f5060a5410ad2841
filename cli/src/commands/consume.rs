//! `strata consume TOPIC` (docs/CLI.md, "Consume"); with `-g GROUP`, `consume_group.rs`.
//!
//! Flow: look up the topic's partitions and their offsets, resolve `-o` into a
//! [`PartitionPlan`] per partition (`consume_plan`), assign a consumer at those absolute
//! offsets, and print records until every partition reached its stop, `-n` records were
//! printed, stdout was closed, or Ctrl-C. Records go to stdout (JSON lines by default, or the
//! `-f` format); warnings and the Ctrl-C summary go to stderr. Output is flushed whenever the
//! consumer has nothing ready, so `consume | jq` sees records promptly without a write
//! system call per record.

use std::collections::BTreeMap;
use std::time::Duration;

use strata_client::{ConsumedRecord, Consumer, Offset, OffsetSpec as ListOffsetSpec};
use tokio_stream::StreamExt as _;

use super::consume_group::{self, FlushedMarks};
use super::consume_plan::{plan_partition, PartitionBounds, PartitionPlan};
use super::{client_error, Context};
use crate::args::ConsumeArgs;
use crate::exit::{CliError, ExitStatus};
use crate::format::Format;
use crate::json_record::{write_json_record, JsonOptions};
use crate::offset_spec::{OffsetSpec, StartPosition, StopPosition};
use crate::output::{status, stdout_reader_gone, Output, OutputError};
use crate::record_view::{HeaderView, RecordView};
use crate::signals::Interrupts;

/// How records are printed.
pub(super) enum Printer {
    Json(JsonOptions),
    Format(Format),
}

impl Printer {
    pub(super) fn from_args(args: &ConsumeArgs) -> Result<Printer, CliError> {
        match args.output_format.as_deref() {
            None | Some("json") => Ok(Printer::Json(JsonOptions {
                pretty: args.pretty,
                meta_only: args.meta_only,
            })),
            Some(format) => Format::parse(format)
                .map(Printer::Format)
                .map_err(CliError::usage),
        }
    }

    pub(super) fn print(&self, record: &ConsumedRecord, line: &mut Vec<u8>) {
        let view = RecordView {
            topic: &record.topic,
            partition: record.partition,
            offset: record.offset,
            timestamp_ms: record.timestamp,
            key: record.key.as_deref(),
            value: record.value.as_deref(),
            headers: record
                .headers
                .iter()
                .map(|(key, value)| HeaderView {
                    key,
                    value: value.as_deref(),
                })
                .collect(),
            leader_epoch: Some(record.leader_epoch),
            log_start_offset: Some(record.log_start_offset),
            high_watermark: Some(record.high_watermark),
        };
        match self {
            Printer::Json(options) => write_json_record(&view, *options, line),
            Printer::Format(format) => format.render(&view, line),
        }
    }
}

/// How long an idle consume waits between checks that stdout still has a reader.
const READER_CHECK_INTERVAL: Duration = Duration::from_millis(500);

pub async fn run(
    context: &mut Context,
    args: ConsumeArgs,
    mut interrupts: Interrupts,
) -> Result<ExitStatus, CliError> {
    let spec = offset_spec(&args)?;
    if let Some(group) = args.group.clone() {
        return consume_group::run(context, &args, &group, &spec, interrupts).await;
    }
    let printer = Printer::from_args(&args)?;
    let mut progress = Progress {
        open: BTreeMap::new(),
        printer,
        printed: 0,
        limit: args.count.unwrap_or(u64::MAX),
        line: Vec::new(),
    };
    for bound in partition_bounds(context, &args, &spec).await? {
        let plan = plan_partition(&spec, &bound);
        if plan.clamped_to_log_start {
            status!(
                "warning: partition {}: {} is below the log start; starting at offset {}",
                plan.partition,
                spec.start,
                plan.start_offset
            );
        }
        if !plan.is_done_before_start() {
            progress.open.insert(plan.partition, plan);
        }
    }
    if progress.is_finished() {
        return Ok(ExitStatus::Success);
    }
    let mut consumer = build_consumer(context, &args.topic, progress.open.values()).await?;
    let outcome = loop {
        let record = match next_record(&mut consumer, &mut context.out, &mut interrupts, None).await
        {
            Ok(Wake::Record(record)) => record,
            Ok(Wake::Interrupted) => break Ok(true),
            Ok(Wake::End) => break Ok(false),
            Ok(Wake::Failed(error)) => {
                let _ = context.out.flush();
                return Err(client_error(error).context(format!("consuming {}", args.topic)));
            }
            Err(error) => break Err(error),
        };
        match progress.accept(&record, &mut context.out) {
            Ok(Some(done)) => consumer.pause(&[(args.topic.as_str(), done)]),
            Ok(None) => {}
            Err(error) => break Err(error),
        }
        if progress.is_finished() {
            break Ok(false);
        }
        if interrupts.is_requested() {
            break Ok(true);
        }
    };
    let flushed = context.out.flush();
    drop(consumer);
    match flushed.and(outcome) {
        Ok(interrupted) => {
            if interrupted {
                let printed = progress.printed;
                status!(
                    "interrupted: consumed {printed} records from {}",
                    args.topic
                );
            }
            Ok(ExitStatus::Success)
        }
        Err(OutputError::Closed) => Ok(ExitStatus::Success),
        Err(OutputError::Io(error)) => Err(CliError::io("writing records to stdout", &error)),
    }
}

/// What can be refused without a broker: `-o` values that do not combine into one start
/// and one stop, a bad `-f`, and with `-g` what a group cannot do (`consume_group`).
pub fn check_before_connecting(args: &ConsumeArgs) -> Result<(), CliError> {
    Printer::from_args(args)?;
    let spec = offset_spec(args)?;
    if args.group.is_some() {
        consume_group::group_start(args, &spec)?;
    }
    Ok(())
}

/// The `-o` values combined, with `-e` applied.
fn offset_spec(args: &ConsumeArgs) -> Result<OffsetSpec, CliError> {
    let spec = OffsetSpec::combine(&args.offset).map_err(CliError::usage)?;
    Ok(if args.exit_at_end {
        spec.exit_at_end()
    } else {
        spec
    })
}

/// What is left to do: the partitions not yet at their stop, and the `-n` budget.
struct Progress {
    open: BTreeMap<i32, PartitionPlan>,
    printer: Printer,
    printed: u64,
    limit: u64,
    line: Vec<u8>,
}

impl Progress {
    fn is_finished(&self) -> bool {
        self.open.is_empty() || self.printed >= self.limit
    }

    /// Prints `record` unless it is past its partition's stop. Returns the partition when
    /// this record finished it, so the caller can stop fetching it.
    fn accept(
        &mut self,
        record: &ConsumedRecord,
        out: &mut Output,
    ) -> Result<Option<i32>, OutputError> {
        let Some(plan) = self.open.get(&record.partition) else {
            return Ok(None);
        };
        let past_stop = plan.is_past_stop(record.offset, record.timestamp);
        let finished = past_stop || plan.is_last_before_stop(record.offset);
        if !past_stop {
            self.line.clear();
            self.printer.print(record, &mut self.line);
            out.write(&self.line)?;
            self.printed += 1;
        }
        if finished {
            self.open.remove(&record.partition);
            return Ok(Some(record.partition));
        }
        Ok(None)
    }
}

/// Why [`next_record`] returned.
pub(super) enum Wake {
    Record(ConsumedRecord),
    Failed(strata_client::Error),
    /// The consumer stream ended.
    End,
    Interrupted,
}

/// The next record. When none is ready, flushes stdout first (so the reader sees what was
/// printed; a group consumer then marks those records for commit) and then waits,
/// checking now and then that stdout still has a reader.
pub(super) async fn next_record(
    consumer: &mut Consumer,
    out: &mut Output,
    interrupts: &mut Interrupts,
    marks: Option<&mut FlushedMarks>,
) -> Result<Wake, OutputError> {
    let wake = |next: Option<Result<ConsumedRecord, strata_client::Error>>| match next {
        Some(Ok(record)) => Wake::Record(record),
        Some(Err(error)) => Wake::Failed(error),
        None => Wake::End,
    };
    // `StreamExt::next` is cancel-safe, so polling it under a zero timeout loses nothing.
    if let Ok(next) = tokio::time::timeout(Duration::ZERO, consumer.next()).await {
        return Ok(wake(next));
    }
    out.flush()?;
    if let Some(marks) = marks {
        marks.flushed(consumer);
    }
    loop {
        tokio::select! {
            next = consumer.next() => return Ok(wake(next)),
            () = interrupts.requested() => return Ok(Wake::Interrupted),
            () = tokio::time::sleep(READER_CHECK_INTERVAL) => {
                if stdout_reader_gone() {
                    return Err(OutputError::Closed);
                }
            }
        }
    }
}

/// The selected partitions with the offsets `plan_partition` needs.
async fn partition_bounds(
    context: &Context,
    args: &ConsumeArgs,
    spec: &OffsetSpec,
) -> Result<Vec<PartitionBounds>, CliError> {
    let topic = &args.topic;
    let admin = context.client.admin();
    let context_error =
        |error| client_error(error).context(format!("reading the offsets of {topic}"));
    let description = admin.describe_topic(topic).await.map_err(context_error)?;
    let all = description.partitions;
    for wanted in &args.partitions {
        if !all.iter().any(|p| p.partition == *wanted) {
            return Err(CliError::failure(
                "UNKNOWN_TOPIC_OR_PARTITION",
                format!(
                    "topic {topic} has no partition {wanted} (it has {})",
                    all.len()
                ),
            ));
        }
    }
    let selected = all
        .into_iter()
        .filter(|p| args.partitions.is_empty() || args.partitions.contains(&p.partition));
    let mut bounds = Vec::new();
    for described in selected {
        let partition = described.partition;
        let lookup = |spec| admin.list_offsets(topic, partition, spec);
        let mut bound = PartitionBounds {
            partition,
            log_start_offset: described.log_start_offset,
            end_offset: described.high_watermark,
            ..PartitionBounds::default()
        };
        // -1: the broker did not report offsets in the description; ask for them.
        if bound.log_start_offset < 0 {
            bound.log_start_offset = lookup(ListOffsetSpec::Earliest)
                .await
                .map_err(context_error)?
                .0;
        }
        if bound.end_offset < 0 {
            bound.end_offset = lookup(ListOffsetSpec::Latest)
                .await
                .map_err(context_error)?
                .0;
        }
        if let StartPosition::Time(time) = spec.start {
            let (offset, _) = lookup(ListOffsetSpec::Timestamp(time))
                .await
                .map_err(context_error)?;
            bound.start_time_offset = (offset >= 0).then_some(offset);
        }
        if let StopPosition::Time(time) = spec.stop {
            let (offset, _) = lookup(ListOffsetSpec::Timestamp(time))
                .await
                .map_err(context_error)?;
            bound.stop_time_offset = (offset >= 0).then_some(offset);
        }
        bounds.push(bound);
    }
    Ok(bounds)
}

/// A consumer assigned to the planned partitions, each positioned at its start offset.
/// It is built at the log end (a cheap long poll) and then moved with `seek`, because the
/// builder's start position applies to all partitions alike.
async fn build_consumer<'a>(
    context: &Context,
    topic: &str,
    plans: impl Iterator<Item = &'a PartitionPlan> + Clone,
) -> Result<Consumer, CliError> {
    let error_context =
        |error| client_error(error).context(format!("starting a consumer on {topic}"));
    let mut builder = context
        .client
        .consumer()
        .assign(plans.clone().map(|plan| (topic.to_owned(), plan.partition)))
        .start(Offset::Latest);
    for (key, value) in context.global.settings() {
        builder = builder.set(key, value);
    }
    let mut consumer = builder.build().await.map_err(error_context)?;
    for plan in plans {
        consumer
            .seek(topic, plan.partition, Offset::At(plan.start_offset))
            .await
            .map_err(error_context)?;
    }
    Ok(consumer)
}
