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
