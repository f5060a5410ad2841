//! # strata-tests — integration tests against real processes
//!
//! The tests live in `tests/tests/*.rs`, one behaviour per file; helper programs they
//! start live in `src/bin/`. This library holds what both share.
//!
//! - [`broker_process`]: start, SIGTERM and SIGKILL real `strata-broker` processes.
//! - [`durability`]: the record contents the SIGKILL test checks after each crash.

pub mod broker_process;
pub mod durability;
