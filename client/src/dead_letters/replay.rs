//! [`DeadLetters::replay`]: reads a range of the dead-letter topic and, unless it is a
//! dry run, produces the records it takes to the target and commits its progress.
//!
//! Flow: check the DLT's labels and the target; read the progress committed under
//! `strata-dlt-replay.<dlt>`; per partition, start at the later of the requested start
//! and that progress, and stop at the end offset seen now (or the requested stop). The
//! range is read with a consumer without a group, which commits nothing.
//!
//! Executing: each taken record is produced with `acks=all` (idempotent producer, its
//! partition number kept). Every `CHECKPOINT_RECORDS` records, and at the end, the
//! deliveries are awaited and only then is the progress committed, per partition up to
//! the first record that was not acknowledged. So a crash or a failed produce leaves the
//! rest for the next run (which may resend what was acknowledged after the last commit:
//! a duplicate, never a loss), and a run that finished does not resend anything.

use std::collections::BTreeMap;

use tokio_stream::StreamExt;

use super::options::{
    Replay, ReplayPartition, ReplayReport, ReplaySample, ReplayStart, ReplayTarget,
};
use super::replay_record::{replayed_record, TargetKind};
use super::{progress_group, DeadLetters, ReplayError};
use crate::admin::{Admin, GroupOffset, OffsetSpec};
use crate::error::{Error, ErrorCode, WriteOutcome};
use crate::producer::{Acks, DeliveryFuture, Producer};
use crate::record::{now_ms, ConsumedRecord, Offset};
use crate::retry_topics::headers::{header_text, ERROR_MESSAGE, ERROR_TYPE};

/// Deliveries awaited (and progress committed) at least this often.
const CHECKPOINT_RECORDS: usize = 500;

/// One partition's range and what was done in it.
#[derive(Debug, Clone)]
struct Range {
    partition: i32,
    start: i64,
    stop: i64,
    /// After the last record read.
    next: i64,
    /// After the last record whose delivery is settled, and committed.
    committed: i64,
    records: u64,
}

impl DeadLetters {
    /// Runs `replay` (see [`Replay`]); a dry run reads only. Refused, with nothing
    /// read or changed, when the topic is not this pair's dead-letter topic, when the
    /// target does not fit, or for the source topic without
    /// [`Replay::confirm_every_group`].
    pub async fn replay(&self, replay: &Replay) -> Result<ReplayReport, ReplayError> {
        let admin = self.client.admin();
        let dlt = self.topic();
        let description = admin.describe_topic(&dlt).await?;
        self.check(&description)?;
        let (target, kind, target_partitions) = self.target(&admin, replay).await?;
        if target == dlt {
            return Err(Error::InvalidConfig(format!("cannot replay {dlt} into itself")).into());
        }
        let group = progress_group(&dlt);
        let partitions = i32::try_from(description.partitions.len()).unwrap_or(0);
        let mut ranges = self.ranges(&admin, replay, &group, partitions).await?;
        if let Some(range) = ranges
            .iter()
            .find(|range| range.partition >= target_partitions)
        {
            return Err(ReplayError::TargetTooSmall {
                target,
                partitions: target_partitions,
                partition: range.partition,
            });
        }
        let producer = match replay.execute {
            true => Some(self.client.producer().acks(Acks::All).build()?),
            false => None,
        };
        let mut report = ReplayReport {
            dlt: dlt.clone(),
            target: target.clone(),
            executed: replay.execute,
            progress_group: group.clone(),
            examined: 0,
            matched: 0,
            by_error_type: BTreeMap::new(),
            sample: Vec::new(),
            partitions: Vec::new(),
        };
        let outcome = read(
            self,
            replay,
            &mut ranges,
            &mut report,
            producer.as_ref(),
            |record| replayed_record(record, &target, kind, now_ms()),
        )
        .await;
        if let Some(producer) = producer {
            producer.close().await?;
        }
        outcome?;
        report.partitions = ranges
            .iter()
            .map(|range| ReplayPartition {
                partition: range.partition,
                start_offset: range.start,
                next_offset: range.next,
                records: range.records,
            })
            .collect();
        Ok(report)
    }

    /// The target's name, kind and partition count.
    async fn target(
        &self,
        admin: &Admin,
        replay: &Replay,
    ) -> Result<(String, TargetKind, i32), ReplayError> {
        let (name, kind) = match &replay.target {
            ReplayTarget::Retry => (self.names.retry(0), TargetKind::RetryTopic),
            ReplayTarget::Source => {
                if !replay.every_group_confirmed {
                    return Err(ReplayError::ConfirmationRequired {
                        source_topic: self.names.source().to_owned(),
                        group: self.names.group().to_owned(),
                    });
                }
                (self.names.source().to_owned(), TargetKind::Other)
            }
            ReplayTarget::Topic(name) => (name.clone(), TargetKind::Other),
        };
        let description = match admin.describe_topic(&name).await {
            Err(error)
                if kind == TargetKind::RetryTopic
                    && error.code() == Some(ErrorCode::UnknownTopicOrPartition) =>
            {
                return Err(ReplayError::NoRetryTopic {
                    group: self.names.group().to_owned(),
                    topic: name,
                    reason: "it does not exist (a group that retries in place has none)".to_owned(),
                });
            }
            described => described?,
        };
        if kind == TargetKind::RetryTopic {
            self.check_retry_topic(&description)?;
        }
        let partitions = i32::try_from(description.partitions.len()).unwrap_or(i32::MAX);
        Ok((name, kind, partitions))
    }

    /// Each partition's range to read: from the later of the requested start and the
    /// committed progress, to the requested stop or the end offset seen now.
    async fn ranges(
        &self,
        admin: &Admin,
        replay: &Replay,
        group: &str,
        partitions: i32,
    ) -> Result<Vec<Range>, Error> {
        let dlt = self.topic();
        let wanted: Vec<(String, i32)> = (0..partitions).map(|p| (dlt.clone(), p)).collect();
        let committed = admin.committed_offsets(group, Some(&wanted)).await?;
        let mut ranges = Vec::new();
        for partition in 0..partitions {
            let (log_start, _) = admin
                .list_offsets(&dlt, partition, OffsetSpec::Earliest)
                .await?;
            let (end, _) = admin
                .list_offsets(&dlt, partition, OffsetSpec::Latest)
                .await?;
            let requested = match replay.start {
                ReplayStart::Start => log_start,
                ReplayStart::Offset(offset) => offset,
                ReplayStart::Time(time_ms) => {
                    let (offset, _) = admin
                        .list_offsets(&dlt, partition, OffsetSpec::Timestamp(time_ms))
                        .await?;
                    if offset < 0 {
                        end
                    } else {
                        offset
                    }
                }
            };
            let progress = committed
                .iter()
                .find(|entry| entry.partition == partition)
                .and_then(|entry| entry.offset)
                .unwrap_or(0);
            let start = requested.max(progress).max(log_start);
            let stop = replay.stop_offset.map_or(end, |stop| stop.min(end));
            if start < stop {
                ranges.push(Range {
                    partition,
                    start,
                    stop,
                    next: start,
                    committed: start,
                    records: 0,
                });
            }
        }
        Ok(ranges)
    }
}

/// Reads the ranges, counting, sampling and (with a producer) replaying the records the
/// filter takes, until every range is read or `max_records` are taken.
async fn read(
    dead_letters: &DeadLetters,
    replay: &Replay,
    ranges: &mut [Range],
    report: &mut ReplayReport,
    producer: Option<&Producer>,
    replayed: impl Fn(&ConsumedRecord) -> crate::record::Record,
) -> Result<(), Error> {
    if ranges.is_empty() {
        return Ok(());
    }
    let client = &dead_letters.client;
    let dlt = dead_letters.topic();
    let mut consumer = client
        .consumer()
        .assign(ranges.iter().map(|range| (dlt.as_str(), range.partition)))
        .start(Offset::Earliest)
        .build()
        .await?;
    for range in ranges.iter() {
        consumer
            .seek(&dlt, range.partition, Offset::At(range.start))
            .await?;
    }
    let mut pending: Vec<(i32, i64, DeliveryFuture)> = Vec::new();
    let wait = client.request_timeout();
    let full = |report: &ReplayReport| replay.max_records.is_some_and(|max| report.matched >= max);
    while !full(report) && ranges.iter().any(|range| range.next < range.stop) {
        let Ok(Some(record)) = tokio::time::timeout(wait, consumer.next()).await else {
            return Err(Error::Timeout {
                operation: "reading a dead-letter topic",
                after: wait,
                outcome: WriteOutcome::NotApplied,
                last_error: None,
            });
        };
        let record = record?;
        let Some(range) = ranges
            .iter_mut()
            .find(|range| range.partition == record.partition && record.offset >= range.next)
        else {
            continue;
        };
        if record.offset >= range.stop {
            range.next = range.stop;
            continue;
        }
        range.next = record.offset + 1;
        report.examined += 1;
        if !replay.filter.matches(&record) {
            continue;
        }
        range.records += 1;
        report.matched += 1;
        let error_type = header_text(&record, ERROR_TYPE).unwrap_or("-").to_owned();
        *report.by_error_type.entry(error_type.clone()).or_insert(0) += 1;
        if report.sample.len() < replay.sample_records {
            report.sample.push(ReplaySample {
                partition: record.partition,
                offset: record.offset,
                key: record
                    .key
                    .as_deref()
                    .map(|key| String::from_utf8_lossy(key).into_owned()),
                error_type,
                error_message: header_text(&record, ERROR_MESSAGE).map(str::to_owned),
            });
        }
        if let Some(producer) = producer {
            let delivery = producer
                .enqueue(replayed(&record))
                .map_err(|failed| failed.error)?;
            pending.push((record.partition, record.offset, delivery));
            if pending.len() >= CHECKPOINT_RECORDS {
                checkpoint(client, &dlt, &report.progress_group, ranges, &mut pending).await?;
            }
        }
    }
    consumer.close().await?;
    if producer.is_some() {
        checkpoint(client, &dlt, &report.progress_group, ranges, &mut pending).await?;
    }
    Ok(())
}

/// Awaits the pending deliveries, then commits each partition's progress up to its
/// first record that was not acknowledged (or to everything read); returns the first
/// delivery error after committing.
async fn checkpoint(
    client: &crate::Client,
    dlt: &str,
    group: &str,
    ranges: &mut [Range],
    pending: &mut Vec<(i32, i64, DeliveryFuture)>,
) -> Result<(), Error> {
    let mut failed: BTreeMap<i32, (i64, Error)> = BTreeMap::new();
    for (partition, offset, delivery) in pending.drain(..) {
        if let Err(error) = delivery.await {
            failed.entry(partition).or_insert((offset, error.error));
        }
    }
    let mut offsets = Vec::new();
    for range in ranges.iter_mut() {
        let progress = failed
            .get(&range.partition)
            .map_or(range.next, |(offset, _)| *offset);
        if progress > range.committed {
            offsets.push(GroupOffset::from((dlt, range.partition, progress)));
            range.committed = progress;
        }
    }
    for result in client.admin().alter_group_offsets(group, offsets).await? {
        result.result?;
    }
    match failed.into_values().next() {
        Some((_, error)) => Err(error),
        None => Ok(()),
    }
}
