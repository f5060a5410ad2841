//! The wire form of one record inside a batch's records section: encoding a [`Record`] and
//! parsing the bytes back into a borrowed [`RecordView`].
//!
//! ```text
//! length          varint   bytes after this field
//! attributes      i8       unused, 0
//! timestamp_delta varlong  timestamp - base_timestamp (wrapping)
//! offset_delta    varint   position in the batch: 0, 1, 2, …
//! key_length      varint   -1 = null key
//! key             bytes
//! value_length    varint   -1 = null value
//! value           bytes
//! header_count    varint
//! headers         (key_length varint ≥ 0 | key utf8 | value_length varint, -1 = null | value)*
//! ```
//!
//! Parsing checks every length against the bytes remaining inside the record before using
//! it, refuses negative lengths other than -1, requires `length` to match the fields exactly
//! and header keys to be UTF-8, and allocates nothing: a view borrows its slices.

use super::cursor::ByteCursor;
use super::error::RecordError;
use super::model::{Header, Record};
use super::varint::{encode_varint, encode_varlong, varint_size, varlong_size};

/// The smallest possible record: seven one-byte fields (length, attributes, both deltas,
/// null key, null value, zero headers). Bounds a claimed record count by the bytes present.
pub(crate) const RECORD_BYTES_MIN: usize = 7;
/// The smallest possible header: an empty key and a null value.
const HEADER_BYTES_MIN: usize = 2;

/// One parsed record, borrowing from the records section.
#[derive(Debug, Clone)]
pub(crate) struct RecordView<'a> {
    /// The record's size on the wire, its length varint included.
    pub(crate) size_bytes: usize,
    pub(crate) attributes: i8,
    pub(crate) timestamp_delta: i64,
    pub(crate) offset_delta: i32,
    pub(crate) key: Option<&'a [u8]>,
    pub(crate) value: Option<&'a [u8]>,
    pub(crate) header_count: usize,
    /// The header bytes, already checked by [`parse_record`].
    headers: &'a [u8],
}

/// One parsed header, borrowing from the records section.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeaderView<'a> {
    pub(crate) key: &'a str,
    pub(crate) value: Option<&'a [u8]>,
}

impl<'a> RecordView<'a> {
    /// The record's headers. They were all parsed once by [`parse_record`], so the iterator
    /// cannot meet an error in practice; it still reports one rather than assume it.
    pub(crate) fn headers(&self) -> impl Iterator<Item = Result<HeaderView<'a>, RecordError>> + 'a {
        let mut cursor = ByteCursor::new(self.headers);
        (0..self.header_count).map(move |_| parse_header(&mut cursor))
    }
}

/// Parses the record at the cursor and moves past it.
#[inline]
pub(crate) fn parse_record<'a>(cursor: &mut ByteCursor<'a>) -> Result<RecordView<'a>, RecordError> {
    let remaining_before = cursor.remaining();
    let length = cursor.read_varint("record length")?;
    let Ok(length) = usize::try_from(length) else {
        return Err(negative_record_length(length));
    };
    let body = cursor.read_bytes(length, "record")?;
    let size_bytes = remaining_before - cursor.remaining();

    let mut body = ByteCursor::new(body);
    let attributes = body.read_i8("record attributes")?;
    let timestamp_delta = body.read_varlong("timestamp_delta")?;
    let offset_delta = body.read_varint("offset_delta")?;
    let key = body.read_nullable_bytes("key")?;
    let value = body.read_nullable_bytes("value")?;
    let header_count = body.read_count(HEADER_BYTES_MIN, "header_count")?;
    let headers = body.rest();
    for _ in 0..header_count {
        parse_header(&mut body)?;
    }
    if !body.is_empty() {
        return Err(length_mismatch(length, body.remaining()));
    }
    Ok(RecordView {
        size_bytes,
        attributes,
        timestamp_delta,
        offset_delta,
        key,
        value,
        header_count,
        headers,
    })
}

#[cold]
fn negative_record_length(length: i32) -> RecordError {
    RecordError::invalid(format!("record length {length} is negative"))
}

#[cold]
fn length_mismatch(length: usize, left: usize) -> RecordError {
    RecordError::invalid(format!(
        "record length says {length} bytes but its fields end {left} bytes earlier"
    ))
}

fn parse_header<'a>(cursor: &mut ByteCursor<'a>) -> Result<HeaderView<'a>, RecordError> {
    let key = cursor
        .read_nullable_bytes("header key")?
        .ok_or_else(|| RecordError::invalid("header key is null"))?;
    let key = std::str::from_utf8(key)
        .map_err(|error| RecordError::invalid(format!("header key is not UTF-8: {error}")))?;
    let value = cursor.read_nullable_bytes("header value")?;
    Ok(HeaderView { key, value })
}

/// One header of a record to encode, borrowed: implemented for the codec's [`Header`]
/// and for a client's `(String, Option<Bytes>)` pairs, so records are encoded straight
/// from the caller's types without building a codec [`Record`] first.
pub trait HeaderFields {
    fn key(&self) -> &str;
    fn value(&self) -> Option<&[u8]>;
}

impl HeaderFields for Header {
    fn key(&self) -> &str {
        &self.key
    }

    fn value(&self) -> Option<&[u8]> {
        self.value.as_deref()
    }
}

impl HeaderFields for (String, Option<bytes::Bytes>) {
    fn key(&self) -> &str {
        &self.0
    }

    fn value(&self) -> Option<&[u8]> {
        self.1.as_deref()
    }
}

/// A record to encode, borrowed from whatever holds it.
#[derive(Debug, Clone, Copy)]
pub struct RecordFields<'a, H> {
    /// Milliseconds since the Unix epoch, or `NO_TIMESTAMP`.
    pub timestamp_ms: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: &'a [H],
}

impl Record {
    /// This record as [`RecordFields`].
    pub fn fields(&self) -> RecordFields<'_, Header> {
        RecordFields {
            timestamp_ms: self.timestamp_ms,
            key: self.key.as_deref(),
            value: self.value.as_deref(),
            headers: &self.headers,
        }
    }
}

/// Appends `record` to `out` in wire form. Checks every length before writing, so on error
/// `out` is unchanged.
#[cfg(test)]
pub(crate) fn encode_record<H: HeaderFields>(
    record: &RecordFields<'_, H>,
    offset_delta: i32,
    timestamp_delta: i64,
    out: &mut Vec<u8>,
) -> Result<(), RecordError> {
    let body_bytes = body_size(record, offset_delta, timestamp_delta)?;
    encode_sized(record, offset_delta, timestamp_delta, body_bytes, out)
}

/// [`encode_record`] with the body size already computed by [`body_size`].
pub(crate) fn encode_sized<H: HeaderFields>(
    record: &RecordFields<'_, H>,
    offset_delta: i32,
    timestamp_delta: i64,
    body_bytes: usize,
    out: &mut Vec<u8>,
) -> Result<(), RecordError> {
    let body_length = i32::try_from(body_bytes).map_err(|_| too_large(offset_delta, body_bytes))?;
    out.reserve(varint_size(body_length) + body_bytes);
    encode_varint(body_length, out);
    out.push(0); // attributes
    encode_varlong(timestamp_delta, out);
    encode_varint(offset_delta, out);
    put_nullable(record.key, out);
    put_nullable(record.value, out);
    // `body_size` checked that the count and every length fit in an i32.
    encode_varint(record.headers.len() as i32, out);
    for header in record.headers {
        put_nullable(Some(header.key().as_bytes()), out);
        put_nullable(header.value(), out);
    }
    Ok(())
}

/// The size `encode_record` writes for `record`, its length varint included.
pub(crate) fn encoded_size<H: HeaderFields>(
    record: &RecordFields<'_, H>,
    offset_delta: i32,
    timestamp_delta: i64,
) -> Result<usize, RecordError> {
    let body_bytes = body_size(record, offset_delta, timestamp_delta)?;
    sized_with_length(body_bytes, offset_delta)
}

/// The full size of a record whose body is `body_bytes` long.
#[inline]
pub(crate) fn sized_with_length(
    body_bytes: usize,
    offset_delta: i32,
) -> Result<usize, RecordError> {
    let body_length = i32::try_from(body_bytes).map_err(|_| too_large(offset_delta, body_bytes))?;
    Ok(varint_size(body_length) + body_bytes)
}

/// The size of a record's fields after its length varint.
pub(crate) fn body_size<H: HeaderFields>(
    record: &RecordFields<'_, H>,
    offset_delta: i32,
    timestamp_delta: i64,
) -> Result<usize, RecordError> {
    let header_count = i32::try_from(record.headers.len()).map_err(|_| {
        RecordError::invalid(format!(
            "{} headers do not fit in a record",
            record.headers.len()
        ))
    })?;
    let mut size = 1 + varlong_size(timestamp_delta) + varint_size(offset_delta);
    size = size.saturating_add(nullable_size(record.key, offset_delta)?);
    size = size.saturating_add(nullable_size(record.value, offset_delta)?);
    size = size.saturating_add(varint_size(header_count));
    for header in record.headers {
        size = size.saturating_add(nullable_size(Some(header.key().as_bytes()), offset_delta)?);
        size = size.saturating_add(nullable_size(header.value(), offset_delta)?);
    }
    Ok(size)
}

#[inline]
fn nullable_size(bytes: Option<&[u8]>, offset_delta: i32) -> Result<usize, RecordError> {
    match bytes {
        None => Ok(varint_size(-1)),
        Some(bytes) => {
            let length =
                i32::try_from(bytes.len()).map_err(|_| too_large(offset_delta, bytes.len()))?;
            Ok(varint_size(length) + bytes.len())
        }
    }
}

/// Writes a length varint (-1 for null) and the bytes. Lengths were checked by `body_size`.
#[inline]
fn put_nullable(bytes: Option<&[u8]>, out: &mut Vec<u8>) {
    match bytes {
        None => encode_varint(-1, out),
        Some(bytes) => {
            encode_varint(bytes.len() as i32, out);
            out.extend_from_slice(bytes);
        }
    }
}

#[cold]
fn too_large(offset_delta: i32, size: usize) -> RecordError {
    RecordError::RecordTooLarge {
        offset_delta,
        size: size as u64,
        max: i32::MAX as u64,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::record::model::Header;
    use bytes::Bytes;

    #[test]
    fn encoded_record_parses_back_and_size_is_exact() {
        let record = Record {
            timestamp_ms: 5,
            key: None,
            value: Some(Bytes::from_static(b"value")),
            headers: vec![
                Header::new("k", None),
                Header::new("", Some(Bytes::from_static(b"v"))),
            ],
        };
        let mut out = Vec::new();
        encode_record(&record.fields(), 3, -7, &mut out).unwrap();
        assert_eq!(out.len(), encoded_size(&record.fields(), 3, -7).unwrap());
        let mut cursor = ByteCursor::new(&out);
        let view = parse_record(&mut cursor).unwrap();
        assert!(cursor.is_empty());
        assert_eq!(
            (view.offset_delta, view.timestamp_delta, view.size_bytes),
            (3, -7, out.len())
        );
        assert_eq!((view.key, view.value), (None, Some(&b"value"[..])));
        let headers: Vec<(&str, Option<&[u8]>)> = view
            .headers()
            .map(|header| header.map(|header| (header.key, header.value)).unwrap())
            .collect();
        assert_eq!(headers, [("k", None), ("", Some(&b"v"[..]))]);
    }

    #[test]
    fn smallest_record_is_seven_bytes() {
        let record = Record {
            timestamp_ms: 0,
            key: None,
            value: None,
            headers: Vec::new(),
        };
        assert_eq!(
            encoded_size(&record.fields(), 0, 0).unwrap(),
            RECORD_BYTES_MIN
        );
    }

    #[test]
    fn length_must_match_the_fields() {
        // length 7, but the fields (attributes, deltas, null key/value, no headers) take 6.
        let bytes = [0x0e, 0, 0, 0, 0x01, 0x01, 0, 0];
        let error = parse_record(&mut ByteCursor::new(&bytes)).unwrap_err();
        assert!(error.to_string().contains("end 1 bytes earlier"), "{error}");
    }

    #[test]
    fn header_keys_must_be_utf8_and_not_null() {
        // One header whose key is the single byte 0xff.
        let bad_utf8 = [0x12, 0, 0, 0, 0x01, 0x01, 0x02, 0x02, 0xff, 0x01];
        assert!(parse_record(&mut ByteCursor::new(&bad_utf8)).is_err());
        let null_key = [0x10, 0, 0, 0, 0x01, 0x01, 0x02, 0x01, 0x01];
        assert!(parse_record(&mut ByteCursor::new(&null_key)).is_err());
    }
}
