//! The `-X` settings: Kafka's names for what the client library's producer and consumer
//! accept, printed by `-X list` (kcat's habit) and used by `bench e2e` to hand each setting
//! to the producers, the consumers or both.
//!
//! The library parses the values (`ProducerBuilder::set`, `ConsumerBuilder::set`) and
//! refuses unknown names and bad values when the producer or consumer is built, so this table
//! only names and explains them. Defaults are not repeated here: they belong to the library,
//! whose docs state them (`cargo doc -p strata-client`).

use serde::Serialize;

use crate::output::OutputFormat;
use crate::table::Table;

/// Which client reads a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Applies {
    Producer,
    Consumer,
    Both,
}

/// One `-X` name.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Setting {
    pub key: &'static str,
    pub applies: Applies,
    pub meaning: &'static str,
}

const fn setting(key: &'static str, applies: Applies, meaning: &'static str) -> Setting {
    Setting {
        key,
        applies,
        meaning,
    }
}

/// Every name the client library accepts, producer settings first.
pub const SETTINGS: &[Setting] = &[
    setting(
        "acks",
        Applies::Producer,
        "replicas that must have a record: all, 1 or 0",
    ),
    setting(
        "enable.idempotence",
        Applies::Producer,
        "true: retries never duplicate or reorder records (needs acks=all)",
    ),
    setting(
        "linger.ms",
        Applies::Producer,
        "how long a batch waits to fill up",
    ),
    setting("batch.size", Applies::Producer, "bytes per partition batch"),
    setting("compression.type", Applies::Producer, "none, lz4 or zstd"),
    setting(
        "delivery.timeout.ms",
        Applies::Producer,
        "upper bound on one record's delivery, retries included",
    ),
    setting(
        "request.timeout.ms",
        Applies::Producer,
        "how long one produce request may take",
    ),
    setting(
        "max.in.flight.requests.per.connection",
        Applies::Producer,
        "unanswered requests per partition",
    ),
    setting(
        "retry.backoff.ms",
        Applies::Both,
        "first wait before a retry, doubled per attempt",
    ),
    setting(
        "retry.backoff.max.ms",
        Applies::Producer,
        "the cap of that doubling",
    ),
    setting(
        "buffer.memory",
        Applies::Producer,
        "bytes of records waiting to be delivered",
    ),
    setting(
        "max.block.ms",
        Applies::Producer,
        "how long a send waits for buffer space",
    ),
    setting(
        "max.request.size",
        Applies::Producer,
        "the largest batch sent, in bytes",
    ),
    setting(
        "fetch.min.bytes",
        Applies::Consumer,
        "the broker answers a fetch once this many bytes are ready",
    ),
    setting(
        "fetch.max.wait.ms",
        Applies::Consumer,
        "how long the broker holds a fetch for fetch.min.bytes",
    ),
    setting(
        "fetch.max.bytes",
        Applies::Consumer,
        "the cap of one fetch answer",
    ),
    setting(
        "max.partition.fetch.bytes",
        Applies::Consumer,
        "the cap per partition and fetch",
    ),
    setting(
        "auto.offset.reset",
        Applies::Consumer,
        "earliest or latest, where a consumer without an offset starts (consume: -o decides)",
    ),
    setting(
        "group.id",
        Applies::Consumer,
        "consumer group: not supported yet",
    ),
];

/// Which client reads `key`; `None` for a name the library does not know.
pub fn applies_to(key: &str) -> Option<Applies> {
    SETTINGS
        .iter()
        .find(|setting| setting.key == key)
        .map(|setting| setting.applies)
}

/// `-X list`: a `KEY CLIENT MEANING` table, or a JSON array of the same.
pub fn render_list(format: OutputFormat) -> String {
    match format {
        OutputFormat::Text => {
            let mut table = Table::new(["KEY", "CLIENT", "MEANING"]);
            for setting in SETTINGS {
                let applies = match setting.applies {
                    Applies::Producer => "producer",
                    Applies::Consumer => "consumer",
                    Applies::Both => "both",
                };
                table.row([setting.key, applies, setting.meaning]);
            }
            table.to_string()
        }
        OutputFormat::Json => serde_json::to_string_pretty(SETTINGS).unwrap_or_default() + "\n",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn keys_are_unique_and_looked_up() {
        for (index, setting) in SETTINGS.iter().enumerate() {
            assert!(
                SETTINGS[index + 1..].iter().all(|s| s.key != setting.key),
                "{} twice",
                setting.key
            );
        }
        assert_eq!(applies_to("linger.ms"), Some(Applies::Producer));
        assert_eq!(applies_to("fetch.min.bytes"), Some(Applies::Consumer));
        assert_eq!(applies_to("retry.backoff.ms"), Some(Applies::Both));
        assert_eq!(applies_to("no.such.key"), None);
    }

    #[test]
    fn list_is_a_table_and_json() {
        let text = render_list(OutputFormat::Text);
        assert!(text.starts_with("KEY"), "{text}");
        assert_eq!(text.lines().count(), SETTINGS.len() + 1);
        let json: serde_json::Value =
            serde_json::from_str(&render_list(OutputFormat::Json)).unwrap();
        assert_eq!(json[0]["key"], "acks");
        assert_eq!(json[0]["applies"], "producer");
    }
}
