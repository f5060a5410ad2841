//! Turning an [`Offset`] (earliest, latest, exact, tail, time) into a number, with
//! `ListOffsets` sent to each partition's leader.
//!
//! `Tail(n)` is `max(latest - n, earliest)`: the last `n` records, or all of them when the
//! log holds fewer. `Time(t)` is the first offset whose timestamp is at or after `t`, or
//! the end of the log when there is none. `At(n)` is taken as given: an offset outside
//! the log makes the first fetch fail with `OFFSET_OUT_OF_RANGE`, which the consumer
//! reports instead of silently jumping elsewhere.

use std::collections::BTreeMap;

use strata_proto::api::v1 as wire;

use crate::client::Client;
use crate::connection::{request, with_deadline};
use crate::error::{Error, ErrorCode};
use crate::record::Offset;

/// Routing retries for `ListOffsets` (wrong leader, metadata propagating, a broker that
/// restarted and leads again once its registration is applied, a new leader's HW
/// catching up): with the backoff below, about 5.5 s in all.
const LIST_OFFSETS_ATTEMPTS: u32 = 10;
/// The longest wait between two attempts.
const LIST_OFFSETS_BACKOFF_MAX: std::time::Duration = std::time::Duration::from_secs(1);

/// One partition's answer: offset, timestamp (-1 when not applicable) and leader epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ListedOffset {
    pub(crate) offset: i64,
    pub(crate) timestamp_ms: i64,
}

/// The next offset to read for `offset` on each of `partitions`, in the same order.
pub(crate) async fn resolve_all(
    client: &Client,
    partitions: &[(String, i32)],
    offset: Offset,
) -> Result<Vec<i64>, Error> {
    match offset {
        Offset::At(at) => Ok(vec![at; partitions.len()]),
        Offset::Earliest => spec_offsets(client, partitions, wire::OffsetSpec::Earliest, 0).await,
        Offset::Latest => spec_offsets(client, partitions, wire::OffsetSpec::Latest, 0).await,
        Offset::Tail(count) => {
            let earliest = spec_offsets(client, partitions, wire::OffsetSpec::Earliest, 0).await?;
            let latest = spec_offsets(client, partitions, wire::OffsetSpec::Latest, 0).await?;
            Ok(earliest
                .into_iter()
                .zip(latest)
                .map(|(earliest, latest)| tail_offset(earliest, latest, count))
                .collect())
        }
        Offset::Time(timestamp_ms) => {
            let by_time = spec_offsets(
                client,
                partitions,
                wire::OffsetSpec::Timestamp,
                timestamp_ms,
            )
            .await?;
            let latest = spec_offsets(client, partitions, wire::OffsetSpec::Latest, 0).await?;
            Ok(by_time
                .into_iter()
                .zip(latest)
                .map(|(found, latest)| if found < 0 { latest } else { found })
                .collect())
        }
    }
}

/// `max(latest - count, earliest)`, never above `latest`.
pub(crate) fn tail_offset(earliest: i64, latest: i64, count: u64) -> i64 {
    let count = i64::try_from(count).unwrap_or(i64::MAX);
    latest
        .saturating_sub(count)
        .max(earliest)
        .min(latest.max(earliest))
}

async fn spec_offsets(
    client: &Client,
    partitions: &[(String, i32)],
    spec: wire::OffsetSpec,
    timestamp_ms: i64,
) -> Result<Vec<i64>, Error> {
    let listed = list_offsets(client, partitions, spec, timestamp_ms).await?;
    listed
        .into_iter()
        .map(|result| result.map(|listed| listed.offset))
        .collect()
}

/// `ListOffsets` for each partition, one request per leader, retrying routing errors
/// after a metadata refresh. The outer error is a failure of the whole call; the inner
/// ones are per partition.
pub(crate) async fn list_offsets(
    client: &Client,
    partitions: &[(String, i32)],
    spec: wire::OffsetSpec,
    timestamp_ms: i64,
) -> Result<Vec<Result<ListedOffset, Error>>, Error> {
    let mut results: Vec<Option<Result<ListedOffset, Error>>> =
        partitions.iter().map(|_| None).collect();
    let mut backoff = std::time::Duration::from_millis(50);
    for attempt in 1..=LIST_OFFSETS_ATTEMPTS {
        let last_attempt = attempt == LIST_OFFSETS_ATTEMPTS;
        let missing: Vec<usize> = (0..partitions.len())
            .filter(|index| results.get(*index).is_some_and(Option::is_none))
            .collect();
        if missing.is_empty() {
            break;
        }
        let mut by_leader: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for index in missing {
            let Some((topic, partition)) = partitions.get(index) else {
                continue;
            };
            match client.metadata().leader(topic, *partition) {
                Some(leader) => by_leader.entry(leader.address).or_default().push(index),
                None if last_attempt => {
                    let error = no_leader(topic, *partition, client);
                    if let Some(slot) = results.get_mut(index) {
                        *slot = Some(Err(error));
                    }
                }
                None => {}
            }
        }
        let mut refresh = by_leader.is_empty();
        let mut wait = false;
        for (address, indexes) in by_leader {
            let answers =
                ask_leader(client, &address, partitions, &indexes, spec, timestamp_ms).await;
            for (index, answer) in indexes.iter().zip(answers) {
                let retry = !last_attempt
                    && answer
                        .as_ref()
                        .is_err_and(|error| error.is_retriable() && error.needs_metadata_refresh());
                // A new leader whose high watermark has not caught up yet (KIP-207): the
                // same leader answers within a moment.
                let not_yet = !last_attempt
                    && answer
                        .as_ref()
                        .is_err_and(|error| error.code() == Some(ErrorCode::OffsetNotAvailable));
                if retry {
                    refresh = true;
                } else if not_yet {
                    wait = true;
                } else if let Some(slot) = results.get_mut(*index) {
                    *slot = Some(answer);
                }
            }
        }
        if (refresh || wait) && !last_attempt {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(LIST_OFFSETS_BACKOFF_MAX);
        }
        if refresh && !last_attempt {
            let topics: Vec<String> = partitions.iter().map(|(topic, _)| topic.clone()).collect();
            if let Err(error) = client.refresh_metadata(&topics).await {
                tracing::debug!(%error, "metadata refresh for ListOffsets failed");
            }
        }
    }
    Ok(results
        .into_iter()
        .zip(partitions)
        .map(|(result, (topic, partition))| {
            result.unwrap_or_else(|| Err(no_leader(topic, *partition, client)))
        })
        .collect())
}

/// One `ListOffsets` request to `address` for the partitions at `indexes`; one answer per
/// index, in order.
async fn ask_leader(
    client: &Client,
    address: &str,
    partitions: &[(String, i32)],
    indexes: &[usize],
    spec: wire::OffsetSpec,
    timestamp_ms: i64,
) -> Vec<Result<ListedOffset, Error>> {
    let asked: Vec<(String, i32)> = indexes
        .iter()
        .filter_map(|index| partitions.get(*index).cloned())
        .collect();
    let message = wire::ListOffsetsRequest {
        partitions: asked
            .iter()
            .map(|(topic, partition)| wire::ListOffsetsPartition {
                topic: topic.clone(),
                partition: *partition,
                spec: spec as i32,
                timestamp_ms,
            })
            .collect(),
    };
    let timeout = client.request_timeout();
    let response = match client.broker(address) {
        Ok(mut broker) => {
            with_deadline(
                "list offsets",
                timeout,
                broker.list_offsets(request(message, timeout)),
            )
            .await
        }
        Err(error) => Err(error),
    };
    let response = match response {
        Ok(response) => response,
        Err(error) => {
            return asked.iter().map(|_| Err(error.duplicate())).collect();
        }
    };
    asked
        .iter()
        .map(|(topic, partition)| {
            let answer = response
                .offsets
                .iter()
                .find(|listed| &listed.topic == topic && listed.partition == *partition);
            match answer {
                None => Err(Error::broker(
                    ErrorCode::UnknownServerError,
                    format!("ListOffsets answer has no entry for {topic}/{partition}"),
                )),
                Some(listed) => match Error::from_wire(listed.error.as_ref()) {
                    Some(error) => Err(error),
                    None => Ok(ListedOffset {
                        offset: listed.offset,
                        timestamp_ms: listed.timestamp_ms,
                    }),
                },
            }
        })
        .collect()
}

fn no_leader(topic: &str, partition: i32, client: &Client) -> Error {
    match client.metadata().partition_count(topic) {
        None => Error::Broker {
            code: ErrorCode::UnknownTopicOrPartition,
            message: format!("topic {topic} does not exist"),
            retriable: false,
        },
        Some(_) => Error::broker(
            ErrorCode::NotLeader,
            format!("partition {topic}/{partition} has no leader"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_counts_back_from_the_end_but_not_past_the_start() {
        assert_eq!(tail_offset(0, 100, 10), 90);
        assert_eq!(tail_offset(95, 100, 10), 95);
        assert_eq!(tail_offset(0, 100, 0), 100);
        assert_eq!(tail_offset(0, 0, 5), 0);
        assert_eq!(tail_offset(40, 100, u64::MAX), 40);
    }
}
