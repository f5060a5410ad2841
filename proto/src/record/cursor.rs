//! [`ByteCursor`]: a bounds-checked reader over a byte slice, the only way the record
//! decoders look at untrusted bytes.
//!
//! Every read checks the bytes remaining first and fails with
//! [`RecordError::InvalidRecord`] instead of panicking; every length it returns has been
//! checked against the bytes remaining, so callers may size an allocation by it. Reads
//! borrow from the underlying slice and never allocate.

use super::error::RecordError;
use super::varint::{decode_varint, decode_varlong};

/// A position in a borrowed byte slice.
#[derive(Debug, Clone)]
pub(crate) struct ByteCursor<'a> {
    buf: &'a [u8],
    position: usize,
}

impl<'a> ByteCursor<'a> {
    #[inline(always)]
    pub(crate) fn new(buf: &'a [u8]) -> ByteCursor<'a> {
        ByteCursor { buf, position: 0 }
    }

    /// Bytes not read yet.
    #[inline(always)]
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.position)
    }

    #[inline(always)]
    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The unread bytes, without consuming them.
    #[inline(always)]
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.buf.get(self.position..).unwrap_or(&[])
    }

    #[inline(always)]
    pub(crate) fn read_i8(&mut self, field: &str) -> Result<i8, RecordError> {
        let Some(&byte) = self.rest().first() else {
            return Err(missing(field));
        };
        self.position += 1;
        Ok(byte as i8)
    }

    #[inline(always)]
    pub(crate) fn read_varint(&mut self, field: &str) -> Result<i32, RecordError> {
        match decode_varint(self.rest()) {
            Ok((value, length)) => {
                self.position += length;
                Ok(value)
            }
            Err(error) => Err(in_field(field, error)),
        }
    }

    #[inline(always)]
    pub(crate) fn read_varlong(&mut self, field: &str) -> Result<i64, RecordError> {
        match decode_varlong(self.rest()) {
            Ok((value, length)) => {
                self.position += length;
                Ok(value)
            }
            Err(error) => Err(in_field(field, error)),
        }
    }

    /// The next `length` bytes.
    #[inline(always)]
    pub(crate) fn read_bytes(
        &mut self,
        length: usize,
        field: &str,
    ) -> Result<&'a [u8], RecordError> {
        let Some(bytes) = self.rest().get(..length) else {
            return Err(short(field, length, self.remaining()));
        };
        self.position += length;
        Ok(bytes)
    }

    /// A length varint followed by that many bytes; -1 means null, any other negative
    /// length is refused.
    #[inline(always)]
    pub(crate) fn read_nullable_bytes(
        &mut self,
        field: &str,
    ) -> Result<Option<&'a [u8]>, RecordError> {
        match self.read_varint(field)? {
            -1 => Ok(None),
            length if length < 0 => Err(negative_length(field, length)),
            length => self.read_bytes(length as usize, field).map(Some),
        }
    }

    /// A count varint that must be non-negative and at most what the remaining bytes could
    /// hold at `item_bytes_min` bytes per item, so that it can size an allocation.
    #[inline(always)]
    pub(crate) fn read_count(
        &mut self,
        item_bytes_min: usize,
        field: &str,
    ) -> Result<usize, RecordError> {
        let count = self.read_varint(field)?;
        let Ok(count) = usize::try_from(count) else {
            return Err(negative_count(field, count));
        };
        let fits = self.remaining() / item_bytes_min.max(1);
        if count > fits {
            return Err(count_too_large(field, count, self.remaining()));
        }
        Ok(count)
    }
}

// The errors are built out of line: the reads above stay small enough to inline into the
// record walks, which run them several times per record.

#[cold]
fn missing(field: &str) -> RecordError {
    RecordError::invalid(format!("{field} is missing"))
}

#[cold]
fn short(field: &str, length: usize, remaining: usize) -> RecordError {
    RecordError::invalid(format!(
        "{field} needs {length} bytes but only {remaining} remain"
    ))
}

#[cold]
fn negative_length(field: &str, length: i32) -> RecordError {
    RecordError::invalid(format!(
        "{field} has negative length {length}; only -1 (null) is allowed"
    ))
}

#[cold]
fn negative_count(field: &str, count: i32) -> RecordError {
    RecordError::invalid(format!("{field} {count} is negative"))
}

#[cold]
fn count_too_large(field: &str, count: usize, remaining: usize) -> RecordError {
    RecordError::invalid(format!(
        "{field} {count} is more than the {remaining} remaining bytes can hold"
    ))
}

/// Prefixes a varint decoding error with the field it was read for.
#[cold]
fn in_field(field: &str, error: RecordError) -> RecordError {
    match error {
        RecordError::InvalidRecord { reason } => RecordError::invalid(format!("{field}: {reason}")),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn reads_fail_instead_of_running_past_the_end() {
        let mut cursor = ByteCursor::new(&[0x04, 0xaa]);
        assert!(cursor.read_nullable_bytes("key").is_err());
        let mut cursor = ByteCursor::new(&[0x01]);
        assert_eq!(cursor.read_nullable_bytes("key").unwrap(), None);
        assert!(cursor.is_empty());
        assert!(cursor.read_i8("attributes").is_err());
    }

    #[test]
    fn negative_lengths_other_than_null_are_refused() {
        // -2 zig-zags to 3.
        let mut cursor = ByteCursor::new(&[0x03, 0, 0, 0]);
        let error = cursor.read_nullable_bytes("value").unwrap_err();
        assert!(error.to_string().contains("negative length -2"), "{error}");
    }

    #[test]
    fn counts_are_bounded_by_the_remaining_bytes() {
        // 3 items claimed, 4 bytes left, 2 bytes per item at least.
        let mut cursor = ByteCursor::new(&[0x06, 0, 0, 0, 0]);
        assert!(cursor.clone().read_count(2, "header_count").is_err());
        assert_eq!(cursor.read_count(1, "header_count").unwrap(), 3);
    }
}
