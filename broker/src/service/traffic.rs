//! How many record bytes the broker has moved (produced batches read, fetched records
//! answered), counted for one purpose: telling a quiet broker from a busy one, so that
//! memory malloc keeps for reuse while busy is handed back to the kernel once quiet
//! (`main.rs`).

use std::sync::atomic::{AtomicU64, Ordering};

static RECORD_BYTES: AtomicU64 = AtomicU64::new(0);

/// Counts `bytes` of records produced or fetched.
pub fn record(bytes: usize) {
    RECORD_BYTES.fetch_add(bytes as u64, Ordering::Relaxed);
}

/// Record bytes moved since the process started.
pub fn record_bytes_total() -> u64 {
    RECORD_BYTES.load(Ordering::Relaxed)
}
