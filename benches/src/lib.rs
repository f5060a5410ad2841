//! # strata-benches — criterion micro-benchmarks and (later) the scenario runner
//!
//! Benches live in `benches/benches/*.rs`. Run them with `cargo bench -p strata-benches`;
//! figures and the exact commands go into `docs/BENCHMARKS.md`.
