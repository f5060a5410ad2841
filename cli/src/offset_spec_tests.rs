//! Unit tests for the `-o` grammar: one test per form of the offset table in docs/CLI.md,
//! then the refusals.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

const NOW: i64 = 1_700_000_000_000;
const JAN_1_2024: i64 = 1_704_067_200_000;

fn parse(input: &str) -> OffsetSpec {
    OffsetSpec::parse(input, NOW).unwrap_or_else(|e| panic!("{input}: {e}"))
}

fn spec(start: StartPosition, stop: StopPosition) -> OffsetSpec {
    OffsetSpec { start, stop }
}

use StartPosition as S;
use StopPosition as E;

#[test]
fn start_and_end() {
    assert_eq!(parse("start"), spec(S::Start, E::Follow));
    assert_eq!(parse("end"), spec(S::End, E::Follow));
    assert_eq!(OffsetSpec::default(), parse("start"));
}

#[test]
fn absolute_offsets() {
    assert_eq!(parse("42"), spec(S::Offset(42), E::Follow));
    assert_eq!(parse("42:"), spec(S::Offset(42), E::Follow));
    assert_eq!(parse("0"), spec(S::Offset(0), E::Follow));
}

#[test]
fn tail_and_after_start() {
    assert_eq!(parse("-5"), spec(S::Tail(5), E::Follow));
    assert_eq!(parse("+5"), spec(S::AfterStart(5), E::Follow));
    assert_eq!(parse("-5:end"), spec(S::Tail(5), E::End));
}

#[test]
fn ranges_with_exclusive_stop() {
    assert_eq!(parse(":100"), spec(S::Start, E::Offset(100)));
    assert_eq!(parse("10:20"), spec(S::Offset(10), E::Offset(20)));
    assert_eq!(parse("start:20"), spec(S::Start, E::Offset(20)));
    assert_eq!(parse("+3:20"), spec(S::AfterStart(3), E::Offset(20)));
}

#[test]
fn stop_at_end_seen_at_start() {
    assert_eq!(parse("start:end"), spec(S::Start, E::End));
    assert_eq!(parse(":end"), spec(S::Start, E::End));
    assert_eq!(parse("7:end"), spec(S::Offset(7), E::End));
    assert_eq!(parse("end:end"), spec(S::End, E::End));
}

#[test]
fn time_starts() {
    assert_eq!(parse("@1700000000000"), spec(S::Time(NOW), E::Follow));
    assert_eq!(parse("@1700000000000:"), spec(S::Time(NOW), E::Follow));
    assert_eq!(parse("@2024-01-01"), spec(S::Time(JAN_1_2024), E::Follow));
    assert_eq!(
        parse("@2024-01-01T12:00:00Z"),
        spec(S::Time(JAN_1_2024 + 43_200_000), E::Follow)
    );
    assert_eq!(parse("@-15m"), spec(S::Time(NOW - 900_000), E::Follow));
    assert_eq!(parse("@-15m:"), spec(S::Time(NOW - 900_000), E::Follow));
}

#[test]
fn time_ranges() {
    assert_eq!(
        parse("@-48h:-24h"),
        spec(S::Time(NOW - 172_800_000), E::Time(NOW - 86_400_000))
    );
    assert_eq!(
        parse("@2024-01-01:2024-01-02"),
        spec(S::Time(JAN_1_2024), E::Time(JAN_1_2024 + 86_400_000))
    );
    assert_eq!(parse("@:-1h"), spec(S::Start, E::Time(NOW - 3_600_000)));
    assert_eq!(parse("@-1h:end"), spec(S::Time(NOW - 3_600_000), E::End));
}

#[test]
fn rfc3339_ranges_split_on_the_right_colon() {
    assert_eq!(
        parse("@2024-01-01T00:00:00Z:2024-01-01T12:00:00+00:00"),
        spec(S::Time(JAN_1_2024), E::Time(JAN_1_2024 + 43_200_000))
    );
    assert_eq!(
        parse("@2024-01-01T00:00:00Z:"),
        spec(S::Time(JAN_1_2024), E::Follow)
    );
    assert_eq!(
        parse("@:2024-01-01T00:00:00Z"),
        spec(S::Start, E::Time(JAN_1_2024))
    );
}

#[test]
fn kcat_words_for_start_and_end() {
    assert_eq!(parse("beginning"), spec(S::Start, E::Follow));
    assert_eq!(parse("earliest"), spec(S::Start, E::Follow));
    assert_eq!(parse("latest"), spec(S::End, E::Follow));
    assert_eq!(parse("beginning:end"), spec(S::Start, E::End));
    assert_eq!(parse("earliest:20"), spec(S::Start, E::Offset(20)));
}

#[test]
fn kcat_timestamps_start_and_stop() {
    assert_eq!(parse("s@1700000000000"), spec(S::Time(NOW), E::Follow));
    assert_eq!(parse("e@1700000000000"), spec(S::Start, E::Time(NOW)));
    assert_eq!(parse("s@-15m"), spec(S::Time(NOW - 900_000), E::Follow));
    assert_eq!(parse("e@2024-01-01"), spec(S::Start, E::Time(JAN_1_2024)));
}

fn combine(values: &[&str]) -> Result<OffsetSpec, OffsetSpecError> {
    let parts: Vec<OffsetPart> = values
        .iter()
        .map(|value| OffsetPart::parse(value, NOW).unwrap())
        .collect();
    OffsetSpec::combine(&parts)
}

#[test]
fn two_values_give_a_start_and_a_stop() {
    assert_eq!(combine(&[]).unwrap(), OffsetSpec::default());
    assert_eq!(
        combine(&["s@1699999990000", "e@1700000000000"]).unwrap(),
        spec(S::Time(NOW - 10_000), E::Time(NOW))
    );
    assert_eq!(
        combine(&["e@1700000000000", "beginning"]).unwrap(),
        spec(S::Start, E::Time(NOW))
    );
    assert_eq!(combine(&["5", ":end"]).unwrap(), spec(S::Offset(5), E::End));
    assert_eq!(
        combine(&["-5", "e@-1m"]).unwrap(),
        spec(S::Tail(5), E::Time(NOW - 60_000))
    );
}

#[test]
fn two_starts_or_two_stops_are_refused() {
    for values in [
        &["5", "7"][..],
        &["s@-1h", "beginning"],
        &["e@-1h", ":end"],
        &["3:9", "e@-1h"],
        &["s@1700000000000", "e@1699999990000"],
    ] {
        let error = combine(values).expect_err(&format!("{values:?}"));
        assert!(error.to_string().starts_with("invalid offset"), "{error}");
    }
}

#[test]
fn stored_is_refused_with_what_g_does_instead() {
    let error = OffsetSpec::parse("stored", NOW).unwrap_err();
    assert!(error.reason.contains("what -g always does"), "{error}");
}

#[test]
fn exit_at_end_only_fills_a_missing_stop() {
    assert_eq!(parse("start").exit_at_end(), spec(S::Start, E::End));
    assert_eq!(parse("3:9").exit_at_end(), spec(S::Offset(3), E::Offset(9)));
}

#[test]
fn refusals() {
    for bad in [
        "",
        "oldest",
        "s@",
        "e@",
        "s@yesterday",
        "x@5",
        ":",
        "x",
        "-",
        "+",
        "--5",
        "-+5",
        "+-5",
        "1.5",
        "5:x",
        "5:-3",
        "10:10",
        "20:10",
        "@",
        "@:",
        "@yesterday",
        "@-15",
        "@2024-01-01:x",
        "@-1h:-2h",
        "@2024-13-01",
    ] {
        let error = OffsetSpec::parse(bad, NOW).expect_err(bad);
        assert_eq!(error.input, bad);
        assert!(error.to_string().starts_with("invalid offset"), "{error}");
    }
}
