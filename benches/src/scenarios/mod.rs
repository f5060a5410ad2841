//! The end-to-end scenario runner behind `cargo run --release -p strata-benches --bin
//! scenarios`: fresh release brokers on 127.0.0.1 (a three-broker cluster on 127.0.0.1–3
//! for the replication rows), driven by `strata bench`, compared with the machine's raw
//! limits measured in the same sitting.
//!
//! Map:
//!
//! - [`plan`]: the scenario table (Kreps' 2014 Kafka scenarios on one node, Iggy's shape,
//!   issue 4's acceptance rows, issue 20's replication rows on a cluster) as sessions of
//!   steps, each session run with both flush modes; named plans (`--plan replication`).
//! - [`deployment`]: one session's fresh brokers — one, or a three-broker cluster on
//!   127.0.0.1–3 — in a new run dir, stopped by PID and deleted afterwards; [`broker`]:
//!   one `strata-broker` process; [`readiness`]: waiting for a cluster to form and a
//!   topic's ISR to fill before a cluster step measures.
//! - [`cleanup`]: deleting the runner's own large files a chunk at a time, so a deletion
//!   does not stall the next step.
//! - [`bench`](mod@bench): one `strata bench` command line, run with a deadline, its JSON read.
//! - [`runner`]: a session's steps against its broker, with broker CPU per GiB.
//! - [`limits`]: `iperf3` loopback and `dd … conv=fdatasync` figures.
//! - [`latency`]: the e2e rows' floors: a loopback round trip (`sockperf`) and a 4 KiB
//!   `fdatasync` (`fio`).
//! - [`environment`]: cores, memory, kernel, disk, git sha.
//! - [`report`]: the markdown tables and the JSON document.
//! - [`checks`]: issue 4's acceptance lines judged on the rows; [`replication`]: issue
//!   20's RF 3 ÷ RF 1 ratio per flush mode and the RF 3 e2e latency.
//! - [`steal`]: host steal time; every step waits for a quiet host and records the steal
//!   during it.
//! - [`process`]: child processes with bounded waits; CPU time from `/proc/<pid>/stat`.
//! - [`warm`]: `--warm-page-cache`, the memory state of a broker host that has been
//!   running.
//! - [`interrupt`]: Ctrl-C ends the run early but cleanly, keeping the rows so far.
//!
//! Rules: the runner builds nothing, sends traffic only to loopback, never uses ports
//! 7070 or 17070, bounds every wait, stops every child by its PID, and records a failure in
//! its row instead of stopping the run.

pub mod bench;
pub mod broker;
pub mod checks;
pub mod cleanup;
pub mod deployment;
pub mod environment;
pub mod interrupt;
pub mod latency;
pub mod limits;
pub mod plan;
pub mod prefault;
pub mod process;
pub mod readiness;
pub mod replication;
pub mod report;
pub mod runner;
pub mod steal;
pub mod warm;
