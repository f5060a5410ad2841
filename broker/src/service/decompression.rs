//! A broker-wide bound on the memory that checking compressed batches takes.
//!
//! The broker validates every produced batch before writing it, and a compressed batch's
//! records are decompressed for that, once, into one buffer (capped per batch at
//! [`DECOMPRESSED_BYTES_MAX`]). Produce streams write concurrently, so without a bound 32
//! lz4 batches that each expanded 120 times held 1.76 GB at once, most of it kept by
//! malloc long after.
//!
//! Here a produce stream takes permits, one per byte its batch may expand to, from a
//! budget of [`BUDGET_BYTES`] shared by the whole broker before the batch is validated,
//! and gives them back once validation is done (the decompressed buffer is freed by
//! then; the stored batch stays compressed). Most batches expand far less than the cap,
//! so the first try allows [`FIRST_TRY_RATIO`] times the compressed size (at least
//! [`FIRST_TRY_BYTES_MIN`]); a batch that expands more is validated again with the whole
//! cap, holding permits for all of it. A stream waiting for permits reads no more
//! requests, so HTTP/2 flow control holds its client back. Uncompressed batches are
//! checked in place and take nothing.

use std::sync::Arc;

use bytes::Bytes;
use strata_proto::record::decode::DECOMPRESSED_BYTES_MAX_DEFAULT;
use strata_proto::record::{BatchHeader, Compression, RecordError};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::node::{Node, NodeError, PendingAppend};

/// The most one batch's records may decompress to.
pub const DECOMPRESSED_BYTES_MAX: usize = DECOMPRESSED_BYTES_MAX_DEFAULT;

/// Bytes of decompressed records the whole broker holds at once while validating.
pub const BUDGET_BYTES: usize = 4 * DECOMPRESSED_BYTES_MAX;

/// The first try allows this many times the compressed size.
pub const FIRST_TRY_RATIO: usize = 16;

/// The first try allows at least this much.
pub const FIRST_TRY_BYTES_MIN: usize = 1 << 20;

static BUDGET: Semaphore = Semaphore::const_new(BUDGET_BYTES);

/// Validates and writes `batch` ([`Node::produce`]) within the broker's decompression
/// budget.
pub async fn produce_within_budget(
    node: &Arc<Node>,
    topic: &str,
    partition: i32,
    batch: Bytes,
) -> Result<PendingAppend, NodeError> {
    let Some(first_try_bytes) = first_try_bytes(&batch) else {
        return node
            .produce(topic, partition, batch, DECOMPRESSED_BYTES_MAX)
            .await;
    };
    let first = {
        let _permits = reserve(first_try_bytes).await;
        node.produce(topic, partition, batch.clone(), first_try_bytes)
            .await
    };
    if first_try_bytes >= DECOMPRESSED_BYTES_MAX || !expands_further(&first) {
        return first;
    }
    let _permits = reserve(DECOMPRESSED_BYTES_MAX).await;
    node.produce(topic, partition, batch, DECOMPRESSED_BYTES_MAX)
        .await
}

/// What the first try may decompress to, or `None` for a batch that is not compressed
/// (or not a batch: validation refuses it without decompressing anything).
fn first_try_bytes(batch: &[u8]) -> Option<usize> {
    let compression = BatchHeader::parse(batch).ok()?.compression()?;
    (compression != Compression::None).then(|| {
        batch
            .len()
            .saturating_mul(FIRST_TRY_RATIO)
            .clamp(FIRST_TRY_BYTES_MIN, DECOMPRESSED_BYTES_MAX)
    })
}

/// Whether a try was refused only because the records expand beyond what it allowed.
fn expands_further(result: &Result<PendingAppend, NodeError>) -> bool {
    matches!(
        result,
        Err(NodeError::Record(error))
            if matches!(error.cause(), RecordError::DecompressedTooLarge { .. })
    )
}

/// Waits for `bytes` permits of the budget. `None` only on a closed semaphore, and this
/// one is never closed.
async fn reserve(bytes: usize) -> Option<SemaphorePermit<'static>> {
    let permits = u32::try_from(bytes.min(BUDGET_BYTES)).unwrap_or(u32::MAX);
    BUDGET.acquire_many(permits).await.ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use strata_proto::record::{BatchBuilder, BatchSettings, Record};

    use super::*;

    fn batch(compression: Compression, value_bytes: usize) -> Bytes {
        let mut builder = BatchBuilder::new(BatchSettings {
            compression,
            ..BatchSettings::default()
        });
        builder
            .append(&Record::from_value(0, Bytes::from(vec![0; value_bytes])))
            .unwrap();
        builder.build().unwrap()
    }

    #[test]
    fn only_compressed_batches_take_from_the_budget_and_the_first_try_is_bounded() {
        assert_eq!(first_try_bytes(&batch(Compression::None, 100)), None);
        assert_eq!(first_try_bytes(b"not a batch"), None);
        let small = batch(Compression::Lz4, 100);
        assert_eq!(first_try_bytes(&small), Some(FIRST_TRY_BYTES_MIN));
        let bomb = batch(Compression::Zstd, 50 << 20);
        let first = first_try_bytes(&bomb).unwrap();
        assert!(first < DECOMPRESSED_BYTES_MAX, "{first}");
        assert_eq!(first, FIRST_TRY_BYTES_MIN.max(bomb.len() * FIRST_TRY_RATIO));
    }
}
