//! [`CommitLedger`]: what this member last committed per partition, so periodic commits
//! send only what moved; and the wire shape of `OffsetCommit` and `OffsetFetch`. Pure.

use std::collections::{BTreeMap, HashMap};

use strata_proto::api::v1 as wire;

use super::reconcile::TopicPartition;
use crate::error::Error;

/// One partition's offset to commit: the next offset the group reads (Kafka's
/// convention), and the leader epoch of the last record consumed (-1 when unknown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OffsetToCommit {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) leader_epoch: i32,
}

impl OffsetToCommit {
    pub(crate) fn topic_partition(&self) -> TopicPartition {
        (self.topic.clone(), self.partition)
    }
}

/// The offsets the coordinator acknowledged, per partition this member holds.
#[derive(Debug, Default)]
pub(crate) struct CommitLedger {
    committed: HashMap<TopicPartition, i64>,
}

impl CommitLedger {
    /// `offsets` without those already committed at the same offset.
    pub(crate) fn changed(&self, offsets: Vec<OffsetToCommit>) -> Vec<OffsetToCommit> {
        offsets
            .into_iter()
            .filter(|offset| self.committed.get(&offset.topic_partition()) != Some(&offset.offset))
            .collect()
    }

    /// The coordinator stored these.
    pub(crate) fn acknowledge(&mut self, offsets: &[OffsetToCommit]) {
        for offset in offsets {
            self.committed
                .insert(offset.topic_partition(), offset.offset);
        }
    }

    /// The partition left this member (revoked or lost): another member may commit it,
    /// so what was recorded here says nothing any more.
    pub(crate) fn forget(&mut self, partitions: &[TopicPartition]) {
        for partition in partitions {
            self.committed.remove(partition);
        }
    }

    /// A partition's start offset came from the group's committed offset: committing
    /// the same again would be a no-op.
    pub(crate) fn known(&mut self, partition: TopicPartition, offset: i64) {
        self.committed.insert(partition, offset);
    }
}

/// An `OffsetCommit` of `offsets` by a member, grouped by topic.
pub(crate) fn commit_request(
    group_id: &str,
    member_id: &str,
    member_epoch: i32,
    offsets: &[OffsetToCommit],
) -> wire::OffsetCommitRequest {
    let mut topics: BTreeMap<&str, Vec<wire::OffsetCommitPartition>> = BTreeMap::new();
    for offset in offsets {
        topics
            .entry(offset.topic.as_str())
            .or_default()
            .push(wire::OffsetCommitPartition {
                partition: offset.partition,
                offset: offset.offset,
                leader_epoch: offset.leader_epoch,
                metadata: String::new(),
            });
    }
    wire::OffsetCommitRequest {
        group_id: group_id.to_owned(),
        member_id: member_id.to_owned(),
        member_epoch,
        topics: topics
            .into_iter()
            .map(|(topic, partitions)| wire::OffsetCommitTopic {
                topic: topic.to_owned(),
                partitions,
            })
            .collect(),
    }
}

/// The outcome of an `OffsetCommit` answer, per offset asked: stored, or the error it got
/// (the answer's whole-request error for all of them when it has one). An offset the
/// answer does not mention failed.
pub(crate) fn commit_outcome(
    response: &wire::OffsetCommitResponse,
    offsets: Vec<OffsetToCommit>,
) -> (Vec<OffsetToCommit>, Vec<(OffsetToCommit, Error)>) {
    if let Some(error) = Error::from_wire(response.error.as_ref()) {
        let failed = offsets
            .into_iter()
            .map(|offset| (offset, error.duplicate()))
            .collect();
        return (Vec::new(), failed);
    }
    let mut stored = Vec::new();
    let mut failed = Vec::new();
    for offset in offsets {
        let answer = response
            .topics
            .iter()
            .filter(|topic| topic.topic == offset.topic)
            .flat_map(|topic| topic.partitions.iter())
            .find(|partition| partition.partition == offset.partition);
        match answer {
            None => {
                let error = Error::broker(
                    wire::ErrorCode::UnknownServerError,
                    format!(
                        "the OffsetCommit answer has no entry for {}/{}",
                        offset.topic, offset.partition
                    ),
                );
                failed.push((offset, error));
            }
            Some(partition) => match Error::from_wire(partition.error.as_ref()) {
                Some(error) => failed.push((offset, error)),
                None => stored.push(offset),
            },
        }
    }
    (stored, failed)
}

/// Partitions as the group API lists them: by topic, sorted.
pub(crate) fn by_topic<'a>(
    partitions: impl IntoIterator<Item = &'a TopicPartition>,
) -> Vec<wire::GroupTopicPartitions> {
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in partitions {
        topics.entry(topic.as_str()).or_default().push(*partition);
    }
    topics
        .into_iter()
        .map(|(topic, mut partitions)| {
            partitions.sort_unstable();
            partitions.dedup();
            wire::GroupTopicPartitions {
                topic: topic.to_owned(),
                partitions,
            }
        })
        .collect()
}

/// The (topic, partition) pairs of a group API list.
pub(crate) fn flatten(topics: &[wire::GroupTopicPartitions]) -> Vec<TopicPartition> {
    let mut partitions: Vec<TopicPartition> = topics
        .iter()
        .flat_map(|topic| {
            topic
                .partitions
                .iter()
                .map(|partition| (topic.topic.clone(), *partition))
        })
        .collect();
    partitions.sort();
    partitions.dedup();
    partitions
}

/// A partition's committed offset from an `OffsetFetch` answer: `Ok(None)` when the group
/// has committed nothing for it.
pub(crate) fn committed_offset(
    response: &wire::OffsetFetchResponse,
    topic: &str,
    partition: i32,
) -> Result<Option<(i64, i32)>, Error> {
    if let Some(error) = Error::from_wire(response.error.as_ref()) {
        return Err(error);
    }
    let Some(entry) = response
        .offsets
        .iter()
        .find(|entry| entry.topic == topic && entry.partition == partition)
    else {
        return Ok(None);
    };
    if let Some(error) = Error::from_wire(entry.error.as_ref()) {
        return Err(error);
    }
    Ok((entry.offset >= 0).then_some((entry.offset, entry.leader_epoch)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::error::ErrorCode;

    fn offset(topic: &str, partition: i32, at: i64) -> OffsetToCommit {
        OffsetToCommit {
            topic: topic.to_owned(),
            partition,
            offset: at,
            leader_epoch: 3,
        }
    }

    #[test]
    fn only_offsets_that_moved_are_committed_again() {
        let mut ledger = CommitLedger::default();
        let first = vec![offset("t", 0, 10), offset("t", 1, 5)];
        assert_eq!(ledger.changed(first.clone()), first);
        ledger.acknowledge(&first);
        let second = vec![offset("t", 0, 10), offset("t", 1, 7)];
        assert_eq!(ledger.changed(second), vec![offset("t", 1, 7)]);
        // A partition that left and came back is committed again even at the same offset.
        ledger.forget(&[("t".to_owned(), 0)]);
        assert_eq!(
            ledger.changed(vec![offset("t", 0, 10)]),
            vec![offset("t", 0, 10)]
        );
        ledger.known(("t".to_owned(), 2), 40);
        assert!(ledger.changed(vec![offset("t", 2, 40)]).is_empty());
    }

    #[test]
    fn a_commit_request_groups_partitions_by_topic_with_member_and_epochs() {
        let request = commit_request(
            "g",
            "m-1",
            7,
            &[offset("b", 1, 4), offset("a", 0, 9), offset("b", 0, 2)],
        );
        assert_eq!(request.group_id, "g");
        assert_eq!(request.member_id, "m-1");
        assert_eq!(request.member_epoch, 7);
        type Listed<'a> = (&'a str, Vec<(i32, i64, i32)>);
        let topics: Vec<Listed<'_>> = request
            .topics
            .iter()
            .map(|topic| {
                (
                    topic.topic.as_str(),
                    topic
                        .partitions
                        .iter()
                        .map(|p| (p.partition, p.offset, p.leader_epoch))
                        .collect(),
                )
            })
            .collect();
        assert_eq!(
            topics,
            vec![("a", vec![(0, 9, 3)]), ("b", vec![(1, 4, 3), (0, 2, 3)])]
        );
    }

    #[test]
    fn commit_outcomes_are_per_partition_unless_the_whole_request_failed() {
        let offsets = vec![offset("t", 0, 1), offset("t", 1, 2), offset("t", 2, 3)];
        let response = wire::OffsetCommitResponse {
            error: None,
            topics: vec![wire::OffsetCommitTopicResult {
                topic: "t".to_owned(),
                partitions: vec![
                    wire::OffsetCommitPartitionResult {
                        partition: 0,
                        error: None,
                    },
                    wire::OffsetCommitPartitionResult {
                        partition: 1,
                        error: Some(wire::Error::new(ErrorCode::PartitionNotAssigned, "no")),
                    },
                ],
            }],
        };
        let (stored, failed) = commit_outcome(&response, offsets.clone());
        assert_eq!(stored, vec![offset("t", 0, 1)]);
        let codes: Vec<_> = failed
            .iter()
            .map(|(offset, error)| (offset.partition, error.code()))
            .collect();
        assert_eq!(
            codes,
            vec![
                (1, Some(ErrorCode::PartitionNotAssigned)),
                (2, Some(ErrorCode::UnknownServerError))
            ]
        );
        let fenced = wire::OffsetCommitResponse {
            error: Some(wire::Error::new(ErrorCode::StaleMemberEpoch, "old epoch")),
            topics: Vec::new(),
        };
        let (stored, failed) = commit_outcome(&fenced, offsets);
        assert!(stored.is_empty());
        assert_eq!(failed.len(), 3);
        assert!(failed
            .iter()
            .all(|(_, error)| error.code() == Some(ErrorCode::StaleMemberEpoch)));
    }

    #[test]
    fn partition_lists_round_trip_by_topic() {
        let partitions = vec![
            ("b".to_owned(), 2),
            ("a".to_owned(), 1),
            ("b".to_owned(), 0),
            ("b".to_owned(), 2),
        ];
        let listed = by_topic(&partitions);
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[1].partitions, vec![0, 2]);
        assert_eq!(
            flatten(&listed),
            vec![
                ("a".to_owned(), 1),
                ("b".to_owned(), 0),
                ("b".to_owned(), 2)
            ]
        );
    }

    #[test]
    fn a_committed_offset_of_minus_one_means_none_was_committed() {
        let response = wire::OffsetFetchResponse {
            error: None,
            offsets: vec![
                wire::CommittedOffset {
                    topic: "t".to_owned(),
                    partition: 0,
                    offset: 42,
                    leader_epoch: 2,
                    metadata: String::new(),
                    error: None,
                },
                wire::CommittedOffset {
                    topic: "t".to_owned(),
                    partition: 1,
                    offset: -1,
                    leader_epoch: -1,
                    metadata: String::new(),
                    error: None,
                },
            ],
        };
        assert_eq!(committed_offset(&response, "t", 0).unwrap(), Some((42, 2)));
        assert_eq!(committed_offset(&response, "t", 1).unwrap(), None);
        assert_eq!(committed_offset(&response, "t", 9).unwrap(), None);
        let loading = wire::OffsetFetchResponse {
            error: Some(wire::Error::new(ErrorCode::CoordinatorLoadInProgress, "")),
            offsets: Vec::new(),
        };
        assert!(committed_offset(&loading, "t", 0)
            .unwrap_err()
            .is_retriable());
    }
}
