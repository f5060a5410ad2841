//! The metadata log: [`MetadataRecord`]s stored in partition `__cluster_metadata-0` of the
//! data directory, replayed into a [`MetadataImage`] on open, with snapshots.
//!
//! Layout: an ordinary partition log (`broker::log`), so it gets the same segments, CRCs,
//! recovery and `dump-log` as any topic. Each controller operation is one record batch
//! (several records in one batch are atomic: recovery keeps whole batches only); each
//! record's value is the record's JSON, key none, timestamp the append time. Next to the
//! segments, `snapshot.json` (`snapshot.rs`) holds the image at some version.
//!
//! Durability: an append returns only once its batch is fsynced. The partition runs with
//! [`MetadataLog::log_config`] (flush always, no retention), re-imposed on open because
//! the log manager opens every existing partition with the broker's default config; the
//! append also waits for the fsync explicitly, so durability never rests on the policy.
//!
//! Retention never touches this log: besides the config, its high watermark is never
//! advanced, and the log layer only deletes segments below the high watermark. (Raft
//! will own truncation, after snapshots.)
//!
//! Invariant: every record in the log has been applied to the published image — the log
//! end offset equals the image version. An append that fails after writing breaks it;
//! [`MetadataLog::append`] then refuses further appends until a restart replays the log.

use std::sync::Arc;

use bytes::Bytes;
use strata_proto::record::Record;
use strata_proto::record::{decode_batch, BatchBuilder, BatchHeader, BatchSettings, DecodeLimits};
use strata_proto::types::{LeaderEpoch, Offset, PartitionId, TopicName};

use crate::log::{
    Clock, LogConfig, LogError, LogManager, PartitionLog, SystemClock, TopicPartition,
};

use super::error::ControllerError;
use super::image::MetadataImage;
use super::metadata_record::MetadataRecord;
use super::snapshot;
use super::state_machine::apply;
use super::topic_validation::METADATA_TOPIC;

/// How much of the log one replay read returns.
const REPLAY_READ_BYTES: usize = 1 << 20;

/// Settings of the metadata log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetadataLogOptions {
    /// Write a snapshot after this many applied records (at least 1).
    pub snapshot_every_records: u64,
}

impl Default for MetadataLogOptions {
    fn default() -> MetadataLogOptions {
        MetadataLogOptions {
            snapshot_every_records: 1000,
        }
    }
}

/// The metadata log of this node. See the module docs.
#[derive(Debug)]
pub struct MetadataLog {
    log: Arc<PartitionLog>,
    options: MetadataLogOptions,
    records_since_snapshot: u64,
}

impl MetadataLog {
    /// `__cluster_metadata-0`.
    pub fn partition() -> Result<TopicPartition, ControllerError> {
        let topic = TopicName::new(METADATA_TOPIC).map_err(|error| {
            ControllerError::invalid_record(format!("metadata topic name: {error}"))
        })?;
        Ok(TopicPartition::new(topic, PartitionId(0)))
    }

    /// The log settings the metadata partition is created with: fsync every append, keep
    /// everything, roll by size only.
    pub fn log_config() -> LogConfig {
        LogConfig {
            flush: crate::log::FlushPolicy::Always,
            retention_ms: None,
            retention_bytes: None,
            segment_ms: None,
            ..LogConfig::default()
        }
    }

    /// Opens (or creates) the metadata log in `logs` and rebuilds the image: the snapshot
    /// if there is a sound one, then every record after it.
    pub fn open(
        logs: &LogManager,
        options: MetadataLogOptions,
    ) -> Result<(MetadataLog, MetadataImage), ControllerError> {
        let partition = Self::partition()?;
        if logs.get(&partition).is_none() {
            refuse_without_metadata(logs, &partition)?;
        }
        let log = logs.get_or_create(&partition, Some(Self::log_config()))?;
        if let Err(error) = log.check_online() {
            return Err(ControllerError::MetadataDamaged {
                dir: log.dir().display().to_string(),
                reason: error.to_string(),
            });
        }
        // After a restart the log manager opened this partition with the broker's default
        // config (possibly `flush = interval`, retention on); put the metadata's back.
        if log.config() != Self::log_config() {
            log.set_config(Self::log_config());
        }
        let end_offset = log.log_end_offset().0;
        let start_offset = log.log_start_offset().0;
        let snapshot =
            snapshot::load(log.dir()).filter(|image| {
                let usable = image.version <= end_offset && image.version >= start_offset;
                if !usable {
                    tracing::warn!(snapshot_version = image.version, start_offset, end_offset,
                    "the metadata snapshot lies outside the metadata log; replaying the whole log");
                }
                usable
            });
        let snapshot_version = snapshot.as_ref().map_or(0, |image| image.version);
        if snapshot_version < start_offset {
            return Err(ControllerError::invalid_record(format!(
                "the metadata log starts at offset {start_offset} and no snapshot covers the records before it"
            )));
        }
        let mut image = snapshot.unwrap_or_default();
        let replayed = replay(&log, &mut image).map_err(|error| match error {
            ControllerError::InvalidRecord { reason } => ControllerError::MetadataDamaged {
                dir: log.dir().display().to_string(),
                reason,
            },
            other => other,
        })?;
        tracing::info!(
            dir = %log.dir().display(),
            snapshot_version,
            replayed,
            version = image.version,
            "replayed the metadata log"
        );
        let mut metadata_log = MetadataLog {
            log,
            options,
            records_since_snapshot: 0,
        };
        metadata_log.applied(&image, replayed);
        Ok((metadata_log, image))
    }

    /// The offset the next record will get.
    pub fn end_offset(&self) -> i64 {
        self.log.log_end_offset().0
    }

    /// Appends `records` as one batch at `expected_offset` (the image version they were
    /// applied at) and waits until it is fsynced.
    pub fn append(
        &mut self,
        records: &[MetadataRecord],
        expected_offset: i64,
    ) -> Result<(), ControllerError> {
        let end_offset = self.end_offset();
        if end_offset != expected_offset {
            return Err(ControllerError::Storage(LogError::Stopped {
                path: self.log.dir().to_path_buf(),
                reason: format!(
                    "the metadata log ends at {end_offset} but the image is at version \
                     {expected_offset}; restart to replay it"
                ),
            }));
        }
        let batch = encode_batch(records, SystemClock.now_ms())?;
        let info = self.log.append(&batch, LeaderEpoch(0))?;
        self.log.wait_durable(info.log_end_offset)?;
        // The recovery point follows every record: a metadata log found shorter at the
        // next start is damage (the broker refuses to start), never a torn tail cut away
        // with records the cluster already acted on.
        self.log.checkpoint()?;
        debug_assert_eq!(info.base_offset, Offset(expected_offset));
        Ok(())
    }

    /// Tells the log that `count` more records are applied in `image`; writes a snapshot
    /// when enough have accumulated. A failed snapshot is logged, not returned: the records
    /// are durable in the log, the snapshot only shortens the next replay.
    pub fn applied(&mut self, image: &MetadataImage, count: u64) {
        self.records_since_snapshot += count;
        if self.records_since_snapshot < self.options.snapshot_every_records.max(1) {
            return;
        }
        self.records_since_snapshot = 0;
        match snapshot::store(self.log.dir(), image) {
            Ok(()) => tracing::debug!(version = image.version, "wrote a metadata snapshot"),
            Err(error) => {
                tracing::warn!(%error, version = image.version, "cannot write the metadata snapshot")
            }
        }
    }
}

/// A data directory without a metadata log is a new cluster only when it holds no
/// partitions either: partition data without metadata means the metadata was lost, and
/// starting afresh would hide (and later delete) that data.
fn refuse_without_metadata(
    logs: &LogManager,
    metadata: &TopicPartition,
) -> Result<(), ControllerError> {
    let partitions = logs.partitions();
    let Some(first) = partitions.iter().find(|partition| *partition != metadata) else {
        return Ok(());
    };
    Err(ControllerError::MetadataDamaged {
        dir: logs.data_dir().join(metadata.dir_name()).display().to_string(),
        reason: format!(
            "it is missing, but the data directory holds {} partition directories (such as {first})",
            partitions.len()
        ),
    })
}

/// One batch holding `records`, in order.
fn encode_batch(records: &[MetadataRecord], now_ms: i64) -> Result<Vec<u8>, ControllerError> {
    let mut builder = BatchBuilder::new(BatchSettings::default());
    for record in records {
        let value = Bytes::from(record.to_json()?);
        builder
            .append(&Record::from_value(now_ms, value))
            .map_err(|error| ControllerError::invalid_record(error.to_string()))?;
    }
    let batch = builder
        .build()
        .map_err(|error| ControllerError::invalid_record(error.to_string()))?;
    Ok(batch.to_vec())
}

/// Decodes one stored metadata batch into its records and their offsets (also for tools
/// that print the metadata log).
pub fn decode_metadata_batch(
    batch: &[u8],
    limits: &DecodeLimits,
) -> Result<Vec<(Offset, MetadataRecord)>, ControllerError> {
    let decoded = decode_batch(batch, limits).map_err(|error| {
        ControllerError::invalid_record(format!("undecodable metadata batch: {error}"))
    })?;
    decoded
        .records
        .into_iter()
        .map(|stored| {
            let value = stored.value.ok_or_else(|| {
                ControllerError::invalid_record(format!(
                    "metadata record at offset {} has no value",
                    stored.offset
                ))
            })?;
            Ok((stored.offset, MetadataRecord::from_json(&value)?))
        })
        .collect()
}

/// Applies every record at or above `image.version` to `image`; returns how many.
fn replay(log: &PartitionLog, image: &mut MetadataImage) -> Result<u64, ControllerError> {
    let limits = DecodeLimits {
        batch_bytes_max: log.config().batch_bytes_max,
        ..DecodeLimits::default()
    };
    let end_offset = log.log_end_offset();
    let mut next = Offset(image.version);
    let mut replayed = 0;
    while next < end_offset {
        let read = log.read(next, REPLAY_READ_BYTES, None)?;
        if read.batches.is_empty() {
            break;
        }
        let mut rest: &[u8] = &read.batches;
        while !rest.is_empty() {
            let header = BatchHeader::parse(rest).map_err(|error| {
                ControllerError::invalid_record(format!("metadata batch header: {error}"))
            })?;
            let (batch, tail) = rest.split_at(header.total_bytes().min(rest.len()));
            rest = tail;
            for (offset, record) in decode_metadata_batch(batch, &limits)? {
                if offset.0 >= image.version {
                    apply(image, &record, offset.0)?;
                    replayed += 1;
                }
            }
            if header.next_offset() <= next {
                return Err(ControllerError::invalid_record(format!(
                    "metadata batch at {} does not advance past offset {next}",
                    header.base_offset
                )));
            }
            next = header.next_offset();
        }
    }
    Ok(replayed)
}
