//! # strata-tests — integration tests against real processes
//!
//! The tests live in `tests/tests/*.rs`, one behaviour per file; helper programs they
//! start live in `src/bin/`. This library holds what both share.
//!
//! - [`broker_process`]: start, pause (SIGSTOP/SIGCONT), SIGTERM and SIGKILL real
//!   `strata-broker` processes.
//! - [`durability`]: the record contents the SIGKILL test checks after each crash.
//! - [`history`]: the recorded events of a fault test and the offline checker that
//!   finds lost, duplicated and reordered acknowledged writes, failed writes that were
//!   applied and inconsistent offsets.

pub mod broker_process;
pub mod durability;
pub mod history;
