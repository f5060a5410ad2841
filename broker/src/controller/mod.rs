//! # Controller (`broker::controller`): the cluster metadata
//!
//! The metadata is a log of typed records applied in order by a pure state machine
//! (the shape of Kafka's KRaft). One node for now: the log is a local partition log; the
//! cluster build will replicate the same records with openraft and apply them with the
//! same state machine.
//!
//! Map, from the bottom up:
//! - [`metadata_record`]: [`MetadataRecord`], the typed changes, stored as tagged JSON.
//! - [`image`]: [`MetadataImage`], the metadata at one version (brokers, topics,
//!   partitions, producer-id blocks).
//! - [`state_machine`]: [`apply`] a record to an image; pure and deterministic.
//! - [`topic_config`]: config keys, validation, defaults ([`BrokerDefaults`]) and the
//!   effective settings a partition log gets.
//! - [`topic_validation`]: naming and count policy for new topics (hostile inputs 24–25 of
//!   `docs/RELIABILITY.md`).
//! - [`assignment`]: balanced replica placement for new partitions.
//! - [`election`]: leadership decisions (fence, unfence, controlled shutdown, preferred
//!   leaders, reassignment) as records, from the image alone.
//! - [`liveness`]: [`Leases`], broker leases on the monotonic clock (times passed in).
//! - [`topic_commands`]: admin requests → records, or a typed refusal.
//! - [`snapshot`]: `snapshot.json`, the image at a version, so restarts replay less.
//! - [`metadata_log`]: [`MetadataLog`], the records in `__cluster_metadata-0`, replay.
//! - [`controller`]: [`Controller`], the active controller: validate → append one batch
//!   (fsynced) → publish the new `Arc<MetadataImage>`.
//! - [`error`]: [`ControllerError`] and its Kafka code names.
//!
//! Start reading at [`Controller`], then [`state_machine::apply`]. No async, no gRPC here:
//! the service layer calls these synchronous methods and maps [`ControllerError::code_name`].

pub mod assignment;
// The file is named for the one type it holds, `Controller`, like every other file here.
#[allow(clippy::module_inception)]
pub mod controller;
pub mod election;
pub mod error;
pub mod image;
pub mod liveness;
pub mod metadata_log;
pub mod metadata_record;
pub mod snapshot;
pub mod state_machine;
pub mod topic_commands;
pub mod topic_config;
pub mod topic_validation;

pub use assignment::{assign_replicas, AssignmentRequest, PlacementBroker};
pub use controller::{BrokerRegistration, Controller, PRODUCER_ID_BLOCK_SIZE};
pub use election::{
    controlled_shutdown, elect_preferred, fence, reassign, unfence, ElectionOutcome,
    ElectionRefusal, ReassignmentOutcome,
};
pub use error::ControllerError;
pub use image::{BrokerInfo, MetadataImage, PartitionImage, TopicImage};
pub use liveness::{Leases, StaleIncarnation};
pub use metadata_log::{MetadataLog, MetadataLogOptions};
pub use metadata_record::MetadataRecord;
pub use state_machine::apply;
pub use topic_commands::{ConfigChange, NewTopic};
pub use topic_config::{
    BrokerDefaults, CleanupPolicy, ConfigKey, ConfigValue, ConfigValueSource, EffectiveTopicConfig,
    TopicConfig,
};
pub use topic_validation::{PartitionLimits, METADATA_TOPIC, PARTITIONS_MAX};

#[cfg(test)]
mod controller_tests;
#[cfg(test)]
mod state_machine_tests;
