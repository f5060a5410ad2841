//! [`ConsumerBuilder`]: what to read (`assign` or `topics`), where to start, and the
//! fetch long-poll shape (`docs/CLIENT.md`, "Consumer settings").
//!
//! With `.group(..)`, `topics` (or `topic_regex`) is a subscription: the group's
//! coordinator assigns the partitions (`group/`), and `start` applies only where the
//! group has committed nothing (`auto.offset.reset`).

use std::time::Duration;

use crate::client::Client;
use crate::consumer::group::GroupSettings;
use crate::consumer::Consumer;
use crate::error::Error;
use crate::record::Offset;
use crate::retry_topics::RetryPolicy;

/// When a group consumer commits its offsets (`docs/CLIENT.md`, "Consumer groups").
/// Ignored without a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommitMode {
    /// Every interval, and before a revoked partition is given up: the position after the
    /// records whose successor the application asked for (the record being processed
    /// when the interval passes is not committed yet). `close()` commits the position
    /// after every record yielded.
    Auto { interval: Duration },
    /// Every interval, before a revoked partition is given up and on `close()`: only the
    /// offsets passed to [`Consumer::mark`] (or a [`Marker`](crate::Marker)).
    Marked { interval: Duration },
    /// Only on [`Consumer::commit`] / [`Consumer::commit_nowait`]: nothing is committed
    /// on a revocation or on `close()` that the application did not ask for.
    Manual,
}

/// Longest group id the coordinator accepts (`INVALID_GROUP_ID` beyond).
const GROUP_ID_BYTES_MAX: usize = 249;

/// Kafka's `max.poll.interval.ms` default: 5 minutes.
const MAX_POLL_INTERVAL_DEFAULT: Duration = Duration::from_secs(300);

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
    pub(crate) topic_regex: Option<String>,
    pub(crate) instance_id: Option<String>,
    pub(crate) assignor: Option<String>,
    pub(crate) max_poll_interval: Duration,
    pub(crate) commit: CommitMode,
    pub(crate) config: ConsumerConfig,
    pub(crate) retry: Option<RetryPolicy>,
    raw: Vec<(String, String)>,
}

impl ConsumerBuilder {
    pub(crate) fn new(client: Client) -> ConsumerBuilder {
        ConsumerBuilder {
            client,
            assigned: Vec::new(),
            topics: Vec::new(),
            group: None,
            topic_regex: None,
            instance_id: None,
            assignor: None,
            max_poll_interval: MAX_POLL_INTERVAL_DEFAULT,
            commit: CommitMode::default(),
            config: ConsumerConfig::default(),
            retry: None,
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
    /// is a manual assignment; with `.group(..)` it is the subscription, and the group
    /// shares the partitions among its members.
    pub fn topics<I, S>(mut self, topics: I) -> ConsumerBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.topics.extend(topics.into_iter().map(Into::into));
        self
    }

    /// Joins consumer group `group` (`group.id`): the group's coordinator assigns the
    /// partitions of the subscribed topics among the members, and offsets are committed
    /// by [`ConsumerBuilder::commit`]. `build` waits until the consumer has joined.
    pub fn group(mut self, group: impl Into<String>) -> ConsumerBuilder {
        self.group = Some(group.into());
        self
    }

    /// With a group: also subscribe to every topic whose whole name matches `regex` (Rust
    /// `regex` syntax, evaluated by the coordinator, so topics created later join the
    /// subscription; internal `__` topics never match).
    pub fn topic_regex(mut self, regex: impl Into<String>) -> ConsumerBuilder {
        self.topic_regex = Some(regex.into());
        self
    }

    /// `group.instance.id`: static membership. A static member that closes keeps its
    /// partitions until the session times out, so a restart within it moves nothing.
    pub fn instance_id(mut self, instance_id: impl Into<String>) -> ConsumerBuilder {
        self.instance_id = Some(instance_id.into());
        self
    }

    /// `group.remote.assignor`: `uniform` (the default: sticky and balanced) or `range`.
    pub fn assignor(mut self, assignor: impl Into<String>) -> ConsumerBuilder {
        self.assignor = Some(assignor.into());
        self
    }

    /// `max.poll.interval.ms`: a group consumer whose application has not asked for a
    /// record for this long (while records were there to take) leaves the group, so its
    /// partitions go to members that make progress; it joins again at the next poll. It
    /// is also how long the member may take to give up a revoked partition (Kafka's
    /// rebalance timeout). 5 minutes.
    pub fn max_poll_interval(mut self, interval: Duration) -> ConsumerBuilder {
        self.max_poll_interval = interval;
        self
    }

    /// How a group consumer commits; `Auto` every 5 s by default. Ignored without a group.
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

    /// Retries the records a handler fails through the group's retry topics, then its
    /// dead-letter topic (`docs/RETRY.md`): `<topic>.<group>.retry.<n>` and
    /// `<topic>.<group>.dlt`, created by `build` when missing (which refuses topics of
    /// those names that belong to another topic or group). Needs `.group(..)` and
    /// `.topics(..)`; use [`Consumer::run`] or [`Consumer::fail`].
    pub fn retry(mut self, policy: RetryPolicy) -> ConsumerBuilder {
        self.retry = Some(policy);
        self
    }

    /// A setting by its Kafka name: `fetch.min.bytes`, `fetch.max.wait.ms`,
    /// `fetch.max.bytes`, `max.partition.fetch.bytes`, `auto.offset.reset`
    /// (`earliest|latest`), `retry.backoff.ms`, `group.id`, `group.instance.id`,
    /// `group.remote.assignor`, `enable.auto.commit` (`false` is `Manual`),
    /// `auto.commit.interval.ms`, `max.poll.interval.ms`. Unknown names fail `build`.
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
        if let Some(group) = &builder.group {
            check_group(&builder, group)?;
        } else if builder.topic_regex.is_some() || builder.instance_id.is_some() {
            return Err(Error::InvalidConfig(
                ".topic_regex(..) and .instance_id(..) need a group (.group(..))".to_owned(),
            ));
        }
        if builder.assigned.is_empty() && builder.topics.is_empty() && builder.topic_regex.is_none()
        {
            return Err(Error::InvalidConfig(
                "a consumer needs .assign(..) or .topics(..)".to_owned(),
            ));
        }
        if builder.config.max_partition_fetch_bytes == 0 || builder.config.max_bytes == 0 {
            return Err(Error::InvalidConfig(
                "fetch.max.bytes and max.partition.fetch.bytes must be above zero".to_owned(),
            ));
        }
        match builder.retry.take() {
            Some(policy) => super::retry::start(builder, policy).await,
            None => Consumer::start(builder).await,
        }
    }

    /// The group settings, when the consumer joins a group.
    pub(crate) fn group_settings(&self) -> Option<GroupSettings> {
        let group_id = self.group.clone()?;
        let mut topics = self.topics.clone();
        topics.sort();
        topics.dedup();
        Some(GroupSettings {
            group_id,
            instance_id: self.instance_id.clone(),
            topics,
            topic_regex: self.topic_regex.clone(),
            assignor: self.assignor.clone(),
            commit: self.commit,
            start: self.config.start,
            max_poll_interval: self.max_poll_interval,
            retry_backoff: self.config.retry_backoff,
            retry_backoff_max: self.config.retry_backoff_max,
        })
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
            "group.instance.id" => self.instance_id(value),
            "group.remote.assignor" => self.assignor(value.trim()),
            "max.poll.interval.ms" => {
                self.max_poll_interval(Duration::from_millis(u64::from(number()?)))
            }
            "enable.auto.commit" => match value.trim() {
                "true" => {
                    let interval = auto_commit_interval(self.commit);
                    self.commit(CommitMode::Auto { interval })
                }
                "false" => self.commit(CommitMode::Manual),
                other => {
                    return Err(Error::InvalidConfig(format!(
                        "enable.auto.commit must be true or false, not {other:?}"
                    )))
                }
            },
            "auto.commit.interval.ms" => {
                let interval = Duration::from_millis(u64::from(number()?));
                match self.commit {
                    CommitMode::Marked { .. } => self.commit(CommitMode::Marked { interval }),
                    CommitMode::Manual => self,
                    CommitMode::Auto { .. } => self.commit(CommitMode::Auto { interval }),
                }
            }
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

/// The interval of a periodic commit mode, or the default one.
fn auto_commit_interval(mode: CommitMode) -> Duration {
    match mode {
        CommitMode::Auto { interval } | CommitMode::Marked { interval } => interval,
        CommitMode::Manual => Duration::from_secs(5),
    }
}

/// A group consumer's settings, checked before anything is sent.
fn check_group(builder: &ConsumerBuilder, group: &str) -> Result<(), Error> {
    if group.is_empty() || group.len() > GROUP_ID_BYTES_MAX {
        return Err(Error::InvalidConfig(format!(
            "a group id must be 1 to {GROUP_ID_BYTES_MAX} bytes long, not {}",
            group.len()
        )));
    }
    if !builder.assigned.is_empty() {
        return Err(Error::InvalidConfig(
            "a group consumer subscribes with .topics(..) or .topic_regex(..); \
             .assign(..) is for consumers without a group"
                .to_owned(),
        ));
    }
    if builder.topics.is_empty() && builder.topic_regex.is_none() {
        return Err(Error::InvalidConfig(
            "a group consumer needs .topics(..) or .topic_regex(..)".to_owned(),
        ));
    }
    if builder.instance_id.as_deref() == Some("") {
        return Err(Error::InvalidConfig(
            "group.instance.id must not be empty".to_owned(),
        ));
    }
    if builder.max_poll_interval < Duration::from_millis(1)
        || builder.max_poll_interval.as_millis() > i32::MAX as u128
    {
        return Err(Error::InvalidConfig(format!(
            "max.poll.interval.ms must be from 1 ms to {} ms",
            i32::MAX
        )));
    }
    if let CommitMode::Auto { interval } | CommitMode::Marked { interval } = builder.commit {
        if interval.is_zero() {
            return Err(Error::InvalidConfig(
                "the auto-commit interval must be above zero".to_owned(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn builder() -> ConsumerBuilder {
        ConsumerBuilder::new(Client::for_tests())
    }

    #[tokio::test]
    async fn bad_group_settings_fail_build_before_anything_is_sent() {
        let cases = [
            builder().topics(["t"]).group(""),
            builder().topics(["t"]).group("g".repeat(250)),
            builder().assign([("t", 0)]).group("g"),
            builder().group("g"),
            builder().topics(["t"]).group("g").instance_id(""),
            builder().topics(["t"]).topic_regex("t.*"),
            builder().topics(["t"]).group("g").commit(CommitMode::Auto {
                interval: Duration::ZERO,
            }),
            builder().topics(["t"]).set("enable.auto.commit", "yes"),
            builder()
                .topics(["t"])
                .group("g")
                .max_poll_interval(Duration::ZERO),
        ];
        for case in cases {
            let error = case.build().await.err().unwrap();
            assert_eq!(error.code_name(), "INVALID_CONFIG", "{error}");
        }
    }

    #[test]
    fn kafka_names_set_the_group_settings() {
        let configured = builder()
            .topics(["b", "a", "b"])
            .set("group.id", "billing")
            .set("group.instance.id", "host-1")
            .set("auto.commit.interval.ms", "250")
            .set("group.remote.assignor", "range")
            .set("max.poll.interval.ms", "60000");
        let mut applied = configured.clone();
        for (key, value) in &configured.raw {
            applied = applied.apply(key, value).unwrap();
        }
        let settings = applied.group_settings().unwrap();
        assert_eq!(settings.group_id, "billing");
        assert_eq!(settings.instance_id.as_deref(), Some("host-1"));
        assert_eq!(settings.topics, vec!["a", "b"]);
        assert_eq!(settings.assignor.as_deref(), Some("range"));
        assert_eq!(settings.max_poll_interval, Duration::from_secs(60));
        assert_eq!(
            settings.commit,
            CommitMode::Auto {
                interval: Duration::from_millis(250)
            }
        );
        let manual = applied.apply("enable.auto.commit", "false").unwrap();
        assert_eq!(manual.commit, CommitMode::Manual);
        assert!(builder().topics(["t"]).group_settings().is_none());
    }
}
