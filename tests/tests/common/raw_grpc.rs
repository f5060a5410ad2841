//! gRPC calls written by hand over HTTP/2 (h2), for the hostile inputs the generated
//! client cannot send: a length prefix that lies, bytes that are not protobuf, a
//! `grpc-encoding` the broker does not support.
//!
//! A gRPC message on the wire is a 1-byte compressed flag, a 4-byte big-endian length and
//! the body; the call's outcome is the `grpc-status` header (trailers-only answer) or
//! trailer.

use bytes::{BufMut, Bytes, BytesMut};
use strata_tests::broker_process::BrokerProcess;
use tonic::Code;

use super::bounded;

/// The status a raw call ended with.
#[derive(Debug)]
pub struct RawStatus {
    pub code: Code,
    pub message: String,
}

/// One framed gRPC message whose length prefix says `claimed_length`.
pub fn frame(compressed: bool, claimed_length: u32, body: &[u8]) -> Bytes {
    let mut framed = BytesMut::with_capacity(5 + body.len());
    framed.put_u8(u8::from(compressed));
    framed.put_u32(claimed_length);
    framed.put_slice(body);
    framed.freeze()
}

/// One framed gRPC message with an honest length prefix.
pub fn honest_frame(body: &[u8]) -> Bytes {
    frame(false, u32::try_from(body.len()).expect("small body"), body)
}

/// Sends `body` as the whole request stream of `method` (e.g. `Fetch`) with the extra
/// request headers, and returns the status the broker ended the call with.
pub async fn call(
    broker: &BrokerProcess,
    method: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> RawStatus {
    bounded(
        "raw gRPC call",
        call_unbounded(broker, method, headers, body),
    )
    .await
}

async fn call_unbounded(
    broker: &BrokerProcess,
    method: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> RawStatus {
    let tcp = tokio::net::TcpStream::connect(broker.address())
        .await
        .expect("connect");
    let (sender, connection) = h2::client::handshake(tcp).await.expect("h2 handshake");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut sender = sender.ready().await.expect("h2 ready");
    let mut request = http::Request::builder()
        .method("POST")
        .uri(format!(
            "http://{}/strata.v1.ClientApi/{method}",
            broker.address()
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(()).expect("request");
    let (response, mut stream) = sender.send_request(request, false).expect("send headers");
    stream.send_data(body, true).expect("send body");
    let response = response.await.expect("response headers");
    let (parts, mut body) = response.into_parts();
    if let Some(status) = status_of(&parts.headers) {
        return status;
    }
    while let Some(chunk) = body.data().await {
        let Ok(chunk) = chunk else { break };
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    let trailers = body.trailers().await.expect("trailers").unwrap_or_default();
    status_of(&trailers).expect("a grpc-status header or trailer")
}

fn status_of(headers: &http::HeaderMap) -> Option<RawStatus> {
    let code = headers.get("grpc-status")?;
    let message = headers
        .get("grpc-message")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    Some(RawStatus {
        code: Code::from_bytes(code.as_bytes()),
        message,
    })
}
