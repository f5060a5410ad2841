//! Record batch codec throughput: build (`BatchBuilder`), `decode_batch` and `validate_batch`
//! on one batch of 1000 records × 1 KiB values, for each codec (none, lz4, zstd).
//!
//! Two payloads: `random` (xorshift bytes, incompressible: the codecs' worst case, where
//! zstd and lz4 mostly store blocks raw) and `text` (words drawn from a small vocabulary,
//! compressing roughly 3-5×, closer to JSON or log lines). Throughput is counted in
//! uncompressed batch bytes for every codec, so the figures compare directly.
//!
//! `cargo bench -p strata-benches --bench record_codec`; `-- --test` runs each once.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use strata_proto::record::{
    decode_batch, validate_batch, BatchBuilder, BatchSettings, Compression, DecodeLimits, Record,
    ValidateLimits,
};

const RECORD_COUNT: usize = 1000;
const VALUE_BYTES: usize = 1024;
const TIMESTAMP_MS: i64 = 1_750_000_000_000;

/// Deterministic xorshift64: the same values on every run, no `rand` needed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[derive(Clone, Copy)]
enum Payload {
    Random,
    Text,
}

impl Payload {
    fn name(self) -> &'static str {
        match self {
            Payload::Random => "random",
            Payload::Text => "text",
        }
    }

    fn value(self, rng: &mut XorShift) -> Bytes {
        const WORDS: [&str; 16] = [
            "partition",
            "offset",
            "leader",
            "epoch",
            "replica",
            "segment",
            "index",
            "batch",
            "record",
            "producer",
            "consumer",
            "group",
            "commit",
            "fetch",
            "topic",
            "broker",
        ];
        let mut value = Vec::with_capacity(VALUE_BYTES + 16);
        while value.len() < VALUE_BYTES {
            match self {
                Payload::Random => value.extend_from_slice(&rng.next().to_le_bytes()),
                Payload::Text => {
                    let word = WORDS[(rng.next() % WORDS.len() as u64) as usize];
                    value.extend_from_slice(word.as_bytes());
                    value.push(b' ');
                }
            }
        }
        value.truncate(VALUE_BYTES);
        Bytes::from(value)
    }
}

fn records(payload: Payload) -> Vec<Record> {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    (0..RECORD_COUNT)
        .map(|index| Record {
            timestamp_ms: TIMESTAMP_MS + index as i64,
            key: Some(Bytes::from(format!("key-{index}"))),
            value: Some(payload.value(&mut rng)),
            headers: Vec::new(),
        })
        .collect()
}

fn build(records: &[Record], compression: Compression) -> Bytes {
    let mut builder = BatchBuilder::new(BatchSettings {
        compression,
        ..BatchSettings::default()
    });
    for record in records {
        builder.append(record).unwrap();
    }
    builder.build().unwrap()
}

fn record_codec(c: &mut Criterion) {
    for payload in [Payload::Random, Payload::Text] {
        let records = records(payload);
        let uncompressed_bytes = build(&records, Compression::None).len() as u64;
        let mut group = c.benchmark_group(format!("record_codec/{}", payload.name()));
        group.throughput(Throughput::Bytes(uncompressed_bytes));
        for compression in [Compression::None, Compression::Lz4, Compression::Zstd] {
            let batch = build(&records, compression);
            let name = compression.name();
            group.bench_with_input(BenchmarkId::new("encode", name), &records, |b, records| {
                b.iter(|| build(records, compression));
            });
            group.bench_with_input(BenchmarkId::new("decode", name), &batch, |b, batch| {
                b.iter(|| decode_batch(batch, &DecodeLimits::default()).unwrap());
            });
            group.bench_with_input(BenchmarkId::new("validate", name), &batch, |b, batch| {
                b.iter(|| validate_batch(batch, &ValidateLimits::default()).unwrap());
            });
        }
        group.finish();
    }
}

criterion_group!(benches, record_codec);
criterion_main!(benches);
