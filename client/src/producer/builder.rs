//! [`ProducerBuilder`]: producer settings, each with a typed method and its Kafka name for
//! [`ProducerBuilder::set`] (`docs/CLIENT.md`, "Producer settings"). Values are checked at
//! [`ProducerBuilder::build`], where an unknown key is an error.

use std::time::Duration;

use strata_proto::record::Compression;

use crate::client::Client;
use crate::error::Error;
use crate::producer::Producer;

/// How many replicas must have a batch before the broker answers (Kafka `acks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Acks {
    /// Every in-sync replica (`acks=all`, wire -1). The default.
    #[default]
    All,
    /// The leader only (`acks=1`).
    Leader,
    /// No answer at all (`acks=0`): deliveries complete with offset -1 once written.
    None,
}

impl Acks {
    /// The wire value: -1, 1 or 0.
    pub fn wire(self) -> i32 {
        match self {
            Acks::All => -1,
            Acks::Leader => 1,
            Acks::None => 0,
        }
    }
}

/// The checked settings a running producer uses.
#[derive(Debug, Clone)]
pub(crate) struct ProducerConfig {
    pub(crate) acks: Acks,
    pub(crate) idempotence: bool,
    pub(crate) linger: Duration,
    pub(crate) batch_size_bytes: usize,
    pub(crate) compression: Compression,
    pub(crate) delivery_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) max_in_flight: usize,
    pub(crate) retry_backoff: Duration,
    pub(crate) retry_backoff_max: Duration,
    pub(crate) buffer_memory_bytes: usize,
    pub(crate) max_block: Duration,
    pub(crate) max_request_size_bytes: usize,
}

impl Default for ProducerConfig {
    fn default() -> ProducerConfig {
        ProducerConfig {
            acks: Acks::All,
            idempotence: true,
            linger: Duration::from_millis(5),
            batch_size_bytes: 16 * 1024,
            compression: Compression::None,
            delivery_timeout: Duration::from_secs(120),
            request_timeout: Duration::from_secs(30),
            max_in_flight: 5,
            retry_backoff: Duration::from_millis(100),
            retry_backoff_max: Duration::from_secs(1),
            buffer_memory_bytes: 32 << 20,
            max_block: Duration::from_secs(60),
            max_request_size_bytes: 1 << 20,
        }
    }
}

/// Settings of a [`Producer`]; from [`Client::producer`].
#[derive(Debug, Clone)]
#[must_use]
pub struct ProducerBuilder {
    client: Client,
    config: ProducerConfig,
    /// Whether `idempotence` was set explicitly (then `acks` other than all is an error).
    idempotence_explicit: bool,
    /// `set(key, value)` pairs, applied in order at `build`.
    raw: Vec<(String, String)>,
}

impl ProducerBuilder {
    pub(crate) fn new(client: Client) -> ProducerBuilder {
        ProducerBuilder {
            client,
            config: ProducerConfig::default(),
            idempotence_explicit: false,
            raw: Vec::new(),
        }
    }

    /// `acks`: [`Acks::All`] (default), [`Acks::Leader`] or [`Acks::None`].
    pub fn acks(mut self, acks: Acks) -> ProducerBuilder {
        self.config.acks = acks;
        self
    }

    /// `enable.idempotence`, default on: retries cannot duplicate or reorder records.
    /// Needs `acks=all`; when left at its default, `acks` 1 or 0 turn it off.
    pub fn idempotence(mut self, enabled: bool) -> ProducerBuilder {
        self.config.idempotence = enabled;
        self.idempotence_explicit = true;
        self
    }

    /// `linger.ms`: how long a batch waits to fill up; 5 ms.
    pub fn linger(mut self, linger: Duration) -> ProducerBuilder {
        self.config.linger = linger;
        self
    }

    /// `batch.size`: the size in bytes a partition's batch is sent at while a request slot
    /// is free; 16 KiB. While all `max_in_flight` requests of the partition are
    /// outstanding, the open batch keeps growing up to `max.request.size` and leaves as
    /// soon as a slot frees (adaptive batching): a busy producer sends large requests with
    /// the defaults, a slow one keeps its latency.
    pub fn batch_size(mut self, bytes: usize) -> ProducerBuilder {
        self.config.batch_size_bytes = bytes;
        self
    }

    /// `compression.type`: none (default), lz4 or zstd.
    pub fn compression(mut self, compression: Compression) -> ProducerBuilder {
        self.config.compression = compression;
        self
    }

    /// `delivery.timeout.ms`: upper bound on a `send`, retries included; 120 s. As in
    /// Kafka it counts from the creation of the record's batch (at most `linger.ms`
    /// before the record joined it), or from `enqueue` for a record that waited for its
    /// topic's metadata.
    pub fn delivery_timeout(mut self, timeout: Duration) -> ProducerBuilder {
        self.config.delivery_timeout = timeout;
        self
    }

    /// `request.timeout.ms`: how long one produce request may take; 30 s.
    pub fn request_timeout(mut self, timeout: Duration) -> ProducerBuilder {
        self.config.request_timeout = timeout;
        self
    }

    /// `max.in.flight.requests.per.connection`: unanswered requests per partition; 5.
    pub fn max_in_flight(mut self, requests: usize) -> ProducerBuilder {
        self.config.max_in_flight = requests;
        self
    }

    /// `retry.backoff.ms`: first wait before a retry, doubled per attempt; 100 ms.
    pub fn retry_backoff(mut self, backoff: Duration) -> ProducerBuilder {
        self.config.retry_backoff = backoff;
        self
    }

    /// `retry.backoff.max.ms`: the cap of the doubling; 1 s.
    pub fn retry_backoff_max(mut self, backoff: Duration) -> ProducerBuilder {
        self.config.retry_backoff_max = backoff;
        self
    }

    /// `buffer.memory`: bytes of records waiting to be delivered; 32 MiB.
    pub fn buffer_memory(mut self, bytes: usize) -> ProducerBuilder {
        self.config.buffer_memory_bytes = bytes;
        self
    }

    /// `max.block.ms`: how long `send` waits for buffer space, and for the metadata of a
    /// topic the cluster does not know (yet); 60 s.
    pub fn max_block(mut self, timeout: Duration) -> ProducerBuilder {
        self.config.max_block = timeout;
        self
    }

    /// `max.request.size`: the largest batch sent, and the size a batch grows to while the
    /// partition's pipeline is full; 1 MiB. Larger records fail at once.
    pub fn max_request_size(mut self, bytes: usize) -> ProducerBuilder {
        self.config.max_request_size_bytes = bytes;
        self
    }

    /// A setting by its Kafka name, e.g. `.set("linger.ms", "10")`. Unknown names and bad
    /// values are reported by [`ProducerBuilder::build`].
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> ProducerBuilder {
        self.raw.push((key.into(), value.into()));
        self
    }

    /// Checks the settings and starts the producer. Synchronous: no network call happens
    /// here; the producer id (idempotence) and topic metadata are fetched on first use.
    /// Must be called inside a Tokio runtime, which runs the producer's background tasks.
    pub fn build(self) -> Result<Producer, Error> {
        let config = self.checked_config()?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::InvalidConfig(
                "a producer must be built inside a Tokio runtime".to_owned(),
            ));
        }
        Ok(Producer::start(self.client, config))
    }

    fn checked_config(&self) -> Result<ProducerConfig, Error> {
        let mut builder = self.clone();
        for (key, value) in &self.raw {
            builder = builder.apply(key, value)?;
        }
        let mut config = builder.config;
        if config.acks != Acks::All && config.idempotence {
            if builder.idempotence_explicit {
                return Err(invalid("enable.idempotence requires acks=all"));
            }
            config.idempotence = false;
        }
        if config.idempotence && config.max_in_flight > 5 {
            return Err(invalid(
                "enable.idempotence allows at most 5 requests in flight per partition",
            ));
        }
        if config.max_in_flight == 0 {
            return Err(invalid(
                "max.in.flight.requests.per.connection must be >= 1",
            ));
        }
        if config.batch_size_bytes == 0 || config.max_request_size_bytes == 0 {
            return Err(invalid(
                "batch.size and max.request.size must be above zero",
            ));
        }
        if config.request_timeout.is_zero() || config.delivery_timeout.is_zero() {
            return Err(invalid("timeouts must be above zero"));
        }
        if config.delivery_timeout < config.linger + config.request_timeout {
            return Err(invalid(
                "delivery.timeout.ms must be at least linger.ms + request.timeout.ms",
            ));
        }
        if matches!(config.compression, Compression::Gzip | Compression::Snappy) {
            return Err(invalid(format!(
                "compression.type {} is not supported; use none, lz4 or zstd",
                config.compression
            )));
        }
        if config.buffer_memory_bytes < config.batch_size_bytes {
            return Err(invalid("buffer.memory must be at least batch.size"));
        }
        config.retry_backoff_max = config.retry_backoff_max.max(config.retry_backoff);
        Ok(config)
    }

    /// Applies one Kafka-named setting.
    fn apply(self, key: &str, value: &str) -> Result<ProducerBuilder, Error> {
        let builder = match key {
            "acks" => self.acks(match value.trim() {
                "all" | "-1" => Acks::All,
                "1" => Acks::Leader,
                "0" => Acks::None,
                other => return Err(invalid(format!("acks must be all, 1 or 0, not {other:?}"))),
            }),
            "enable.idempotence" => self.idempotence(parse_bool(key, value)?),
            "linger.ms" => self.linger(parse_ms(key, value)?),
            "batch.size" => self.batch_size(parse_number(key, value)?),
            "compression.type" => self.compression(parse_compression(value)?),
            "delivery.timeout.ms" => self.delivery_timeout(parse_ms(key, value)?),
            "request.timeout.ms" => self.request_timeout(parse_ms(key, value)?),
            "max.in.flight.requests.per.connection" => {
                self.max_in_flight(parse_number(key, value)?)
            }
            "retry.backoff.ms" => self.retry_backoff(parse_ms(key, value)?),
            "retry.backoff.max.ms" => self.retry_backoff_max(parse_ms(key, value)?),
            "buffer.memory" => self.buffer_memory(parse_number(key, value)?),
            "max.block.ms" => self.max_block(parse_ms(key, value)?),
            "max.request.size" => self.max_request_size(parse_number(key, value)?),
            other => return Err(invalid(format!("unknown producer setting {other:?}"))),
        };
        Ok(builder)
    }
}

/// Parses `none|lz4|zstd|gzip|snappy` (the last two are refused later, with a reason).
pub fn parse_compression(value: &str) -> Result<Compression, Error> {
    match value.trim().to_ascii_lowercase().as_str() {
        "none" | "" => Ok(Compression::None),
        "lz4" => Ok(Compression::Lz4),
        "zstd" => Ok(Compression::Zstd),
        "gzip" => Ok(Compression::Gzip),
        "snappy" => Ok(Compression::Snappy),
        other => Err(invalid(format!(
            "compression.type must be none, lz4 or zstd, not {other:?}"
        ))),
    }
}

fn parse_number(key: &str, value: &str) -> Result<usize, Error> {
    value.trim().parse().map_err(|_| {
        invalid(format!(
            "{key} must be a non-negative integer, not {value:?}"
        ))
    })
}

fn parse_ms(key: &str, value: &str) -> Result<Duration, Error> {
    parse_number(key, value).map(|ms| Duration::from_millis(ms as u64))
}

fn parse_bool(key: &str, value: &str) -> Result<bool, Error> {
    match value.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(invalid(format!(
            "{key} must be true or false, not {other:?}"
        ))),
    }
}

fn invalid(message: impl Into<String>) -> Error {
    Error::InvalidConfig(message.into())
}

#[cfg(test)]
#[path = "builder_tests.rs"]
mod tests;
