//! Cutting records out of `produce` input with a `-f` format (docs/CLI.md, "Produce").
//!
//! Parsing rule (rpk's): a field that is not length-prefixed reads up to the literal that
//! follows it, so two such fields may not touch (`%k%v` is refused for input); `%K`/`%V`
//! before `%k`/`%v` make those fields read exactly that many bytes. When the format ends in
//! a newline it is line-oriented: a field that meets a newline before its delimiter is an
//! error for that record instead of swallowing the next line. Input that ends without the
//! final literal (a last line without `\n`) is still a record.

use std::io::{BufRead, Read};

use crate::format::{Field, Format, FormatError, Token};
use crate::timestamp::parse_timestamp;

/// A record of the input that does not match the format.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("record {record}: {reason}")]
    Mismatch { record: u64, reason: String },
    #[error("reading input")]
    Io(#[from] std::io::Error),
}

/// What the input format cut out of one record.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParsedRecord {
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
    pub partition: Option<i32>,
    pub timestamp_ms: Option<i64>,
}

impl Format {
    /// Checks that the format can cut records out of input: only key, value, their lengths,
    /// headers, partition and timestamp may appear, and unsized fields need a delimiter.
    pub fn for_input(self, source: &str) -> Result<InputFormat, FormatError> {
        let error = |reason: String| FormatError {
            format: source.to_owned(),
            reason,
        };
        let mut key_sized = false;
        let mut value_sized = false;
        for (index, token) in self.tokens.iter().enumerate() {
            let Token::Field(field) = token else { continue };
            let sized = match field {
                Field::KeyLength => {
                    key_sized = true;
                    false
                }
                Field::ValueLength => {
                    value_sized = true;
                    false
                }
                Field::Key => key_sized,
                Field::Value => value_sized,
                Field::Headers
                | Field::Partition
                | Field::TimestampMs
                | Field::TimestampRfc3339 => false,
                other => return Err(error(format!("{other} cannot be read from input"))),
            };
            let next_is_field = matches!(self.tokens.get(index + 1), Some(Token::Field(_)));
            if !sized && next_is_field {
                return Err(error(format!(
                    "{field} must be followed by a delimiter (e.g. '%k %v\\n')"
                )));
            }
        }
        let line_oriented =
            matches!(self.tokens.last(), Some(Token::Literal(l)) if l.ends_with(b"\n"));
        Ok(InputFormat {
            tokens: self.tokens,
            line_oriented,
            records_read: 0,
        })
    }
}

/// A format checked for input; reads records one by one from a [`BufRead`]. A clone starts
/// counting records where the original was, so clone it before reading.
#[derive(Debug, Clone)]
pub struct InputFormat {
    tokens: Vec<Token>,
    line_oriented: bool,
    records_read: u64,
}

impl InputFormat {
    /// Reads the next record; `Ok(None)` at the end of input.
    pub fn read_record<R: BufRead>(
        &mut self,
        reader: &mut R,
    ) -> Result<Option<ParsedRecord>, InputError> {
        if reader.fill_buf()?.is_empty() {
            return Ok(None);
        }
        self.records_read += 1;
        let record = self.records_read;
        let mismatch = |reason: String| InputError::Mismatch { record, reason };
        let mut parsed = ParsedRecord::default();
        let (mut key_length, mut value_length) = (None, None);
        let mut index = 0;
        while let Some(token) = self.tokens.get(index) {
            let is_last = index + 1 == self.tokens.len();
            index += 1;
            let field = match token {
                Token::Literal(literal) => {
                    let found = read_exact_or_eof(reader, literal.len())?;
                    if found.is_empty() && is_last {
                        break; // a last line without its final delimiter
                    }
                    if found != *literal {
                        return Err(mismatch(format!(
                            "expected {:?}, found {:?}",
                            String::from_utf8_lossy(literal),
                            String::from_utf8_lossy(&found)
                        )));
                    }
                    continue;
                }
                Token::Field(field) => *field,
            };
            let size = match field {
                Field::Key => key_length,
                Field::Value => value_length,
                _ => None,
            };
            let text = if let Some(size) = size {
                let bytes = read_exact_or_eof(reader, size)?;
                if bytes.len() != size {
                    return Err(mismatch(format!(
                        "input ended inside a {size}-byte {field}"
                    )));
                }
                bytes
            } else if let Some(Token::Literal(delimiter)) = self.tokens.get(index) {
                let delimiter_is_last = index + 1 == self.tokens.len();
                let (bytes, end) = read_field(reader, delimiter, self.line_oriented)?;
                match end {
                    FieldEnd::Delimiter => index += 1,
                    FieldEnd::Eof if delimiter_is_last => index += 1,
                    FieldEnd::Eof | FieldEnd::Newline => {
                        return Err(mismatch(format!(
                            "{field} is not followed by {:?}",
                            String::from_utf8_lossy(delimiter)
                        )))
                    }
                }
                bytes
            } else {
                let mut rest = Vec::new();
                reader.read_to_end(&mut rest)?;
                rest
            };
            assign(&mut parsed, field, text, &mut key_length, &mut value_length)
                .map_err(mismatch)?;
        }
        Ok(Some(parsed))
    }
}

fn assign(
    parsed: &mut ParsedRecord,
    field: Field,
    bytes: Vec<u8>,
    key_length: &mut Option<usize>,
    value_length: &mut Option<usize>,
) -> Result<(), String> {
    match field {
        Field::Key => parsed.key = Some(bytes),
        Field::Value => parsed.value = bytes,
        Field::Headers => parsed.headers = parse_headers(&bytes)?,
        Field::KeyLength => *key_length = Some(parse_number(&bytes, "key length")?),
        Field::ValueLength => *value_length = Some(parse_number(&bytes, "value length")?),
        Field::Partition => parsed.partition = Some(parse_number(&bytes, "partition")?),
        Field::TimestampMs | Field::TimestampRfc3339 => {
            let text = String::from_utf8_lossy(&bytes);
            let now = crate::timestamp::now_ms();
            parsed.timestamp_ms =
                Some(parse_timestamp(text.trim(), now).map_err(|e| e.to_string())?);
        }
        other => return Err(format!("{other} cannot be read from input")),
    }
    Ok(())
}

/// A non-negative decimal number of the target type, surrounding spaces allowed.
fn parse_number<T: std::str::FromStr>(bytes: &[u8], what: &str) -> Result<T, String> {
    let text = String::from_utf8_lossy(bytes);
    text.trim()
        .parse::<T>()
        .ok()
        .filter(|_| !text.trim().starts_with(['-', '+']))
        .ok_or_else(|| format!("{what} {text:?} is not a non-negative number"))
}

/// `k=v,k=v`, split on the first `=` of each pair; empty input means no headers.
pub fn parse_headers(bytes: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    bytes
        .split(|&b| b == b',')
        .map(|pair| {
            let equals = pair.iter().position(|&b| b == b'=').ok_or_else(|| {
                format!(
                    "header {:?} is not key=value",
                    String::from_utf8_lossy(pair)
                )
            })?;
            let key = String::from_utf8(pair[..equals].to_vec())
                .map_err(|_| "header keys must be UTF-8".to_owned())?;
            Ok((key, pair[equals + 1..].to_vec()))
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldEnd {
    Delimiter,
    Newline,
    Eof,
}

/// Reads up to `delimiter` (consumed, not returned), a stray newline in line mode, or EOF.
fn read_field<R: BufRead>(
    reader: &mut R,
    delimiter: &[u8],
    line_oriented: bool,
) -> std::io::Result<(Vec<u8>, FieldEnd)> {
    let stop_at_newline = line_oriented && !delimiter.contains(&b'\n');
    let mut out = Vec::new();
    loop {
        let buffer = reader.fill_buf()?;
        if buffer.is_empty() {
            return Ok((out, FieldEnd::Eof));
        }
        for (used, &byte) in buffer.iter().enumerate() {
            if stop_at_newline && byte == b'\n' {
                reader.consume(used + 1);
                return Ok((out, FieldEnd::Newline));
            }
            out.push(byte);
            if out.ends_with(delimiter) {
                out.truncate(out.len() - delimiter.len());
                reader.consume(used + 1);
                return Ok((out, FieldEnd::Delimiter));
            }
        }
        let used = buffer.len();
        reader.consume(used);
    }
}

/// Reads `count` bytes, or fewer if the input ends first.
fn read_exact_or_eof<R: BufRead>(reader: &mut R, count: usize) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(count.min(1 << 20));
    Read::take(&mut *reader, count as u64).read_to_end(&mut out)?;
    Ok(out)
}

#[cfg(test)]
#[path = "format_input_tests.rs"]
mod tests;
