//! The record model: what a producer hands to [`BatchBuilder`](super::BatchBuilder)
//! ([`Record`]) and what a consumer gets back from [`decode_batch`](super::decode_batch)
//! ([`StoredRecord`]).
//!
//! Keys, values and header values are [`Bytes`], so decoded records share one buffer per
//! batch instead of owning one allocation each. A `None` key or value is Kafka's null (length
//! -1 on the wire), distinct from an empty one.

use bytes::Bytes;

use crate::types::Offset;

/// Kafka's "no timestamp" marker; the only negative timestamp a batch may carry.
pub const NO_TIMESTAMP: i64 = -1;

/// A record header: a UTF-8 key (never null) and an optional value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Header {
    pub key: String,
    pub value: Option<Bytes>,
}

impl Header {
    pub fn new(key: impl Into<String>, value: Option<Bytes>) -> Header {
        Header {
            key: key.into(),
            value,
        }
    }
}

/// A record as a producer writes it: no offset yet (the leader assigns it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Record {
    /// Milliseconds since the Unix epoch, or [`NO_TIMESTAMP`].
    pub timestamp_ms: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
}

impl Record {
    /// A record with a value only: no key, no headers.
    pub fn from_value(timestamp_ms: i64, value: impl Into<Bytes>) -> Record {
        Record {
            timestamp_ms,
            key: None,
            value: Some(value.into()),
            headers: Vec::new(),
        }
    }

    /// A record with a key and a value, no headers.
    pub fn from_key_value(
        timestamp_ms: i64,
        key: impl Into<Bytes>,
        value: impl Into<Bytes>,
    ) -> Record {
        Record {
            timestamp_ms,
            key: Some(key.into()),
            value: Some(value.into()),
            headers: Vec::new(),
        }
    }
}

/// A record read back from a stored batch: the producer's fields plus the offset the leader
/// assigned and the record's own attributes byte.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StoredRecord {
    /// `base_offset + offset_delta`.
    pub offset: Offset,
    /// `base_timestamp + timestamp_delta`, or the batch's `max_timestamp` when the batch
    /// uses log-append time (as in Kafka).
    pub timestamp_ms: i64,
    /// The per-record attributes byte; unused by Kafka and Strata, carried as stored.
    pub attributes: i8,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
}

impl StoredRecord {
    /// The producer-side view of this record, dropping offset and attributes.
    pub fn into_record(self) -> Record {
        Record {
            timestamp_ms: self.timestamp_ms,
            key: self.key,
            value: self.value,
            headers: self.headers,
        }
    }
}

impl From<StoredRecord> for Record {
    fn from(stored: StoredRecord) -> Record {
        stored.into_record()
    }
}
