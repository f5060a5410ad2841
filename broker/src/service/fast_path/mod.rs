//! Fetch and produce answered in front of tonic's router, without copying batches.
//!
//! tonic encodes every message into one buffer and decodes every message out of one
//! buffer. For the two calls that carry batches that is a copy of every byte on the
//! broker's side: fetched records copied out of the page cache (or the segment's map)
//! before the socket copies them again, 16 % of the broker's CPU while a consumer read
//! 2 GB; produced batches copied out of the HTTP/2 frames before they are written, 9 %
//! of the broker's CPU while producing, on the partition's one serial write path
//! (`perf`, `docs/bench/history.md` item 16). [`FastPathLayer`] is a tower layer that takes
//! these two methods before the router does and runs the same handlers with framing of
//! its own ([`strata_proto::grpc_frame`]):
//!
//! - [`fetch`]: the answer goes out as chunks, each partition's records the `Bytes` the
//!   log returned; h2 writes a data frame of more than 256 bytes with a vectored write.
//!   The fetch session's answers (`FetchStream`, [`crate::service::fetch_session`]) go
//!   out the same way, one after the other on one response.
//! - [`produce`]: requests are decoded from the frames as they arrive, so a batch that
//!   came in one frame is written from that frame; responses go out as they complete.
//!
//! The bytes on the wire are exactly gRPC's, so any gRPC peer talks to them (the
//! hostile-input tests use the generated tonic client and hand-made HTTP/2). The
//! requests are read with tonic's rules and Strata's codes (`docs/RELIABILITY.md`): a
//! `grpc-encoding` other than identity is `UNIMPLEMENTED`, a length prefix over the
//! decode limit is `RESOURCE_EXHAUSTED` before the message is buffered, a compressed flag
//! without an encoding is `INTERNAL` (as the gRPC spec says), and bytes that are not the
//! method's protobuf message are `INVALID_ARGUMENT`. Every other call goes to tonic.
//!
//! One exception, on the produce stream: a request over the decode limit whose fields
//! before the batch can be read from its first [`OVERSIZED_HEAD_BYTES`] bytes, and whose
//! length is at most [`OVERSIZED_SKIP_FACTOR`] times the limit, is refused alone
//! (`MESSAGE_TOO_LARGE` in its response, [`crate::service::produce`]); its bytes are
//! dropped as they arrive, never buffered, and the stream reads on. Any other oversized
//! message (a 4 GiB length prefix, a head that is not a produce request's) still ends
//! the call with `RESOURCE_EXHAUSTED`.

pub mod fetch;
pub mod produce;

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::{HeaderMap, HeaderValue};
use http_body::Body as _;
use prost::Message;
use strata_proto::grpc_frame::{Chunks, FrameError, FETCH_PATH, FETCH_STREAM_PATH, PRODUCE_PATH};
use tokio_stream::Stream;
use tonic::body::Body;
use tonic::{Code, Status};

use crate::node::Node;

/// Puts [`FastPath`] in front of a service (the server's router).
#[derive(Debug, Clone)]
pub struct FastPathLayer {
    node: Arc<Node>,
    request_limit: usize,
}

impl FastPathLayer {
    /// `request_limit` is the decode limit for one request message, as tonic's.
    pub fn new(node: Arc<Node>, request_limit: usize) -> FastPathLayer {
        FastPathLayer {
            node,
            request_limit,
        }
    }
}

impl<S> tower::Layer<S> for FastPathLayer {
    type Service = FastPath<S>;

    fn layer(&self, inner: S) -> FastPath<S> {
        FastPath {
            inner,
            node: Arc::clone(&self.node),
            request_limit: self.request_limit,
        }
    }
}

/// Answers fetch and produce calls itself and passes every other call to `inner`.
#[derive(Debug, Clone)]
pub struct FastPath<S> {
    inner: S,
    node: Arc<Node>,
    request_limit: usize,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S> tower::Service<http::Request<Body>> for FastPath<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<http::Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let path = request.uri().path();
        if path != FETCH_PATH && path != FETCH_STREAM_PATH && path != PRODUCE_PATH {
            return Box::pin(self.inner.call(request));
        }
        if let Some(status) = unsupported_encoding(request.headers()) {
            let mut response = status.into_http::<Body>();
            response
                .headers_mut()
                .insert("grpc-accept-encoding", HeaderValue::from_static("identity"));
            return Box::pin(async move { Ok(response) });
        }
        let node = Arc::clone(&self.node);
        let limit = self.request_limit;
        if path == FETCH_PATH {
            Box::pin(async move { Ok(fetch::answer(&node, request.into_body(), limit).await) })
        } else if path == FETCH_STREAM_PATH {
            let response = fetch::answer_stream(node, request.into_body(), limit);
            Box::pin(async move { Ok(response) })
        } else {
            let response = produce::answer(node, request.into_body(), limit);
            Box::pin(async move { Ok(response) })
        }
    }
}

/// How many leading bytes of an oversized produce request are read for its fields
/// before the batch (a topic name is at most 249 bytes; the other fields take at most
/// 30).
pub const OVERSIZED_HEAD_BYTES: usize = 512;

/// An oversized produce request is skipped (refused alone) only up to this many times
/// the decode limit; a longer length prefix is taken for garbage and ends the stream.
pub const OVERSIZED_SKIP_FACTOR: usize = 16;

/// What a streaming call's request messages decode into.
pub(super) trait InboundMessage: Sized {
    /// Whether a message over the decode limit may be refused alone
    /// ([`InboundMessage::oversized`]) instead of ending the call.
    const REFUSES_OVERSIZED_ALONE: bool = false;

    fn decode(message: Chunks) -> Result<Self, prost::DecodeError>;

    /// The item standing for a message of `length` bytes over the decode limit `limit`,
    /// from its first bytes `head`; `None` when they do not tell what it was (the call
    /// then ends with `RESOURCE_EXHAUSTED`).
    fn oversized(_head: &[u8], _length: u64, _limit: usize) -> Option<Self> {
        None
    }
}

impl InboundMessage for strata_proto::api::v1::FetchSessionRequest {
    fn decode(message: Chunks) -> Result<Self, prost::DecodeError> {
        <Self as Message>::decode(message)
    }
}

/// The messages of a streaming request body, decoded as their last byte arrives.
pub(super) struct RequestStream<M> {
    body: Body,
    chunks: Chunks,
    limit: usize,
    /// The length of an oversized message whose head is being waited for.
    oversized: Option<u64>,
    /// After the body's end or the first error: nothing more is read.
    ended: bool,
    message: PhantomData<fn() -> M>,
}

impl<M> RequestStream<M> {
    pub(super) fn new(body: Body, limit: usize) -> RequestStream<M> {
        RequestStream {
            body,
            chunks: Chunks::new(),
            limit,
            oversized: None,
            ended: false,
            message: PhantomData,
        }
    }

    /// The longest message refused alone rather than ending the call.
    fn skip_length_max(&self) -> u64 {
        self.limit.saturating_mul(OVERSIZED_SKIP_FACTOR) as u64
    }
}

impl<M: InboundMessage> RequestStream<M> {
    /// The next message, or the status ending the call; `None` when more bytes are
    /// needed.
    fn next_item(&mut self) -> Option<Result<M, Status>> {
        if let Some(length) = self.oversized {
            let skipped = self.chunks.skip_message(OVERSIZED_HEAD_BYTES)?;
            self.oversized = None;
            return Some(match M::oversized(&skipped.head, length, self.limit) {
                Some(item) => Ok(item),
                None => {
                    self.ended = true;
                    Err(frame_status(FrameError::TooLarge {
                        length,
                        limit: self.limit,
                    }))
                }
            });
        }
        match self.chunks.next_message(self.limit) {
            Ok(Some(message)) => {
                let decoded = M::decode(message);
                self.ended = decoded.is_err();
                Some(decoded.map_err(|error| decode_status(&error)))
            }
            Ok(None) => None,
            Err(FrameError::TooLarge { length, .. })
                if M::REFUSES_OVERSIZED_ALONE && length <= self.skip_length_max() =>
            {
                self.oversized = Some(length);
                self.next_item()
            }
            Err(error) => {
                self.ended = true;
                Some(Err(frame_status(error)))
            }
        }
    }
}

impl<M: InboundMessage> Stream for RequestStream<M> {
    type Item = Result<M, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.ended {
                return Poll::Ready(None);
            }
            if let Some(item) = this.next_item() {
                return Poll::Ready(Some(item));
            }
            match ready!(Pin::new(&mut this.body).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        this.chunks.append(data);
                    }
                }
                Some(Err(status)) => {
                    this.ended = true;
                    return Poll::Ready(Some(Err(status)));
                }
                None => {
                    this.ended = true;
                    if this.chunks.inside_message() {
                        return Poll::Ready(Some(Err(Status::invalid_argument(
                            "the stream ended inside a message",
                        ))));
                    }
                }
            }
        }
    }
}

/// `UNIMPLEMENTED` for a `grpc-encoding` other than identity (none is negotiated).
fn unsupported_encoding(headers: &HeaderMap) -> Option<Status> {
    let encoding = headers.get("grpc-encoding")?;
    (encoding.as_bytes() != b"identity").then(|| {
        Status::unimplemented(format!(
            "Content is compressed with `{}` which isn't supported",
            String::from_utf8_lossy(encoding.as_bytes())
        ))
    })
}

/// The status a framing error is refused with.
fn frame_status(error: FrameError) -> Status {
    let code = match error {
        FrameError::TooLarge { .. } => Code::ResourceExhausted,
        FrameError::Compressed => Code::Internal,
        FrameError::Truncated { .. } | FrameError::TrailingBytes { .. } => Code::InvalidArgument,
    };
    Status::new(code, error.to_string())
}

/// A protobuf message that does not decode.
fn decode_status(error: &prost::DecodeError) -> Status {
    Status::invalid_argument(format!("failed to decode Protobuf message: {error}"))
}

/// A `200 OK` gRPC response with `body`.
fn grpc_response(body: Body) -> http::Response<Body> {
    let mut response = http::Response::new(body);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    response
}

/// Trailers that end a call with `status`.
fn trailers(status: &Status) -> HeaderMap {
    let mut trailers = HeaderMap::new();
    if status.add_header(&mut trailers).is_err() {
        // Only a message that cannot be a header value fails; the code alone still can.
        trailers.insert("grpc-status", HeaderValue::from(status.code() as i32));
    }
    trailers
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use strata_proto::api::v1::client_api_server::ClientApiServer;
    use tonic::server::NamedService;

    use super::*;
    use crate::service::client_api::ClientApiService;

    #[test]
    fn the_paths_are_the_generated_services_methods() {
        let name = <ClientApiServer<ClientApiService> as NamedService>::NAME;
        assert_eq!(FETCH_PATH, format!("/{name}/Fetch"));
        assert_eq!(FETCH_STREAM_PATH, format!("/{name}/FetchStream"));
        assert_eq!(PRODUCE_PATH, format!("/{name}/Produce"));
    }

    #[test]
    fn trailers_carry_the_code_and_message() {
        let map = trailers(&Status::resource_exhausted("too big"));
        assert_eq!(map.get("grpc-status").unwrap(), "8");
        assert_eq!(map.get("grpc-message").unwrap(), "too%20big"); // percent-encoded
        let back = Status::from_header_map(&map).unwrap();
        assert_eq!(
            (back.code(), back.message()),
            (Code::ResourceExhausted, "too big")
        );
        assert_eq!(trailers(&Status::ok("")).get("grpc-status").unwrap(), "0");
    }
}
