//! A borrowed view of one consumed record: what `-f` formats and the JSON record print.
//!
//! The formatters take this view instead of the client library's record type so that they
//! are pure (testable without a broker) and so that partition-level facts the library keeps
//! outside the record (log start offset, high watermark) can travel alongside it.

/// One header: Kafka header values may be null.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderView<'a> {
    pub key: &'a str,
    pub value: Option<&'a [u8]>,
}

/// One record as the output formats see it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecordView<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: i64,
    /// `None` is a null key (printed as empty text, `null` in JSON).
    pub key: Option<&'a [u8]>,
    /// `None` is a tombstone.
    pub value: Option<&'a [u8]>,
    pub headers: Vec<HeaderView<'a>>,
    /// Leader epoch of the batch, when the library reports it.
    pub leader_epoch: Option<i32>,
    /// Partition log start offset at the last fetch, when known.
    pub log_start_offset: Option<i64>,
    /// Partition high watermark at the last fetch, when known.
    pub high_watermark: Option<i64>,
}
