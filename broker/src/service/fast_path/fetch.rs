//! The fetch call: the answer goes out in chunks, each partition's records as the
//! `Bytes` the log returned (a slice of a segment's map or of a read buffer).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::Frame;
use http_body_util::BodyExt;
use prost::Message;
use strata_proto::api::v1::{FetchRequest, FetchSessionRequest};
use strata_proto::grpc_frame::{self, Chunks};
use tokio::sync::mpsc;
use tonic::body::Body;
use tonic::{Code, Status};

use super::{decode_status, frame_status, grpc_response, trailers, RequestStream};
use crate::node::Node;
use crate::service::{client_api, fetch_session};

/// Serves the fetch session whose client messages arrive in `body`: a task runs the
/// session and hands each answer's chunks to the response body.
pub(super) fn answer_stream(node: Arc<Node>, body: Body, limit: usize) -> http::Response<Body> {
    let requests = RequestStream::<FetchSessionRequest>::new(body, limit);
    let (answers, receiver) = mpsc::channel(1);
    tokio::spawn(fetch_session::run(node, requests, answers, |answer| {
        grpc_frame::fetch_response_chunks(answer)
            .map_err(|error| Status::new(Code::Internal, error.to_string()))
    }));
    grpc_response(Body::new(SessionBody {
        chunks: VecDeque::new(),
        answers: receiver,
        trailers: None,
        ended: false,
    }))
}

/// Reads the one `FetchRequest` in `body`, runs the fetch and answers it.
pub(super) async fn answer(node: &Arc<Node>, body: Body, limit: usize) -> http::Response<Body> {
    let request = match read_request(body, limit).await {
        Ok(request) => request,
        Err(status) => return status.into_http(),
    };
    let response = client_api::fetch_response(node, request).await;
    match grpc_frame::fetch_response_chunks(response) {
        Ok(chunks) => grpc_response(Body::new(ChunkedBody {
            chunks: chunks.into(),
            trailers: Some(trailers(&Status::ok(""))),
        })),
        Err(error) => Status::new(Code::Internal, error.to_string()).into_http(),
    }
}

/// The body's one `FetchRequest`, or the status to refuse it with.
async fn read_request(mut body: Body, limit: usize) -> Result<FetchRequest, Status> {
    let mut chunks = Chunks::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            chunks.push(data, limit).map_err(frame_status)?;
        }
    }
    let message = chunks
        .take_message(limit)
        .map_err(frame_status)?
        .ok_or_else(|| Status::invalid_argument("the request carries no message"))?;
    FetchRequest::decode(message).map_err(|error| decode_status(&error))
}

/// A response body of ready chunks, then the trailers.
struct ChunkedBody {
    chunks: VecDeque<Bytes>,
    trailers: Option<HeaderMap>,
}

impl http_body::Body for ChunkedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if let Some(chunk) = this.chunks.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        Poll::Ready(
            this.trailers
                .take()
                .map(|trailers| Ok(Frame::trailers(trailers))),
        )
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty() && self.trailers.is_none()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        let length: usize = self.chunks.iter().map(Bytes::len).sum();
        http_body::SizeHint::with_exact(length as u64)
    }
}

/// A response body of a fetch session: each answer's chunks as the session task hands
/// them over, then the trailers (OK, or the status the session was refused or failed
/// with).
struct SessionBody {
    chunks: VecDeque<Bytes>,
    answers: mpsc::Receiver<Result<Vec<Bytes>, Status>>,
    trailers: Option<HeaderMap>,
    ended: bool,
}

impl http_body::Body for SessionBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        loop {
            if let Some(chunk) = this.chunks.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(chunk))));
            }
            if this.ended {
                return Poll::Ready(this.trailers.take().map(|map| Ok(Frame::trailers(map))));
            }
            match this.answers.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunks))) => this.chunks.extend(chunks),
                Poll::Ready(Some(Err(status))) => {
                    this.ended = true;
                    this.trailers = Some(trailers(&status));
                }
                Poll::Ready(None) => {
                    this.ended = true;
                    this.trailers
                        .get_or_insert_with(|| trailers(&Status::ok("")));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended && self.chunks.is_empty() && self.trailers.is_none()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[tokio::test]
    async fn a_chunked_body_yields_its_chunks_then_the_trailers() {
        let mut body = Body::new(ChunkedBody {
            chunks: vec![Bytes::from_static(b"ab"), Bytes::from_static(b"c")].into(),
            trailers: Some(trailers(&Status::ok(""))),
        });
        let mut data = Vec::new();
        let mut ended_with = None;
        while let Some(frame) = body.frame().await {
            match frame.unwrap().into_data() {
                Ok(chunk) => data.extend_from_slice(&chunk),
                Err(frame) => ended_with = frame.into_trailers().ok(),
            }
        }
        assert_eq!(data, b"abc");
        assert_eq!(ended_with.unwrap().get("grpc-status").unwrap(), "0");
    }
}
