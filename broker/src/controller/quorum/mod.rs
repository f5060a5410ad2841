//! # The controller quorum: the metadata log under Raft (openraft)
//!
//! Every broker is a voter (combined mode); `--controller-voters` lists them, and with no
//! flag a broker is a quorum of one. The Raft leader is the *active controller*: it alone
//! decides ([`active`]) and writes metadata records; every voter applies committed entries
//! with the same pure state machine ([`state_machine`]) and publishes the image, which its
//! broker follows (opens, leads, closes partitions).
//!
//! Map:
//! - [`types`]: openraft's type configuration; [`Command`](types::Command) = one entry.
//! - [`log_store`]: the Raft log, vote and committed index on disk (fsynced).
//! - [`state_machine`]: entries → [`MetadataImage`]; snapshots are the image.
//! - [`network`]: Raft RPCs to the other voters over gRPC.
//! - [`request`]: what brokers ask the active controller; [`active`]: how it answers.
//! - [`voters`]: parsing `--controller-voters`.
//! - [`Quorum`] (here): starts it all, forwards requests to the leader, runs the broker's
//!   registration and heartbeats, and the leader's lease checks.
//!
//! The gRPC side (`service/controller_api.rs`) hands incoming Raft RPCs to [`Quorum::raft`]
//! and forwarded requests to [`Quorum::handle_forwarded`].

// openraft's storage traits fix the error type (`StorageError`, over 200 bytes); the
// helpers that build it return it as the traits do.
#![allow(clippy::result_large_err)]

pub mod active;
pub mod log_store;
pub mod network;
pub mod request;
pub mod state_machine;
pub mod types;
pub mod voters;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::{BasicNode, CommittedLeaderId, Membership, SnapshotPolicy};
use tokio::sync::watch;

pub use active::Active;
pub use request::{ControllerReply, ControllerRequest, ReplyBody, VoterProgress};
pub use voters::{Voters, VotersError};

use self::log_store::LogStore;
use self::state_machine::StateMachine;
use self::types::{LogId, NodeId, Raft, SnapshotMeta, StoredMembership};
use super::error::ControllerError;
use super::image::MetadataImage;
use super::topic_config::BrokerDefaults;
use super::topic_validation::PartitionLimits;

/// The directory of the controller's Raft state inside the data directory.
pub const CONTROLLER_DIR: &str = "controller";

/// Timing and identity of this voter.
#[derive(Debug, Clone)]
pub struct QuorumConfig {
    pub node_id: i32,
    pub voters: Voters,
    /// `<data>/controller`.
    pub dir: PathBuf,
    /// Where this broker's outgoing connections come from (its listener's IP).
    pub local_ip: Option<IpAddr>,
    pub advertised_address: String,
    /// The external listener's advertised address, if it has one.
    pub external_advertised_address: Option<String>,
    pub rack: Option<String>,
    /// How often this broker heartbeats to the active controller.
    pub heartbeat_interval: Duration,
    /// How long a broker stays live without a heartbeat before it is fenced.
    pub session_timeout: Duration,
    /// Raft: a snapshot every this many log entries.
    pub snapshot_every_entries: u64,
    pub defaults: BrokerDefaults,
    pub limits: PartitionLimits,
}

/// How this broker stands in the quorum, for `DescribeCluster`.
#[derive(Debug, Clone)]
pub struct QuorumStatus {
    pub leader: Option<i32>,
    pub term: u64,
    pub voters: Vec<(i32, String)>,
    pub applied_index: Option<u64>,
    pub last_log_index: Option<u64>,
}

/// The controller quorum as seen from this broker. See the module docs.
pub struct Quorum {
    me: NodeId,
    config: QuorumConfig,
    raft: Raft,
    state_machine: StateMachine,
    active: Arc<Active>,
    forwarder: network::Forwarder,
    /// This broker's incarnation once registered (0 before).
    incarnation: AtomicU64,
    registered: watch::Sender<bool>,
    /// Set when the broker begins a controlled shutdown: no more heartbeats.
    leaving: AtomicBool,
    /// Set by [`Quorum::shutdown`]: this voter is gone, so nothing waits for a leader or
    /// for the local image any more (both would wait out their whole timeout, holding a
    /// stopping broker's calls open).
    stopped: watch::Sender<bool>,
    /// Until when the controller's last answered heartbeat vouches for this broker: the
    /// time the heartbeat was sent plus the session timeout. The controller fences a
    /// broker no earlier than that (it counts from when the heartbeat arrived), so a
    /// broker that stops serving at this instant never serves beside its successor.
    lease_until: std::sync::Mutex<Option<Instant>>,
    /// Producer ids `[next, end)` reserved for this broker and not yet handed out.
    producer_ids: tokio::sync::Mutex<(i64, i64)>,
}

impl std::fmt::Debug for Quorum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quorum")
            .field("me", &self.me)
            .field("voters", &self.config.voters)
            .finish_non_exhaustive()
    }
}

/// How long a request waits for a controller leader to exist or answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Resolves once the Raft leader this voter knows is no longer `leader`.
async fn leader_changes(
    mut metrics: watch::Receiver<openraft::RaftMetrics<NodeId, openraft::BasicNode>>,
    leader: Option<NodeId>,
) {
    loop {
        if metrics.borrow_and_update().current_leader != leader {
            return;
        }
        if metrics.changed().await.is_err() {
            // Raft stopped: nothing will change any more.
            std::future::pending::<()>().await;
        }
    }
}

/// Checks, before the data directory is opened (so a refused start changes nothing, not
/// even the clean-shutdown marker), that `voters` matches the quorum this directory
/// belongs to, and that a one-node metadata log from before the quorum (`legacy`) is only
/// started as a quorum of one.
pub fn check_voters(
    dir: &std::path::Path,
    voters: &Voters,
    legacy: bool,
) -> Result<(), ControllerError> {
    let configured: BTreeSet<NodeId> = voters
        .iter()
        .filter_map(|(id, _)| NodeId::try_from(id).ok())
        .collect();
    let from_log = log_store::last_membership_voters(dir);
    let from_snapshot = state_machine::snapshot_voters(dir).map(|(voters, _)| voters);
    let stored = from_log.or(from_snapshot);
    if let Some(stored) = stored {
        if stored != configured {
            return Err(ControllerError::Quorum {
                reason: format!(
                    "--controller-voters names voters {configured:?}, but this data directory belongs to a quorum of {stored:?}; the voter set cannot be changed"
                ),
            });
        }
        return Ok(());
    }
    if legacy && configured.len() != 1 {
        return Err(ControllerError::Quorum {
            reason: "this data directory holds a one-node cluster's metadata from before the controller quorum; it can only start as a quorum of one (without --controller-voters, or with this broker alone)".into(),
        });
    }
    Ok(())
}

impl Quorum {
    /// Opens the Raft state in `config.dir` and starts this voter. `seed` is the image of
    /// a one-node data directory from before the quorum (its metadata log), used once.
    /// Blocking parts run on blocking threads.
    pub async fn start(
        config: QuorumConfig,
        seed: Option<MetadataImage>,
    ) -> Result<Arc<Quorum>, ControllerError> {
        let me = NodeId::try_from(config.node_id).map_err(|_| ControllerError::Quorum {
            reason: format!("node id {} is negative", config.node_id),
        })?;
        let dir = config.dir.clone();
        let (store, opened, state_machine) = tokio::task::spawn_blocking(move || {
            let (store, opened) = LogStore::open(&dir)?;
            let state_machine = StateMachine::open(&dir)?;
            Ok::<_, ControllerError>((store, opened, state_machine))
        })
        .await
        .map_err(|error| ControllerError::Quorum {
            reason: error.to_string(),
        })??;
        let members: BTreeMap<NodeId, BasicNode> = config
            .voters
            .iter()
            .filter_map(|(id, address)| {
                NodeId::try_from(id)
                    .ok()
                    .map(|id| (id, BasicNode::new(address)))
            })
            .collect();
        let voter_ids: BTreeSet<NodeId> = members.keys().copied().collect();
        let mut initialize = false;
        if opened.fresh && state_machine.last_applied().is_none() {
            match seed {
                Some(image) => {
                    if voter_ids.len() != 1 {
                        return Err(ControllerError::Quorum {
                            reason: format!(
                                "this data directory holds a one-node cluster's metadata (version {}); it can only start as a quorum of one (without --controller-voters, or with this broker alone)",
                                image.version
                            ),
                        });
                    }
                    let log_id = LogId::new(CommittedLeaderId::new(0, me), 0);
                    let membership = Membership::new(vec![voter_ids.clone()], members.clone());
                    let meta = SnapshotMeta {
                        last_log_id: Some(log_id),
                        last_membership: StoredMembership::new(Some(log_id), membership),
                        snapshot_id: "pre-quorum-metadata-log".into(),
                    };
                    tracing::info!(version = image.version,
                        "moving the one-node metadata log into the controller quorum's first snapshot");
                    state_machine.seed(meta, image)?;
                    store.mark_purged(log_id)?;
                }
                None => initialize = true,
            }
        }
        let raft_config = openraft::Config {
            cluster_name: "strata".into(),
            heartbeat_interval: 200,
            election_timeout_min: 1000,
            election_timeout_max: 2000,
            install_snapshot_timeout: 5000,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_every_entries.max(2)),
            max_in_snapshot_log_to_keep: 100,
            snapshot_max_chunk_size: 256 << 10,
            ..Default::default()
        }
        .validate()
        .map_err(|error| ControllerError::Quorum {
            reason: error.to_string(),
        })?;
        let network = network::Network::new(me, config.local_ip);
        let raft = Raft::new(
            me,
            Arc::new(raft_config),
            network,
            store,
            state_machine.clone(),
        )
        .await
        .map_err(|error| ControllerError::Quorum {
            reason: error.to_string(),
        })?;
        if initialize {
            tracing::info!(voters = %config.voters, "initializing a new controller quorum");
            if let Err(error) = raft.initialize(members).await {
                tracing::debug!(%error, "initialize refused (another voter started it first)");
            }
        } else {
            // Asked of the Raft core itself: its metrics may not be filled in yet.
            let stored: BTreeSet<NodeId> = raft
                .with_raft_state(|state| state.membership_state.effective().voter_ids().collect())
                .await
                .map_err(|error| ControllerError::Quorum {
                    reason: error.to_string(),
                })?;
            if !stored.is_empty() && stored != voter_ids {
                let _ = raft.shutdown().await;
                return Err(ControllerError::Quorum {
                    reason: format!(
                        "--controller-voters names voters {voter_ids:?}, but this data directory belongs to a quorum of {stored:?}; the voter set cannot be changed"
                    ),
                });
            }
        }
        let active = Arc::new(Active::new(
            me,
            raft.clone(),
            state_machine.clone(),
            config.defaults.clone(),
            config.limits.clone(),
            config.session_timeout,
        ));
        let forwarder =
            network::Forwarder::new(config.node_id, config.voters.clone(), config.local_ip);
        let quorum = Arc::new(Quorum {
            me,
            config,
            raft,
            state_machine,
            active,
            forwarder,
            incarnation: AtomicU64::new(0),
            registered: watch::Sender::new(false),
            leaving: AtomicBool::new(false),
            stopped: watch::Sender::new(false),
            lease_until: std::sync::Mutex::new(None),
            producer_ids: tokio::sync::Mutex::new((0, 0)),
        });
        tokio::spawn(Arc::clone(&quorum).lease_checks());
        Ok(quorum)
    }

    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    pub fn node_id(&self) -> i32 {
        self.config.node_id
    }

    pub fn voters(&self) -> &Voters {
        &self.config.voters
    }

    /// Whether `id` is one of the configured voters.
    pub fn is_voter(&self, id: i32) -> bool {
        self.config.voters.address(id).is_some()
    }

    pub fn defaults(&self) -> &BrokerDefaults {
        self.active.defaults()
    }

    pub fn limits(&self) -> &PartitionLimits {
        self.active.limits()
    }

    /// The image this voter has applied.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.state_machine.image()
    }

    /// Follows the applied image.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.state_machine.subscribe()
    }

    /// The incarnation this broker registered with (0 before it registered).
    pub fn incarnation(&self) -> u64 {
        self.incarnation.load(Ordering::Acquire)
    }

    /// Waits until the local image holds `version`, up to `timeout`.
    pub async fn wait_for_version(
        &self,
        version: i64,
        timeout: Duration,
    ) -> Result<Arc<MetadataImage>, ControllerError> {
        let mut images = self.subscribe();
        let mut stopped = self.stopped.subscribe();
        let waited = tokio::time::timeout(timeout, async {
            loop {
                let image = Arc::clone(&images.borrow_and_update());
                if image.version >= version {
                    return Ok(image);
                }
                let changed = tokio::select! {
                    changed = images.changed() => changed.is_ok(),
                    _ = stopped.wait_for(|stopped| *stopped) => false,
                };
                if !changed {
                    return Err(ControllerError::Quorum {
                        reason: "the state machine stopped".into(),
                    });
                }
            }
        })
        .await;
        waited.unwrap_or_else(|_| {
            Err(ControllerError::NotController {
                leader: self.leader(),
            })
        })
    }

    /// The controller leader this voter knows.
    pub fn leader(&self) -> Option<i32> {
        self.raft
            .metrics()
            .borrow()
            .current_leader
            .and_then(|id| i32::try_from(id).ok())
    }

    /// Where this voter stands.
    pub fn status(&self) -> QuorumStatus {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        QuorumStatus {
            leader: metrics.current_leader.and_then(|id| i32::try_from(id).ok()),
            term: metrics.current_term,
            voters: self
                .config
                .voters
                .iter()
                .map(|(id, address)| (id, address.to_owned()))
                .collect(),
            applied_index: metrics.last_applied.map(|id| id.index),
            last_log_index: metrics.last_log_index,
        }
    }

    /// Sends `request` to the active controller (handled here when this voter leads),
    /// waiting up to 15 s for a leader to exist.
    pub async fn submit(
        &self,
        request: ControllerRequest,
    ) -> Result<ControllerReply, ControllerError> {
        self.submit_within(request, REQUEST_TIMEOUT).await
    }

    /// [`Quorum::submit`], waiting at most `timeout` for a leader.
    pub async fn submit_within(
        &self,
        request: ControllerRequest,
        timeout: Duration,
    ) -> Result<ControllerReply, ControllerError> {
        let deadline = Instant::now() + timeout;
        let mut metrics = self.raft.metrics();
        let mut stopped = self.stopped.subscribe();
        loop {
            if *stopped.borrow_and_update() {
                return Err(ControllerError::NotController { leader: None });
            }
            let leader = metrics.borrow_and_update().current_leader;
            let attempt = async {
                match leader {
                    Some(leader) if leader == self.me => self.active.handle(request.clone()).await,
                    Some(leader) => self.forwarder.forward(leader, &request).await,
                    None => Err(ControllerError::NotController { leader: None }),
                }
            };
            // An attempt ends early when the leader changes (a forward to a leader that
            // was cut off would otherwise wait for its transport timeout, and an isolated
            // leader's write never commits), and at the deadline.
            let remaining = deadline.saturating_duration_since(Instant::now());
            let result = tokio::select! {
                result = attempt => result,
                () = leader_changes(self.raft.metrics(), leader) => {
                    Err(ControllerError::NotController { leader: None })
                }
                () = tokio::time::sleep(remaining) => Err(ControllerError::NotController {
                    leader: leader.and_then(|id| i32::try_from(id).ok()),
                }),
                _ = stopped.wait_for(|stopped| *stopped) => {
                    return Err(ControllerError::NotController { leader: None });
                }
            };
            match result {
                Err(ControllerError::NotController { .. }) if Instant::now() < deadline => {
                    // Wait for a leader change, or retry after a short pause (the leader
                    // may be known but unreachable).
                    let pause = Duration::from_millis(200)
                        .min(deadline.saturating_duration_since(Instant::now()));
                    let _ = tokio::time::timeout(pause, async {
                        if metrics.changed().await.is_err() {
                            // Raft stopped: no change will come; wait out the pause
                            // rather than spin.
                            std::future::pending::<()>().await;
                        }
                    })
                    .await;
                }
                other => return other,
            }
        }
    }

    /// Handles a request another broker forwarded: only if this voter leads, never
    /// forwarded again.
    pub async fn handle_forwarded(
        &self,
        request: ControllerRequest,
    ) -> Result<ControllerReply, ControllerError> {
        self.active.handle(request).await
    }

    /// Registers this broker, then heartbeats until [`Quorum::begin_leaving`]. Runs for
    /// the life of the broker; re-registers when the controller no longer knows this
    /// incarnation.
    pub async fn run_heartbeats(self: Arc<Self>) {
        let mut interval = tokio::time::interval(self.config.heartbeat_interval);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if self.leaving.load(Ordering::Acquire) {
                return;
            }
            let incarnation = self.incarnation();
            let request = if incarnation == 0 {
                ControllerRequest::RegisterBroker {
                    broker_id: self.config.node_id,
                    address: self.config.advertised_address.clone(),
                    rack: self.config.rack.clone(),
                    external_address: self.config.external_advertised_address.clone(),
                }
            } else {
                ControllerRequest::Heartbeat {
                    broker_id: self.config.node_id,
                    incarnation,
                }
            };
            // Bounded well inside the session timeout, so a controller that cannot answer
            // (cut off, paused) does not hold up the heartbeats to the next one.
            let bound = (self.config.session_timeout / 2).max(self.config.heartbeat_interval);
            let sent_at = Instant::now();
            match self.submit_within(request, bound).await {
                Ok(reply) => match reply.body {
                    ReplyBody::Registered { incarnation } => {
                        tracing::info!(incarnation, "registered with the controller");
                        match self.wait_for_version(reply.version, REQUEST_TIMEOUT).await {
                            Ok(_) => self.renew_lease(sent_at),
                            Err(error) => {
                                tracing::warn!(%error, "the registration is not applied here yet");
                            }
                        }
                        self.incarnation.store(incarnation, Ordering::Release);
                        self.registered.send_replace(true);
                    }
                    ReplyBody::Unregistered => {
                        tracing::warn!("the controller does not know this broker's incarnation; registering again");
                        self.incarnation.store(0, Ordering::Release);
                        *self.lease() = None;
                    }
                    _ => {
                        // The lease counts only once this broker's image is as new as the
                        // controller's answer: a broker back from a pause must not serve
                        // from the image that still names it leader.
                        if self.wait_for_version(reply.version, bound).await.is_ok() {
                            self.renew_lease(sent_at);
                        }
                    }
                },
                Err(ControllerError::StaleBrokerEpoch { current, .. }) => {
                    tracing::error!(current, incarnation,
                        "another process registered this broker id after this one; this process no longer heartbeats");
                    return;
                }
                Err(error) => {
                    tracing::debug!(%error, "heartbeat failed; retrying");
                }
            }
        }
    }

    /// Whether this broker may serve as a partition leader now: the controller answered
    /// a heartbeat sent less than a session timeout ago (see `lease_until`). A broker that
    /// cannot reach the controller (paused, cut off) stops serving before the controller
    /// may fence it and elect other leaders, so clients never read from, or write to, a
    /// stale leader. A cluster of one broker has no other leader to fear.
    pub fn holds_lease(&self) -> bool {
        if self.image().brokers.len() <= 1 {
            return true;
        }
        self.lease().is_some_and(|until| Instant::now() < until)
    }

    fn renew_lease(&self, sent_at: Instant) {
        let until = sent_at + self.config.session_timeout;
        let mut lease = self.lease();
        *lease = Some(lease.map_or(until, |current| current.max(until)));
    }

    fn lease(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.lease_until
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Changes each time this broker's registration is applied here (its incarnation is
    /// then [`Quorum::incarnation`]).
    pub fn registrations(&self) -> watch::Receiver<bool> {
        self.registered.subscribe()
    }

    /// Waits until this broker is registered (and the registration applied here).
    pub async fn wait_registered(&self, timeout: Duration) -> Result<(), ControllerError> {
        let mut registered = self.registered.subscribe();
        tokio::time::timeout(timeout, registered.wait_for(|done| *done))
            .await
            .map_err(|_| ControllerError::NotController {
                leader: self.leader(),
            })?
            .map_err(|_| ControllerError::Quorum {
                reason: "registration stopped".into(),
            })?;
        Ok(())
    }

    /// Controlled shutdown: asks the controller to move leadership away from this broker
    /// until nothing more can move (then it is fenced), or `deadline` passes. Heartbeats
    /// stop first, so they do not unfence it again.
    pub async fn leave(&self, deadline: Instant) -> bool {
        self.leaving.store(true, Ordering::Release);
        let incarnation = self.incarnation();
        if incarnation == 0 {
            return false;
        }
        while Instant::now() < deadline {
            let request = ControllerRequest::ControlledShutdown {
                broker_id: self.config.node_id,
                incarnation,
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(remaining, self.submit(request)).await {
                Ok(Ok(reply)) => {
                    let _ = self
                        .wait_for_version(
                            reply.version,
                            deadline.saturating_duration_since(Instant::now()),
                        )
                        .await;
                    if reply.body == (ReplyBody::ShutdownProgress { done: true }) {
                        return true;
                    }
                }
                Ok(Err(error)) => {
                    tracing::warn!(%error, "controlled shutdown request failed");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(_) => break,
            }
        }
        false
    }

    /// A producer id never handed out before, from this broker's reserved block.
    pub async fn allocate_producer_id(&self) -> Result<i64, ControllerError> {
        let mut block = self.producer_ids.lock().await;
        if block.0 >= block.1 {
            let reply = self.submit(ControllerRequest::AllocateProducerIds).await?;
            let ReplyBody::ProducerIds { first_id, count } = reply.body else {
                return Err(ControllerError::Quorum {
                    reason: "unexpected reply to AllocateProducerIds".into(),
                });
            };
            *block = (first_id, first_id.saturating_add(count));
        }
        let id = block.0;
        block.0 += 1;
        Ok(id)
    }

    /// While this voter leads: fence brokers whose lease lapsed. Runs for the life of
    /// the quorum.
    async fn lease_checks(self: Arc<Self>) {
        let every = (self.config.heartbeat_interval / 2).max(Duration::from_millis(50));
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut known_leader = None;
        loop {
            interval.tick().await;
            let (leader, term) = {
                let metrics = self.raft.metrics();
                let metrics = metrics.borrow();
                if metrics.running_state.is_err() {
                    return;
                }
                (metrics.current_leader, metrics.current_term)
            };
            if leader != known_leader {
                match leader {
                    Some(leader) => {
                        tracing::info!(leader, term, "controller leader elected");
                    }
                    None => tracing::warn!(term, "no controller leader (an election is running)"),
                }
                known_leader = leader;
            }
            if let Err(error) = self.check_leases().await {
                tracing::debug!(%error, "lease check failed");
            }
        }
    }

    /// One pass of the lease checks: fences the brokers whose lease lapsed, unless this
    /// broker is shutting down. A controller on its way out stops fencing: its listener
    /// may already refuse the other brokers' heartbeats, so their leases lapse here while
    /// they are alive, and fencing them would move their leadership for nothing (a
    /// rolling restart once fenced two healthy brokers this way). The next controller
    /// gives every broker a full lease when it takes over. Returns how many were fenced.
    pub async fn check_leases(&self) -> Result<usize, ControllerError> {
        if self.leaving.load(Ordering::Acquire) {
            return Ok(0);
        }
        self.active.fence_expired().await
    }

    /// Whether Raft stopped on a fatal error (its storage failed), and why.
    pub fn fatal(&self) -> Option<String> {
        self.raft
            .metrics()
            .borrow()
            .running_state
            .as_ref()
            .err()
            .map(ToString::to_string)
    }

    /// Stops this voter. From then on [`Quorum::submit`] answers `NotController` and
    /// [`Quorum::wait_for_version`] fails at once: a stopped voter learns no leader and
    /// no newer image, so waiting would only hold its callers until their timeouts.
    pub async fn shutdown(&self) {
        self.leaving.store(true, Ordering::Release);
        self.stopped.send_replace(true);
        if let Err(error) = self.raft.shutdown().await {
            tracing::warn!(%error, "stopping the controller quorum failed");
        }
    }
}

#[cfg(test)]
#[path = "lease_checks_tests.rs"]
mod lease_checks_tests;

#[cfg(test)]
#[path = "stopped_tests.rs"]
mod stopped_tests;

#[cfg(test)]
mod storage_suite {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use openraft::testing::{StoreBuilder, Suite};

    use super::log_store::LogStore;
    use super::state_machine::StateMachine;
    use super::types::{StorageError, StrataRaft};

    struct OnDisk;

    impl StoreBuilder<StrataRaft, LogStore, StateMachine, tempfile::TempDir> for OnDisk {
        async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError> {
            let dir = tempfile::tempdir().unwrap();
            let (store, _) = LogStore::open(dir.path()).unwrap();
            let state_machine = StateMachine::open(dir.path()).unwrap();
            Ok((dir, store, state_machine))
        }
    }

    /// openraft's own conformance suite for log storage and state machines.
    #[test]
    fn the_log_store_and_state_machine_pass_openrafts_storage_suite() {
        Suite::test_all(OnDisk).unwrap();
    }
}
