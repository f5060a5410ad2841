//! The record batch format (DESIGN.md §3; every byte in `docs/FORMAT.md`).
//!
//! - [`header`]: the fixed 61-byte header, CRC, offset/epoch stamping.
//! - [`error`]: [`RecordError`] and its wire code.
//!
//! Invariants: a batch is the unit of write, storage and fetch; the CRC covers
//! `attributes..end`; every length read from the bytes is checked against the bytes present
//! before anything is allocated.

pub mod error;
pub mod header;

pub use error::{RecordError, RecordErrorCode};
pub use header::{
    check_stored_batch, compute_crc, set_base_offset, set_partition_leader_epoch, BatchHeader,
    Compression, BATCH_HEADER_BYTES, BATCH_LENGTH_PREFIX_BYTES, MAGIC,
};
