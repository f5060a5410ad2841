//! One hand-written history per anomaly, each with exactly that anomaly, and one clean
//! history: the checker must report the anomaly, and nothing for the clean one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use std::time::Duration;

use crate::history::Recorder;

fn partition(number: i32) -> TopicPartition {
    TopicPartition::new("t", number)
}

fn v(producer: u32, sequence: u64) -> Value {
    Value::new(producer, sequence)
}

/// Builds histories with one call per event.
struct History {
    recorder: Recorder,
}

impl History {
    fn new() -> History {
        History {
            recorder: Recorder::new(),
        }
    }

    fn invoke(&self, value: Value, number: i32) -> &History {
        self.recorder.record(
            &format!("producer-{}", value.producer),
            Event::SendInvoke {
                value,
                key: None,
                partition: partition(number),
            },
        );
        self
    }

    fn ok(&self, value: Value, number: i32, offset: i64) -> &History {
        self.recorder.record(
            &format!("producer-{}", value.producer),
            Event::SendOk {
                value,
                partition: partition(number),
                offset,
            },
        );
        self
    }

    fn fail(&self, value: Value, outcome: WriteOutcome) -> &History {
        self.recorder.record(
            &format!("producer-{}", value.producer),
            Event::SendFail {
                value,
                outcome,
                error: "boom".into(),
            },
        );
        self
    }

    /// Invoke and acknowledge.
    fn sent(&self, value: Value, number: i32, offset: i64) -> &History {
        self.invoke(value, number).ok(value, number, offset)
    }

    fn poll(&self, consumer: u32, number: i32, offset: i64, value: Value) -> &History {
        self.recorder.record(
            &format!("consumer-{consumer}"),
            Event::Poll {
                partition: partition(number),
                offset,
                value,
            },
        );
        self
    }

    fn final_read(&self, number: i32, offset: i64, value: Value) -> &History {
        self.recorder.record(
            "final-read",
            Event::FinalRead {
                partition: partition(number),
                offset,
                value,
            },
        );
        self
    }

    /// A `ListOffsets(latest)` answer of `offset` for partition `number`, asked at
    /// `asked_at` (the recorder's clock).
    fn high_watermark(&self, number: i32, offset: i64, asked_at: Duration) -> &History {
        self.recorder.record(
            "hw-watch",
            Event::HighWatermark {
                partition: partition(number),
                offset,
                asked_at,
            },
        );
        self
    }

    /// The recorder's clock now, after a pause so that events before and after differ.
    fn now(&self) -> Duration {
        std::thread::sleep(Duration::from_millis(2));
        let now = self.recorder.elapsed();
        std::thread::sleep(Duration::from_millis(2));
        now
    }

    fn check(&self) -> Report {
        check(&self.recorder.entries())
    }
}

/// Two producers on two partitions with in-flight sends, a send whose fate is unknown
/// (it landed), one that certainly failed, one still pending, two consumers and a gap in
/// the log (offset 2 of partition 1).
fn clean() -> History {
    let history = History::new();
    history
        .invoke(v(0, 0), 0)
        .invoke(v(0, 1), 0)
        .invoke(v(1, 0), 1)
        .ok(v(0, 0), 0, 0)
        .ok(v(1, 0), 1, 0)
        .ok(v(0, 1), 0, 1)
        .invoke(v(1, 1), 1)
        .fail(v(1, 1), WriteOutcome::Unknown)
        .invoke(v(1, 2), 1)
        .fail(v(1, 2), WriteOutcome::NotApplied)
        .sent(v(1, 3), 1, 3)
        .invoke(v(0, 2), 0);
    history
        .poll(0, 0, 0, v(0, 0))
        .poll(0, 0, 1, v(0, 1))
        .poll(1, 1, 0, v(1, 0))
        .poll(1, 1, 1, v(1, 1));
    history
        .final_read(0, 0, v(0, 0))
        .final_read(0, 1, v(0, 1))
        .final_read(1, 0, v(1, 0))
        .final_read(1, 1, v(1, 1))
        .final_read(1, 3, v(1, 3));
    history
}

/// Asserts that exactly the finding `name` is reported, `count` times.
fn assert_only(report: &Report, name: &str, count: usize) {
    for (found, finding) in report.findings() {
        let expected = if found == name { count } else { 0 };
        assert_eq!(finding.count, expected, "{found} in:\n{report}");
    }
    assert!(!report.is_valid());
}

#[test]
fn a_clean_history_has_no_anomalies() {
    let report = clean().check();
    assert!(report.is_valid(), "{report}");
    assert_eq!(
        report.stats,
        Stats {
            invoked: 7,
            acked: 4,
            failed_not_applied: 1,
            failed_unknown: 1,
            pending: 1,
            polled: 4,
            final_records: 5,
        }
    );
    assert!(
        report.summary().contains("anomalies 0"),
        "{}",
        report.summary()
    );
}

#[test]
fn an_acknowledged_value_missing_from_the_final_read_is_lost() {
    let history = clean();
    // Acknowledged at 4, but the final read ends at 3.
    history.sent(v(0, 3), 1, 4);
    let report = history.check();
    assert_only(&report, "lost", 1);
    assert!(report.lost.examples[0].contains("p0-s3"), "{report}");
}

#[test]
fn an_acknowledged_value_logged_at_another_offset_is_inconsistent_not_lost() {
    let history = clean();
    history.sent(v(0, 3), 1, 4);
    history.final_read(1, 5, v(0, 3));
    let report = history.check();
    assert_only(&report, "inconsistent_offsets", 1);
    assert!(
        report.inconsistent_offsets.examples[0]
            .contains("p0-s3 acknowledged at t/1@4, where the final read has nothing"),
        "{report}"
    );
}

#[test]
fn a_value_twice_in_the_log_is_duplicated() {
    let history = clean();
    history.final_read(1, 4, v(0, 1)); // re-sent under a new producer id
    let report = history.check();
    assert_only(&report, "duplicated", 1);
    assert!(
        report.duplicated.examples[0].contains("t/0@1 and t/1@4"),
        "{report}"
    );
}

#[test]
fn a_value_read_by_consumers_at_two_offsets_is_duplicated() {
    let history = clean();
    // consumer-1 reads p0-s1 at 2, where the final read has nothing: a read of data the
    // log no longer holds is an inconsistent offset as well.
    history.poll(1, 0, 2, v(0, 1));
    let report = history.check();
    assert_eq!(report.duplicated.count, 1, "{report}");
    assert_eq!(report.inconsistent_offsets.count, 1, "{report}");
    assert_eq!(report.anomalies(), 2, "{report}");
}

#[test]
fn later_sends_logged_before_earlier_ones_are_reordered() {
    let history = History::new();
    history
        .invoke(v(0, 0), 0)
        .invoke(v(0, 1), 0)
        .invoke(v(0, 2), 0)
        .ok(v(0, 0), 0, 0)
        .ok(v(0, 1), 0, 5)
        .ok(v(0, 2), 0, 6);
    // The log holds s2 before s1, while the acks claimed the opposite.
    history
        .final_read(0, 0, v(0, 0))
        .final_read(0, 5, v(0, 2))
        .final_read(0, 6, v(0, 1));
    let report = history.check();
    assert_eq!(report.reordered.count, 1, "{report}");
    assert!(
        report.reordered.examples[0].starts_with("p0-s2"),
        "{report}"
    );
    // The acks point at the wrong values, too.
    assert_eq!(report.inconsistent_offsets.count, 2, "{report}");
    assert_eq!(report.anomalies(), 3, "{report}");
}

#[test]
fn ack_offsets_that_decrease_in_send_order_are_reordered() {
    let history = History::new();
    history
        .invoke(v(0, 0), 0)
        .invoke(v(0, 1), 0)
        .ok(v(0, 1), 0, 0)
        .ok(v(0, 0), 0, 1);
    history.final_read(0, 0, v(0, 1)).final_read(0, 1, v(0, 0));
    let report = history.check();
    assert_only(&report, "reordered", 1);
    let example = &report.reordered.examples[0];
    assert!(
        example.contains("acknowledged at t/0@0, not after p0-s0"),
        "{example}"
    );
    assert!(
        example.contains("logged at t/0@0, before p0-s0"),
        "{example}"
    );
}

#[test]
fn other_producers_and_partitions_do_not_count_as_reordering() {
    let history = History::new();
    // Producer 1 lands before producer 0 on partition 0, and producer 0's later send lands
    // at a lower offset of another partition: both fine.
    history
        .sent(v(0, 0), 0, 5)
        .sent(v(1, 0), 0, 1)
        .sent(v(0, 1), 1, 0);
    history
        .final_read(0, 1, v(1, 0))
        .final_read(0, 5, v(0, 0))
        .final_read(1, 0, v(0, 1));
    let report = history.check();
    assert!(report.is_valid(), "{report}");
}

#[test]
fn a_not_applied_send_found_in_the_log_is_failed_but_present() {
    let history = clean();
    history.final_read(1, 2, v(1, 2)); // the gap held the "certainly not written" value
    let report = history.check();
    assert_only(&report, "failed_but_present", 1);
    assert!(
        report.failed_but_present.examples[0].contains("p1-s2 failed as not applied"),
        "{report}"
    );
}

#[test]
fn a_not_applied_send_read_by_a_consumer_is_failed_but_present() {
    let history = clean();
    history.poll(0, 1, 3, v(1, 2));
    let report = history.check();
    // Read at 1/3, where the final read has p1-s3: also two values at one offset, and a
    // read of a value no final read holds.
    assert_eq!(report.failed_but_present.count, 1, "{report}");
    assert_eq!(report.inconsistent_offsets.count, 1, "{report}");
    assert_eq!(report.uncommitted_read.count, 1, "{report}");
    assert_eq!(report.anomalies(), 3, "{report}");
}

#[test]
fn an_ack_offset_holding_another_value_is_inconsistent() {
    let history = clean();
    history.invoke(v(0, 3), 1).ok(v(0, 3), 1, 3); // the log has p1-s3 there
    history.final_read(1, 4, v(0, 3));
    let report = history.check();
    assert_only(&report, "inconsistent_offsets", 1);
    assert!(
        report.inconsistent_offsets.examples[0]
            .contains("p0-s3 acknowledged at t/1@3, where the final read has p1-s3"),
        "{report}"
    );
}

#[test]
fn a_consumer_read_that_differs_from_the_final_read_is_inconsistent() {
    let history = clean();
    // consumer-0 read the unknown-outcome value p1-s1 at 1/3; the log has p1-s3 there and
    // p1-s1 at 1/1, so it is also at two offsets.
    history.poll(0, 1, 3, v(1, 1));
    let report = history.check();
    assert_eq!(report.inconsistent_offsets.count, 1, "{report}");
    assert!(
        report.inconsistent_offsets.examples[0]
            .contains("t/1@3 holds p1-s1 (read by consumer-0) and p1-s3 (read by final-read)"),
        "{report}"
    );
    assert_eq!(report.duplicated.count, 1, "{report}");
    assert_eq!(report.anomalies(), 2, "{report}");
}

#[test]
fn two_final_reads_that_disagree_are_inconsistent() {
    let history = clean();
    // A second replica's final read holds the pending value at the gap and a different
    // value at 1/3.
    history.final_read(1, 2, v(0, 2));
    history.recorder.record(
        "final-read-2",
        Event::FinalRead {
            partition: partition(1),
            offset: 3,
            value: v(0, 2),
        },
    );
    let report = history.check();
    assert_eq!(report.inconsistent_offsets.count, 1, "{report}");
    assert_eq!(report.duplicated.count, 1, "{report}"); // p0-s2 at 1/2 and 1/3
    assert_eq!(report.anomalies(), 2, "{report}");
}

#[test]
fn a_value_nobody_sent_is_unexpected() {
    let history = clean();
    history.final_read(1, 2, v(7, 0));
    let report = history.check();
    assert_only(&report, "unexpected", 1);
}

#[test]
fn the_report_lists_counts_and_at_most_five_examples() {
    let history = History::new();
    for sequence in 0..8 {
        history.sent(v(0, sequence), 0, sequence as i64);
    }
    let report = history.check();
    assert_eq!(report.lost.count, 8);
    assert_eq!(report.anomalies(), 8);
    assert_eq!(report.lost.examples.len(), EXAMPLES_MAX);
    let text = report.to_string();
    assert!(
        text.contains("\nlost: 8\n  p0-s0 acknowledged at t/0@0"),
        "{text}"
    );
    assert!(text.starts_with("invoked 8 acked 8"), "{text}");
}

#[test]
fn a_consumer_read_of_a_value_no_final_read_holds_is_an_uncommitted_read() {
    let history = clean();
    // The pending p0-s2 was served at 0/2, then went away: the final read ends at 0/1.
    history.poll(1, 0, 2, v(0, 2));
    let report = history.check();
    assert_only(&report, "uncommitted_read", 1);
    assert!(
        report.uncommitted_read.examples[0].contains(
            "consumer-1 read p0-s2 (never completed) at t/0@2, which no final read holds"
        ),
        "{report}"
    );
}

#[test]
fn a_read_of_an_acknowledged_value_that_went_away_is_lost_and_an_uncommitted_read() {
    let history = clean();
    history.sent(v(0, 3), 0, 2).poll(0, 0, 2, v(0, 3));
    let report = history.check();
    assert_eq!(report.lost.count, 1, "{report}");
    assert_eq!(report.uncommitted_read.count, 1, "{report}");
    assert_eq!(report.anomalies(), 2, "{report}");
}

#[test]
fn an_unknown_send_logged_before_an_earlier_send_is_reordered() {
    let history = clean();
    // p1-s4 timed out, then landed in the gap at 1/2, before p1-s3 (acknowledged at 1/3).
    history
        .invoke(v(1, 4), 1)
        .fail(v(1, 4), WriteOutcome::Unknown)
        .final_read(1, 2, v(1, 4));
    let report = history.check();
    assert_only(&report, "reordered", 1);
    assert!(
        report.reordered.examples[0]
            .contains("p1-s4 logged at t/1@2, before p1-s3 (sent earlier) at @3"),
        "{report}"
    );
}

#[test]
fn unknown_sends_logged_in_send_order_are_fine() {
    let history = clean();
    history
        .invoke(v(1, 4), 1)
        .fail(v(1, 4), WriteOutcome::Unknown)
        .final_read(1, 4, v(1, 4));
    let report = history.check();
    assert!(report.is_valid(), "{report}");
}

#[test]
fn a_high_watermark_answer_below_an_earlier_answer_has_regressed() {
    let history = clean();
    // Acknowledged at 0/1: the high watermark passed 2; an answer of 3, then of 2.
    let first = history.now();
    history.high_watermark(0, 3, first);
    let second = history.now();
    history.high_watermark(0, 2, second);
    let report = history.check();
    assert_only(&report, "hw_regressed", 1);
    assert!(
        report.hw_regressed.examples[0].contains("hw-watch answered t/0 high watermark 2"),
        "{report}"
    );
    assert!(
        report.hw_regressed.examples[0].contains("after hw-watch answered t/0 high watermark 3"),
        "{report}"
    );
}

#[test]
fn a_high_watermark_answer_below_an_earlier_ack_or_poll_has_regressed() {
    let history = History::new();
    // Partition 0: p0-s0 acknowledged at 0/0. Partition 1: p0-s1 timed out, yet
    // consumer-0 read it at 1/0. Both high watermarks passed 1.
    history.sent(v(0, 0), 0, 0);
    history
        .invoke(v(0, 1), 1)
        .fail(v(0, 1), WriteOutcome::Unknown)
        .poll(0, 1, 0, v(0, 1));
    history.final_read(0, 0, v(0, 0)).final_read(1, 0, v(0, 1));
    let asked = history.now();
    history.high_watermark(0, 0, asked);
    history.high_watermark(1, 0, asked);
    let report = history.check();
    assert_only(&report, "hw_regressed", 2);
    let examples = report.hw_regressed.examples.join("\n");
    assert!(
        examples.contains("after p0-s0 acknowledged at t/0@0"),
        "{report}"
    );
    assert!(
        examples.contains("after consumer-0 read p0-s1 at t/1@0"),
        "{report}"
    );
}

#[test]
fn only_what_was_recorded_before_the_question_bounds_the_answer() {
    let history = History::new();
    history.invoke(v(0, 0), 0);
    // Asked before the acknowledgement was recorded, answered after it: an old answer is
    // no regression.
    let asked = history.now();
    history.ok(v(0, 0), 0, 0);
    history.high_watermark(0, 0, asked);
    let later = history.now();
    history.high_watermark(0, 1, later);
    history.final_read(0, 0, v(0, 0));
    let report = history.check();
    assert!(report.is_valid(), "{report}");
}
