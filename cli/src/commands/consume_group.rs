//! `strata consume TOPIC -g GROUP` (docs/CLI.md, "Consuming with a group"): the consumer joins
//! the group, which assigns it partitions of TOPIC, and prints records as plain consume does.
//!
//! Commit rule: an offset is committed only after its record has been written to stdout
//! and flushed. The consumer commits with `CommitMode::Marked` every
//! [`COMMIT_INTERVAL`], before a partition is given up in a rebalance and on close, and a
//! record is marked only once a flush has carried it to the reader ([`FlushedMarks`]). A
//! record printed but not flushed when a partition is revoked, or when the reader goes
//! away, is read again by whoever gets the partition next: at least once, never lost.
//!
//! `-o` gives the start only where the group has committed nothing (`auto.offset.reset`;
//! default `start`), so it never moves a group: that is `strata group seek`'s job. Stops
//! (`:M`, `:end`, `-e`, `@T1:T2`), `+N` and `-p` are per-partition plans that a
//! rebalance would cut short; with a group they are refused, and `-n` bounds the run.
//!
//! First Ctrl-C (or SIGTERM, SIGHUP, or `| head` closing stdout): stop fetching, flush,
//! commit what was flushed, leave the group, print a summary on stderr, exit 0. A second
//! Ctrl-C exits 130 at once, committing nothing more (`signals.rs`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use strata_client::{CommitMode, ConsumedRecord, Consumer, Offset};

use super::consume::{next_record, Printer, Wake};
use super::{client_error, Context};
use crate::args::ConsumeArgs;
use crate::exit::{CliError, ExitStatus};
use crate::offset_spec::{OffsetSpec, StartPosition, StopPosition};
use crate::output::{status, OutputError};
use crate::signals::Interrupts;

/// How often the group consumer commits what was flushed (docs/CLI.md, "Consuming with
/// a group").
pub const COMMIT_INTERVAL: Duration = Duration::from_secs(5);

/// How often a busy consumer flushes stdout so that what it printed can be marked: the
/// output is otherwise flushed only when no record is ready, which a steady stream may
/// never allow. Well within [`COMMIT_INTERVAL`], and one write system call a second.
const MARK_INTERVAL: Duration = Duration::from_secs(1);

/// The last record printed per partition since the last flush; marked for commit once a
/// flush has succeeded.
#[derive(Debug, Default)]
pub struct FlushedMarks {
    pending: BTreeMap<(String, i32), ConsumedRecord>,
}

impl FlushedMarks {
    /// `record` was written to the output buffer.
    pub fn printed(&mut self, record: &ConsumedRecord) {
        self.pending
            .insert((record.topic.to_string(), record.partition), record.clone());
    }

    /// Everything printed so far has reached the reader: mark it, for the partitions the
    /// consumer still owns (a revoked partition's commit is its new owner's business).
    pub fn flushed(&mut self, consumer: &Consumer) {
        if self.pending.is_empty() {
            return;
        }
        let assigned = consumer.assignment();
        for ((topic, partition), record) in std::mem::take(&mut self.pending) {
            if assigned.iter().any(|(t, p)| *t == topic && *p == partition) {
                consumer.mark(&record);
            }
        }
    }

    /// The reader went away: what was not flushed was not delivered.
    pub fn discard(&mut self) {
        self.pending.clear();
    }
}

/// The group's `auto.offset.reset` from `-o`, or why `-o`, `-e` or `-p` cannot go with `-g`.
pub fn group_start(args: &ConsumeArgs, spec: &OffsetSpec) -> Result<Offset, CliError> {
    if !args.partitions.is_empty() {
        return Err(CliError::usage(
            "-p cannot go with -g: the group assigns the partitions",
        ));
    }
    if spec.stop != StopPosition::Follow {
        return Err(CliError::usage(
            "with -g the group's partitions can move between consumers, so per-partition stops \
             (:M, :end, -e, @T1:T2) are not available; bound the run with -n",
        ));
    }
    Ok(match spec.start {
        StartPosition::Start => Offset::Earliest,
        StartPosition::End => Offset::Latest,
        StartPosition::Offset(offset) => Offset::At(offset),
        StartPosition::Tail(count) => Offset::Tail(count),
        StartPosition::Time(time) => Offset::Time(time),
        StartPosition::AfterStart(_) => {
            return Err(CliError::usage(
                "+N cannot go with -g; use start, end, N, -N or @T",
            ))
        }
    })
}

pub async fn run(
    context: &mut Context,
    args: &ConsumeArgs,
    group: &str,
    spec: &OffsetSpec,
    mut interrupts: Interrupts,
) -> Result<ExitStatus, CliError> {
    let printer = Printer::from_args(args)?;
    let start = group_start(args, spec)?;
    let topic = args.topic.as_str();
    let mut consumer = tokio::select! {
        joined = join(context, topic, group, start) => joined?,
        () = interrupts.requested() => return Ok(ExitStatus::Success),
    };
    status!("joined group {group}, reading {topic}");
    let mut marks = FlushedMarks::default();
    let mut reading = Reading {
        printer,
        limit: args.count.unwrap_or(u64::MAX),
        printed: 0,
    };
    let outcome = match reading
        .print_records(context, &mut consumer, &mut interrupts, &mut marks)
        .await
    {
        Ok(outcome) => outcome,
        Err(error) => {
            finish(context, consumer, &mut marks).await;
            return Err(
                client_error(error).context(format!("consuming {topic} in group {group:?}"))
            );
        }
    };
    let printed = reading.printed;
    let outcome = match outcome {
        Ok(interrupted) => context.out.flush().map(|()| interrupted),
        Err(error) => Err(error),
    };
    match &outcome {
        Ok(_) => marks.flushed(&consumer),
        Err(_) => marks.discard(),
    }
    let committed = commit_and_leave(consumer).await;
    let interrupted = match outcome {
        Ok(interrupted) => interrupted,
        Err(OutputError::Closed) => false,
        Err(OutputError::Io(error)) => {
            return Err(CliError::io("writing records to stdout", &error));
        }
    };
    if let Err(error) = committed {
        return Err(client_error(error).context(format!(
            "committing the offsets of group {group:?} before leaving"
        )));
    }
    if interrupted {
        status!("interrupted: consumed {printed} records from {topic}; offsets committed for group {group}");
    } else {
        status!("consumed {printed} records from {topic}; offsets committed for group {group}");
    }
    Ok(ExitStatus::Success)
}

/// A consumer in `group`, subscribed to `topic`, committing its marks every
/// [`COMMIT_INTERVAL`]; `-X` settings apply after the CLI's own.
async fn join(
    context: &Context,
    topic: &str,
    group: &str,
    start: Offset,
) -> Result<Consumer, CliError> {
    let mut builder = context
        .client
        .consumer()
        .topics([topic])
        .group(group)
        .start(start)
        .commit(CommitMode::Marked {
            interval: COMMIT_INTERVAL,
        });
    for (key, value) in context.global.settings() {
        builder = builder.set(key, value);
    }
    builder
        .build()
        .await
        .map_err(|error| client_error(error).context(format!("joining group {group:?} on {topic}")))
}

/// What the loop prints and how far it may go.
struct Reading {
    printer: Printer,
    limit: u64,
    printed: u64,
}

impl Reading {
    /// Prints records until `-n` is reached, the stream ends, Ctrl-C (`Ok(true)`) or the
    /// output fails; flushes stdout at least every [`MARK_INTERVAL`] and marks what it
    /// carried. `Err` is a consume error.
    async fn print_records(
        &mut self,
        context: &mut Context,
        consumer: &mut Consumer,
        interrupts: &mut Interrupts,
        marks: &mut FlushedMarks,
    ) -> Result<Result<bool, OutputError>, strata_client::Error> {
        let mut line = Vec::new();
        let mut last_mark = Instant::now();
        while self.printed < self.limit {
            let record =
                match next_record(consumer, &mut context.out, interrupts, Some(marks)).await {
                    Ok(Wake::Record(record)) => record,
                    Ok(Wake::Interrupted) => return Ok(Ok(true)),
                    Ok(Wake::End) => return Ok(Ok(false)),
                    Ok(Wake::Failed(error)) => return Err(error),
                    Err(error) => return Ok(Err(error)),
                };
            line.clear();
            self.printer.print(&record, &mut line);
            if let Err(error) = context.out.write(&line) {
                return Ok(Err(error));
            }
            marks.printed(&record);
            self.printed += 1;
            if last_mark.elapsed() >= MARK_INTERVAL {
                if let Err(error) = context.out.flush() {
                    return Ok(Err(error));
                }
                marks.flushed(consumer);
                last_mark = Instant::now();
            }
            if interrupts.is_requested() {
                return Ok(Ok(true));
            }
        }
        Ok(Ok(false))
    }
}

/// After a consume error: flush what can be, commit it, and leave the group.
async fn finish(context: &mut Context, consumer: Consumer, marks: &mut FlushedMarks) {
    match context.out.flush() {
        Ok(()) => marks.flushed(&consumer),
        Err(_) => marks.discard(),
    }
    if let Err(error) = commit_and_leave(consumer).await {
        status!("warning: leaving group: {error}");
    }
}

/// Commits the marks and waits for the answer, then closes (which leaves the group even
/// when the commit failed). The explicit commit comes first because `close()` of a
/// `Marked` consumer currently loses the marks before its final commit (it committed
/// nothing the CLI had printed); committing twice is harmless, the second sends nothing.
async fn commit_and_leave(mut consumer: Consumer) -> Result<(), strata_client::Error> {
    let committed = consumer.commit().await;
    let closed = consumer.close().await;
    committed.and(closed)
}
