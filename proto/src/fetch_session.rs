//! The rule of a fetch session (`ClientApi.FetchStream`): which request follows an
//! answer. The broker answers by it; the client predicts by it which offsets the next
//! answer will be read from, and checks them against each answer's `fetch_offset`.

use crate::api::v1::{ErrorCode, FetchRequest, FetchResponse};
use crate::record::next_offset_after;

/// The shortest long poll after an answer that carried no records, so that a session
/// asked with `max_wait_ms = 0` does not answer "nothing" in a tight loop.
pub const EMPTY_ANSWER_WAIT_MIN_MS: u32 = 100;

/// The request that follows `answer` to `request` in a session, or `None` when the session
/// ends with `answer`: a partition carries an error (the client must act on it), or
/// returned records that do not move its offset on (it would get them again forever).
///
/// Each partition moves to the offset after the last whole batch it was given; one that
/// was given nothing stays where it is. Partitions that were given records go to the back
/// of the request, in their order: the broker fills an answer in request order until
/// `max_bytes`, so without this a partition that always has data could keep the ones
/// after it waiting for ever (Kafka rotates its fetch order the same way, KIP-74). After
/// an answer with no records at all, the next one waits for at least one byte, and for
/// at least [`EMPTY_ANSWER_WAIT_MIN_MS`].
pub fn next_request(mut request: FetchRequest, answer: &FetchResponse) -> Option<FetchRequest> {
    if answer.partitions.len() != request.partitions.len() {
        return None;
    }
    let mut any_records = false;
    let mut given = Vec::with_capacity(request.partitions.len());
    for (asked, fetched) in request.partitions.iter_mut().zip(&answer.partitions) {
        let failed = fetched
            .error
            .as_ref()
            .is_some_and(|error| error.code != ErrorCode::None as i32);
        if failed || fetched.topic != asked.topic || fetched.partition != asked.partition {
            return None;
        }
        given.push(!fetched.records.is_empty());
        if fetched.records.is_empty() {
            continue;
        }
        any_records = true;
        let next = next_offset_after(&fetched.records)?;
        if next.0 <= asked.fetch_offset {
            return None;
        }
        asked.fetch_offset = next.0;
    }
    if !any_records {
        request.min_bytes = request.min_bytes.max(1);
        request.max_wait_ms = request.max_wait_ms.max(EMPTY_ANSWER_WAIT_MIN_MS);
    }
    let (waiting, served): (Vec<_>, Vec<_>) = request
        .partitions
        .into_iter()
        .zip(given)
        .partition(|(_, given)| !given);
    request.partitions = waiting
        .into_iter()
        .chain(served)
        .map(|(partition, _)| partition)
        .collect();
    Some(request)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use crate::api::v1::{Error, FetchPartition, FetchedPartition};
    use crate::record::{BatchBuilder, BatchSettings, Record};
    use bytes::Bytes;

    use super::*;

    fn asked(topic: &str, fetch_offset: i64) -> FetchPartition {
        FetchPartition {
            topic: topic.to_owned(),
            partition: 0,
            fetch_offset,
            partition_max_bytes: 1 << 20,
            current_leader_epoch: -1,
        }
    }

    fn request(partitions: Vec<FetchPartition>) -> FetchRequest {
        FetchRequest {
            max_wait_ms: 0,
            min_bytes: 0,
            max_bytes: 1 << 20,
            partitions,
        }
    }

    /// A stored batch of `count` records starting at `base_offset`.
    fn batch(base_offset: i64, count: usize) -> Vec<u8> {
        let mut builder = BatchBuilder::new(BatchSettings::default());
        for _ in 0..count {
            builder.append(&Record::from_value(1, &b"v"[..])).unwrap();
        }
        let mut bytes = builder.build().unwrap().to_vec();
        bytes[..8].copy_from_slice(&base_offset.to_be_bytes());
        bytes
    }

    fn fetched(topic: &str, records: Vec<u8>, code: ErrorCode) -> FetchedPartition {
        FetchedPartition {
            topic: topic.to_owned(),
            partition: 0,
            error: Some(Error {
                code: code as i32,
                ..Error::default()
            }),
            high_watermark: 100,
            log_start_offset: 0,
            records: Bytes::from(records),
            fetch_offset: 0,
        }
    }

    #[test]
    fn each_partition_moves_past_its_last_whole_batch() {
        let mut two_batches = batch(10, 3);
        two_batches.extend(batch(13, 2));
        let mut cut_off = batch(40, 1);
        let third = batch(41, 5);
        cut_off.extend(&third[..third.len() - 1]);
        let answer = FetchResponse {
            partitions: vec![
                fetched("a", two_batches, ErrorCode::None),
                fetched("b", Vec::new(), ErrorCode::None),
                fetched("c", cut_off, ErrorCode::None),
            ],
        };
        let next = next_request(
            request(vec![asked("a", 11), asked("b", 7), asked("c", 40)]),
            &answer,
        )
        .unwrap();
        let order: Vec<(&str, i64)> = next
            .partitions
            .iter()
            .map(|p| (p.topic.as_str(), p.fetch_offset))
            .collect();
        // Moved on past their last whole batch; those given records now come last.
        assert_eq!(order, [("b", 7), ("a", 15), ("c", 41)]);
        // Records came back, so the waiting rules are the client's own.
        assert_eq!((next.min_bytes, next.max_wait_ms), (0, 0));
    }

    #[test]
    fn an_empty_answer_makes_the_next_one_wait() {
        let answer = FetchResponse {
            partitions: vec![fetched("a", Vec::new(), ErrorCode::None)],
        };
        let next = next_request(request(vec![asked("a", 5)]), &answer).unwrap();
        assert_eq!(next.partitions[0].fetch_offset, 5);
        assert_eq!(
            (next.min_bytes, next.max_wait_ms),
            (1, EMPTY_ANSWER_WAIT_MIN_MS)
        );
    }

    #[test]
    fn the_session_ends_on_an_error_or_an_answer_that_does_not_move_on() {
        let error = FetchResponse {
            partitions: vec![
                fetched("a", batch(0, 2), ErrorCode::None),
                fetched("b", Vec::new(), ErrorCode::OffsetOutOfRange),
            ],
        };
        assert!(next_request(request(vec![asked("a", 0), asked("b", 9)]), &error).is_none());

        let stuck = FetchResponse {
            partitions: vec![fetched("a", batch(0, 2), ErrorCode::None)],
        };
        assert!(next_request(request(vec![asked("a", 2)]), &stuck).is_none());

        let no_whole_batch = FetchResponse {
            partitions: vec![fetched("a", batch(0, 2)[..30].to_vec(), ErrorCode::None)],
        };
        assert!(next_request(request(vec![asked("a", 0)]), &no_whole_batch).is_none());

        let other_partition = FetchResponse {
            partitions: vec![fetched("z", Vec::new(), ErrorCode::None)],
        };
        assert!(next_request(request(vec![asked("a", 0)]), &other_partition).is_none());
    }
}
