//! Choosing a partition for a record (`docs/CLIENT.md`, "Partitioning").
//!
//! - An explicit partition on the record wins.
//! - Keyed records: Kafka's `Utils.murmur2` (seed `0x9747b28c`),
//!   `(murmur2(key) & 0x7fffffff) % partition_count`, so a key lands on the same partition
//!   whichever Kafka-compatible client wrote it. An empty key is a key.
//! - Keyless records: sticky (KIP-480/794). They stay on one partition until `batch_size`
//!   bytes went there, then switch to a random partition that has a leader, so keyless
//!   traffic forms full batches instead of one tiny batch per partition.

use rand::Rng;

/// Kafka's murmur2 seed.
const MURMUR2_SEED: u32 = 0x9747_b28c;

/// MurmurHash2, 32-bit, exactly as Kafka's `Utils.murmur2` computes it.
pub fn murmur2(data: &[u8]) -> i32 {
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    // Kafka computes `seed ^ length` in Java ints: the length wraps modulo 2^32.
    let mut h: u32 = MURMUR2_SEED ^ (data.len() as u32);
    let mut words = data.chunks_exact(4);
    for word in &mut words {
        let mut k = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = words.remainder();
    if !tail.is_empty() {
        for (index, byte) in tail.iter().enumerate().rev() {
            h ^= u32::from(*byte) << (8 * index);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition of a keyed record: `(murmur2(key) & 0x7fffffff) % partition_count`.
/// `partition_count` is the topic's total, not the partitions that have a leader.
pub fn partition_for_key(key: &[u8], partition_count: usize) -> i32 {
    if partition_count == 0 {
        return 0;
    }
    let positive = (murmur2(key) & 0x7fff_ffff) as u32;
    // partition_count <= i32::MAX in any real topic; the modulo keeps the result below it.
    (positive as usize % partition_count) as i32
}

/// The sticky choice of one topic for keyless records.
#[derive(Debug, Default)]
pub(crate) struct StickyChoice {
    current: Option<StickyState>,
}

#[derive(Debug)]
struct StickyState {
    partition: i32,
    bytes_since_switch: usize,
}

impl StickyChoice {
    /// The partition for a keyless record of `record_bytes` bytes. Switches after
    /// `batch_size_bytes` went to the current partition (or when it no longer exists);
    /// only then is `available` asked for the partitions with a leader (may be empty:
    /// then any of `0..partition_count`).
    pub(crate) fn partition(
        &mut self,
        partition_count: usize,
        record_bytes: usize,
        batch_size_bytes: usize,
        available: impl FnOnce() -> Vec<i32>,
    ) -> i32 {
        let state = match &mut self.current {
            Some(state)
                if (state.partition as usize) < partition_count
                    && state.bytes_since_switch < batch_size_bytes =>
            {
                state
            }
            current => {
                let previous = current.as_ref().map(|state| state.partition);
                let partition = choose(partition_count, &available(), previous);
                current.insert(StickyState {
                    partition,
                    bytes_since_switch: 0,
                })
            }
        };
        state.bytes_since_switch = state.bytes_since_switch.saturating_add(record_bytes);
        state.partition
    }
}

/// A random partition among `available` (or all), avoiding `previous` when there is a
/// choice, so a switch really moves the traffic.
fn choose(partition_count: usize, available: &[i32], previous: Option<i32>) -> i32 {
    let mut rng = rand::thread_rng();
    let candidates: Vec<i32> = if available.is_empty() {
        (0..partition_count as i32).collect()
    } else {
        available.to_vec()
    };
    let others: Vec<i32> = candidates
        .iter()
        .copied()
        .filter(|partition| Some(*partition) != previous)
        .collect();
    let pool = if others.is_empty() {
        &candidates
    } else {
        &others
    };
    if pool.is_empty() {
        return 0;
    }
    pool[rng.gen_range(0..pool.len())]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka's `UtilsTest.testMurmur2`, with partitions for 10 partitions.
    #[test]
    fn murmur2_matches_kafka_test_vectors() {
        let vectors: [(&str, i32, i32); 6] = [
            ("21", -973_932_308, 0),
            ("foobar", -790_332_482, 6),
            ("a-little-bit-long-string", -985_981_536, 2),
            ("a-little-bit-longer-string", -1_486_304_829, 9),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
                7,
            ),
            ("abc", 479_470_107, 7),
        ];
        for (key, hash, partition) in vectors {
            assert_eq!(murmur2(key.as_bytes()), hash, "murmur2({key:?})");
            assert_eq!(
                partition_for_key(key.as_bytes(), 10),
                partition,
                "partition of {key:?}"
            );
        }
    }

    #[test]
    fn empty_key_is_hashed() {
        // Kafka hashes an empty key too; it is not keyless.
        assert_eq!(partition_for_key(b"", 10), partition_for_key(b"", 10));
        assert!(partition_for_key(b"", 7) < 7);
    }

    #[test]
    fn sticky_stays_until_a_batch_is_full_then_switches() {
        let mut sticky = StickyChoice::default();
        let all = || vec![0, 1, 2, 3];
        let first = sticky.partition(4, 100, 1_000, all);
        for _ in 0..9 {
            assert_eq!(sticky.partition(4, 100, 1_000, all), first);
        }
        // 1 000 bytes went to `first`: the next record switches to another partition.
        let second = sticky.partition(4, 100, 1_000, all);
        assert_ne!(second, first);
        assert_eq!(sticky.partition(4, 100, 1_000, all), second);
    }

    #[test]
    fn sticky_prefers_partitions_with_a_leader_and_asks_only_on_a_switch() {
        let mut sticky = StickyChoice::default();
        let mut asked = 0;
        for _ in 0..50 {
            let partition = sticky.partition(8, 10_000, 100, || {
                asked += 1;
                vec![5]
            });
            assert_eq!(partition, 5, "only partition 5 has a leader");
        }
        assert_eq!(asked, 50, "every record fills a batch here");
        let mut other = StickyChoice::default();
        let b = other.partition(2, 1, 100, Vec::new);
        assert!(b < 2);
        let mut asked = false;
        let again = other.partition(2, 1, 100, || {
            asked = true;
            Vec::new()
        });
        assert_eq!(again, b);
        assert!(!asked, "no switch, no lookup");
    }

    #[test]
    fn sticky_moves_off_a_partition_that_no_longer_exists() {
        let mut sticky = StickyChoice::default();
        let first = sticky.partition(4, 1, 1_000, || vec![3]);
        assert_eq!(first, 3);
        // The topic was recreated with one partition.
        assert_eq!(sticky.partition(1, 1, 1_000, Vec::new), 0);
    }
}
