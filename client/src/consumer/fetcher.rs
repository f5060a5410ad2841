//! The consumer's background tasks: a supervisor that starts one fetch loop per leader
//! broker, and the loops, which long-poll `Fetch` for the fetchable partitions their
//! broker leads and push [`Chunk`]s of undecoded batches into the bounded channel. A loop
//! never decodes: it splits the answer into batches and asks for more right away, so the
//! network and the stream's decoding overlap.
//!
//! Per-partition errors: routing errors (wrong leader, unknown partition, fenced epoch)
//! refresh metadata and back off; the supervisor starts a loop for a new leader. Errors
//! the application must see (`OFFSET_OUT_OF_RANGE`, a batch failing its CRC, other final
//! codes) become an error item and stop the partition until it seeks: the consumer never
//! jumps to another offset on its own. A batch failing its CRC is found by the stream
//! when it reaches it, and stops the partition the same way (`Consumer::poll_next`).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use strata_proto::api::v1 as wire;
use strata_proto::fetch_session::next_request;
use strata_proto::record::{
    BatchHeader, RecordError, BATCH_HEADER_BYTES, BATCH_LENGTH_PREFIX_BYTES,
};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::batches::{FetchedBatches, FetchedFrom};
use super::due;
use super::{Chunk, ChunkContent, ConsumerShared};
use crate::connection::{with_deadline, HTTP2_STREAM_WINDOW_BYTES, RESPONSE_BYTES_MAX};
use crate::error::Error;
use crate::fetch_call::FetchSession;
use crate::retry::backoff;

/// How often idle loops look again (leader moves, retry times).
const IDLE_RECHECK: Duration = Duration::from_secs(1);

/// Starts the supervisor, which starts the fetch loops.
pub(crate) fn spawn(shared: Arc<ConsumerShared>, chunks: mpsc::Sender<Chunk>) {
    tokio::spawn(supervise(shared, chunks));
}

fn stopped(shared: &ConsumerShared, chunks: &mpsc::Sender<Chunk>) -> bool {
    shared.shutdown.load(Ordering::SeqCst) || chunks.is_closed()
}

/// Keeps one fetch loop running per broker that leads an assigned partition.
async fn supervise(shared: Arc<ConsumerShared>, chunks: mpsc::Sender<Chunk>) {
    let mut loops: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
    let mut attempts = 0;
    while !stopped(&shared, &chunks) {
        let notified = shared.wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let mut leaderless = false;
        for (_, topic, partition) in shared.assigned() {
            let Some(leader) = shared.client.metadata().leader(&topic, partition) else {
                leaderless = true;
                continue;
            };
            let running = loops
                .get(&leader.address)
                .is_some_and(|handle| !handle.is_finished());
            if !running {
                let task = fetch_loop(shared.clone(), leader.address.clone(), chunks.clone());
                loops.insert(leader.address, tokio::spawn(task));
            }
        }
        if leaderless {
            attempts += 1;
            refresh_metadata(&shared).await;
            let config = &shared.config;
            tokio::time::sleep(backoff(
                config.retry_backoff,
                config.retry_backoff_max,
                attempts,
            ))
            .await;
            continue;
        }
        attempts = 0;
        tokio::select! {
            () = &mut notified => {}
            () = tokio::time::sleep(IDLE_RECHECK) => {}
        }
    }
}

/// One partition asked for in a fetch.
#[derive(Debug, Clone)]
struct Work {
    index: usize,
    topic: Arc<str>,
    partition: i32,
    generation: u64,
    fetch_offset: i64,
}

async fn fetch_loop(shared: Arc<ConsumerShared>, address: String, chunks: mpsc::Sender<Chunk>) {
    let mut sessions = Sessions::default();
    // The last fetch was given up for a due partition: this one is not (`due.rs`).
    let mut cut_last = false;
    while !stopped(&shared, &chunks) {
        let notified = shared.wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let open = sessions.open.as_ref().map(|open| open.indices.as_slice());
        let (work, next_retry) = take_work(&shared, &address, open);
        if work.is_empty() {
            let recheck = Instant::now() + IDLE_RECHECK;
            let wake_at = next_retry.map_or(recheck, |retry| retry.min(recheck));
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep_until(wake_at) => {}
            }
            continue;
        }
        // A partition that becomes due meanwhile ends a long poll for the others
        // (`due.rs`): it is asked for then, not when the long poll ends.
        let started = Instant::now();
        let answer = tokio::select! {
            answer = fetch(&shared, &address, &work, &mut sessions) => Some(answer),
            () = due::partition_due(&shared, &address, started), if !cut_last => None,
        };
        cut_last = answer.is_none();
        let Some(answer) = answer else {
            sessions.open = None;
            give_back(&shared, &work);
            continue;
        };
        // Splitting the answer is cheap (no decoding here), so the chunks go out and the
        // next fetch is asked for right away while the stream decodes these.
        let outcome = match answer {
            Ok(response) => handle_response(&shared, &work, &response),
            Err(error) => handle_failure(&shared, &work, &error),
        };
        for chunk in outcome.chunks {
            if chunks.send(chunk).await.is_err() {
                return;
            }
        }
        if outcome.refresh {
            refresh_metadata(&shared).await;
            shared.wake.notify_waiters();
        }
    }
}

/// The fetchable partitions led by `address`, marked as being fetched, and the earliest
/// retry time among those waiting.
///
/// `session` holds the partitions of the loop's open fetch session. While one of them
/// waits only for a prefetch slot, nothing is taken: the loop waits for the slot and
/// the session goes on, rather than being replaced by one without that partition.
fn take_work(
    shared: &ConsumerShared,
    address: &str,
    session: Option<&[usize]>,
) -> (Vec<Work>, Option<Instant>) {
    let now = Instant::now();
    let metadata = shared.client.metadata();
    let mut state = shared.state();
    if let Some(indices) = session {
        let slot_awaited = indices.iter().any(|index| {
            state
                .get(*index)
                .is_some_and(|fetch| fetch.awaits_prefetch_slot_only(now))
        });
        if slot_awaited {
            return (Vec::new(), None);
        }
    }
    let mut work = Vec::new();
    let mut next_retry: Option<Instant> = None;
    for (index, fetch) in state.iter_mut().enumerate() {
        let led_here = metadata
            .leader(&fetch.topic, fetch.partition)
            .is_some_and(|leader| leader.address == address);
        if !led_here {
            continue;
        }
        if fetch.fetchable(now) {
            fetch.in_fetch = true;
            work.push(Work {
                index,
                topic: fetch.topic.clone(),
                partition: fetch.partition,
                generation: fetch.generation,
                fetch_offset: fetch.fetch_offset,
            });
        } else if let Some(retry_at) = fetch.retry_at.filter(|_| !fetch.in_fetch) {
            next_retry = Some(next_retry.map_or(retry_at, |next| next.min(retry_at)));
        }
    }
    (work, next_retry)
}

/// A fetch session open to the loop's broker, and what its next answer will answer.
struct OpenSession {
    session: FetchSession,
    /// The request the broker answers next (its offsets moved on by each answer, by the
    /// rule the broker follows).
    next: wire::FetchRequest,
    /// The assignment indices of its partitions.
    indices: Vec<usize>,
}

/// How a fetch loop asks its broker.
#[derive(Default)]
struct Sessions {
    open: Option<OpenSession>,
    /// The broker does not know `FetchStream` (an older broker): unary fetches only.
    unsupported: bool,
}

/// Answers the fetch `work` asks for. The answer comes from the loop's fetch session
/// when the session's next answer is for exactly these partitions and offsets (it is
/// then usually here already); otherwise the session is replaced by one for `work`.
async fn fetch(
    shared: &ConsumerShared,
    address: &str,
    work: &[Work],
    sessions: &mut Sessions,
) -> Result<wire::FetchResponse, Error> {
    let config = &shared.config;
    let partitions = work
        .iter()
        .map(|item| wire::FetchPartition {
            topic: item.topic.to_string(),
            partition: item.partition,
            fetch_offset: item.fetch_offset,
            partition_max_bytes: config.max_partition_fetch_bytes,
            current_leader_epoch: -1,
        })
        .collect();
    let message = wire::FetchRequest {
        max_wait_ms: u32::try_from(config.max_wait.as_millis()).unwrap_or(u32::MAX),
        min_bytes: config.min_bytes,
        max_bytes: config.max_bytes,
        partitions,
    };
    let timeout = config.max_wait + shared.client.request_timeout();
    let channel = shared.client.channel(address)?;
    if sessions.unsupported {
        return with_deadline(
            "fetch",
            timeout,
            crate::fetch_call::fetch(channel, &message, timeout),
        )
        .await;
    }
    // A session the broker ended cleanly before this answer is opened once more.
    for _ in 0..2 {
        let continues = sessions
            .open
            .as_ref()
            .is_some_and(|open| asks_the_same(&open.next, &message));
        if !continues {
            sessions.open = None;
            let opened = tokio::time::timeout(
                timeout,
                FetchSession::open(channel.clone(), &message, session_grants(&message)),
            )
            .await;
            match opened {
                Ok(Ok(session)) => {
                    sessions.open = Some(OpenSession {
                        session,
                        next: message.clone(),
                        indices: work.iter().map(|item| item.index).collect(),
                    });
                }
                Ok(Err(status)) if status.code() == tonic::Code::Unimplemented => {
                    tracing::debug!(%address, "the broker has no fetch sessions; fetching unary");
                    sessions.unsupported = true;
                    return with_deadline(
                        "fetch",
                        timeout,
                        crate::fetch_call::fetch(channel, &message, timeout),
                    )
                    .await;
                }
                Ok(Err(status)) => return Err(Error::from(status)),
                Err(_) => return Err(fetch_timeout(timeout)),
            }
        }
        let Some(open) = sessions.open.as_mut() else {
            break;
        };
        let answer = match tokio::time::timeout(timeout, open.session.next()).await {
            Ok(Ok(Some(answer))) => answer,
            Ok(Ok(None)) => {
                sessions.open = None;
                continue;
            }
            Ok(Err(status)) => {
                sessions.open = None;
                return Err(Error::from(status));
            }
            Err(_) => {
                sessions.open = None;
                return Err(fetch_timeout(timeout));
            }
        };
        if !answers(&open.next, &answer) {
            sessions.open = None;
            return Err(Error::from(tonic::Status::unavailable(
                "the fetch session answered for other partitions or offsets than asked",
            )));
        }
        match next_request(open.next.clone(), &answer) {
            Some(next) => open.next = next,
            None => sessions.open = None,
        }
        return Ok(answer);
    }
    Err(Error::from(tonic::Status::unavailable(
        "the broker ended the fetch session without answering",
    )))
}

/// How many answers a session may have on their way: as many as fit in half the HTTP/2
/// stream window (at least one, at most eight). Within that the broker never waits for
/// window, so it sends each answer whole; a data frame cut where the window ran out
/// splits a batch, which the client then has to copy to read.
fn session_grants(request: &wire::FetchRequest) -> u32 {
    let partitions_max = request
        .partitions
        .iter()
        .map(|partition| u64::from(partition.partition_max_bytes))
        .sum::<u64>();
    let answer_max = partitions_max.min(u64::from(request.max_bytes)).max(1);
    let fitting = u64::from(HTTP2_STREAM_WINDOW_BYTES / 2) / answer_max;
    u32::try_from(fitting.clamp(1, 8)).unwrap_or(1)
}

fn fetch_timeout(after: Duration) -> Error {
    Error::Timeout {
        operation: "fetch",
        after,
        outcome: crate::error::WriteOutcome::Unknown,
        last_error: None,
    }
}

/// Whether a session whose next request is `next` would answer `wanted`: the same
/// partitions (in any order: a session moves partitions that were given records to the
/// back), from the same offsets, with the same size limits. (The session's waiting rules
/// may differ after an empty answer; they do not change what is read.)
fn asks_the_same(next: &wire::FetchRequest, wanted: &wire::FetchRequest) -> bool {
    next.max_bytes == wanted.max_bytes
        && next.partitions.len() == wanted.partitions.len()
        && sorted_partitions(next) == sorted_partitions(wanted)
}

fn sorted_partitions(request: &wire::FetchRequest) -> Vec<&wire::FetchPartition> {
    let mut partitions: Vec<&wire::FetchPartition> = request.partitions.iter().collect();
    partitions.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    partitions
}

/// Whether `answer` answers `request`: an entry per partition, in order, each read from
/// the offset asked for.
fn answers(request: &wire::FetchRequest, answer: &wire::FetchResponse) -> bool {
    request.partitions.len() == answer.partitions.len()
        && request
            .partitions
            .iter()
            .zip(&answer.partitions)
            .all(|(asked, fetched)| {
                asked.topic == fetched.topic
                    && asked.partition == fetched.partition
                    && asked.fetch_offset == fetched.fetch_offset
            })
}

/// What one fetch produced: chunks to push, and whether routing is in doubt.
#[derive(Default)]
struct Outcome {
    chunks: Vec<Chunk>,
    refresh: bool,
}

fn handle_response(
    shared: &ConsumerShared,
    work: &[Work],
    response: &wire::FetchResponse,
) -> Outcome {
    let mut outcome = Outcome::default();
    for item in work {
        let (topic, partition) = (&*item.topic, &item.partition);
        let answer = response
            .partitions
            .iter()
            .find(|fetched| fetched.topic == topic && fetched.partition == *partition);
        let result = match answer {
            None => Err(Error::broker(
                wire::ErrorCode::UnknownServerError,
                format!("fetch answer has no entry for {topic}/{partition}"),
            )),
            Some(fetched) => match Error::from_wire(fetched.error.as_ref()) {
                Some(error) => Err(error),
                None => split_partition(topic, *partition, item.fetch_offset, fetched),
            },
        };
        apply(shared, item, result, &mut outcome);
    }
    outcome
}

fn handle_failure(shared: &ConsumerShared, work: &[Work], error: &Error) -> Outcome {
    tracing::debug!(%error, "fetch failed");
    let mut outcome = Outcome::default();
    for item in work {
        apply(shared, item, Err(error.duplicate()), &mut outcome);
    }
    outcome
}

/// Marks the partitions of a fetch given up before its answer as fetchable again, at the
/// same offsets.
fn give_back(shared: &ConsumerShared, work: &[Work]) {
    let mut state = shared.state();
    for item in work {
        if let Some(fetch) = state.get_mut(item.index) {
            fetch.in_fetch = false;
        }
    }
}

/// Records the result of fetching one partition in its state, unless a seek made it
/// stale, and queues the chunk to push.
fn apply(
    shared: &ConsumerShared,
    item: &Work,
    result: Result<(FetchedBatches, i64), Error>,
    outcome: &mut Outcome,
) {
    let mut state = shared.state();
    let Some(fetch) = state.get_mut(item.index) else {
        return;
    };
    fetch.in_fetch = false;
    if fetch.generation != item.generation {
        return;
    }
    let content = match result {
        Ok((batches, next_offset)) => {
            fetch.attempts = 0;
            fetch.retry_at = None;
            fetch.fetch_offset = fetch.fetch_offset.max(next_offset);
            if batches.is_empty() {
                return;
            }
            ChunkContent::Batches(batches)
        }
        Err(error) if error.is_retriable() => {
            outcome.refresh |= error.needs_metadata_refresh();
            fetch.attempts = fetch.attempts.saturating_add(1);
            let config = &shared.config;
            let delay = backoff(
                config.retry_backoff,
                config.retry_backoff_max,
                fetch.attempts,
            );
            fetch.retry_at = Some(Instant::now() + delay);
            return;
        }
        Err(error) => {
            fetch.blocked = true;
            ChunkContent::Error(error)
        }
    };
    fetch.buffered_chunks += 1;
    outcome.chunks.push(Chunk {
        index: item.index,
        generation: item.generation,
        content,
    });
}

/// Splits a partition's fetched bytes into whole batches, left undecoded for the stream,
/// and reads the next offset to fetch from their headers. Only the framing is looked at
/// here; CRC and records are checked when the stream reaches each batch, so a batch whose
/// framing is already wrong is kept (the stream reports it) and ends the chunk.
fn split_partition(
    topic: &str,
    partition: i32,
    fetch_offset: i64,
    fetched: &wire::FetchedPartition,
) -> Result<(FetchedBatches, i64), Error> {
    let mut batches = split_batches(&fetched.records)?;
    let mut next_offset = fetch_offset;
    for (index, batch) in batches.iter().enumerate() {
        let framed = BatchHeader::parse(batch)
            .and_then(|header| header.check_framing(RESPONSE_BYTES_MAX).map(|()| header));
        match framed {
            Ok(header) => next_offset = next_offset.max(header.next_offset().0),
            Err(_) => {
                batches.truncate(index + 1);
                break;
            }
        }
    }
    let from = FetchedFrom {
        topic: Arc::from(topic),
        partition,
        fetch_offset,
        high_watermark: fetched.high_watermark,
        log_start_offset: fetched.log_start_offset,
    };
    Ok((FetchedBatches::new(from, batches), next_offset))
}

/// The whole batches in `data`, in order. A cut-off batch at the end is left out (the
/// next fetch starts at it); data that holds no whole batch at all is an error.
pub(crate) fn split_batches(data: &Bytes) -> Result<Vec<Bytes>, RecordError> {
    let mut batches = Vec::new();
    let mut position = 0;
    while let Some(prefix) = data.get(position..position + BATCH_LENGTH_PREFIX_BYTES) {
        let mut length_bytes = [0u8; 4];
        length_bytes.copy_from_slice(prefix.get(8..12).unwrap_or(&[0; 4]));
        let length = i32::from_be_bytes(length_bytes);
        let minimum = (BATCH_HEADER_BYTES - BATCH_LENGTH_PREFIX_BYTES) as i32;
        if length < minimum {
            return Err(RecordError::InvalidRecord {
                reason: format!("fetched batch at byte {position} claims batch_length {length}"),
            });
        }
        let end = position + BATCH_LENGTH_PREFIX_BYTES + length as usize;
        if end > data.len() {
            break;
        }
        batches.push(data.slice(position..end));
        position = end;
    }
    if batches.is_empty() && !data.is_empty() {
        return Err(RecordError::Truncated {
            needed: BATCH_HEADER_BYTES.max(data.len() + 1),
            available: data.len(),
        });
    }
    Ok(batches)
}

async fn refresh_metadata(shared: &ConsumerShared) {
    let mut topics: Vec<String> = shared
        .assigned()
        .into_iter()
        .map(|(_, topic, _)| topic.to_string())
        .collect();
    topics.sort();
    topics.dedup();
    if let Err(error) = shared.client.refresh_metadata(&topics).await {
        tracing::debug!(%error, "consumer metadata refresh failed");
    }
}

#[cfg(test)]
#[path = "fetcher_tests.rs"]
mod tests;
