//! Transport-level refusals with the status codes of `docs/RELIABILITY.md` (inputs 9, 12).
//!
//! tonic refuses a message over the decode limit with `OUT_OF_RANGE` and an undecodable
//! protobuf with `INTERNAL`. Both refusals happen before any allocation or handler call,
//! which is what matters; but clients and gRPC tooling expect `RESOURCE_EXHAUSTED` (#9)
//! and `INVALID_ARGUMENT` (#12). Strata's handlers never answer with either original
//! code themselves (broker errors travel in the response's `Error` field), so the
//! rewrite cannot hide a real internal error: `INTERNAL` is rewritten only when its
//! message says the protobuf could not be decoded.

use http::{HeaderValue, Response};
use tonic::{Code, Status};

const GRPC_STATUS: &str = "grpc-status";
const GRPC_MESSAGE: &str = "grpc-message";
/// The prefix of tonic-prost's decode error message.
const DECODE_FAILURE: &str = "failed to decode";

/// The code Strata answers for a transport refusal tonic reported with `code`.
fn rewritten(code: Code, message: &str) -> Option<Code> {
    match code {
        Code::OutOfRange => Some(Code::ResourceExhausted),
        Code::Internal if message.contains(DECODE_FAILURE) => Some(Code::InvalidArgument),
        _ => None,
    }
}

/// For statuses that travel in a stream (the produce stream's request errors).
pub fn rewrite_status(status: Status) -> Status {
    match rewritten(status.code(), status.message()) {
        Some(code) => Status::new(code, status.message().to_owned()),
        None => status,
    }
}

/// For trailers-only responses (a unary request refused while decoding): the status is
/// in the response headers.
pub fn rewrite_response<B>(mut response: Response<B>) -> Response<B> {
    let headers = response.headers();
    let Some(code) = headers
        .get(GRPC_STATUS)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<i32>().ok())
        .map(Code::from_i32)
    else {
        return response;
    };
    let message = headers
        .get(GRPC_MESSAGE)
        .and_then(|value| value.to_str().ok())
        .map(percent_decode)
        .unwrap_or_default();
    if let Some(new_code) = rewritten(code, &message) {
        response
            .headers_mut()
            .insert(GRPC_STATUS, HeaderValue::from(new_code as i32));
    }
    response
}

/// gRPC percent-encodes `grpc-message`; only the decode-failure prefix matters here, so
/// a lossy decode is enough.
fn percent_decode(text: &str) -> String {
    text.replace("%20", " ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn only_transport_refusals_are_rewritten() {
        assert_eq!(
            rewrite_status(Status::out_of_range("decoded message length too large")).code(),
            Code::ResourceExhausted
        );
        assert_eq!(
            rewrite_status(Status::internal("failed to decode Protobuf message")).code(),
            Code::InvalidArgument
        );
        assert_eq!(
            rewrite_status(Status::internal("task panicked")).code(),
            Code::Internal
        );
        let response = Response::builder()
            .header(GRPC_STATUS, "11")
            .header(GRPC_MESSAGE, "decoded%20message%20length%20too%20large")
            .body(())
            .unwrap();
        assert_eq!(rewrite_response(response).headers()[GRPC_STATUS], "8");
        let untouched = Response::builder()
            .header(GRPC_STATUS, "5")
            .body(())
            .unwrap();
        assert_eq!(rewrite_response(untouched).headers()[GRPC_STATUS], "5");
    }
}
