//! `strata-broker dump-log`: a `kafka-dump-log` for Strata segments.
//!
//! Read-only: it opens `.log` files for reading and never touches indexes or checkpoints,
//! so it is safe to run against the data directory of a live or crashed broker. Every
//! batch is checked as recovery would check it (framing, length, CRC, contiguous offsets);
//! the first bad batch of a file is reported with the file and byte position, and the
//! command exits with status 1. The zero padding a direct-I/O broker leaves at the end of
//! its active segment (docs/FORMAT.md) is reported as padding, not damage.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use strata_proto::record::{
    check_stored_batch, decode_batch, BatchHeader, DecodeLimits, BATCH_HEADER_BYTES,
};
use strata_proto::types::Offset;

/// Largest batch `dump-log` will read; a length field above it is reported as damage.
const BATCH_BYTES_MAX: usize = 64 << 20;

/// Arguments of `dump-log`.
#[derive(Debug, clap::Args)]
pub struct DumpLogArgs {
    /// A segment file (`<base_offset>.log`) or a partition directory.
    pub path: PathBuf,
    /// Also print each record's offset, timestamp, key, value and headers.
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

fn dump_segment(path: &Path, records: bool, out: &mut impl Write) -> io::Result<Option<Damage>> {
    let file = File::open(path)?;
    let size_bytes = file.metadata()?.len();
    writeln!(out, "Dumping {}", path.display())?;
    let mut expected = base_offset_of(path);
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
        print_batch(out, &header, position)?;
        if records {
            print_records(out, &buf)?;
        }
        expected = Some(header.next_offset());
        position += header.total_bytes() as u64;
    }
    Ok(None)
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
