//! Every parameter that affects a result, as the cluster and the flags decided it: printed
//! as one `key=value` line on stderr before the run and stored as `params` in the JSON, so a
//! pasted log or a JSON file explains itself.
//!
//! Also the producer settings in force once `-X` is folded in (`-X` is applied after the
//! typed flags, so it wins), and which `-X` settings go to producers and which to consumers.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::args::{BenchSpec, Mode, ProducerArgs, Stop};
use crate::args::{AcksArg, CompressionArg};
use crate::client_settings::{applies_to, Applies};

/// The client's `buffer.memory` default (32 MiB), for sizing the delivery window.
pub const DEFAULT_BUFFER_MEMORY_BYTES: usize = 32 << 20;

/// `-X` settings for producers and for consumers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SplitSettings {
    pub producer: Vec<(String, String)>,
    pub consumer: Vec<(String, String)>,
}

pub fn split_settings(mode: Mode, settings: &[(String, String)]) -> SplitSettings {
    let mut split = SplitSettings::default();
    for (key, value) in settings {
        let pair = (key.clone(), value.clone());
        match mode {
            Mode::Produce => split.producer.push(pair),
            Mode::Consume => split.consumer.push(pair),
            // In e2e the consumer's names go to the consumers, names both know to both, and
            // every other name to the producers (which refuse the ones they do not know).
            Mode::EndToEnd => match applies_to(key) {
                Some(Applies::Consumer) => split.consumer.push(pair),
                Some(Applies::Both) => {
                    split.producer.push(pair.clone());
                    split.consumer.push(pair);
                }
                Some(Applies::Producer) | None => split.producer.push(pair),
            },
        }
    }
    split
}

/// The producer settings in force: the flags, overridden by `-X`.
#[derive(Debug, Clone, PartialEq)]
pub struct ProducerSettings {
    pub acks: String,
    pub linger_ms: f64,
    pub batch_size: usize,
    pub compression: String,
    pub buffer_memory_bytes: usize,
}

impl ProducerSettings {
    /// Values `-X` spells wrongly are left to the producer builder to refuse.
    pub fn resolve(args: &ProducerArgs, settings: &[(String, String)]) -> ProducerSettings {
        let mut resolved = ProducerSettings {
            acks: match args.acks {
                AcksArg::All => "all",
                AcksArg::Leader => "1",
                AcksArg::None => "0",
            }
            .to_owned(),
            linger_ms: args.linger.as_secs_f64() * 1000.0,
            batch_size: args.batch_size,
            compression: match args.compression {
                CompressionArg::None => "none",
                CompressionArg::Lz4 => "lz4",
                CompressionArg::Zstd => "zstd",
            }
            .to_owned(),
            buffer_memory_bytes: DEFAULT_BUFFER_MEMORY_BYTES,
        };
        for (key, value) in settings {
            let value = value.trim();
            match key.as_str() {
                "acks" if value == "-1" => resolved.acks = "all".to_owned(),
                "acks" => resolved.acks = value.to_owned(),
                "linger.ms" => {
                    if let Ok(ms) = value.parse() {
                        resolved.linger_ms = ms;
                    }
                }
                "batch.size" => {
                    if let Ok(bytes) = value.parse() {
                        resolved.batch_size = bytes;
                    }
                }
                "compression.type" => resolved.compression = value.to_ascii_lowercase(),
                "buffer.memory" => {
                    if let Ok(bytes) = value.parse() {
                        resolved.buffer_memory_bytes = bytes;
                    }
                }
                _ => {}
            }
        }
        resolved
    }
}

/// What the cluster says about the topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicFacts {
    pub partitions: Vec<i32>,
    pub replication_factor: usize,
    /// The smallest ISR of any partition when the run started: below the replication
    /// factor, an `acks=all` run waited for fewer replicas than the topic has.
    pub in_sync_replicas_min: usize,
    /// Partitions without a leader or with a replica out of the ISR.
    pub partitions_out_of_sync: usize,
    /// The topic's `flush` config, `-` when the broker does not report one.
    pub flush: String,
}

/// One partition's replication as described by the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaState {
    pub has_leader: bool,
    pub replicas: usize,
    pub in_sync: usize,
}

/// The replication of a whole topic, from its partitions' [`ReplicaState`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReplicaCounts {
    /// The largest replica count (partitions of one topic all have the same).
    pub replication_factor: usize,
    /// The smallest ISR; 0 for a topic without partitions.
    pub in_sync_min: usize,
    pub out_of_sync: usize,
}

impl ReplicaCounts {
    pub fn of(partitions: impl IntoIterator<Item = ReplicaState>) -> ReplicaCounts {
        let mut counts: Option<ReplicaCounts> = None;
        for partition in partitions {
            let lagging =
                usize::from(!partition.has_leader || partition.in_sync < partition.replicas);
            counts = Some(match counts {
                None => ReplicaCounts {
                    replication_factor: partition.replicas,
                    in_sync_min: partition.in_sync,
                    out_of_sync: lagging,
                },
                Some(counts) => ReplicaCounts {
                    replication_factor: counts.replication_factor.max(partition.replicas),
                    in_sync_min: counts.in_sync_min.min(partition.in_sync),
                    out_of_sync: counts.out_of_sync + lagging,
                },
            });
        }
        counts.unwrap_or_default()
    }
}

/// The run's parameters (`params` in the JSON).
#[derive(Debug, Clone, Serialize)]
pub struct Params {
    pub mode: &'static str,
    pub topic: String,
    pub brokers: Vec<String>,
    pub partitions: usize,
    pub replication_factor: usize,
    /// The smallest ISR of any partition at the start ([`TopicFacts::in_sync_replicas_min`]).
    pub isr_min: usize,
    pub flush: String,
    /// `--records`, or `null` for a timed run.
    pub records: Option<u64>,
    pub duration_s: Option<f64>,
    pub warmup_s: f64,
    pub producers: u16,
    pub consumers: u16,
    pub record_size: Option<usize>,
    pub keys: Option<String>,
    /// -1 = unlimited.
    pub rate: Option<f64>,
    pub acks: Option<String>,
    pub linger_ms: Option<f64>,
    pub batch_size: Option<usize>,
    pub compression: Option<String>,
    /// Outstanding deliveries per producer at most.
    pub window: Option<u64>,
    pub drain_s: Option<f64>,
    /// `consume --group`: the group id and its member count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members: Option<u16>,
    pub client_settings: BTreeMap<String, String>,
}

impl Params {
    pub fn new(
        spec: &BenchSpec,
        brokers: &[String],
        topic: &TopicFacts,
        producer: Option<(&ProducerSettings, u64)>,
        client_settings: &[(String, String)],
    ) -> Params {
        let (records, duration_s) = match spec.stop() {
            Stop::Records(records) => (Some(records), None),
            Stop::Duration(duration) => (None, Some(duration.as_secs_f64())),
        };
        let producer_args = spec.producer.as_ref();
        Params {
            mode: spec.mode.name(),
            topic: spec.run.topic.clone(),
            brokers: brokers.to_vec(),
            partitions: topic.partitions.len(),
            replication_factor: topic.replication_factor,
            isr_min: topic.in_sync_replicas_min,
            flush: topic.flush.clone(),
            records,
            duration_s,
            warmup_s: spec.warmup().as_secs_f64(),
            producers: producer_args.map_or(0, |args| args.producers),
            consumers: spec.consumers,
            record_size: producer_args.map(|args| args.record_size),
            keys: producer_args.map(|args| args.keys.to_string()),
            rate: producer_args.map(|args| args.rate.as_number()),
            acks: producer.map(|(settings, _)| settings.acks.clone()),
            linger_ms: producer.map(|(settings, _)| settings.linger_ms),
            batch_size: producer.map(|(settings, _)| settings.batch_size),
            compression: producer.map(|(settings, _)| settings.compression.clone()),
            window: producer.map(|(_, window)| window),
            drain_s: (spec.mode == Mode::EndToEnd).then_some(spec.drain.as_secs_f64()),
            group: spec.group.as_ref().map(|group| group.id.clone()),
            members: spec.group.as_ref().map(|group| group.members),
            client_settings: client_settings.iter().cloned().collect(),
        }
    }

    /// `bench produce: topic=… partitions=6 replication_factor=1 isr_min=1 flush=always acks=1 …`
    pub fn line(&self) -> String {
        let mut line = format!(
            "bench {}: topic={} brokers={} partitions={} replication_factor={} isr_min={} flush={}",
            self.mode,
            self.topic,
            self.brokers.join(","),
            self.partitions,
            self.replication_factor,
            self.isr_min,
            self.flush
        );
        let mut add = |key: &str, value: Option<String>| {
            if let Some(value) = value {
                let _ = write!(line, " {key}={value}");
            }
        };
        add("acks", self.acks.clone());
        add("records", self.records.map(|records| records.to_string()));
        add("duration", self.duration_s.map(seconds));
        add("warmup", Some(seconds(self.warmup_s)));
        add("record_size", self.record_size.map(|size| size.to_string()));
        add("keys", self.keys.clone());
        add("rate", self.rate.map(|rate| format!("{rate}")));
        add(
            "producers",
            (self.producers > 0).then(|| self.producers.to_string()),
        );
        add(
            "consumers",
            (self.consumers > 0).then(|| self.consumers.to_string()),
        );
        add("linger_ms", self.linger_ms.map(|ms| format!("{ms}")));
        add("batch_size", self.batch_size.map(|size| size.to_string()));
        add("compression", self.compression.clone());
        add("window", self.window.map(|window| window.to_string()));
        add("drain", self.drain_s.map(seconds));
        add("group", self.group.clone());
        add("members", self.members.map(|members| members.to_string()));
        for (key, value) in &self.client_settings {
            add(&format!("-X {key}"), Some(value.clone()));
        }
        line
    }
}

fn seconds(seconds: f64) -> String {
    format!("{seconds}s")
}

#[cfg(test)]
#[path = "params_tests.rs"]
mod tests;
