//! [`ConsumerBuilder`]: what to read (`assign` or `topics`), where to start, and the
//! fetch long-poll shape (`docs/CLIENT.md`, "Consumer settings").
//!
//! Group membership (`.group(..)`, `.commit(..)`) has its place here already; until the
//! broker has groups, `build` refuses a consumer with a group.

use std::time::Duration;

use crate::client::Client;
use crate::consumer::Consumer;
use crate::error::Error;
use crate::record::Offset;

/// When a group consumer commits its offsets. Used with `.group(..)`, once the broker has
/// groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommitMode {
    /// Every interval, the position after the records the application moved past.
    Auto { interval: Duration },
    /// Every interval, only the offsets passed to `mark`.
    Marked { interval: Duration },
    /// Only on explicit `commit`.
    Manual,
}

impl Default for CommitMode {
    fn default() -> CommitMode {
        CommitMode::Auto {
            interval: Duration::from_secs(5),
        }
    }
}

/// Default `max.partition.fetch.bytes`: 1 MiB, Kafka's.
///
/// Producers that write ~1 MB batches are read faster with 2 MiB. Measured with
/// `strata bench consume` on one partition of 1000-byte records in ~1 MB batches (2 shared
/// cores, medians of 5 runs): 1 MiB ≈ 840 MB/s, 2 MiB ≈ 920–950 MB/s, 4 MiB no better than
/// 2 MiB, 8 MiB worse (the answer then fills the 8 MiB HTTP/2 stream window); with 16 KB
/// batches no size was clearly better. Memory stays bounded: per partition at most
/// `PREFETCH_CHUNKS` (4) fetched answers waiting, so about 4 × this, plus the answers the
/// fetch session has granted ahead (as many as fit in 4 MiB, at least one), and one
/// answer never exceeds `fetch.max.bytes` (50 MiB) across partitions.
pub(crate) const MAX_PARTITION_FETCH_BYTES_DEFAULT: u32 = 1 << 20;

/// The checked settings of a running consumer.
#[derive(Debug, Clone)]
pub(crate) struct ConsumerConfig {
    pub(crate) start: Offset,
    pub(crate) max_wait: Duration,
    pub(crate) min_bytes: u32,
    pub(crate) max_bytes: u32,
    pub(crate) max_partition_fetch_bytes: u32,
    pub(crate) retry_backoff: Duration,
    pub(crate) retry_backoff_max: Duration,
}

impl Default for ConsumerConfig {
    fn default() -> ConsumerConfig {
        ConsumerConfig {
            start: Offset::Latest,
            max_wait: Duration::from_millis(500),
            min_bytes: 1,
            max_bytes: 50 << 20,
            max_partition_fetch_bytes: MAX_PARTITION_FETCH_BYTES_DEFAULT,
            retry_backoff: Duration::from_millis(100),
            retry_backoff_max: Duration::from_secs(1),
        }
    }
}

/// Settings of a [`Consumer`]; from [`Client::consumer`].
#[derive(Debug, Clone)]
#[must_use]
pub struct ConsumerBuilder {
    pub(crate) client: Client,
    pub(crate) assigned: Vec<(String, i32)>,
    pub(crate) topics: Vec<String>,
    pub(crate) group: Option<String>,
    pub(crate) commit: CommitMode,
    pub(crate) config: ConsumerConfig,
    raw: Vec<(String, String)>,
}

impl ConsumerBuilder {
    pub(crate) fn new(client: Client) -> ConsumerBuilder {
        ConsumerBuilder {
            client,
            assigned: Vec::new(),
            topics: Vec::new(),
            group: None,
            commit: CommitMode::default(),
            config: ConsumerConfig::default(),
            raw: Vec::new(),
        }
    }

    /// Reads exactly these partitions (manual assignment, no group).
    pub fn assign<I, T>(mut self, partitions: I) -> ConsumerBuilder
    where
        I: IntoIterator<Item = (T, i32)>,
        T: Into<String>,
    {
        self.assigned.extend(
            partitions
                .into_iter()
                .map(|(topic, partition)| (topic.into(), partition)),
        );
        self
    }

    /// Reads every partition of these topics (as known at `build`). Without a group this
    /// is a manual assignment; with `.group(..)` it will be a subscription.
    pub fn topics<I, S>(mut self, topics: I) -> ConsumerBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.topics.extend(topics.into_iter().map(Into::into));
        self
    }

    /// Joins consumer group `group` (`group.id`). Not supported yet: `build` fails.
    pub fn group(mut self, group: impl Into<String>) -> ConsumerBuilder {
        self.group = Some(group.into());
        self
    }

    /// How a group consumer commits; ignored without a group.
    pub fn commit(mut self, mode: CommitMode) -> ConsumerBuilder {
        self.commit = mode;
        self
    }

    /// Where to start each partition (`auto.offset.reset`); [`Offset::Latest`] by default.
    pub fn start(mut self, offset: Offset) -> ConsumerBuilder {
        self.config.start = offset;
        self
    }

    /// `fetch.max.wait.ms`: how long the broker holds a fetch for `min_bytes`; 500 ms. The
    /// broker answers as soon as `min_bytes` are there, so with the default `min_bytes` of
    /// 1 this only bounds how long an idle partition's fetch stays open, not latency.
    pub fn max_wait(mut self, wait: Duration) -> ConsumerBuilder {
        self.config.max_wait = wait;
        self
    }

    /// `fetch.min.bytes`: the broker answers once this much is available; 1.
    pub fn min_bytes(mut self, bytes: u32) -> ConsumerBuilder {
        self.config.min_bytes = bytes;
        self
    }

    /// `fetch.max.bytes`: the cap of one fetch answer; 50 MiB.
    pub fn max_bytes(mut self, bytes: u32) -> ConsumerBuilder {
        self.config.max_bytes = bytes;
        self
    }

    /// `max.partition.fetch.bytes`: the cap per partition and fetch; 1 MiB, as in Kafka
    /// (2 MiB reads ~1 MB batches about 10 % faster, see
    /// `MAX_PARTITION_FETCH_BYTES_DEFAULT` for the measurements). A consumer buffers up
    /// to about three times this per partition (two answers waiting, one in flight). A
    /// batch larger than the cap is still returned whole when it is the first one.
    pub fn max_partition_fetch_bytes(mut self, bytes: u32) -> ConsumerBuilder {
        self.config.max_partition_fetch_bytes = bytes;
        self
    }

    /// `retry.backoff.ms`: first wait after a failed fetch, doubled up to 1 s; 100 ms.
    pub fn retry_backoff(mut self, backoff: Duration) -> ConsumerBuilder {
        self.config.retry_backoff = backoff;
        self
    }

    /// A setting by its Kafka name: `fetch.min.bytes`, `fetch.max.wait.ms`,
    /// `fetch.max.bytes`, `max.partition.fetch.bytes`, `auto.offset.reset`
    /// (`earliest|latest`), `retry.backoff.ms`, `group.id`. Unknown names fail `build`.
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> ConsumerBuilder {
        self.raw.push((key.into(), value.into()));
        self
    }

    /// Resolves the assignment and start offsets (ListOffsets) and starts fetching.
    pub async fn build(self) -> Result<Consumer, Error> {
        let mut builder = self.clone();
        for (key, value) in &self.raw {
            builder = builder.apply(key, value)?;
        }
        if builder.group.is_some() {
            return Err(Error::Unsupported(
                "consumer groups (group.id, subscribe, commits)".to_owned(),
            ));
        }
        if builder.assigned.is_empty() && builder.topics.is_empty() {
            return Err(Error::InvalidConfig(
                "a consumer needs .assign(..) or .topics(..)".to_owned(),
            ));
        }
        if builder.config.max_partition_fetch_bytes == 0 || builder.config.max_bytes == 0 {
            return Err(Error::InvalidConfig(
                "fetch.max.bytes and max.partition.fetch.bytes must be above zero".to_owned(),
            ));
        }
        Consumer::start(builder).await
    }

    fn apply(self, key: &str, value: &str) -> Result<ConsumerBuilder, Error> {
        let number = || {
            value.trim().parse::<u32>().map_err(|_| {
                Error::InvalidConfig(format!(
                    "{key} must be a non-negative integer, not {value:?}"
                ))
            })
        };
        Ok(match key {
            "fetch.min.bytes" => self.min_bytes(number()?),
            "fetch.max.wait.ms" => self.max_wait(Duration::from_millis(u64::from(number()?))),
            "fetch.max.bytes" => self.max_bytes(number()?),
            "max.partition.fetch.bytes" => self.max_partition_fetch_bytes(number()?),
            "retry.backoff.ms" => self.retry_backoff(Duration::from_millis(u64::from(number()?))),
            "group.id" => self.group(value),
            "auto.offset.reset" => self.start(match value.trim() {
                "earliest" => Offset::Earliest,
                "latest" => Offset::Latest,
                other => {
                    return Err(Error::InvalidConfig(format!(
                        "auto.offset.reset must be earliest or latest, not {other:?}"
                    )))
                }
            }),
            other => {
                return Err(Error::InvalidConfig(format!(
                    "unknown consumer setting {other:?}"
                )))
            }
        })
    }
}
