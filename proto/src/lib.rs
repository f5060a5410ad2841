//! # strata-proto — everything that crosses a wire or lands on disk as bytes
//!
//! Map of the crate:
//!
//! - [`record`]: the record batch format (DESIGN.md §3, byte by byte in `docs/FORMAT.md`):
//!   build, encode, decode and validate batches. Pure: no I/O, no async runtime, no gRPC.
//!   The broker's storage engine (`strata_broker::log`) uses it to check batches during
//!   recovery; producers use it to build batches; consumers to decode them.
//! - [`types`]: the newtypes of Kafka's vocabulary (`Offset`, `LeaderEpoch`, …) shared by
//!   broker and client, so a byte position can never be passed where an offset is expected.
//! - later: the gRPC services (client API, replication, controller), generated with
//!   `tonic`/`prost` from `proto/*.proto` without a system `protoc`.
//!
//! Start reading at [`record::header`]: the fixed 61-byte batch header every other layer
//! relies on.

pub mod record;
pub mod types;
