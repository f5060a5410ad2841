//! # strata-client — the Rust client for Strata
//!
//! Produce, consume and administer a Strata cluster over its gRPC client API
//! (`proto/proto/strata/v1/client_api.proto`). Its conventions (settings by their Kafka
//! names, errors, idempotence, partitioning) are in `docs/CLIENT.md`.
//!
//! ## Map of the crate
//!
//! - [`client`]: [`Client`] and its builder: bootstrap brokers (`STRATA_BROKERS`,
//!   default `127.0.0.1:7070`), one gRPC channel per broker (`connection`), the
//!   `metadata` cache that routes each partition to its leader.
//! - [`producer`]: [`Producer`]. Records go through a per-topic task (metadata,
//!   [`partitioner`]: explicit partition, Kafka's murmur2 for keys, sticky for keyless)
//!   to a per-partition task (accumulator with `batch_size`/`linger`, compression,
//!   idempotent sequence numbers, up to `max_in_flight` requests on one bidirectional
//!   `Produce` stream per broker, ordered retries until `delivery_timeout`).
//! - [`consumer`]: [`Consumer`], a `Stream` of [`ConsumedRecord`]s fed by one long-poll
//!   fetch loop per leader broker, with per-partition prefetch, `seek`, `pause`, `resume`;
//!   with `.group(..)`, a coordinator task joins the group, heartbeats, takes up and gives
//!   back partitions as the group rebalances ([`RebalanceEvent`]) and commits offsets by
//!   the [`CommitMode`] (`consumer/group/`).
//! - [`retry_topics`]: [`RetryPolicy`], [`HandlerError`] and the names and headers of a
//!   group's retry and dead-letter topics; a group consumer built with
//!   `.retry(policy)` forwards the records its handler fails there
//!   ([`Consumer::run`], [`Consumer::fail`]; `consumer/retry/`, `docs/RETRY.md`). The
//!   hand-offs are counted through the `metrics` facade (`consumer/retry/metrics.rs`).
//! - [`dead_letters`]: [`DeadLetters`], from [`Client::dead_letters`]: replaying a
//!   group's dead-letter topic ([`Replay`], a dry run unless executed).
//! - [`admin`]: [`Admin`]: topics, configs, partitions, offsets, cluster info; the
//!   controller quorum, preferred leader elections and partition reassignments; consumer
//!   groups (list, describe with lag, delete, committed offsets, seek from outside).
//! - [`delayed_delivery`]: due times on records ([`Record::deliver_at`]): the
//!   `strata.deliver-at-ms` header, the producer's checks against the topic's
//!   `delivery_delay_*` configs ([`DeliveryTimeError`]); consumers hold a record back
//!   until it is due the same way as a retry record (`Consumer::defer`).
//! - [`record`]: [`Record`], [`Delivery`], [`ConsumedRecord`], [`Offset`].
//! - [`error`]: [`Error`], with `is_retriable()`, `outcome()` and Kafka code names.
//!
//! The crate depends on `strata-proto` only, never on the broker. Batches are built and
//! decoded with [`strata_proto::record`]. Start reading at `producer/mod.rs` for the
//! produce flow and `consumer/mod.rs` for the fetch flow.
//!
//! ## Quick start
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use strata_client::{Acks, Client, CommitMode, Compression, Offset, Record};
//! use tokio_stream::StreamExt;
//!
//! # async fn handle(_record: &strata_client::ConsumedRecord) -> Result<(), strata_client::Error> { Ok(()) }
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::builder()
//!     .brokers(["127.0.0.1:7070"]) // or STRATA_BROKERS
//!     .client_id("billing-svc")
//!     .build()
//!     .await?; // connects, loads metadata
//!
//! let producer = client
//!     .producer()
//!     .acks(Acks::All) // default
//!     .linger(Duration::from_millis(5))
//!     .compression(Compression::Lz4)
//!     .build()?;
//!
//! let d = producer
//!     .send(Record::to("orders").key("k1").value("payload").header("trace", "abc"))
//!     .await?;
//! println!("{}@{} at {}", d.partition, d.offset, d.timestamp);
//!
//! let pending = producer.enqueue(Record::to("orders").value("later"))?; // queue now
//! producer.flush().await?; // also done by close()
//! let _delivery = pending.await?;
//! producer.close().await?;
//!
//! let mut consumer = client
//!     .consumer()
//!     .topics(["orders"])
//!     .group("billing") // without a group: every partition of the topics
//!     .start(Offset::Earliest) // auto.offset.reset
//!     .commit(CommitMode::Auto {
//!         interval: Duration::from_secs(5),
//!     })
//!     .build()
//!     .await?;
//! while let Some(record) = consumer.next().await {
//!     let record = record?;
//!     handle(&record).await?;
//! }
//! consumer.close().await?; // final commit, then leave the group
//! # Ok(())
//! # }
//! ```

pub mod admin;
pub mod client;
mod connection;
pub mod consumer;
pub mod dead_letters;
pub mod delayed_delivery;
pub mod error;
mod fetch_call;
mod group_coordinator;
mod grpc_call;
mod metadata;
pub mod partitioner;
mod produce_call;
pub mod producer;
pub mod record;
mod retry;
pub mod retry_topics;

pub use admin::{
    Admin, BrokerDescription, ClusterDescription, ClusterInfo, CommittedOffset, ConfigChange,
    ConfigEntry, ConfigSource, ControllerVoter, DeadLetterTopic, ElectionResult, ElectionSelection,
    GroupDescription, GroupListing, GroupListings, GroupMemberDescription, GroupOffset,
    GroupOffsetResult, GroupPartitionOffset, GroupRetryTopic, GroupState, ListGroupsFailure,
    NewTopic, OffsetSpec, PartitionDescription, PartitionReassignment, ReassignmentResult,
    TopicDescription, TopicInfo,
};
pub use client::{Client, ClientBuilder};
pub use consumer::{
    CommitMode, Consumer, ConsumerBuilder, Marker, PendingCommit, RebalanceEvent, RebalanceEvents,
};
pub use dead_letters::{
    DeadLetters, Replay, ReplayError, ReplayPartition, ReplayReport, ReplaySample, ReplayStart,
    ReplayTarget,
};
pub use delayed_delivery::DeliveryTimeError;
pub use error::{Error, ErrorCode, WriteOutcome};
pub use metadata::BrokerNode;
pub use producer::{Acks, DeliveryFuture, Producer, ProducerBuilder, SendError};
pub use record::{ConsumedRecord, Delivery, IntoTopic, Offset, Record};
pub use retry_topics::{
    FailureKind, HandlerError, Handoff, Ordering as RetryOrdering, RetryPolicy, RetryTopicNames,
};
pub use strata_proto::record::Compression;

#[cfg(test)]
mod e2e_tests;
#[cfg(test)]
mod test_broker;
