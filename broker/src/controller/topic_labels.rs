//! Topic labels: configs the broker stores and shows but never applies to the log.
//!
//! `strata-client` creates a consuming group's retry and dead-letter topics
//! (`<topic>.<group>.retry.<n>`, `<topic>.<group>.dlt`; `docs/RETRY.md`) and records in
//! each who owns it, so that a client of another (topic, group) whose derived name
//! happens to be the same refuses to use it instead of mixing two groups' failures:
//!
//! | key | value |
//! |---|---|
//! | `strata.retry.source-topic` | the topic whose records it holds: 1 to 249 of `[a-zA-Z0-9._-]` |
//! | `strata.retry.group` | the group that failed them: 1 to 249 bytes |
//! | `strata.retry.kind` | `retry` or `dlt` |
//! | `strata.retry.level` | the retry level, 0 ..= 1000 (`0` for a dead-letter topic) |
//!
//! Only these keys are labels: any other `strata.` key is still an unknown config, so a
//! typo is refused as for every config. Labels are stored verbatim in the topic's
//! overrides, listed by describe after the settings, and changed or deleted by
//! alter-configs like any override.

use super::error::ControllerError;

/// The topic whose failed records a retry or dead-letter topic holds.
pub const LABEL_SOURCE: &str = "strata.retry.source-topic";
/// The group that failed them.
pub const LABEL_GROUP: &str = "strata.retry.group";
/// `retry` or `dlt`.
pub const LABEL_KIND: &str = "strata.retry.kind";
/// The retry level.
pub const LABEL_LEVEL: &str = "strata.retry.level";

/// The label keys, in the order describe lists them.
pub const LABEL_KEYS: [&str; 4] = [LABEL_SOURCE, LABEL_GROUP, LABEL_KIND, LABEL_LEVEL];

/// The longest topic name or group id.
const NAME_BYTES_MAX: usize = 249;

/// The highest retry level accepted.
const LEVEL_MAX: u32 = 1000;

/// Whether `key` is a label rather than a setting.
pub fn is_label(key: &str) -> bool {
    LABEL_KEYS.contains(&key)
}

/// Checks the value of label `key`.
pub fn check_label(key: &str, value: &str) -> Result<(), ControllerError> {
    let invalid = |reason: &str| ControllerError::InvalidConfig {
        key: key.to_owned(),
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    match key {
        "strata.retry.source-topic" => {
            let legal = |byte: u8| byte.is_ascii_alphanumeric() || b"._-".contains(&byte);
            if value.is_empty() || value.len() > NAME_BYTES_MAX || !value.bytes().all(legal) {
                return Err(invalid("expected a topic name: 1 to 249 of [a-zA-Z0-9._-]"));
            }
        }
        "strata.retry.group" => {
            if value.is_empty() || value.len() > NAME_BYTES_MAX {
                return Err(invalid("expected a group id of 1 to 249 bytes"));
            }
        }
        "strata.retry.kind" => {
            if value != "retry" && value != "dlt" {
                return Err(invalid("expected retry or dlt"));
            }
        }
        "strata.retry.level" => {
            let fits = value.parse::<u32>().is_ok_and(|level| level <= LEVEL_MAX);
            if !fits {
                return Err(invalid("expected a number from 0 to 1000"));
            }
        }
        _ => return Err(invalid("unknown topic config key")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_labels_pass_and_bad_ones_name_the_rule() {
        for (key, value) in [
            ("strata.retry.source-topic", "orders"),
            ("strata.retry.group", "billing team/eu"),
            ("strata.retry.kind", "retry"),
            ("strata.retry.kind", "dlt"),
            ("strata.retry.level", "0"),
            ("strata.retry.level", "1000"),
        ] {
            assert!(check_label(key, value).is_ok(), "{key}={value}");
        }
        for (key, value, rule) in [
            ("strata.retry.source-topic", "a b", "topic name"),
            ("strata.retry.source-topic", "", "topic name"),
            ("strata.retry.group", "", "group id"),
            ("strata.retry.kind", "later", "retry or dlt"),
            ("strata.retry.level", "-1", "0 to 1000"),
            ("strata.retry.level", "1001", "0 to 1000"),
            ("strata.retry.levle", "1", "unknown"),
        ] {
            match check_label(key, value) {
                Err(ControllerError::InvalidConfig { reason, .. }) => {
                    assert!(reason.contains(rule), "{key}={value}: {reason}");
                }
                other => panic!("{key}={value}: {other:?}"),
            }
        }
        assert!(is_label("strata.retry.group"));
        assert!(!is_label("strata.retry.other"));
    }

    #[test]
    fn labels_are_stored_verbatim_and_listed_after_the_settings() {
        use crate::controller::topic_config::{BrokerDefaults, ConfigValueSource, TopicConfig};
        let raw = [
            ("strata.retry.group", "billing team"),
            ("strata.retry.kind", "dlt"),
            ("retention.ms", "1000"),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect();
        let defaults = BrokerDefaults::default();
        let stored = TopicConfig::normalize(&raw, &defaults).unwrap_or_default();
        assert_eq!(
            stored.get("strata.retry.group").map(String::as_str),
            Some("billing team")
        );
        assert_eq!(stored.get("retention_ms").map(String::as_str), Some("1000"));
        let effective = TopicConfig::effective(&stored, &defaults);
        assert_eq!(effective.retention_ms.value, 1000);
        let entries = effective.entries(1);
        let tail: Vec<(&str, &str)> = entries
            .iter()
            .skip_while(|(key, _, _)| !key.starts_with("strata."))
            .map(|(key, value, source)| {
                assert_eq!(*source, ConfigValueSource::Topic);
                (key.as_str(), value.as_str())
            })
            .collect();
        assert_eq!(
            tail,
            [
                ("strata.retry.group", "billing team"),
                ("strata.retry.kind", "dlt")
            ]
        );
        assert!(TopicConfig::ignored_overrides(&stored, &defaults).is_empty());
        assert!(!is_label("retention_ms"));
    }
}
