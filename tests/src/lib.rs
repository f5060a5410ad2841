//! # strata-tests — integration tests against real processes
//!
//! The tests live in `tests/tests/*.rs`, one behaviour per file; helper programs they
//! start live in `src/bin/`. This library holds what both share.
//!
//! - [`broker_process`]: start, pause (SIGSTOP/SIGCONT), SIGTERM and SIGKILL real
//!   `strata-broker` processes.
//! - [`durability`]: the record contents the SIGKILL test checks after each crash.
//!
//! The history-based fault test (`tests/fault_history.rs`) is built from three parts,
//! meant to be reused by tests with several brokers:
//!
//! - [`workload`]: producers and consumers that record every send and poll, and the
//!   final read of every partition;
//! - [`nemesis`]: faults on a schedule (pause, kill and restart, terminate and restart);
//! - [`history`]: the recorded events and the offline checker that finds lost,
//!   duplicated and reordered acknowledged writes, failed writes that were applied and
//!   inconsistent offsets.

pub mod broker_process;
pub mod durability;
pub mod history;
pub mod nemesis;
pub mod workload;
