//! The record batch format: Kafka's RecordBatch v2 with a CRC-32 (every byte in
//! `docs/FORMAT.md`).
//!
//! - [`header`]: the fixed 61-byte header, CRC, offset/epoch stamping.
//! - [`error`]: [`RecordError`] and its wire code.
//! - [`varint`]: Kafka's zig-zag varint and varlong.
//! - [`model`]: [`Record`] (what producers write) and [`StoredRecord`] (what consumers read).
//! - [`builder`]: [`BatchBuilder`], records → one encoded batch (producers).
//! - [`decode`]: [`decode_batch`], one batch → records with absolute offsets (tools, tests).
//! - [`batch_records`]: [`BatchRecords`], one batch read lazily, zero-copy (consumers).
//! - [`validate`]: [`validate_batch`], the broker's check of a produced batch.
//! - [`retain`]: what log compaction needs: a batch's keys, the batch without some
//!   records (offsets kept, gaps between them), the record-less batch.
//! - internals: `cursor` (bounds-checked reads), `record_wire` (one record's bytes),
//!   `section` (the records section and its walk), `compression` (lz4/zstd frames, capped).
//!
//! Flows: producer `BatchBuilder::append`… → `build` → bytes on the wire → broker
//! `validate_batch` → `set_base_offset`/`set_partition_leader_epoch` → stored verbatim →
//! fetched → consumer `BatchRecords::open` → one record per `next`.
//!
//! Invariants: a batch is the unit of write, storage and fetch; the CRC covers
//! `attributes..end`; every length read from the bytes is checked against the bytes present
//! before anything is allocated; decompression never produces more than its cap.

pub mod batch_records;
pub mod builder;
mod checked;
mod compression;
mod cursor;
pub mod decode;
pub mod error;
pub mod header;
pub mod model;
mod record_wire;
pub mod retain;
mod section;
pub mod validate;
pub mod varint;

pub use batch_records::BatchRecords;
pub use builder::{BatchBuilder, BatchSettings};
pub use checked::CheckedBatch;
pub use compression::ZSTD_LEVEL;
pub use decode::{
    decode_batch, DecodeLimits, DecodedBatch, BATCH_BYTES_MAX_DEFAULT,
    DECOMPRESSED_BYTES_MAX_DEFAULT,
};
pub use error::{RecordError, RecordErrorCode};
pub use header::{
    check_stored_batch, compute_crc, next_offset_after, recompute_crc_for_header, set_base_offset,
    set_partition_leader_epoch, BatchHeader, Compression, TimestampType, BATCH_HEADER_BYTES,
    BATCH_LENGTH_PREFIX_BYTES, MAGIC,
};
pub use model::{Header, Record, StoredRecord, NO_TIMESTAMP};
pub use record_wire::{HeaderFields, RecordFields};
pub use retain::{empty_batch, retain_records, visit_keys, RecordKey, Retained};
pub use validate::{validate_batch, AppendOrigin, TimestampWindow, ValidateLimits};
