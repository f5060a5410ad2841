//! Tests of topic config validation and resolution (reliability.md #33).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn raw(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

#[test]
fn kafka_aliases_are_normalized_and_values_made_canonical() {
    let normalized = TopicConfig::normalize(&raw(&[
        ("retention.ms", "+1000"),
        ("retention_bytes", "-1"),
        ("segment.bytes", "1024"),
        ("segment.ms", "60000"),
        ("flush", "interval:0250"),
        ("cleanup.policy", "compact"),
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
            ("cleanup_policy", "compact"),
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
        ("cleanup_policy", "delete,compact"),
        ("cleanup_policy", "DELETE"),
        ("min.insync.replicas", "2"),
        ("unclean.leader.election.enable", "true"),
        ("retention_MS", "1"),
        ("", "1"),
    ];
    for (key, value) in cases {
        match TopicConfig::normalize(&raw(&[(key, value)])) {
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
    let error = TopicConfig::normalize(&raw(&[("retention.ms", "1"), ("retention_ms", "2")]));
    assert!(matches!(error, Err(ControllerError::InvalidConfig { .. })));
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
    let entries = effective.entries();
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
