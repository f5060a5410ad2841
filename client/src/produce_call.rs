//! The produce stream, opened without the generated client so batches are not copied.
//!
//! tonic's client encodes each request into one buffer: a copy of every produced byte,
//! 10 % of `strata bench produce`'s CPU (`docs/bench/history.md` item 16). Here each
//! request goes to HTTP/2 as two chunks ([`grpc_frame::produce_request_chunks`]): its
//! small fields, then the batch as the `Bytes` the accumulator built; h2 writes a large
//! data frame with a vectored write. Answers are read from the frames as they arrive
//! ([`Chunks::next_message`]). What crosses the wire is ordinary gRPC, over the same
//! [`Channel`] as every other call to that broker.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use http::HeaderMap;
use http_body::Frame;
use http_body_util::BodyExt;
use prost::Message;
use strata_proto::api::v1 as wire;
use strata_proto::grpc_frame::{self, Chunks, PRODUCE_PATH};
use tokio::sync::mpsc;
use tonic::body::Body;
use tonic::transport::Channel;
use tonic::Status;

use crate::connection::RESPONSE_BYTES_MAX;
use crate::grpc_call::{self, Started};

/// Opens the stream; `requests` are sent in order until the sender side is dropped.
pub(crate) async fn open(
    channel: Channel,
    requests: mpsc::Receiver<wire::ProduceRequest>,
) -> Result<Answers, Status> {
    let body = Body::new(RequestBody {
        requests,
        pending: VecDeque::new(),
    });
    let Started { headers, body } = grpc_call::start(channel, PRODUCE_PATH, body, None).await?;
    Ok(Answers {
        body,
        chunks: Chunks::new(),
        headers,
        ended: false,
    })
}

/// The answers of one produce stream.
pub(crate) struct Answers {
    body: Body,
    chunks: Chunks,
    headers: HeaderMap,
    ended: bool,
}

impl std::fmt::Debug for Answers {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Answers")
            .field("buffered", &self.chunks.remaining())
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl Answers {
    /// The next answer; `Ok(None)` when the broker ended the stream with `OK`, the
    /// stream's status when it ended otherwise (as tonic's `Streaming::message`).
    pub(crate) async fn message(&mut self) -> Result<Option<wire::ProduceResponse>, Status> {
        loop {
            let next = self
                .chunks
                .next_message(RESPONSE_BYTES_MAX)
                .map_err(|error| Status::internal(format!("produce answer: {error}")))?;
            if let Some(message) = next {
                return wire::ProduceResponse::decode(message)
                    .map(Some)
                    .map_err(|error| {
                        Status::internal(format!("failed to decode a produce answer: {error}"))
                    });
            }
            if self.ended {
                return Ok(None);
            }
            let mut trailers = None;
            if let Some(frame) = self.body.frame().await {
                match frame?.into_data() {
                    Ok(data) => {
                        self.chunks.append(data);
                        continue;
                    }
                    Err(frame) => trailers = frame.into_trailers().ok(),
                }
            }
            self.ended = true;
            if self.chunks.has_remaining() {
                return Err(Status::internal(
                    "the produce stream ended inside an answer",
                ));
            }
            return grpc_call::end_status(trailers.as_ref(), &self.headers).map(|()| None);
        }
    }
}

/// The request side: each request as its chunks, in the order queued.
struct RequestBody {
    requests: mpsc::Receiver<wire::ProduceRequest>,
    pending: VecDeque<Bytes>,
}

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.get_mut();
        loop {
            if let Some(chunk) = this.pending.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(chunk))));
            }
            let Some(request) = ready!(this.requests.poll_recv(cx)) else {
                return Poll::Ready(None);
            };
            match grpc_frame::produce_request_chunks(request) {
                Ok(chunks) => this.pending.extend(chunks),
                Err(error) => return Poll::Ready(Some(Err(Status::internal(error.to_string())))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Duration;

    use super::*;
    use crate::connection::Connections;
    use crate::test_broker::TestBroker;

    #[tokio::test]
    async fn requests_are_answered_in_order_and_the_end_is_ok() {
        let broker = TestBroker::start(&[("t", 1)]).await;
        let connections = Connections::new(Duration::from_secs(5), Duration::from_secs(5));
        let channel = connections.channel(&broker.address).unwrap();
        let (sender, receiver) = mpsc::channel(8);
        let mut answers = open(channel, receiver).await.unwrap();
        for request_id in [1, 2] {
            let request = wire::ProduceRequest {
                request_id,
                topic: "nope".to_owned(),
                partition: 0,
                acks: 1,
                timeout_ms: 1000,
                records: Bytes::from_static(&[0; 70]),
            };
            sender.send(request).await.unwrap();
        }
        drop(sender);
        let first = answers.message().await.unwrap().unwrap();
        let second = answers.message().await.unwrap().unwrap();
        assert_eq!((first.request_id, second.request_id), (1, 2));
        assert!(
            first.error.unwrap().code != 0,
            "an unknown topic is refused"
        );
        assert!(answers.message().await.unwrap().is_none());
    }
}
