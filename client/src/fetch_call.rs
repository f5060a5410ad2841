//! The fetch call, made without the generated client so the records are not copied.
//!
//! tonic's client copies every received HTTP/2 data frame into one decode buffer before
//! it decodes a message: for a consumer that is a copy of every fetched byte, 14 % of
//! `strata bench consume`'s CPU (`docs/bench/history.md` item 16). Here the frames are kept
//! as they arrive ([`Chunks`]) and the response is decoded from them, so a batch that
//! arrived inside one frame reaches the consumer as a slice of that frame. The request
//! and the answer are ordinary gRPC (a framed message, `grpc-status` in the trailers or
//! in a trailers-only answer), and the call goes over the same [`Channel`] as every
//! other call to that broker.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use http_body::Frame;
use http_body_util::BodyExt;
use prost::Message;
use strata_proto::api::v1 as wire;
use strata_proto::grpc_frame::{self, Chunks, FrameError, FETCH_PATH, FETCH_STREAM_PATH};
use tokio::sync::mpsc;
use tonic::body::Body;
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::connection::RESPONSE_BYTES_MAX;
use crate::grpc_call::{self, Started};

/// Sends `request` with a `grpc-timeout` of `timeout` and decodes the answer.
pub(crate) async fn fetch(
    channel: Channel,
    request: &wire::FetchRequest,
    timeout: Duration,
) -> Result<tonic::Response<wire::FetchResponse>, Status> {
    let body = Body::new(http_body_util::Full::new(grpc_frame::encode_message(
        request,
    )));
    let Started { headers, mut body } =
        grpc_call::start(channel, FETCH_PATH, body, Some(timeout)).await?;
    let mut chunks = Chunks::new();
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        match frame?.into_data() {
            Ok(data) => chunks
                .push(data, RESPONSE_BYTES_MAX)
                .map_err(frame_status)?,
            Err(frame) => trailers = frame.into_trailers().ok(),
        }
    }
    grpc_call::end_status(trailers.as_ref(), &headers)?;
    let message = chunks
        .take_message(RESPONSE_BYTES_MAX)
        .map_err(frame_status)?
        .ok_or_else(|| Status::internal("the fetch answer carries no message"))?;
    let response = wire::FetchResponse::decode(message)
        .map_err(|error| Status::internal(format!("failed to decode the fetch answer: {error}")))?;
    Ok(tonic::Response::new(response))
}

/// An open fetch session (`FetchStream`): the broker's answers to one fetch, each read
/// from where the previous one ended (`broker::service::fetch_session`). The broker sends
/// only answers this side has granted: `grants` at the start, then one more for each
/// answer taken. Dropping it cancels the stream.
pub(crate) struct FetchSession {
    headers: http::HeaderMap,
    body: Body,
    chunks: Chunks,
    ended: bool,
    grants: mpsc::Sender<Bytes>,
    /// Grants not sent yet because the request channel was full.
    owed: u32,
}

/// Grant messages that may wait for HTTP/2 before more are added up instead.
const GRANT_MESSAGES_QUEUED: usize = 4;

impl FetchSession {
    /// Starts a session for `request` with `grants` answers granted. It has no deadline
    /// of its own: the caller bounds each wait for an answer.
    pub(crate) async fn open(
        channel: Channel,
        request: &wire::FetchRequest,
        grants: u32,
    ) -> Result<FetchSession, Status> {
        let (sender, receiver) = mpsc::channel(GRANT_MESSAGES_QUEUED);
        let first = wire::FetchSessionRequest {
            fetch: Some(request.clone()),
            grant: grants,
        };
        // The channel is empty, so the first message always fits.
        let _ = sender.try_send(grpc_frame::encode_message(&first));
        let body = Body::new(MessagesBody { messages: receiver });
        let Started { headers, body } =
            grpc_call::start(channel, FETCH_STREAM_PATH, body, None).await?;
        Ok(FetchSession {
            headers,
            body,
            chunks: Chunks::new(),
            ended: false,
            grants: sender,
            owed: 0,
        })
    }

    /// The next answer, granting one more in its place; `None` once the broker ended
    /// the session with `OK`.
    pub(crate) async fn next(&mut self) -> Result<Option<wire::FetchResponse>, Status> {
        loop {
            if let Some(message) = self
                .chunks
                .next_message(RESPONSE_BYTES_MAX)
                .map_err(frame_status)?
            {
                let answer = wire::FetchResponse::decode(message).map_err(|error| {
                    Status::internal(format!("failed to decode the fetch answer: {error}"))
                })?;
                self.grant();
                return Ok(Some(answer));
            }
            if self.ended {
                return Ok(None);
            }
            let trailers = match self.body.frame().await {
                Some(frame) => match frame?.into_data() {
                    Ok(data) => {
                        self.chunks.append(data);
                        continue;
                    }
                    Err(frame) => frame.into_trailers().ok(),
                },
                None => None,
            };
            self.ended = true;
            grpc_call::end_status(trailers.as_ref(), &self.headers)?;
            if self.chunks.has_remaining() {
                return Err(Status::internal(
                    "fetch session: the stream ended inside an answer",
                ));
            }
        }
    }

    /// Grants one more answer (with any owed), or owes it while the queue is full.
    fn grant(&mut self) {
        let grant = self.owed.saturating_add(1);
        let message = wire::FetchSessionRequest { fetch: None, grant };
        self.owed = match self.grants.try_send(grpc_frame::encode_message(&message)) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => 0,
            Err(mpsc::error::TrySendError::Full(_)) => grant,
        };
    }
}

/// A request body of ready-framed messages, ended when the sender is dropped.
struct MessagesBody {
    messages: mpsc::Receiver<Bytes>,
}

impl http_body::Body for MessagesBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        self.get_mut()
            .messages
            .poll_recv(cx)
            .map(|message| message.map(|bytes| Ok(Frame::data(bytes))))
    }
}

fn frame_status(error: FrameError) -> Status {
    let code = match error {
        FrameError::TooLarge { .. } => Code::OutOfRange,
        FrameError::Compressed
        | FrameError::Truncated { .. }
        | FrameError::TrailingBytes { .. } => Code::Internal,
    };
    Status::new(code, format!("fetch answer: {error}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::connection::Connections;
    use crate::test_broker::{Fault, TestBroker};

    #[tokio::test]
    async fn answers_and_failures_match_the_generated_clients() {
        let broker = TestBroker::start(&[("t", 1)]).await;
        let connections = Connections::new(Duration::from_secs(5), Duration::from_secs(5));
        let channel = connections.channel(&broker.address).unwrap();
        let partition = |partition| wire::FetchPartition {
            topic: "t".to_owned(),
            partition,
            fetch_offset: 0,
            partition_max_bytes: 1 << 20,
            current_leader_epoch: -1,
        };
        let request = wire::FetchRequest {
            max_wait_ms: 0,
            min_bytes: 0,
            max_bytes: 1 << 20,
            partitions: vec![partition(0), partition(7)],
        };
        let timeout = Duration::from_secs(5);
        let by_hand = fetch(channel.clone(), &request, timeout).await.unwrap();
        let generated = connections
            .get(&broker.address)
            .unwrap()
            .fetch(request.clone())
            .await
            .unwrap();
        assert_eq!(by_hand.into_inner(), generated.into_inner());

        broker.inject(&[Fault::FailFetch]);
        let status = fetch(channel, &request, timeout).await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert_eq!(status.message(), "injected fetch failure");
    }
}
