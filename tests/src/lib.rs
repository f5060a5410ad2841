//! # strata-tests — integration tests against real processes
//!
//! The tests live in `tests/tests/*.rs`, one behaviour per file; helper programs they
//! start live in `src/bin/`. This library holds what both share.
//!
//! - [`durability`]: the record contents the SIGKILL test checks after each crash.

pub mod durability;
