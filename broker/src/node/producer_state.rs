//! Idempotent producers: per partition, the last batches of every producer id, so a
//! retried batch is answered with its original offset instead of being appended twice
//! (hostile input 22 of `docs/RELIABILITY.md`; Kafka's `ProducerStateManager`).
//!
//! Rules for a batch carrying `(producer_id ≥ 0, epoch, first..=last sequence)`:
//! - an epoch older than the one seen → `PRODUCER_FENCED`;
//! - a newer epoch must start at sequence 0;
//! - the same `(first, last)` as one of the last [`BATCHES_KEPT`] batches → duplicate:
//!   answer with that batch's base offset, append nothing;
//! - otherwise `first` must be the last sequence + 1, else `OUT_OF_ORDER_SEQUENCE`;
//! - a producer id never seen on this partition must start at sequence 0, else
//!   `UNKNOWN_PRODUCER_ID` (its earlier batches are not here, e.g. they were deleted by
//!   retention, or the first one was refused).
//!
//! Batches with `producer_id = -1` are not idempotent and skip every check. The table is
//! rebuilt from the log's batch headers when a partition is opened, so deduplication
//! survives restarts.

use std::collections::{HashMap, VecDeque};

use strata_proto::record::BatchHeader;
use strata_proto::types::Offset;

/// How many recent batches per producer are remembered (Kafka: 5, the maximum number of
/// in-flight requests with idempotence).
pub const BATCHES_KEPT: usize = 5;

/// One remembered batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BatchMeta {
    first_sequence: i32,
    last_sequence: i32,
    base_offset: Offset,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<BatchMeta>,
}

/// What to do with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Append it (then call [`ProducerStateTable::record`]).
    Append,
    /// Already appended at this base offset: answer with it, append nothing.
    Duplicate { base_offset: Offset },
    /// The producer epoch is older than the one this partition has seen.
    Fenced { current_epoch: i16 },
    /// A gap or reordering in the sequence numbers.
    OutOfOrder { expected: i32, actual: i32 },
    /// A producer this partition has no state for, not starting at sequence 0.
    UnknownProducer { actual: i32 },
}

/// The producer state of one partition.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ProducerStateTable {
    producers: HashMap<i64, ProducerEntry>,
}

fn last_sequence(header: &BatchHeader) -> i32 {
    header.base_sequence.wrapping_add(header.last_offset_delta)
}

impl ProducerStateTable {
    /// Decides what to do with `header`'s batch. Does not change the table.
    pub fn check(&self, header: &BatchHeader) -> SequenceCheck {
        if header.producer_id < 0 {
            return SequenceCheck::Append;
        }
        let first = header.base_sequence;
        let Some(entry) = self.producers.get(&header.producer_id) else {
            return if first == 0 {
                SequenceCheck::Append
            } else {
                SequenceCheck::UnknownProducer { actual: first }
            };
        };
        if header.producer_epoch < entry.epoch {
            return SequenceCheck::Fenced {
                current_epoch: entry.epoch,
            };
        }
        if header.producer_epoch > entry.epoch {
            return if first == 0 {
                SequenceCheck::Append
            } else {
                SequenceCheck::OutOfOrder {
                    expected: 0,
                    actual: first,
                }
            };
        }
        let last = last_sequence(header);
        if let Some(batch) = entry
            .batches
            .iter()
            .find(|batch| batch.first_sequence == first && batch.last_sequence == last)
        {
            return SequenceCheck::Duplicate {
                base_offset: batch.base_offset,
            };
        }
        let expected = entry
            .batches
            .back()
            .map_or(0, |batch| batch.last_sequence.wrapping_add(1));
        if first == expected {
            SequenceCheck::Append
        } else {
            SequenceCheck::OutOfOrder {
                expected,
                actual: first,
            }
        }
    }

    /// Remembers a batch appended at `base_offset` (after [`SequenceCheck::Append`], and
    /// while rebuilding from the log).
    pub fn record(&mut self, header: &BatchHeader, base_offset: Offset) {
        if header.producer_id < 0 {
            return;
        }
        let entry = self.producers.entry(header.producer_id).or_default();
        if header.producer_epoch != entry.epoch {
            entry.epoch = header.producer_epoch;
            entry.batches.clear();
        }
        entry.batches.push_back(BatchMeta {
            first_sequence: header.base_sequence,
            last_sequence: last_sequence(header),
            base_offset,
        });
        while entry.batches.len() > BATCHES_KEPT {
            entry.batches.pop_front();
        }
    }

    /// Appends the table to `out` for a producer snapshot (`node/producer_snapshots.rs`):
    /// `count u32`, then per producer id, ascending: `producer_id i64 | epoch i16 |
    /// batches u8 | batches × (first_sequence i32 | last_sequence i32 | base_offset i64)`,
    /// all big-endian.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let mut ids: Vec<&i64> = self.producers.keys().collect();
        ids.sort();
        out.extend_from_slice(&u32::try_from(ids.len()).unwrap_or(u32::MAX).to_be_bytes());
        for id in ids {
            let Some(entry) = self.producers.get(id) else {
                continue;
            };
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&entry.epoch.to_be_bytes());
            // At most BATCHES_KEPT (5) batches: always fits a byte.
            out.push(u8::try_from(entry.batches.len()).unwrap_or(u8::MAX));
            for batch in &entry.batches {
                out.extend_from_slice(&batch.first_sequence.to_be_bytes());
                out.extend_from_slice(&batch.last_sequence.to_be_bytes());
                out.extend_from_slice(&batch.base_offset.0.to_be_bytes());
            }
        }
    }

    /// Reads what [`ProducerStateTable::encode_into`] wrote from the front of `input`,
    /// advancing it. Refuses (with the reason) a truncated input, more than
    /// [`BATCHES_KEPT`] batches for a producer, or a producer id given twice; a count
    /// larger than the input allows is refused before anything is allocated for it.
    pub fn decode_from(input: &mut &[u8]) -> Result<ProducerStateTable, String> {
        let count = u32::from_be_bytes(take(input)?);
        const PRODUCER_BYTES_MIN: usize = 8 + 2 + 1;
        if count as usize > input.len() / PRODUCER_BYTES_MIN {
            return Err(format!(
                "{count} producers cannot fit in {} bytes",
                input.len()
            ));
        }
        let mut producers = HashMap::with_capacity(count as usize);
        for _ in 0..count {
            let id = i64::from_be_bytes(take(input)?);
            let epoch = i16::from_be_bytes(take(input)?);
            let [batch_count] = take::<1>(input)?;
            if usize::from(batch_count) > BATCHES_KEPT {
                return Err(format!("producer {id} has {batch_count} batches"));
            }
            let mut batches = VecDeque::with_capacity(usize::from(batch_count));
            for _ in 0..batch_count {
                batches.push_back(BatchMeta {
                    first_sequence: i32::from_be_bytes(take(input)?),
                    last_sequence: i32::from_be_bytes(take(input)?),
                    base_offset: Offset(i64::from_be_bytes(take(input)?)),
                });
            }
            if producers
                .insert(id, ProducerEntry { epoch, batches })
                .is_some()
            {
                return Err(format!("producer {id} is given twice"));
            }
        }
        Ok(ProducerStateTable { producers })
    }

    /// How many producer ids the table holds.
    pub fn producer_count(&self) -> usize {
        self.producers.len()
    }

    /// Forgets batches at or beyond `log_end_offset` (after a truncation).
    pub fn truncate(&mut self, log_end_offset: Offset) {
        for entry in self.producers.values_mut() {
            entry
                .batches
                .retain(|batch| batch.base_offset < log_end_offset);
        }
        self.producers.retain(|_, entry| !entry.batches.is_empty());
    }
}

/// The next `N` bytes of `input`, advancing it.
pub(super) fn take<const N: usize>(input: &mut &[u8]) -> Result<[u8; N], String> {
    let (head, rest) = input
        .split_first_chunk::<N>()
        .ok_or_else(|| format!("the snapshot ends {} bytes early", N - input.len().min(N)))?;
    *input = rest;
    Ok(*head)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use bytes::Bytes;
    use strata_proto::record::{BatchBuilder, BatchSettings, Record};

    use super::*;

    fn header(producer_id: i64, epoch: i16, base_sequence: i32, records: usize) -> BatchHeader {
        let settings = BatchSettings {
            producer_id,
            producer_epoch: epoch,
            base_sequence,
            ..BatchSettings::default()
        };
        let mut builder = BatchBuilder::new(settings);
        for _ in 0..records {
            builder
                .append(&Record::from_value(0, Bytes::from_static(b"v")))
                .unwrap();
        }
        BatchHeader::parse(&builder.build().unwrap()).unwrap()
    }

    #[test]
    fn sequences_must_be_contiguous_and_duplicates_return_the_original_offset() {
        let mut table = ProducerStateTable::default();
        let first = header(7, 0, 0, 3);
        assert_eq!(table.check(&first), SequenceCheck::Append);
        table.record(&first, Offset(10));
        assert_eq!(
            table.check(&first),
            SequenceCheck::Duplicate {
                base_offset: Offset(10)
            }
        );
        let gap = header(7, 0, 4, 1);
        assert_eq!(
            table.check(&gap),
            SequenceCheck::OutOfOrder {
                expected: 3,
                actual: 4
            }
        );
        let next = header(7, 0, 3, 2);
        assert_eq!(table.check(&next), SequenceCheck::Append);
        table.record(&next, Offset(13));
        assert_eq!(
            table.check(&header(7, 0, 3, 2)),
            SequenceCheck::Duplicate {
                base_offset: Offset(13)
            }
        );
    }

    #[test]
    fn epochs_fence_and_restart_sequences() {
        let mut table = ProducerStateTable::default();
        table.record(&header(7, 2, 0, 1), Offset(0));
        assert_eq!(
            table.check(&header(7, 1, 1, 1)),
            SequenceCheck::Fenced { current_epoch: 2 }
        );
        assert_eq!(table.check(&header(7, 3, 0, 1)), SequenceCheck::Append);
        assert!(matches!(
            table.check(&header(7, 3, 5, 1)),
            SequenceCheck::OutOfOrder { .. }
        ));
        assert_eq!(
            table.check(&header(8, 0, 9, 1)),
            SequenceCheck::UnknownProducer { actual: 9 }
        );
        assert_eq!(table.check(&header(-1, -1, -1, 1)), SequenceCheck::Append);
    }

    #[test]
    fn only_the_last_five_batches_are_remembered_and_truncation_forgets() {
        let mut table = ProducerStateTable::default();
        for i in 0..7 {
            table.record(&header(1, 0, i, 1), Offset(i64::from(i)));
        }
        assert!(matches!(
            table.check(&header(1, 0, 0, 1)),
            SequenceCheck::OutOfOrder { .. }
        ));
        assert_eq!(
            table.check(&header(1, 0, 6, 1)),
            SequenceCheck::Duplicate {
                base_offset: Offset(6)
            }
        );
        table.truncate(Offset(6));
        assert_eq!(table.check(&header(1, 0, 6, 1)), SequenceCheck::Append);
    }

    #[test]
    fn a_table_survives_encoding_and_every_truncation_of_it_is_refused() {
        let mut table = ProducerStateTable::default();
        for i in 0..7 {
            table.record(&header(1, 0, i, 2), Offset(i64::from(10 * i)));
        }
        table.record(&header(9, 4, 0, 1), Offset(99));
        let mut bytes = Vec::new();
        table.encode_into(&mut bytes);
        let mut input = &bytes[..];
        assert_eq!(ProducerStateTable::decode_from(&mut input).unwrap(), table);
        assert!(input.is_empty());
        for cut in 0..bytes.len() {
            let mut short = &bytes[..cut];
            assert!(
                ProducerStateTable::decode_from(&mut short).is_err(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn a_huge_producer_count_is_refused_before_allocating() {
        let mut input: &[u8] = &[0xff, 0xff, 0xff, 0xff, 0, 0];
        let refused = ProducerStateTable::decode_from(&mut input).unwrap_err();
        assert!(refused.contains("cannot fit"), "{refused}");
    }
}
