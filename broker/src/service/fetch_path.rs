//! The fetch call, answered without copying the records (a tower layer in front of
//! tonic's router).
//!
//! tonic encodes a response message into one buffer, which for a fetch means copying
//! every fetched byte out of the page cache (or the segment's map) before the socket
//! copies it again: 16 % of the broker's CPU while a consumer read 2 GB (`perf`, see
//! `docs/BENCHMARKS.md` item 16). This layer takes `/strata.v1.ClientApi/Fetch` before
//! the router does, runs the same handler ([`client_api::fetch_response`]) and sends the
//! answer as chunks ([`grpc_frame::fetch_response_chunks`]): the records go to HTTP/2 as
//! the `Bytes` the log returned, and h2 writes a large data frame with a vectored write
//! instead of copying it. The bytes on the wire are exactly a gRPC message, so any gRPC
//! client reads them.
//!
//! The request side keeps tonic's rules and Strata's codes (reliability.md §5): a
//! `grpc-encoding` other than identity is `UNIMPLEMENTED`, a message over the decode
//! limit is `RESOURCE_EXHAUSTED` before it is buffered, a compressed flag without an
//! encoding is `INTERNAL` (as the gRPC spec says), and anything that is not one
//! well-formed `FetchRequest` is `INVALID_ARGUMENT`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use http_body::Frame;
use http_body_util::BodyExt;
use prost::Message;
use strata_proto::api::v1::FetchRequest;
use strata_proto::grpc_frame::{self, Chunks, FrameError, FETCH_PATH};
use tonic::body::Body;
use tonic::{Code, Status};

use super::client_api;
use crate::node::Node;

/// Puts [`FetchPath`] in front of a service (the server's router).
#[derive(Debug, Clone)]
pub struct FetchPathLayer {
    node: Arc<Node>,
    request_limit: usize,
}

impl FetchPathLayer {
    /// `request_limit` is the decode limit for the request message, as tonic's.
    pub fn new(node: Arc<Node>, request_limit: usize) -> FetchPathLayer {
        FetchPathLayer {
            node,
            request_limit,
        }
    }
}

impl<S> tower::Layer<S> for FetchPathLayer {
    type Service = FetchPath<S>;

    fn layer(&self, inner: S) -> FetchPath<S> {
        FetchPath {
            inner,
            node: Arc::clone(&self.node),
            request_limit: self.request_limit,
        }
    }
}

/// Answers fetch calls itself and passes every other call to `inner`.
#[derive(Debug, Clone)]
pub struct FetchPath<S> {
    inner: S,
    node: Arc<Node>,
    request_limit: usize,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S> tower::Service<http::Request<Body>> for FetchPath<S>
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
        if request.uri().path() != FETCH_PATH {
            return Box::pin(self.inner.call(request));
        }
        let node = Arc::clone(&self.node);
        let limit = self.request_limit;
        Box::pin(async move { Ok(answer(&node, request, limit).await) })
    }
}

async fn answer(
    node: &Arc<Node>,
    request: http::Request<Body>,
    limit: usize,
) -> http::Response<Body> {
    if let Some(status) = unsupported_encoding(request.headers()) {
        let mut response = status.into_http::<Body>();
        response
            .headers_mut()
            .insert("grpc-accept-encoding", HeaderValue::from_static("identity"));
        return response;
    }
    let request = match read_request(request.into_body(), limit).await {
        Ok(request) => request,
        Err(status) => return status.into_http(),
    };
    let response = client_api::fetch_response(node, request).await;
    match grpc_frame::fetch_response_chunks(response) {
        Ok(chunks) => chunked_response(chunks),
        Err(error) => Status::new(Code::Internal, error.to_string()).into_http(),
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

/// The request's one `FetchRequest`, or the status to refuse it with.
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
    FetchRequest::decode(message).map_err(|error| {
        Status::invalid_argument(format!("failed to decode Protobuf message: {error}"))
    })
}

fn frame_status(error: FrameError) -> Status {
    let code = match error {
        FrameError::TooLarge { .. } => Code::ResourceExhausted,
        FrameError::Compressed => Code::Internal,
        FrameError::Truncated { .. } | FrameError::TrailingBytes { .. } => Code::InvalidArgument,
    };
    Status::new(code, error.to_string())
}

fn chunked_response(chunks: Vec<Bytes>) -> http::Response<Body> {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let mut response = http::Response::new(Body::new(ChunkedBody {
        chunks: chunks.into(),
        trailers: Some(trailers),
    }));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    response
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use strata_proto::api::v1::client_api_server::ClientApiServer;
    use tonic::server::NamedService;

    use super::*;
    use crate::service::client_api::ClientApiService;

    #[test]
    fn the_path_is_the_generated_services_fetch() {
        let name = <ClientApiServer<ClientApiService> as NamedService>::NAME;
        assert_eq!(FETCH_PATH, format!("/{name}/Fetch"));
    }

    #[tokio::test]
    async fn a_chunked_body_yields_its_chunks_then_the_trailers() {
        let mut body =
            chunked_response(vec![Bytes::from_static(b"ab"), Bytes::from_static(b"c")]).into_body();
        let mut data = Vec::new();
        let mut trailers = None;
        while let Some(frame) = body.frame().await {
            match frame.unwrap().into_data() {
                Ok(chunk) => data.extend_from_slice(&chunk),
                Err(frame) => trailers = frame.into_trailers().ok(),
            }
        }
        assert_eq!(data, b"abc");
        assert_eq!(trailers.unwrap().get("grpc-status").unwrap(), "0");
    }
}
