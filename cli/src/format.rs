//! The `-f` format strings (docs/CLI.md, "Format tokens"), in both directions.
//!
//! `consume -f '%p@%o %k=%v\n'` renders each record through the tokens; `produce -f '%k %v\n'`
//! uses the same tokens to cut records out of its input. A format is compiled once into a
//! list of [`Token`]s: literal bytes (escapes already resolved) and fields.
//!
//! The input side (what produce does with the tokens) lives in `format_input`.

use std::fmt;

use crate::record_view::RecordView;
use crate::timestamp::format_rfc3339;

/// A record field a format can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Topic,
    Partition,
    Offset,
    Key,
    KeyLength,
    Value,
    ValueLength,
    Headers,
    HeaderCount,
    TimestampMs,
    TimestampRfc3339,
    LeaderEpoch,
    LogStartOffset,
    HighWatermark,
}

/// One piece of a compiled format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    Literal(Vec<u8>),
    Field(Field),
}

/// A compiled `-f` format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    /// Read by `format_input` when the format is checked for input.
    pub(crate) tokens: Vec<Token>,
}

/// A format string that cannot be compiled, or cannot be used for input; a usage error (exit 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid format '{format}': {reason}")]
pub struct FormatError {
    pub format: String,
    pub reason: String,
}

impl Format {
    /// Compiles a format string.
    pub fn parse(format: &str) -> Result<Format, FormatError> {
        let error = |reason: String| FormatError {
            format: format.to_owned(),
            reason,
        };
        let mut tokens = Vec::new();
        let mut literal = Vec::new();
        let mut chars = format.chars().peekable();
        while let Some(c) = chars.next() {
            let field = match c {
                '\\' => {
                    let byte = match chars.next() {
                        Some('n') => b'\n',
                        Some('t') => b'\t',
                        Some('r') => b'\r',
                        Some('\\') => b'\\',
                        Some(other) => return Err(error(format!("unknown escape \\{other}"))),
                        None => return Err(error("ends with a lone \\".to_owned())),
                    };
                    literal.push(byte);
                    continue;
                }
                '%' => match chars.next() {
                    Some('%') => {
                        literal.push(b'%');
                        continue;
                    }
                    Some('t') => Field::Topic,
                    Some('p') => Field::Partition,
                    Some('o') => Field::Offset,
                    Some('k') => Field::Key,
                    Some('K') => Field::KeyLength,
                    Some('v') => Field::Value,
                    Some('V') => Field::ValueLength,
                    Some('h') => Field::Headers,
                    Some('H') => Field::HeaderCount,
                    Some('e') => Field::LeaderEpoch,
                    Some('[') => Field::LogStartOffset,
                    Some(']') => Field::HighWatermark,
                    Some('d') if chars.peek() == Some(&'{') => {
                        chars.next();
                        let mut modifier = String::new();
                        let mut closed = false;
                        for c in chars.by_ref() {
                            if c == '}' {
                                closed = true;
                                break;
                            }
                            modifier.push(c);
                        }
                        match (modifier.as_str(), closed) {
                            ("rfc3339", true) => Field::TimestampRfc3339,
                            ("unix_ms", true) => Field::TimestampMs,
                            (_, false) => {
                                return Err(error("%d{ is missing its closing }".to_owned()))
                            }
                            (other, true) => {
                                return Err(error(format!(
                                    "unknown modifier %d{{{other}}} (use %d{{rfc3339}})"
                                )))
                            }
                        }
                    }
                    Some('d') => Field::TimestampMs,
                    Some(other) => return Err(error(format!("unknown token %{other}"))),
                    None => {
                        return Err(error(
                            "ends with a lone % (write %% for a percent sign)".to_owned(),
                        ))
                    }
                },
                other => {
                    let mut utf8 = [0; 4];
                    literal.extend_from_slice(other.encode_utf8(&mut utf8).as_bytes());
                    continue;
                }
            };
            if !literal.is_empty() {
                tokens.push(Token::Literal(std::mem::take(&mut literal)));
            }
            tokens.push(Token::Field(field));
        }
        if !literal.is_empty() {
            tokens.push(Token::Literal(literal));
        }
        Ok(Format { tokens })
    }

    /// Appends one record rendered through the format to `out`. Keys, values and header
    /// values are written as raw bytes; null keys and tombstones print as empty text and
    /// unknown partition facts (`%e`, `%[`, `%]`) as `-`.
    pub fn render(&self, record: &RecordView<'_>, out: &mut Vec<u8>) {
        use std::io::Write as _;
        let optional = |out: &mut Vec<u8>, value: Option<i64>| match value {
            Some(value) => {
                let _ = write!(out, "{value}");
            }
            None => out.push(b'-'),
        };
        for token in &self.tokens {
            // Writing into a Vec cannot fail; the results below are infallible.
            let _ = match token {
                Token::Literal(bytes) => out.write_all(bytes),
                Token::Field(field) => match field {
                    Field::Topic => out.write_all(record.topic.as_bytes()),
                    Field::Partition => write!(out, "{}", record.partition),
                    Field::Offset => write!(out, "{}", record.offset),
                    Field::Key => out.write_all(record.key.unwrap_or_default()),
                    Field::KeyLength => write!(out, "{}", record.key.map_or(0, <[u8]>::len)),
                    Field::Value => out.write_all(record.value.unwrap_or_default()),
                    Field::ValueLength => write!(out, "{}", record.value.map_or(0, <[u8]>::len)),
                    Field::Headers => {
                        for (index, header) in record.headers.iter().enumerate() {
                            if index > 0 {
                                out.push(b',');
                            }
                            out.extend_from_slice(header.key.as_bytes());
                            out.push(b'=');
                            out.extend_from_slice(header.value.unwrap_or_default());
                        }
                        Ok(())
                    }
                    Field::HeaderCount => write!(out, "{}", record.headers.len()),
                    Field::TimestampMs => write!(out, "{}", record.timestamp_ms),
                    Field::TimestampRfc3339 => {
                        out.write_all(format_rfc3339(record.timestamp_ms).as_bytes())
                    }
                    Field::LeaderEpoch => {
                        optional(out, record.leader_epoch.map(i64::from));
                        Ok(())
                    }
                    Field::LogStartOffset => {
                        optional(out, record.log_start_offset);
                        Ok(())
                    }
                    Field::HighWatermark => {
                        optional(out, record.high_watermark);
                        Ok(())
                    }
                },
            };
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Topic => "%t (topic)",
            Field::Partition => "%p (partition)",
            Field::Offset => "%o (offset)",
            Field::Key => "%k (key)",
            Field::KeyLength => "%K (key length)",
            Field::Value => "%v (value)",
            Field::ValueLength => "%V (value length)",
            Field::Headers => "%h (headers)",
            Field::HeaderCount => "%H (header count)",
            Field::TimestampMs => "%d (timestamp)",
            Field::TimestampRfc3339 => "%d{rfc3339} (timestamp)",
            Field::LeaderEpoch => "%e (leader epoch)",
            Field::LogStartOffset => "%[ (log start offset)",
            Field::HighWatermark => "%] (high watermark)",
        })
    }
}

#[cfg(test)]
#[path = "format_tests.rs"]
mod tests;
