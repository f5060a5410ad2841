//! `strata-broker dump-log`: a `kafka-dump-log` for Strata segments, and for the
//! controller quorum's Raft state when given `<data>/controller` ([`controller`]).
//!
//! Read-only: it opens `.log` files for reading and never touches indexes or checkpoints,
//! so it is safe to run against the data directory of a live or crashed broker. Every
//! batch is checked as recovery would check it (framing, length, CRC, contiguous offsets,
//! leader epoch not stepping back); the first bad batch of a file is reported with the
//! file and the byte where that batch starts, and the command exits with status 1. A
//! raised epoch makes the batch *after* it look wrong; like recovery, dump-log then names
//! the raised one. The zero padding a direct-I/O broker leaves at the end of its active
//! segment (docs/FORMAT.md) is reported as padding, not damage.
//!
//! Only regular files are read: a FIFO, a device or a socket given as a segment (or named
//! `*.log` in a partition directory) is refused with status 2 before anything is read
//! from it, so the command never blocks on one.

use std::fs::{File, FileType, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use strata_proto::record::{
    check_stored_batch, decode_batch, BatchHeader, DecodeLimits, BATCH_HEADER_BYTES,
};
use strata_proto::types::{LeaderEpoch, Offset};

use crate::log::epoch_step_back_blames_previous;

mod controller;

/// Largest batch `dump-log` will read; a length field above it is reported as damage.
const BATCH_BYTES_MAX: usize = 64 << 20;

/// Arguments of `dump-log`.
#[derive(Debug, clap::Args)]
pub struct DumpLogArgs {
    /// A segment file (`<base_offset>.log`), a partition directory, or the controller
    /// directory (`<data>/controller`: the Raft log and the metadata snapshot).
    pub path: PathBuf,
    /// Also print each record's offset, timestamp, key, value and headers (for the
    /// controller directory: each metadata record as JSON).
    #[arg(long)]
    pub records: bool,
}

/// A damaged batch: where and why.
#[derive(Debug)]
struct Damage {
    position: u64,
    reason: String,
}

/// Runs the command: 0 when every batch is intact, 1 on damage, 2 on a usage or I/O error.
pub fn run(args: &DumpLogArgs) -> ExitCode {
    if let Some(dir) = controller::controller_dir_of(&args.path) {
        return controller::run(dir, args.records);
    }
    let files = match segment_files(&args.path) {
        Ok(files) => files,
        Err(error) => {
            eprintln!("dump-log: cannot read {}: {error}", args.path.display());
            return ExitCode::from(2);
        }
    };
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let mut damaged = false;
    for file in files {
        match dump_segment(&file, args.records, &mut out) {
            Ok(None) => {}
            Ok(Some(damage)) => {
                damaged = true;
                let _ = out.flush();
                eprintln!(
                    "dump-log: corrupt batch in {} at byte {}: {}",
                    file.display(),
                    damage.position,
                    damage.reason
                );
            }
            Err(error) => {
                eprintln!("dump-log: cannot read {}: {error}", file.display());
                return ExitCode::from(2);
            }
        }
    }
    if damaged {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// The `.log` files to dump: the file itself, or a directory's segments in offset order.
fn segment_files(path: &Path) -> io::Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|extension| extension == "log"))
        .collect();
    files.sort();
    Ok(files)
}

/// The base offset a segment's file name promises, if it follows `<base:020>.log`.
fn base_offset_of(path: &Path) -> Option<Offset> {
    let stem = path.file_stem()?.to_str()?;
    (stem.len() == 20)
        .then(|| stem.parse().ok().map(Offset))
        .flatten()
}

/// Opens `path` for reading only if it is a regular file. The type is checked before the
/// open (a FIFO's open blocks until a writer comes, a tape device may rewind), and again on
/// the open file, which is opened non-blocking in case it was swapped in between.
fn open_regular(path: &Path) -> io::Result<File> {
    refuse_unless_regular(std::fs::metadata(path)?.file_type())?;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    refuse_unless_regular(file.metadata()?.file_type())?;
    Ok(file)
}

fn refuse_unless_regular(file_type: FileType) -> io::Result<()> {
    let kind = if file_type.is_file() {
        return Ok(());
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    };
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("it is {kind}, not a segment file; dump-log reads regular files only"),
    ))
}

/// The last batch dumped: where it starts, its base offset and epoch, and the epoch of the
/// batch before it (to tell which of two batches a step back in epochs condemns).
#[derive(Debug, Clone, Copy)]
struct Previous {
    position: u64,
    epoch: LeaderEpoch,
    epoch_before: Option<LeaderEpoch>,
}

fn dump_segment(path: &Path, records: bool, out: &mut impl Write) -> io::Result<Option<Damage>> {
    let file = open_regular(path)?;
    let size_bytes = file.metadata()?.len();
    writeln!(out, "Dumping {}", path.display())?;
    let mut expected = base_offset_of(path);
    let mut previous: Option<Previous> = None;
    let mut position = 0u64;
    let mut buf = Vec::new();
    while position < size_bytes {
        let header = match read_batch(&file, position, size_bytes, &mut buf)? {
            Ok(header) => header,
            Err(_) if crate::log::ends_in_direct_padding(&file, position, size_bytes)? => {
                writeln!(
                    out,
                    "padding: {} zero bytes at position {position} to the end of the block \
                     (left by direct I/O; cut when the segment is sealed)",
                    size_bytes - position
                )?;
                return Ok(None);
            }
            Err(reason) => return Ok(Some(Damage { position, reason })),
        };
        if let Some(expected) = expected.filter(|expected| *expected != header.base_offset) {
            let reason = format!(
                "base offset {} where {expected} was expected",
                header.base_offset
            );
            return Ok(Some(Damage { position, reason }));
        }
        if let Some(damage) = epoch_damage(previous, &header, position) {
            return Ok(Some(damage));
        }
        print_batch(out, &header, position)?;
        if records {
            print_records(out, &buf)?;
        }
        expected = Some(header.next_offset());
        previous = Some(Previous {
            position,
            epoch: header.partition_leader_epoch,
            epoch_before: previous.map(|previous| previous.epoch),
        });
        position += header.total_bytes() as u64;
    }
    Ok(None)
}

/// A step back in leader epochs from the previous batch to `header` (at `position`),
/// blamed on the batch that recovery blames.
fn epoch_damage(previous: Option<Previous>, header: &BatchHeader, position: u64) -> Option<Damage> {
    let previous = previous?;
    let epoch = header.partition_leader_epoch;
    if epoch >= previous.epoch {
        return None;
    }
    Some(
        if epoch_step_back_blames_previous(previous.epoch_before, epoch) {
            Damage {
                position: previous.position,
                reason: format!(
                    "leader epoch {} is above the epochs of the batches before ({}) and after \
                 ({epoch}) it",
                    previous.epoch,
                    previous.epoch_before.unwrap_or_default()
                ),
            }
        } else {
            Damage {
                position,
                reason: format!("leader epoch {epoch} after epoch {}", previous.epoch),
            }
        },
    )
}

/// Reads and checks the batch at `position` into `buf`; the inner error describes damage.
fn read_batch(
    file: &File,
    position: u64,
    size_bytes: u64,
    buf: &mut Vec<u8>,
) -> io::Result<Result<BatchHeader, String>> {
    let remaining = size_bytes - position;
    if remaining < BATCH_HEADER_BYTES as u64 {
        return Ok(Err(format!(
            "torn batch header: only {remaining} bytes left"
        )));
    }
    let mut header_bytes = [0u8; BATCH_HEADER_BYTES];
    file.read_exact_at(&mut header_bytes, position)?;
    let header = match BatchHeader::parse(&header_bytes) {
        Ok(header) => header,
        Err(error) => return Ok(Err(error.to_string())),
    };
    if let Err(error) = header.check_framing(BATCH_BYTES_MAX) {
        return Ok(Err(error.to_string()));
    }
    let total = header.total_bytes() as u64;
    if total > remaining {
        return Ok(Err(format!(
            "batch of {total} bytes but only {remaining} bytes left"
        )));
    }
    buf.resize(total as usize, 0);
    file.read_exact_at(buf, position)?;
    Ok(check_stored_batch(buf, BATCH_BYTES_MAX).map_err(|error| error.to_string()))
}

fn print_batch(out: &mut impl Write, header: &BatchHeader, position: u64) -> io::Result<()> {
    let compression = header.compression().map_or("unknown", |codec| codec.name());
    writeln!(
        out,
        "baseOffset: {} lastOffset: {} count: {} leaderEpoch: {} position: {} size: {} \
         baseTimestamp: {} maxTimestamp: {} compression: {} producerId: {} producerEpoch: {} \
         baseSequence: {} crc: {:#010x} crcOk: true",
        header.base_offset,
        header.last_offset(),
        header.record_count,
        header.partition_leader_epoch,
        position,
        header.total_bytes(),
        header.base_timestamp,
        header.max_timestamp,
        compression,
        header.producer_id,
        header.producer_epoch,
        header.base_sequence,
        header.crc,
    )
}

fn print_records(out: &mut impl Write, batch: &[u8]) -> io::Result<()> {
    let limits = DecodeLimits::default();
    let decoded = match decode_batch(batch, &limits) {
        Ok(decoded) => decoded,
        Err(error) => return writeln!(out, "| records cannot be decoded: {error}"),
    };
    for record in &decoded.records {
        let headers: Vec<String> = record
            .headers
            .iter()
            .map(|header| format!("{}={}", header.key, show_bytes(header.value.as_deref())))
            .collect();
        writeln!(
            out,
            "| offset: {} timestamp: {} key: {} value: {} headers: [{}]",
            record.offset,
            record.timestamp_ms,
            show_bytes(record.key.as_deref()),
            show_bytes(record.value.as_deref()),
            headers.join(", ")
        )?;
    }
    Ok(())
}

/// Bytes as a quoted string when they are UTF-8 (as is when they are a JSON object, like
/// the metadata log's records), else as hex; `null` for none.
fn show_bytes(bytes: Option<&[u8]>) -> String {
    match bytes {
        None => "null".to_owned(),
        Some(bytes) => match std::str::from_utf8(bytes) {
            Ok(text)
                if text.starts_with('{')
                    && serde_json::from_str::<serde_json::Value>(text).is_ok() =>
            {
                text.to_owned()
            }
            Ok(text) => format!("{text:?}"),
            Err(_) => bytes.iter().map(|byte| format!("{byte:02x}")).collect(),
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::mpsc;
    use std::time::Duration;

    use bytes::Bytes;
    use strata_proto::record::{
        set_base_offset, set_partition_leader_epoch, BatchBuilder, BatchSettings, Record,
    };
    use strata_proto::types::LeaderEpoch;

    use super::*;

    /// A segment of `batches` batches of five records from offset 0, epoch 0, and the
    /// position of each batch.
    fn segment(batches: usize) -> (Vec<u8>, Vec<u64>) {
        let mut bytes = Vec::new();
        let mut positions = Vec::new();
        for i in 0..batches {
            let mut builder = BatchBuilder::new(BatchSettings::default());
            for j in 0..5 {
                let value = Bytes::from(format!("b{i}-{j}"));
                builder.append(&Record::from_value(0, value)).unwrap();
            }
            let mut batch = builder.build().unwrap().to_vec();
            set_base_offset(&mut batch, Offset(i as i64 * 5));
            set_partition_leader_epoch(&mut batch, LeaderEpoch(0));
            positions.push(bytes.len() as u64);
            bytes.extend_from_slice(&batch);
        }
        (bytes, positions)
    }

    fn dump_bytes(bytes: &[u8]) -> io::Result<Option<Damage>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("{:020}.log", 0));
        std::fs::write(&path, bytes).unwrap();
        dump_segment(&path, true, &mut Vec::new())
    }

    #[test]
    fn intact_segment_has_no_damage() {
        let (bytes, _) = segment(4);
        assert!(dump_bytes(&bytes).unwrap().is_none());
    }

    #[test]
    fn damage_is_named_at_the_start_of_the_damaged_batch() {
        let (bytes, positions) = segment(4);
        let damaged = positions[1];
        let cases: [(u64, u8, &str); 3] = [
            (damaged + 70, 0x5a, "a byte of its records"),
            (damaged + 7, 0x01, "its base offset"),
            // The CRC does not cover the epoch: raised, it makes the *next* batch's
            // epoch look like a step back.
            (damaged + 15, 0x01, "its leader epoch"),
        ];
        for (position, mask, what) in cases {
            let mut copy = bytes.clone();
            copy[position as usize] ^= mask;
            let damage = dump_bytes(&copy)
                .unwrap()
                .unwrap_or_else(|| panic!("{what}: no damage reported"));
            assert_eq!(damage.position, damaged, "{what}: {}", damage.reason);
        }
    }

    /// Runs `dump_segment` on a thread, so a test fails rather than hangs if it blocks.
    fn dump_within(path: &Path, limit: Duration) -> Option<io::Result<Option<Damage>>> {
        let (sender, receiver) = mpsc::channel();
        let path = path.to_path_buf();
        std::thread::spawn(move || {
            let _ = sender.send(dump_segment(&path, false, &mut Vec::new()));
        });
        receiver.recv_timeout(limit).ok()
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join(format!("{:020}.log", 0));
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let Some(result) = dump_within(&fifo, Duration::from_secs(10)) else {
            // Unblock the thread stuck in open(2) before failing.
            let _ = std::fs::OpenOptions::new().write(true).open(&fifo);
            panic!("dump-log blocked on a FIFO");
        };
        let error = result.map(|_| ()).unwrap_err();
        assert!(error.to_string().contains("FIFO"), "{error}");
    }

    #[test]
    fn a_device_is_refused() {
        let result = dump_within(Path::new("/dev/zero"), Duration::from_secs(10))
            .expect("dump-log blocked on a device");
        let error = result.map(|_| ()).unwrap_err();
        assert!(error.to_string().contains("device"), "{error}");
    }
}
