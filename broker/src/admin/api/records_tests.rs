//! The peek's query parsing and its record encoding.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

#[test]
fn partition_is_required_and_limit_defaults_and_is_capped() {
    assert_eq!(
        parse_query(Some("partition=3")),
        Ok(PeekQuery {
            partition: 3,
            limit: LIMIT_DEFAULT
        })
    );
    assert_eq!(
        parse_query(Some("limit=5000&partition=0")),
        Ok(PeekQuery {
            partition: 0,
            limit: LIMIT_MAX
        })
    );
    assert!(parse_query(None).unwrap_err().contains("partition"));
    assert!(parse_query(Some("limit=5")).is_err());
}

#[test]
fn bad_values_and_unknown_parameters_are_refused() {
    for query in [
        "partition=x",
        "partition=-1",
        "partition=0&limit=0",
        "partition=0&limit=-3",
        "partition=0&limit=ten",
        "partition=0&offset=4",
    ] {
        assert!(parse_query(Some(query)).is_err(), "{query}");
    }
}

#[test]
fn text_stays_text_and_other_bytes_become_base64() {
    assert_eq!(encode(None), (None, None));
    assert_eq!(encode(Some(b"h\xc3\xa9")), (Some("hé".to_owned()), None));
    assert_eq!(
        encode(Some(&[0xff, 0x00])),
        (Some("/wA=".to_owned()), Some("base64".to_owned()))
    );
}
