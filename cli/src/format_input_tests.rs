//! Unit tests for `-f` input: cutting records out of stdin.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn input(format: &str) -> InputFormat {
    Format::parse(format).unwrap().for_input(format).unwrap()
}

fn read_all(format: &str, data: &[u8]) -> Vec<ParsedRecord> {
    let mut format = input(format);
    let mut reader = data;
    let mut records = Vec::new();
    while let Some(record) = format.read_record(&mut reader).unwrap() {
        records.push(record);
    }
    records
}

fn keyed(key: &str, value: &str) -> ParsedRecord {
    ParsedRecord {
        key: Some(key.as_bytes().to_vec()),
        value: value.as_bytes().to_vec(),
        ..ParsedRecord::default()
    }
}

#[test]
fn default_format_reads_lines() {
    let records = read_all("%v\\n", b"a\nb c\n\nd");
    let values: Vec<_> = records.iter().map(|r| r.value.as_slice()).collect();
    assert_eq!(values, [&b"a"[..], b"b c", b"", b"d"]);
    assert!(records.iter().all(|r| r.key.is_none()));
}

#[test]
fn key_and_value_split_on_the_first_delimiter() {
    assert_eq!(
        read_all("%k %v\\n", b"k1 v1\nk2 v2 with spaces\nk3 v3"),
        [
            keyed("k1", "v1"),
            keyed("k2", "v2 with spaces"),
            keyed("k3", "v3")
        ]
    );
    assert_eq!(read_all("%k\\t%v\\n", b"a\tb\n"), [keyed("a", "b")]);
    assert_eq!(read_all("%k::%v\\n", b"a::b::c\n"), [keyed("a", "b::c")]);
}

#[test]
fn headers_partition_and_timestamp_are_read() {
    let records = read_all("%p %d %h %k %v\\n", b"3 1700000000000 a=1,b=x=y k v\n");
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(record.partition, Some(3));
    assert_eq!(record.timestamp_ms, Some(1_700_000_000_000));
    assert_eq!(
        record.headers,
        [
            ("a".to_owned(), b"1".to_vec()),
            ("b".to_owned(), b"x=y".to_vec())
        ]
    );
    assert_eq!(record.key.as_deref(), Some(&b"k"[..]));
}

#[test]
fn length_prefixed_fields_may_contain_the_delimiter() {
    let records = read_all("%K %V %k%v\\n", b"3 4 a\nbc\nd\n\n");
    assert_eq!(records, [keyed("a\nb", "c\nd\n")]);
}

#[test]
fn a_line_without_the_delimiter_is_an_error_not_a_merge() {
    let mut format = input("%k %v\\n");
    let mut reader = &b"novalue\nk v\n"[..];
    let error = format.read_record(&mut reader).unwrap_err();
    assert!(error.to_string().starts_with("record 1:"), "{error}");
    // The bad line is consumed; the next one still parses.
    assert_eq!(
        format.read_record(&mut reader).unwrap(),
        Some(keyed("k", "v"))
    );
}

#[test]
fn output_only_tokens_and_touching_fields_are_refused_for_input() {
    for bad in ["%o %v\\n", "%k%v\\n", "%e\\n", "%H %v", "%t %v"] {
        let format = Format::parse(bad).unwrap();
        assert!(format.for_input(bad).is_err(), "{bad}");
    }
}

#[test]
fn bad_numbers_are_reported_with_the_record() {
    let mut format = input("%p %v\\n");
    let error = format.read_record(&mut &b"x v\n"[..]).unwrap_err();
    assert!(error.to_string().contains("partition"), "{error}");
    let error = format.read_record(&mut &b"-1 v\n"[..]).unwrap_err();
    assert!(error.to_string().starts_with("record 2:"), "{error}");
}

#[test]
fn header_pairs_need_an_equals_sign() {
    assert!(parse_headers(b"a=1,b").is_err());
    assert_eq!(parse_headers(b"").unwrap(), []);
    assert_eq!(
        parse_headers(b"k=").unwrap(),
        [("k".to_owned(), Vec::new())]
    );
}
