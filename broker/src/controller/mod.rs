//! # Controller (`broker::controller`): the cluster metadata
//!
//! The metadata is a log of typed records applied in order by a pure state machine
//! (the shape of Kafka's KRaft), replicated by the controller quorum ([`quorum`], Raft
//! via openraft). A one-node cluster is a quorum of one voter; nothing else changes.
//!
//! Map, from the bottom up:
//! - [`metadata_record`]: [`MetadataRecord`], the typed changes, stored as tagged JSON.
//! - [`image`]: [`MetadataImage`], the metadata at one version (brokers, topics,
//!   partitions, producer-id blocks).
//! - [`state_machine`]: [`apply`] a record to an image; pure and deterministic.
//! - [`topic_config`]: config keys, validation, defaults ([`BrokerDefaults`]) and the
//!   effective settings a partition log gets; [`topic_labels`]: the `strata.retry.*`
//!   labels a client stores on the retry and dead-letter topics it creates.
//! - [`topic_validation`]: naming and count policy for new topics (hostile inputs 24–25 of
//!   `docs/RELIABILITY.md`).
//! - [`assignment`]: balanced replica placement for new partitions.
//! - [`election`]: leadership decisions (fence, unfence, controlled shutdown, preferred
//!   leaders, reassignment) as records, from the image alone.
//! - [`isr`]: ISR changes a partition leader asks for (Kafka's AlterPartition) as
//!   records, or a typed refusal.
//! - [`liveness`]: [`Leases`], broker leases on the monotonic clock (times passed in).
//! - [`topic_commands`]: admin requests → records, or a typed refusal.
//! - [`snapshot`]: `snapshot.json`, the image at a version, so restarts replay less.
//! - [`metadata_log`]: [`MetadataLog`], the metadata log of a one-node broker from before
//!   the quorum (`__cluster_metadata-0`), read once to seed the quorum's first snapshot.
//! - [`quorum`]: the Raft voter of this broker, the active controller (on the leader),
//!   registration, heartbeats and leases.
//! - [`error`]: [`ControllerError`] and its Kafka code names.
//!
//! Start reading at [`quorum::active`], then [`state_machine::apply`]. Everything but
//! [`quorum`] is synchronous and pure; the service layer maps
//! [`ControllerError::code_name`].

pub mod assignment;
pub mod election;
pub mod error;
pub mod image;
pub mod isr;
pub mod liveness;
pub mod metadata_log;
pub mod metadata_record;
pub mod quorum;
pub mod snapshot;
pub mod state_machine;
pub mod topic_commands;
pub mod topic_config;
pub mod topic_labels;
pub mod topic_validation;

pub use assignment::{assign_replicas, AssignmentRequest, PlacementBroker};
pub use election::{
    controlled_shutdown, elect_preferred, fence, reassign, unfence, ElectionOutcome,
    ElectionRefusal, ReassignmentOutcome,
};
pub use error::ControllerError;
pub use image::{BrokerInfo, Listener, MetadataImage, PartitionImage, TopicImage};
pub use isr::{alter_isr, AlterPartition};
pub use liveness::{Leases, StaleIncarnation};
pub use metadata_log::{MetadataLog, MetadataLogOptions};
pub use metadata_record::MetadataRecord;
pub use quorum::active::PRODUCER_ID_BLOCK_SIZE;
pub use state_machine::apply;
pub use topic_commands::{ConfigChange, NewTopic};
pub use topic_config::{
    BrokerDefaults, CleanupPolicy, ConfigKey, ConfigValue, ConfigValueSource, EffectiveTopicConfig,
    MinInsyncReplicas, TopicConfig,
};
pub use topic_validation::{PartitionLimits, METADATA_TOPIC, PARTITIONS_MAX};

#[cfg(test)]
mod state_machine_tests;
