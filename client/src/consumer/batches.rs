//! [`FetchedBatches`]: what one fetch of one partition returned, as whole batches not yet
//! decoded, and the lazy decoder the stream takes records from.
//!
//! The fetch loop only splits the answer into batches (a header walk) and moves on to the
//! next fetch; the stream opens a batch (framing, CRC, decompression, structure) when it
//! first reaches it and then decodes one record per `poll_next`. Keys, values and header
//! values are slices of the fetched buffer, so no payload is copied.
//!
//! A batch that fails its checks ends the chunk with an error that names the topic, the
//! partition and the batch's base offset: the records before it were already yielded,
//! none of its own are, and nothing after it is looked at.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use strata_proto::record::header::attributes;
use strata_proto::record::{BatchHeader, BatchRecords, DecodeLimits, RecordError};
use strata_proto::types::Offset as WireOffset;

use crate::connection::RESPONSE_BYTES_MAX;
use crate::error::Error;
use crate::record::ConsumedRecord;

/// The whole batches one fetch returned for one partition, read lazily.
#[derive(Debug)]
pub(crate) struct FetchedBatches {
    topic: Arc<str>,
    partition: i32,
    /// Records below this offset are skipped (a batch may start before it).
    fetch_offset: i64,
    high_watermark: i64,
    log_start_offset: i64,
    /// Batches not opened yet, in offset order.
    pending: VecDeque<Bytes>,
    /// The batch records are being taken from, and its leader epoch.
    current: Option<(BatchRecords, i32)>,
}

/// Where the fetched batches came from and what the partition looked like then.
#[derive(Debug, Clone)]
pub(crate) struct FetchedFrom {
    pub(crate) topic: Arc<str>,
    pub(crate) partition: i32,
    pub(crate) fetch_offset: i64,
    pub(crate) high_watermark: i64,
    pub(crate) log_start_offset: i64,
}

impl FetchedBatches {
    pub(crate) fn new(from: FetchedFrom, batches: Vec<Bytes>) -> FetchedBatches {
        FetchedBatches {
            topic: from.topic,
            partition: from.partition,
            fetch_offset: from.fetch_offset,
            high_watermark: from.high_watermark,
            log_start_offset: from.log_start_offset,
            pending: batches.into(),
            current: None,
        }
    }

    /// Whether nothing is left to look at. (A non-empty chunk may still yield no record:
    /// its rest may be control batches or records below the fetch offset.)
    pub(crate) fn is_empty(&self) -> bool {
        self.pending.is_empty()
            && self
                .current
                .as_ref()
                .is_none_or(|(records, _)| records.remaining() == 0)
    }

    /// The next record at or after the fetch offset, an error for a batch that fails its
    /// checks (after which the chunk is empty), or `None` when the chunk is used up.
    pub(crate) fn next_record(&mut self) -> Option<Result<ConsumedRecord, Error>> {
        loop {
            if let Some((records, leader_epoch)) = &mut self.current {
                let leader_epoch = *leader_epoch;
                match records.next() {
                    Some(Ok(stored)) => {
                        return Some(Ok(self.consumed(stored, leader_epoch)));
                    }
                    Some(Err(error)) => {
                        let base_offset = records.header().base_offset.0;
                        return Some(Err(self.fail(error, base_offset)));
                    }
                    None => self.current = None,
                }
            }
            let batch = self.pending.pop_front()?;
            if let Err(error) = self.open(&batch) {
                // The fetch loop split the batches by their length fields, so each holds
                // at least a header; -1 would mean that no longer holds.
                let base_offset =
                    BatchHeader::parse(&batch).map_or(-1, |header| header.base_offset.0);
                return Some(Err(self.fail(error, base_offset)));
            }
        }
    }

    /// Checks `batch` and makes it the current one, unless it is a control batch.
    fn open(&mut self, batch: &Bytes) -> Result<(), RecordError> {
        let limits = DecodeLimits {
            batch_bytes_max: RESPONSE_BYTES_MAX,
            ..DecodeLimits::default()
        };
        let mut records = BatchRecords::open(batch, &limits)?;
        let header = records.header();
        if header.attributes & attributes::CONTROL != 0 {
            return Ok(());
        }
        let leader_epoch = header.partition_leader_epoch.0;
        records.skip_to(WireOffset(self.fetch_offset))?;
        self.current = Some((records, leader_epoch));
        Ok(())
    }

    /// Empties the chunk (nothing after a bad batch is yielded) and says where the bad
    /// batch is.
    fn fail(&mut self, error: RecordError, base_offset: i64) -> Error {
        self.pending.clear();
        self.current = None;
        Error::Record(error.in_batch(&self.topic, self.partition, base_offset))
    }

    fn consumed(
        &self,
        stored: strata_proto::record::StoredRecord,
        leader_epoch: i32,
    ) -> ConsumedRecord {
        ConsumedRecord {
            topic: self.topic.clone(),
            partition: self.partition,
            offset: stored.offset.0,
            timestamp: stored.timestamp_ms,
            key: stored.key,
            value: stored.value,
            headers: stored
                .headers
                .into_iter()
                .map(|header| (header.key, header.value))
                .collect(),
            leader_epoch,
            high_watermark: self.high_watermark,
            log_start_offset: self.log_start_offset,
        }
    }
}

#[cfg(test)]
#[path = "batches_tests.rs"]
mod tests;
