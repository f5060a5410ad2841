//! # strata-tests — integration tests against real processes
//!
//! The tests live in `tests/tests/*.rs`, one behaviour per file. This library holds what
//! they share: locating the binaries cargo built, and helpers to start and kill them.

use std::path::PathBuf;

/// Path of a binary of this workspace, built by the same `cargo test` run
/// (`target/<profile>/<name>`), found next to the test executable.
pub fn workspace_binary(name: &str) -> PathBuf {
    let mut dir = std::env::current_exe().unwrap_or_default();
    dir.pop(); // the test binary
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join(name)
}
