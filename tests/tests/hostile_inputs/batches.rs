//! #13–#21: produced record batches that are damaged, malformed or too large.

use bytes::Bytes;
use strata_proto::api::v1::ErrorCode;
use strata_proto::record::{
    BatchHeader, BatchSettings, Compression, Record, BATCH_LENGTH_PREFIX_BYTES,
};

use crate::common::{batch, fetch_all, latest_offset, now_ms, produce_ok};
use crate::fixture::{fixture, TOPIC};
use crate::forge::{
    forged, hand_record, hand_section, overlong_varint, valid_batch, varint, zstd_rle_bomb,
    CRC_BYTES,
};

#[tokio::test(flavor = "multi_thread")]
async fn hostile_13_wrong_crc_is_corrupt_message_and_appends_nothing() {
    let mut fixture = fixture(&[]).await;
    let mut wrong_crc = valid_batch().to_vec();
    wrong_crc[CRC_BYTES.start] ^= 0xff;
    let mut damaged_value = valid_batch().to_vec();
    let last = damaged_value.len() - 2;
    damaged_value[last] ^= 0x01;
    for (input, bytes) in [("wrong CRC", wrong_crc), ("damaged value", damaged_value)] {
        let error = fixture
            .assert_produce_refused(input, 0, bytes.into(), ErrorCode::CorruptMessage)
            .await;
        assert!(error.retriable, "{input}: CORRUPT_MESSAGE is retriable");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_14_batch_length_negative_too_large_or_not_the_real_size_is_invalid_record() {
    let mut fixture = fixture(&[]).await;
    let real = i32::try_from(valid_batch().len() - BATCH_LENGTH_PREFIX_BYTES).unwrap();
    let with_length = |length: i32| forged(None, |header| header.batch_length = length);
    let mut two_batches = valid_batch().to_vec();
    two_batches.extend_from_slice(&valid_batch());
    let inputs: [(&str, Bytes); 7] = [
        ("length -1", with_length(-1)),
        ("length i32::MIN", with_length(i32::MIN)),
        ("length over the bytes present", with_length(real + 100)),
        ("length one short", with_length(real - 1)),
        ("two batches in one request", two_batches.into()),
        ("ten bytes", Bytes::from(vec![0u8; 10])),
        ("no bytes", Bytes::new()),
    ];
    for (input, bytes) in inputs {
        fixture
            .assert_produce_refused(input, 0, bytes, ErrorCode::InvalidRecord)
            .await;
    }
    // A length above message_max_bytes fails the size check, which comes first (and
    // also allocates nothing).
    fixture
        .assert_produce_refused(
            "length i32::MAX",
            0,
            with_length(i32::MAX),
            ErrorCode::MessageTooLarge,
        )
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_15_record_counts_beyond_the_bytes_present_are_invalid_record() {
    let mut fixture = fixture(&[]).await;
    let ten_million_headers = hand_record(0, &varint(-1), &varint(10_000_000));
    let single = |header: &mut BatchHeader| {
        header.record_count = 1;
        header.last_offset_delta = 0;
    };
    let inputs: [(&str, Bytes); 3] = [
        (
            "count 2^31 with 3 records",
            forged(None, |header| {
                header.record_count = i32::MIN; // 0x8000_0000
                header.last_offset_delta = i32::MAX;
            }),
        ),
        (
            "count i32::MAX with 3 records",
            forged(None, |header| {
                header.record_count = i32::MAX;
                header.last_offset_delta = i32::MAX - 1;
            }),
        ),
        (
            "10^7 headers claimed, none present",
            forged(Some(&ten_million_headers), single),
        ),
    ];
    for (input, bytes) in inputs {
        fixture
            .assert_produce_refused(input, 0, bytes, ErrorCode::InvalidRecord)
            .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_16_overlong_varints_and_negative_lengths_are_invalid_record() {
    let mut fixture = fixture(&[]).await;
    // The forging itself is sound: hand-written records with a valid CRC are accepted.
    let control = forged(Some(&hand_section([0, 1, 2])), |_| {});
    produce_ok(&mut fixture.client, TOPIC, 1, control).await;

    let single = |header: &mut BatchHeader| {
        header.record_count = 1;
        header.last_offset_delta = 0;
    };
    let mut overlong_record_length = overlong_varint();
    overlong_record_length.extend_from_slice(&hand_record(0, &varint(-1), &varint(0))[1..]);
    let overlong_key_length = hand_record(0, &overlong_varint(), &varint(0));
    let key_length_minus_2 = hand_record(0, &varint(-2), &varint(0));
    let mut null_header_key = varint(1);
    null_header_key.extend_from_slice(&varint(-1));
    null_header_key.extend_from_slice(&varint(-1));
    let null_header_key = hand_record(0, &varint(-1), &null_header_key);
    let inputs: [(&str, Vec<u8>); 4] = [
        ("11-byte record length", overlong_record_length),
        ("11-byte key length", overlong_key_length),
        ("key length -2", key_length_minus_2),
        ("header key length -1", null_header_key),
    ];
    for (input, section) in inputs {
        let bytes = forged(Some(&section), single);
        fixture
            .assert_produce_refused(input, 0, bytes, ErrorCode::InvalidRecord)
            .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_17_offsets_chosen_by_the_client_are_invalid_record_or_ignored() {
    let mut fixture = fixture(&[]).await;
    let inputs: [(&str, Bytes); 4] = [
        (
            "last_offset_delta 5 for 3 records",
            forged(None, |header| header.last_offset_delta = 5),
        ),
        (
            "last_offset_delta 1 for 3 records",
            forged(None, |header| header.last_offset_delta = 1),
        ),
        (
            "offset deltas 0, 2, 4",
            forged(Some(&hand_section([0, 2, 4])), |_| {}),
        ),
        (
            "offset deltas 0, 2, 1",
            forged(Some(&hand_section([0, 2, 1])), |_| {}),
        ),
    ];
    for (input, bytes) in inputs {
        fixture
            .assert_produce_refused(input, 0, bytes, ErrorCode::InvalidRecord)
            .await;
    }
    // A base offset chosen by the client is ignored: the leader assigns the log end.
    let log_end = latest_offset(&mut fixture.client, TOPIC, 0).await;
    let chosen = forged(None, |header| header.base_offset.0 = 1_000_000);
    let base_offset = produce_ok(&mut fixture.client, TOPIC, 0, chosen).await;
    assert_eq!(base_offset, log_end);
    let records = fetch_all(&mut fixture.client, TOPIC, 0).await;
    let offsets: Vec<i64> = records.iter().map(|record| record.offset.0).collect();
    assert_eq!(offsets, (0..log_end + 3).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_18_unknown_magic_compression_or_attribute_bits_are_refused() {
    let mut fixture = fixture(&[]).await;
    let with_attributes = |attributes: i16| forged(None, |header| header.attributes = attributes);
    let inputs: [(&str, Bytes, ErrorCode); 9] = [
        (
            "magic 1",
            forged(None, |header| header.magic = 1),
            ErrorCode::UnsupportedVersion,
        ),
        (
            "magic 3",
            forged(None, |header| header.magic = 3),
            ErrorCode::UnsupportedVersion,
        ),
        (
            "compression id 5",
            with_attributes(5),
            ErrorCode::InvalidRecord,
        ),
        (
            "compression id 7",
            with_attributes(7),
            ErrorCode::InvalidRecord,
        ),
        (
            "gzip (not supported)",
            with_attributes(1),
            ErrorCode::InvalidRecord,
        ),
        (
            "snappy (not supported)",
            with_attributes(2),
            ErrorCode::InvalidRecord,
        ),
        (
            "reserved bit 6",
            with_attributes(1 << 6),
            ErrorCode::InvalidRecord,
        ),
        (
            "reserved bit 12",
            with_attributes(1 << 12),
            ErrorCode::InvalidRecord,
        ),
        (
            "reserved bit 15",
            with_attributes(i16::MIN),
            ErrorCode::InvalidRecord,
        ),
    ];
    for (input, bytes, expected) in inputs {
        fixture
            .assert_produce_refused(input, 0, bytes, expected)
            .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_19_zstd_bomb_is_message_too_large() {
    let mut fixture = fixture(&[]).await;
    // 4 KiB that expand to 128 MiB, above the broker's decompression cap.
    let bomb = zstd_rle_bomb(1_024);
    assert!(bomb.len() <= 4 * 1024 + 6);
    let bytes = forged(Some(&bomb), |header| {
        header.attributes = Compression::Zstd.id();
        header.record_count = 1;
        header.last_offset_delta = 0;
    });
    fixture
        .assert_produce_refused("zstd bomb", 0, bytes, ErrorCode::MessageTooLarge)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_20_record_over_message_max_bytes_is_message_too_large_never_truncated() {
    let mut fixture = fixture(&["--message-max-bytes", "65536"]).await;
    let record = Record::from_value(now_ms(), vec![7u8; 100 * 1024]);
    let plain = batch(std::slice::from_ref(&record), BatchSettings::default());
    let zstd = batch(
        std::slice::from_ref(&record),
        BatchSettings {
            compression: Compression::Zstd,
            ..BatchSettings::default()
        },
    );
    assert!(zstd.len() < 65_536, "the compressed batch itself is small");
    let inputs = [("100 KiB batch", plain), ("100 KiB record, zstd", zstd)];
    for (input, bytes) in inputs {
        fixture
            .assert_produce_refused(input, 0, bytes, ErrorCode::MessageTooLarge)
            .await;
    }
    // Just under the limit: accepted and stored whole.
    let value = vec![9u8; 60 * 1024];
    let fits = batch(
        &[Record::from_value(now_ms(), value.clone())],
        BatchSettings::default(),
    );
    let base_offset = produce_ok(&mut fixture.client, TOPIC, 0, fits).await;
    let records = fetch_all(&mut fixture.client, TOPIC, 0).await;
    let stored = records.iter().find(|r| r.offset.0 == base_offset).unwrap();
    assert_eq!(stored.value.as_deref(), Some(&value[..]));
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_21_timestamps_below_minus_one_or_far_in_the_future_are_invalid_timestamp() {
    let mut fixture = fixture(&[]).await;
    const YEAR_9999_MS: i64 = 253_402_300_799_000;
    const TWO_HOURS_MS: i64 = 2 * 3_600_000;
    let at = |timestamp_ms: i64| {
        forged(None, |header| {
            header.base_timestamp = timestamp_ms;
            header.max_timestamp = timestamp_ms;
        })
    };
    let built = |timestamp_ms| {
        let record = Record::from_value(timestamp_ms, Bytes::from_static(b"v"));
        batch(&[record], BatchSettings::default())
    };
    let inputs: [(&str, Bytes); 5] = [
        ("timestamp -5", at(-5)),
        ("timestamp i64::MIN", at(i64::MIN)),
        ("year 9999", built(YEAR_9999_MS)),
        ("two hours ahead", built(now_ms() + TWO_HOURS_MS)),
        (
            "max_timestamp above every record",
            forged(None, |header| header.max_timestamp += 1),
        ),
    ];
    for (input, bytes) in inputs {
        fixture
            .assert_produce_refused(input, 0, bytes, ErrorCode::InvalidTimestamp)
            .await;
    }
}
