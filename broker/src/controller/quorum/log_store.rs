//! [`LogStore`]: the controller quorum's Raft log, vote and committed index, on disk in
//! `<data>/controller/`, under the storage engine's durability rules.
//!
//! Files:
//! - `raft.log`: the entries, one frame each: `length u32 | crc32 u32 | JSON entry`
//!   (big-endian; CRC-32 of the JSON, `crc32fast`). An append writes its frames at the end
//!   and fsyncs before openraft is told the entries are stored.
//! - `vote.json`, `committed.json`, `purged.json`: small files replaced atomically (temp
//!   file → fsync → rename → directory fsync, `log::checkpoint::write_atomic`).
//!
//! Recovery on open reads every frame. A frame cut short or failing its CRC at the very end
//! is a torn tail from a crash in the middle of an append (never acknowledged): the file is
//! cut back to the last whole frame. Anything else wrong — a bad frame followed by good
//! ones, indexes that do not follow each other — is damage: the broker refuses to start
//! (`ControllerError::MetadataDamaged`), since a voter that forgot entries it acknowledged
//! could elect a leader without them.
//!
//! Truncation (openraft removes a conflicting uncommitted suffix) cuts the file at the
//! first removed frame and fsyncs. Purging (entries covered by a snapshot) records the
//! purged log id first, then drops the entries from memory; the file is rewritten without
//! them (atomically) once they are the larger part of it.
//!
//! Every entry is also held in memory: the metadata log is small (records describe
//! topics and brokers, not data) and snapshots bound it.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{AnyError, LogState, RaftLogReader, StorageIOError};
use serde::{de::DeserializeOwned, Serialize};

use super::types::{Entry, LogId, StorageError, StrataRaft, Vote};
use crate::controller::error::ControllerError;
use crate::log::{checkpoint, durable, LogError};

const LOG_FILE: &str = "raft.log";
const VOTE_FILE: &str = "vote.json";
const COMMITTED_FILE: &str = "committed.json";
const PURGED_FILE: &str = "purged.json";
/// Frame header: length and CRC.
const FRAME_HEADER_BYTES: usize = 8;
/// The largest entry accepted on read: a bound before allocating from a length field.
const ENTRY_BYTES_MAX: u32 = 64 << 20;

/// The Raft log storage of this voter. Cheap to clone (one shared state); openraft uses
/// a clone as its log reader.
#[derive(Debug, Clone)]
pub struct LogStore {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    file: File,
    /// Byte length of `raft.log`, i.e. where the next frame goes.
    end: u64,
    /// Entries by index, with the byte position of their frame.
    entries: BTreeMap<u64, (u64, Entry)>,
    /// Bytes of the file that belong to purged entries (still in the file).
    purged_bytes: u64,
    last_purged: Option<LogId>,
    vote: Option<Vote>,
    committed: Option<LogId>,
}

/// What [`LogStore::open`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    /// No vote, no entries and nothing purged: this voter has never run.
    pub fresh: bool,
}

fn damaged(dir: &Path, reason: impl Into<String>) -> ControllerError {
    ControllerError::MetadataDamaged {
        dir: dir.display().to_string(),
        reason: reason.into(),
    }
}

fn read_json<T: DeserializeOwned>(dir: &Path, name: &str) -> Result<Option<T>, ControllerError> {
    checkpoint::remove_stale_temp(dir, name)?;
    let Some(bytes) = checkpoint::read_file(dir, name)? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|error| damaged(dir, format!("{name} is unreadable: {error}")))
}

fn write_json<T: Serialize>(dir: &Path, name: &str, value: &T) -> Result<(), LogError> {
    let bytes = serde_json::to_vec(value).map_err(|error| LogError::BadAuxiliaryFile {
        path: dir.join(name),
        reason: format!("cannot encode: {error}"),
    })?;
    checkpoint::write_atomic(dir, name, &bytes)
}

fn io_error(error: impl std::fmt::Display) -> StorageError {
    StorageIOError::write_logs(AnyError::error(error.to_string())).into()
}

fn frame(entry: &Entry) -> Result<Vec<u8>, StorageError> {
    let json = serde_json::to_vec(entry).map_err(io_error)?;
    let length = u32::try_from(json.len())
        .ok()
        .filter(|length| *length <= ENTRY_BYTES_MAX)
        .ok_or_else(|| io_error(format!("a Raft entry of {} bytes is too large", json.len())))?;
    let mut bytes = Vec::with_capacity(FRAME_HEADER_BYTES + json.len());
    bytes.extend_from_slice(&length.to_be_bytes());
    bytes.extend_from_slice(&crc32fast::hash(&json).to_be_bytes());
    bytes.extend_from_slice(&json);
    Ok(bytes)
}

impl LogStore {
    /// Opens (or creates) the store in `dir`, recovering `raft.log`. Blocking.
    pub fn open(dir: &Path) -> Result<(LogStore, Opened), ControllerError> {
        std::fs::create_dir_all(dir)
            .map_err(|source| LogError::io("create controller directory", dir, source))?;
        let path = dir.join(LOG_FILE);
        let created = !path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|source| LogError::io("open", &path, source))?;
        if created {
            durable::sync_dir(dir)?;
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|source| LogError::io("read", &path, source))?;
        let last_purged: Option<LogId> = read_json(dir, PURGED_FILE)?;
        let vote: Option<Vote> = read_json(dir, VOTE_FILE)?;
        let committed: Option<LogId> = read_json(dir, COMMITTED_FILE)?;
        let (entries, whole) = parse_frames(dir, &bytes)?;
        let purged_index = last_purged.map(|id| id.index);
        let mut kept = BTreeMap::new();
        let mut purged_bytes = 0;
        let mut previous: Option<u64> = None;
        for (position, entry) in entries {
            let index = entry.log_id.index;
            if let Some(previous) = previous {
                if index != previous + 1 {
                    return Err(damaged(
                        dir,
                        format!("{LOG_FILE}: entry {index} follows entry {previous}"),
                    ));
                }
            }
            previous = Some(index);
            if purged_index.is_some_and(|purged| index <= purged) {
                purged_bytes = position;
                continue;
            }
            kept.insert(index, (position, entry));
        }
        if let (Some(purged), Some((first, _))) = (purged_index, kept.first_key_value()) {
            if *first != purged + 1 {
                return Err(damaged(
                    dir,
                    format!(
                        "{LOG_FILE} starts at entry {first} but entries up to {purged} were purged"
                    ),
                ));
            }
        }
        // Entries up to the saved committed index were acknowledged to a quorum (and may
        // have been acted upon): a log that no longer reaches it lost them — whether a
        // bad last frame was cut above or the file is simply shorter. Only an append
        // above the committed index can have been interrupted by a crash.
        if let Some(committed) = committed {
            let held = kept
                .last_key_value()
                .map(|(index, _)| *index)
                .or(purged_index);
            if held.is_none_or(|held| held < committed.index) {
                return Err(damaged(
                    dir,
                    format!(
                        "{LOG_FILE} ends at entry {} but entries up to {} were committed",
                        held.map_or("(none)".to_owned(), |held| held.to_string()),
                        committed.index
                    ),
                ));
            }
        }
        // Only now, with every check passed: a refused start leaves the file as found.
        if (whole as usize) < bytes.len() {
            tracing::warn!(path = %path.display(), kept = whole, found = bytes.len(),
                "cutting a torn tail off the controller's Raft log (an append interrupted by a crash)");
            file.set_len(whole)
                .map_err(|source| LogError::io("truncate", &path, source))?;
            durable::sync_file(&file, &path)?;
        }
        let fresh = kept.is_empty() && last_purged.is_none() && vote.is_none();
        let store = LogStore {
            inner: Arc::new(Mutex::new(Inner {
                dir: dir.to_path_buf(),
                file,
                end: whole,
                entries: kept,
                purged_bytes,
                last_purged,
                vote,
                committed,
            })),
        };
        Ok((store, Opened { fresh }))
    }

    /// Records that everything up to `log_id` is covered by a snapshot that did not come
    /// from this log (a data directory of a one-node broker from before the quorum).
    pub fn mark_purged(&self, log_id: LogId) -> Result<(), ControllerError> {
        let mut inner = self.lock();
        write_json(&inner.dir, PURGED_FILE, &log_id)?;
        inner.last_purged = Some(log_id);
        Ok(())
    }

    /// The last committed log id saved (openraft applies up to it on start).
    pub fn committed(&self) -> Option<LogId> {
        self.lock().committed
    }

    /// The index of the last entry (or the last purged one).
    pub fn last_index(&self) -> Option<u64> {
        let inner = self.lock();
        inner
            .entries
            .last_key_value()
            .map(|(index, _)| *index)
            .or(inner.last_purged.map(|id| id.index))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Inner) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || work(&mut store.lock()))
            .await
            .map_err(io_error)?
    }
}

/// The voter set of the last membership entry in `dir`'s Raft log, if any, without
/// changing anything (a start checks it before it opens the data directory). A log that
/// cannot be read gives `None`; opening it reports why.
pub fn last_membership_voters(dir: &Path) -> Option<std::collections::BTreeSet<u64>> {
    let bytes = std::fs::read(dir.join(LOG_FILE)).ok()?;
    let (entries, _) = parse_frames(dir, &bytes).ok()?;
    entries
        .iter()
        .rev()
        .find_map(|(_, entry)| match &entry.payload {
            openraft::EntryPayload::Membership(membership) => {
                Some(membership.voter_ids().collect())
            }
            _ => None,
        })
}

/// What `dir` holds, as [`read_stored`] found it.
#[derive(Debug, Clone)]
pub struct StoredLog {
    pub vote: Option<Vote>,
    pub committed: Option<LogId>,
    pub last_purged: Option<LogId>,
    /// The whole frames of `raft.log`: the byte position of each and its entry.
    pub entries: Vec<(u64, Entry)>,
    /// Byte length of the whole frames; bytes after it are a frame cut short or failing
    /// its CRC at the very end (a torn tail, which a start cuts when it is uncommitted).
    pub whole_bytes: u64,
    /// Byte length of `raft.log`.
    pub file_bytes: u64,
}

/// Reads `raft.log`, `vote.json`, `committed.json` and `purged.json` in `dir` without
/// changing anything (no tail cut, no stale temp file removed), for tools such as
/// `dump-log` that may run beside a live broker. Damage before the last frame is an error,
/// as on open.
pub fn read_stored(dir: &Path) -> Result<StoredLog, ControllerError> {
    fn json<T: DeserializeOwned>(dir: &Path, name: &str) -> Result<Option<T>, ControllerError> {
        let Some(bytes) = checkpoint::read_file(dir, name)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|error| damaged(dir, format!("{name} is unreadable: {error}")))
    }
    let path = dir.join(LOG_FILE);
    let bytes = std::fs::read(&path).map_err(|source| LogError::io("read", &path, source))?;
    let (entries, whole_bytes) = parse_frames(dir, &bytes)?;
    Ok(StoredLog {
        vote: json(dir, VOTE_FILE)?,
        // Written as an `Option`; `null` is no committed index.
        committed: json::<Option<LogId>>(dir, COMMITTED_FILE)?.flatten(),
        last_purged: json(dir, PURGED_FILE)?,
        entries,
        whole_bytes,
        file_bytes: bytes.len() as u64,
    })
}

/// Parses frames from the start of `bytes`: the entries with their positions, and the
/// byte length of the whole frames (a torn tail after it is cut by the caller).
fn parse_frames(dir: &Path, bytes: &[u8]) -> Result<(Vec<(u64, Entry)>, u64), ControllerError> {
    let mut entries = Vec::new();
    let mut position = 0usize;
    while position < bytes.len() {
        let rest = &bytes[position..];
        if rest.len() < FRAME_HEADER_BYTES {
            // A header cut short: a torn tail.
            break;
        }
        let length = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
        let crc = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]);
        if length > ENTRY_BYTES_MAX {
            return Err(damaged(
                dir,
                format!("{LOG_FILE} at byte {position}: a frame of {length} bytes"),
            ));
        }
        let end = FRAME_HEADER_BYTES + length as usize;
        if rest.len() < end {
            // A frame that runs past the end of the file: a torn tail.
            break;
        }
        let json = &rest[FRAME_HEADER_BYTES..end];
        if crc32fast::hash(json) != crc {
            if rest.len() > end {
                return Err(damaged(
                    dir,
                    format!("{LOG_FILE} at byte {position}: CRC mismatch before the last frame"),
                ));
            }
            break;
        }
        let entry: Entry = serde_json::from_slice(json).map_err(|error| {
            damaged(
                dir,
                format!("{LOG_FILE} at byte {position}: undecodable entry: {error}"),
            )
        })?;
        entries.push((position as u64, entry));
        position += end;
    }
    Ok((entries, position as u64))
}

impl RaftLogReader<StrataRaft> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + std::fmt::Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let inner = self.lock();
        Ok(inner
            .entries
            .range(range)
            .map(|(_, (_, entry))| entry.clone())
            .collect())
    }
}

impl RaftLogStorage<StrataRaft> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<StrataRaft>, StorageError> {
        let inner = self.lock();
        let last = inner
            .entries
            .last_key_value()
            .map(|(_, (_, entry))| entry.log_id)
            .or(inner.last_purged);
        Ok(LogState {
            last_purged_log_id: inner.last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let vote = *vote;
        self.blocking(move |inner| {
            write_json(&inner.dir, VOTE_FILE, &vote)
                .map_err(|error| StorageIOError::write_vote(AnyError::error(error)))?;
            inner.vote = Some(vote);
            Ok(())
        })
        .await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.lock().vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.blocking(move |inner| {
            if committed == inner.committed {
                return Ok(());
            }
            write_json(&inner.dir, COMMITTED_FILE, &committed).map_err(io_error)?;
            inner.committed = committed;
            Ok(())
        })
        .await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.lock().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<StrataRaft>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let result = self
            .blocking(move |inner| {
                let mut bytes = Vec::new();
                let mut placed = Vec::with_capacity(entries.len());
                for entry in entries {
                    let position = inner.end + bytes.len() as u64;
                    bytes.extend_from_slice(&frame(&entry)?);
                    placed.push((position, entry));
                }
                let path = inner.dir.join(LOG_FILE);
                if let Err(error) = durable::write_all_at(&inner.file, &bytes, inner.end, &path) {
                    // Cut whatever part was written, so the file ends with whole frames.
                    let _ = inner.file.set_len(inner.end);
                    return Err(io_error(error));
                }
                durable::sync_file(&inner.file, &path).map_err(io_error)?;
                inner.end += bytes.len() as u64;
                for (position, entry) in placed {
                    inner.entries.insert(entry.log_id.index, (position, entry));
                }
                Ok(())
            })
            .await;
        match &result {
            Ok(()) => callback.log_io_completed(Ok(())),
            Err(error) => callback.log_io_completed(Err(std::io::Error::other(error.to_string()))),
        }
        result
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.blocking(move |inner| {
            let Some((position, _)) = inner.entries.get(&log_id.index) else {
                return Ok(());
            };
            let position = *position;
            let path = inner.dir.join(LOG_FILE);
            inner
                .file
                .set_len(position)
                .map_err(|source| io_error(LogError::io("truncate", &path, source)))?;
            durable::sync_file(&inner.file, &path).map_err(io_error)?;
            inner.end = position;
            inner.entries.split_off(&log_id.index);
            Ok(())
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.blocking(move |inner| {
            write_json(&inner.dir, PURGED_FILE, &log_id).map_err(io_error)?;
            inner.last_purged = Some(log_id);
            let kept = inner.entries.split_off(&(log_id.index + 1));
            if let Some((position, _)) = kept.first_key_value().map(|(_, value)| value) {
                inner.purged_bytes = *position;
            } else {
                inner.purged_bytes = inner.end;
            }
            inner.entries = kept;
            if inner.purged_bytes > inner.end / 2 {
                rewrite(inner)?;
            }
            Ok(())
        })
        .await
    }
}

/// Rewrites `raft.log` with the entries still held, atomically: a new file is written and
/// fsynced beside it, then renamed over it, then the directory is fsynced.
fn rewrite(inner: &mut Inner) -> Result<(), StorageError> {
    let mut bytes = Vec::new();
    let mut positions = Vec::with_capacity(inner.entries.len());
    for (index, (_, entry)) in &inner.entries {
        positions.push((*index, bytes.len() as u64));
        bytes.extend_from_slice(&frame(entry)?);
    }
    let temp = inner.dir.join(format!("{LOG_FILE}.rewrite"));
    let path = inner.dir.join(LOG_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temp)
        .map_err(|source| io_error(LogError::io("create", &temp, source)))?;
    durable::write_all_at(&file, &bytes, 0, &temp).map_err(io_error)?;
    durable::sync_file(&file, &temp).map_err(io_error)?;
    std::fs::rename(&temp, &path)
        .map_err(|source| io_error(LogError::io("rename", &path, source)))?;
    durable::sync_dir(&inner.dir).map_err(io_error)?;
    inner.file = file;
    inner.end = bytes.len() as u64;
    inner.purged_bytes = 0;
    for (index, position) in positions {
        if let Some(slot) = inner.entries.get_mut(&index) {
            slot.0 = position;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;
    use crate::controller::quorum::types::Command;

    fn entry(term: u64, index: u64) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Normal(Command { records: vec![] }),
        }
    }

    async fn append(store: &mut LogStore, entries: Vec<Entry>) {
        use openraft::storage::RaftLogStorageExt;
        store.blocking_append(entries).await.unwrap();
    }

    #[tokio::test]
    async fn entries_vote_and_truncation_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, opened) = LogStore::open(dir.path()).unwrap();
        assert!(opened.fresh);
        append(&mut store, (0..5).map(|i| entry(1, i)).collect()).await;
        store.save_vote(&Vote::new(2, 1)).await.unwrap();
        store.truncate(entry(1, 3).log_id).await.unwrap();
        append(&mut store, vec![entry(2, 3)]).await;
        drop(store);

        let (mut store, opened) = LogStore::open(dir.path()).unwrap();
        assert!(!opened.fresh);
        let entries = store.try_get_log_entries(0..).await.unwrap();
        let ids: Vec<(u64, u64)> = entries
            .iter()
            .map(|e| (e.log_id.leader_id.term, e.log_id.index))
            .collect();
        assert_eq!(ids, vec![(1, 0), (1, 1), (1, 2), (2, 3)]);
        assert_eq!(store.read_vote().await.unwrap(), Some(Vote::new(2, 1)));
    }

    #[tokio::test]
    async fn a_torn_tail_is_cut_and_damage_before_it_refuses_to_open() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = LogStore::open(dir.path()).unwrap();
        append(&mut store, (0..3).map(|i| entry(1, i)).collect()).await;
        drop(store);
        let path = dir.path().join(LOG_FILE);
        let whole = std::fs::read(&path).unwrap();
        // A crash in the middle of an append: half a frame at the end.
        let mut torn = whole.clone();
        torn.extend_from_slice(&frame(&entry(1, 3)).unwrap()[..10]);
        std::fs::write(&path, &torn).unwrap();
        let (mut store, _) = LogStore::open(dir.path()).unwrap();
        assert_eq!(store.try_get_log_entries(0..).await.unwrap().len(), 3);
        assert_eq!(std::fs::read(&path).unwrap(), whole);
        drop(store);
        // A flipped byte in the first frame, with whole frames after it: damage.
        let mut bad = whole.clone();
        bad[FRAME_HEADER_BYTES + 2] ^= 0xff;
        std::fs::write(&path, &bad).unwrap();
        let error = LogStore::open(dir.path()).unwrap_err();
        assert!(
            matches!(error, ControllerError::MetadataDamaged { .. }),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_bad_last_frame_is_cut_only_above_the_committed_index() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = LogStore::open(dir.path()).unwrap();
        append(&mut store, (0..3).map(|i| entry(1, i)).collect()).await;
        store
            .save_committed(Some(entry(1, 1).log_id))
            .await
            .unwrap();
        drop(store);
        let path = dir.path().join(LOG_FILE);
        let whole = std::fs::read(&path).unwrap();
        let mut bad_last = whole.clone();
        let last = bad_last.len() - 3;
        bad_last[last] ^= 0xff;
        // Entry 2 is above the committed index 1: an interrupted append, cut.
        std::fs::write(&path, &bad_last).unwrap();
        let (mut store, _) = LogStore::open(dir.path()).unwrap();
        assert_eq!(store.try_get_log_entries(0..).await.unwrap().len(), 2);
        append(&mut store, vec![entry(1, 2)]).await;
        store
            .save_committed(Some(entry(1, 2).log_id))
            .await
            .unwrap();
        drop(store);
        // Now entry 2 is committed: the same damage, or a shorter file, refuses to open.
        std::fs::write(&path, &bad_last).unwrap();
        let error = LogStore::open(dir.path()).unwrap_err();
        assert!(
            matches!(error, ControllerError::MetadataDamaged { .. }),
            "{error}"
        );
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bad_last,
            "a refused open cut the file"
        );
        std::fs::write(&path, &whole[..whole.len() / 2]).unwrap();
        let error = LogStore::open(dir.path()).unwrap_err();
        assert!(
            matches!(error, ControllerError::MetadataDamaged { .. }),
            "{error}"
        );
    }

    #[tokio::test]
    async fn purged_entries_stay_purged_after_the_file_is_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = LogStore::open(dir.path()).unwrap();
        append(&mut store, (0..10).map(|i| entry(1, i)).collect()).await;
        store.purge(entry(1, 7).log_id).await.unwrap();
        append(&mut store, vec![entry(1, 10)]).await;
        drop(store);
        let (mut store, _) = LogStore::open(dir.path()).unwrap();
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(entry(1, 7).log_id));
        assert_eq!(state.last_log_id, Some(entry(1, 10).log_id));
        let indexes: Vec<u64> = store
            .try_get_log_entries(0..)
            .await
            .unwrap()
            .iter()
            .map(|e| e.log_id.index)
            .collect();
        assert_eq!(indexes, vec![8, 9, 10]);
    }
}
