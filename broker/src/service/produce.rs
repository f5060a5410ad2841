//! The Produce bidirectional stream. Requests on one stream are written to their logs
//! strictly in the order received (so one producer's batches keep their order with many
//! in flight); each one's commit (fsync, high watermark) then runs concurrently and its
//! response is sent when it is done, tagged with the request id. acks=0 gets no response.
//!
//! Bounded: at most [`COMMITS_IN_FLIGHT_MAX`] commits per stream wait at once, and at most
//! [`RESPONSES_QUEUED_MAX`] responses wait for a slow client; past either, the broker
//! stops reading the stream's requests (HTTP/2 flow control then stops the client)
//! instead of queueing without limit.
//!
//! Shutdown ([`Node::stopping`]): the stream stops reading requests, lets every request
//! it has read finish (written and committed, or refused) and be answered, then ends
//! with UNAVAILABLE ([`status::shutting_down`]). Requests the client sent after the last
//! one read get no answer on this stream; the client sends them again on a new one.
//!
//! A request over the transport's decode limit ([`ProduceInbound::Oversized`], read by
//! the fast path from its first bytes) is answered alone with `MESSAGE_TOO_LARGE`, not
//! retriable, and the stream goes on. A request that ends the stream (undecodable, or
//! oversized beyond what can be skipped) is answered with its status only after every
//! request read before it has been answered. Compressed batches are validated within the
//! broker's decompression budget ([`super::decompression`]).

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_proto::api::v1::{ErrorCode, ProduceRequest, ProduceResponse};
use tokio::sync::{mpsc, Semaphore};
use tokio_stream::{Stream, StreamExt};
use tonic::Status;

use super::{decompression, request_metrics, status, traffic, transport_status};
use crate::node::{Acks, Appended, Node, NodeError};

/// The response stream type of `Produce`.
pub type ProduceStream = Pin<Box<dyn Stream<Item = Result<ProduceResponse, Status>> + Send>>;

/// One message of a produce stream, as the broker reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum ProduceInbound {
    Request(ProduceRequest),
    /// A request over the decode limit, of which only the fields before the batch were
    /// read; the batch was dropped unread.
    Oversized(OversizedRequest),
}

/// What is known of a request too large to read ([`ProduceInbound::Oversized`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OversizedRequest {
    pub request_id: u64,
    pub topic: String,
    pub partition: i32,
    pub acks: i32,
    /// The length its gRPC prefix claimed.
    pub length: u64,
    /// The decode limit it is over.
    pub limit: usize,
}

/// How many responses may wait for a slow client before the broker stops reading its
/// requests (backpressure instead of an unbounded queue).
const RESPONSES_QUEUED_MAX: usize = 256;

/// How many written requests of one stream may wait for their commit (fsync) at once.
const COMMITS_IN_FLIGHT_MAX: usize = 256;

/// Starts serving one produce stream: `inbound` is tonic's decoder of the request stream
/// or the fast path's ([`super::fast_path::produce`]).
pub fn serve<S>(node: Arc<Node>, inbound: S) -> ProduceStream
where
    S: Stream<Item = Result<ProduceInbound, Status>> + Send + Unpin + 'static,
{
    let (sender, receiver) = mpsc::channel(RESPONSES_QUEUED_MAX);
    let commits = Arc::new(Semaphore::new(COMMITS_IN_FLIGHT_MAX));
    tokio::spawn(run(node, inbound, sender, commits));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(receiver))
}

async fn run<S>(
    node: Arc<Node>,
    mut inbound: S,
    sender: mpsc::Sender<Result<ProduceResponse, Status>>,
    commits: Arc<Semaphore>,
) where
    S: Stream<Item = Result<ProduceInbound, Status>> + Send + Unpin + 'static,
{
    let stopping = node.stopping();
    tokio::pin!(stopping);
    loop {
        let inbound = tokio::select! {
            biased;
            () = &mut stopping => break,
            inbound = inbound.next() => inbound,
        };
        let request = match inbound {
            None => return,
            Some(Ok(ProduceInbound::Request(request))) => request,
            Some(Ok(ProduceInbound::Oversized(oversized))) => {
                if oversized.acks != 0 && sender.send(Ok(too_large(&oversized))).await.is_err() {
                    return;
                }
                continue;
            }
            Some(Err(status)) => {
                let status = transport_status::rewrite_status(status);
                return end_after_commits(&commits, &sender, status).await;
            }
        };
        let started = Instant::now();
        let request_id = request.request_id;
        let acks = match Acks::from_wire(request.acks) {
            Ok(acks) => acks,
            Err(error) => {
                if sender.send(Ok(failure(request_id, &error))).await.is_err() {
                    return;
                }
                continue;
            }
        };
        // A free commit slot before the write, so no more than the bound ever wait.
        let Ok(commit_slot) = Arc::clone(&commits).acquire_owned().await else {
            return;
        };
        traffic::record(request.records.len());
        let batch_bytes = request.records.len();
        let batch_records = request_metrics::batch_record_count(&request.records);
        // Written in order, here; committed concurrently, below.
        let pending = match acks {
            // NOT_ENOUGH_REPLICAS refuses the batch before it is written.
            Acks::All => node.check_acks_all(&request.topic, request.partition),
            _ => Ok(()),
        };
        let pending = match pending {
            Ok(()) => {
                decompression::produce_within_budget(
                    &node,
                    &request.topic,
                    request.partition,
                    request.records,
                )
                .await
            }
            Err(error) => Err(error),
        };
        let timeout = Duration::from_millis(u64::from(request.timeout_ms.max(1)));
        let sender = sender.clone();
        let topic = request.topic;
        tokio::spawn(async move {
            let _commit_slot = commit_slot;
            let result = match pending {
                Ok(pending) if acks == Acks::All => pending.commit_acks_all(timeout).await,
                Ok(pending) => pending.commit().await,
                Err(error) => Err(error),
            };
            let response = match result {
                Ok(appended) => {
                    request_metrics::produced(&topic, batch_bytes, batch_records);
                    success(request_id, appended)
                }
                Err(error) => failure(request_id, &error),
            };
            let code = response
                .error
                .as_ref()
                .map_or("OK", |error| request_metrics::error_code_label(error.code));
            request_metrics::record_request(request_metrics::PRODUCE, code, started.elapsed());
            if acks == Acks::None {
                return;
            }
            let _ = sender.send(Ok(response)).await;
        });
    }
    end_after_commits(&commits, &sender, status::shutting_down()).await;
}

/// Ends a stream with `status` (the retriable one of a shutdown, or why a request could
/// not be read): once every commit slot is free again (each request read has been
/// committed or refused, and its answer queued), the status goes out after those
/// answers, so no request read is left unanswered.
async fn end_after_commits(
    commits: &Semaphore,
    sender: &mpsc::Sender<Result<ProduceResponse, Status>>,
    status: Status,
) {
    // Fails only on a closed semaphore, and this one is never closed.
    let _every_slot = commits.acquire_many(COMMITS_IN_FLIGHT_MAX as u32).await;
    let _ = sender.send(Err(status)).await;
}

/// The answer to a request over the decode limit: refused alone, not retriable.
fn too_large(oversized: &OversizedRequest) -> ProduceResponse {
    let message = format!(
        "request of {} bytes to {}-{} is over the broker's limit of {} bytes for one produce \
         request (message_max_bytes plus room for the request's other fields); the batch was \
         not written: lower the producer's batch size",
        oversized.length, oversized.topic, oversized.partition, oversized.limit
    );
    ProduceResponse {
        request_id: oversized.request_id,
        error: Some(strata_proto::api::v1::Error::new(
            ErrorCode::MessageTooLarge,
            message,
        )),
        base_offset: -1,
        log_append_time_ms: -1,
        log_start_offset: -1,
    }
}

fn success(request_id: u64, appended: Appended) -> ProduceResponse {
    ProduceResponse {
        request_id,
        error: Some(status::none()),
        base_offset: appended.base_offset.0,
        log_append_time_ms: -1,
        log_start_offset: appended.log_start_offset.0,
    }
}

fn failure(request_id: u64, error: &NodeError) -> ProduceResponse {
    ProduceResponse {
        request_id,
        error: Some(status::to_wire(error)),
        base_offset: -1,
        log_append_time_ms: -1,
        log_start_offset: -1,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use bytes::Bytes;
    use strata_proto::record::{BatchBuilder, BatchSettings, Record};

    use super::*;
    use crate::node::test_node::node_with_topic;

    fn request(request_id: u64, topic: &str) -> ProduceRequest {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let mut builder = BatchBuilder::new(BatchSettings::default());
        builder
            .append(&Record::from_value(now_ms, Bytes::from_static(b"v")))
            .unwrap();
        ProduceRequest {
            request_id,
            topic: topic.to_owned(),
            partition: 0,
            acks: 1,
            timeout_ms: 30_000,
            records: builder.build().unwrap(),
        }
    }

    /// Waits (bounded) until `condition` holds.
    async fn eventually(what: &str, condition: impl Fn() -> bool) {
        for _ in 0..2000 {
            if condition() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("timed out waiting until {what}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stream_stops_reading_requests_while_its_commits_wait() {
        let scenario = fail::FailScenario::setup();
        let dir = tempfile::tempdir().unwrap();
        let node = node_with_topic(dir.path(), "held").await;
        // Only the segment's fsync (the group commit's). The first append of an epoch
        // writes the leader-epoch checkpoint, whose fsync must not be held.
        let segment = dir.path().join("held-0").join("00000000000000000000.log");
        let hold = format!("return({})", segment.display());
        fail::cfg("log::fsync_hold", &hold).unwrap();

        let sent = COMMITS_IN_FLIGHT_MAX + 44;
        let pulled = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&pulled);
        let requests = tokio_stream::iter(0..sent as u64).map(move |id| {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok::<_, Status>(ProduceInbound::Request(request(id, "held")))
        });
        let mut responses = serve(Arc::clone(&node), requests);

        // Every commit waits for the held fsync: the stream takes the bound's worth of
        // requests, plus the one waiting for a slot, and no more.
        let bound = COMMITS_IN_FLIGHT_MAX + 1;
        eventually("the bound is reached", || {
            pulled.load(Ordering::SeqCst) >= bound
        })
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(pulled.load(Ordering::SeqCst), bound);

        fail::cfg("log::fsync_hold", "off").unwrap();
        let mut offsets = Vec::new();
        while offsets.len() < sent {
            let response = tokio::time::timeout(Duration::from_secs(30), responses.next())
                .await
                .expect("answers after the fsync is released")
                .expect("one answer per request")
                .expect("no stream error");
            assert_eq!(
                response.error.as_ref().map(|e| e.code),
                Some(0),
                "{response:?}"
            );
            offsets.push((response.request_id, response.base_offset));
        }
        offsets.sort_unstable();
        let expected: Vec<(u64, i64)> = (0..sent as u64).map(|id| (id, id as i64)).collect();
        assert_eq!(offsets, expected, "written in order, each committed once");
        assert_eq!(pulled.load(Ordering::SeqCst), sent);
        drop(scenario);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_shutdown_answers_every_request_read_then_ends_the_open_stream_unavailable() {
        let scenario = fail::FailScenario::setup();
        let dir = tempfile::tempdir().unwrap();
        let node = node_with_topic(dir.path(), "draining").await;
        let segment = dir
            .path()
            .join("draining-0")
            .join("00000000000000000000.log");
        fail::cfg("log::fsync_hold", &format!("return({})", segment.display())).unwrap();

        // The client's side stays open throughout: only the shutdown ends the stream.
        let (client, requests) = mpsc::unbounded_channel::<Result<ProduceInbound, Status>>();
        let pulled = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&pulled);
        let requests =
            tokio_stream::wrappers::UnboundedReceiverStream::new(requests).map(move |request| {
                counter.fetch_add(1, Ordering::SeqCst);
                request
            });
        let mut responses = serve(Arc::clone(&node), requests);
        for id in 0..5 {
            client
                .send(Ok(ProduceInbound::Request(request(id, "draining"))))
                .unwrap();
        }
        eventually("five requests are read", || {
            pulled.load(Ordering::SeqCst) == 5
        })
        .await;

        // Their commits wait for the held fsync while the shutdown begins; one more
        // request arrives after it.
        node.begin_shutdown();
        client
            .send(Ok(ProduceInbound::Request(request(5, "draining"))))
            .unwrap();
        fail::cfg("log::fsync_hold", "off").unwrap();

        let mut answered = Vec::new();
        let ended_with = loop {
            let item = tokio::time::timeout(Duration::from_secs(30), responses.next())
                .await
                .expect("the stream ends after the shutdown")
                .expect("the stream ends with a status, not silently");
            match item {
                Ok(response) => {
                    assert_eq!(response.error.as_ref().map(|e| e.code), Some(0));
                    answered.push((response.request_id, response.base_offset));
                }
                Err(status) => break status,
            }
        };
        answered.sort_unstable();
        assert_eq!(answered, [(0, 0), (1, 1), (2, 2), (3, 3), (4, 4)]);
        assert_eq!(ended_with.code(), tonic::Code::Unavailable);
        assert_eq!(ended_with.message(), "broker is shutting down; reconnect");
        assert!(responses.next().await.is_none());
        assert_eq!(
            pulled.load(Ordering::SeqCst),
            5,
            "nothing read after the shutdown"
        );
        drop(client);
        drop(scenario);
    }

    /// Holds the fsync of `topic`'s only segment under `dir` until [`release_fsync`].
    fn hold_fsync(dir: &std::path::Path, topic: &str) {
        let segment = dir
            .join(format!("{topic}-0"))
            .join("00000000000000000000.log");
        fail::cfg("log::fsync_hold", &format!("return({})", segment.display())).unwrap();
    }

    fn release_fsync() {
        fail::cfg("log::fsync_hold", "off").unwrap();
    }

    /// Every item the stream yields until it ends or stays quiet for 2 s.
    async fn drain(responses: &mut ProduceStream) -> Vec<Result<ProduceResponse, Status>> {
        let mut items = Vec::new();
        while let Ok(Some(item)) =
            tokio::time::timeout(Duration::from_secs(2), responses.next()).await
        {
            items.push(item);
        }
        items
    }

    fn oversized(request_id: u64, acks: i32) -> ProduceInbound {
        ProduceInbound::Oversized(OversizedRequest {
            request_id,
            topic: "mixed".to_owned(),
            partition: 0,
            acks,
            length: 5_000_000,
            limit: 1_114_112,
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_oversized_request_is_refused_alone_and_the_stream_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let node = node_with_topic(dir.path(), "mixed").await;
        let (client, requests) = mpsc::unbounded_channel::<Result<ProduceInbound, Status>>();
        let mut responses = serve(
            Arc::clone(&node),
            tokio_stream::wrappers::UnboundedReceiverStream::new(requests),
        );
        client
            .send(Ok(ProduceInbound::Request(request(1, "mixed"))))
            .unwrap();
        client.send(Ok(oversized(2, -1))).unwrap();
        client.send(Ok(oversized(3, 0))).unwrap(); // acks=0: no answer
        client
            .send(Ok(ProduceInbound::Request(request(4, "mixed"))))
            .unwrap();

        let mut answers: Vec<ProduceResponse> = drain(&mut responses)
            .await
            .into_iter()
            .map(|item| item.expect("the stream is not ended"))
            .collect();
        answers.sort_by_key(|response| response.request_id);
        let summary: Vec<(u64, i32, i64)> = answers
            .iter()
            .map(|r| (r.request_id, r.error.as_ref().unwrap().code, r.base_offset))
            .collect();
        let too_large = ErrorCode::MessageTooLarge as i32;
        assert_eq!(summary, [(1, 0, 0), (2, too_large, -1), (4, 0, 1)]);
        let refusal = answers[1].error.as_ref().unwrap();
        assert!(!refusal.retriable);
        assert!(
            refusal.message.contains("5000000") && refusal.message.contains("1114112"),
            "{}",
            refusal.message
        );
        // Still open: one more request is answered.
        client
            .send(Ok(ProduceInbound::Request(request(5, "mixed"))))
            .unwrap();
        let next = responses.next().await.unwrap().unwrap();
        assert_eq!((next.request_id, next.base_offset), (5, 2));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_request_that_ends_the_stream_is_refused_after_every_earlier_one_is_answered() {
        let scenario = fail::FailScenario::setup();
        let dir = tempfile::tempdir().unwrap();
        let node = node_with_topic(dir.path(), "ending").await;
        hold_fsync(dir.path(), "ending");
        let mut inbound: Vec<Result<ProduceInbound, Status>> = (0..5)
            .map(|id| Ok(ProduceInbound::Request(request(id, "ending"))))
            .collect();
        inbound.push(Err(Status::resource_exhausted(
            "message of 9 GB is over the limit",
        )));
        let mut responses = serve(Arc::clone(&node), tokio_stream::iter(inbound));
        // The five commits wait for the held fsync while the stream's end is read.
        tokio::time::sleep(Duration::from_millis(200)).await;
        release_fsync();

        let items = drain(&mut responses).await;
        let (ended_with, answers) = items.split_last().expect("answers and a status");
        let mut answered: Vec<(u64, i64)> = answers
            .iter()
            .map(|item| {
                let response = item.as_ref().expect("answers before the status");
                (response.request_id, response.base_offset)
            })
            .collect();
        answered.sort_unstable();
        assert_eq!(answered, [(0, 0), (1, 1), (2, 2), (3, 3), (4, 4)]);
        let status = ended_with
            .as_ref()
            .expect_err("the stream ends with the status");
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        drop(scenario);
    }
}
