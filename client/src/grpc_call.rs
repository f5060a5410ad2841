//! The HTTP/2 side of the gRPC calls the client makes by hand ([`crate::fetch_call`],
//! [`crate::produce_call`]): starting a call over a tonic [`Channel`] and reading the
//! status it ended with, as gRPC's HTTP/2 mapping says. The messages themselves are
//! framed with [`strata_proto::grpc_frame`].

use std::time::Duration;

use http::HeaderMap;
use tonic::body::Body;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tower::ServiceExt;

/// A call whose response headers have arrived.
pub(crate) struct Started {
    pub(crate) headers: HeaderMap,
    pub(crate) body: Body,
}

/// Sends the request headers of `path` and `body` (with a `grpc-timeout` when given) and
/// waits for the response headers. A trailers-only answer with an error is that error.
pub(crate) async fn start(
    channel: Channel,
    path: &'static str,
    body: Body,
    timeout: Option<Duration>,
) -> Result<Started, Status> {
    let mut request = http::Request::post(path)
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header(http::header::TE, "trailers");
    if let Some(timeout) = timeout {
        request = request.header("grpc-timeout", grpc_timeout(timeout));
    }
    let request = request
        .body(body)
        .map_err(|error| Status::internal(format!("building the request of {path}: {error}")))?;
    let response = channel
        .oneshot(request)
        .await
        .map_err(|error| Status::from_error(error.into()))?;
    let (parts, body) = response.into_parts();
    if parts.status != http::StatusCode::OK {
        return Err(http_status(parts.status));
    }
    match Status::from_header_map(&parts.headers) {
        Some(status) if status.code() != Code::Ok => Err(status),
        _ => Ok(Started {
            headers: parts.headers,
            body,
        }),
    }
}

/// The status a call ended with: the trailers' `grpc-status`, or the headers' for a
/// trailers-only answer. `Ok` only for an explicit `OK`.
pub(crate) fn end_status(trailers: Option<&HeaderMap>, headers: &HeaderMap) -> Result<(), Status> {
    let status = trailers
        .and_then(Status::from_header_map)
        .or_else(|| Status::from_header_map(headers));
    match status {
        Some(status) if status.code() == Code::Ok => Ok(()),
        Some(status) => Err(status),
        None => Err(Status::internal("the call ended without a grpc-status")),
    }
}

/// gRPC's `grpc-timeout` value: at most 8 digits and a unit.
fn grpc_timeout(timeout: Duration) -> String {
    let millis = timeout.as_millis();
    if millis <= 99_999_999 {
        format!("{millis}m")
    } else {
        format!("{}S", timeout.as_secs().min(99_999_999))
    }
}

/// A non-200 answer, mapped as gRPC's HTTP-to-status table says.
fn http_status(status: http::StatusCode) -> Status {
    let code = match status.as_u16() {
        400 => Code::Internal,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::Unimplemented,
        429 | 502..=504 => Code::Unavailable,
        _ => Code::Unknown,
    };
    Status::new(code, format!("answered with HTTP status {status}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use http::HeaderValue;

    use super::*;

    #[test]
    fn timeouts_fit_grpc_timeouts_eight_digits() {
        assert_eq!(grpc_timeout(Duration::from_millis(30_500)), "30500m");
        assert_eq!(grpc_timeout(Duration::from_secs(200_000)), "200000S");
        assert_eq!(grpc_timeout(Duration::MAX), "99999999S");
    }

    #[test]
    fn the_end_status_comes_from_the_trailers_or_a_trailers_only_answer() {
        let mut ok = HeaderMap::new();
        ok.insert("grpc-status", HeaderValue::from_static("0"));
        let mut failed = HeaderMap::new();
        failed.insert("grpc-status", HeaderValue::from_static("14"));
        let none = HeaderMap::new();
        assert!(end_status(Some(&ok), &none).is_ok());
        assert!(end_status(None, &ok).is_ok());
        assert_eq!(
            end_status(Some(&failed), &none).unwrap_err().code(),
            Code::Unavailable
        );
        assert_eq!(end_status(None, &none).unwrap_err().code(), Code::Internal);
        assert_eq!(
            http_status(http::StatusCode::NOT_FOUND).code(),
            Code::Unimplemented
        );
    }
}
