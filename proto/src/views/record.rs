//! Records as `strata consume` prints them (its JSON record, docs/CLI.md "JSON records")
//! and as `GET /v1/topics/{topic}/records` peeks at them: keys, values and header values
//! are strings when they are valid UTF-8, else standard base64 with `key_encoding` /
//! `value_encoding` set to `"base64"`; a null key and a tombstone are `null`.
//!
//! The CLI writes its records with its own borrowing serializer (`cli/src/json_record.rs`,
//! on the consume hot path); a test checks that both print the same field names.

use serde::{Deserialize, Serialize};

/// The `*_encoding` of bytes that are not UTF-8.
pub const BASE64_ENCODING: &str = "base64";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordView {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_encoding: Option<String>,
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_encoding: Option<String>,
    pub headers: Vec<RecordHeaderView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordHeaderView {
    pub key: String,
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_encoding: Option<String>,
}

/// The last records of one partition, oldest first, all below its high watermark.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordsPeekView {
    pub topic: String,
    pub partition: i32,
    pub log_start_offset: i64,
    pub high_watermark: i64,
    pub records: Vec<RecordView>,
}
