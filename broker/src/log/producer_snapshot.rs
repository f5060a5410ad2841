//! Producer-state snapshots: files in a partition directory that hold the idempotent
//! producers' state as of an offset, so opening a partition (a start-up, a follower taking
//! over as leader) replays the batch headers after the newest snapshot instead of the
//! whole log (Kafka's `<offset>.snapshot`).
//!
//! The storage layer keeps the files and knows nothing of what is in them: the node
//! encodes and decodes the payload (`node/producer_state.rs`) and checks that the log
//! still holds the batches a snapshot was taken after.
//!
//! # File `<offset:020>.snapshot`
//!
//! ```text
//! magic        4 bytes  "SPSN"
//! version      u8       1
//! reserved     3 bytes  zero
//! offset       i64 BE   the snapshot holds the state of every batch below this offset
//! payload_len  u32 BE   at most SNAPSHOT_PAYLOAD_BYTES_MAX
//! payload_crc  u32 BE   CRC-32 (IEEE, as crc32fast computes it) of the payload
//! payload      payload_len bytes
//! ```
//!
//! # Crash behaviour
//!
//! A snapshot is written to `<name>.tmp`, fsynced, renamed and the directory fsynced, so a
//! crash leaves the old set of snapshots or the new one; recovery deletes stray `.tmp`
//! files. A snapshot is only a hint: one that fails its checks is ignored (the node then
//! replays from an older one, or from the log start), never trusted. Snapshots above the
//! log end are deleted when the log is truncated, so a snapshot can never describe records
//! that were cut and replaced.

use std::fs;
use std::io;
use std::path::Path;

use strata_proto::types::Offset;

use super::checkpoint::write_atomic;
use super::error::{LogError, LogResult};

const MAGIC: &[u8; 4] = b"SPSN";
const VERSION: u8 = 1;
const HEADER_BYTES: usize = 24;
/// The largest payload written or read: bounds the allocation a damaged length field can
/// cause. 5 batches × 16 bytes per producer id leaves room for ~400,000 producers.
pub const SNAPSHOT_PAYLOAD_BYTES_MAX: usize = 32 << 20;
const EXTENSION: &str = ".snapshot";
/// How many snapshots at or below the log end a partition keeps: the newest, and one more
/// in case the newest is found damaged.
pub const SNAPSHOTS_KEPT: usize = 2;

/// `<offset:020>.snapshot`.
pub fn snapshot_file_name(offset: Offset) -> String {
    format!("{:020}{EXTENSION}", offset.0)
}

/// The offsets of the snapshots in `dir`, ascending.
pub fn list_snapshots(dir: &Path) -> LogResult<Vec<Offset>> {
    let entries = fs::read_dir(dir)
        .map_err(|source| LogError::io("list partition directory", dir, source))?;
    let mut offsets = Vec::new();
    for entry in entries {
        let entry =
            entry.map_err(|source| LogError::io("list partition directory", dir, source))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|name| name.strip_suffix(EXTENSION)) else {
            continue;
        };
        if stem.len() == 20 && stem.bytes().all(|byte| byte.is_ascii_digit()) {
            if let Ok(offset) = stem.parse::<i64>() {
                offsets.push(Offset(offset));
            }
        }
    }
    offsets.sort();
    Ok(offsets)
}

/// Writes the snapshot at `offset` atomically and durably, replacing one at that offset.
pub fn write_snapshot(dir: &Path, offset: Offset, payload: &[u8]) -> LogResult<()> {
    let path = dir.join(snapshot_file_name(offset));
    if payload.len() > SNAPSHOT_PAYLOAD_BYTES_MAX {
        return Err(LogError::BadAuxiliaryFile {
            path,
            reason: format!(
                "a producer snapshot of {} bytes is larger than {SNAPSHOT_PAYLOAD_BYTES_MAX}",
                payload.len()
            ),
        });
    }
    let length = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let mut contents = Vec::with_capacity(HEADER_BYTES + payload.len());
    contents.extend_from_slice(MAGIC);
    contents.extend_from_slice(&[VERSION, 0, 0, 0]);
    contents.extend_from_slice(&offset.0.to_be_bytes());
    contents.extend_from_slice(&length.to_be_bytes());
    contents.extend_from_slice(&crc32fast::hash(payload).to_be_bytes());
    contents.extend_from_slice(payload);
    write_atomic(dir, &snapshot_file_name(offset), &contents)
}

/// The payload of the snapshot at `offset`: `Ok(None)` when there is none, and
/// `BadAuxiliaryFile` when it fails a check (wrong magic, version, offset, length or CRC).
pub fn read_snapshot(dir: &Path, offset: Offset) -> LogResult<Option<Vec<u8>>> {
    let path = dir.join(snapshot_file_name(offset));
    let length = match fs::metadata(&path) {
        Ok(metadata) => metadata.len(),
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(LogError::io("stat", &path, source)),
    };
    let bad = |reason: String| LogError::BadAuxiliaryFile {
        path: path.clone(),
        reason,
    };
    if length > (HEADER_BYTES + SNAPSHOT_PAYLOAD_BYTES_MAX) as u64 {
        return Err(bad(format!("{length} bytes is too large for a snapshot")));
    }
    let contents = match fs::read(&path) {
        Ok(contents) => contents,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(LogError::io("read", &path, source)),
    };
    let (header, payload) = contents.split_at_checked(HEADER_BYTES).ok_or_else(|| {
        bad(format!(
            "{} bytes is shorter than its header",
            contents.len()
        ))
    })?;
    let field = |range: std::ops::Range<usize>| header.get(range).unwrap_or_default();
    if field(0..4) != MAGIC || field(4..5) != [VERSION] {
        return Err(bad("unknown magic or version".into()));
    }
    let stored_offset = i64::from_be_bytes(field(8..16).try_into().unwrap_or_default());
    if stored_offset != offset.0 {
        return Err(bad(format!(
            "it says offset {stored_offset}, its name {}",
            offset.0
        )));
    }
    let stored_length = u32::from_be_bytes(field(16..20).try_into().unwrap_or_default());
    let stored_crc = u32::from_be_bytes(field(20..24).try_into().unwrap_or_default());
    if stored_length as usize != payload.len() {
        return Err(bad(format!(
            "its header gives {stored_length} payload bytes, the file holds {}",
            payload.len()
        )));
    }
    if crc32fast::hash(payload) != stored_crc {
        return Err(bad("the payload fails its CRC".into()));
    }
    Ok(Some(payload.to_vec()))
}

/// Deletes the snapshots above `log_end_offset` (they describe records the log no longer
/// holds) and all but the newest `keep` of the others. Returns how many were deleted.
pub fn prune_snapshots(dir: &Path, log_end_offset: Offset, keep: usize) -> LogResult<usize> {
    let offsets = list_snapshots(dir)?;
    let (kept, above): (Vec<Offset>, Vec<Offset>) = offsets
        .into_iter()
        .partition(|offset| *offset <= log_end_offset);
    let surplus = kept.len().saturating_sub(keep);
    let doomed: Vec<Offset> = above
        .into_iter()
        .chain(kept.into_iter().take(surplus))
        .collect();
    for offset in &doomed {
        let path = dir.join(snapshot_file_name(*offset));
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(LogError::io("remove producer snapshot", &path, source)),
        }
    }
    if !doomed.is_empty() {
        super::durable::sync_dir(dir)?;
    }
    Ok(doomed.len())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn a_written_snapshot_reads_back_and_is_listed() {
        let dir = tempfile::tempdir().unwrap();
        write_snapshot(dir.path(), Offset(42), b"state").unwrap();
        write_snapshot(dir.path(), Offset(7), b"older").unwrap();
        assert_eq!(list_snapshots(dir.path()).unwrap(), [Offset(7), Offset(42)]);
        assert_eq!(
            read_snapshot(dir.path(), Offset(42)).unwrap().unwrap(),
            b"state"
        );
        assert_eq!(read_snapshot(dir.path(), Offset(8)).unwrap(), None);
    }

    #[test]
    fn every_flipped_byte_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        write_snapshot(dir.path(), Offset(3), b"producer state").unwrap();
        let path = dir.path().join(snapshot_file_name(Offset(3)));
        let good = fs::read(&path).unwrap();
        for position in (0..good.len()).filter(|position| !(5..8).contains(position)) {
            let mut bad = good.clone();
            bad[position] ^= 0x40;
            fs::write(&path, &bad).unwrap();
            let read = read_snapshot(dir.path(), Offset(3));
            assert!(
                matches!(read, Err(LogError::BadAuxiliaryFile { .. })),
                "byte {position} flipped: {read:?}"
            );
        }
    }

    #[test]
    fn a_short_file_or_a_huge_length_is_refused_without_allocating() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(snapshot_file_name(Offset(1)));
        fs::write(&path, b"SPSN\x01").unwrap();
        assert!(read_snapshot(dir.path(), Offset(1)).is_err());
        let mut header = Vec::from(*MAGIC);
        header.extend_from_slice(&[VERSION, 0, 0, 0]);
        header.extend_from_slice(&1i64.to_be_bytes());
        header.extend_from_slice(&u32::MAX.to_be_bytes());
        header.extend_from_slice(&0u32.to_be_bytes());
        fs::write(&path, &header).unwrap();
        assert!(read_snapshot(dir.path(), Offset(1)).is_err());
    }

    #[test]
    fn pruning_drops_snapshots_above_the_log_end_and_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        for offset in [10, 20, 30, 40, 50] {
            write_snapshot(dir.path(), Offset(offset), b"x").unwrap();
        }
        assert_eq!(prune_snapshots(dir.path(), Offset(35), 2).unwrap(), 3);
        assert_eq!(
            list_snapshots(dir.path()).unwrap(),
            [Offset(20), Offset(30)]
        );
    }
}
