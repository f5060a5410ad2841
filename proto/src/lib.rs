//! # strata-proto — everything that crosses a wire or lands on disk as bytes
//!
//! Map of the crate:
//!
//! - [`record`]: the record batch format (Kafka's v2, byte by byte in `docs/FORMAT.md`):
//!   build, encode, decode and validate batches. Pure: no I/O, no async runtime, no gRPC.
//!   The broker's storage engine (`strata_broker::log`) uses it to check batches during
//!   recovery; producers use it to build batches; consumers to decode them.
//! - [`types`]: the newtypes of Kafka's vocabulary (`Offset`, `LeaderEpoch`, …) shared by
//!   broker and client, so a byte position can never be passed where an offset is expected.
//! - [`api`]: the gRPC services generated with `tonic`/`prost` from `proto/strata/v1/*.proto`
//!   by `build.rs` (protox: no system `protoc`). [`error_code`] says which wire error codes
//!   are retriable. [`grpc_frame`] lays fetch answers out and reads them back without
//!   copying record bytes (the fetch path's zero-copy framing). The `Controller` service
//!   (`controller.proto`) carries the controller quorum's Raft RPCs between brokers; the
//!   `Replication` service (`replication.proto`) the replica fetch sessions and
//!   `OffsetForLeaderEpoch` between followers and leaders. [`FILE_DESCRIPTOR_SET`] holds
//!   the compiled `.proto` files, for gRPC server reflection.
//!
//! - [`views`]: plain serde structs for the JSON that the CLI (`--format json`) and the
//!   broker's admin API (`GET /v1/…`) both print, so the two cannot drift.
//!
//! Start reading at [`record::header`]: the fixed 61-byte batch header every other layer
//! relies on.

pub mod error_code;
pub mod fetch_session;
pub mod grpc_frame;
pub mod record;
pub mod types;
pub mod views;

/// The gRPC API, generated from `proto/strata/v1/*.proto` at build time.
pub mod api {
    /// Version 1 of the client API.
    #[allow(
        clippy::all,
        clippy::pedantic,
        missing_docs,
        missing_debug_implementations,
        rust_2018_idioms
    )]
    pub mod v1 {
        tonic::include_proto!("strata.v1");
    }
}

/// The encoded `FileDescriptorSet` of `proto/strata/v1/*.proto` (with their imports), as
/// `build.rs` compiled them: what gRPC server reflection serves, so that
/// `grpcurl -plaintext 127.0.0.1:7070 list` works without the `.proto` files.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/strata_descriptor.bin"));
