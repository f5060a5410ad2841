//! What the final read's order and the consumers' reads must show: each producer's values
//! in send order on each partition (`reordered`, for values not both acknowledged), and
//! no consumer read of a value the final read does not hold (`uncommitted_read`).

use std::collections::{BTreeMap, BTreeSet};

use super::{show, Completion, Finding, Indexed, TopicPartition, Value};

/// Per producer and partition, the final read holds its values in send order, whatever
/// their sends' outcome; pairs of acknowledged values are `check_reordered`'s.
pub(super) fn check_log_order(indexed: &Indexed, finding: &mut Finding) {
    let acked = |value: &Value| matches!(indexed.sends.get(value), Some(Completion::Ok(_)));
    // Values iterate in (producer, sequence) order, which is send order per producer.
    let mut furthest: BTreeMap<(u32, TopicPartition), (Value, i64)> = BTreeMap::new();
    for (value, positions) in &indexed.in_final {
        let mut first_per_partition: BTreeMap<&TopicPartition, i64> = BTreeMap::new();
        for (partition, offset) in positions {
            first_per_partition.entry(partition).or_insert(*offset);
        }
        for (partition, offset) in first_per_partition {
            let key = (value.producer, partition.clone());
            match furthest.get(&key) {
                Some((earlier, earlier_offset)) if offset < *earlier_offset => {
                    if !(acked(value) && acked(earlier)) {
                        finding.add(|| {
                            format!(
                                "{value} logged at {partition}@{offset}, before {earlier} (sent earlier) at @{earlier_offset}; not both acknowledged"
                            )
                        });
                    }
                }
                _ => {
                    furthest.insert(key, (*value, offset));
                }
            }
        }
    }
}

/// Consumer reads of values that no final read holds.
pub(super) fn check_uncommitted_read(indexed: &Indexed, finding: &mut Finding) {
    let mut reported = BTreeSet::new();
    for (position, value, process) in &indexed.polls {
        if !indexed.in_final.contains_key(value) && reported.insert(*value) {
            let sent = match indexed.sends.get(value) {
                Some(Completion::Ok(acked_at)) => format!("acknowledged at {}", show(acked_at)),
                Some(Completion::Failed(outcome, _)) => format!("failed {outcome:?}"),
                Some(Completion::Pending) => "never completed".to_owned(),
                None => "never sent".to_owned(),
            };
            finding.add(|| {
                format!(
                    "{process} read {value} ({sent}) at {}, which no final read holds",
                    show(position)
                )
            });
        }
    }
}
