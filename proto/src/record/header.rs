//! The fixed 61-byte record batch header (`docs/FORMAT.md`, "Header").
//!
//! ```text
//! pos  size  field
//!   0     8  base_offset            i64   stamped by the leader
//!   8     4  batch_length           i32   bytes after this field (= total size - 12)
//!  12     4  partition_leader_epoch i32   stamped by the leader
//!  16     1  magic                  i8    always 2
//!  17     4  crc                    u32   CRC-32 (IEEE) of bytes 21..end
//!  21     2  attributes             i16   bits 0-2 compression, 3 timestamp type,
//!                                         4 transactional, 5 control; 6-15 reserved (0)
//!  23     4  last_offset_delta      i32   record_count - 1 (more after compaction)
//!  27     8  base_timestamp         i64
//!  35     8  max_timestamp          i64
//!  43     8  producer_id            i64   -1 when not idempotent
//!  51     2  producer_epoch         i16
//!  53     4  base_sequence          i32
//!  57     4  record_count           i32
//!  61     …  records (possibly compressed as one block)
//! ```
//!
//! All integers are big-endian. The CRC leaves out the first 21 bytes so that a leader can
//! stamp `base_offset` and `partition_leader_epoch` into a validated batch without
//! recomputing it. Parsing a header never allocates.

use std::fmt;

use super::error::RecordError;
use crate::types::{LeaderEpoch, Offset};

/// Size of the fixed batch header; the records start here.
pub const BATCH_HEADER_BYTES: usize = 61;
/// `base_offset` + `batch_length`: the bytes not counted by `batch_length`.
pub const BATCH_LENGTH_PREFIX_BYTES: usize = 12;
/// The only batch format version Strata reads and writes (Kafka's RecordBatch v2).
pub const MAGIC: i8 = 2;

pub(crate) const BASE_OFFSET_POS: usize = 0;
pub(crate) const BATCH_LENGTH_POS: usize = 8;
pub(crate) const LEADER_EPOCH_POS: usize = 12;
pub(crate) const MAGIC_POS: usize = 16;
pub(crate) const CRC_POS: usize = 17;
/// The CRC covers `attributes` up to the end of the batch.
pub const CRC_START_POS: usize = 21;
pub(crate) const ATTRIBUTES_POS: usize = 21;
pub(crate) const LAST_OFFSET_DELTA_POS: usize = 23;
pub(crate) const BASE_TIMESTAMP_POS: usize = 27;
pub(crate) const MAX_TIMESTAMP_POS: usize = 35;
pub(crate) const PRODUCER_ID_POS: usize = 43;
pub(crate) const PRODUCER_EPOCH_POS: usize = 51;
pub(crate) const BASE_SEQUENCE_POS: usize = 53;
pub(crate) const RECORD_COUNT_POS: usize = 57;

/// Compression of the records section (attribute bits 0–2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    #[default]
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// The attribute bits of this codec.
    pub fn id(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// The codec for attribute bits 0–2, if the id is known at all.
    pub fn from_id(id: i16) -> Option<Compression> {
        match id {
            0 => Some(Compression::None),
            1 => Some(Compression::Gzip),
            2 => Some(Compression::Snappy),
            3 => Some(Compression::Lz4),
            4 => Some(Compression::Zstd),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where the records' timestamps come from (attribute bit 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TimestampType {
    /// The producer's clock: each record carries its own timestamp.
    #[default]
    CreateTime,
    /// The broker's clock at append: `max_timestamp` is the timestamp of every record.
    LogAppendTime,
}

/// Attribute bits.
pub mod attributes {
    pub const COMPRESSION_MASK: i16 = 0b111;
    pub const TIMESTAMP_TYPE_LOG_APPEND: i16 = 1 << 3;
    pub const TRANSACTIONAL: i16 = 1 << 4;
    pub const CONTROL: i16 = 1 << 5;
    /// Bits 6–15 must be zero.
    pub const RESERVED_MASK: i16 = !0b11_1111;
}

/// The decoded fixed header of one batch. Parsing checks only that the 61 bytes are there;
/// [`BatchHeader::check_framing`] and the validators decide whether the values make sense.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: Offset,
    pub batch_length: i32,
    pub partition_leader_epoch: LeaderEpoch,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

fn be_i64(buf: &[u8], pos: usize) -> i64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&buf[pos..pos + 8]);
    i64::from_be_bytes(bytes)
}

fn be_i32(buf: &[u8], pos: usize) -> i32 {
    let mut bytes = [0u8; 4];
    bytes.copy_from_slice(&buf[pos..pos + 4]);
    i32::from_be_bytes(bytes)
}

fn be_i16(buf: &[u8], pos: usize) -> i16 {
    i16::from_be_bytes([buf[pos], buf[pos + 1]])
}

/// The offset after the last whole batch of `data`, batches laid end to end as a fetch
/// returns them; `None` when `data` starts with no whole batch whose header reads. The
/// walk stops at the first batch that is cut off, claims a length below the header's, or
/// whose magic is not [`MAGIC`]. Broker and client both move a fetch session on with it.
pub fn next_offset_after(data: &[u8]) -> Option<Offset> {
    let mut next = None;
    let mut position = 0_usize;
    while let Some(rest) = data.get(position..) {
        let Ok(header) = BatchHeader::parse(rest) else {
            break;
        };
        let long_enough = usize::try_from(header.batch_length)
            .is_ok_and(|length| length >= BATCH_HEADER_BYTES - BATCH_LENGTH_PREFIX_BYTES);
        if !long_enough || header.magic != MAGIC || header.total_bytes() > rest.len() {
            break;
        }
        next = Some(header.next_offset());
        position += header.total_bytes();
    }
    next
}

impl BatchHeader {
    /// Reads the fixed header from the start of `buf`.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, RecordError> {
        if buf.len() < BATCH_HEADER_BYTES {
            return Err(RecordError::Truncated {
                needed: BATCH_HEADER_BYTES,
                available: buf.len(),
            });
        }
        // Indexing below is within the 61 bytes checked above.
        Ok(BatchHeader {
            base_offset: Offset(be_i64(buf, BASE_OFFSET_POS)),
            batch_length: be_i32(buf, BATCH_LENGTH_POS),
            partition_leader_epoch: LeaderEpoch(be_i32(buf, LEADER_EPOCH_POS)),
            magic: buf[MAGIC_POS] as i8,
            crc: be_i32(buf, CRC_POS) as u32,
            attributes: be_i16(buf, ATTRIBUTES_POS),
            last_offset_delta: be_i32(buf, LAST_OFFSET_DELTA_POS),
            base_timestamp: be_i64(buf, BASE_TIMESTAMP_POS),
            max_timestamp: be_i64(buf, MAX_TIMESTAMP_POS),
            producer_id: be_i64(buf, PRODUCER_ID_POS),
            producer_epoch: be_i16(buf, PRODUCER_EPOCH_POS),
            base_sequence: be_i32(buf, BASE_SEQUENCE_POS),
            record_count: be_i32(buf, RECORD_COUNT_POS),
        })
    }

    /// Total size of the batch in bytes (header included), as its length field claims.
    /// Only meaningful after [`BatchHeader::check_framing`] succeeded.
    pub fn total_bytes(&self) -> usize {
        self.batch_length.max(0) as usize + BATCH_LENGTH_PREFIX_BYTES
    }

    /// The offset of the batch's last record.
    pub fn last_offset(&self) -> Offset {
        self.base_offset.plus(i64::from(self.last_offset_delta))
    }

    /// The offset after the batch's last record.
    pub fn next_offset(&self) -> Offset {
        self.last_offset().plus(1)
    }

    pub fn compression(&self) -> Option<Compression> {
        Compression::from_id(self.attributes & attributes::COMPRESSION_MASK)
    }

    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & attributes::TIMESTAMP_TYPE_LOG_APPEND != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// The 61 header bytes of these values, the inverse of [`BatchHeader::parse`]. The
    /// `crc` field is written as given: callers that changed anything after `magic` compute
    /// it over the whole batch afterwards ([`compute_crc`]).
    pub fn encode(&self) -> [u8; BATCH_HEADER_BYTES] {
        let mut out = [0u8; BATCH_HEADER_BYTES];
        let fields: [(usize, &[u8]); 13] = [
            (BASE_OFFSET_POS, &self.base_offset.0.to_be_bytes()),
            (BATCH_LENGTH_POS, &self.batch_length.to_be_bytes()),
            (
                LEADER_EPOCH_POS,
                &self.partition_leader_epoch.0.to_be_bytes(),
            ),
            (MAGIC_POS, &self.magic.to_be_bytes()),
            (CRC_POS, &self.crc.to_be_bytes()),
            (ATTRIBUTES_POS, &self.attributes.to_be_bytes()),
            (LAST_OFFSET_DELTA_POS, &self.last_offset_delta.to_be_bytes()),
            (BASE_TIMESTAMP_POS, &self.base_timestamp.to_be_bytes()),
            (MAX_TIMESTAMP_POS, &self.max_timestamp.to_be_bytes()),
            (PRODUCER_ID_POS, &self.producer_id.to_be_bytes()),
            (PRODUCER_EPOCH_POS, &self.producer_epoch.to_be_bytes()),
            (BASE_SEQUENCE_POS, &self.base_sequence.to_be_bytes()),
            (RECORD_COUNT_POS, &self.record_count.to_be_bytes()),
        ];
        for (pos, bytes) in fields {
            if let Some(field) = out.get_mut(pos..pos + bytes.len()) {
                field.copy_from_slice(bytes);
            }
        }
        out
    }

    /// Checks what can be checked without the records: magic, that the length field
    /// describes at least a header and at most `batch_bytes_max`, the count fits the
    /// delta (`record_count ≤ last_offset_delta + 1`; equal unless the cleaner compacted
    /// the batch), and no reserved attribute bit is set. Cheap; used by every reader before it
    /// trusts `batch_length` to size a read.
    pub fn check_framing(&self, batch_bytes_max: usize) -> Result<(), RecordError> {
        if self.magic != MAGIC {
            return Err(RecordError::UnsupportedMagic { magic: self.magic });
        }
        let length = i64::from(self.batch_length);
        let minimum = (BATCH_HEADER_BYTES - BATCH_LENGTH_PREFIX_BYTES) as i64;
        if length < minimum {
            return Err(RecordError::InvalidRecord {
                reason: format!("batch_length {length} is smaller than the header"),
            });
        }
        let total = length as u64 + BATCH_LENGTH_PREFIX_BYTES as u64;
        if total > batch_bytes_max as u64 {
            return Err(RecordError::MessageTooLarge {
                size: total,
                max: batch_bytes_max as u64,
            });
        }
        if self.attributes & attributes::RESERVED_MASK != 0 {
            return Err(RecordError::InvalidRecord {
                reason: format!("reserved attribute bits set: {:#06x}", self.attributes),
            });
        }
        if self.compression().is_none() {
            return Err(RecordError::InvalidRecord {
                reason: format!(
                    "unknown compression id {}",
                    self.attributes & attributes::COMPRESSION_MASK
                ),
            });
        }
        // Kafka's rule for stored batches: the cleaner may drop records (even all of
        // them) but keeps `last_offset_delta`, so the count may be below delta + 1.
        let count_fits = i64::from(self.record_count) <= i64::from(self.last_offset_delta) + 1;
        if self.record_count < 0 || self.last_offset_delta < 0 || !count_fits {
            return Err(RecordError::InvalidRecord {
                reason: format!(
                    "record_count {} does not match last_offset_delta {}",
                    self.record_count, self.last_offset_delta
                ),
            });
        }
        Ok(())
    }
}

/// CRC-32 (IEEE) of a whole encoded batch, over `attributes..end`.
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32fast::hash(batch.get(CRC_START_POS..).unwrap_or(&[]))
}

/// Checks a whole stored batch (exactly `batch.len()` bytes) the way recovery and
/// `dump-log` do: framing, that the length field matches the bytes given, and the CRC.
/// Does not look inside the records. Returns the parsed header.
pub fn check_stored_batch(
    batch: &[u8],
    batch_bytes_max: usize,
) -> Result<BatchHeader, RecordError> {
    let header = BatchHeader::parse(batch)?;
    header.check_framing(batch_bytes_max)?;
    if header.total_bytes() != batch.len() {
        return Err(RecordError::InvalidRecord {
            reason: format!(
                "batch_length says {} bytes but {} are present",
                header.total_bytes(),
                batch.len()
            ),
        });
    }
    let actual = compute_crc(batch);
    if actual != header.crc {
        return Err(RecordError::CrcMismatch {
            expected: header.crc,
            actual,
        });
    }
    Ok(header)
}

/// Writes `crc` into the CRC field of an encoded batch (used after building it).
/// The CRC of a batch whose header changed from `old_header` to `new_header` (both the
/// full [`BATCH_HEADER_BYTES`]) while its `records_bytes` after the header stayed the same,
/// from the old CRC alone: no pass over the records.
///
/// CRC-32 is linear: `crc(X ‖ R) = shift(crc(X), |R|) ⊕ crc(R)`, so the new CRC is the
/// old one XOR the shifted difference of the header parts it covers (`crc32fast`'s
/// `combine` does the shift in O(log |R|)).
pub fn recompute_crc_for_header(
    old_crc: u32,
    old_header: &[u8],
    new_header: &[u8],
    records_bytes: usize,
) -> u32 {
    let covered = CRC_START_POS..BATCH_HEADER_BYTES;
    let old = crc32fast::hash(old_header.get(covered.clone()).unwrap_or(&[]));
    let new = crc32fast::hash(new_header.get(covered).unwrap_or(&[]));
    let mut shifted = crc32fast::Hasher::new_with_initial(old ^ new);
    shifted.combine(&crc32fast::Hasher::new_with_initial_len(
        0,
        records_bytes as u64,
    ));
    old_crc ^ shifted.finalize()
}

pub(crate) fn set_crc(batch: &mut [u8], crc: u32) {
    if let Some(field) = batch.get_mut(CRC_POS..CRC_POS + 4) {
        field.copy_from_slice(&crc.to_be_bytes());
    }
}

/// Stamps the leader-assigned base offset into an encoded batch. The CRC stays valid.
pub fn set_base_offset(batch: &mut [u8], base_offset: Offset) {
    if let Some(field) = batch.get_mut(BASE_OFFSET_POS..BASE_OFFSET_POS + 8) {
        field.copy_from_slice(&base_offset.0.to_be_bytes());
    }
}

/// Stamps the leader epoch into an encoded batch. The CRC stays valid.
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: LeaderEpoch) {
    if let Some(field) = batch.get_mut(LEADER_EPOCH_POS..LEADER_EPOCH_POS + 4) {
        field.copy_from_slice(&epoch.0.to_be_bytes());
    }
}
