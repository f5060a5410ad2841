//! The codecs of the records section: lz4 and zstd, each as one standard frame holding the
//! whole section (all records concatenated), the framing Kafka uses for magic 2.
//!
//! - lz4: the LZ4 *frame* format (magic `04 22 4D 18`), 64 KiB independent blocks, no block or
//!   content checksums (the batch CRC covers the compressed bytes), as Kafka writes it.
//! - zstd: one zstd frame at level 3 (Kafka's default), written with the content size known.
//! - gzip, snappy: recognised ids, refused with [`RecordError::UnsupportedCompression`].
//!
//! Decompression is streaming and capped: it stops as soon as the output would pass
//! `decompressed_bytes_max` and answers [`RecordError::DecompressedTooLarge`], so a 4 KB
//! bomb that expands to 4 GB costs at most the cap in memory and time. The zstd window the
//! decoder may allocate is bounded by the cap too (between 8 and 128 MiB).

use std::io::{Read, Write};

use lz4_flex::frame::{BlockMode, BlockSize, FrameDecoder, FrameEncoder, FrameInfo};

use super::error::RecordError;
use super::header::Compression;

/// Kafka's default `compression.zstd.level`.
pub const ZSTD_LEVEL: i32 = 3;
/// Smallest and largest zstd window (log2 bytes) a frame may ask the decoder for.
const ZSTD_WINDOW_LOG_MIN: u32 = 23;
const ZSTD_WINDOW_LOG_MAX: u32 = 27;
/// First (and smallest) output buffer when decompressing.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Compresses a whole records section into one frame of `compression`.
pub(crate) fn compress(compression: Compression, records: &[u8]) -> Result<Vec<u8>, RecordError> {
    match compression {
        Compression::None => Ok(records.to_vec()),
        Compression::Lz4 => {
            let mut frame_info = FrameInfo::new();
            frame_info.block_size = BlockSize::Max64KB;
            frame_info.block_mode = BlockMode::Independent;
            let output = Vec::with_capacity(records.len() / 2 + 64);
            let mut encoder = FrameEncoder::with_frame_info(frame_info, output);
            encoder
                .write_all(records)
                .map_err(|error| failed(compression, "compression", &error))?;
            encoder
                .finish()
                .map_err(|error| failed(compression, "compression", &error))
        }
        Compression::Zstd => zstd::bulk::compress(records, ZSTD_LEVEL)
            .map_err(|error| failed(compression, "compression", &error)),
        Compression::Gzip | Compression::Snappy => {
            Err(RecordError::UnsupportedCompression { compression })
        }
    }
}

/// Decompresses one `compression` frame, refusing output above `decompressed_bytes_max`
/// without ever holding more than that.
pub(crate) fn decompress(
    compression: Compression,
    block: &[u8],
    decompressed_bytes_max: usize,
) -> Result<Vec<u8>, RecordError> {
    let size_hint = block.len().saturating_mul(4);
    match compression {
        Compression::None => read_capped(block, compression, decompressed_bytes_max, block.len()),
        Compression::Lz4 => read_capped(
            FrameDecoder::new(block),
            compression,
            decompressed_bytes_max,
            size_hint,
        ),
        Compression::Zstd => {
            let declared = zstd::zstd_safe::get_frame_content_size(block)
                .ok()
                .flatten();
            let size_hint = declared.map_or(size_hint, |size| {
                usize::try_from(size).unwrap_or(usize::MAX)
            });
            let mut decoder = zstd::stream::read::Decoder::with_buffer(block)
                .map_err(|error| failed(compression, "decompression", &error))?;
            decoder
                .window_log_max(zstd_window_log_max(decompressed_bytes_max))
                .map_err(|error| failed(compression, "decompression", &error))?;
            read_capped(decoder, compression, decompressed_bytes_max, size_hint)
        }
        Compression::Gzip | Compression::Snappy => {
            Err(RecordError::UnsupportedCompression { compression })
        }
    }
}

/// Reads `reader` to its end, failing once more than `bytes_max` bytes come out. The
/// buffer grows by doubling but never past `bytes_max + 1`, so a bomb costs at most the cap
/// in memory; `size_hint` (untrusted) only chooses the first size, within the same bound.
fn read_capped(
    mut reader: impl Read,
    compression: Compression,
    bytes_max: usize,
    size_hint: usize,
) -> Result<Vec<u8>, RecordError> {
    // One byte past the cap tells "exactly at the cap" from "above it".
    let limit = bytes_max.saturating_add(1);
    let mut output = vec![0u8; size_hint.max(READ_CHUNK_BYTES).min(limit)];
    let mut filled = 0;
    loop {
        if filled == output.len() {
            let grown = output
                .len()
                .saturating_mul(2)
                .max(READ_CHUNK_BYTES)
                .min(limit);
            output.resize(grown, 0);
        }
        let spare = output.get_mut(filled..).unwrap_or_default();
        match reader.read(spare) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(failed(compression, "decompression", &error)),
        }
        if filled > bytes_max {
            return Err(RecordError::DecompressedTooLarge {
                compression,
                max: bytes_max as u64,
            });
        }
    }
    output.truncate(filled);
    Ok(output)
}

/// The largest window (log2) a zstd frame may need: enough for any frame whose output fits
/// the cap, clamped so a hostile frame header cannot make the decoder allocate more.
fn zstd_window_log_max(decompressed_bytes_max: usize) -> u32 {
    let ceil_log2 = usize::BITS - decompressed_bytes_max.saturating_sub(1).leading_zeros();
    ceil_log2.clamp(ZSTD_WINDOW_LOG_MIN, ZSTD_WINDOW_LOG_MAX)
}

/// A codec failure: corrupt input when decompressing (the CRC matched, so the producer
/// wrote it that way), or an encoder error when compressing.
fn failed(compression: Compression, operation: &str, error: &dyn std::fmt::Display) -> RecordError {
    RecordError::invalid(format!("{compression} {operation} failed: {error}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn sample() -> Vec<u8> {
        (0..100_000u32)
            .flat_map(|i| (i % 251).to_be_bytes())
            .collect()
    }

    #[test]
    fn lz4_and_zstd_round_trip() {
        let plain = sample();
        for compression in [Compression::Lz4, Compression::Zstd] {
            let block = compress(compression, &plain).unwrap();
            assert!(block.len() < plain.len(), "{compression} did not compress");
            assert_eq!(decompress(compression, &block, plain.len()).unwrap(), plain);
        }
    }

    #[test]
    fn output_one_byte_over_the_cap_is_refused() {
        let plain = sample();
        for compression in [Compression::Lz4, Compression::Zstd] {
            let block = compress(compression, &plain).unwrap();
            let error = decompress(compression, &block, plain.len() - 1).unwrap_err();
            assert!(
                matches!(error, RecordError::DecompressedTooLarge { .. }),
                "{error}"
            );
        }
    }

    #[test]
    fn lz4_frame_starts_with_the_standard_magic() {
        let block = compress(Compression::Lz4, b"hello").unwrap();
        assert_eq!(block.get(..4), Some(&[0x04, 0x22, 0x4d, 0x18][..]));
    }

    #[test]
    fn garbage_and_truncated_frames_are_invalid_records() {
        let block = compress(Compression::Zstd, &sample()).unwrap();
        let truncated = block.get(..block.len() / 2).unwrap();
        for (compression, bytes) in [
            (Compression::Zstd, truncated),
            (Compression::Zstd, &b"not a frame"[..]),
            (Compression::Lz4, &b"not a frame"[..]),
        ] {
            let error = decompress(compression, bytes, 1 << 20).unwrap_err();
            assert!(
                matches!(error, RecordError::InvalidRecord { .. }),
                "{error}"
            );
        }
    }

    #[test]
    fn gzip_and_snappy_are_refused() {
        for compression in [Compression::Gzip, Compression::Snappy] {
            assert_eq!(
                compress(compression, b"x"),
                Err(RecordError::UnsupportedCompression { compression })
            );
        }
    }
}
