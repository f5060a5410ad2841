//! Reusable buffers for the bulk positional read of [`Segment::read`](super::segment::Segment::read)
//! (the fetch path).
//!
//! A fetch reads up to `max_bytes` (megabytes) into memory and hands it on as `Bytes`,
//! which the gRPC layer copies into its response buffer and then drops. A fresh
//! `vec![0; n]` per read costs a zeroing pass over the whole buffer (or, when glibc serves
//! it with a fresh `mmap`, one page fault and a page clear per 4 KiB) before the read even
//! starts; the profile showed 13 % of the broker's fetch CPU in `memset`. Here a buffer's
//! pages are zeroed once, when it is first allocated, and the buffer goes back to a small
//! process-wide free list when the last `Bytes` pointing into it is dropped.
//!
//! Invariants:
//! - a buffer handed out is fully initialized (`len` = its size); its old contents are
//!   never exposed: [`ReadBuffer::into_bytes`] only exposes a prefix the caller has just
//!   filled (a read that fails drops the buffer back into the pool, unexposed);
//! - the free list is bounded: at most [`POOLED_BUFFERS_MAX`] buffers,
//!   [`POOLED_BYTES_MAX`] bytes in all, none larger than [`POOLED_BUFFER_BYTES_MAX`]; a
//!   buffer that does not fit is freed.
//!
//! Direct I/O (`direct.rs`) takes its aligned staging and read buffers from the same pool:
//! it asks for a block more than it needs and uses the aligned part.
//!
//! Thread safety: one mutex around the free list, held only to push or pop a `Vec`.

use std::sync::Mutex;

use bytes::Bytes;

/// Most buffers kept for reuse.
const POOLED_BUFFERS_MAX: usize = 8;
/// Most bytes kept for reuse, all buffers together.
const POOLED_BYTES_MAX: usize = 64 << 20;
/// Larger buffers (rare fetches beyond the usual partition limits) are not kept.
const POOLED_BUFFER_BYTES_MAX: usize = 16 << 20;

/// Free buffers, each fully initialized.
static FREE_BUFFERS: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// A buffer of exactly the requested length with arbitrary (initialized) contents.
#[derive(Debug)]
pub(crate) struct ReadBuffer {
    buf: Vec<u8>,
    len: usize,
}

impl ReadBuffer {
    /// A buffer of `len` bytes: a pooled one when one is large enough, else a new one.
    pub(crate) fn take(len: usize) -> ReadBuffer {
        let reused = {
            let mut free = free_list();
            // The smallest buffer that is large enough, so big ones stay for big reads.
            let best = free
                .iter()
                .enumerate()
                .filter(|(_, buf)| buf.len() >= len)
                .min_by_key(|(_, buf)| buf.len())
                .map(|(index, _)| index);
            best.map(|index| free.swap_remove(index))
        };
        let buf = reused.unwrap_or_else(|| vec![0u8; len]);
        ReadBuffer { buf, len }
    }

    /// The `len` bytes to fill.
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        let len = self.len.min(self.buf.len());
        self.buf.get_mut(..len).unwrap_or_default()
    }

    /// The first `len` bytes (which the caller filled) as `Bytes`; the buffer returns to
    /// the pool when the last clone of them is dropped.
    pub(crate) fn into_bytes(mut self, len: usize) -> Bytes {
        self.len = len.min(self.len);
        Bytes::from_owner(self)
    }
}

impl AsRef<[u8]> for ReadBuffer {
    fn as_ref(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }
}

impl Drop for ReadBuffer {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        if buf.len() > POOLED_BUFFER_BYTES_MAX {
            return;
        }
        let mut free = free_list();
        let pooled_bytes: usize = free.iter().map(Vec::len).sum();
        if free.len() < POOLED_BUFFERS_MAX && pooled_bytes + buf.len() <= POOLED_BYTES_MAX {
            free.push(buf);
        }
    }
}

fn free_list() -> std::sync::MutexGuard<'static, Vec<Vec<u8>>> {
    FREE_BUFFERS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn exposes_only_the_filled_prefix_and_is_reused() {
        // Other tests share the process-wide pool; use a size no other test asks for.
        let size = 3 * 4096 + 17;
        let mut first = ReadBuffer::take(size);
        first.as_mut_slice().fill(0xAB);
        let bytes = first.into_bytes(10);
        assert_eq!(&bytes[..], &[0xAB; 10]);
        let clone = bytes.slice(2..4);
        drop(bytes);
        assert_eq!(&clone[..], &[0xAB; 2], "a clone keeps the buffer alive");
        drop(clone);
        // Back in the pool: a read of the same size may get it again (old contents and
        // all: only what the next caller fills is exposed).
        let mut again = ReadBuffer::take(size);
        assert_eq!(again.as_mut_slice().len(), size);
        again.as_mut_slice()[..3].copy_from_slice(b"xyz");
        let bytes = again.into_bytes(3);
        assert_eq!(&bytes[..], b"xyz");
    }

    #[test]
    fn huge_buffers_are_not_kept() {
        let buffer = ReadBuffer::take(POOLED_BUFFER_BYTES_MAX + 1);
        drop(buffer.into_bytes(0));
        assert!(free_list()
            .iter()
            .all(|buf| buf.len() <= POOLED_BUFFER_BYTES_MAX));
        assert!(free_list().len() <= POOLED_BUFFERS_MAX);
    }
}
