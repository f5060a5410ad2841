//! The producer's side of delayed delivery (`crate::delayed_delivery`): a record with a
//! due time is checked against its topic's `delivery_delay_*` configs before it is
//! encoded into a batch, and gets the `strata.deliver-at-ms` header.
//!
//! Each topic keeps the settings it last read ([`TopicDelay`]), for
//! [`TOPIC_SETTINGS_TTL`]. A record with a due time whose topic has no fresh settings
//! takes the router's slow path: it waits in the topic's queue, in order with the
//! records sent after it, while the queue's task describes the topic
//! ([`load`]); then it is checked like the others. A refused record fails its own
//! `send` with [`Error::DeliveryTime`] and never reaches a batch, so nothing of it is
//! written and the records around it are not affected.

use bytes::Bytes;
use tokio::time::Instant;

use super::router::ProducerContext;
use crate::delayed_delivery::{check, DelaySettings, DELIVER_AT_MS, TOPIC_SETTINGS_TTL};
use crate::error::Error;
use crate::record::{now_ms, Record};

/// A topic's delay settings and when they were read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TopicDelay {
    settings: DelaySettings,
    read_at: Instant,
}

impl TopicDelay {
    pub(crate) fn new(settings: DelaySettings) -> TopicDelay {
        TopicDelay {
            settings,
            read_at: Instant::now(),
        }
    }
}

/// Whether `record` has a due time and its topic's settings must be read (again)
/// before it can be checked.
pub(crate) fn needs_settings(delay: Option<&TopicDelay>, record: &Record) -> bool {
    record.deliver_at_ms.is_some()
        && delay.is_none_or(|delay| delay.read_at.elapsed() > TOPIC_SETTINGS_TTL)
}

/// Checks the due time of `record` (if it has one) with the topic's settings and adds
/// its header, replacing one the record already had. The settings must be known
/// ([`needs_settings`] false); without them the record is refused as if the topic did
/// not allow due times.
pub(crate) fn admit(
    topic: &str,
    delay: Option<&TopicDelay>,
    record: &mut Record,
) -> Result<(), Error> {
    let Some(deliver_at_ms) = record.deliver_at_ms else {
        return Ok(());
    };
    let settings = delay.map_or(
        DelaySettings {
            enabled: false,
            max_ms: 0,
        },
        |delay| delay.settings,
    );
    check(topic, deliver_at_ms, now_ms(), settings)?;
    record.headers.retain(|(key, _)| key != DELIVER_AT_MS);
    record.headers.push((
        DELIVER_AT_MS.to_owned(),
        Some(Bytes::from(deliver_at_ms.to_string())),
    ));
    Ok(())
}

/// Reads the delay settings of `topic` from the cluster (one describe call).
pub(crate) async fn load(context: &ProducerContext, topic: &str) -> Result<DelaySettings, Error> {
    let description = context
        .client
        .admin()
        .describe_topic_without_offsets(topic)
        .await?;
    Ok(DelaySettings::from_configs(&description.configs))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use super::*;
    use crate::delayed_delivery::DeliveryTimeError;

    fn enabled(max_ms: i64) -> TopicDelay {
        TopicDelay::new(DelaySettings {
            enabled: true,
            max_ms,
        })
    }

    #[test]
    fn records_without_a_due_time_need_nothing_and_are_left_alone() {
        let mut record = Record::to("t").value("v").header("a", "b");
        assert!(!needs_settings(None, &record));
        admit("t", None, &mut record).unwrap();
        assert_eq!(record.headers.len(), 1);
    }

    #[test]
    fn a_due_time_needs_fresh_settings() {
        let record = Record::to("t").deliver_after(Duration::from_secs(1));
        assert!(needs_settings(None, &record));
        assert!(!needs_settings(Some(&enabled(60_000)), &record));
        let mut stale = enabled(60_000);
        stale.read_at = Instant::now()
            .checked_sub(TOPIC_SETTINGS_TTL + Duration::from_secs(1))
            .unwrap();
        assert!(needs_settings(Some(&stale), &record));
    }

    #[test]
    fn an_admitted_record_carries_exactly_one_due_time_header() {
        let mut record = Record::to("t")
            .header(DELIVER_AT_MS, "1")
            .header("trace", "x")
            .deliver_after(Duration::from_secs(2));
        let due = record.deliver_at_ms.unwrap();
        admit("t", Some(&enabled(60_000)), &mut record).unwrap();
        let due_headers: Vec<_> = record
            .headers
            .iter()
            .filter(|(key, _)| key == DELIVER_AT_MS)
            .collect();
        assert_eq!(due_headers.len(), 1);
        assert_eq!(
            due_headers[0].1.as_deref(),
            Some(due.to_string().as_bytes())
        );
        assert_eq!(record.headers[0].0, "trace");
    }

    #[test]
    fn refused_records_keep_their_headers_and_say_why() {
        let mut record = Record::to("t").deliver_after(Duration::from_secs(120));
        let error = admit("t", Some(&enabled(60_000)), &mut record).unwrap_err();
        assert!(matches!(
            error,
            Error::DeliveryTime(DeliveryTimeError::TooFarAhead { max_ms: 60_000, .. })
        ));
        assert!(record.headers.is_empty());
        let error = admit("t", None, &mut record).unwrap_err();
        assert!(matches!(
            error,
            Error::DeliveryTime(DeliveryTimeError::NotEnabled { .. })
        ));
        assert_eq!(error.code_name(), "INVALID_DELIVERY_TIME");
        assert!(!error.is_retriable());
    }
}
