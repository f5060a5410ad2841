#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use strata_proto::api::v1::Error;
use strata_proto::record::{BatchBuilder, BatchSettings, Record};

use super::*;

#[test]
fn only_known_unary_paths_are_timed_by_the_layer() {
    assert_eq!(unary_rpc("/strata.v1.ClientApi/Metadata"), Some("metadata"));
    assert_eq!(
        unary_rpc("/strata.v1.GroupApi/OffsetCommit"),
        Some("offset_commit")
    );
    // Timed per request elsewhere, or streams.
    for path in [
        strata_proto::grpc_frame::PRODUCE_PATH,
        strata_proto::grpc_frame::FETCH_PATH,
        strata_proto::grpc_frame::FETCH_STREAM_PATH,
        "/strata.v1.Replication/ReplicaFetch",
        "/strata.v1.ClientApi/MadeUp",
        "/",
    ] {
        assert_eq!(unary_rpc(path), None, "{path}");
    }
}

#[test]
fn codes_are_named() {
    assert_eq!(error_code_label(ErrorCode::None as i32), "OK");
    assert_eq!(error_code_label(ErrorCode::NotLeader as i32), "NOT_LEADER");
    assert_eq!(error_code_label(9_999), "UNKNOWN_SERVER_ERROR");
    let mut headers = http::HeaderMap::new();
    assert_eq!(grpc_code_label(&headers), "OK");
    headers.insert("grpc-status", http::HeaderValue::from_static("3"));
    assert_eq!(grpc_code_label(&headers), "INVALID_ARGUMENT");
    headers.insert("grpc-status", http::HeaderValue::from_static("99"));
    assert_eq!(grpc_code_label(&headers), "UNKNOWN");
}

fn batch(records: usize) -> Bytes {
    let mut builder = BatchBuilder::new(BatchSettings::default());
    for index in 0..records {
        builder
            .append(&Record::from_value(index as i64, "value"))
            .unwrap();
    }
    builder.build().unwrap()
}

#[test]
fn records_are_counted_from_the_batch_headers() {
    let one = batch(3);
    assert_eq!(batch_record_count(&one), 3);
    assert_eq!(batch_record_count(b"not a batch"), 0);
    let mut two = one.to_vec();
    two.extend_from_slice(&batch(4));
    assert_eq!(record_count(&two), 7);
    // A torn second batch counts nothing of its own.
    let torn = &two[..two.len() - 5];
    assert_eq!(record_count(torn), 3);
    assert_eq!(record_count(&[]), 0);
}

#[test]
fn a_fetch_counts_bytes_and_records_out_and_its_first_error() {
    let recorder = crate::admin::metrics::local_recorder().unwrap();
    let handle = recorder.handle();
    let records = batch(2);
    let partition = |topic: &str, code: ErrorCode, records: Bytes| FetchedPartition {
        topic: topic.to_owned(),
        partition: 0,
        error: Some(Error::new(code, String::new())),
        high_watermark: 0,
        log_start_offset: 0,
        records,
        fetch_offset: 0,
    };
    metrics::with_local_recorder(&recorder, || {
        fetched(
            &[
                partition("t", ErrorCode::None, records.clone()),
                partition("u", ErrorCode::OffsetOutOfRange, Bytes::new()),
            ],
            Instant::now(),
        );
    });
    let text = handle.render();
    assert!(
        text.contains("strata_records_out_total{topic=\"t\"} 2\n"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "strata_bytes_out_total{{topic=\"t\"}} {}\n",
            records.len()
        )),
        "{text}"
    );
    assert!(!text.contains("topic=\"u\""), "{text}");
    assert!(
        text.contains("strata_requests_total{rpc=\"fetch\",code=\"OFFSET_OUT_OF_RANGE\"} 1\n"),
        "{text}"
    );
}
