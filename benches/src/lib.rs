//! # strata-benches — criterion micro-benchmarks and the scenario runner
//!
//! Benches live in `benches/benches/*.rs`. Run them with `cargo bench -p strata-benches`;
//! figures and the exact commands go into `docs/BENCHMARKS.md`.
//!
//! [`scenarios`] is the end-to-end runner (binary `scenarios`): fresh release brokers driven
//! by `strata bench`, next to the machine's raw limits; `--plan replication` runs RF 1 and
//! RF 3 on a three-broker cluster of this machine. Run it with
//! `cargo run --release -p strata-benches --bin scenarios -- --quick`.

pub mod scenarios;
