//! A global allocator that tracks each thread's live heap bytes and their peak, so a test
//! can state "this call never held more than N bytes at once" (`docs/RELIABILITY.md`: no
//! input may make us allocate more than a small multiple of the bytes actually received).
//!
//! Tracking is per thread, so tests running in parallel do not see each other's
//! allocations (memory freed by another thread than the one that took it would skew the
//! count; the codec under test does not do that). Memory that zstd's C code takes with `malloc` is not counted; the zstd
//! window it may allocate is bounded separately (`window_log_max`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    static LIVE_BYTES: Cell<isize> = const { Cell::new(0) };
    static PEAK_BYTES: Cell<isize> = const { Cell::new(0) };
}

pub struct CountingAllocator;

fn count(change: isize) {
    // `try_with`: allocations during thread teardown are simply not counted.
    let _ = LIVE_BYTES.try_with(|live| {
        let now = live.get().saturating_add(change);
        live.set(now);
        let _ = PEAK_BYTES.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// `GlobalAlloc` contract the caller upholds is the one `System` relies on; the counter is a
// const-initialised thread-local `Cell`, which never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        // SAFETY: forwarded unchanged (see the impl).
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        // SAFETY: forwarded unchanged (see the impl).
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        // SAFETY: forwarded unchanged (see the impl).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Counted as holding both blocks at once, as a moving realloc briefly does.
        count(new_size as isize);
        count(-(layout.size() as isize));
        // SAFETY: forwarded unchanged (see the impl).
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Runs `f` and returns its result with the most heap this thread held during `f` beyond
/// what it held before (the result's own memory included).
pub fn bytes_allocated_by<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = LIVE_BYTES.with(Cell::get);
    PEAK_BYTES.with(|peak| peak.set(before));
    let result = f();
    let peak = PEAK_BYTES.with(Cell::get);
    (result, (peak - before).max(0) as usize)
}
