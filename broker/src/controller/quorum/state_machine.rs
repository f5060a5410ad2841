//! [`StateMachine`]: openraft's state machine for the metadata — committed entries are
//! applied with the pure [`state_machine::apply`](crate::controller::state_machine::apply)
//! to a [`MetadataImage`], which is published to the rest of the broker.
//!
//! Each entry's [`Command`] is applied all or nothing: its records go to a copy of the
//! image at versions `v, v+1, …` (the metadata version counts records, not Raft entries,
//! so blank and membership entries leave it unchanged); if the state machine refuses one
//! record, the copy is dropped and the refusal is the entry's answer. Every voter applies
//! the same entries in the same order, so every voter refuses the same ones.
//!
//! Snapshots are the image itself: `snapshot.json` in the controller directory holds the
//! snapshot's Raft meta (last log id, membership) and the image, with a CRC of the image's
//! JSON; it is replaced atomically. On open the state machine starts from it, and openraft
//! applies the log entries after it up to the saved committed index. Since entries
//! before a snapshot may be purged from the log, a damaged snapshot stops the broker.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::RaftStateMachine;
use openraft::{AnyError, EntryPayload, RaftSnapshotBuilder, StorageIOError};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::types::{
    Command, CommandOutcome, Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership,
    StrataRaft,
};
use crate::controller::error::ControllerError;
use crate::controller::image::MetadataImage;
use crate::controller::snapshot::SNAPSHOT_BYTES_MAX;
use crate::controller::state_machine::apply;
use crate::log::{checkpoint, LogError};

/// The snapshot's file name in the controller directory.
pub const SNAPSHOT_FILE: &str = "snapshot.json";

/// The metadata state machine of this voter. Cheap to clone.
#[derive(Debug, Clone)]
pub struct StateMachine {
    inner: Arc<Mutex<Inner>>,
    published: Arc<watch::Sender<Arc<MetadataImage>>>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    image: Arc<MetadataImage>,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    /// The last snapshot built or installed, as stored.
    snapshot: Option<StoredSnapshot>,
    snapshots_built: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    image_crc32: u32,
    image: MetadataImage,
}

fn encode_image(image: &MetadataImage) -> Result<Vec<u8>, StorageError> {
    serde_json::to_vec(image)
        .map_err(|error| StorageIOError::write_snapshot(None, AnyError::error(error)).into())
}

impl StoredSnapshot {
    fn new(meta: SnapshotMeta, image: MetadataImage) -> Result<StoredSnapshot, StorageError> {
        let image_crc32 = crc32fast::hash(&encode_image(&image)?);
        Ok(StoredSnapshot {
            meta,
            image_crc32,
            image,
        })
    }

    fn store(&self, dir: &Path) -> Result<(), LogError> {
        let bytes = serde_json::to_vec(self).map_err(|error| LogError::BadAuxiliaryFile {
            path: dir.join(SNAPSHOT_FILE),
            reason: format!("cannot encode: {error}"),
        })?;
        checkpoint::write_atomic(dir, SNAPSHOT_FILE, &bytes)
    }

    fn load(dir: &Path) -> Result<Option<StoredSnapshot>, ControllerError> {
        let damaged = |reason: String| ControllerError::MetadataDamaged {
            dir: dir.display().to_string(),
            reason,
        };
        checkpoint::remove_stale_temp(dir, SNAPSHOT_FILE)?;
        let path = dir.join(SNAPSHOT_FILE);
        let size = match std::fs::metadata(&path) {
            Ok(metadata) => metadata.len(),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(LogError::io("stat", &path, source).into()),
        };
        if size > SNAPSHOT_BYTES_MAX {
            return Err(damaged(format!(
                "{SNAPSHOT_FILE} holds {size} bytes, more than {SNAPSHOT_BYTES_MAX}"
            )));
        }
        let bytes = std::fs::read(&path).map_err(|source| LogError::io("read", &path, source))?;
        let snapshot: StoredSnapshot = serde_json::from_slice(&bytes)
            .map_err(|error| damaged(format!("{SNAPSHOT_FILE} is unreadable: {error}")))?;
        let crc = serde_json::to_vec(&snapshot.image)
            .map(|json| crc32fast::hash(&json))
            .map_err(|error| damaged(format!("{SNAPSHOT_FILE}: {error}")))?;
        if crc != snapshot.image_crc32 {
            return Err(damaged(format!("{SNAPSHOT_FILE}: the image fails its CRC")));
        }
        Ok(Some(snapshot))
    }

    fn to_snapshot(&self) -> Result<Snapshot, StorageError> {
        Ok(Snapshot {
            meta: self.meta.clone(),
            snapshot: Box::new(Cursor::new(encode_image(&self.image)?)),
        })
    }
}

/// The voters and last log index of the stored snapshot, if there is a readable one,
/// without changing anything.
pub fn snapshot_voters(dir: &Path) -> Option<(std::collections::BTreeSet<u64>, u64)> {
    let bytes = std::fs::read(dir.join(SNAPSHOT_FILE)).ok()?;
    let snapshot: StoredSnapshot = serde_json::from_slice(&bytes).ok()?;
    let index = snapshot.meta.last_log_id.map_or(0, |id| id.index);
    let voters = snapshot
        .meta
        .last_membership
        .membership()
        .voter_ids()
        .collect();
    Some((voters, index))
}

impl StateMachine {
    /// Opens the state machine in `dir`: the stored snapshot, if any, else an empty image.
    pub fn open(dir: &Path) -> Result<StateMachine, ControllerError> {
        let snapshot = StoredSnapshot::load(dir)?;
        let (image, last_applied, membership) = match &snapshot {
            Some(stored) => (
                stored.image.clone(),
                stored.meta.last_log_id,
                stored.meta.last_membership.clone(),
            ),
            None => (MetadataImage::default(), None, StoredMembership::default()),
        };
        let image = Arc::new(image);
        Ok(StateMachine {
            inner: Arc::new(Mutex::new(Inner {
                dir: dir.to_path_buf(),
                image: Arc::clone(&image),
                last_applied,
                membership,
                snapshot,
                snapshots_built: 0,
            })),
            published: Arc::new(watch::Sender::new(image)),
        })
    }

    /// Stores `image` as the snapshot at `meta` (the first snapshot of a data directory
    /// written by a one-node broker from before the quorum) and starts from it.
    pub fn seed(&self, meta: SnapshotMeta, image: MetadataImage) -> Result<(), ControllerError> {
        let stored = StoredSnapshot::new(meta, image).map_err(|error| ControllerError::Quorum {
            reason: error.to_string(),
        })?;
        let mut inner = self.lock();
        stored.store(&inner.dir)?;
        inner.image = Arc::new(stored.image.clone());
        inner.last_applied = stored.meta.last_log_id;
        inner.membership = stored.meta.last_membership.clone();
        inner.snapshot = Some(stored);
        self.published.send_replace(Arc::clone(&inner.image));
        Ok(())
    }

    /// The current image.
    pub fn image(&self) -> Arc<MetadataImage> {
        Arc::clone(&self.lock().image)
    }

    /// Follows the image: a receiver that sees every newly applied version (or a later
    /// one).
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.published.subscribe()
    }

    /// The log id of the last applied entry.
    pub fn last_applied(&self) -> Option<LogId> {
        self.lock().last_applied
    }

    /// The voters of the last applied (or snapshotted) membership.
    pub fn voter_ids(&self) -> Vec<u64> {
        self.lock().membership.membership().voter_ids().collect()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Applies `command` to a copy of `image`: the new image, or why it was refused.
fn apply_command(image: &MetadataImage, command: &Command) -> Result<MetadataImage, String> {
    let mut next = image.clone();
    for record in &command.records {
        let version = next.version;
        apply(&mut next, record, version).map_err(|error| error.to_string())?;
    }
    Ok(next)
}

impl RaftStateMachine<StrataRaft> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let inner = self.lock();
        Ok((inner.last_applied, inner.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandOutcome>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut inner = self.lock();
        let before = inner.image.version;
        let mut outcomes = Vec::new();
        for entry in entries {
            inner.last_applied = Some(entry.log_id);
            let refused = match entry.payload {
                EntryPayload::Blank => None,
                EntryPayload::Normal(command) => match apply_command(&inner.image, &command) {
                    Ok(next) => {
                        inner.image = Arc::new(next);
                        None
                    }
                    Err(reason) => {
                        tracing::warn!(index = entry.log_id.index, %reason,
                            "the metadata state machine refused a committed command; it has no effect");
                        Some(reason)
                    }
                },
                EntryPayload::Membership(membership) => {
                    inner.membership = StoredMembership::new(Some(entry.log_id), membership);
                    None
                }
            };
            outcomes.push(CommandOutcome {
                version: inner.image.version,
                refused,
            });
        }
        if inner.image.version != before {
            self.published.send_replace(Arc::clone(&inner.image));
        }
        Ok(outcomes)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let image: MetadataImage = serde_json::from_slice(snapshot.get_ref()).map_err(|error| {
            StorageIOError::read_snapshot(Some(meta.signature()), AnyError::error(error))
        })?;
        let stored = StoredSnapshot::new(meta.clone(), image)?;
        let dir = self.lock().dir.clone();
        let to_store = stored.clone();
        tokio::task::spawn_blocking(move || to_store.store(&dir))
            .await
            .map_err(|error| StorageIOError::write_snapshot(None, AnyError::error(error)))?
            .map_err(|error| StorageIOError::write_snapshot(None, AnyError::error(error)))?;
        let mut inner = self.lock();
        tracing::info!(last_log_id = ?meta.last_log_id, version = stored.image.version,
            "installed a metadata snapshot from the controller leader");
        inner.image = Arc::new(stored.image.clone());
        inner.last_applied = meta.last_log_id;
        inner.membership = meta.last_membership.clone();
        inner.snapshot = Some(stored);
        self.published.send_replace(Arc::clone(&inner.image));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let inner = self.lock();
        inner
            .snapshot
            .as_ref()
            .map(StoredSnapshot::to_snapshot)
            .transpose()
    }
}

impl RaftSnapshotBuilder<StrataRaft> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let (stored, dir) = {
            let mut inner = self.lock();
            inner.snapshots_built += 1;
            let last_log_id = inner.last_applied;
            let snapshot_id = match last_log_id {
                Some(id) => format!(
                    "{}-{}-{}",
                    id.leader_id.term, id.index, inner.snapshots_built
                ),
                None => format!("none-{}", inner.snapshots_built),
            };
            let meta = SnapshotMeta {
                last_log_id,
                last_membership: inner.membership.clone(),
                snapshot_id,
            };
            (
                StoredSnapshot::new(meta, MetadataImage::clone(&inner.image))?,
                inner.dir.clone(),
            )
        };
        let to_store = stored.clone();
        tokio::task::spawn_blocking(move || to_store.store(&dir))
            .await
            .map_err(|error| StorageIOError::write_snapshot(None, AnyError::error(error)))?
            .map_err(|error| StorageIOError::write_snapshot(None, AnyError::error(error)))?;
        tracing::debug!(last_log_id = ?stored.meta.last_log_id, version = stored.image.version,
            "wrote a metadata snapshot");
        let snapshot = stored.to_snapshot()?;
        self.lock().snapshot = Some(stored);
        Ok(snapshot)
    }
}
