//! [`Accumulator`]: the records of one partition waiting to be sent, grouped into batches.
//!
//! Records are encoded straight into the open batch's buffer by the thread that enqueues
//! them (under the topic's lock), so a record costs one copy of its bytes and no
//! allocation of its own. One batch is open at a time. It is sealed (encoded, compressed,
//! ready to send) when
//!
//! - the next record would push it past its size limit (that record opens the next batch;
//!   a single record larger than the limit gets a batch of its own),
//! - it reached its size limit,
//! - `linger.ms` passed since its first record, or
//! - a flush or close asks for it.
//!
//! The size limit adapts to the partition's pipeline (adaptive batching): while a request
//! slot is free it is `batch.size`, so a slow producer's records leave after `linger.ms`
//! in small batches; while every slot is taken ([`Accumulator::set_pipeline_full`]) a new
//! batch could not leave anyway, so the open batch keeps growing, up to
//! `max.request.size`, and goes as one large request when a slot frees. A busy producer
//! thus sends few large requests with the default settings instead of queueing many
//! `batch.size` ones behind the in-flight limit.
//!
//! Sealed batches wait in FIFO order until the partition's sender has a free in-flight
//! slot. The accumulator does no I/O and reads no clock: callers pass `now`, so tests
//! drive it with Tokio's paused time.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use strata_proto::record::{BatchBuilder, BatchSettings, Compression, RecordFields};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::completion::{BatchCompletion, BatchRecords, FlushTracker, Linked, MemoryShare};
use crate::error::{Error, ErrorCode};
use crate::record::Record;

/// The largest buffer reserved up front for a batch; bigger batches grow as they fill.
const BATCH_CAPACITY_MAX: usize = 1 << 20;
/// The smallest buffer reserved up front for a batch.
const BATCH_CAPACITY_MIN: usize = 4 << 10;
/// Most records a new batch reserves room for in its record list.
const RECORDS_RESERVED_MAX: usize = 1 << 16;

/// A record on its way into a batch.
#[derive(Debug)]
pub(crate) struct Incoming {
    pub(crate) record: Record,
    /// The create time stamped into the batch.
    pub(crate) timestamp_ms: i64,
    /// Its share of `buffer.memory`.
    pub(crate) memory: MemoryShare,
    /// When delivery gives up, for a record that waited for metadata (its `enqueue`
    /// time + `delivery.timeout.ms`); others take their batch's (Kafka's rule: the
    /// batch's creation + `delivery.timeout.ms`).
    pub(crate) deadline: Option<Instant>,
    /// Set when the record waited for metadata and already has a future of its own.
    pub(crate) link: Option<Linked>,
}

/// Where an appended record went.
#[derive(Debug)]
pub(crate) struct Placed {
    pub(crate) completion: Arc<BatchCompletion>,
    /// The record's offset delta in its batch.
    pub(crate) index: usize,
    /// A batch was opened or sealed: the partition's sender has something new to do.
    pub(crate) wake: bool,
}

/// A batch ready to send: encoded bytes (producer id and sequence not yet stamped) and
/// what it owes the callers of its records.
#[derive(Debug)]
pub(crate) struct SealedBatch {
    pub(crate) bytes: Bytes,
    pub(crate) records: BatchRecords,
    /// The earliest delivery deadline of its records.
    pub(crate) deadline: Instant,
}

impl SealedBatch {
    pub(crate) fn record_count(&self) -> i32 {
        i32::try_from(self.records.len()).unwrap_or(i32::MAX)
    }

    /// Fails every record of the batch with `error`.
    pub(crate) fn fail(self, error: &Error) {
        self.records.fail(error);
    }
}

#[derive(Debug)]
struct OpenBatch {
    builder: BatchBuilder,
    records: BatchRecords,
    opened_at: Instant,
    /// The earliest delivery deadline of its records.
    deadline: Instant,
}

/// The batches of one partition.
#[derive(Debug)]
pub(crate) struct Accumulator {
    compression: Compression,
    batch_size_bytes: usize,
    max_request_size_bytes: usize,
    linger: Duration,
    delivery_timeout: Duration,
    tracker: Arc<FlushTracker>,
    memory: Arc<Semaphore>,
    open: Option<OpenBatch>,
    sealed: VecDeque<SealedBatch>,
    /// Every in-flight slot of the partition is taken: batches grow past `batch.size`.
    pipeline_full: bool,
    /// The size of the last sealed batch: the next one reserves about as much, so a
    /// partition that sends small batches does not reserve `batch.size` each time.
    last_batch_bytes: usize,
    /// Records in the last sealed batch: the next one's record list reserves about as
    /// many, instead of growing (and moving) a dozen times on the way to thousands.
    last_batch_records: usize,
}

impl Accumulator {
    pub(crate) fn new(
        compression: Compression,
        batch_size_bytes: usize,
        max_request_size_bytes: usize,
        linger: Duration,
        delivery_timeout: Duration,
        tracker: Arc<FlushTracker>,
        memory: Arc<Semaphore>,
    ) -> Accumulator {
        Accumulator {
            compression,
            batch_size_bytes,
            max_request_size_bytes,
            linger,
            delivery_timeout,
            tracker,
            memory,
            open: None,
            sealed: VecDeque::new(),
            pipeline_full: false,
            last_batch_bytes: batch_size_bytes,
            last_batch_records: 0,
        }
    }

    /// Encodes a record into the open batch, sealing batches as sizes demand. A record
    /// that cannot be encoded or is larger than `max.request.size` is handed back with
    /// the error, and nothing changes.
    // The error hands the record back so the caller can return it in a `SendError`.
    #[allow(clippy::result_large_err)]
    pub(crate) fn append(&mut self, incoming: Incoming) -> Result<Placed, (Error, Incoming)> {
        let mut wake = false;
        let appended = {
            let record = &incoming.record;
            let fields = RecordFields {
                timestamp_ms: incoming.timestamp_ms,
                key: record.key.as_deref(),
                value: record.value.as_deref(),
                headers: record.headers.as_slice(),
            };
            self.encode(&fields, &mut wake)
        };
        if let Err(error) = appended {
            return Err((error, incoming));
        }
        let Some(open) = self.open.as_mut() else {
            // `encode` leaves a batch open on success.
            return Err((Error::Closed("producer"), incoming));
        };
        if let Some(deadline) = incoming.deadline {
            open.deadline = open.deadline.min(deadline);
        }
        let index = open
            .records
            .push(incoming.record, incoming.memory, incoming.link);
        let completion = open.records.completion().clone();
        if open.builder.estimated_size_bytes() >= self.size_limit_bytes() {
            self.seal();
            wake = true;
        }
        Ok(Placed {
            completion,
            index,
            wake,
        })
    }

    /// Encodes `fields` into the open batch (opening or sealing batches as needed).
    fn encode(
        &mut self,
        fields: &RecordFields<'_, (String, Option<Bytes>)>,
        wake: &mut bool,
    ) -> Result<(), Error> {
        let size_alone = BatchBuilder::size_alone(fields).map_err(Error::Record)?;
        if size_alone > self.max_request_size_bytes {
            return Err(Error::broker(
                ErrorCode::MessageTooLarge,
                format!(
                    "record of {size_alone} bytes (as a batch) is larger than max.request.size ({} bytes)",
                    self.max_request_size_bytes
                ),
            ));
        }
        let limit = self.size_limit_bytes();
        for _ in 0..2 {
            if self.open.is_none() {
                *wake = true;
                self.open = Some(self.new_batch(Instant::now()));
            }
            let Some(open) = self.open.as_mut() else {
                break;
            };
            if open
                .builder
                .append_within(fields, limit)
                .map_err(Error::Record)?
            {
                return Ok(());
            }
            // Full: this record opens the next batch.
            self.seal();
        }
        // An empty batch takes any record that fits max.request.size: not reached.
        Err(Error::Record(
            strata_proto::record::RecordError::InvalidRecord {
                reason: "record does not fit an empty batch".to_owned(),
            },
        ))
    }

    fn new_batch(&self, now: Instant) -> OpenBatch {
        let settings = BatchSettings {
            compression: self.compression,
            ..BatchSettings::default()
        };
        let capacity = (self.last_batch_bytes + self.last_batch_bytes / 8)
            .min(self.size_limit_bytes())
            .clamp(BATCH_CAPACITY_MIN, BATCH_CAPACITY_MAX);
        OpenBatch {
            builder: BatchBuilder::with_capacity(settings, capacity),
            records: BatchRecords::with_capacity(
                self.tracker.clone(),
                MemoryShare::empty(self.memory.clone()),
                (self.last_batch_records + self.last_batch_records / 8).min(RECORDS_RESERVED_MAX),
            ),
            opened_at: now,
            deadline: now + self.delivery_timeout,
        }
    }

    /// The size the open batch is sealed at: `batch.size`, or `max.request.size` while
    /// the pipeline is full (see the module docs).
    fn size_limit_bytes(&self) -> usize {
        if self.pipeline_full {
            self.max_request_size_bytes.max(self.batch_size_bytes)
        } else {
            self.batch_size_bytes
        }
    }

    /// Tells the accumulator whether every in-flight slot of the partition is taken.
    pub(crate) fn set_pipeline_full(&mut self, full: bool) {
        self.pipeline_full = full;
    }

    /// Seals the open batch if it may leave now: its linger time is over, or it grew past
    /// `batch.size` while the pipeline was full.
    pub(crate) fn seal_if_ready(&mut self, now: Instant) {
        let grown = self
            .open
            .as_ref()
            .is_some_and(|open| open.builder.estimated_size_bytes() >= self.batch_size_bytes);
        if grown {
            self.seal();
        } else {
            self.seal_if_lingered(now);
        }
    }

    /// When the open batch has lingered long enough.
    pub(crate) fn linger_deadline(&self) -> Option<Instant> {
        self.open.as_ref().map(|open| open.opened_at + self.linger)
    }

    /// Seals the open batch if its linger time is over.
    pub(crate) fn seal_if_lingered(&mut self, now: Instant) {
        if self
            .linger_deadline()
            .is_some_and(|deadline| deadline <= now)
        {
            self.seal();
        }
    }

    /// Seals the open batch if it holds a ticket at or below `ticket` (a flush waits for
    /// it).
    pub(crate) fn seal_for_flush(&mut self, ticket: u64) {
        if self
            .open
            .as_ref()
            .is_some_and(|open| open.records.min_ticket() <= ticket)
        {
            self.seal();
        }
    }

    /// Seals the open batch now (flush, close, overflow).
    pub(crate) fn seal(&mut self) {
        let Some(open) = self.open.take() else {
            return;
        };
        if open.records.is_empty() {
            return; // dropping it completes its ticket
        }
        let deadline = open.deadline;
        self.last_batch_bytes = open.builder.estimated_size_bytes();
        self.last_batch_records = open.records.len();
        match open.builder.build() {
            Ok(bytes) => self.sealed.push_back(SealedBatch {
                bytes,
                records: open.records,
                deadline,
            }),
            Err(error) => open.records.fail(&Error::Record(error)),
        }
    }

    /// The oldest sealed batch, to be sent next.
    pub(crate) fn pop_sealed(&mut self) -> Option<SealedBatch> {
        self.sealed.pop_front()
    }

    pub(crate) fn has_sealed(&self) -> bool {
        !self.sealed.is_empty()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.open.is_none() && self.sealed.is_empty()
    }

    /// The earliest delivery deadline of the batches [`Accumulator::expire`] looks at:
    /// the oldest sealed one and the open one (deadlines follow send order).
    pub(crate) fn earliest_deadline(&self) -> Option<Instant> {
        let open = self.open.as_ref().map(|open| open.deadline);
        let sealed = self.sealed.front().map(|batch| batch.deadline);
        open.into_iter().chain(sealed).min()
    }

    /// Fails every unsent record whose deadline passed (they never reached a broker), naming
    /// `last_error`, the partition's last retriable failure, if any.
    pub(crate) fn expire(
        &mut self,
        now: Instant,
        delivery_timeout: Duration,
        last_error: Option<&str>,
    ) {
        let timeout = || Error::Timeout {
            operation: "delivery",
            after: delivery_timeout,
            outcome: crate::error::WriteOutcome::NotApplied,
            last_error: last_error.map(str::to_owned),
        };
        while self
            .sealed
            .front()
            .is_some_and(|batch| batch.deadline <= now)
        {
            if let Some(batch) = self.sealed.pop_front() {
                batch.fail(&timeout());
            }
        }
        if self.open.as_ref().is_some_and(|open| open.deadline <= now) {
            if let Some(open) = self.open.take() {
                open.records.fail(&timeout());
            }
        }
    }

    /// Fails everything not yet sent with `error`.
    pub(crate) fn fail_all(&mut self, error: &Error) {
        if let Some(open) = self.open.take() {
            open.records.fail(error);
        }
        while let Some(batch) = self.sealed.pop_front() {
            batch.fail(error);
        }
    }
}

#[cfg(test)]
#[path = "accumulator_tests.rs"]
mod tests;
