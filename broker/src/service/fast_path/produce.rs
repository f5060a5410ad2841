//! The produce stream: requests decoded from the HTTP/2 frames as they arrive, handed to
//! [`crate::service::produce::serve`] (the same ordered writes and concurrent commits as
//! through tonic), responses framed as they complete.
//!
//! A batch that arrived inside one frame (the producer's batches of up to a MiB fit the
//! 1 MiB frames the broker accepts) is decoded as a slice of that frame and written from
//! it. At most one message beyond the one being completed is buffered: the body is read
//! only while no whole message is waiting. A request over the limit is never buffered:
//! when its first bytes name its request id, topic and partition it is refused alone
//! ([`ProduceInbound::Oversized`]) and dropped as it arrives; otherwise its length prefix
//! ends the call.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http_body::Frame;
use prost::Message;
use strata_proto::api::v1::ProduceRequest;
use strata_proto::grpc_frame::{self, Chunks};
use tonic::body::Body;
use tonic::Status;

use super::{grpc_response, trailers, InboundMessage, RequestStream};
use crate::node::Node;
use crate::service::produce::{self, OversizedRequest, ProduceInbound, ProduceStream};

impl InboundMessage for ProduceInbound {
    const REFUSES_OVERSIZED_ALONE: bool = true;

    fn decode(message: Chunks) -> Result<Self, prost::DecodeError> {
        ProduceRequest::decode(message).map(ProduceInbound::Request)
    }

    fn oversized(head: &[u8], length: u64, limit: usize) -> Option<Self> {
        let request = grpc_frame::produce_request_head(head)?;
        Some(ProduceInbound::Oversized(OversizedRequest {
            request_id: request.request_id,
            topic: request.topic,
            partition: request.partition,
            acks: request.acks,
            length,
            limit,
        }))
    }
}

/// Starts serving the produce stream whose requests arrive in `body`.
pub(super) fn answer(node: Arc<Node>, body: Body, limit: usize) -> http::Response<Body> {
    let requests = RequestStream::<ProduceInbound>::new(body, limit);
    let responses = produce::serve(node, requests);
    grpc_response(Body::new(ResponseBody {
        responses,
        ended: false,
    }))
}

/// The response stream as a body: each response one framed message; the trailers carry
/// the status the stream ended with.
struct ResponseBody {
    responses: ProduceStream,
    ended: bool,
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        let frame = match ready!(this.responses.as_mut().poll_next(cx)) {
            Some(Ok(response)) => Frame::data(grpc_frame::encode_message(&response)),
            Some(Err(status)) => {
                this.ended = true;
                Frame::trailers(trailers(&status))
            }
            None => {
                this.ended = true;
                Frame::trailers(trailers(&Status::ok("")))
            }
        };
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use tokio_stream::StreamExt;
    use tonic::Code;

    use super::*;

    fn body_of(chunks: Vec<Bytes>) -> Body {
        let frames = chunks
            .into_iter()
            .map(|chunk| Ok::<_, Infallible>(Frame::data(chunk)));
        Body::new(http_body_util::StreamBody::new(tokio_stream::iter(frames)))
    }

    fn request(id: u64, records: &[u8]) -> ProduceRequest {
        ProduceRequest {
            request_id: id,
            records: Bytes::copy_from_slice(records),
            ..ProduceRequest::default()
        }
    }

    async fn decoded(chunks: Vec<Bytes>, limit: usize) -> Vec<Result<ProduceInbound, Code>> {
        let stream = RequestStream::<ProduceInbound>::new(body_of(chunks), limit);
        stream
            .map(|item| item.map_err(|status| status.code()))
            .collect()
            .await
    }

    fn request_of(item: &Result<ProduceInbound, Code>) -> &ProduceRequest {
        match item {
            Ok(ProduceInbound::Request(request)) => request,
            other => panic!("not a request: {other:?}"),
        }
    }

    #[tokio::test]
    async fn requests_split_and_joined_across_frames_come_out_in_order() {
        let wire: Vec<u8> = [request(1, &[7; 300]), request(2, &[]), request(3, &[9; 40])]
            .iter()
            .flat_map(|request| grpc_frame::encode_message(request).to_vec())
            .collect();
        let wire = Bytes::from(wire);
        for cut in [1, 5, 100, 320, wire.len() - 1] {
            let got = decoded(vec![wire.slice(..cut), wire.slice(cut..)], 1024).await;
            let ids: Vec<u64> = got.iter().map(|r| request_of(r).request_id).collect();
            assert_eq!(ids, [1, 2, 3], "cut at {cut}");
            assert_eq!(request_of(&got[0]).records.len(), 300);
        }
    }

    #[tokio::test]
    async fn an_oversized_request_is_refused_alone_and_the_requests_around_it_come_through() {
        let oversized = ProduceRequest {
            topic: "orders".to_owned(),
            partition: 2,
            acks: -1,
            ..request(7, &[0; 5000])
        };
        let length = oversized.encoded_len() as u64;
        let wire: Vec<u8> = [request(6, b"a"), oversized, request(8, b"b")]
            .iter()
            .flat_map(|request| grpc_frame::encode_message(request).to_vec())
            .collect();
        let wire = Bytes::from(wire);
        for cut in [3, 10, 400, 600, 3000, wire.len() - 8] {
            let got = decoded(vec![wire.slice(..cut), wire.slice(cut..)], 1024).await;
            assert_eq!(got.len(), 3, "cut at {cut}: {got:?}");
            assert_eq!(request_of(&got[0]).request_id, 6);
            match &got[1] {
                Ok(ProduceInbound::Oversized(refused)) => assert_eq!(
                    refused,
                    &OversizedRequest {
                        request_id: 7,
                        topic: "orders".to_owned(),
                        partition: 2,
                        acks: -1,
                        length,
                        limit: 1024,
                    }
                ),
                other => panic!("cut at {cut}: {other:?}"),
            }
            assert_eq!(request_of(&got[2]).request_id, 8);
        }
    }

    #[tokio::test]
    async fn an_oversized_request_ends_the_stream_when_its_head_is_unreadable_or_absurd() {
        // Not a produce request's fields before the batch.
        let mut garbage = vec![0, 0, 0, 8, 0];
        garbage.extend([0x0f; 2048]);
        assert_eq!(
            decoded(vec![Bytes::from(garbage)], 1024).await,
            [Err(Code::ResourceExhausted)]
        );
        // A length over 16 times the limit is not waited for.
        let absurd = Bytes::from_static(&[0, 0xff, 0xff, 0xff, 0xff, 1, 2, 3]);
        assert_eq!(
            decoded(vec![absurd], 1024).await,
            [Err(Code::ResourceExhausted)]
        );
        // The stream ends inside the skipped request.
        let big = grpc_frame::encode_message(&request(1, &[0; 5000]));
        let got = decoded(vec![big.slice(..3000)], 1024).await;
        assert!(
            matches!(got[0], Ok(ProduceInbound::Oversized(_))),
            "{got:?}"
        );
        assert_eq!(got[1..], [Err(Code::InvalidArgument)]);
    }

    #[tokio::test]
    async fn a_torn_or_malformed_request_ends_the_stream_with_a_typed_status() {
        let big = grpc_frame::encode_message(&request(1, &[0; 2000]));
        let torn = big.slice(..100);
        assert_eq!(
            decoded(vec![torn], 4096).await,
            [Err(Code::InvalidArgument)]
        );
        let garbage = Bytes::from_static(&[0, 0, 0, 0, 2, 0x0f, 0x00]);
        let good = grpc_frame::encode_message(&request(2, b"x"));
        assert_eq!(
            decoded(vec![garbage, good], 4096).await,
            [Err(Code::InvalidArgument)]
        );
        let compressed = Bytes::from_static(&[1, 0, 0, 0, 1, 0]);
        assert_eq!(decoded(vec![compressed], 4096).await, [Err(Code::Internal)]);
    }
}
