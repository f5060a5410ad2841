//! # strata-client — the Rust client for Strata
//!
//! Empty for now. What will live here (DESIGN.md §8, `reference/client-api.md`):
//!
//! - `Client`: connection and metadata cache for a set of bootstrap brokers.
//! - `Producer`: murmur2 keyed partitioning, sticky keyless partitioning, per-partition
//!   accumulators (`batch_size`, `linger`), lz4/zstd compression, acks, idempotence on by
//!   default, bounded retries with a `delivery_timeout`.
//! - `Consumer`: `assign` and group `subscribe`, an async `Stream` of records, `seek`,
//!   `pause`/`resume`, offset commits; retry and dead-letter topics as an opt-in wrapper.
//! - `Admin`: topics, configs, groups, cluster health.
//!
//! The crate depends on `strata-proto` only, never on the broker. Batches are built with
//! [`strata_proto::record`].
