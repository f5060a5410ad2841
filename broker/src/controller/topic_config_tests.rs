//! Tests of topic config validation and resolution (hostile input 33 of
//! `docs/RELIABILITY.md`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn raw(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

fn normalize(raw: &BTreeMap<String, String>) -> Result<BTreeMap<String, String>, ControllerError> {
    TopicConfig::normalize(raw, &BrokerDefaults::default())
}

#[test]
fn kafka_aliases_are_normalized_and_values_made_canonical() {
    let normalized = normalize(&raw(&[
        ("retention.ms", "+1000"),
        ("retention_bytes", "-1"),
        ("segment.bytes", "1024"),
        ("segment.ms", "60000"),
        ("flush", "interval:0250"),
        ("cleanup.policy", "delete"),
        ("max.message.bytes", "2048"),
    ]))
    .unwrap();
    assert_eq!(
        normalized,
        raw(&[
            ("retention_ms", "1000"),
            ("retention_bytes", "-1"),
            ("segment_bytes", "1024"),
            ("segment_ms", "60000"),
            ("flush", "interval:250"),
            ("cleanup_policy", "delete"),
            ("message_max_bytes", "2048"),
        ])
    );
}

#[test]
fn bad_keys_and_values_are_invalid_config_naming_key_and_value() {
    let cases = [
        ("retention_ms", "-2"),
        ("retention.ms", "-100"),
        ("retention_bytes", "-5"),
        ("retention_ms", "ten"),
        ("retention_ms", ""),
        ("retention_ms", " 5"),
        ("retention_ms", "99999999999999999999"),
        ("segment_bytes", "1023"),
        ("segment_bytes", "2147483648"),
        ("segment_bytes", "0"),
        ("segment_ms", "0"),
        ("segment_ms", "-1"),
        ("message_max_bytes", "0"),
        ("max.message.bytes", "-1"),
        ("message_max_bytes", "2147483648"),
        ("flush", "never"),
        ("flush", "interval:0"),
        ("cleanup_policy", "delete,delete"),
        ("cleanup_policy", "compact,shred"),
        ("cleanup_policy", "DELETE"),
        ("delete_retention_ms", "-1"),
        ("delete.retention.ms", "a day"),
        ("min_cleanable_dirty_ratio", "1.5"),
        ("min.cleanable.dirty.ratio", "-0.1"),
        ("min_cleanable_dirty_ratio", "half"),
        ("max.message.bytes", "1048577"),
        ("min.insync.replicas", "0"),
        ("min_insync_replicas", "-1"),
        ("min_insync_replicas", "two"),
        ("min_insync_replicas", "2147483648"),
        ("min_insync_replicas", "1.5"),
        ("unclean.leader.election.enable", "maybe"),
        ("retention_MS", "1"),
        ("", "1"),
    ];
    for (key, value) in cases {
        match normalize(&raw(&[(key, value)])) {
            Err(ControllerError::InvalidConfig {
                key: got_key,
                value: got_value,
                reason,
            }) => {
                assert_eq!(got_value, value, "{key}={value}");
                assert!(!reason.is_empty());
                assert!(got_key == key || ConfigKey::parse(key).unwrap().name() == got_key);
            }
            other => panic!("{key}={value:?} gave {other:?}"),
        }
    }
}

#[test]
fn one_key_under_two_names_is_refused() {
    let error = normalize(&raw(&[("retention.ms", "1"), ("retention_ms", "2")]));
    assert!(matches!(error, Err(ControllerError::InvalidConfig { .. })));
}

/// The reason `normalize` refuses `key=value` with.
fn refusal(key: &str, value: &str, defaults: &BrokerDefaults) -> String {
    match TopicConfig::normalize(&raw(&[(key, value)]), defaults) {
        Err(ControllerError::InvalidConfig { reason, .. }) => reason,
        other => panic!("{key}={value:?} gave {other:?}"),
    }
}

#[test]
fn compaction_settings_are_accepted_and_made_canonical() {
    let defaults = BrokerDefaults::default();
    for (value, canonical) in [
        ("compact", "compact"),
        ("compact,delete", "compact,delete"),
        ("delete,compact", "compact,delete"),
        ("delete, compact", "compact,delete"),
        ("delete", "delete"),
    ] {
        for key in ["cleanup_policy", "cleanup.policy"] {
            let accepted = TopicConfig::normalize(&raw(&[(key, value)]), &defaults);
            assert_eq!(accepted.unwrap(), raw(&[("cleanup_policy", canonical)]));
        }
    }
    assert_eq!(
        refusal("cleanup_policy", "shred", &defaults),
        "expected \"delete\", \"compact\" or \"compact,delete\""
    );
    let accepted = TopicConfig::normalize(
        &raw(&[
            ("delete.retention.ms", "0"),
            ("min.cleanable.dirty.ratio", "0.250"),
        ]),
        &defaults,
    );
    assert_eq!(
        accepted.unwrap(),
        raw(&[
            ("delete_retention_ms", "0"),
            ("min_cleanable_dirty_ratio", "0.25"),
        ])
    );
    let effective = TopicConfig::effective(
        &raw(&[
            ("cleanup_policy", "compact"),
            ("delete_retention_ms", "5000"),
            ("min_cleanable_dirty_ratio", "0.1"),
        ]),
        &defaults,
    );
    let log = effective.to_log_config(&LogConfig::default());
    assert_eq!(log.cleanup_policy, CleanupPolicy::Compact);
    assert_eq!(log.delete_retention_ms, 5000);
    assert_eq!(log.min_cleanable_dirty_ratio.millionths(), 100_000);
    let plain = TopicConfig::effective(&BTreeMap::new(), &defaults);
    assert_eq!(plain.delete_retention_ms.value, 86_400_000);
    assert_eq!(plain.min_cleanable_dirty_ratio.value.to_string(), "0.5");
}

#[test]
fn message_max_bytes_cannot_exceed_the_broker_limit() {
    for broker_max in [1 << 20, 8 << 20] {
        let defaults = BrokerDefaults {
            message_max_bytes: broker_max,
            ..BrokerDefaults::default()
        };
        for key in ["message_max_bytes", "max.message.bytes"] {
            let at_the_limit = broker_max.to_string();
            let accepted = TopicConfig::normalize(&raw(&[(key, &at_the_limit)]), &defaults);
            assert_eq!(
                accepted.unwrap(),
                raw(&[("message_max_bytes", &at_the_limit)])
            );
            let reason = refusal(key, &(broker_max + 1).to_string(), &defaults);
            assert!(
                reason.contains(&format!("broker's message_max_bytes ({broker_max})")),
                "{reason}"
            );
        }
    }
}

#[test]
fn stored_overrides_the_broker_cannot_honour_are_kept_but_not_applied() {
    // As a metadata log written before the rules holds them.
    let stored = raw(&[
        ("cleanup_policy", "shred"),
        ("message_max_bytes", "2147483647"),
        ("retention_ms", "1000"),
    ]);
    let defaults = BrokerDefaults::default();
    let effective = TopicConfig::effective(&stored, &defaults);
    assert_eq!(
        effective.cleanup_policy,
        ConfigValue {
            value: CleanupPolicy::Delete,
            source: ConfigValueSource::Default
        },
        "an unknown policy is not claimed"
    );
    assert_eq!(
        effective.message_max_bytes,
        ConfigValue {
            value: defaults.message_max_bytes,
            source: ConfigValueSource::Default
        }
    );
    assert_eq!(effective.retention_ms.source, ConfigValueSource::Topic);
    let ignored: Vec<String> = TopicConfig::ignored_overrides(&stored, &defaults)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(ignored.len(), 2, "{ignored:?}");
    assert!(
        ignored[0].contains("cleanup_policy=\"shred\""),
        "{ignored:?}"
    );
    assert!(
        ignored[1].contains("message_max_bytes=\"2147483647\""),
        "{ignored:?}"
    );
}

#[test]
fn effective_config_reports_values_and_sources() {
    let defaults = BrokerDefaults {
        flush: FlushPolicy::Interval { interval_ms: 100 },
        ..BrokerDefaults::default()
    };
    let effective = TopicConfig::effective(&raw(&[("retention_ms", "-1")]), &defaults);
    assert_eq!(
        effective.retention_ms,
        ConfigValue {
            value: -1,
            source: ConfigValueSource::Topic
        }
    );
    assert_eq!(
        effective.flush,
        ConfigValue {
            value: FlushPolicy::Interval { interval_ms: 100 },
            source: ConfigValueSource::Broker
        }
    );
    assert_eq!(effective.segment_bytes.source, ConfigValueSource::Default);
    assert_eq!(effective.message_max_bytes.value, 1 << 20);
    let entries = effective.entries(1);
    assert_eq!(entries.len(), ConfigKey::ALL.len());
    assert_eq!(
        entries[0],
        ("retention_ms".into(), "-1".into(), ConfigValueSource::Topic)
    );
    assert_eq!(entries[4].1, "interval:100");
}

#[test]
fn a_damaged_stored_override_falls_back_to_the_default() {
    let effective = TopicConfig::effective(
        &raw(&[("retention_ms", "soon")]),
        &BrokerDefaults::default(),
    );
    assert_eq!(effective.retention_ms.source, ConfigValueSource::Default);
    assert_eq!(
        effective.retention_ms.value,
        BrokerDefaults::default().retention_ms
    );
}

#[test]
fn log_config_takes_topic_settings_over_the_base() {
    let base = LogConfig::default();
    let effective = TopicConfig::effective(
        &raw(&[
            ("retention_ms", "-1"),
            ("retention_bytes", "4096"),
            ("segment_bytes", "2048"),
            ("segment_ms", "1000"),
            ("flush", "interval:50"),
            ("message_max_bytes", "100"),
        ]),
        &BrokerDefaults::default(),
    );
    let log = effective.to_log_config(&base);
    assert_eq!(log.retention_ms, None);
    assert_eq!(log.retention_bytes, Some(4096));
    assert_eq!(log.segment_bytes, 2048);
    assert_eq!(log.segment_ms, Some(1000));
    assert_eq!(log.flush, FlushPolicy::Interval { interval_ms: 50 });
    assert_eq!(log.batch_bytes_max, base.batch_bytes_max);
    assert_eq!(log.index_interval_bytes, base.index_interval_bytes);
}

#[test]
fn broker_defaults_follow_the_broker_log_config() {
    let log = LogConfig {
        retention_ms: None,
        flush: FlushPolicy::Interval { interval_ms: 5 },
        ..LogConfig::default()
    };
    let defaults = BrokerDefaults::from_log_config(&log, 1 << 20);
    assert_eq!(defaults.retention_ms, -1);
    assert_eq!(defaults.flush, FlushPolicy::Interval { interval_ms: 5 });
    assert_eq!(defaults.segment_bytes, 1 << 30);
    let effective = TopicConfig::effective(&BTreeMap::new(), &defaults);
    assert_eq!(effective.to_log_config(&log), log);
}

#[test]
fn unclean_leader_election_is_a_bool_off_by_default() {
    let defaults = BrokerDefaults::default();
    for (key, value, stored) in [
        ("unclean_leader_election_enable", "true", "true"),
        ("unclean.leader.election.enable", "FALSE", "false"),
    ] {
        let normalized = normalize(&raw(&[(key, value)])).unwrap();
        assert_eq!(
            normalized,
            raw(&[("unclean_leader_election_enable", stored)])
        );
    }
    for bad in ["yes", "1", ""] {
        assert!(matches!(
            normalize(&raw(&[("unclean_leader_election_enable", bad)])),
            Err(ControllerError::InvalidConfig { .. })
        ));
    }
    let off = TopicConfig::effective(&BTreeMap::new(), &defaults);
    assert_eq!(
        off.unclean_leader_election_enable,
        ConfigValue {
            value: false,
            source: ConfigValueSource::Default
        }
    );
    let on = TopicConfig::effective(
        &raw(&[("unclean_leader_election_enable", "true")]),
        &defaults,
    );
    assert!(on.unclean_leader_election_enable.value);
    assert_eq!(
        on.entries(1)[ConfigKey::ALL.len() - 6],
        (
            "unclean_leader_election_enable".to_string(),
            "true".to_string(),
            ConfigValueSource::Topic
        )
    );
}

#[test]
fn min_insync_replicas_is_an_integer_of_at_least_one_under_either_name() {
    for (key, value, stored) in [
        ("min_insync_replicas", "2", "2"),
        ("min.insync.replicas", "+3", "3"),
        ("min_insync_replicas", "1", "1"),
    ] {
        let normalized = normalize(&raw(&[(key, value)])).unwrap();
        assert_eq!(normalized, raw(&[("min_insync_replicas", stored)]));
    }
    let reason = refusal("min.insync.replicas", "0", &BrokerDefaults::default());
    assert_eq!(reason, "out of range; expected a number ≥ 1");
}

/// Unset, the minimum follows each partition's replication factor: 2 from RF 3 on, else
/// 1. Set, it is the topic's value whatever the replication factor.
#[test]
fn min_insync_replicas_defaults_to_two_from_replication_factor_three() {
    let defaults = BrokerDefaults::default();
    let unset = TopicConfig::effective(&BTreeMap::new(), &defaults);
    assert_eq!(
        unset.min_insync_replicas,
        ConfigValue {
            value: MinInsyncReplicas::ByReplicationFactor,
            source: ConfigValueSource::Default
        }
    );
    let by_replication_factor: Vec<usize> = (1..=5)
        .map(|rf| unset.min_insync_replicas.value.for_replication_factor(rf))
        .collect();
    assert_eq!(by_replication_factor, [1, 1, 2, 2, 2]);
    let set = TopicConfig::effective(&raw(&[("min_insync_replicas", "3")]), &defaults);
    assert_eq!(set.min_insync_replicas.source, ConfigValueSource::Topic);
    for rf in [1, 3, 5] {
        assert_eq!(set.min_insync_replicas.value.for_replication_factor(rf), 3);
    }
}

/// Describe shows the number that applies, with its source.
#[test]
fn describe_shows_min_insync_replicas_for_the_topics_replication_factor() {
    let defaults = BrokerDefaults::default();
    let entry = |overrides: &[(&str, &str)], rf: usize| {
        let effective = TopicConfig::effective(&raw(overrides), &defaults);
        effective
            .entries(rf)
            .into_iter()
            .find(|(key, _, _)| key == "min_insync_replicas")
            .unwrap()
    };
    let default = |value: &str| {
        (
            "min_insync_replicas".to_string(),
            value.to_string(),
            ConfigValueSource::Default,
        )
    };
    assert_eq!(entry(&[], 1), default("1"));
    assert_eq!(entry(&[], 2), default("1"));
    assert_eq!(entry(&[], 3), default("2"));
    assert_eq!(
        entry(&[("min_insync_replicas", "1")], 3),
        (
            "min_insync_replicas".to_string(),
            "1".to_string(),
            ConfigValueSource::Topic
        )
    );
}

/// Above the replication factor no ISR can ever reach it: refused with both numbers
/// named, and nothing else is checked against the replication factor.
#[test]
fn min_insync_replicas_above_the_replication_factor_is_refused() {
    let set = |value: &str| raw(&[("min_insync_replicas", value)]);
    assert!(TopicConfig::check_replication_factor(&set("3"), 3).is_ok());
    assert!(TopicConfig::check_replication_factor(&set("1"), 1).is_ok());
    assert!(TopicConfig::check_replication_factor(&BTreeMap::new(), 1).is_ok());
    assert!(TopicConfig::check_replication_factor(&raw(&[("retention_ms", "5")]), 1).is_ok());
    match TopicConfig::check_replication_factor(&set("4"), 3) {
        Err(ControllerError::InvalidConfig { key, value, reason }) => {
            assert_eq!((key.as_str(), value.as_str()), ("min_insync_replicas", "4"));
            assert!(
                reason.contains("above the topic's replication factor (3)"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn delivery_delay_keys_are_checked_and_default_to_off_and_seven_days() {
    let defaults = BrokerDefaults::default();
    let normalized = TopicConfig::normalize(
        &raw(&[
            ("delivery.delay.enabled", "TRUE"),
            ("delivery.delay.max.ms", "60000"),
        ]),
        &defaults,
    )
    .unwrap();
    assert_eq!(
        normalized,
        raw(&[
            ("delivery_delay_enabled", "true"),
            ("delivery_delay_max_ms", "60000"),
        ])
    );
    for (key, value) in [
        ("delivery_delay_enabled", "yes"),
        ("delivery_delay_max_ms", "999"),
        ("delivery_delay_max_ms", "31536000001"),
        ("delivery_delay_max_ms", "soon"),
    ] {
        let error = TopicConfig::normalize(&raw(&[(key, value)]), &defaults).unwrap_err();
        assert!(
            matches!(&error, ControllerError::InvalidConfig { key: refused, .. } if refused == key),
            "{key}={value}: {error}"
        );
    }
    let plain = TopicConfig::effective(&BTreeMap::new(), &defaults);
    assert!(!plain.delivery_delay_enabled.value);
    assert_eq!(plain.delivery_delay_max_ms.value, 604_800_000);
    let entries = plain.entries(1);
    assert!(entries.contains(&(
        "delivery_delay_enabled".to_string(),
        "false".to_string(),
        ConfigValueSource::Default
    )));
    let on = TopicConfig::effective(&normalized, &defaults);
    assert!(on.delivery_delay_enabled.value);
    assert_eq!(
        on.delivery_delay_max_ms,
        ConfigValue {
            value: 60_000,
            source: ConfigValueSource::Topic
        }
    );
}
