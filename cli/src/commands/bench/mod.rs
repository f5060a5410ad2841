//! `strata bench produce|consume|e2e` (docs/CLI.md, "Benchmarks").
//!
//! Map:
//!
//! - [`args`]: the flags, normalised into a [`BenchSpec`]; [`params`]: the parameter line
//!   and JSON `params`, and which `-X` settings go where.
//! - [`setup`]: the topic, one client per producer and consumer, the delivery window.
//! - [`workload`]: values, keys, the `--rate` schedule, the e2e clock.
//! - [`producer`]: a generator thread per producer, and its [`collector`] task that
//!   measures each delivery; [`consumer`]: one task per consumer; [`e2e`]: both at once,
//!   the drain and the missing-record count.
//! - [`delay`]: `bench delay`, the lateness of delayed records (a run of its own).
//! - [`stats`]: counters and HdrHistograms; [`progress`]: the 5 s lines, the bar, the
//!   series and the warm-up cut; [`report`] and [`outcome`]: summaries, JSON, files.
//!
//! Flow of a run: prepare the topic and print the parameters; build every client before
//! the clock starts; start the clock (`Timing`), the progress task and the generators;
//! wait for the last delivery (or record); stop progress; summarise what came after the
//! warm-up; print; exit 1 if any record failed or went missing. The first Ctrl-C stops
//! sending (consume: reading), and the run is summarised as far as it got.

mod args;
mod collector;
mod consumer;
mod delay;
mod e2e;
mod group;
mod outcome;
mod params;
mod producer;
mod progress;
mod report;
mod setup;
mod stats;
mod workload;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use strata_client::Offset;
use tokio::sync::watch;
use tokio::time::Instant;

pub use args::BenchCommand;

use self::args::{BenchSpec, Mode, Stop};
use self::consumer::{Budget, ConsumerPlan, PartitionRange};
use self::outcome::{Measured, SideResult};
use self::params::{split_settings, Params, ProducerSettings, SplitSettings, TopicFacts};
use self::progress::{Goal, Watched};
use self::report::{GroupSummary, Verb};
use self::setup::ProducerLaunch;
use self::stats::Side;
use super::{client_error, Context};
use crate::exit::{CliError, ExitStatus};
use crate::output::status;
use crate::signals::Interrupts;
use crate::timestamp::now_ms;

/// The bound on a run by records: "forever" in time.
const UNBOUNDED: Duration = Duration::from_secs(365 * 24 * 3600);

pub async fn run(
    context: &mut Context,
    command: BenchCommand,
    mut interrupts: Interrupts,
) -> Result<ExitStatus, CliError> {
    let spec = match BenchSpec::try_from(command) {
        Ok(spec) => spec,
        Err(delay_args) => {
            return tokio::select! {
                status = delay::run(context, delay_args) => status,
                () = interrupts.requested() => Ok(ExitStatus::Interrupted),
            };
        }
    };
    let client_settings = context.global.settings();
    let settings = split_settings(spec.mode, &client_settings);
    let topic = tokio::select! {
        facts = setup::prepare_topic(context, &spec.run) => facts?,
        () = interrupts.requested() => return Ok(ExitStatus::Interrupted),
    };
    let launch = spec.producer.as_ref().map(|args| {
        let resolved = ProducerSettings::resolve(args, &settings.producer);
        let window = setup::window(
            args,
            &resolved,
            &spec.run.topic,
            spec.mode == Mode::EndToEnd,
        );
        ProducerLaunch {
            args: args.clone(),
            settings: settings.producer.clone(),
            resolved,
            window,
            records: match spec.stop() {
                Stop::Records(records) => records,
                Stop::Duration(_) => u64::MAX,
            },
            clock: None,
        }
    });
    let params = Params::new(
        &spec,
        &context.global.brokers,
        &topic,
        launch
            .as_ref()
            .map(|launch| (&launch.resolved, launch.window)),
        &client_settings,
    );
    status!("{}", params.line());
    let stopper = Stopper::install(interrupts);
    let measured = match (spec.mode, launch) {
        (Mode::Consume, _) if spec.group.is_some() => {
            run_group_consume(context, &spec, &settings, &topic, &stopper).await?
        }
        (Mode::Consume, _) => run_consume(context, &spec, &settings, &topic, &stopper).await?,
        (Mode::EndToEnd, Some(launch)) => {
            e2e::run(context, &spec, &settings, &topic, launch, &stopper).await?
        }
        (Mode::Produce, Some(launch)) => run_produce(context, &spec, launch, &stopper).await?,
        (_, None) => {
            return Err(CliError::failure(
                "INTERNAL",
                "a producing bench without producer flags",
            ))
        }
    };
    outcome::emit(context, &spec, params, measured)
}

/// When a run starts, stops measuring the warm-up, and stops sending.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub start: Instant,
    /// `start` on the wall clock, for `started_at` and consumer-perf-test's times.
    pub start_unix_ms: i64,
    pub warmup_end: Instant,
    /// Nothing is sent (or, for consume, read) at or after it.
    pub deadline: Instant,
}

impl Timing {
    fn starting_now(spec: &BenchSpec) -> Timing {
        let start = Instant::now();
        let warmup_end = start + spec.warmup();
        let deadline = match spec.stop() {
            Stop::Records(_) => warmup_end + UNBOUNDED,
            Stop::Duration(duration) => warmup_end + duration,
        };
        Timing {
            start,
            start_unix_ms: now_ms(),
            warmup_end,
            deadline,
        }
    }

    /// Where the measured part begins, on the wall clock.
    pub fn warmup_end_unix_ms(&self) -> i64 {
        let warmup = self.warmup_end.saturating_duration_since(self.start);
        self.start_unix_ms + i64::try_from(warmup.as_millis()).unwrap_or(i64::MAX / 2)
    }

    fn goal(&self, records: Option<u64>) -> Goal {
        match records {
            Some(records) => Goal::Records(records),
            None => Goal::Until(self.deadline),
        }
    }
}

/// Turns the first Ctrl-C into a stop of the generators. Consumers stop when told
/// ([`Stopper::stop_reading`]): `consume` does so on Ctrl-C or at its deadline, `e2e` only
/// after the drain, so records already sent are still received and not counted missing.
#[derive(Debug)]
pub struct Stopper {
    sending: Arc<AtomicBool>,
    reading: watch::Sender<bool>,
    interrupted: watch::Receiver<bool>,
    listener: tokio::task::JoinHandle<()>,
}

impl Stopper {
    fn install(mut interrupts: Interrupts) -> Stopper {
        let sending = Arc::new(AtomicBool::new(false));
        let (reading, _) = watch::channel(false);
        let (interrupt, interrupted) = watch::channel(false);
        let listener = {
            let sending = sending.clone();
            tokio::spawn(async move {
                interrupts.requested().await;
                status!("interrupted: stopping; the run so far is summarised");
                sending.store(true, Ordering::SeqCst);
                let _ = interrupt.send(true);
            })
        };
        Stopper {
            sending,
            reading,
            interrupted,
            listener,
        }
    }

    pub fn sending(&self) -> &Arc<AtomicBool> {
        &self.sending
    }

    pub fn reading(&self) -> watch::Receiver<bool> {
        self.reading.subscribe()
    }

    pub fn stop_reading(&self) {
        let _ = self.reading.send(true);
    }

    /// Stops the consumers at `deadline` or on Ctrl-C, whichever comes first.
    fn stop_reading_at(&self, deadline: Instant) -> tokio::task::JoinHandle<()> {
        let reading = self.reading.clone();
        let mut interrupted = self.interrupted.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => {}
                _ = interrupted.wait_for(|interrupted| *interrupted) => {}
            }
            let _ = reading.send(true);
        })
    }

    pub fn interrupted(&self) -> bool {
        self.sending.load(Ordering::SeqCst)
    }
}

impl Drop for Stopper {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

async fn run_produce(
    context: &Context,
    spec: &BenchSpec,
    launch: ProducerLaunch,
    stopper: &Stopper,
) -> Result<Measured, CliError> {
    let producers = setup::build_producers(&context.global, &launch).await?;
    let side = Side::new()?;
    let timing = Timing::starting_now(spec);
    let (done, done_receiver) = watch::channel(false);
    let progress = progress::spawn(
        Watched {
            primary: side.clone(),
            primary_verb: Verb::Sent,
            secondary: None,
            start: timing.start,
            warmup_end: timing.warmup_end,
            goal: timing.goal(spec.run.records),
        },
        done_receiver,
    );
    let running = setup::start_producers(
        &spec.run.topic,
        producers,
        &launch,
        &side,
        timing,
        stopper.sending(),
    )?;
    let mut finished_at = None;
    let mut failed = 0;
    for producer in running {
        let outcome = producer.finish().await;
        finished_at = finished_at.max(outcome.finished_at);
        failed += outcome.failed;
    }
    let _ = done.send(true);
    let progress = progress.await.map_err(task_failed)?;
    let warmup = progress.at_warmup_end.map(|(primary, _)| primary);
    Ok(Measured {
        primary: SideResult::collect(&side, warmup, timing.warmup_end, finished_at, true),
        secondary: None,
        series: progress.series,
        errors: failed,
        missing: None,
        timing,
        group: None,
    })
}

async fn run_consume(
    context: &Context,
    spec: &BenchSpec,
    settings: &SplitSettings,
    topic: &TopicFacts,
    stopper: &Stopper,
) -> Result<Measured, CliError> {
    let ranges = backlog(context, &spec.run.topic, topic).await?;
    let available: u64 = ranges.iter().map(|(_, records)| records).sum();
    if available == 0 {
        return Err(CliError::failure(
            "EMPTY_TOPIC",
            format!("topic {} has no records to consume", spec.run.topic),
        )
        .with_hint("fill it first, e.g. strata bench produce --records 1000000"));
    }
    let template = ConsumerPlan {
        topic: spec.run.topic.clone(),
        partitions: Vec::new(),
        start: Offset::Earliest,
        clock: None,
        budget: spec
            .run
            .records
            .map(|records| Arc::new(Budget::new(records))),
    };
    let partitions: Vec<PartitionRange> = ranges.into_iter().map(|(range, _)| range).collect();
    let shares = consumer::split_partitions(&partitions, usize::from(spec.consumers));
    let ready =
        setup::prepare_consumers(&context.global, &settings.consumer, shares, &template).await?;
    let side = Side::new()?;
    let timing = Timing::starting_now(spec);
    let expected = spec
        .run
        .records
        .map_or(available, |records| records.min(available));
    let (done, done_receiver) = watch::channel(false);
    let progress = progress::spawn(
        Watched {
            primary: side.clone(),
            primary_verb: Verb::Received,
            secondary: None,
            start: timing.start,
            warmup_end: timing.warmup_end,
            goal: Goal::Records(expected),
        },
        done_receiver,
    );
    let deadline_stop = stopper.stop_reading_at(timing.deadline);
    let tasks = setup::start_consumers(ready, &side, timing.warmup_end, &stopper.reading());
    let (mut finished_at, mut errors) = (None, 0);
    for task in tasks {
        let outcome = task.await.map_err(task_failed)?;
        finished_at = finished_at.max(outcome.finished_at);
        errors += outcome.errors;
    }
    deadline_stop.abort();
    let _ = done.send(true);
    let progress = progress.await.map_err(task_failed)?;
    let received = side.totals().records;
    if let Some(records) = spec.run.records {
        if received < records && !stopper.interrupted() {
            status!(
                "warning: exiting before consuming the expected number of records: {received} of {records} (the backlog had {available})"
            );
        }
    }
    let warmup = progress.at_warmup_end.map(|(primary, _)| primary);
    Ok(Measured {
        primary: SideResult::collect(&side, warmup, timing.warmup_end, finished_at, false),
        secondary: None,
        series: progress.series,
        errors,
        missing: None,
        timing,
        group: None,
    })
}

/// Each partition with records, bounded by the end offset seen now, and how many it holds.
async fn backlog(
    context: &Context,
    topic: &str,
    facts: &TopicFacts,
) -> Result<Vec<(PartitionRange, u64)>, CliError> {
    let mut ranges = Vec::new();
    for (partition, start, end) in log_bounds(context, topic, facts).await? {
        let records = u64::try_from(end.saturating_sub(start)).unwrap_or(0);
        if records > 0 {
            let range = PartitionRange {
                partition,
                stop_offset: Some(end),
            };
            ranges.push((range, records));
        }
    }
    Ok(ranges)
}

/// `(partition, log start, log end)` of every partition, as they are now.
async fn log_bounds(
    context: &Context,
    topic: &str,
    facts: &TopicFacts,
) -> Result<Vec<(i32, i64, i64)>, CliError> {
    let admin = context.client.admin();
    let mut bounds = Vec::new();
    for &partition in &facts.partitions {
        let lookup = |spec| admin.list_offsets(topic, partition, spec);
        let context_error =
            |error| client_error(error).context(format!("reading the offsets of {topic}"));
        let (start, _) = lookup(strata_client::OffsetSpec::Earliest)
            .await
            .map_err(context_error)?;
        let (end, _) = lookup(strata_client::OffsetSpec::Latest)
            .await
            .map_err(context_error)?;
        bounds.push((partition, start, end));
    }
    Ok(bounds)
}

/// `consume --group G --members N` (see [`group`]): the members connect before the clock
/// starts, and join the group when it has started, so the rebalance is measured.
async fn run_group_consume(
    context: &Context,
    spec: &BenchSpec,
    settings: &SplitSettings,
    topic: &TopicFacts,
    stopper: &Stopper,
) -> Result<Measured, CliError> {
    let Some(group_spec) = spec.group.clone() else {
        return Err(CliError::failure(
            "INTERNAL",
            "a group bench without a group",
        ));
    };
    let name = spec.run.topic.as_str();
    let bounds = log_bounds(context, name, topic).await?;
    let ranges = group::start_offsets(context, &group_spec.id, name, &bounds).await?;
    let available: u64 = ranges.iter().map(group::GroupRange::records).sum();
    if available == 0 {
        let logged: i64 = bounds.iter().map(|&(_, start, end)| end - start).sum();
        let error = if logged > 0 {
            CliError::failure(
                "NOTHING_TO_CONSUME",
                format!(
                    "group {} has already committed every record of {name} up to its end",
                    group_spec.id
                ),
            )
            .with_hint(format!(
                "use another --group, or start it over: strata group delete {}",
                group_spec.id
            ))
        } else {
            CliError::failure(
                "EMPTY_TOPIC",
                format!("topic {name} has no records to consume"),
            )
            .with_hint("fill it first, e.g. strata bench produce --records 1000000")
        };
        return Err(error);
    }
    let mut members = Vec::new();
    for number in 0..usize::from(group_spec.members) {
        let client =
            setup::connect(&context.global, format!("strata-bench-member-{number}")).await?;
        members.push(group::Member { number, client });
    }
    let side = Side::new()?;
    let timing = Timing::starting_now(spec);
    let ledger = Arc::new(group::GroupLedger::new(
        &ranges,
        topic.partitions.len(),
        members.len(),
        timing.start,
    ));
    let plan = group::MemberPlan {
        group: group_spec.id.clone(),
        plan: ConsumerPlan {
            topic: spec.run.topic.clone(),
            partitions: Vec::new(),
            start: Offset::Earliest,
            clock: None,
            budget: spec
                .run
                .records
                .map(|records| Arc::new(Budget::new(records))),
        },
        settings: settings.consumer.clone(),
        ledger: ledger.clone(),
    };
    let expected = spec
        .run
        .records
        .map_or(available, |records| records.min(available));
    let (done, done_receiver) = watch::channel(false);
    let progress = progress::spawn(
        Watched {
            primary: side.clone(),
            primary_verb: Verb::Received,
            secondary: None,
            start: timing.start,
            warmup_end: timing.warmup_end,
            goal: Goal::Records(expected),
        },
        done_receiver,
    );
    let deadline_stop = stopper.stop_reading_at(timing.deadline);
    let tasks: Vec<_> = members
        .into_iter()
        .map(|member| {
            tokio::spawn(group::run_member(
                member,
                plan.clone(),
                side.recorder(timing.warmup_end),
                stopper.reading(),
            ))
        })
        .collect();
    let (mut finished_at, mut errors) = (None, 0);
    let mut member_records = Vec::new();
    for task in tasks {
        let outcome = task.await.map_err(task_failed)?;
        finished_at = finished_at.max(outcome.finished_at);
        errors += outcome.errors;
        member_records.push(outcome.received.iter().sum());
    }
    deadline_stop.abort();
    let _ = done.send(true);
    let progress = progress.await.map_err(task_failed)?;
    let received = side.totals().records;
    if received < expected && !stopper.interrupted() {
        status!(
            "warning: exiting before consuming the expected number of records: {received} of {expected}"
        );
    }
    let (committed_records, partitions_committed_to_end) =
        group::committed_progress(context, &group_spec.id, name, &ranges).await?;
    let warmup = progress.at_warmup_end.map(|(primary, _)| primary);
    Ok(Measured {
        primary: SideResult::collect(&side, warmup, timing.warmup_end, finished_at, false),
        secondary: None,
        series: progress.series,
        errors,
        missing: None,
        timing,
        group: Some(GroupSummary {
            group: group_spec.id,
            members: group_spec.members,
            rebalance_ms: ledger
                .settled_after()
                .map(|after| after.as_secs_f64() * 1000.0),
            redelivered: ledger.redelivered(),
            partitions: ranges.iter().filter(|range| range.records() > 0).count(),
            partitions_committed_to_end,
            committed_records,
            member_records,
        }),
    })
}

fn task_failed(error: tokio::task::JoinError) -> CliError {
    CliError::failure("INTERNAL", format!("a bench task failed: {error}"))
}
