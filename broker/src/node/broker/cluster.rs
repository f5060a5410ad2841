//! The node in the cluster: start (log manager, controller voter, registration), following
//! the metadata its voter applies (`apply_image`), requests to the active controller, the
//! ISR changes of the partitions it leads, and the one-node data directory from before the
//! quorum. A child module of `broker.rs`, so it shares `Node`'s private state.

use super::*;
use crate::controller::EffectiveTopicConfig;
use crate::replication::leader::LeaderConfig;

/// What `apply_image` needs of a partition this broker leads: its topic, leader epoch, log
/// settings, leader settings and the controller's image of it.
type LedPartition = (
    TopicName,
    LeaderEpoch,
    LogConfig,
    LeaderConfig,
    PartitionImage,
);

/// How often the partitions led here with more than one replica are checked for ISR
/// changes to propose (followers caught up, or lagging past `replica_lag_max`).
const ISR_CHECK_INTERVAL: Duration = Duration::from_millis(200);

/// How long a start waits for a one-voter quorum to elect itself and register this broker.
const SINGLE_VOTER_START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long an admin call waits for this broker to apply the controller's answer.
const APPLY_TIMEOUT: Duration = Duration::from_secs(15);

impl Node {
    /// Opens the data directory (recovering every log), starts this broker's controller
    /// voter and starts serving the partitions this broker leads. A one-voter quorum
    /// (a one-node cluster) is elected and this broker registered before it returns; in a
    /// cluster that needs the other voters, so registration goes on in the background
    /// once the caller serves the listener.
    pub async fn start(config: NodeConfig) -> Result<Arc<Node>, NodeError> {
        let budget = config.descriptor_budget;
        let legacy = config
            .data_dir
            .join(MetadataLog::partition()?.dir_name())
            .is_dir();
        crate::controller::quorum::check_voters(
            &config.data_dir.join(CONTROLLER_DIR),
            &config.voters,
            legacy,
        )?;
        let logs = {
            let (data_dir, log_defaults) = (config.data_dir.clone(), config.log_defaults.clone());
            tokio::task::spawn_blocking(move || {
                LogManager::open_with(
                    &data_dir,
                    log_defaults,
                    Arc::new(SystemClock),
                    OpenSegments::new(budget.sealed_segments_open_max()),
                )
            })
            .await
            .map_err(|error| NodeError::InvalidRequest {
                reason: format!("opening the logs failed: {error}"),
            })??
        };
        let logs = Arc::new(logs);
        let controller_dir = config.data_dir.join(CONTROLLER_DIR);
        let seed = {
            let logs = Arc::clone(&logs);
            let controller_dir = controller_dir.clone();
            tokio::task::spawn_blocking(move || legacy_seed(&logs, &controller_dir))
                .await
                .map_err(|error| NodeError::InvalidRequest {
                    reason: format!("reading the metadata failed: {error}"),
                })??
        };
        let migrated = seed.is_some();
        let quorum = Quorum::start(
            QuorumConfig {
                node_id: config.node_id.0,
                voters: config.voters.clone(),
                dir: controller_dir,
                local_ip: config.local_ip,
                advertised_address: config.advertised_address.clone(),
                external_advertised_address: config.external_advertised_address.clone(),
                rack: config.rack.clone(),
                heartbeat_interval: config.heartbeat_interval,
                session_timeout: config.session_timeout,
                snapshot_every_entries: 1000,
                defaults: config.topic_defaults.clone(),
                limits: PartitionLimits {
                    // One of the broker's partitions is the metadata log.
                    per_broker_max: budget.partitions_max().saturating_sub(1),
                    per_broker_reason: budget.limited_by(),
                },
            },
            seed,
        )
        .await?;
        if migrated {
            let partition = MetadataLog::partition()?;
            let aside = logs.set_aside(&partition)?;
            tracing::info!(path = %aside.display(),
                "the one-node metadata log now lives in the controller quorum's snapshot; the old log is kept aside");
        }
        tokio::spawn(Arc::clone(&quorum).run_heartbeats());
        if config.voters.len() == 1 {
            quorum.wait_registered(SINGLE_VOTER_START_TIMEOUT).await?;
        }
        // The cleaner looks as often as retention when that is more often than its own
        // default: both are the log's cleanup policy at work.
        let background = logs.start_background_tasks(BackgroundSchedule {
            retention_check_every: config.retention_check_interval,
            cleaner_check_every: config
                .retention_check_interval
                .min(crate::log::manager::CLEANER_CHECK_EVERY_DEFAULT),
            ..BackgroundSchedule::default()
        });
        let node = Arc::new(Node {
            config,
            logs,
            quorum,
            partitions: RwLock::new(HashMap::new()),
            applied_version: std::sync::Mutex::new(-1),
            appended: Notify::new(),
            shutting_down: AtomicBool::new(false),
            stop: Notify::new(),
            background: std::sync::Mutex::new(Some(background)),
            fatal: tokio::sync::watch::Sender::new(None),
            followed: tokio::sync::watch::Sender::new(Arc::default()),
            repairs: ReplicaRepairs::default(),
        });
        let image = node.quorum.image();
        {
            let node = Arc::clone(&node);
            tokio::task::spawn_blocking(move || {
                node.apply_image(&image)?;
                node.set_aside_unknown_partitions(&image)
            })
            .await
            .map_err(|error| NodeError::InvalidRequest {
                reason: format!("applying the metadata failed: {error}"),
            })??;
        }
        tokio::spawn(Arc::clone(&node).follow_metadata());
        tokio::spawn(Arc::clone(&node).run_isr_changes());
        {
            let stopping = Arc::clone(&node);
            tokio::spawn(crate::node::producer_snapshots::run(
                Arc::clone(&node.logs),
                async move { stopping.stopping().await },
            ));
        }
        node.start_fetchers();
        Ok(node)
    }

    /// Starts the replica fetchers of the partitions this broker follows; they stop at
    /// shutdown.
    fn start_fetchers(self: &Arc<Self>) {
        let quorum = Arc::clone(&self.quorum);
        let identity = FetcherIdentity {
            replica_id: self.config.node_id,
            local_ip: self.config.local_ip,
            incarnation: Arc::new(move || quorum.incarnation()),
        };
        let node = Arc::clone(self);
        tokio::spawn(run_fetchers(
            identity,
            self.followed.subscribe(),
            async move { node.stopping().await },
        ));
    }

    /// Every [`ISR_CHECK_INTERVAL`] until shutdown: asks the controller for the ISR
    /// changes the partitions led here with more than one replica propose (followers
    /// caught up in, lagging ones out), one in flight per partition.
    async fn run_isr_changes(self: Arc<Self>) {
        let mut ticks = tokio::time::interval(ISR_CHECK_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                () = self.stopping() => return,
            }
            let handles: Vec<Arc<PartitionHandle>> = self
                .partitions
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .values()
                .filter(|handle| handle.is_replicated())
                .cloned()
                .collect();
            let now = std::time::Instant::now();
            for handle in handles {
                let Some(proposal) = handle.isr_change(now) else {
                    continue;
                };
                tokio::spawn(Arc::clone(&self).alter_isr(handle, proposal));
            }
        }
    }

    /// Sends one ISR proposal and feeds the answer back to the partition.
    async fn alter_isr(self: Arc<Self>, handle: Arc<PartitionHandle>, proposal: IsrProposal) {
        let request = ControllerRequest::AlterPartition {
            broker_id: self.config.node_id.0,
            incarnation: self.quorum.incarnation(),
            topic: handle.topic.as_str().to_owned(),
            partition: handle.partition.0,
            leader_epoch: proposal.leader_epoch.0,
            partition_epoch: proposal.partition_epoch,
            new_isr: proposal.new_isr.iter().map(|id| id.0).collect(),
        };
        match self.submit(request).await {
            Ok(ControllerReply {
                body:
                    ReplyBody::IsrChanged {
                        partition_epoch,
                        isr,
                    },
                ..
            }) => {
                let isr = isr.into_iter().map(BrokerId).collect();
                if handle.on_isr_committed(isr, partition_epoch) {
                    self.appended.notify_waiters();
                }
            }
            Ok(other) => {
                tracing::warn!(?other, "unexpected answer to an ISR change");
                handle.on_isr_refused(&proposal);
            }
            Err(error) => {
                tracing::info!(topic = %handle.topic, partition = handle.partition.0, %error,
                    "the controller refused an ISR change");
                handle.on_isr_refused(&proposal);
            }
        }
    }

    /// Whether `handle` is still the partition this broker serves as leader.
    pub(super) fn leads(&self, handle: &Arc<PartitionHandle>) -> bool {
        self.partitions
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&(handle.topic.as_str().to_owned(), handle.partition.0))
            .is_some_and(|current| Arc::ptr_eq(current, handle))
    }

    /// The `NOT_ENOUGH_REPLICAS` check of an `acks=all` produce, before the append.
    pub fn check_acks_all(&self, topic: &str, partition: i32) -> Result<(), NodeError> {
        self.partition(topic, partition)?.check_acks_all()
    }

    /// Applies every new image this broker's voter publishes, in order, until shutdown.
    async fn follow_metadata(self: Arc<Self>) {
        let mut images = self.quorum.subscribe();
        let mut registrations = self.quorum.registrations();
        // A registration applied before the subscription above is not reported by it.
        let mut reapply = true;
        loop {
            if std::mem::take(&mut reapply) {
                // The image holding this broker's registration was likely applied before
                // its incarnation was known here, so it led nothing: apply it again.
                let node = Arc::clone(&self);
                match tokio::task::spawn_blocking(move || node.reapply_image()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => tracing::error!(%error, "applying the metadata failed"),
                    Err(error) => tracing::error!(%error, "applying the metadata failed"),
                }
            }
            tokio::select! {
                changed = images.changed() => if changed.is_err() { return },
                changed = registrations.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    reapply = true;
                    continue;
                }
                () = self.stopping() => return,
            }
            if let Some(reason) = self.quorum.fatal() {
                if self.is_shutting_down() {
                    return; // the shutdown stopped the quorum
                }
                self.fatal
                    .send_replace(Some(format!("controller quorum stopped: {reason}")));
                return;
            }
            let image = Arc::clone(&images.borrow_and_update());
            let node = Arc::clone(&self);
            let applied = tokio::task::spawn_blocking(move || node.apply_image(&image)).await;
            match applied {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::error!(%error, "applying the metadata failed");
                    if let NodeError::Log(log) = &error {
                        if log.is_fatal() {
                            self.report_fatal(log);
                        }
                    }
                }
                Err(error) => tracing::error!(%error, "applying the metadata failed"),
            }
        }
    }

    /// Notified after every commit (and at shutdown): long polls wait on it.
    pub(crate) fn appended(&self) -> &Notify {
        &self.appended
    }

    /// This broker's voter of the controller quorum.
    pub fn quorum(&self) -> &Arc<Quorum> {
        &self.quorum
    }

    /// Sends `request` to the active controller and waits until this broker has applied
    /// the version holding its change.
    pub async fn submit(
        self: &Arc<Self>,
        request: ControllerRequest,
    ) -> Result<ControllerReply, NodeError> {
        let reply = self.quorum.submit(request).await?;
        let image = self
            .quorum
            .wait_for_version(reply.version, APPLY_TIMEOUT)
            .await?;
        // Partitions are opened here too (not only by `follow_metadata`), so the answer
        // means the change is in effect on this broker.
        let node = Arc::clone(self);
        tokio::task::spawn_blocking(move || node.apply_image(&image))
            .await
            .map_err(|error| NodeError::InvalidRequest {
                reason: format!("applying the metadata failed: {error}"),
            })??;
        Ok(reply)
    }

    /// Acts on `image` unless a newer one was applied already: opens or updates every
    /// partition this broker leads; closes the ones it no longer leads but still holds a
    /// replica of (their logs stay); deletes the logs of partitions whose topic is gone or
    /// that no longer have a replica here.
    fn apply_image(self: &Arc<Self>, image: &MetadataImage) -> Result<(), NodeError> {
        let mut applied = self
            .applied_version
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if image.version <= *applied {
            return Ok(());
        }
        self.apply_image_locked(image, &mut applied)
    }

    /// Applies the current image again, even if it was applied already: after a damaged
    /// replica was repaired, so its log is followed (`replica_repair.rs`). Applying an
    /// image twice changes nothing else.
    fn reapply_image(self: &Arc<Self>) -> Result<(), NodeError> {
        let mut applied = self
            .applied_version
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Read under the lock: never older than what was applied.
        let image = self.quorum.image();
        if image.version < *applied {
            return Ok(());
        }
        self.apply_image_locked(&image, &mut applied)
    }

    fn apply_image_locked(
        self: &Arc<Self>,
        image: &MetadataImage,
        applied: &mut i64,
    ) -> Result<(), NodeError> {
        let me = self.config.node_id;
        // Nothing is led from an image that does not hold this process's own registration,
        // live: the image recovered from disk at start-up may name this broker leader of
        // partitions the controller moved while it was down, and serving them from that
        // view would answer reads and offsets from a stale high watermark. Any image that
        // holds the registration also holds every leadership change made before it.
        let may_lead = image.broker(me).is_some_and(|info| {
            !info.fenced && info.incarnation == self.quorum.incarnation() && info.incarnation > 0
        });
        let mut wanted: HashMap<(String, i32), LedPartition> = HashMap::new();
        let mut replicas_here: std::collections::HashSet<(String, i32)> = Default::default();
        let mut followed = Vec::new();
        for topic in image.topics.values() {
            let effective = TopicConfig::effective(&topic.configs, self.defaults());
            let log_config = effective.to_log_config(&self.config.log_defaults);
            let name = TopicName::new(&topic.name).map_err(|error| NodeError::InvalidRequest {
                reason: error.to_string(),
            })?;
            for (partition, state) in &topic.partitions {
                let key = (topic.name.clone(), *partition);
                if state.replicas.contains(&me) {
                    replicas_here.insert(key.clone());
                    let topic_partition =
                        TopicPartition::new(name.clone(), PartitionId(*partition));
                    if let Some(offline) = self
                        .logs
                        .get(&topic_partition)
                        .filter(|log| log.is_offline())
                    {
                        // Never followed (nor served) while damaged: repaired first, when
                        // that cannot lose a committed record.
                        let incarnation = self.quorum.incarnation();
                        match replica_repair::decide(image, state, me, incarnation) {
                            Decision::Repair => self.start_repair(topic_partition),
                            Decision::Wait { reason } => {
                                self.repairs.wait(&topic_partition, offline.dir(), reason)
                            }
                        }
                        if state.leader != Some(me) {
                            continue;
                        }
                    }
                    match state.leader {
                        Some(leader) if leader != me && followers::is_live(image, leader) => {
                            followed.push(FollowedSpec {
                                name: name.clone(),
                                partition: *partition,
                                topic_id: topic.id.clone(),
                                leader,
                                leader_epoch: LeaderEpoch(state.leader_epoch),
                                log_config: log_config.clone(),
                            });
                        }
                        _ => {}
                    }
                }
                if state.leader == Some(me) && may_lead {
                    wanted.insert(
                        key,
                        (
                            name.clone(),
                            LeaderEpoch(state.leader_epoch),
                            log_config.clone(),
                            self.leader_config(&effective, state),
                            state.clone(),
                        ),
                    );
                }
            }
        }
        let mut partitions = self
            .partitions
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let no_longer_led: Vec<(String, i32)> = partitions
            .keys()
            .filter(|key| !wanted.contains_key(*key))
            .cloned()
            .collect();
        for key in no_longer_led {
            if let Some(handle) = partitions.remove(&key) {
                tracing::info!(topic = %key.0, partition = key.1, "no longer leading the partition");
                drop(handle);
            }
        }
        // Published before any log is deleted or opened as the leader's, so the fetchers
        // let go of those first.
        let assignment = followers::open_followed(&self.logs, image, followed)?;
        self.followed.send_replace(Arc::new(assignment));
        // Logs of replicas that are gone: the topic was deleted, or the replica moved.
        for partition in self.logs.partitions() {
            let key = (partition.topic.as_str().to_owned(), partition.partition.0);
            if key.0 == METADATA_TOPIC || replicas_here.contains(&key) {
                continue;
            }
            let known = image
                .topics
                .get(&key.0)
                .is_some_and(|topic| topic.partitions.contains_key(&key.1));
            if known || *applied >= 0 {
                // Deleted (or moved) after this broker applied an image holding it.
                tracing::info!(%partition, "deleting the log of a replica no longer here");
                self.logs.delete(&partition)?;
            }
        }
        let now = std::time::Instant::now();
        let mut advanced = false;
        for (key, (name, epoch, log_config, leader_config, state)) in wanted {
            if let Some(handle) = partitions.get(&key) {
                handle.set_leader_epoch(epoch);
                if handle.log.config() != log_config {
                    handle.log.set_config(log_config);
                }
                advanced |= handle.on_metadata(me, &state, leader_config, now);
                continue;
            }
            let topic_partition = TopicPartition::new(name.clone(), PartitionId(key.1));
            let log = self
                .logs
                .get_or_create(&topic_partition, Some(log_config.clone()))?;
            log.set_config(log_config);
            let handle = PartitionHandle::open(name, PartitionId(key.1), log, epoch)?;
            handle.on_metadata(me, &state, leader_config, now);
            tracing::info!(topic = %key.0, partition = key.1, leader_epoch = epoch.0, "leading the partition");
            metrics::counter!(crate::node::partition::LEADER_ELECTIONS_TOTAL).increment(1);
            partitions.insert(key, Arc::new(handle));
        }
        if advanced {
            self.appended.notify_waiters();
        }
        *applied = image.version;
        Ok(())
    }

    /// The leader settings of a partition in `state` of a topic with `effective` configs:
    /// its `min_insync_replicas` (set, or the default for its replication factor) and
    /// this broker's `replica_lag_max`.
    fn leader_config(
        &self,
        effective: &EffectiveTopicConfig,
        state: &PartitionImage,
    ) -> LeaderConfig {
        let min_insync_replicas = effective.min_insync_replicas.value;
        LeaderConfig {
            min_insync_replicas: min_insync_replicas.for_replication_factor(state.replicas.len()),
            replica_lag_max: self.config.replica_lag_max,
        }
    }

    /// Starts repairing the offline log of `partition` on a blocking thread
    /// (`replica_repair.rs`), unless a repair of it runs already; once it is back online,
    /// the current image is applied again so the repaired log is followed.
    fn start_repair(self: &Arc<Self>, partition: TopicPartition) {
        if !self.repairs.begin(&partition) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.repairs.end(&partition);
            return;
        };
        let node = Arc::clone(self);
        runtime.spawn_blocking(move || {
            let repaired = replica_repair::repair_one(&node.logs, &partition);
            node.repairs.end(&partition);
            if repaired {
                if let Err(error) = node.reapply_image() {
                    tracing::error!(%partition, %error, "following a repaired replica failed");
                }
            }
        });
    }

    /// Partition directories the metadata does not know: left by a topic deletion the
    /// process did not finish, or written under metadata that was since lost. They are
    /// set aside, never deleted ([`LogManager::set_aside`]): a doubt must not cost data.
    fn set_aside_unknown_partitions(&self, image: &MetadataImage) -> Result<(), NodeError> {
        for partition in self.logs.partitions() {
            let topic = partition.topic.as_str();
            let known = image
                .topics
                .get(topic)
                .is_some_and(|state| state.partitions.contains_key(&partition.partition.0));
            if topic != METADATA_TOPIC && !known {
                let aside = self.logs.set_aside(&partition)?;
                tracing::warn!(
                    %partition,
                    path = %aside.display(),
                    "the metadata does not know this partition; its directory is set aside, not deleted"
                );
            }
        }
        Ok(())
    }
}

/// The image of a data directory written by a one-node broker from before the quorum (its
/// metadata log in `__cluster_metadata-0`), when the controller directory is new; `None`
/// otherwise. Partition data without any metadata is refused: starting afresh would hide
/// (and later delete) that data.
fn legacy_seed(
    logs: &LogManager,
    controller_dir: &std::path::Path,
) -> Result<Option<MetadataImage>, NodeError> {
    // An empty raft.log is what a start that stopped before anything was written leaves
    // (a crash between creating it and seeding the snapshot): not quorum state.
    let controller_state = ["snapshot.json", "vote.json"]
        .iter()
        .any(|file| controller_dir.join(file).exists())
        || std::fs::metadata(controller_dir.join("raft.log")).is_ok_and(|file| file.len() > 0);
    if controller_state {
        return Ok(None);
    }
    let metadata = MetadataLog::partition()?;
    if logs.get(&metadata).is_some() {
        let (_, image) = MetadataLog::open(logs, Default::default())?;
        return Ok(Some(image));
    }
    let partitions = logs.partitions();
    if let Some(first) = partitions.first() {
        return Err(ControllerError::MetadataDamaged {
            dir: controller_dir.display().to_string(),
            reason: format!(
                "it is missing, but the data directory holds {} partition directories (such as {first})",
                partitions.len()
            ),
        }
        .into());
    }
    Ok(None)
}
