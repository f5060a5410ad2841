//! The JSON record (docs/CLI.md, "JSON records"): consume's default output, one object per line.
//!
//! Field names and order follow rpk's record (`topic, partition, offset, timestamp, key,
//! value, headers`). Keys, values and header values are JSON strings when they are valid
//! UTF-8; otherwise they are standard base64 and the object gains `key_encoding`,
//! `value_encoding` (or, in a header, `value_encoding`) set to `"base64"`. A null key and a
//! tombstone are `null`. With `--meta-only` the value is left out and `value_size` (bytes)
//! takes its place. Fields are only ever added, never renamed (docs/CLI.md, "Output").

use std::borrow::Cow;

use base64::Engine as _;
use serde::Serialize;

use crate::record_view::RecordView;

/// How to print records as JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JsonOptions {
    /// Indent the object (`--pretty`); otherwise one line per record.
    pub pretty: bool,
    /// Replace the value with its size (`--meta-only`).
    pub meta_only: bool,
}

const BASE64: &str = "base64";

#[derive(Debug, Serialize)]
struct JsonRecord<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
    timestamp: i64,
    key: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_encoding: Option<&'static str>,
    /// Outer `None`: left out (meta-only); `Some(None)`: a tombstone, printed as `null`.
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<Option<Cow<'a, str>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_encoding: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_size: Option<usize>,
    headers: Vec<JsonHeader<'a>>,
}

#[derive(Debug, Serialize)]
struct JsonHeader<'a> {
    key: &'a str,
    value: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_encoding: Option<&'static str>,
}

/// Text for a byte string, and the encoding marker when it had to be base64.
fn encode(bytes: Option<&[u8]>) -> (Option<Cow<'_, str>>, Option<&'static str>) {
    match bytes.map(std::str::from_utf8) {
        None => (None, None),
        Some(Ok(text)) => (Some(Cow::Borrowed(text)), None),
        Some(Err(_)) => {
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(bytes.unwrap_or_default());
            (Some(Cow::Owned(encoded)), Some(BASE64))
        }
    }
}

/// Appends the record as JSON, followed by a newline, to `out`.
pub fn write_json_record(record: &RecordView<'_>, options: JsonOptions, out: &mut Vec<u8>) {
    let (key, key_encoding) = encode(record.key);
    let (value, value_encoding, value_size) = if options.meta_only {
        (None, None, Some(record.value.map_or(0, <[u8]>::len)))
    } else {
        let (value, encoding) = encode(record.value);
        (Some(value), encoding, None)
    };
    let headers = record
        .headers
        .iter()
        .map(|header| {
            let (value, value_encoding) = encode(header.value);
            JsonHeader {
                key: header.key,
                value,
                value_encoding,
            }
        })
        .collect();
    let json = JsonRecord {
        topic: record.topic,
        partition: record.partition,
        offset: record.offset,
        timestamp: record.timestamp_ms,
        key,
        key_encoding,
        value,
        value_encoding,
        value_size,
        headers,
    };
    // Serialising into a Vec cannot fail: every field is a string, a number, null or a
    // list of those, and writing to memory has no I/O error.
    let written = if options.pretty {
        serde_json::to_writer_pretty(&mut *out, &json)
    } else {
        serde_json::to_writer(&mut *out, &json)
    };
    debug_assert!(written.is_ok(), "{written:?}");
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::record_view::HeaderView;

    fn json(record: &RecordView<'_>, options: JsonOptions) -> String {
        let mut out = Vec::new();
        write_json_record(record, options, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn record() -> RecordView<'static> {
        RecordView {
            topic: "orders",
            partition: 2,
            offset: 41,
            timestamp_ms: 1_700_000_000_000,
            key: Some(b"k1"),
            value: Some(br#"{"id":7}"#),
            headers: vec![HeaderView {
                key: "trace",
                value: Some(b"abc"),
            }],
            ..RecordView::default()
        }
    }

    #[test]
    fn matches_the_documented_example() {
        assert_eq!(
            json(&record(), JsonOptions::default()),
            concat!(
                r#"{"topic":"orders","partition":2,"offset":41,"timestamp":1700000000000,"#,
                r#""key":"k1","value":"{\"id\":7}","headers":[{"key":"trace","value":"abc"}]}"#,
                "\n"
            )
        );
    }

    #[test]
    fn non_utf8_bytes_are_base64_with_a_marker() {
        let binary = RecordView {
            key: Some(&[0xff, 0x00]),
            value: Some(&[0xc3, 0x28]),
            headers: vec![HeaderView {
                key: "h",
                value: Some(&[0x80]),
            }],
            ..record()
        };
        let text = json(&binary, JsonOptions::default());
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["key"], "/wA=");
        assert_eq!(parsed["key_encoding"], "base64");
        assert_eq!(parsed["value"], "wyg=");
        assert_eq!(parsed["value_encoding"], "base64");
        assert_eq!(parsed["headers"][0]["value"], "gA==");
        assert_eq!(parsed["headers"][0]["value_encoding"], "base64");
    }

    #[test]
    fn null_key_and_tombstone_are_null() {
        let tombstone = RecordView {
            key: None,
            value: None,
            headers: vec![HeaderView {
                key: "h",
                value: None,
            }],
            ..record()
        };
        let parsed: serde_json::Value =
            serde_json::from_str(&json(&tombstone, JsonOptions::default())).unwrap();
        assert!(parsed["key"].is_null());
        assert!(parsed.get("value").unwrap().is_null());
        assert!(parsed["headers"][0]["value"].is_null());
        assert!(parsed.get("key_encoding").is_none());
    }

    #[test]
    fn meta_only_replaces_the_value_with_its_size() {
        let options = JsonOptions {
            meta_only: true,
            ..JsonOptions::default()
        };
        let parsed: serde_json::Value = serde_json::from_str(&json(&record(), options)).unwrap();
        assert!(parsed.get("value").is_none());
        assert_eq!(parsed["value_size"], 8);
    }

    #[test]
    fn pretty_output_is_indented_and_still_one_document() {
        let options = JsonOptions {
            pretty: true,
            ..JsonOptions::default()
        };
        let text = json(&record(), options);
        assert!(text.contains("\n  \"topic\": \"orders\""));
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["offset"], 41);
    }
}
