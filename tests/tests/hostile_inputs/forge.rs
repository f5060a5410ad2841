//! Record batches forged by hand, each wrong in exactly one way.

use bytes::Bytes;
use strata_proto::record::varint::{encode_varint, encode_varlong};
use strata_proto::record::{
    compute_crc, BatchHeader, BATCH_HEADER_BYTES, BATCH_LENGTH_PREFIX_BYTES,
};

use crate::common::values_batch;

/// Where the CRC sits in a batch (docs/FORMAT.md).
pub const CRC_BYTES: std::ops::Range<usize> = 17..21;

/// A valid uncompressed batch of three records, timestamped now.
pub fn valid_batch() -> Bytes {
    values_batch(&["a", "b", "c"])
}

/// The valid batch with its records section replaced by `section` (when given; the
/// batch length follows it), then its header edited by `edit`, then its CRC recomputed
/// so that only the edit is wrong.
pub fn forged(section: Option<&[u8]>, edit: impl FnOnce(&mut BatchHeader)) -> Bytes {
    let valid = valid_batch();
    let mut header = BatchHeader::parse(&valid).unwrap();
    let section = section.unwrap_or(&valid[BATCH_HEADER_BYTES..]);
    let length = BATCH_HEADER_BYTES - BATCH_LENGTH_PREFIX_BYTES + section.len();
    header.batch_length = i32::try_from(length).unwrap();
    edit(&mut header);
    let mut bytes = header.encode().to_vec();
    bytes.extend_from_slice(section);
    let crc = compute_crc(&bytes);
    bytes[CRC_BYTES].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(bytes)
}

pub fn varint(value: i32) -> Vec<u8> {
    let mut out = Vec::new();
    encode_varint(value, &mut out);
    out
}

/// One record written by hand: no attributes, timestamp delta 0, `offset_delta`, the
/// key field and headers field as given (length varints included) and the value `v`.
pub fn hand_record(offset_delta: i32, key_field: &[u8], headers_field: &[u8]) -> Vec<u8> {
    let mut body = vec![0];
    encode_varlong(0, &mut body);
    encode_varint(offset_delta, &mut body);
    body.extend_from_slice(key_field);
    body.extend_from_slice(&varint(1));
    body.push(b'v');
    body.extend_from_slice(headers_field);
    let mut record = varint(i32::try_from(body.len()).unwrap());
    record.extend_from_slice(&body);
    record
}

/// Three hand-written records with these offset deltas, null keys and no headers.
pub fn hand_section(offset_deltas: [i32; 3]) -> Vec<u8> {
    offset_deltas
        .into_iter()
        .flat_map(|delta| hand_record(delta, &varint(-1), &varint(0)))
        .collect()
}

/// A varint of 11 bytes: ten continuation bytes, then a final one.
pub fn overlong_varint() -> Vec<u8> {
    let mut bytes = vec![0xff; 10];
    bytes.push(0x01);
    bytes
}

/// A zstd frame of `blocks` RLE blocks, each expanding to 128 KiB of zeros (the largest
/// block zstd allows): a bomb of 4 bytes per 128 KiB (see proto/tests/record_hostile).
pub fn zstd_rle_bomb(blocks: usize) -> Vec<u8> {
    const RLE_BLOCK_BYTES: u32 = 128 * 1024;
    let mut frame = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, 7 << 3];
    for index in 0..blocks {
        let last_block = u32::from(index + 1 == blocks);
        let header = (RLE_BLOCK_BYTES << 3) | (1 << 1) | last_block;
        frame.extend_from_slice(&header.to_le_bytes()[..3]);
        frame.push(0x00);
    }
    frame
}
