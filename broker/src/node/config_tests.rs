#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use clap::{Args as _, FromArgMatches as _};

use super::given::{
    parse_with_units, DURATION_EXPECTED, DURATION_UNITS, SIZE_EXPECTED, SIZE_UNITS,
};
use super::*;

fn load(flags: &[&str], file: Option<&str>) -> Result<BrokerSettings, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let mut argv = vec!["strata-broker".to_owned()];
    argv.extend(flags.iter().map(|flag| (*flag).to_owned()));
    if let Some(text) = file {
        let path = dir.path().join("broker.toml");
        std::fs::write(&path, text).unwrap();
        argv.push("--config".to_owned());
        argv.push(path.display().to_string());
    }
    let matches = ServeArgs::augment_args(clap::Command::new("strata-broker"))
        .try_get_matches_from(argv)
        .unwrap();
    let args = ServeArgs::from_arg_matches(&matches).unwrap();
    BrokerSettings::load(&args, &matches)
}

#[test]
fn log_io_defaults_to_buffered_and_is_taken_from_a_flag_or_the_file() {
    assert_eq!(load(&[], None).unwrap().log_io, LogIo::Buffered);
    let settings = load(&["--log-io", "direct"], None).unwrap();
    assert_eq!(settings.log_io, LogIo::Direct);
    assert!(settings
        .to_annotated_toml()
        .contains("log_io = \"direct\" # flag"));
    assert_eq!(
        load(&[], Some("log_io = \"direct\"\n")).unwrap().log_io,
        LogIo::Direct
    );
}

#[test]
fn retention_check_interval_defaults_to_a_minute_and_zero_is_refused() {
    assert_eq!(load(&[], None).unwrap().retention_check_interval_ms, 60_000);
    let settings = load(&["--retention-check-interval-ms", "500"], None).unwrap();
    assert_eq!(settings.retention_check_interval_ms, 500);
    assert!(settings
        .to_annotated_toml()
        .contains("retention_check_interval_ms = 500 # flag"));
    assert_eq!(
        load(&[], Some("retention_check_interval_ms = 2000\n"))
            .unwrap()
            .retention_check_interval_ms,
        2000
    );
    let error = load(&["--retention-check-interval-ms", "0"], None).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("retention_check_interval_ms (from flag)"),
        "{error}"
    );
}

#[test]
fn replica_lag_time_max_defaults_to_10_s_and_comes_from_a_flag_or_the_file() {
    let settings = load(&[], None).unwrap();
    assert_eq!(settings.replica_lag_time_max_ms, 10_000);
    assert!(settings
        .to_annotated_toml()
        .contains("replica_lag_time_max_ms = 10000 # default"));
    let settings = load(&["--replica-lag-time-max-ms", "2s"], None).unwrap();
    assert_eq!(settings.replica_lag_time_max_ms, 2_000);
    assert!(settings
        .to_annotated_toml()
        .contains("replica_lag_time_max_ms = 2000 # flag"));
    let from_file = load(&[], Some("replica_lag_time_max_ms = 30000\n")).unwrap();
    assert_eq!(from_file.replica_lag_time_max_ms, 30_000);
    assert!(from_file
        .to_annotated_toml()
        .contains("replica_lag_time_max_ms = 30000 # file"));
    for (flags, file, expected) in [
        (
            &["--replica-lag-time-max-ms", "0"][..],
            None,
            "replica_lag_time_max_ms (from flag): must be between 1 and 3600000",
        ),
        (
            &[][..],
            Some("replica_lag_time_max_ms = 3600001\n"),
            "replica_lag_time_max_ms (from file): must be between 1 and 3600000",
        ),
    ] {
        assert_eq!(load(flags, file).unwrap_err().to_string(), expected);
    }
    let error = load(&["--replica-lag-time-max-ms", "soon"], None).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("replica_lag_time_max_ms (from flag)"),
        "{error}"
    );
}

#[test]
fn choices_parse_by_name_and_a_wrong_one_lists_them() {
    assert_eq!("json".parse::<LogFormat>(), Ok(LogFormat::Json));
    assert_eq!(
        "xml".parse::<LogFormat>(),
        Err("expected \"text\" or \"json\", not \"xml\"".to_owned())
    );
    assert_eq!("direct".parse::<LogIo>(), Ok(LogIo::Direct));
    for (name, io) in LogIo::NAMES {
        assert_eq!(io.name(), name);
    }
}

#[test]
fn worker_threads_default_to_one_per_core_and_zero_is_refused() {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    assert_eq!(load(&[], None).unwrap().worker_threads, cores);
    let settings = load(&["--worker-threads", "1"], None).unwrap();
    assert_eq!(settings.worker_threads, 1);
    assert!(settings
        .to_annotated_toml()
        .contains("worker_threads = 1 # flag"));
    assert_eq!(
        load(&[], Some("worker_threads = 3\n"))
            .unwrap()
            .worker_threads,
        3
    );
    let error = load(&[], Some("worker_threads = 0\n")).unwrap_err();
    assert_eq!(
        error.to_string(),
        "worker_threads (from file): must be between 1 and 1024"
    );
}

#[test]
fn shutdown_grace_defaults_to_25_s_and_comes_from_a_flag_or_the_file() {
    let settings = load(&[], None).unwrap();
    assert_eq!(settings.shutdown_grace_ms, 25_000);
    assert!(settings
        .to_annotated_toml()
        .contains("shutdown_grace_ms = 25000 # default"));
    let settings = load(&["--shutdown-grace-ms", "0"], None).unwrap();
    assert_eq!(settings.shutdown_grace_ms, 0);
    assert!(settings
        .to_annotated_toml()
        .contains("shutdown_grace_ms = 0 # flag"));
    let from_file = load(&[], Some("shutdown_grace_ms = 5000\n")).unwrap();
    assert_eq!(from_file.shutdown_grace_ms, 5000);
    let error = load(&[], Some("shutdown_grace_ms = 3600001\n")).unwrap_err();
    assert_eq!(
        error.to_string(),
        "shutdown_grace_ms (from file): must be between 0 and 3600000"
    );
}

#[test]
fn connection_limits_have_kafka_like_defaults_and_come_from_flag_env_or_file() {
    let settings = load(&[], None).unwrap();
    assert_eq!(
        (
            settings.max_connections_per_ip,
            settings.max_streams_per_ip,
            settings.handshake_timeout_ms,
            settings.connections_max_idle_ms
        ),
        (256, 1024, 10_000, 600_000)
    );
    let printed = settings.to_annotated_toml();
    assert!(printed.contains("max_connections_per_ip = 256 # default"));
    assert!(printed.contains("connections_max_idle_ms = 600000 # default"));
    let settings = load(
        &[
            "--max-connections-per-ip",
            "8",
            "--max-streams-per-ip",
            "16",
            "--handshake-timeout-ms",
            "500",
        ],
        Some("connections_max_idle_ms = 2000\n"),
    )
    .unwrap();
    assert_eq!(settings.max_connections_per_ip, 8);
    assert_eq!(settings.max_streams_per_ip, 16);
    assert_eq!(settings.handshake_timeout_ms, 500);
    assert_eq!(settings.connections_max_idle_ms, 2000);
    assert!(settings
        .to_annotated_toml()
        .contains("connections_max_idle_ms = 2000 # file"));
    let error = load(&["--max-connections-per-ip", "0"], None).unwrap_err();
    assert_eq!(
        error.to_string(),
        "max_connections_per_ip (from flag): must be between 1 and 1000000"
    );
    let error = load(&[], Some("handshake_timeout_ms = 0\n")).unwrap_err();
    assert_eq!(
        error.to_string(),
        "handshake_timeout_ms (from file): must be between 1 and 604800000"
    );
}

#[test]
fn sizes_take_1024_based_and_1000_based_units_and_plain_bytes() {
    let bytes = |text: &str| parse_with_units(text, &SIZE_UNITS, SIZE_EXPECTED);
    for (text, expected) in [
        ("1048576", 1 << 20),
        ("0", 0),
        ("1B", 1),
        ("1KiB", 1 << 10),
        ("1MiB", 1 << 20),
        ("4MiB", 4 << 20),
        ("1GiB", 1 << 30),
        ("10GiB", 10 << 30),
        ("1TiB", 1 << 40),
        ("1KB", 1_000),
        ("1MB", 1_000_000),
        ("512MB", 512_000_000),
        ("1GB", 1_000_000_000),
        ("1 MiB", 1 << 20),
        ("1mib", 1 << 20),
        (" 2kb ", 2_000),
    ] {
        assert_eq!(bytes(text), Ok(expected), "{text:?}");
    }
    for text in ["", "MiB", "1.5MiB", "1XB", "1M", "1 M iB", "-1MiB", "0x10"] {
        let error = bytes(text).unwrap_err();
        assert!(
            error.starts_with("expected bytes or a size"),
            "{text:?}: {error}"
        );
        assert!(error.ends_with(&format!("not {text:?}")), "{error}");
    }
    assert_eq!(
        bytes("20000000TiB"),
        Err("\"20000000TiB\" is too large".to_owned())
    );
}

#[test]
fn durations_take_units_and_plain_milliseconds() {
    let millis = |text: &str| parse_with_units(text, &DURATION_UNITS, DURATION_EXPECTED);
    for (text, expected) in [
        ("30000", 30_000),
        ("500ms", 500),
        ("30s", 30_000),
        ("10m", 600_000),
        ("1h", 3_600_000),
        ("7d", 604_800_000),
    ] {
        assert_eq!(millis(text), Ok(expected), "{text:?}");
    }
    assert!(millis("1w")
        .unwrap_err()
        .starts_with("expected milliseconds"));
    assert!(millis("1.5s").is_err());
}

#[test]
fn sizes_and_durations_with_units_come_from_a_flag_or_the_file() {
    let settings = load(
        &[
            "--segment-bytes",
            "1MiB",
            "--retention-ms",
            "-1",
            "--shutdown-grace-ms",
            "5s",
        ],
        Some(
            "retention_bytes = \"10GiB\"\nmessage_max_bytes = \"4MiB\"\n\
             connections_max_idle_ms = 60000\nretention_check_interval_ms = \"1m\"\n",
        ),
    )
    .unwrap();
    assert_eq!(settings.segment_bytes, 1 << 20);
    assert_eq!(settings.retention_ms, -1);
    assert_eq!(settings.shutdown_grace_ms, 5_000);
    assert_eq!(settings.retention_bytes, 10 << 30);
    assert_eq!(settings.message_max_bytes, 4 << 20);
    assert_eq!(settings.connections_max_idle_ms, 60_000);
    assert_eq!(settings.retention_check_interval_ms, 60_000);
    let printed = settings.to_annotated_toml();
    assert!(
        printed.contains("segment_bytes = 1048576 # flag"),
        "{printed}"
    );
    assert!(printed.contains("retention_bytes = 10737418240 # file"));

    let settings = load(
        &["--retention-bytes", "-1"],
        Some("retention_ms = \"7d\"\n"),
    );
    let settings = settings.unwrap();
    assert_eq!(
        (settings.retention_bytes, settings.retention_ms),
        (-1, 604_800_000)
    );
    let settings = load(&[], Some("retention_bytes = -1\nsegment_bytes = 2048\n")).unwrap();
    assert_eq!(
        (settings.retention_bytes, settings.segment_bytes),
        (-1, 2048)
    );
}

#[test]
fn a_bad_size_or_duration_is_refused_naming_its_source() {
    let error = load(&["--segment-bytes", "1XB"], None).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("segment_bytes (from flag): expected bytes or a size with a unit"),
        "{error}"
    );
    let error = load(&[], Some("message_max_bytes = \"1.5MiB\"\n")).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("message_max_bytes (from file): expected"),
        "{error}"
    );
    let error = load(&[], Some("segment_bytes = -5\n")).unwrap_err();
    assert!(
        error.to_string().starts_with("segment_bytes (from file)"),
        "{error}"
    );
    let error = load(&[], Some("retention_bytes = -2\n")).unwrap_err();
    assert_eq!(
        error.to_string(),
        "retention_bytes (from file): must be ≥ 0, or -1 for unlimited"
    );
    let error = load(&["--retention-ms=-1s"], None).unwrap_err();
    assert!(
        error.to_string().starts_with("retention_ms (from flag)"),
        "{error}"
    );
    let error = load(&[], Some("shutdown_grace_ms = \"2h\"\n")).unwrap_err();
    assert_eq!(
        error.to_string(),
        "shutdown_grace_ms (from file): must be between 0 and 3600000"
    );
    // Range checks apply to the value with its unit resolved.
    let error = load(&["--segment-bytes", "2GiB"], None).unwrap_err();
    assert_eq!(
        error.to_string(),
        "segment_bytes (from flag): must be between 1024 and 2147483647"
    );
    let error = load(&[], Some("segment_bytes = true\n")).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("an integer or a string with a unit"),
        "{error}"
    );
}

#[test]
fn host_ports_take_names_and_ip_addresses() {
    for (text, host, port) in [
        ("localhost:7070", "localhost", 7070),
        ("broker-1:7070", "broker-1", 7070),
        ("kafka.example.com:9092", "kafka.example.com", 9092),
        ("127.0.0.1:0", "127.0.0.1", 0),
        ("0.0.0.0:7070", "0.0.0.0", 7070),
        ("[::1]:7070", "::1", 7070),
    ] {
        let parsed: HostPort = text.parse().unwrap();
        assert_eq!((parsed.host(), parsed.port()), (host, port), "{text}");
        assert_eq!(parsed.to_string(), text);
    }
    assert_eq!(
        "[::1]:7070".parse::<HostPort>().unwrap().ip_address(),
        Some("[::1]:7070".parse().unwrap())
    );
    assert_eq!(
        "localhost:7070".parse::<HostPort>().unwrap().ip_address(),
        None
    );
    for (text, why) in [
        ("localhost", "no port"),
        ("localhost:", "not a port number"),
        ("localhost:70000", "not a port number"),
        (":7070", "not a host name or an IP address"),
        ("bad host:7070", "not a host name or an IP address"),
        ("http://localhost:7070", "give no scheme"),
        ("::1:7070", "an IPv6 address needs brackets"),
        ("[::1]7070", "no ]:PORT after an IPv6 address"),
        ("[local]:7070", "not an IPv6 address in the brackets"),
    ] {
        let error = text.parse::<HostPort>().unwrap_err();
        assert!(
            error.starts_with("expected HOST:PORT") && error.ends_with(why),
            "{text}: {error}"
        );
    }
}

#[tokio::test]
async fn a_listen_host_name_resolves_to_an_ipv4_address_and_an_unknown_one_is_named() {
    let localhost: HostPort = "localhost:7070".parse().unwrap();
    assert_eq!(
        localhost.resolve().await.unwrap(),
        "127.0.0.1:7070".parse::<SocketAddr>().unwrap()
    );
    let ip: HostPort = "127.0.0.1:7071".parse().unwrap();
    assert_eq!(ip.resolve().await.unwrap().port(), 7071);
    // `.invalid` never resolves (RFC 2606).
    let unknown: HostPort = "no-such-host.invalid:7070".parse().unwrap();
    let error = unknown.resolve().await.unwrap_err().to_string();
    assert!(
        error.starts_with(
            "cannot resolve no-such-host.invalid (listen address no-such-host.invalid:7070): "
        ),
        "{error}"
    );
}

#[test]
fn listen_and_advertised_addresses_take_host_names_from_a_flag_or_the_file() {
    let settings = load(&["--listen", "localhost:7071"], None).unwrap();
    assert_eq!(settings.listen.to_string(), "localhost:7071");
    assert_eq!(settings.advertised_address, "localhost:7071");
    assert_eq!(settings.controller_voters.to_string(), "1@localhost:7071");
    let printed = settings.to_annotated_toml();
    assert!(
        printed.contains("grpc = \"localhost:7071\" # flag"),
        "{printed}"
    );
    let settings = load(
        &[],
        Some("[listeners]\ngrpc = \"0.0.0.0:7070\"\n[advertised]\ngrpc = \"broker-1:7070\"\n"),
    )
    .unwrap();
    assert_eq!(settings.listen.to_string(), "0.0.0.0:7070");
    assert_eq!(settings.advertised_address, "broker-1:7070");
    let error = load(&["--listen", "7070"], None).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("listeners.grpc (from flag): expected HOST:PORT"),
        "{error}"
    );
    let error = load(&[], Some("[advertised]\ngrpc = \"broker 1\"\n")).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("advertised.grpc (from file): expected HOST:PORT"),
        "{error}"
    );
}

#[test]
fn the_external_listener_is_off_by_default_and_advertises_its_address_unless_told_otherwise() {
    let settings = load(&[], None).unwrap();
    assert_eq!(settings.external_listen, None);
    assert_eq!(settings.external_advertised_address, None);
    assert!(!settings.to_annotated_toml().contains("external"));

    let settings = load(&["--external-listen", "0.0.0.0:17070"], None).unwrap();
    assert_eq!(
        settings.external_listen.as_ref().map(ToString::to_string),
        Some("0.0.0.0:17070".to_owned())
    );
    assert_eq!(
        settings.external_advertised_address.as_deref(),
        Some("0.0.0.0:17070")
    );
    let settings = load(
        &[],
        Some("[listeners]\nexternal = \"0.0.0.0:17070\"\n[advertised]\nexternal = \"127.0.0.1:17070\"\n"),
    )
    .unwrap();
    assert_eq!(
        settings.external_advertised_address.as_deref(),
        Some("127.0.0.1:17070")
    );
    let printed = settings.to_annotated_toml();
    assert!(
        printed.contains("external = \"0.0.0.0:17070\" # file")
            && printed.contains("external = \"127.0.0.1:17070\" # file"),
        "{printed}"
    );
    // The internal listener and its advertised address are unchanged by it.
    assert_eq!(settings.listen.to_string(), "127.0.0.1:7070");
    assert_eq!(settings.advertised_address, "127.0.0.1:7070");

    let error = load(&["--external-advertised-address", "127.0.0.1:17070"], None).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("advertised.external (from flag): needs an external listener"),
        "{error}"
    );
    let error = load(&["--external-listen", "17070"], None).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("listeners.external (from flag): expected HOST:PORT"),
        "{error}"
    );
}

#[test]
fn an_unknown_key_in_the_file_is_refused() {
    let error = load(&[], Some("segment_size = 1024\n")).unwrap_err();
    assert!(
        matches!(&error, ConfigError::ParseFile { reason, .. } if reason.contains("unknown field `segment_size`")),
        "{error}"
    );
    let error = load(&[], Some("[listeners]\nkafka = \"127.0.0.1:9092\"\n")).unwrap_err();
    assert!(
        error.to_string().contains("unknown field `kafka`"),
        "{error}"
    );
}

#[test]
fn an_unknown_log_io_is_refused_naming_its_source() {
    let error = load(&[], Some("log_io = \"mmap\"\n")).unwrap_err();
    assert_eq!(
        error.to_string(),
        "log_io (from file): expected \"buffered\" or \"direct\", not \"mmap\""
    );
}

#[test]
fn group_settings_have_kafkas_defaults_and_are_checked() {
    let settings = load(&[], None).unwrap();
    assert_eq!(
        (
            settings.group_session_timeout_ms,
            settings.group_heartbeat_interval_ms,
            settings.offsets_topic_partitions
        ),
        (45_000, 5_000, None)
    );
    let settings = load(
        &[
            "--group-session-timeout-ms",
            "10s",
            "--offsets-topic-partitions",
            "7",
        ],
        Some("group_heartbeat_interval_ms = 1000\n"),
    )
    .unwrap();
    assert_eq!(settings.group_session_timeout_ms, 10_000);
    assert_eq!(settings.group_heartbeat_interval_ms, 1_000);
    assert_eq!(settings.offsets_topic_partitions, Some(7));
    let toml = settings.to_annotated_toml();
    assert!(
        toml.contains("group_session_timeout_ms = 10000 # flag"),
        "{toml}"
    );
    assert!(
        toml.contains("group_heartbeat_interval_ms = 1000 # file"),
        "{toml}"
    );
    for flags in [
        &[
            "--group-session-timeout-ms",
            "5000",
            "--group-heartbeat-interval-ms",
            "5000",
        ][..],
        &["--offsets-topic-partitions", "0"][..],
        &["--group-session-timeout-ms", "2h"][..],
    ] {
        let error = load(flags, None).unwrap_err().to_string();
        assert!(
            error.contains("group_") || error.contains("offsets_topic"),
            "{error}"
        );
    }
}

#[test]
fn the_admin_listener_defaults_to_loopback_7080_and_is_taken_from_a_flag_or_the_file() {
    let settings = load(&[], None).unwrap();
    assert_eq!(settings.admin_listen.to_string(), "127.0.0.1:7080");
    assert!(settings
        .to_annotated_toml()
        .contains("admin = \"127.0.0.1:7080\" # default"));
    let settings = load(&["--admin-listen", "0.0.0.0:0"], None).unwrap();
    assert_eq!(settings.admin_listen.to_string(), "0.0.0.0:0");
    assert!(settings
        .to_annotated_toml()
        .contains("admin = \"0.0.0.0:0\" # flag"));
    let settings = load(&[], Some("[listeners]\nadmin = \"broker-1:7080\"\n")).unwrap();
    assert_eq!(settings.admin_listen.to_string(), "broker-1:7080");
    // The gRPC listener from the same section keeps its default.
    assert_eq!(settings.listen.to_string(), "127.0.0.1:7070");
    let error = load(&["--admin-listen", "7080"], None).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("listeners.admin (from flag): expected HOST:PORT"),
        "{error}"
    );
}
