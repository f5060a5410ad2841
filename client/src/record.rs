//! The records users handle: [`Record`] (what `send` takes), [`Delivery`] (what it returns),
//! [`ConsumedRecord`] (what the consumer stream yields) and [`Offset`] (where a consumer
//! starts or seeks to).
//!
//! Keys, values and header values are [`Bytes`]: `None` is Kafka's null, distinct from an
//! empty value (a tombstone is a record whose value is `None`).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

/// What [`Record::to`] takes as a topic name: `&str`, `String`, `&String`, or an
/// `Arc<str>` (shared, no allocation).
pub trait IntoTopic {
    fn into_topic(self) -> std::sync::Arc<str>;
}

impl IntoTopic for &str {
    fn into_topic(self) -> std::sync::Arc<str> {
        std::sync::Arc::from(self)
    }
}

impl IntoTopic for String {
    fn into_topic(self) -> std::sync::Arc<str> {
        std::sync::Arc::from(self)
    }
}

impl IntoTopic for &String {
    fn into_topic(self) -> std::sync::Arc<str> {
        std::sync::Arc::from(self.as_str())
    }
}

impl IntoTopic for std::sync::Arc<str> {
    fn into_topic(self) -> std::sync::Arc<str> {
        self
    }
}

impl IntoTopic for &std::sync::Arc<str> {
    fn into_topic(self) -> std::sync::Arc<str> {
        self.clone()
    }
}

/// A record to produce: `Record::to("orders").key("k1").value("v").header("trace", "abc")`.
///
/// The topic is an `Arc<str>`: a producer that sends many records to one topic can build
/// each from a clone of one `Arc` (`Record::to(topic.clone())`) and allocate nothing for
/// the name.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Record {
    pub topic: std::sync::Arc<str>,
    /// An explicit partition wins over the key hash.
    pub partition: Option<i32>,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
    /// Create time in ms since the Unix epoch; `None` takes the clock at `send`.
    pub timestamp_ms: Option<i64>,
    /// Due time in ms since the Unix epoch ([`Record::deliver_at`]): consumers of this
    /// library do not yield the record before it. The producer checks it against the
    /// topic's configs and writes it as the `strata.deliver-at-ms` header.
    pub deliver_at_ms: Option<i64>,
}

impl Record {
    /// An empty record (null key and value) for `topic`.
    pub fn to(topic: impl IntoTopic) -> Record {
        Record {
            topic: topic.into_topic(),
            partition: None,
            key: None,
            value: None,
            headers: Vec::new(),
            timestamp_ms: None,
            deliver_at_ms: None,
        }
    }

    #[must_use]
    pub fn key(mut self, key: impl Into<Bytes>) -> Record {
        self.key = Some(key.into());
        self
    }

    #[must_use]
    pub fn value(mut self, value: impl Into<Bytes>) -> Record {
        self.value = Some(value.into());
        self
    }

    /// Appends a header; keys may repeat, as in Kafka.
    #[must_use]
    pub fn header(mut self, key: impl Into<String>, value: impl Into<Bytes>) -> Record {
        self.headers.push((key.into(), Some(value.into())));
        self
    }

    /// Appends a header with a null value.
    #[must_use]
    pub fn header_null(mut self, key: impl Into<String>) -> Record {
        self.headers.push((key.into(), None));
        self
    }

    /// Sends to this partition instead of hashing the key.
    #[must_use]
    pub fn partition(mut self, partition: i32) -> Record {
        self.partition = Some(partition);
        self
    }

    /// Sets the create time (ms since the Unix epoch).
    #[must_use]
    pub fn timestamp(mut self, timestamp_ms: i64) -> Record {
        self.timestamp_ms = Some(timestamp_ms);
        self
    }

    /// Delays the record until `time`: consumers of this library do not yield it before
    /// then, by their own clock (`docs/DELAYED_DELIVERY.md`). The topic needs
    /// `delivery_delay_enabled=true`, and `time` must lie within the topic's
    /// `delivery_delay_max_ms` of the producer's clock, before or after; otherwise `send`
    /// fails with [`DeliveryTimeError`](crate::DeliveryTimeError) and writes nothing.
    /// Times before the Unix epoch count as the epoch itself.
    #[must_use]
    pub fn deliver_at(self, time: SystemTime) -> Record {
        let since_epoch_ms = time.duration_since(UNIX_EPOCH).map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        });
        self.deliver_at_ms(since_epoch_ms)
    }

    /// [`Record::deliver_at`] in ms since the Unix epoch.
    #[must_use]
    pub fn deliver_at_ms(mut self, deliver_at_ms: i64) -> Record {
        self.deliver_at_ms = Some(deliver_at_ms);
        self
    }

    /// [`Record::deliver_at`] `delay` after now (this process's clock, read here).
    #[must_use]
    pub fn deliver_after(self, delay: Duration) -> Record {
        let delay_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
        self.deliver_at_ms(now_ms().saturating_add(delay_ms))
    }

    /// Bytes this record holds in memory, for `buffer.memory` accounting: payload plus a
    /// fixed overhead per record and header.
    pub(crate) fn memory_bytes(&self) -> usize {
        const RECORD_OVERHEAD_BYTES: usize = 64;
        const HEADER_OVERHEAD_BYTES: usize = 16;
        let payload = self.key.as_ref().map_or(0, Bytes::len)
            + self.value.as_ref().map_or(0, Bytes::len)
            + self.topic.len();
        let headers: usize = self
            .headers
            .iter()
            .map(|(key, value)| {
                key.len() + value.as_ref().map_or(0, Bytes::len) + HEADER_OVERHEAD_BYTES
            })
            .sum();
        // The due-time header the producer adds: its key and up to 20 digits.
        let due_header = if self.deliver_at_ms.is_some() {
            crate::delayed_delivery::DELIVER_AT_MS.len() + 20 + HEADER_OVERHEAD_BYTES
        } else {
            0
        };
        RECORD_OVERHEAD_BYTES + payload + headers + due_header
    }
}

/// Where an acknowledged record landed. The topic name is shared by the records of the
/// producer's topic (like [`ConsumedRecord::topic`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Delivery {
    pub topic: std::sync::Arc<str>,
    pub partition: i32,
    /// -1 with `acks=0`: the broker does not answer.
    pub offset: i64,
    /// The record's create time, or the broker's append time for log-append-time topics.
    pub timestamp: i64,
}

impl Delivery {
    pub(crate) fn new(
        topic: std::sync::Arc<str>,
        partition: i32,
        offset: i64,
        timestamp: i64,
    ) -> Delivery {
        Delivery {
            topic,
            partition,
            offset,
            timestamp,
        }
    }
}

/// A record read from a partition.
///
/// Cheap to produce and to clone: the topic name is shared by the records of a fetch,
/// and the key, value and header values are slices of the fetched buffer (they keep it
/// alive; copy them out with `Bytes::copy_from_slice` to hold one record for long).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsumedRecord {
    /// Shared, not copied per record; use it as a `&str` (`&*record.topic`,
    /// `record.topic.as_ref()`), or `to_string()` it.
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    /// Create time, or append time for log-append-time topics (ms since the Unix epoch).
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
    /// The leader epoch stamped into the record's batch.
    pub leader_epoch: i32,
    /// The partition's high watermark when the record was fetched.
    pub high_watermark: i64,
    /// The partition's log start offset when the record was fetched.
    pub log_start_offset: i64,
}

/// Where a consumer starts reading a partition, or where `seek` moves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Offset {
    /// The log start offset (Kafka `auto.offset.reset=earliest`).
    Earliest,
    /// The end of the log: only records produced from now on (the default).
    #[default]
    Latest,
    /// This exact offset.
    At(i64),
    /// The last `n` records: `max(latest - n, earliest)`.
    Tail(u64),
    /// The first record with a timestamp at or after this one (ms since the Unix epoch);
    /// the end of the log when there is none.
    Time(i64),
}

/// Milliseconds since the Unix epoch, by the local clock.
pub(crate) fn now_ms() -> i64 {
    // Read once per record: whole seconds times 1000 plus the millisecond part, rather
    // than `as_millis`'s 128-bit arithmetic.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs())
                .unwrap_or(i64::MAX / 1000)
                .saturating_mul(1000)
                .saturating_add(i64::from(elapsed.subsec_millis()))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn millis_since_epoch() -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(-1, |elapsed| elapsed.as_millis() as i64)
    }

    #[test]
    fn now_ms_is_unix_time_in_milliseconds() {
        let before = millis_since_epoch();
        let now = now_ms();
        let after = millis_since_epoch();
        assert!(before > 1_600_000_000_000, "the clock is set");
        assert!(
            before <= now && now <= after,
            "{before} <= {now} <= {after}"
        );
    }

    #[test]
    fn builder_sets_every_field() {
        let record = Record::to("orders")
            .key("k1")
            .value("v")
            .header("trace", "abc")
            .header_null("empty")
            .partition(3)
            .timestamp(1_700_000_000_000);
        assert_eq!(&*record.topic, "orders");
        assert_eq!(record.partition, Some(3));
        assert_eq!(record.key.as_deref(), Some(&b"k1"[..]));
        assert_eq!(record.headers.len(), 2);
        assert_eq!(record.headers[1].1, None);
        assert!(record.memory_bytes() > 64);
        assert_eq!(record.deliver_at_ms, None);
    }

    #[test]
    fn due_times_are_ms_since_the_epoch() {
        let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(
            Record::to("t").deliver_at(at).deliver_at_ms,
            Some(1_700_000_000_123)
        );
        let before_epoch = UNIX_EPOCH - Duration::from_secs(5);
        assert_eq!(
            Record::to("t").deliver_at(before_epoch).deliver_at_ms,
            Some(0)
        );
        let before = now_ms();
        let delayed = Record::to("t").deliver_after(Duration::from_secs(2));
        let after = now_ms();
        let due = delayed.deliver_at_ms.unwrap_or(-1);
        assert!(
            before + 2000 <= due && due <= after + 2000,
            "{before} {due} {after}"
        );
        assert!(delayed.memory_bytes() > Record::to("t").memory_bytes() + 20);
    }
}
