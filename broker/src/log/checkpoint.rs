//! Small files that must never be seen half-written — checkpoints — and the partition
//! checkpoint, `partition.checkpoint`.
//!
//! # Atomic replacement
//!
//! [`write_atomic`] writes `<name>.tmp`, fsyncs it, renames it over `<name>` and fsyncs the
//! directory (`docs/RELIABILITY.md`, "Write rules"). A crash at any step leaves either the
//! old or the new file under `<name>`, plus at worst a stale `<name>.tmp`, which the
//! loaders delete.
//!
//! # Text format (shared with the leader-epoch cache)
//!
//! ```text
//! version 1
//! <body lines>
//! crc <crc32 of every byte above this line, 8 lowercase hex digits>
//! ```
//!
//! Every line ends with `\n`. A file that fails the CRC, has an unknown version or does not
//! parse is `BadAuxiliaryFile`: checkpoints are only hints, so callers fall back to a full
//! recovery scan (or a rebuild) instead of trusting it. Reads are bounded by
//! [`CHECKPOINT_BYTES_MAX`].
//!
//! The partition checkpoint's body is, in this order:
//!
//! ```text
//! recovery_point <offset>
//! high_watermark <offset>
//! log_start_offset <offset>
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use strata_proto::types::Offset;

use crate::log::durable;
use crate::log::error::{LogError, LogResult};

/// The largest checkpoint file that is read. 1 MiB rather than a few KiB because the
/// leader-epoch cache of a partition whose leadership flapped holds one line per epoch.
pub const CHECKPOINT_BYTES_MAX: u64 = 1024 * 1024;

/// Replaces `dir/file_name` with `contents` atomically and durably.
pub fn write_atomic(dir: &Path, file_name: &str, contents: &[u8]) -> LogResult<()> {
    debug_assert!(!file_name.is_empty() && !file_name.contains('/'));
    let temp_path = temp_path(dir, file_name);
    let path = dir.join(file_name);
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temp_path)
        .map_err(|source| LogError::io("create", &temp_path, source))?;
    durable::write_all_at(&file, contents, 0, &temp_path)?;
    durable::sync_file(&file, &temp_path)?;
    drop(file);
    fs::rename(&temp_path, &path).map_err(|source| LogError::io("rename", &path, source))?;
    durable::sync_dir(dir)
}

/// Reads `dir/file_name`; `None` if it does not exist, `BadAuxiliaryFile` if it is larger
/// than [`CHECKPOINT_BYTES_MAX`].
pub fn read_file(dir: &Path, file_name: &str) -> LogResult<Option<Vec<u8>>> {
    let path = dir.join(file_name);
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(LogError::io("open", path, source)),
    };
    let mut contents = Vec::new();
    file.take(CHECKPOINT_BYTES_MAX + 1)
        .read_to_end(&mut contents)
        .map_err(|source| LogError::io("read", &path, source))?;
    if contents.len() as u64 > CHECKPOINT_BYTES_MAX {
        return Err(LogError::BadAuxiliaryFile {
            path,
            reason: format!("larger than {CHECKPOINT_BYTES_MAX} bytes"),
        });
    }
    Ok(Some(contents))
}

/// Deletes a `<file_name>.tmp` left by a crash in the middle of [`write_atomic`].
pub fn remove_stale_temp(dir: &Path, file_name: &str) -> LogResult<()> {
    let temp_path = temp_path(dir, file_name);
    match fs::remove_file(&temp_path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(LogError::io("delete", temp_path, source)),
    }
}

fn temp_path(dir: &Path, file_name: &str) -> PathBuf {
    dir.join(format!("{file_name}.tmp"))
}

/// Encodes `body` lines (without newlines) in the versioned, CRC-protected text format.
pub(crate) fn encode_text(version: u32, body: &[String]) -> Vec<u8> {
    let mut text = format!("version {version}\n");
    for line in body {
        debug_assert!(!line.contains('\n'));
        text.push_str(line);
        text.push('\n');
    }
    let crc = crc32fast::hash(text.as_bytes());
    text.push_str(&format!("crc {crc:08x}\n"));
    text.into_bytes()
}

/// Checks the CRC and version of a file in the text format and returns its body lines.
pub(crate) fn decode_text<'a>(
    path: &Path,
    bytes: &'a [u8],
    version: u32,
) -> LogResult<Vec<&'a str>> {
    let bad = |reason: String| LogError::BadAuxiliaryFile {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::str::from_utf8(bytes).map_err(|error| bad(format!("not UTF-8: {error}")))?;
    let without_last_newline = text
        .strip_suffix('\n')
        .ok_or_else(|| bad("does not end with a newline".to_owned()))?;
    let (covered, crc_line) = match without_last_newline.rfind('\n') {
        Some(newline) => without_last_newline.split_at(newline + 1),
        None => ("", without_last_newline),
    };
    let stored_crc = crc_line
        .strip_prefix("crc ")
        .filter(|hex| hex.len() == 8)
        .and_then(|hex| u32::from_str_radix(hex, 16).ok())
        .ok_or_else(|| {
            bad(format!(
                "last line {crc_line:?} is not `crc <8 hex digits>`"
            ))
        })?;
    let actual_crc = crc32fast::hash(covered.as_bytes());
    if stored_crc != actual_crc {
        return Err(bad(format!(
            "crc mismatch: stored {stored_crc:08x}, computed {actual_crc:08x}"
        )));
    }
    let mut lines = covered.lines();
    let expected_version_line = format!("version {version}");
    match lines.next() {
        Some(line) if line == expected_version_line => Ok(lines.collect()),
        other => Err(bad(format!(
            "expected `{expected_version_line}`, found {other:?}"
        ))),
    }
}

/// Parses a body line `<key> <non-negative i64>`.
pub(crate) fn parse_keyed_offset(path: &Path, line: Option<&str>, key: &str) -> LogResult<Offset> {
    line.and_then(|line| line.strip_prefix(key))
        .and_then(|rest| rest.strip_prefix(' '))
        .and_then(|value| value.parse::<i64>().ok())
        .filter(|value| *value >= 0)
        .map(Offset)
        .ok_or_else(|| LogError::BadAuxiliaryFile {
            path: path.to_path_buf(),
            reason: format!("expected `{key} <offset>`, found {line:?}"),
        })
}

/// What a partition remembers across restarts besides its segments. All three are hints a
/// restart re-checks against the log (e.g. clamped to the log end offset).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PartitionCheckpoint {
    /// Everything below it was fsynced: recovery scans from here.
    pub recovery_point: Offset,
    pub high_watermark: Offset,
    pub log_start_offset: Offset,
}

impl PartitionCheckpoint {
    pub const FILE_NAME: &'static str = "partition.checkpoint";
    const VERSION: u32 = 1;

    /// Loads the checkpoint of the partition in `dir`: `None` if there is none,
    /// `BadAuxiliaryFile` if it is damaged. Deletes a stale temp file first.
    pub fn load(dir: &Path) -> LogResult<Option<PartitionCheckpoint>> {
        remove_stale_temp(dir, Self::FILE_NAME)?;
        let Some(bytes) = read_file(dir, Self::FILE_NAME)? else {
            return Ok(None);
        };
        let path = dir.join(Self::FILE_NAME);
        let body = decode_text(&path, &bytes, Self::VERSION)?;
        if body.len() != 3 {
            return Err(LogError::BadAuxiliaryFile {
                path,
                reason: format!(
                    "expected 3 lines between version and crc, found {}",
                    body.len()
                ),
            });
        }
        let mut lines = body.into_iter();
        Ok(Some(PartitionCheckpoint {
            recovery_point: parse_keyed_offset(&path, lines.next(), "recovery_point")?,
            high_watermark: parse_keyed_offset(&path, lines.next(), "high_watermark")?,
            log_start_offset: parse_keyed_offset(&path, lines.next(), "log_start_offset")?,
        }))
    }

    /// Replaces the checkpoint in `dir` atomically and durably.
    pub fn store(&self, dir: &Path) -> LogResult<()> {
        let body = [
            format!("recovery_point {}", self.recovery_point),
            format!("high_watermark {}", self.high_watermark),
            format!("log_start_offset {}", self.log_start_offset),
        ];
        write_atomic(dir, Self::FILE_NAME, &encode_text(Self::VERSION, &body))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn sample() -> PartitionCheckpoint {
        PartitionCheckpoint {
            recovery_point: Offset(1_234),
            high_watermark: Offset(1_200),
            log_start_offset: Offset(17),
        }
    }

    fn is_bad(result: LogResult<Option<PartitionCheckpoint>>) -> bool {
        matches!(result, Err(LogError::BadAuxiliaryFile { .. }))
    }

    #[test]
    fn partition_checkpoint_round_trips_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(PartitionCheckpoint::load(dir.path()).unwrap(), None);
        sample().store(dir.path()).unwrap();
        assert_eq!(
            PartitionCheckpoint::load(dir.path()).unwrap(),
            Some(sample())
        );
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, [PartitionCheckpoint::FILE_NAME]);
        let text = fs::read_to_string(dir.path().join(PartitionCheckpoint::FILE_NAME)).unwrap();
        assert!(text.starts_with("version 1\nrecovery_point 1234\nhigh_watermark 1200\n"));

        let newer = PartitionCheckpoint {
            recovery_point: Offset(2_000),
            ..sample()
        };
        newer.store(dir.path()).unwrap();
        assert_eq!(PartitionCheckpoint::load(dir.path()).unwrap(), Some(newer));
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        sample().store(dir.path()).unwrap();
        let path = dir.path().join(PartitionCheckpoint::FILE_NAME);
        let good = fs::read(&path).unwrap();
        for position in 0..good.len() {
            let mut bytes = good.clone();
            bytes[position] ^= 0x01;
            fs::write(&path, &bytes).unwrap();
            assert!(
                is_bad(PartitionCheckpoint::load(dir.path())),
                "byte {position}"
            );
        }
        for length in 0..good.len() {
            fs::write(&path, &good[..length]).unwrap();
            assert!(
                is_bad(PartitionCheckpoint::load(dir.path())),
                "cut at {length}"
            );
        }
    }

    #[test]
    fn wrong_version_or_body_is_rejected_even_with_a_valid_crc() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(PartitionCheckpoint::FILE_NAME);
        let cases: [(u32, &[&str]); 4] = [
            (
                2,
                &["recovery_point 1", "high_watermark 1", "log_start_offset 0"],
            ),
            (1, &["recovery_point 1", "high_watermark 1"]),
            (
                1,
                &[
                    "recovery_point 1",
                    "high_watermark -1",
                    "log_start_offset 0",
                ],
            ),
            (
                1,
                &["high_watermark 1", "recovery_point 1", "log_start_offset 0"],
            ),
        ];
        for (version, body) in cases {
            let body: Vec<String> = body.iter().map(|line| line.to_string()).collect();
            fs::write(&path, encode_text(version, &body)).unwrap();
            assert!(
                is_bad(PartitionCheckpoint::load(dir.path())),
                "{version} {body:?}"
            );
        }
    }

    #[test]
    fn oversized_file_is_refused_and_stale_temp_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(PartitionCheckpoint::FILE_NAME);
        fs::write(&path, vec![b'x'; CHECKPOINT_BYTES_MAX as usize + 1]).unwrap();
        assert!(is_bad(PartitionCheckpoint::load(dir.path())));

        let temp = temp_path(dir.path(), PartitionCheckpoint::FILE_NAME);
        fs::write(&temp, b"half a checkp").unwrap();
        sample().store(dir.path()).unwrap();
        fs::write(&temp, b"half a checkp").unwrap();
        assert_eq!(
            PartitionCheckpoint::load(dir.path()).unwrap(),
            Some(sample())
        );
        assert!(!temp.exists());
    }

    #[test]
    fn failed_fsync_keeps_the_old_checkpoint() {
        let scenario = fail::FailScenario::setup();
        let dir = tempfile::tempdir().unwrap();
        sample().store(dir.path()).unwrap();
        let filter = dir.path().to_string_lossy().into_owned();
        fail::cfg("log::fsync", &format!("return({filter})")).unwrap();
        let newer = PartitionCheckpoint {
            recovery_point: Offset(9_999),
            ..sample()
        };
        assert!(newer.store(dir.path()).unwrap_err().is_fatal());
        fail::cfg("log::fsync", "off").unwrap();
        assert_eq!(
            PartitionCheckpoint::load(dir.path()).unwrap(),
            Some(sample())
        );
        scenario.teardown();
    }
}
