//! The group coordinator runtime: the broker side of consumer groups around the pure state
//! machine of [`crate::group`] (`docs/GROUPS.md`).
//!
//! - `__consumer_offsets` (compacted) is created through the controller on the first
//!   `FindCoordinator` (`groups_topic.rs`): `--offsets-topic-partitions` partitions, by
//!   default min(50, 10 × live brokers); replication factor min(3, live brokers).
//! - A group belongs to partition [`partition_for`] of it; the broker leading that
//!   partition is the group's coordinator. When this broker starts leading one (a new
//!   leader epoch counts as new), it reads the partition from its log start to its log
//!   end (`groups_store.rs`) and answers `COORDINATOR_LOAD_IN_PROGRESS` meanwhile; when it
//!   stops leading it, it drops that partition's groups and answers `NOT_COORDINATOR`.
//! - Every change is a record written to the partition with `acks=all` before it counts:
//!   memory changes only once the write succeeded (a failed write leaves the group as it
//!   was before the request).
//! - A background task ([`GroupCoordinator::run`]) keeps the loaded partitions in step
//!   with leadership, expels members whose session lapsed (`Group::expire`) and tells the
//!   groups when the cluster's topics change (`Group::on_topics_changed`).
//!
//! The requests themselves are in `groups_requests.rs`; high watermarks of consumed
//! partitions in `groups_offsets.rs`.
//!
//! Locking: the map of partitions and each partition's map of groups are `std` mutexes,
//! never held across an await; each group is a `tokio` mutex held for a whole request,
//! its write included, so one group's records reach the log in the order its changes
//! reach memory.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::OwnedMutexGuard;

use super::groups_offsets::HighWatermarks;
use super::groups_store::{self, GroupEntry, KeyValue, SharedEntry};
use super::partition::PartitionHandle;
use super::{Node, NodeError};
use crate::group::records::{partition_for, OFFSETS_TOPIC};
use crate::group::{Group, GroupConfig, TopicsView};

/// The longest group id, in bytes (a topic name's limit).
pub const GROUP_ID_BYTES_MAX: usize = 249;

/// How often the background task looks at leadership, deadlines and topics.
const TICK: Duration = Duration::from_millis(200);

/// Broker settings of the group coordinator.
#[derive(Debug, Clone)]
pub struct GroupSettings {
    pub group: GroupConfig,
    /// `None`: min(50, 10 × live brokers) when the topic is created.
    pub offsets_topic_partitions: Option<i32>,
    /// How long a write to `__consumer_offsets` may wait for the ISR (Kafka's
    /// `offsets.commit.timeout.ms`).
    pub commit_timeout: Duration,
}

impl Default for GroupSettings {
    fn default() -> GroupSettings {
        GroupSettings {
            group: GroupConfig::default(),
            offsets_topic_partitions: None,
            commit_timeout: Duration::from_secs(5),
        }
    }
}

/// The groups of one `__consumer_offsets` partition led here.
#[derive(Debug)]
pub(super) struct Coordinated {
    pub partition: i32,
    /// The partition as led when the load started: another handle means another term.
    handle: Weak<PartitionHandle>,
    /// `None` while loading.
    groups: Mutex<Option<HashMap<String, SharedEntry>>>,
    /// Cleared when this broker stops leading the partition (or leads it anew).
    active: AtomicBool,
}

impl Coordinated {
    fn is_loaded(&self) -> bool {
        self.groups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    /// The entries of every loaded group.
    pub fn entries(&self) -> Vec<SharedEntry> {
        let groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        groups
            .iter()
            .flat_map(|groups| groups.values().cloned())
            .collect()
    }

    /// The group's entry; created (empty) when `create` is set, else `None` if unknown.
    fn entry(&self, group_id: &str, create: bool) -> Option<SharedEntry> {
        let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        let groups = groups.as_mut()?;
        if let Some(entry) = groups.get(group_id) {
            return Some(Arc::clone(entry));
        }
        if !create {
            return None;
        }
        let entry = Arc::new(tokio::sync::Mutex::new(GroupEntry::new(group_id)));
        groups.insert(group_id.to_owned(), Arc::clone(&entry));
        Some(entry)
    }

    /// Forgets a deleted group (its entry is marked removed by the caller, who holds it).
    pub fn remove(&self, group_id: &str) {
        let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(groups) = groups.as_mut() {
            groups.remove(group_id);
        }
    }
}

/// A group locked for one request, with the partition that holds it.
pub(super) struct Locked {
    pub coordinated: Arc<Coordinated>,
    pub entry: OwnedMutexGuard<GroupEntry>,
}

impl Drop for Locked {
    /// A group left with neither state nor offsets (a refused join or commit of a group
    /// nobody knew) is forgotten, so requests naming made-up groups leave nothing behind.
    fn drop(&mut self) {
        let entry = &mut *self.entry;
        if !entry.removed && entry.group.is_none() && entry.offsets.is_empty() {
            entry.removed = true;
            self.coordinated.remove(&entry.group_id);
        }
    }
}

/// The coordinator of the groups whose `__consumer_offsets` partitions this broker leads.
#[derive(Debug)]
pub struct GroupCoordinator {
    pub(super) node: Arc<Node>,
    pub(super) settings: GroupSettings,
    partitions: Mutex<HashMap<i32, Arc<Coordinated>>>,
    pub(super) high_watermarks: HighWatermarks,
    /// One creation of `__consumer_offsets` at a time.
    pub(super) creating: tokio::sync::Mutex<()>,
    /// The topics view last given to the groups, with the image version it came from.
    topics: Mutex<(i64, Arc<TopicsView>)>,
}

impl GroupCoordinator {
    /// The coordinator of `node`, with its background task running until shutdown.
    pub fn start(node: Arc<Node>, settings: GroupSettings) -> Arc<GroupCoordinator> {
        let coordinator = Arc::new(GroupCoordinator {
            node,
            settings,
            partitions: Mutex::new(HashMap::new()),
            high_watermarks: HighWatermarks::default(),
            creating: tokio::sync::Mutex::new(()),
            topics: Mutex::new((-1, Arc::new(TopicsView::new()))),
        });
        tokio::spawn(Arc::clone(&coordinator).run());
        coordinator
    }

    pub fn settings(&self) -> &GroupSettings {
        &self.settings
    }

    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// The partition holding `group_id` if this broker coordinates it and has loaded it.
    fn coordinated(self: &Arc<Self>, group_id: &str) -> Result<Arc<Coordinated>, NodeError> {
        validate_group_id(group_id)?;
        let not_coordinator = |reason: String| NodeError::NotCoordinator {
            group_id: group_id.to_owned(),
            reason,
        };
        let count = self
            .node
            .image()
            .topic(OFFSETS_TOPIC)
            .map(|topic| topic.partition_count())
            .ok_or_else(|| not_coordinator(format!("{OFFSETS_TOPIC} does not exist yet")))?;
        let partition = partition_for(group_id, count);
        let handle = self
            .node
            .partition(OFFSETS_TOPIC, partition)
            .map_err(|error| not_coordinator(error.to_string()))?;
        let coordinated = self.led(partition, &handle);
        if coordinated.is_loaded() {
            Ok(coordinated)
        } else {
            Err(NodeError::CoordinatorLoadInProgress {
                group_id: group_id.to_owned(),
                partition,
            })
        }
    }

    /// The coordinated partition for `handle`, which this broker leads now: the one
    /// loaded (or loading) for it, else a new one whose load starts now.
    fn led(self: &Arc<Self>, partition: i32, handle: &Arc<PartitionHandle>) -> Arc<Coordinated> {
        let mut partitions = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = partitions.get(&partition) {
            if std::ptr::eq(existing.handle.as_ptr(), Arc::as_ptr(handle)) {
                return Arc::clone(existing);
            }
        }
        let coordinated = Arc::new(Coordinated {
            partition,
            handle: Arc::downgrade(handle),
            groups: Mutex::new(None),
            active: AtomicBool::new(true),
        });
        if let Some(previous) = partitions.insert(partition, Arc::clone(&coordinated)) {
            previous.active.store(false, Ordering::Release);
        }
        tracing::info!(
            partition,
            "loading the groups of {OFFSETS_TOPIC}-{partition}"
        );
        tokio::spawn(Arc::clone(self).load(Arc::clone(&coordinated), Arc::clone(handle)));
        coordinated
    }

    /// Reads the partition and publishes its groups; a failed load is forgotten, so the
    /// next request or tick starts another.
    async fn load(self: Arc<Self>, coordinated: Arc<Coordinated>, handle: Arc<PartitionHandle>) {
        let started = Instant::now();
        let read = tokio::task::spawn_blocking(move || groups_store::read_partition(&handle)).await;
        let partition = coordinated.partition;
        match read {
            Ok(Ok(records)) => {
                let skipped = records.skipped;
                let entries = records.into_entries(&self.settings.group, Instant::now());
                tracing::info!(
                    partition,
                    groups = entries.len(),
                    skipped,
                    elapsed_ms = started.elapsed().as_millis(),
                    "loaded the groups of {OFFSETS_TOPIC}-{partition}"
                );
                *coordinated.groups.lock().unwrap_or_else(|p| p.into_inner()) = Some(entries);
            }
            Ok(Err(error)) => {
                tracing::error!(partition, %error, "loading {OFFSETS_TOPIC}-{partition} failed");
                self.forget(&coordinated);
            }
            Err(error) => {
                tracing::error!(partition, %error, "loading {OFFSETS_TOPIC}-{partition} failed");
                self.forget(&coordinated);
            }
        }
    }

    fn forget(&self, coordinated: &Arc<Coordinated>) {
        coordinated.active.store(false, Ordering::Release);
        let mut partitions = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
        if partitions
            .get(&coordinated.partition)
            .is_some_and(|current| Arc::ptr_eq(current, coordinated))
        {
            partitions.remove(&coordinated.partition);
        }
    }

    /// Every loaded partition.
    pub(super) fn loaded(&self) -> Vec<Arc<Coordinated>> {
        let partitions = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
        partitions
            .values()
            .filter(|coordinated| coordinated.is_loaded())
            .cloned()
            .collect()
    }

    /// The group `group_id`, locked: created empty when `create` is set, else `None` when
    /// the coordinator does not know it.
    pub(super) async fn lock_group(
        self: &Arc<Self>,
        group_id: &str,
        create: bool,
    ) -> Result<Option<Locked>, NodeError> {
        // A group deleted while we waited for it is looked up again (once is enough in
        // practice; a few times bounds a pathological race).
        for _ in 0..4 {
            let coordinated = self.coordinated(group_id)?;
            let Some(shared) = coordinated.entry(group_id, create) else {
                return Ok(None);
            };
            let entry = shared.lock_owned().await;
            if !coordinated.is_active() {
                return Err(NodeError::NotCoordinator {
                    group_id: group_id.to_owned(),
                    reason: format!(
                        "this broker stopped leading {OFFSETS_TOPIC}-{}",
                        coordinated.partition
                    ),
                });
            }
            if entry.removed {
                continue;
            }
            return Ok(Some(Locked { coordinated, entry }));
        }
        Err(NodeError::CoordinatorNotAvailable {
            reason: format!(
                "group {group_id:?} was deleted and created again meanwhile; ask again"
            ),
        })
    }

    /// The cluster's user topics (name → partition count) from the current image.
    pub(super) fn topics_view(&self) -> Arc<TopicsView> {
        let image = self.node.image();
        let mut topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        if topics.0 != image.version {
            let view: TopicsView = image
                .topics
                .values()
                .filter(|topic| !topic.is_internal())
                .map(|topic| (topic.name.clone(), topic.partition_count()))
                .collect();
            *topics = (image.version, Arc::new(view));
        }
        Arc::clone(&topics.1)
    }

    /// Writes the group's snapshot after a change
    /// of `entry.group`; on failure puts `before` back, so memory matches the log.
    pub(super) async fn persist_group(
        &self,
        partition: i32,
        entry: &mut GroupEntry,
        before: Option<Group>,
    ) -> Result<(), NodeError> {
        let snapshot = entry.group.as_ref().map(Group::snapshot);
        let record = KeyValue::group(&entry.group_id, snapshot.as_ref());
        let written = match record {
            Ok(record) => {
                groups_store::write_records(
                    &self.node,
                    &entry.group_id,
                    partition,
                    &[record],
                    self.settings.commit_timeout,
                )
                .await
            }
            Err(error) => Err(error),
        };
        if let Err(error) = written {
            tracing::warn!(group = %entry.group_id, %error, "persisting a group change failed; it is undone");
            entry.group = before;
            return Err(error);
        }
        Ok(())
    }

    /// Until shutdown: every [`TICK`], follows leadership of `__consumer_offsets`, expels
    /// members past their deadlines and passes topic changes to the groups.
    async fn run(self: Arc<Self>) {
        let mut ticks = tokio::time::interval(TICK);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                () = self.node.stopping() => return,
            }
            self.follow_leadership();
            let topics = self.topics_view();
            let now = Instant::now();
            for coordinated in self.loaded() {
                for shared in coordinated.entries() {
                    // A group busy with a request is looked at on a later tick.
                    let Ok(entry) = shared.try_lock_owned() else {
                        continue;
                    };
                    let Some(group) = entry.group.as_ref() else {
                        continue;
                    };
                    let due = group
                        .next_deadline()
                        .is_some_and(|deadline| deadline <= now);
                    if due || entry.topics_changed(&topics) {
                        let coordinator = Arc::clone(&self);
                        let partition = coordinated.partition;
                        let topics = Arc::clone(&topics);
                        tokio::spawn(async move {
                            coordinator.tend(partition, entry, topics).await;
                        });
                    }
                }
            }
        }
    }

    /// Expels the group's members whose deadlines passed and tells it about topic
    /// changes; persists what changed.
    async fn tend(
        &self,
        partition: i32,
        mut entry: OwnedMutexGuard<GroupEntry>,
        topics: Arc<TopicsView>,
    ) {
        if entry.removed {
            return;
        }
        let topics_changed = entry.topics_changed(&topics);
        let before = entry.group.clone();
        let Some(group) = entry.group.as_mut() else {
            return;
        };
        let now = Instant::now();
        let expelled = group.expire(now);
        let recomputed = topics_changed && group.on_topics_changed(&topics, now);
        if expelled.is_empty() && !recomputed {
            entry.topics_seen = Some(topics);
            return;
        }
        if !expelled.is_empty() {
            tracing::info!(group = %entry.group_id, ?expelled, "members expelled");
        }
        // A failure is logged by persist_group; the next tick tries again.
        if self
            .persist_group(partition, &mut entry, before)
            .await
            .is_ok()
        {
            entry.topics_seen = Some(topics);
        }
    }

    /// Starts loading the `__consumer_offsets` partitions led here that are not loaded,
    /// and drops those no longer led here.
    fn follow_leadership(self: &Arc<Self>) {
        let image = self.node.image();
        let count = image
            .topic(OFFSETS_TOPIC)
            .map_or(0, |topic| topic.partition_count());
        for partition in 0..count {
            if let Ok(handle) = self.node.partition(OFFSETS_TOPIC, partition) {
                self.led(partition, &handle);
            }
        }
        let mut partitions = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
        let node = &self.node;
        partitions.retain(|partition, coordinated| {
            let current = node.partition(OFFSETS_TOPIC, *partition).ok();
            let kept = current.is_some_and(|handle| {
                std::ptr::eq(coordinated.handle.as_ptr(), Arc::as_ptr(&handle))
            });
            if !kept {
                coordinated.active.store(false, Ordering::Release);
                tracing::info!(
                    partition,
                    "no longer coordinating the groups of {OFFSETS_TOPIC}-{partition}"
                );
            }
            kept
        });
    }
}

/// A group id must be 1 to [`GROUP_ID_BYTES_MAX`] bytes.
pub fn validate_group_id(group_id: &str) -> Result<(), NodeError> {
    let reason = if group_id.is_empty() {
        "it is empty".to_owned()
    } else if group_id.len() > GROUP_ID_BYTES_MAX {
        format!(
            "it is {} bytes long, more than {GROUP_ID_BYTES_MAX}",
            group_id.len()
        )
    } else {
        return Ok(());
    };
    Err(NodeError::InvalidGroupId {
        group_id: group_id.chars().take(64).collect(),
        reason,
    })
}
