//! The producer's due-time rule and the header's reading.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;

use super::*;
use crate::admin::ConfigSource;

const NOW_MS: i64 = 1_700_000_000_000;

fn settings(enabled: bool, max_ms: i64) -> DelaySettings {
    DelaySettings { enabled, max_ms }
}

fn entry(key: &str, value: &str) -> ConfigEntry {
    ConfigEntry {
        key: key.to_owned(),
        value: value.to_owned(),
        source: ConfigSource::Topic,
    }
}

#[test]
fn due_times_within_the_maximum_either_way_are_accepted() {
    let on = settings(true, 60_000);
    for deliver_at_ms in [NOW_MS, NOW_MS + 1, NOW_MS + 60_000, NOW_MS - 60_000] {
        check("t", deliver_at_ms, NOW_MS, on).unwrap();
    }
}

#[test]
fn a_topic_without_the_feature_refuses_every_due_time() {
    let error = check("orders", NOW_MS + 1000, NOW_MS, settings(false, 60_000)).unwrap_err();
    assert_eq!(
        error,
        DeliveryTimeError::NotEnabled {
            topic: "orders".into()
        }
    );
    assert!(
        error.to_string().contains("delivery_delay_enabled=true"),
        "{error}"
    );
}

#[test]
fn due_times_beyond_the_maximum_are_refused_with_the_numbers() {
    let on = settings(true, 60_000);
    let ahead = check("t", NOW_MS + 60_001, NOW_MS, on).unwrap_err();
    assert!(
        matches!(
            ahead,
            DeliveryTimeError::TooFarAhead {
                ahead_ms: 60_001,
                max_ms: 60_000,
                ..
            }
        ),
        "{ahead:?}"
    );
    assert!(
        ahead.to_string().contains("delivery_delay_max_ms=60000"),
        "{ahead}"
    );
    let behind = check("t", NOW_MS - 60_001, NOW_MS, on).unwrap_err();
    assert!(
        matches!(
            behind,
            DeliveryTimeError::TooFarInPast {
                behind_ms: 60_001,
                ..
            }
        ),
        "{behind:?}"
    );
    // Seconds instead of milliseconds: decades in the past.
    let seconds = check("t", NOW_MS / 1000, NOW_MS, on).unwrap_err();
    assert!(matches!(seconds, DeliveryTimeError::TooFarInPast { .. }));
    // Extreme values do not overflow.
    assert!(check("t", i64::MAX, NOW_MS, on).is_err());
    assert!(check("t", i64::MIN, NOW_MS, on).is_err());
}

#[test]
fn settings_come_from_the_described_configs_with_defaults() {
    assert_eq!(
        DelaySettings::from_configs(&[]),
        settings(false, MAX_MS_DEFAULT)
    );
    let described = [
        entry("retention_ms", "1000"),
        entry(ENABLED_CONFIG, "true"),
        entry(MAX_MS_CONFIG, "5000"),
    ];
    assert_eq!(
        DelaySettings::from_configs(&described),
        settings(true, 5000)
    );
    let damaged = [entry(ENABLED_CONFIG, "yes"), entry(MAX_MS_CONFIG, "-3")];
    assert_eq!(
        DelaySettings::from_configs(&damaged),
        settings(false, MAX_MS_DEFAULT)
    );
}

#[test]
fn the_header_is_read_as_decimal_text() {
    let record = |value: Option<&'static str>| ConsumedRecord {
        topic: "t".into(),
        partition: 0,
        offset: 0,
        timestamp: 0,
        key: None,
        value: None,
        headers: vec![
            ("other".to_owned(), Some(Bytes::from_static(b"1"))),
            (
                DELIVER_AT_MS.to_owned(),
                value.map(|text| Bytes::from_static(text.as_bytes())),
            ),
        ],
        leader_epoch: 0,
        high_watermark: 1,
        log_start_offset: 0,
    };
    assert_eq!(
        deliver_at_ms(&record(Some("1700000000123"))),
        Some(1_700_000_000_123)
    );
    assert_eq!(deliver_at_ms(&record(Some("soon"))), None);
    assert_eq!(deliver_at_ms(&record(None)), None);
    assert!(wait_for(now_ms() - 1).is_none());
    assert!(wait_for(now_ms() + 60_000).is_some());
}
