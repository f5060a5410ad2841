//! Unit tests for `-f` output: compiling and rendering every token.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::record_view::HeaderView;

fn record() -> RecordView<'static> {
    RecordView {
        topic: "orders",
        partition: 2,
        offset: 41,
        timestamp_ms: 1_700_000_000_000,
        key: Some(b"k1"),
        value: Some(b"v1"),
        headers: vec![
            HeaderView {
                key: "source",
                value: Some(b"cli"),
            },
            HeaderView {
                key: "trace",
                value: None,
            },
        ],
        leader_epoch: Some(3),
        log_start_offset: Some(0),
        high_watermark: None,
    }
}

fn render(format: &str, record: &RecordView<'_>) -> String {
    let mut out = Vec::new();
    Format::parse(format).unwrap().render(record, &mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn renders_the_acceptance_line() {
    assert_eq!(
        render("%p@%o %k=%v %h\\n", &record()),
        "2@41 k1=v1 source=cli,trace=\n"
    );
}

#[test]
fn renders_every_token() {
    assert_eq!(
        render("%t|%p|%o|%k|%K|%v|%V|%H|%d|%e|%[|%]", &record()),
        "orders|2|41|k1|2|v1|2|2|1700000000000|3|0|-"
    );
    assert_eq!(render("%d{rfc3339}", &record()), "2023-11-14T22:13:20.000Z");
    assert_eq!(render("%d{unix_ms}", &record()), "1700000000000");
    assert_eq!(render("100%% \\t\\\\ é", &record()), "100% \t\\ é");
}

#[test]
fn null_key_and_tombstone_print_as_empty() {
    let tombstone = RecordView {
        key: None,
        value: None,
        headers: Vec::new(),
        ..record()
    };
    assert_eq!(render("[%k][%v][%K][%V][%h]", &tombstone), "[][][0][0][]");
}

#[test]
fn bad_formats_are_refused() {
    for bad in ["%x", "%", "\\q", "\\", "%d{nope}", "%d{rfc3339"] {
        let error = Format::parse(bad).expect_err(bad);
        assert!(error.to_string().starts_with("invalid format"), "{error}");
    }
}

#[test]
fn kcat_tokens_get_a_hint_with_strata_s_name() {
    for (kcat, strata) in [("%s", "%v"), ("%S", "%V"), ("%T", "%d"), ("%R", "%V")] {
        let error = Format::parse(kcat).expect_err(kcat).to_string();
        assert!(
            error.contains(&format!("kcat's {kcat}")) && error.contains(strata),
            "{error}"
        );
    }
    let error = Format::parse("%z").unwrap_err().to_string();
    assert!(error.contains("see --help"), "{error}");
    let error = Format::parse("\\x41").unwrap_err().to_string();
    assert!(error.contains("kcat's \\xXX"), "{error}");
}

#[test]
fn the_help_table_lists_exactly_the_tokens_the_parser_accepts() {
    let listed: Vec<&str> = TOKENS.iter().map(|row| row.token).collect();
    for row in TOKENS.iter().filter(|row| row.token.starts_with('%')) {
        let format = Format::parse(row.token).unwrap_or_else(|e| panic!("{}: {e}", row.token));
        let readable = format.clone().for_input(row.token).is_ok();
        assert_eq!(readable, row.input, "{}: input flag", row.token);
    }
    Format::parse("\\n\\t\\r\\\\").unwrap();
    for c in (b'!'..=b'~').map(char::from) {
        let token = format!("%{c}");
        if Format::parse(&token).is_ok() {
            assert!(
                listed.contains(&token.as_str()),
                "{token} missing from TOKENS"
            );
        }
    }
    let help = tokens_help(false);
    assert_eq!(help.lines().count(), TOKENS.len());
    assert!(
        !tokens_help(true).contains("%o"),
        "offsets cannot be read from input"
    );
}
