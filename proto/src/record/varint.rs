//! Kafka's variable-length integers: zig-zag `varint` (i32) and `varlong` (i64).
//!
//! A value is zig-zag mapped to an unsigned integer (0, -1, 1, -2, … → 0, 1, 2, 3, …) so
//! that small negative numbers stay short, then written 7 bits at a time, least significant
//! group first; the high bit of each byte says "another byte follows". A varint takes 1–5
//! bytes, a varlong 1–10 (Protocol Buffers' `sint32`/`sint64`, Kafka's `ByteUtils`).
//!
//! Decoding is strict where Kafka's is silent: an encoding longer than 5 (10) bytes, one that
//! ends in the middle, and one whose last byte carries bits beyond 32 (64) are all
//! [`RecordError::InvalidRecord`]. Every encoding Kafka writes is accepted. Nothing here
//! panics or allocates on any input.

use super::error::RecordError;

/// Longest encoding of an i32.
pub const VARINT_BYTES_MAX: usize = 5;
/// Longest encoding of an i64.
pub const VARLONG_BYTES_MAX: usize = 10;

const CONTINUATION_BIT: u8 = 0x80;
const PAYLOAD_MASK: u8 = 0x7f;

/// Appends the varint encoding of `value` to `out`.
#[inline]
pub fn encode_varint(value: i32, out: &mut Vec<u8>) {
    encode_unsigned(u64::from(zigzag_i32(value)), out);
}

/// Appends the varlong encoding of `value` to `out`.
#[inline]
pub fn encode_varlong(value: i64, out: &mut Vec<u8>) {
    encode_unsigned(zigzag_i64(value), out);
}

/// How many bytes [`encode_varint`] writes for `value`.
#[inline]
pub fn varint_size(value: i32) -> usize {
    unsigned_size(u64::from(zigzag_i32(value)))
}

/// How many bytes [`encode_varlong`] writes for `value`.
#[inline]
pub fn varlong_size(value: i64) -> usize {
    unsigned_size(zigzag_i64(value))
}

/// Reads a varint from the start of `buf`: the value and the number of bytes it took.
#[inline]
pub fn decode_varint(buf: &[u8]) -> Result<(i32, usize), RecordError> {
    let (unsigned, length) = decode_unsigned(buf, VARINT_BYTES_MAX, 32, "varint")?;
    // `decode_unsigned` refused anything above 32 bits, so the cast keeps every bit.
    let unsigned = unsigned as u32;
    let value = ((unsigned >> 1) as i32) ^ -((unsigned & 1) as i32);
    Ok((value, length))
}

/// Reads a varlong from the start of `buf`: the value and the number of bytes it took.
#[inline]
pub fn decode_varlong(buf: &[u8]) -> Result<(i64, usize), RecordError> {
    let (unsigned, length) = decode_unsigned(buf, VARLONG_BYTES_MAX, 64, "varlong")?;
    let value = ((unsigned >> 1) as i64) ^ -((unsigned & 1) as i64);
    Ok((value, length))
}

#[inline]
fn zigzag_i32(value: i32) -> u32 {
    ((value << 1) ^ (value >> 31)) as u32
}

#[inline]
fn zigzag_i64(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

#[inline]
fn encode_unsigned(mut value: u64, out: &mut Vec<u8>) {
    while value >= u64::from(CONTINUATION_BIT) {
        out.push((value as u8 & PAYLOAD_MASK) | CONTINUATION_BIT);
        value >>= 7;
    }
    out.push(value as u8);
}

#[inline]
fn unsigned_size(value: u64) -> usize {
    let significant_bits = 64 - value.leading_zeros() as usize;
    significant_bits.div_ceil(7).max(1)
}

/// Reads at most `bytes_max` groups of 7 bits into an unsigned value of `bits` bits.
///
/// Most varints of a record (attributes, deltas, a missing key, no headers, lengths
/// under 8 KiB) take one or two bytes; those are read without the loop, which was 7 %
/// of a consumer's CPU (`docs/bench/history.md` item 16). Every caller allows at least two
/// bytes of at least 14 bits, so neither can overflow.
#[inline]
fn decode_unsigned(
    buf: &[u8],
    bytes_max: usize,
    bits: u32,
    name: &str,
) -> Result<(u64, usize), RecordError> {
    debug_assert!(bytes_max >= 2 && bits >= 14);
    match buf {
        [first, ..] if first & CONTINUATION_BIT == 0 => return Ok((u64::from(*first), 1)),
        [first, second, ..] if second & CONTINUATION_BIT == 0 => {
            return Ok((u64::from(first & PAYLOAD_MASK) | u64::from(*second) << 7, 2));
        }
        _ => {}
    }
    decode_unsigned_long(buf, bytes_max, bits, name)
}

/// [`decode_unsigned`] for three bytes or more, and for every error.
#[inline(never)]
fn decode_unsigned_long(
    buf: &[u8],
    bytes_max: usize,
    bits: u32,
    name: &str,
) -> Result<(u64, usize), RecordError> {
    let mut value = 0u64;
    for (index, byte) in buf.iter().take(bytes_max).enumerate() {
        let shift = 7 * index as u32;
        let payload = u64::from(byte & PAYLOAD_MASK);
        if shift + 7 > bits && payload >> (bits - shift) != 0 {
            return Err(RecordError::invalid(format!(
                "{name} does not fit in {bits} bits"
            )));
        }
        value |= payload << shift;
        if byte & CONTINUATION_BIT == 0 {
            return Ok((value, index + 1));
        }
    }
    if buf.len() < bytes_max {
        Err(RecordError::invalid(format!(
            "{name} is truncated after {} bytes",
            buf.len()
        )))
    } else {
        Err(RecordError::invalid(format!(
            "{name} is longer than {bytes_max} bytes"
        )))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use proptest::prelude::*;

    fn varint_bytes(value: i32) -> Vec<u8> {
        let mut out = Vec::new();
        encode_varint(value, &mut out);
        out
    }

    fn varlong_bytes(value: i64) -> Vec<u8> {
        let mut out = Vec::new();
        encode_varlong(value, &mut out);
        out
    }

    #[test]
    fn matches_kafka_byte_utils() {
        // Vectors from Kafka's ByteUtilsTest.
        assert_eq!(varint_bytes(0), [0x00]);
        assert_eq!(varint_bytes(-1), [0x01]);
        assert_eq!(varint_bytes(1), [0x02]);
        assert_eq!(varint_bytes(63), [0x7e]);
        assert_eq!(varint_bytes(-64), [0x7f]);
        assert_eq!(varint_bytes(64), [0x80, 0x01]);
        assert_eq!(varint_bytes(i32::MAX), [0xfe, 0xff, 0xff, 0xff, 0x0f]);
        assert_eq!(varint_bytes(i32::MIN), [0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert_eq!(varlong_bytes(i64::MIN).len(), VARLONG_BYTES_MAX);
        assert_eq!(varlong_bytes(i64::MAX).len(), VARLONG_BYTES_MAX);
    }

    #[test]
    fn refuses_overlong_truncated_and_overflowing_encodings() {
        let six = [0x80, 0x80, 0x80, 0x80, 0x80, 0x00];
        assert!(decode_varint(&six).is_err());
        let eleven = [0x80; 11];
        assert!(decode_varlong(&eleven).is_err());
        assert!(decode_varint(&[]).is_err());
        assert!(decode_varint(&[0x80, 0x80]).is_err());
        assert!(decode_varlong(&[0xff; 9]).is_err());
        // Fifth byte with bits beyond 32, tenth byte with bits beyond 64.
        assert!(decode_varint(&[0xff, 0xff, 0xff, 0xff, 0x1f]).is_err());
        let mut too_wide = [0xff; 10];
        too_wide[9] = 0x02;
        assert!(decode_varlong(&too_wide).is_err());
        for error in [
            decode_varint(&six).unwrap_err(),
            decode_varint(&[]).unwrap_err(),
        ] {
            assert!(matches!(error, RecordError::InvalidRecord { .. }));
        }
    }

    #[test]
    fn reports_the_bytes_used_and_ignores_what_follows() {
        assert_eq!(decode_varint(&[0x80, 0x01, 0xff]).unwrap(), (64, 2));
        assert_eq!(decode_varlong(&[0x03, 0x80]).unwrap(), (-2, 1));
    }

    proptest! {
        #[test]
        fn varint_round_trips(value: i32) {
            let bytes = varint_bytes(value);
            prop_assert_eq!(bytes.len(), varint_size(value));
            prop_assert_eq!(decode_varint(&bytes).unwrap(), (value, bytes.len()));
        }

        #[test]
        fn varlong_round_trips(value: i64) {
            let bytes = varlong_bytes(value);
            prop_assert_eq!(bytes.len(), varlong_size(value));
            prop_assert_eq!(decode_varlong(&bytes).unwrap(), (value, bytes.len()));
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..12)) {
            let _ = decode_varint(&bytes);
            let _ = decode_varlong(&bytes);
        }
    }
}
