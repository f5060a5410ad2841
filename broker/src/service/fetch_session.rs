//! A fetch session (`ClientApi.FetchStream`): one fetch, answered again and again from
//! where each partition's previous answer ended, as the client grants answers.
//!
//! A consumer reading one partition with unary fetches has one answer in flight: the
//! broker sits idle while the client takes in an answer and asks again, and the client
//! waits while the broker reads the next one. In a session the broker reads the next
//! answer while the client is still taking in the last one, and sends it as soon as the
//! client has granted it, without a round trip per answer.
//!
//! Grants, not HTTP/2 flow control, decide how far ahead the broker runs: at most one
//! answer read and not yet granted, plus the granted answers on their way. A client that
//! keeps its grants within half its stream window never makes the broker wait for
//! window, so each answer leaves as whole as a unary one (h2 cuts a data frame where the
//! window runs out, and an answer cut inside a batch costs the client a copy).
//!
//! The rule of moving on is [`strata_proto::fetch_session::next_request`] (pure, shared
//! with the client); [`run`] drives it.
//!
//! Shutdown ([`Node::stopping`]): a session that is reading, waiting for data or waiting
//! for a grant ends with UNAVAILABLE ([`status::shutting_down`]), so the client opens a
//! new session when the broker is back. Fetching is read-only: an answer not sent loses
//! nothing.

use std::sync::Arc;

use strata_proto::api::v1::{FetchResponse, FetchSessionRequest};
use strata_proto::fetch_session::next_request;
use tokio::sync::mpsc;
use tokio_stream::{Stream, StreamExt};
use tonic::Status;

use super::client_api::fetch_response;
use super::status;
use crate::node::Node;

/// The most answers a client may have granted and not yet received.
pub const GRANTS_MAX: u32 = 64;

/// A client's grant, refused (not cut silently) above [`GRANTS_MAX`].
fn checked_grant(grant: u32) -> Result<u32, Status> {
    if grant > GRANTS_MAX {
        return Err(Status::invalid_argument(format!(
            "a fetch session grant of {grant} answers is above the maximum of {GRANTS_MAX}"
        )));
    }
    Ok(grant)
}

/// Serves the session whose client messages are `requests`, sending each answer, turned
/// into what the response body sends by `frame`, into `answers`. Ends when the session
/// ends (an error or a partition that did not move on), when the client has closed its
/// side and every grant is used, when `answers` is dropped (the client cancelled), or
/// after sending the status a bad client message is refused with, or the shutdown status.
pub async fn run<T, S>(
    node: Arc<Node>,
    mut requests: S,
    answers: mpsc::Sender<Result<T, Status>>,
    frame: impl Fn(FetchResponse) -> Result<T, Status>,
) where
    S: Stream<Item = Result<FetchSessionRequest, Status>> + Unpin,
{
    let stopping = node.stopping();
    tokio::pin!(stopping);
    let first = tokio::select! {
        biased;
        () = &mut stopping => return refuse(&answers, status::shutting_down()).await,
        () = answers.closed() => return,
        first = requests.next() => first,
    };
    let (mut request, mut grants) = match first {
        None => return,
        Some(Err(status)) => return refuse(&answers, status).await,
        Some(Ok(FetchSessionRequest {
            fetch: Some(fetch),
            grant,
        })) => match checked_grant(grant) {
            Ok(grant) => (fetch, grant),
            Err(status) => return refuse(&answers, status).await,
        },
        Some(Ok(FetchSessionRequest { fetch: None, .. })) => {
            let status =
                Status::invalid_argument("the first message of a fetch session carries no fetch");
            return refuse(&answers, status).await;
        }
    };
    let mut client_open = true;
    loop {
        let answer = tokio::select! {
            biased;
            () = &mut stopping => return refuse(&answers, status::shutting_down()).await,
            () = answers.closed() => return,
            answer = fetch_response(&node, request.clone()) => answer,
        };
        let next = next_request(request, &answer);
        while grants == 0 {
            if !client_open {
                return;
            }
            let message = tokio::select! {
                biased;
                () = &mut stopping => return refuse(&answers, status::shutting_down()).await,
                () = answers.closed() => return,
                message = requests.next() => message,
            };
            match message {
                None => client_open = false,
                Some(Ok(FetchSessionRequest { fetch: None, grant })) => {
                    match checked_grant(grant) {
                        Ok(grant) => grants = grant,
                        Err(status) => return refuse(&answers, status).await,
                    }
                }
                Some(Ok(FetchSessionRequest { fetch: Some(_), .. })) => {
                    let status = Status::invalid_argument(
                        "only the first message of a fetch session carries a fetch",
                    );
                    return refuse(&answers, status).await;
                }
                Some(Err(status)) => return refuse(&answers, status).await,
            }
        }
        grants -= 1;
        if answers.send(frame(answer)).await.is_err() {
            return;
        }
        match next {
            Some(next) => request = next,
            None => return,
        }
    }
}

async fn refuse<T>(answers: &mpsc::Sender<Result<T, Status>>, status: Status) {
    // The client may be gone already; then nobody is left to tell.
    let _ = answers.send(Err(status)).await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Duration;

    use strata_proto::api::v1::{FetchPartition, FetchRequest};

    use super::*;
    use crate::node::test_node::node_with_topic;

    /// A fetch of the empty partition that waits up to 30 s (the broker's limit) for data.
    fn long_poll(topic: &str) -> FetchRequest {
        FetchRequest {
            max_wait_ms: 30_000,
            min_bytes: 1,
            max_bytes: 1 << 20,
            partitions: vec![FetchPartition {
                topic: topic.to_owned(),
                partition: 0,
                fetch_offset: 0,
                partition_max_bytes: 1 << 20,
                current_leader_epoch: -1,
            }],
        }
    }

    /// Bounds a wait that the shutdown must end long before the fetch's 30 s.
    async fn within_10_s<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(10), future)
            .await
            .unwrap_or_else(|_| panic!("{what} did not happen after the shutdown began"))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_session_waiting_for_data_ends_unavailable_when_the_shutdown_begins() {
        let dir = tempfile::tempdir().unwrap();
        let node = node_with_topic(dir.path(), "idle").await;
        // The client's side stays open: only the shutdown ends the session.
        let (client, requests) = mpsc::unbounded_channel();
        client
            .send(Ok(FetchSessionRequest {
                fetch: Some(long_poll("idle")),
                grant: 4,
            }))
            .unwrap();
        let requests = tokio_stream::wrappers::UnboundedReceiverStream::new(requests);
        let (answers, mut received) = mpsc::channel(1);
        let session = tokio::spawn(run(Arc::clone(&node), requests, answers, Ok));
        // Most likely in its long poll by now; ending at any other point is as right.
        tokio::time::sleep(Duration::from_millis(100)).await;

        node.begin_shutdown();
        let status = within_10_s("the session's end", received.recv())
            .await
            .expect("a status ends the session")
            .expect_err("no answer: the partition has no data");
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert_eq!(status.message(), "broker is shutting down; reconnect");
        assert!(received.recv().await.is_none());
        session.await.unwrap();
        drop(client);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_session_opened_during_the_shutdown_ends_unavailable_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let node = node_with_topic(dir.path(), "late").await;
        node.begin_shutdown();
        let first = FetchSessionRequest {
            fetch: Some(long_poll("late")),
            grant: 4,
        };
        let requests = tokio_stream::iter([Ok(first)]).chain(tokio_stream::pending());
        let (answers, mut received) = mpsc::channel(1);
        tokio::spawn(run(node, requests, answers, Ok));
        let status = within_10_s("the session's end", received.recv())
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unavailable);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_long_poll_fetch_returns_what_it_has_when_the_shutdown_begins() {
        let dir = tempfile::tempdir().unwrap();
        let node = node_with_topic(dir.path(), "polled").await;
        let fetcher = Arc::clone(&node);
        let fetch =
            tokio::spawn(async move { fetch_response(&fetcher, long_poll("polled")).await });
        tokio::time::sleep(Duration::from_millis(100)).await;

        node.begin_shutdown();
        let answer = within_10_s("the fetch's answer", fetch).await.unwrap();
        let partition = &answer.partitions[0];
        assert_eq!(partition.error.as_ref().map(|e| e.code), Some(0));
        assert!(partition.records.is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_grant_above_the_maximum_is_refused_not_cut() {
        let dir = tempfile::tempdir().unwrap();
        let node = node_with_topic(dir.path(), "granted").await;
        let first = FetchSessionRequest {
            fetch: Some(long_poll("granted")),
            grant: GRANTS_MAX + 1,
        };
        let requests = tokio_stream::iter([Ok(first)]).chain(tokio_stream::pending());
        let (answers, mut received) = mpsc::channel(1);
        tokio::spawn(run(node, requests, answers, Ok));
        let status = within_10_s("the refusal", received.recv())
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(status.message().contains("maximum of 64"), "{status:?}");
    }
}
