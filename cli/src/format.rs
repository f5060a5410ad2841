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
                        Some('x') => {
                            return Err(error(
                                "unknown escape \\x (kcat's \\xXX is not supported; \
                                 write the character itself)"
                                    .to_owned(),
                            ))
                        }
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
                    Some(other) => return Err(error(unknown_token(other))),
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

/// One row of the `-f` token table that `--help` prints.
#[derive(Debug, Clone, Copy)]
pub struct TokenHelp {
    pub token: &'static str,
    pub meaning: &'static str,
    /// Whether `produce -f` can read it from input.
    pub input: bool,
}

const fn row(token: &'static str, meaning: &'static str, input: bool) -> TokenHelp {
    TokenHelp {
        token,
        meaning,
        input,
    }
}

/// Every token the parser accepts, with its meaning: the single source of the `--help`
/// tables (a unit test checks the parser and this table agree).
pub const TOKENS: &[TokenHelp] = &[
    row("%t", "topic", false),
    row("%p", "partition", true),
    row("%o", "offset", false),
    row("%k", "key (a null key prints as nothing)", true),
    row("%K", "key length in bytes (0 for a null key)", true),
    row(
        "%v",
        "value (kcat: %s; a null value prints as nothing)",
        true,
    ),
    row(
        "%V",
        "value length in bytes (kcat: %S; 0 for a null value)",
        true,
    ),
    row("%h", "headers as key=value,key=value", true),
    row("%H", "number of headers", false),
    row(
        "%d",
        "timestamp in unix milliseconds (kcat: %T); also %d{unix_ms}",
        true,
    ),
    row(
        "%d{rfc3339}",
        "timestamp as RFC 3339, 2024-01-01T12:00:00.000Z",
        true,
    ),
    row("%e", "leader epoch of the record's batch", false),
    row("%[", "log start offset of the partition", false),
    row("%]", "high watermark of the partition", false),
    row("%%", "a percent sign", true),
    row(
        "\\n \\t \\r \\\\",
        "newline, tab, carriage return, backslash",
        true,
    ),
];

/// The token table as `--help` prints it; `for_input` keeps the tokens produce can read.
pub fn tokens_help(for_input: bool) -> String {
    TOKENS
        .iter()
        .filter(|row| row.input || !for_input)
        .map(|row| format!("  {:<13} {}\n", row.token, row.meaning))
        .collect()
}

/// The error for an unknown `%` token, with Strata's name for kcat's spellings.
fn unknown_token(token: char) -> String {
    let hint = match token {
        's' => "kcat's %s is %v (value) here",
        'S' => "kcat's %S is %V (value length) here",
        'T' => "kcat's %T is %d (timestamp, unix ms) here; %d{rfc3339} prints a date",
        'R' => {
            "kcat's %R (value length as 4 binary bytes) has no equivalent; \
             %V prints the length as text"
        }
        _ => "tokens: %t %p %o %k %K %v %V %h %H %d %d{rfc3339} %e %[ %] %%; see --help",
    };
    format!("unknown token %{token} ({hint})")
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
