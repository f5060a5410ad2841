//! #9, #10, #12: inputs the gRPC transport refuses before the broker sees a request.

use bytes::Bytes;
use prost::Message;
use strata_proto::api::v1::{ErrorCode, FetchSessionRequest};
use tonic::Code;

use crate::common::raw_grpc::{self, frame, honest_frame};
use crate::common::{fetch_partition, produce_once, produce_request};
use crate::fixture::{fetch_request, fixture, Fixture, TOPIC};
use crate::forge::overlong_varint;

/// An encoded request of `method` (`Fetch`, or `FetchStream`'s first message granting
/// one answer) for the fixture's topic, for raw calls. It asks for an offset far past
/// the end, so a fetch session answers it once (OFFSET_OUT_OF_RANGE) and ends.
fn fetch_request_bytes(method: &str) -> Vec<u8> {
    let fetch = fetch_request(fetch_partition(TOPIC, 0, 1 << 40));
    if method == "FetchStream" {
        FetchSessionRequest {
            fetch: Some(fetch),
            grant: 1,
        }
        .encode_to_vec()
    } else {
        fetch.encode_to_vec()
    }
}

/// The methods that take a FetchRequest.
const FETCH_METHODS: [&str; 2] = ["Fetch", "FetchStream"];

/// #9's oversized messages and the statuses they got: a length prefix of 4 GiB with a
/// 10-byte body on Produce, Fetch and FetchStream.
async fn oversized_message_statuses(fixture: &Fixture) -> Vec<(String, Code)> {
    let mut statuses = Vec::new();
    for method in ["Produce", "Fetch", "FetchStream"] {
        let body = frame(false, u32::MAX, &[0; 10]);
        let status = raw_grpc::call(&fixture.broker, method, &[], body).await;
        statuses.push((format!("4 GiB prefix on {method}: {status:?}"), status.code));
    }
    statuses
}

/// A 2 MiB produce request over the stream (the decode limit is message_max_bytes +
/// 64 KiB = 1 MiB + 64 KiB): refused alone with MESSAGE_TOO_LARGE in its response, the
/// stream still open (`resource_bounds.rs` checks the requests around it).
async fn assert_oversized_produce_refused_alone(fixture: &mut Fixture) {
    let records = Bytes::from(vec![0u8; 2 << 20]);
    let request = produce_request(1, TOPIC, 0, records);
    let response = produce_once(&mut fixture.client, request)
        .await
        .expect("a 2 MiB produce request is answered, not the stream ended");
    assert_eq!(
        response.error.as_ref().map(|error| error.error_code()),
        Some(ErrorCode::MessageTooLarge),
        "{response:?}"
    );
    assert_eq!(response.base_offset, -1);
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_09_message_over_the_decode_limit_is_refused_before_decoding() {
    let mut fixture = fixture(&[]).await;
    let before = fixture.state().await;
    assert_oversized_produce_refused_alone(&mut fixture).await;
    for (input, code) in oversized_message_statuses(&fixture).await {
        // OUT_OF_RANGE is what tonic answers for its decode limit; the test below
        // holds the broker to RESOURCE_EXHAUSTED.
        assert!(
            matches!(code, Code::ResourceExhausted | Code::OutOfRange),
            "{input}"
        );
    }
    fixture
        .assert_unchanged(&before, "oversized messages")
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_09_message_over_the_decode_limit_is_resource_exhausted() {
    let fixture = fixture(&[]).await;
    for (input, code) in oversized_message_statuses(&fixture).await {
        assert_eq!(code, Code::ResourceExhausted, "{input}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_10_unknown_grpc_encoding_is_unimplemented() {
    let mut fixture = fixture(&[]).await;
    let before = fixture.state().await;
    for method in FETCH_METHODS {
        let body = fetch_request_bytes(method);
        for encoding in ["br", "gzip", "x-bogus"] {
            let framed = frame(true, u32::try_from(body.len()).unwrap(), &body);
            let headers = [("grpc-encoding", encoding)];
            let status = raw_grpc::call(&fixture.broker, method, &headers, framed).await;
            assert_eq!(
                status.code,
                Code::Unimplemented,
                "{method} {encoding}: {status:?}"
            );
        }
        // The same request, uncompressed: the raw client itself is sound.
        let status = raw_grpc::call(&fixture.broker, method, &[], honest_frame(&body)).await;
        assert_eq!(status.code, Code::Ok, "{method}: {status:?}");
    }
    fixture.assert_unchanged(&before, "unknown encodings").await;
}

/// #12's malformed protobuf, sent as Fetch and FetchStream requests, and the statuses
/// they got.
async fn malformed_protobuf_statuses(fixture: &Fixture) -> Vec<(String, Code)> {
    let mut deep_groups = vec![0x2b; 200]; // field 5, start group, 200 deep
    deep_groups.extend(vec![0x2c; 200]); // and their ends
    let mut overlong = vec![0x08]; // field 1 (max_wait_ms), varint …
    overlong.extend(overlong_varint());
    let inputs: [(&str, Vec<u8>); 5] = [
        ("bad wire type", vec![0x0f, 0x00]),
        ("truncated varint", vec![0x08, 0xff]),
        ("overlong varint", overlong),
        ("nesting over 100", deep_groups),
        // field 99, length-delimited, claims 1 GiB with 3 bytes present.
        (
            "huge unknown field",
            vec![0x9a, 0x06, 0x80, 0x80, 0x80, 0x80, 0x04, 1, 2, 3],
        ),
    ];
    let mut statuses = Vec::new();
    for method in FETCH_METHODS {
        for (input, body) in &inputs {
            let status = raw_grpc::call(&fixture.broker, method, &[], honest_frame(body)).await;
            statuses.push((format!("{method} {input}: {status:?}"), status.code));
        }
    }
    statuses
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_12_malformed_protobuf_is_a_typed_error_without_a_panic() {
    let mut fixture = fixture(&[]).await;
    let before = fixture.state().await;
    for (input, code) in malformed_protobuf_statuses(&fixture).await {
        // INTERNAL is tonic's (and gRPC's) code for an unparsable request; the test
        // below holds the broker to INVALID_ARGUMENT (hostile input 12).
        assert!(
            matches!(code, Code::InvalidArgument | Code::Internal),
            "{input}"
        );
    }
    // The broker is still there and answers (state() calls it).
    fixture
        .assert_unchanged(&before, "malformed protobuf")
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fetch_session_messages_out_of_place_are_invalid_argument() {
    let mut fixture = fixture(&[]).await;
    let before = fixture.state().await;
    let no_fetch = FetchSessionRequest {
        fetch: None,
        grant: 1,
    }
    .encode_to_vec();
    let status = raw_grpc::call(&fixture.broker, "FetchStream", &[], honest_frame(&no_fetch)).await;
    assert_eq!(
        status.code,
        Code::InvalidArgument,
        "first message without a fetch: {status:?}"
    );
    // A first message granting nothing, then one carrying a second fetch.
    let fetch = Some(fetch_request(fetch_partition(TOPIC, 0, 0)));
    let mut body = honest_frame(
        &FetchSessionRequest {
            fetch: fetch.clone(),
            grant: 0,
        }
        .encode_to_vec(),
    )
    .to_vec();
    body.extend_from_slice(&honest_frame(
        &FetchSessionRequest { fetch, grant: 1 }.encode_to_vec(),
    ));
    let status = raw_grpc::call(&fixture.broker, "FetchStream", &[], Bytes::from(body)).await;
    assert_eq!(
        status.code,
        Code::InvalidArgument,
        "a second fetch: {status:?}"
    );
    fixture
        .assert_unchanged(&before, "fetch session messages")
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_12_malformed_protobuf_is_invalid_argument() {
    let fixture = fixture(&[]).await;
    for (input, code) in malformed_protobuf_statuses(&fixture).await {
        assert_eq!(code, Code::InvalidArgument, "{input}");
    }
}
