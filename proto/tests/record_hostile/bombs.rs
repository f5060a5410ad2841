//! Hostile input 19 (`docs/RELIABILITY.md`): compression bombs in a batch with a valid CRC.
//!
//! The zstd bombs are written by hand as frames of RLE blocks: each 4-byte block says
//! "repeat this byte 128 KiB times", the largest block zstd allows. That makes a 4 GiB bomb
//! from 128 KiB (and 128 MiB from 4 KiB) in microseconds, where compressing real zeros
//! would take seconds. (zstd cannot expand 4 KB to 4 GB: a block regenerates at most
//! 128 KiB, so the table's "4 KB → 4 GB" is covered by the two ratios together.)

use std::io::Write;

use strata_proto::record::{
    decode_batch, validate_batch, Compression, DecodeLimits, RecordError, RecordErrorCode,
    ValidateLimits, DECOMPRESSED_BYTES_MAX_DEFAULT,
};

use crate::allocation::bytes_allocated_by;
use crate::forge;

const RLE_BLOCK_BYTES: u32 = 128 * 1024;
/// What lz4_flex's frame decoder holds whatever the input: a source block and a
/// destination of two blocks plus the 64 KiB window, for the largest (4 MiB) block size a
/// frame may declare. zstd's own buffers are taken with C `malloc` and not counted here;
/// its window is bounded by `window_log_max` in the codec.
const LZ4_DECODER_BYTES_MAX: usize = 3 * (4 << 20) + (64 << 10);

/// A zstd frame of `blocks` RLE blocks of 128 KiB of zeros each.
fn zstd_rle_bomb(blocks: usize) -> Vec<u8> {
    let mut frame = vec![0x28, 0xb5, 0x2f, 0xfd]; // magic 0xFD2FB528, little-endian
    frame.push(0x00); // descriptor: no content size, not single-segment, no checksum, no dictionary
    frame.push(7 << 3); // window descriptor: exponent 7, 2^(10 + 7) = 128 KiB
    for index in 0..blocks {
        let last_block = u32::from(index + 1 == blocks);
        let rle_block_type = 1 << 1;
        let block_header = (RLE_BLOCK_BYTES << 3) | rle_block_type | last_block;
        frame.extend_from_slice(&block_header.to_le_bytes()[..3]);
        frame.push(0x00); // the byte to repeat
    }
    frame
}

fn compressed_batch(compression: Compression, section: &[u8]) -> Vec<u8> {
    let mut header = forge::header(1);
    header.attributes = compression.id();
    forge::batch(header, section)
}

/// Validation and decoding must both stop at the cap. The output buffer doubles as it
/// grows, so while it moves the old and the new one coexist: 1.5 × the cap at most.
fn assert_capped(batch: &[u8], decompressed_bytes_max: usize) {
    let bound = 2 * decompressed_bytes_max + 4 * batch.len() + LZ4_DECODER_BYTES_MAX + 4096;
    let limits = ValidateLimits {
        decompressed_bytes_max,
        ..ValidateLimits::default()
    };
    let (validated, allocated) = bytes_allocated_by(|| validate_batch(batch, &limits));
    let error = validated.expect_err("a bomb was accepted");
    assert!(
        matches!(error, RecordError::DecompressedTooLarge { .. }),
        "{error}"
    );
    assert_eq!(error.code(), RecordErrorCode::MessageTooLarge);
    assert!(
        allocated <= bound,
        "validation held {allocated} bytes for a cap of {decompressed_bytes_max}"
    );

    let decode_limits = DecodeLimits {
        decompressed_bytes_max,
        ..DecodeLimits::default()
    };
    let (decoded, allocated) = bytes_allocated_by(|| decode_batch(batch, &decode_limits));
    assert!(
        matches!(decoded, Err(RecordError::DecompressedTooLarge { .. })),
        "{decoded:?}"
    );
    assert!(
        allocated <= bound,
        "decoding held {allocated} bytes for a cap of {decompressed_bytes_max}"
    );
}

#[test]
fn the_handmade_bomb_is_a_valid_zstd_frame() {
    let decompressed = zstd::stream::decode_all(&zstd_rle_bomb(3)[..]).unwrap();
    assert_eq!(decompressed.len(), 3 * RLE_BLOCK_BYTES as usize);
    assert!(decompressed.iter().all(|&byte| byte == 0));
}

#[test]
fn hostile_19_zstd_bomb_4_kib_to_128_mib_stops_at_the_cap() {
    let bomb = zstd_rle_bomb(1_024);
    assert!(bomb.len() <= 4 * 1024 + 6);
    assert_capped(&compressed_batch(Compression::Zstd, &bomb), 1 << 20);
}

#[test]
fn hostile_19_zstd_bomb_128_kib_to_4_gib_stops_at_the_default_cap() {
    let bomb = zstd_rle_bomb(32 * 1_024);
    let batch = compressed_batch(Compression::Zstd, &bomb);
    assert_capped(&batch, 1 << 20);
    assert_capped(&batch, DECOMPRESSED_BYTES_MAX_DEFAULT);
}

#[test]
fn hostile_19_lz4_bomb_stops_at_the_cap() {
    let mut encoder = lz4_flex::frame::FrameEncoder::new(Vec::new());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..16 {
        encoder.write_all(&zeros).unwrap();
    }
    let bomb = encoder.finish().unwrap();
    assert!(
        bomb.len() < (1 << 20) / 8,
        "16 MiB of zeros should compress to well under 128 KiB"
    );
    assert_capped(&compressed_batch(Compression::Lz4, &bomb), 1 << 20);
}

#[test]
fn hostile_19_zstd_frame_asking_for_a_2_gib_window_is_refused_before_allocating_it() {
    let mut bomb = zstd_rle_bomb(1);
    bomb[5] = 21 << 3; // window descriptor: 2^(10 + 21) = 2 GiB
    let batch = compressed_batch(Compression::Zstd, &bomb);
    let error = validate_batch(&batch, &ValidateLimits::default()).unwrap_err();
    assert_eq!(error.code(), RecordErrorCode::InvalidRecord, "{error}");
    // The same frame with a modest window decodes (and then fails as a record, not a frame).
    let mut modest = zstd_rle_bomb(1);
    modest[5] = 7 << 3;
    let batch = compressed_batch(Compression::Zstd, &modest);
    let error = validate_batch(&batch, &ValidateLimits::default()).unwrap_err();
    assert!(!error.to_string().contains("zstd"), "{error}");
}
