//! [`Controller`]: the one-node active controller. It owns the metadata log, turns admin
//! requests into metadata records and publishes the resulting [`MetadataImage`].
//!
//! Every mutation runs under one mutex, in this order: check the request against the
//! current image → build the records → apply them to a copy of the image (so a record the
//! state machine would refuse is never written) → append them as one batch and wait for
//! the fsync → publish the copy. If any step fails nothing is published, and unless the
//! append itself failed half-way nothing is written. Readers never wait for a mutation:
//! [`Controller::image`] clones an `Arc` under a read lock.
//!
//! With `validate_only`, the same checks run and the image the change would produce is
//! returned without being written or published.
//!
//! Producer ids are handed out from blocks of [`PRODUCER_ID_BLOCK_SIZE`] reserved with an
//! `AllocateProducerIds` record; a restart starts a fresh block, so an id is never handed
//! out twice (the rest of the old block is skipped).
//!
//! In the cluster build the same flow runs on the Raft leader, with openraft's log in place
//! of [`MetadataLog`]; `state_machine::apply` does not change.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use strata_proto::types::BrokerId;

use crate::log::LogManager;

use super::error::ControllerError;
use super::image::MetadataImage;
use super::metadata_log::{MetadataLog, MetadataLogOptions};
use super::metadata_record::MetadataRecord;
use super::state_machine::apply;
use super::topic_commands::{self, ConfigChange, CreationContext, NewTopic};
use super::topic_config::{BrokerDefaults, TopicConfig};
use super::topic_validation::{PartitionLimits, TopicOrigin};

/// How many producer ids one `AllocateProducerIds` record reserves.
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

/// What this broker registers as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerRegistration {
    pub broker_id: BrokerId,
    /// Where clients reach this broker (`host:port`).
    pub address: String,
    pub rack: Option<String>,
}

/// The one-node active controller. See the module docs.
#[derive(Debug)]
pub struct Controller {
    defaults: BrokerDefaults,
    /// How many partitions a broker may host ([`Controller::with_partition_limits`]).
    partition_limits: PartitionLimits,
    broker_id: BrokerId,
    published: RwLock<Arc<MetadataImage>>,
    mutation: Mutex<MutationState>,
}

/// Everything a mutation changes besides the published image.
#[derive(Debug)]
struct MutationState {
    log: MetadataLog,
    /// Producer ids `[next, end)` are reserved and not yet handed out.
    producer_ids_next: i64,
    producer_ids_end: i64,
    /// Rotates the first broker of each new topic's replica assignment.
    assignment_start: usize,
}

/// Whether a mutation is carried out or only checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Commit,
    ValidateOnly,
}

impl Mode {
    fn from_validate_only(validate_only: bool) -> Mode {
        if validate_only {
            Mode::ValidateOnly
        } else {
            Mode::Commit
        }
    }
}

impl Controller {
    /// Replays the metadata log in `logs`, names the cluster on its first start and
    /// registers this broker with a new incarnation.
    pub fn open(
        logs: &LogManager,
        defaults: BrokerDefaults,
        me: BrokerRegistration,
    ) -> Result<Controller, ControllerError> {
        Self::open_with_options(logs, defaults, me, MetadataLogOptions::default())
    }

    /// [`Controller::open`] with explicit metadata log settings (snapshot cadence).
    pub fn open_with_options(
        logs: &LogManager,
        defaults: BrokerDefaults,
        me: BrokerRegistration,
        options: MetadataLogOptions,
    ) -> Result<Controller, ControllerError> {
        let (log, image) = MetadataLog::open(logs, options)?;
        warn_about_ignored_overrides(&image, &defaults);
        let controller = Controller {
            defaults,
            partition_limits: PartitionLimits::default(),
            broker_id: me.broker_id,
            published: RwLock::new(Arc::new(image)),
            mutation: Mutex::new(MutationState {
                log,
                producer_ids_next: 0,
                producer_ids_end: 0,
                assignment_start: rand::random::<u16>().into(),
            }),
        };
        controller.register(me)?;
        Ok(controller)
    }

    fn register(&self, me: BrokerRegistration) -> Result<(), ControllerError> {
        let mut state = self.lock();
        let image = self.image();
        let mut records = Vec::new();
        if image.cluster_id.is_none() {
            records.push(MetadataRecord::SetClusterId {
                cluster_id: random_id_hex(),
            });
        }
        let incarnation = image
            .broker(me.broker_id)
            .map_or(1, |broker| broker.incarnation.saturating_add(1));
        records.push(MetadataRecord::RegisterBroker {
            broker_id: me.broker_id.0,
            address: me.address,
            rack: me.rack,
            incarnation,
        });
        let image = self.commit(&mut state, &records, Mode::Commit)?;
        tracing::info!(broker_id = %self.broker_id, incarnation, version = image.version,
            cluster_id = image.cluster_id.as_deref().unwrap_or(""), "controller ready");
        Ok(())
    }

    /// Refuses topic creations and partition increases that would give a broker more
    /// partitions than `limits` allow (none by default).
    pub fn with_partition_limits(mut self, limits: PartitionLimits) -> Controller {
        self.partition_limits = limits;
        self
    }

    /// The current metadata.
    pub fn image(&self) -> Arc<MetadataImage> {
        Arc::clone(
            &self
                .published
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }

    pub fn defaults(&self) -> &BrokerDefaults {
        &self.defaults
    }

    /// The broker this controller runs in.
    pub fn broker_id(&self) -> BrokerId {
        self.broker_id
    }

    /// Creates a user topic: its name may not start with `__`.
    pub fn create_topic(
        &self,
        spec: NewTopic,
        validate_only: bool,
    ) -> Result<Arc<MetadataImage>, ControllerError> {
        self.create(
            spec,
            TopicOrigin::User,
            Mode::from_validate_only(validate_only),
        )
    }

    /// Creates a topic the broker itself needs (`__consumer_offsets`, …).
    pub fn create_internal_topic(
        &self,
        spec: NewTopic,
    ) -> Result<Arc<MetadataImage>, ControllerError> {
        self.create(spec, TopicOrigin::Internal, Mode::Commit)
    }

    fn create(
        &self,
        spec: NewTopic,
        origin: TopicOrigin,
        mode: Mode,
    ) -> Result<Arc<MetadataImage>, ControllerError> {
        let mut state = self.lock();
        let image = self.image();
        let topic_id = new_topic_id(&image);
        let context = CreationContext {
            origin,
            defaults: &self.defaults,
            topic_id: &topic_id,
            assignment_start: state.assignment_start,
            limits: &self.partition_limits,
        };
        let records = topic_commands::create_topic(&image, &spec, context)?;
        let image = self.commit(&mut state, &records, mode)?;
        if mode == Mode::Commit {
            state.assignment_start = state.assignment_start.wrapping_add(1);
            tracing::info!(topic = %spec.name, %topic_id, version = image.version, "created topic");
        }
        Ok(image)
    }

    pub fn delete_topic(&self, name: &str) -> Result<Arc<MetadataImage>, ControllerError> {
        let mut state = self.lock();
        let records = topic_commands::delete_topic(&self.image(), name)?;
        let image = self.commit(&mut state, &records, Mode::Commit)?;
        tracing::info!(topic = name, version = image.version, "deleted topic");
        Ok(image)
    }

    /// Sets and deletes config overrides of `topic`; returns what changed (old → new).
    /// Setting a value a key already has, or deleting a key that is not set, changes
    /// nothing and writes nothing.
    pub fn alter_configs(
        &self,
        topic: &str,
        set: BTreeMap<String, String>,
        delete: Vec<String>,
        validate_only: bool,
    ) -> Result<(Vec<ConfigChange>, Arc<MetadataImage>), ControllerError> {
        let mut state = self.lock();
        let (changes, records) =
            topic_commands::alter_configs(&self.image(), topic, &set, &delete, &self.defaults)?;
        let image = self.commit(
            &mut state,
            &records,
            Mode::from_validate_only(validate_only),
        )?;
        Ok((changes, image))
    }

    /// Grows `topic` to `total_count` partitions; counts only go up.
    pub fn create_partitions(
        &self,
        topic: &str,
        total_count: i32,
        validate_only: bool,
    ) -> Result<Arc<MetadataImage>, ControllerError> {
        let mut state = self.lock();
        let records = topic_commands::create_partitions(
            &self.image(),
            topic,
            total_count,
            &self.partition_limits,
        )?;
        self.commit(
            &mut state,
            &records,
            Mode::from_validate_only(validate_only),
        )
    }

    /// A producer id never handed out before, in this process or an earlier one.
    pub fn allocate_producer_id(&self) -> Result<i64, ControllerError> {
        let mut state = self.lock();
        if state.producer_ids_next >= state.producer_ids_end {
            let first_id = self.image().next_producer_id;
            let record = MetadataRecord::AllocateProducerIds {
                first_id,
                count: PRODUCER_ID_BLOCK_SIZE,
            };
            let image = self.commit(&mut state, &[record], Mode::Commit)?;
            state.producer_ids_next = first_id;
            state.producer_ids_end = image.next_producer_id;
        }
        let id = state.producer_ids_next;
        state.producer_ids_next += 1;
        Ok(id)
    }

    fn lock(&self) -> MutexGuard<'_, MutationState> {
        self.mutation
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Applies `records` to a copy of the current image, then (in `Mode::Commit`) appends
    /// them as one batch and publishes the copy. No records: the current image.
    fn commit(
        &self,
        state: &mut MutationState,
        records: &[MetadataRecord],
        mode: Mode,
    ) -> Result<Arc<MetadataImage>, ControllerError> {
        let current = self.image();
        if records.is_empty() {
            return Ok(current);
        }
        let mut next = MetadataImage::clone(&current);
        for (offset, record) in (current.version..).zip(records) {
            apply(&mut next, record, offset)?;
        }
        if mode == Mode::ValidateOnly {
            return Ok(Arc::new(next));
        }
        state.log.append(records, current.version)?;
        let next = Arc::new(next);
        *self
            .published
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::clone(&next);
        state.log.applied(&next, records.len() as u64);
        Ok(next)
    }
}

/// Logs each stored topic config this broker does not apply (written before a rule
/// existed, e.g. `cleanup_policy=compact`, or damaged): the metadata log still opens and
/// keeps the value, but the topic runs with the broker's.
fn warn_about_ignored_overrides(image: &MetadataImage, defaults: &BrokerDefaults) {
    for topic in image.topics.values() {
        for error in TopicConfig::ignored_overrides(&topic.configs, defaults) {
            tracing::warn!(topic = %topic.name, %error,
                "a stored topic config is not applied; the topic uses the broker's value");
        }
    }
}

/// 128 random bits as 32 lowercase hex digits (topic and cluster ids).
fn random_id_hex() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// A topic id that is well-formed (not all zeros) and not in use.
fn new_topic_id(image: &MetadataImage) -> String {
    loop {
        let id = random_id_hex();
        if id.bytes().any(|byte| byte != b'0') && image.topic_by_id(&id).is_none() {
            return id;
        }
    }
}
