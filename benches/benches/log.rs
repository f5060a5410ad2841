//! Storage engine throughput: append with 1 MiB batches under `flush = interval` and
//! under `flush = always` with 8 concurrent appenders (group commit), sequential reads,
//! and offset index lookups.
//!
//! Each append sample writes `STRATA_BENCH_MIB` MiB (default 512) into a fresh log in a
//! temporary directory under `STRATA_BENCH_DIR` (default: the system temp dir) and ends
//! with a full fsync, so the figure is comparable with
//! `dd if=/dev/zero of=FILE bs=1M count=N conv=fdatasync` on the same filesystem.
//! Results and the exact commands: `docs/BENCHMARKS.md`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use strata_broker::log::offset_index::OffsetIndex;
use strata_broker::log::{FlushPolicy, LogConfig, PartitionLog, PreviousShutdown, SystemClock};
use strata_proto::record::{BatchBuilder, BatchSettings, Record};
use strata_proto::types::{LeaderEpoch, Offset};

const BATCH_BYTES: usize = 1 << 20;
const RECORD_BYTES: usize = 1024;

fn bench_mib() -> usize {
    std::env::var("STRATA_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512)
}

fn bench_dir() -> tempfile::TempDir {
    let base = std::env::var_os("STRATA_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    tempfile::tempdir_in(base).unwrap()
}

/// A batch of ~1 MiB: 1023 records of 1 KiB pseudo-random bytes.
fn one_mib_batch() -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut builder = BatchBuilder::new(BatchSettings::default());
    while builder.estimated_size_bytes() + RECORD_BYTES + 64 < BATCH_BYTES {
        let value: Vec<u8> = (0..RECORD_BYTES)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        builder
            .append(&Record::from_value(1_700_000_000_000, Bytes::from(value)))
            .unwrap();
    }
    builder.build().unwrap().to_vec()
}

fn open_log(dir: &std::path::Path, flush: FlushPolicy) -> PartitionLog {
    let config = LogConfig {
        flush,
        ..LogConfig::default()
    };
    PartitionLog::open(
        dir,
        config,
        Arc::new(SystemClock),
        PreviousShutdown::Crashed,
    )
    .unwrap()
}

/// Appends `STRATA_BENCH_MIB` MiB from `appenders` threads and fsyncs everything at the
/// end. Returns the time taken and how many fsyncs group commit issued.
fn timed_append(flush: FlushPolicy, appenders: usize, batch: &[u8]) -> (Duration, u64) {
    let dir = bench_dir();
    let log = open_log(dir.path(), flush);
    let batches = bench_mib() * BATCH_BYTES / batch.len();
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..appenders {
            scope.spawn(|| {
                for _ in 0..batches / appenders {
                    log.append(batch, LeaderEpoch(0)).unwrap();
                }
            });
        }
    });
    log.flush().unwrap();
    (started.elapsed(), log.fsyncs_total())
}

fn append(c: &mut Criterion) {
    let batch = one_mib_batch();
    let mut group = c.benchmark_group("log_append_1mib_batches");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(30));
    group.throughput(Throughput::Bytes((bench_mib() * BATCH_BYTES) as u64));
    let cases = [
        (
            "flush_interval_1_appender",
            FlushPolicy::Interval { interval_ms: 1000 },
            1,
        ),
        ("flush_always_1_appender", FlushPolicy::Always, 1),
        ("flush_always_8_appenders", FlushPolicy::Always, 8),
    ];
    for (name, flush, appenders) in cases {
        group.bench_function(name, |b| {
            b.iter_custom(|iterations| {
                (0..iterations)
                    .map(|_| timed_append(flush, appenders, &batch).0)
                    .sum()
            })
        });
        // How much group commit shares: fsyncs issued per append in one more run.
        let (_, fsyncs) = timed_append(flush, appenders, &batch);
        let appends = bench_mib() * BATCH_BYTES / batch.len();
        eprintln!(
            "{name}: {fsyncs} fsyncs for {appends} appends of {} bytes",
            batch.len()
        );
    }
    group.finish();
}

fn read_sequential(c: &mut Criterion) {
    let dir = bench_dir();
    let log = open_log(dir.path(), FlushPolicy::Interval { interval_ms: 1000 });
    let batch = one_mib_batch();
    let total_mib = bench_mib().min(256);
    for _ in 0..total_mib {
        log.append(&batch, LeaderEpoch(0)).unwrap();
    }
    log.flush().unwrap();
    let mut group = c.benchmark_group("log_read_sequential");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(log.size_bytes()));
    for max_bytes in [64 << 10, 1 << 20] {
        group.bench_with_input(
            BenchmarkId::new("max_bytes", max_bytes),
            &max_bytes,
            |b, &max_bytes| {
                b.iter(|| {
                    let mut offset = Offset(0);
                    let mut read_bytes = 0usize;
                    loop {
                        let read = log.read(offset, max_bytes, None).unwrap();
                        if read.batches.is_empty() {
                            break read_bytes;
                        }
                        read_bytes += read.batches.len();
                        offset = last_next_offset(&read.batches);
                    }
                })
            },
        );
    }
    group.finish();
}

/// The offset after the last batch in a run of whole batches.
fn last_next_offset(mut bytes: &[u8]) -> Offset {
    let mut next = Offset(0);
    while let Ok(header) = strata_proto::record::BatchHeader::parse(bytes) {
        next = header.next_offset();
        bytes = &bytes[header.total_bytes()..];
    }
    next
}

fn index_lookup(c: &mut Criterion) {
    let dir = bench_dir();
    let path = dir.path().join("00000000000000000000.index");
    let mut index = OffsetIndex::open(&path, Offset(0), 10 << 20).unwrap();
    let entries = (10 << 20) / 8 - 1;
    for i in 0..entries as i64 {
        index.append(Offset(i * 10), (i * 1024) as u32).unwrap();
    }
    let mut state = 12345u64;
    c.bench_function("offset_index_lookup_1m_entries", |b| {
        b.iter(|| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            let target = Offset((state >> 20) as i64 % (entries as i64 * 10));
            index.lookup(target)
        })
    });
}

criterion_group!(benches, append, read_sequential, index_lookup);
criterion_main!(benches);
