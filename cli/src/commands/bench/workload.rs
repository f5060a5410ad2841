//! What the producers send and when: the values ([`Payload`]), the keys ([`KeySource`]),
//! the send schedule under `--rate` ([`Pacer`]) and the clock shared by producers and
//! consumers for end-to-end latency ([`BenchClock`]).
//!
//! Nothing here is generated per record: values are slices of one random buffer made before
//! the run, keys are slices of another (random) or clones of prepared ones (distinct), so
//! the cost of making data never shows up in the measurement. Consecutive records take
//! consecutive, non-overlapping slices of a buffer larger than any compression window, so
//! lz4 and zstd find nothing to compress, as with truly random values.

use std::time::Duration;

use bytes::Bytes;
use rand::RngCore as _;
use strata_proto::record::varint::varint_size;
use tokio::time::Instant;

use super::args::Keys;

/// Size of the random value buffer; above zstd's default window (8 MiB at most for the
/// levels used), so no batch ever sees the same bytes twice.
const PAYLOAD_BUFFER_BYTES: usize = 16 << 20;
/// Bytes of each random key.
const RANDOM_KEY_BYTES: usize = 8;
/// Random bytes random keys are cut from.
const KEY_BUFFER_BYTES: usize = 64 << 10;
/// The header carrying the send time on the e2e run.
pub const TIMESTAMP_HEADER: &str = "strata.bench.ts";
/// Bytes of the header value: a big-endian u64 of microseconds.
pub const TIMESTAMP_BYTES: usize = 8;

/// Random, incompressible record values, all of one size.
#[derive(Debug)]
pub struct Payload {
    buffer: Bytes,
    record_size: usize,
    slots: u64,
}

impl Payload {
    pub fn new(record_size: usize) -> Payload {
        let size = PAYLOAD_BUFFER_BYTES.max(record_size.saturating_mul(4));
        Payload::with_buffer(random_bytes(size), record_size)
    }

    fn with_buffer(buffer: Bytes, record_size: usize) -> Payload {
        let slots = (buffer.len() / record_size.max(1)).max(1) as u64;
        Payload {
            buffer,
            record_size,
            slots,
        }
    }

    /// The value of record `index`: the next slice of the buffer, wrapping around.
    pub fn value(&self, index: u64) -> Bytes {
        let start = (index % self.slots) as usize * self.record_size;
        self.buffer.slice(start..start + self.record_size)
    }
}

/// Where keys come from (`--keys`).
#[derive(Debug)]
pub enum KeySource {
    None,
    /// 8-byte slices of a random buffer at random positions.
    Random(Bytes),
    /// `key-0`, `key-1`, … used round-robin.
    Distinct(Vec<Bytes>),
}

impl KeySource {
    pub fn new(keys: Keys) -> KeySource {
        match keys {
            Keys::None => KeySource::None,
            Keys::Random => KeySource::Random(random_bytes(KEY_BUFFER_BYTES)),
            Keys::Distinct(count) => KeySource::Distinct(
                (0..count)
                    .map(|number| Bytes::from(format!("key-{number}")))
                    .collect(),
            ),
        }
    }

    /// The key of record `index`; `random` is a fresh random number per call.
    pub fn key(&self, index: u64, random: u64) -> Option<Bytes> {
        match self {
            KeySource::None => None,
            KeySource::Random(buffer) => {
                let positions = (buffer.len() - RANDOM_KEY_BYTES) as u64;
                let start = (random % positions) as usize;
                Some(buffer.slice(start..start + RANDOM_KEY_BYTES))
            }
            KeySource::Distinct(keys) => keys.get((index % keys.len() as u64) as usize).cloned(),
        }
    }

    /// The largest key `keys` makes, in bytes, for memory and wire-size estimates.
    pub fn key_bytes_max(keys: Keys) -> usize {
        match keys {
            Keys::None => 0,
            Keys::Random => RANDOM_KEY_BYTES,
            Keys::Distinct(count) => format!("key-{}", count.saturating_sub(1)).len(),
        }
    }
}

/// A small, fast random number generator (SplitMix64) for choosing keys; one per producer
/// thread, so choosing a key takes no lock.
#[derive(Debug, Clone)]
pub struct FastRandom(u64);

impl FastRandom {
    pub fn new(seed: u64) -> FastRandom {
        FastRandom(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// `size` random bytes, kept for the rest of the process (a bench makes them once).
/// Static bytes are cloned and dropped without touching a reference count, so the
/// generator, which clones a value per record, and the tasks that drop the records on
/// other cores do not contend on one count (≈ 6 % of the client's CPU with 100-byte
/// records).
fn random_bytes(size: usize) -> Bytes {
    let mut buffer = vec![0_u8; size];
    rand::thread_rng().fill_bytes(&mut buffer);
    Bytes::from_static(Box::leak(buffer.into_boxed_slice()))
}

/// The send schedule of one producer under `--rate`: records of all producers are spread
/// evenly over time and interleaved, producer `p` of `P` sending records `p, P + p,
/// 2P + p, …` of the global sequence, so `P` producers at `R`/s together send one record
/// every `1/R` s. A late producer does not skip: the schedule stays fixed and latency is
/// measured from it (coordinated omission).
#[derive(Debug, Clone, Copy)]
pub struct Pacer {
    start: Instant,
    rate_per_sec: f64,
    producer: u64,
    producers: u64,
}

impl Pacer {
    pub fn new(start: Instant, rate_per_sec: f64, producer: u64, producers: u64) -> Pacer {
        Pacer {
            start,
            rate_per_sec,
            producer,
            producers: producers.max(1),
        }
    }

    /// When this producer's record `index` is due, as an offset from the start.
    pub fn offset(&self, index: u64) -> Duration {
        let global = index.saturating_mul(self.producers) + self.producer;
        Duration::from_secs_f64(global as f64 / self.rate_per_sec)
    }

    /// When this producer's record `index` is due.
    pub fn intended(&self, index: u64) -> Instant {
        self.start + self.offset(index)
    }
}

/// The monotonic clock behind `strata.bench.ts`: microseconds since a base taken once per
/// process, so producers and consumers of one run compare times without wall-clock jumps.
#[derive(Debug, Clone, Copy)]
pub struct BenchClock {
    base: Instant,
}

impl BenchClock {
    pub fn new(base: Instant) -> BenchClock {
        BenchClock { base }
    }

    pub fn micros(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_micros()).unwrap_or(u64::MAX)
    }

    /// The header value for a record sent (or due) at `at`.
    pub fn encode(&self, at: Instant) -> [u8; TIMESTAMP_BYTES] {
        self.micros(at).to_be_bytes()
    }

    /// Microseconds from the time in `header` to `now`; `None` for a malformed header.
    pub fn latency_micros(&self, header: &[u8], now: Instant) -> Option<u64> {
        let sent = u64::from_be_bytes(header.try_into().ok()?);
        Some(self.micros(now).saturating_sub(sent))
    }
}

/// Bytes one record takes in the records section of a batch (Kafka's record v2 format),
/// given its key and value sizes and the (key, value) size of each header. An estimate:
/// one-byte timestamp and offset deltas are assumed; batch headers and gRPC framing are
/// not included (see [`batch_overhead_per_record`]).
pub fn record_wire_bytes(
    key_bytes: usize,
    value_bytes: usize,
    headers: impl IntoIterator<Item = (usize, usize)>,
) -> usize {
    let length_field = |bytes: usize| varint_size(i32::try_from(bytes).unwrap_or(i32::MAX)) + bytes;
    let (header_count, header_bytes) = headers
        .into_iter()
        .fold((0_usize, 0_usize), |(count, sum), (key, value)| {
            (count + 1, sum + length_field(key) + length_field(value))
        });
    // A null or empty key is one byte (-1 or 0).
    let key = if key_bytes == 0 {
        1
    } else {
        length_field(key_bytes)
    };
    // Attributes, timestamp delta and offset delta: one byte each.
    let body = 3
        + key
        + length_field(value_bytes)
        + varint_size(i32::try_from(header_count).unwrap_or(i32::MAX))
        + header_bytes;
    varint_size(i32::try_from(body).unwrap_or(i32::MAX)) + body
}

/// The per-record share of the batch header when `batch_size_bytes` batches are filled
/// with records of `record_bytes`.
pub fn batch_overhead_per_record(record_bytes: usize, batch_size_bytes: usize) -> f64 {
    let per_batch = (batch_size_bytes / record_bytes.max(1)).max(1);
    strata_proto::record::BATCH_HEADER_BYTES as f64 / per_batch as f64
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn values_are_consecutive_non_overlapping_slices() {
        let payload = Payload::with_buffer(Bytes::from((0..100_u8).collect::<Vec<_>>()), 30);
        assert_eq!(payload.value(0)[0], 0);
        assert_eq!(payload.value(1)[0], 30);
        assert_eq!(payload.value(2)[0], 60);
        assert_eq!(payload.value(3)[0], 0, "wraps after the last whole slot");
        assert!((0..10).all(|index| payload.value(index).len() == 30));
    }

    #[test]
    fn consecutive_values_share_no_bytes_a_compressor_could_reuse() {
        let payload = Payload::new(1000);
        let batch: Vec<u8> = (0..64)
            .flat_map(|index| payload.value(index).to_vec())
            .collect();
        let chunks: std::collections::HashSet<&[u8]> = batch.chunks(32).collect();
        assert_eq!(chunks.len(), batch.len() / 32, "a 32-byte chunk repeats");
    }

    #[test]
    fn keys_follow_the_flag() {
        assert_eq!(KeySource::new(Keys::None).key(0, 1), None);
        let distinct = KeySource::new(Keys::Distinct(3));
        let keys: Vec<_> = (0..4)
            .map(|index| distinct.key(index, 0).unwrap())
            .collect();
        assert_eq!(keys[0], Bytes::from("key-0"));
        assert_eq!(keys[2], Bytes::from("key-2"));
        assert_eq!(keys[3], keys[0], "round-robin");
        let random = KeySource::new(Keys::Random);
        let mut rng = FastRandom::new(7);
        let a = random.key(0, rng.next_u64()).unwrap();
        let b = random.key(1, rng.next_u64()).unwrap();
        assert_eq!(a.len(), RANDOM_KEY_BYTES);
        assert_ne!(a, b);
        assert_eq!(
            KeySource::key_bytes_max(Keys::Distinct(1000)),
            "key-999".len()
        );
        assert_eq!(KeySource::key_bytes_max(Keys::None), 0);
    }

    #[test]
    fn pacing_spreads_records_evenly_and_interleaves_producers() {
        let start = Instant::now();
        // 1000 records/s over 2 producers: one record per ms, alternating producers.
        let first = Pacer::new(start, 1000.0, 0, 2);
        let second = Pacer::new(start, 1000.0, 1, 2);
        assert_eq!(first.offset(0), Duration::ZERO);
        assert_eq!(second.offset(0), Duration::from_millis(1));
        assert_eq!(first.offset(1), Duration::from_millis(2));
        assert_eq!(second.offset(1), Duration::from_millis(3));
        // 10 000/s on one producer: record 25 000 is due at 2.5 s.
        let single = Pacer::new(start, 10_000.0, 0, 1);
        assert_eq!(single.offset(25_000), Duration::from_millis(2500));
        assert_eq!(single.intended(10_000), start + Duration::from_secs(1));
        // A fractional rate: 0.5/s is one record every 2 s.
        assert_eq!(
            Pacer::new(start, 0.5, 0, 1).offset(3),
            Duration::from_secs(6)
        );
    }

    #[test]
    fn the_clock_round_trips_through_the_header() {
        let base = Instant::now();
        let clock = BenchClock::new(base);
        let sent = base + Duration::from_micros(1500);
        let header = clock.encode(sent);
        let received = sent + Duration::from_micros(250);
        assert_eq!(clock.latency_micros(&header, received), Some(250));
        assert_eq!(clock.latency_micros(&header[..4], received), None);
        assert_eq!(
            clock.latency_micros(&header, base),
            Some(0),
            "never negative"
        );
    }

    #[test]
    fn wire_size_follows_the_record_format() {
        // Zig-zag varints: 100 needs two bytes. Null key, 100-byte value, no headers:
        // 3 + key(1) + value(2 + 100) + header count(1) = 107, plus its length (2) = 109.
        assert_eq!(record_wire_bytes(0, 100, []), 109);
        // With the 15-byte-key, 8-byte-value timestamp header: + 1 + 15 + 1 + 8.
        assert_eq!(record_wire_bytes(0, 100, [(15, 8)]), 134);
        assert!((batch_overhead_per_record(100, 16_384) - 61.0 / 163.0).abs() < 1e-9);
    }
}
