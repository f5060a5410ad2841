//! Delayed delivery (`docs/DELAYED_DELIVERY.md`): a producer gives a record a due time
//! with [`Record::deliver_at`](crate::Record::deliver_at) or
//! [`Record::deliver_after`](crate::Record::deliver_after); the consumers of this
//! library do not yield it before then.
//!
//! The due time travels in the record's header [`DELIVER_AT_MS`]
//! (`strata.deliver-at-ms`, milliseconds since the Unix epoch as UTF-8 decimal text,
//! like the retry topics' headers). The broker stores the record like any other; the
//! topic's configs say whether due times are allowed and how far away they may be:
//!
//! - `delivery_delay_enabled` (`delivery.delay.enabled`, default `false`);
//! - `delivery_delay_max_ms` (`delivery.delay.max.ms`, default 7 days).
//!
//! The producer checks each record with a due time against them before the record
//! reaches a batch ([`check`]): a topic without the feature, a due time more than the
//! maximum ahead of the producer's clock, or more than the maximum behind it, is a
//! [`DeliveryTimeError`] and nothing is written. A due time in the past within that
//! bound means "deliver now". The producer learns the two configs by describing the
//! topic once and keeps them for [`TOPIC_SETTINGS_TTL`].
//!
//! Consumers compare the due time with their own clock ([`wait_for`]), so a consumer
//! whose clock is ahead of the producer's yields records early by the difference, and
//! one behind, late.

use std::time::Duration;

use tokio::time::Instant;

use crate::admin::ConfigEntry;
use crate::record::{now_ms, ConsumedRecord};

/// The header holding a record's due time: ms since the Unix epoch, UTF-8 decimal text.
pub const DELIVER_AT_MS: &str = "strata.deliver-at-ms";

/// The topic config that allows due times, under the name `describe` reports.
pub const ENABLED_CONFIG: &str = "delivery_delay_enabled";
/// The topic config bounding how far a due time may be from the producer's clock.
pub const MAX_MS_CONFIG: &str = "delivery_delay_max_ms";
/// `delivery_delay_max_ms` when the broker does not report one (the broker's default).
pub const MAX_MS_DEFAULT: i64 = 7 * 24 * 3600 * 1000;

/// How long a producer trusts the delay configs it read for a topic before it reads
/// them again: an `alter-config` reaches producers within this time.
pub const TOPIC_SETTINGS_TTL: Duration = Duration::from_secs(60);

/// A topic's delay settings as a producer sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DelaySettings {
    pub enabled: bool,
    pub max_ms: i64,
}

impl DelaySettings {
    /// The settings in a topic's described configs; missing keys take the defaults
    /// (a broker that does not know the keys has the feature off).
    pub fn from_configs(configs: &[ConfigEntry]) -> DelaySettings {
        let value = |key: &str| {
            configs
                .iter()
                .find(|entry| entry.key == key)
                .map(|entry| entry.value.as_str())
        };
        DelaySettings {
            enabled: value(ENABLED_CONFIG).is_some_and(|text| text.eq_ignore_ascii_case("true")),
            max_ms: value(MAX_MS_CONFIG)
                .and_then(|text| text.parse().ok())
                .filter(|max_ms: &i64| *max_ms > 0)
                .unwrap_or(MAX_MS_DEFAULT),
        }
    }
}

/// Why a record's due time was refused. Nothing of the record was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryTimeError {
    #[error(
        "topic {topic} does not allow delayed delivery: set its config \
         delivery_delay_enabled=true (strata topic alter-config {topic} --set \
         delivery_delay_enabled=true)"
    )]
    NotEnabled { topic: String },
    #[error(
        "the record's due time {deliver_at_ms} is {ahead_ms} ms after the producer's clock \
         ({now_ms}); topic {topic} allows at most delivery_delay_max_ms={max_ms}"
    )]
    TooFarAhead {
        topic: String,
        deliver_at_ms: i64,
        now_ms: i64,
        ahead_ms: i64,
        max_ms: i64,
    },
    #[error(
        "the record's due time {deliver_at_ms} is {behind_ms} ms before the producer's clock \
         ({now_ms}); topic {topic} refuses due times more than delivery_delay_max_ms={max_ms} \
         in the past (a mistaken unit or clock?)"
    )]
    TooFarInPast {
        topic: String,
        deliver_at_ms: i64,
        now_ms: i64,
        behind_ms: i64,
        max_ms: i64,
    },
}

/// Checks a due time for `topic` with `settings` against the producer's clock `now_ms`.
pub fn check(
    topic: &str,
    deliver_at_ms: i64,
    now_ms: i64,
    settings: DelaySettings,
) -> Result<(), DeliveryTimeError> {
    if !settings.enabled {
        return Err(DeliveryTimeError::NotEnabled {
            topic: topic.to_owned(),
        });
    }
    let ahead_ms = deliver_at_ms.saturating_sub(now_ms);
    if ahead_ms > settings.max_ms {
        return Err(DeliveryTimeError::TooFarAhead {
            topic: topic.to_owned(),
            deliver_at_ms,
            now_ms,
            ahead_ms,
            max_ms: settings.max_ms,
        });
    }
    let behind_ms = now_ms.saturating_sub(deliver_at_ms);
    if behind_ms > settings.max_ms {
        return Err(DeliveryTimeError::TooFarInPast {
            topic: topic.to_owned(),
            deliver_at_ms,
            now_ms,
            behind_ms,
            max_ms: settings.max_ms,
        });
    }
    Ok(())
}

/// The due time in a record's [`DELIVER_AT_MS`] header, when it has a valid one.
pub fn deliver_at_ms(record: &ConsumedRecord) -> Option<i64> {
    let (_, value) = record
        .headers
        .iter()
        .find(|(key, _)| key == DELIVER_AT_MS)?;
    std::str::from_utf8(value.as_deref()?).ok()?.parse().ok()
}

/// How long to wait, by this process's clock, before a record due at `due_ms` may be
/// yielded; `None` once it is due.
pub(crate) fn wait_for(due_ms: i64) -> Option<Instant> {
    let wait_ms = u64::try_from(due_ms.checked_sub(now_ms())?)
        .ok()
        .filter(|ms| *ms > 0)?;
    Some(Instant::now() + Duration::from_millis(wait_ms))
}

#[cfg(test)]
#[path = "delayed_delivery_tests.rs"]
mod tests;
