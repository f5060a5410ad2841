//! # strata-tests — integration tests against real processes
//!
//! The tests live in `tests/tests/*.rs`, one behaviour per file; helper programs they
//! start live in `src/bin/`. This library holds what both share.
//!
//! - [`broker_process`]: start, pause (SIGSTOP/SIGCONT), SIGTERM and SIGKILL real
//!   `strata-broker` processes.
//! - [`durability`]: the record contents the SIGKILL test checks after each crash.
//! - [`cluster`]: several brokers, node `i` on 127.0.0.i, killed, paused, stopped,
//!   restarted and cut off from each other one by one;
//!   [`firewall`] makes the cuts (iptables rules), [`wait`] the bounded waits for what
//!   the cluster does next.
//! - [`cluster_views`]: what node N of a cluster shows when asked alone over raw gRPC
//!   (the cluster, its metadata and topics, the controller leader), and the waits on it:
//!   formed, fenced, live again, every partition led by its replica.
//! - [`cli_runner`]: the `strata` CLI (or any command) run to its end, bounded.
//! - [`admin_api`]: a cluster node's admin listener (its address, JSON GETs) for the
//!   tests of the admin API and the `/ui` page.
//! - [`admin_retry`]: topic creations and config changes retried through a controller
//!   failover.
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
//!
//! Cluster fault tests (`tests/cluster_faults.rs`) add [`quorum_watch`] (the controller
//! quorum of a cluster on any node numbers: formed, a leader among some nodes, a broker
//! fenced or live in one node's view, metadata caught up, creations retried through an
//! election) and [`ack_timeline`] (when each partition's sends were acknowledged or
//! failed, read back from a history, for availability figures).
//!
//! [`fault_matrix`] runs the replication rows of the fault matrix against a fresh
//! cluster: the workload, a row's faults, the drain, every copy of every partition read
//! back, the checker, and unavailability per fault (`tests/replication_faults.rs`).
//!
//! [`group_crash`] is row 12 (a consumer that dies between poll, commit and processing):
//! the event lines the `group_worker` binary writes and the checker of its redeliveries
//! and losses (`tests/group_crash_redelivery.rs`).
//!
//! [`retry_crash`] is issue 22's crash test of retry and dead-letter topics: the record
//! classes, the event lines the `retry_worker` binary writes, and the checker that finds
//! lost records and unexplained duplicates (`tests/retry_crash.rs`).

pub mod ack_timeline;
pub mod admin_api;
pub mod admin_retry;
pub mod broker_process;
pub mod cli_runner;
pub mod cluster;
pub mod cluster_views;
pub mod durability;
pub mod fault_matrix;
pub mod firewall;
pub mod group_crash;
pub mod history;
pub mod nemesis;
pub mod quorum_watch;
pub mod retry_crash;
pub mod wait;
pub mod workload;
