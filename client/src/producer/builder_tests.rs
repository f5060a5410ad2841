#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn builder() -> ProducerBuilder {
    Client::for_tests().producer()
}

#[test]
fn defaults_follow_the_client_conventions() {
    let config = builder().checked_config().unwrap();
    assert_eq!(config.acks, Acks::All);
    assert!(config.idempotence);
    assert_eq!(config.linger, Duration::from_millis(5));
    assert_eq!(config.batch_size_bytes, 16 * 1024);
    assert_eq!(config.delivery_timeout, Duration::from_secs(120));
    assert_eq!(config.request_timeout, Duration::from_secs(30));
    assert_eq!(config.max_in_flight, 5);
    assert_eq!(config.buffer_memory_bytes, 32 << 20);
}

#[test]
fn kafka_names_set_the_same_fields() {
    let config = builder()
        .set("linger.ms", "10")
        .set("batch.size", "1000")
        .set("compression.type", "zstd")
        .set("acks", "all")
        .set("max.in.flight.requests.per.connection", "3")
        .checked_config()
        .unwrap();
    assert_eq!(config.linger, Duration::from_millis(10));
    assert_eq!(config.batch_size_bytes, 1000);
    assert_eq!(config.compression, Compression::Zstd);
    assert_eq!(config.max_in_flight, 3);
}

#[test]
fn unknown_keys_and_bad_values_fail_at_build() {
    let unknown = builder().set("linger.msec", "10").checked_config();
    assert!(
        matches!(unknown, Err(Error::InvalidConfig(message)) if message.contains("linger.msec"))
    );
    assert!(builder().set("linger.ms", "soon").checked_config().is_err());
    assert!(builder().set("acks", "2").checked_config().is_err());
    assert!(builder()
        .compression(Compression::Gzip)
        .checked_config()
        .is_err());
    assert!(builder().max_in_flight(0).checked_config().is_err());
    let short = builder()
        .delivery_timeout(Duration::from_secs(1))
        .checked_config();
    assert!(short.is_err(), "delivery timeout below request timeout");
}

#[test]
fn weaker_acks_turn_default_idempotence_off_but_refuse_explicit_idempotence() {
    let config = builder().acks(Acks::Leader).checked_config().unwrap();
    assert!(!config.idempotence);
    let explicit = builder()
        .acks(Acks::None)
        .idempotence(true)
        .checked_config();
    assert!(explicit.is_err());
    assert!(builder().max_in_flight(6).checked_config().is_err());
    let plain = builder()
        .idempotence(false)
        .max_in_flight(10)
        .checked_config();
    assert!(plain.is_ok());
}

#[test]
fn build_needs_a_tokio_runtime() {
    assert!(matches!(builder().build(), Err(Error::InvalidConfig(_))));
}
