//! [`Accumulator`]: the records of one partition waiting to be sent, grouped into batches.
//!
//! One batch is open at a time. It is sealed (encoded, compressed, ready to send) when
//!
//! - the next record would push it past `batch.size` (that record opens the next batch; a
//!   single record larger than `batch.size` gets a batch of its own),
//! - it reached `batch.size`,
//! - `linger.ms` passed since its first record, or
//! - a flush or close asks for it.
//!
//! Sealed batches wait in FIFO order until the partition's sender has a free in-flight
//! slot. The accumulator does no I/O and reads no clock: callers pass `now`, so tests
//! drive it with Tokio's paused time.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use strata_proto::record::{BatchBuilder, BatchSettings, Compression};
use tokio::time::Instant;

use super::pending::Pending;
use crate::error::{Error, ErrorCode};

/// A batch ready to send: encoded bytes (producer id and sequence not yet stamped) and
/// the records it carries, in offset order.
#[derive(Debug)]
pub(crate) struct SealedBatch {
    pub(crate) bytes: Bytes,
    pub(crate) records: Vec<Pending>,
}

impl SealedBatch {
    /// The earliest delivery deadline of its records.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.records.iter().map(|pending| pending.deadline).min()
    }

    pub(crate) fn record_count(&self) -> i32 {
        i32::try_from(self.records.len()).unwrap_or(i32::MAX)
    }

    /// Fails every record of the batch with `error`.
    pub(crate) fn fail(self, error: &Error) {
        for pending in self.records {
            pending.complete(Err(error.duplicate()));
        }
    }
}

#[derive(Debug)]
struct OpenBatch {
    builder: BatchBuilder,
    records: Vec<Pending>,
    opened_at: Instant,
}

/// The batches of one partition.
#[derive(Debug)]
pub(crate) struct Accumulator {
    compression: Compression,
    batch_size_bytes: usize,
    max_request_size_bytes: usize,
    linger: Duration,
    open: Option<OpenBatch>,
    sealed: VecDeque<SealedBatch>,
}

impl Accumulator {
    pub(crate) fn new(
        compression: Compression,
        batch_size_bytes: usize,
        max_request_size_bytes: usize,
        linger: Duration,
    ) -> Accumulator {
        Accumulator {
            compression,
            batch_size_bytes,
            max_request_size_bytes,
            linger,
            open: None,
            sealed: VecDeque::new(),
        }
    }

    /// Adds a record to the open batch, sealing batches as sizes demand. A record that
    /// cannot be encoded or is larger than `max.request.size` completes with an error.
    pub(crate) fn append(&mut self, pending: Pending, now: Instant) {
        let Some(record) = pending.record() else {
            return;
        };
        let encoded = record.to_batch_record(pending.timestamp_ms);
        let size_alone = match self.new_builder().estimated_size_bytes_with(&encoded) {
            Ok(size) => size,
            Err(error) => return pending.complete(Err(Error::Record(error))),
        };
        if size_alone > self.max_request_size_bytes {
            let error = Error::broker(
                ErrorCode::MessageTooLarge,
                format!(
                    "record of {size_alone} bytes (as a batch) is larger than max.request.size ({} bytes)",
                    self.max_request_size_bytes
                ),
            );
            return pending.complete(Err(error));
        }
        let overflows = self.open.as_ref().is_some_and(|open| {
            !open.records.is_empty()
                && open
                    .builder
                    .estimated_size_bytes_with(&encoded)
                    .map_or(true, |size| size > self.batch_size_bytes)
        });
        if overflows {
            self.seal();
        }
        let compression = self.compression;
        let open = self.open.get_or_insert_with(|| OpenBatch {
            builder: BatchBuilder::new(BatchSettings {
                compression,
                ..BatchSettings::default()
            }),
            records: Vec::new(),
            opened_at: now,
        });
        if let Err(error) = open.builder.append(&encoded) {
            return pending.complete(Err(Error::Record(error)));
        }
        open.records.push(pending);
        if open.builder.estimated_size_bytes() >= self.batch_size_bytes {
            self.seal();
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

    /// Seals the open batch if it holds a record with a ticket at or below `ticket`
    /// (a flush waits for it).
    pub(crate) fn seal_for_flush(&mut self, ticket: u64) {
        let holds = self.open.as_ref().is_some_and(|open| {
            open.records
                .first()
                .is_some_and(|pending| pending.ticket <= ticket)
        });
        if holds {
            self.seal();
        }
    }

    /// Seals the open batch now (flush, close, overflow).
    pub(crate) fn seal(&mut self) {
        let Some(open) = self.open.take() else {
            return;
        };
        if open.records.is_empty() {
            return;
        }
        match open.builder.build() {
            Ok(bytes) => self.sealed.push_back(SealedBatch {
                bytes,
                records: open.records,
            }),
            Err(error) => {
                let error = Error::Record(error);
                for pending in open.records {
                    pending.complete(Err(error.duplicate()));
                }
            }
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
        let open = self
            .open
            .iter()
            .flat_map(|open| open.records.iter().map(|pending| pending.deadline));
        let sealed = self.sealed.front().and_then(SealedBatch::deadline);
        open.chain(sealed).min()
    }

    /// Fails every unsent record whose deadline passed (they never reached a broker).
    pub(crate) fn expire(&mut self, now: Instant, delivery_timeout: Duration) {
        let expired = |pending: &Pending| pending.deadline <= now;
        let timeout = || Error::Timeout {
            operation: "delivery",
            after: delivery_timeout,
            outcome: crate::error::WriteOutcome::NotApplied,
        };
        while self
            .sealed
            .front()
            .is_some_and(|batch| batch.records.iter().any(expired))
        {
            if let Some(batch) = self.sealed.pop_front() {
                batch.fail(&timeout());
            }
        }
        if self
            .open
            .as_ref()
            .is_some_and(|open| open.records.iter().any(expired))
        {
            if let Some(open) = self.open.take() {
                for pending in open.records {
                    pending.complete(Err(timeout()));
                }
            }
        }
    }

    /// Fails everything not yet sent with `error`.
    pub(crate) fn fail_all(&mut self, error: &Error) {
        self.seal();
        while let Some(batch) = self.sealed.pop_front() {
            batch.fail(error);
        }
    }

    fn new_builder(&self) -> BatchBuilder {
        BatchBuilder::new(BatchSettings {
            compression: self.compression,
            ..BatchSettings::default()
        })
    }
}

#[cfg(test)]
#[path = "accumulator_tests.rs"]
mod tests;
