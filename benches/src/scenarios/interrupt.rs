//! Ctrl-C and SIGTERM for the runner: the first one sets a flag that every wait checks, so
//! the running bench is stopped, the broker is shut down by its PID, its directory is
//! deleted, and the rows measured so far are still printed and saved.
//!
//! The children share the terminal's process group and get the same Ctrl-C; `strata
//! bench` and `strata-broker` both stop cleanly on it, which is what the runner wants too.

use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_signal: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    REQUESTED.store(true, Ordering::SeqCst);
}

/// Installs the handler for SIGINT and SIGTERM.
pub fn install() {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: `on_signal` only performs an atomic store, which is async-signal-safe,
        // and it stays valid for the life of the process.
        unsafe {
            libc::signal(signal, handler);
        }
    }
}

/// Whether the user asked the run to stop.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}
