//! The Produce bidirectional stream. Requests on one stream are written to their logs
//! strictly in the order received (so one producer's batches keep their order with many
//! in flight); each one's commit (fsync, high watermark) then runs concurrently and its
//! response is sent when it is done, tagged with the request id. acks=0 gets no response.
//!
//! Bounded: at most [`COMMITS_IN_FLIGHT_MAX`] commits per stream wait at once, and at most
//! [`RESPONSES_QUEUED_MAX`] responses wait for a slow client; past either, the broker
//! stops reading the stream's requests (HTTP/2 flow control then stops the client)
//! instead of queueing without limit.

use std::pin::Pin;
use std::sync::Arc;

use strata_proto::api::v1::{ProduceRequest, ProduceResponse};
use tokio::sync::{mpsc, Semaphore};
use tokio_stream::{Stream, StreamExt};
use tonic::Status;

use super::{status, transport_status};
use crate::node::{Acks, Appended, Node, NodeError};

/// The response stream type of `Produce`.
pub type ProduceStream = Pin<Box<dyn Stream<Item = Result<ProduceResponse, Status>> + Send>>;

/// How many responses may wait for a slow client before the broker stops reading its
/// requests (backpressure instead of an unbounded queue).
const RESPONSES_QUEUED_MAX: usize = 256;

/// How many written requests of one stream may wait for their commit (fsync) at once.
const COMMITS_IN_FLIGHT_MAX: usize = 256;

/// Starts serving one produce stream: `inbound` is tonic's decoder of the request stream
/// or the fast path's ([`super::fast_path::produce`]).
pub fn serve<S>(node: Arc<Node>, inbound: S) -> ProduceStream
where
    S: Stream<Item = Result<ProduceRequest, Status>> + Send + Unpin + 'static,
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
    S: Stream<Item = Result<ProduceRequest, Status>> + Send + Unpin + 'static,
{
    while let Some(request) = inbound.next().await {
        let request = match request {
            Ok(request) => request,
            Err(status) => {
                let _ = sender
                    .send(Err(transport_status::rewrite_status(status)))
                    .await;
                return;
            }
        };
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
        // Written in order, here; committed concurrently, below.
        let pending = node
            .produce(&request.topic, request.partition, request.records)
            .await;
        let sender = sender.clone();
        tokio::spawn(async move {
            let _commit_slot = commit_slot;
            let result = match pending {
                Ok(pending) => pending.commit().await,
                Err(error) => Err(error),
            };
            if acks == Acks::None {
                return;
            }
            let response = match result {
                Ok(appended) => success(request_id, appended),
                Err(error) => failure(request_id, &error),
            };
            let _ = sender.send(Ok(response)).await;
        });
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

    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use bytes::Bytes;
    use strata_proto::record::{BatchBuilder, BatchSettings, Record};
    use strata_proto::types::BrokerId;

    use super::*;
    use crate::controller::topic_commands::NewTopic;
    use crate::controller::BrokerDefaults;
    use crate::log::{FlushPolicy, LogConfig};
    use crate::node::{Limits, NodeConfig};

    /// A one-node broker whose logs fsync every commit (`flush = always`).
    fn node_with_topic(dir: &std::path::Path, topic: &str) -> Arc<Node> {
        let log_defaults = LogConfig {
            flush: FlushPolicy::Always,
            ..LogConfig::default()
        };
        let node = Node::open(NodeConfig {
            node_id: BrokerId(1),
            advertised_address: "127.0.0.1:1".to_owned(),
            data_dir: dir.to_path_buf(),
            topic_defaults: BrokerDefaults::from_log_config(&log_defaults, 1 << 20),
            log_defaults,
            limits: Limits::default(),
            retention_check_interval: std::time::Duration::from_secs(60),
        })
        .unwrap();
        let spec = NewTopic {
            name: topic.to_owned(),
            partitions: Some(1),
            replication_factor: Some(1),
            configs: BTreeMap::new(),
        };
        let image = node.controller().create_topic(spec, false).unwrap();
        node.apply_controller_result(&image).unwrap();
        node
    }

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
        let node = node_with_topic(dir.path(), "held");
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
            Ok::<_, Status>(request(id, "held"))
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
}
