//! `hw_regressed`: no `ListOffsets(latest)` answer is below what the history had already
//! shown of its partition before the question was asked (see the checker's
//! documentation).

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Finding, Indexed, TopicPartition};

/// One thing that shows where a partition's high watermark was, at least, by `at`.
#[derive(Debug, Clone)]
pub(super) struct WatermarkEvidence {
    pub(super) partition: TopicPartition,
    /// The high watermark was at least this much when the event was recorded.
    pub(super) at_least: i64,
    pub(super) at: Duration,
    /// For a `ListOffsets` answer: when it was asked, and its index in the history.
    pub(super) asked: Option<(Duration, usize)>,
    pub(super) describe: String,
}

/// Every `ListOffsets` answer is at least what the history showed of its partition before
/// the question was asked.
pub(super) fn check_hw_regressed(indexed: &Indexed, finding: &mut Finding) {
    let mut by_partition: BTreeMap<&TopicPartition, Vec<&WatermarkEvidence>> = BTreeMap::new();
    for evidence in &indexed.watermarks {
        by_partition
            .entry(&evidence.partition)
            .or_default()
            .push(evidence);
    }
    for evidence in by_partition.values_mut() {
        evidence.sort_by_key(|evidence| evidence.at);
        let mut answers: Vec<&WatermarkEvidence> = evidence
            .iter()
            .copied()
            .filter(|evidence| evidence.asked.is_some())
            .collect();
        answers.sort_by_key(|answer| answer.asked);
        // Sweep: `floor` is the highest evidence recorded before the current question.
        let mut floor: Option<&WatermarkEvidence> = None;
        let mut next = 0;
        for answer in answers {
            let Some((asked_at, _)) = answer.asked else {
                continue;
            };
            while let Some(earlier) = evidence.get(next).filter(|earlier| earlier.at < asked_at) {
                if floor.is_none_or(|floor| earlier.at_least > floor.at_least) {
                    floor = Some(earlier);
                }
                next += 1;
            }
            if let Some(floor) = floor.filter(|floor| answer.at_least < floor.at_least) {
                finding.add(|| {
                    format!(
                        "{} at {:.3}s (asked at {:.3}s), after {} at {:.3}s",
                        answer.describe,
                        answer.at.as_secs_f64(),
                        asked_at.as_secs_f64(),
                        floor.describe,
                        floor.at.as_secs_f64()
                    )
                });
            }
        }
    }
}
