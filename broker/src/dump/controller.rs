//! `dump-log <data>/controller`: the controller quorum's Raft state, read only.
//!
//! Prints the vote, the committed index and the purged log id, the snapshot's Raft meta and
//! metadata version (checking the image's CRC), then one line per `raft.log` entry: index,
//! term, payload kind and the frame's position and size; with `--records`, each metadata
//! record of a command as JSON. The files are read as a start reads them
//! ([`log_store::read_stored`]) but nothing is changed, so it is safe beside a live broker.
//!
//! Exit status as for segments: 1 when a start would refuse the directory or cut something
//! from it — a damaged frame, snapshot or small file, a log that does not reach the
//! committed index, or bytes after the last whole frame (a torn append) — and 2 on an I/O
//! error.

use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

use openraft::EntryPayload;
use serde::Deserialize;

use crate::controller::error::ControllerError;
use crate::controller::image::MetadataImage;
use crate::controller::quorum::log_store::{self, StoredLog};
use crate::controller::quorum::state_machine::SNAPSHOT_FILE;
use crate::controller::quorum::types::{Entry, LogId, SnapshotMeta, Vote};

/// The Raft log's file name in the controller directory.
const LOG_FILE: &str = "raft.log";

/// The controller directory `path` names: a directory with a Raft log or a snapshot, or
/// the directory of the `raft.log` or `snapshot.json` named.
pub(super) fn controller_dir_of(path: &Path) -> Option<&Path> {
    if path.is_dir() {
        let holds = path.join(LOG_FILE).is_file() || path.join(SNAPSHOT_FILE).is_file();
        return holds.then_some(path);
    }
    let name = path.file_name()?;
    (name == LOG_FILE || name == SNAPSHOT_FILE)
        .then(|| path.parent())
        .flatten()
}

/// `snapshot.json` as the state machine stores it.
#[derive(Debug, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    image_crc32: u32,
    image: MetadataImage,
}

/// Dumps the controller directory `dir`; see the module docs for the exit status.
pub(super) fn run(dir: &Path, records: bool) -> ExitCode {
    let stdout = io::stdout();
    let mut out = stdout.lock();
    match dump(dir, records, &mut out) {
        Ok(problems) if problems.is_empty() => ExitCode::SUCCESS,
        Ok(problems) => {
            let _ = out.flush();
            for problem in problems {
                eprintln!("dump-log: {problem}");
            }
            ExitCode::from(1)
        }
        Err(error) => {
            let _ = out.flush();
            eprintln!("dump-log: cannot read {}: {error}", dir.display());
            ExitCode::from(2)
        }
    }
}

/// Prints what `dir` holds; the problems a start would refuse or cut, or an I/O error.
fn dump(dir: &Path, records: bool, out: &mut impl Write) -> io::Result<Vec<String>> {
    writeln!(out, "Dumping {}", dir.display())?;
    let mut problems = Vec::new();
    if let Some(problem) = dump_snapshot(dir, out)? {
        problems.push(problem);
    }
    if !dir.join(LOG_FILE).exists() {
        return Ok(problems);
    }
    let stored = match log_store::read_stored(dir) {
        Ok(stored) => stored,
        Err(ControllerError::MetadataDamaged { reason, .. }) => {
            problems.push(format!("damaged Raft state in {}: {reason}", dir.display()));
            return Ok(problems);
        }
        Err(error) => return Err(io::Error::other(error.to_string())),
    };
    print_state(&stored, out)?;
    writeln!(out, "Dumping {}", dir.join(LOG_FILE).display())?;
    for (position, entry) in &stored.entries {
        print_entry(out, *position, entry, records)?;
    }
    problems.extend(log_problems(dir, &stored));
    Ok(problems)
}

fn dump_snapshot(dir: &Path, out: &mut impl Write) -> io::Result<Option<String>> {
    let path = dir.join(SNAPSHOT_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            writeln!(out, "snapshot: none")?;
            return Ok(None);
        }
        Err(error) => return Err(error),
    };
    writeln!(out, "Dumping {}", path.display())?;
    let snapshot: StoredSnapshot = match serde_json::from_slice(&bytes) {
        Ok(snapshot) => snapshot,
        Err(error) => return Ok(Some(format!("{} is unreadable: {error}", path.display()))),
    };
    // The CRC covers the image's JSON as the state machine encodes it (state_machine.rs).
    let crc = crc32fast::hash(&serde_json::to_vec(&snapshot.image).map_err(io::Error::other)?);
    let meta = &snapshot.meta;
    let voters: Vec<u64> = meta.last_membership.membership().voter_ids().collect();
    writeln!(
        out,
        "snapshot: id: {} lastLogId: {} voters: {voters:?} version: {} clusterId: {} \
         brokers: {} topics: {} imageCrc32: {:#010x} crcOk: {}",
        meta.snapshot_id,
        show_log_id(meta.last_log_id),
        snapshot.image.version,
        snapshot.image.cluster_id.as_deref().unwrap_or("none"),
        snapshot.image.brokers.len(),
        snapshot.image.topics.len(),
        snapshot.image_crc32,
        crc == snapshot.image_crc32,
    )?;
    Ok((crc != snapshot.image_crc32)
        .then(|| format!("{}: the image fails its CRC", path.display())))
}

fn print_state(stored: &StoredLog, out: &mut impl Write) -> io::Result<()> {
    let vote = stored.vote.as_ref().map_or("none".to_owned(), show_vote);
    writeln!(
        out,
        "vote: {vote} committed: {} purged: {}",
        show_log_id(stored.committed),
        show_log_id(stored.last_purged)
    )
}

fn show_vote(vote: &Vote) -> String {
    let leader = vote.leader_id();
    let voted_for = leader
        .voted_for()
        .map_or("none".to_owned(), |id| id.to_string());
    format!(
        "term {} for {voted_for} (committed: {})",
        leader.get_term(),
        vote.is_committed()
    )
}

fn show_log_id(log_id: Option<LogId>) -> String {
    log_id.map_or("none".to_owned(), |id| {
        format!("{}@term{}", id.index, id.leader_id.term)
    })
}

fn print_entry(
    out: &mut impl Write,
    position: u64,
    entry: &Entry,
    records: bool,
) -> io::Result<()> {
    let payload = match &entry.payload {
        EntryPayload::Blank => "blank".to_owned(),
        EntryPayload::Normal(command) => format!("command records: {}", command.records.len()),
        EntryPayload::Membership(membership) => {
            let voters: Vec<u64> = membership.voter_ids().collect();
            format!("membership voters: {voters:?}")
        }
    };
    writeln!(
        out,
        "index: {} term: {} leader: {} position: {position} payload: {payload}",
        entry.log_id.index, entry.log_id.leader_id.term, entry.log_id.leader_id.node_id,
    )?;
    if let (true, EntryPayload::Normal(command)) = (records, &entry.payload) {
        for record in &command.records {
            let json = serde_json::to_string(record).map_err(io::Error::other)?;
            writeln!(out, "| {json}")?;
        }
    }
    Ok(())
}

/// What a start would cut (a torn tail) or refuse (a log short of the committed index, a
/// gap after the purged entries or between entries) in a log read without damage.
fn log_problems(dir: &Path, stored: &StoredLog) -> Vec<String> {
    let path = dir.join(LOG_FILE);
    let mut problems = Vec::new();
    if stored.whole_bytes < stored.file_bytes {
        problems.push(format!(
            "{}: {} bytes after the last whole frame at byte {} (an append cut short or \
             failing its CRC; a start cuts it only if it is above the committed index)",
            path.display(),
            stored.file_bytes - stored.whole_bytes,
            stored.whole_bytes
        ));
    }
    let indexes = stored.entries.iter().map(|(_, entry)| entry.log_id.index);
    let mut previous = stored.last_purged.map(|id| id.index);
    for index in indexes {
        match previous {
            Some(previous) if index > previous + 1 => problems.push(format!(
                "{}: entry {index} follows entry {previous}",
                path.display()
            )),
            _ => {}
        }
        previous = Some(index.max(previous.unwrap_or(0)));
    }
    if let Some(committed) = stored.committed {
        if previous.is_none_or(|last| last < committed.index) {
            problems.push(format!(
                "{}: the log ends at entry {} but entries up to {} were committed",
                path.display(),
                previous.map_or("(none)".to_owned(), |last| last.to_string()),
                committed.index
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
    use openraft::CommittedLeaderId;

    use super::*;
    use crate::controller::quorum::log_store::LogStore;
    use crate::controller::quorum::types::Command;
    use crate::controller::MetadataRecord;

    fn entry(index: u64, records: Vec<MetadataRecord>) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(Command { records }),
        }
    }

    /// A controller directory with three entries (the middle one a record), committed up
    /// to the last.
    async fn controller_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = LogStore::open(dir.path()).unwrap();
        let record = MetadataRecord::SetClusterId {
            cluster_id: "dump-test".into(),
        };
        let entries = vec![entry(0, vec![]), entry(1, vec![record]), entry(2, vec![])];
        let last = entries[2].log_id;
        store.blocking_append(entries).await.unwrap();
        store.save_committed(Some(last)).await.unwrap();
        dir
    }

    fn dump_to_string(dir: &Path) -> (String, Vec<String>) {
        let mut out = Vec::new();
        let problems = dump(dir, true, &mut out).unwrap();
        (String::from_utf8(out).unwrap(), problems)
    }

    #[tokio::test]
    async fn entries_and_records_are_printed_and_nothing_changes() {
        let dir = controller_dir().await;
        let log = dir.path().join(LOG_FILE);
        let before = std::fs::read(&log).unwrap();
        let (out, problems) = dump_to_string(dir.path());
        assert!(problems.is_empty(), "{problems:?}\n{out}");
        let entry_lines: Vec<&str> = out.lines().filter(|l| l.starts_with("index:")).collect();
        assert_eq!(entry_lines.len(), 3, "{out}");
        assert!(entry_lines[1].contains("index: 1 term: 1"), "{out}");
        assert!(
            entry_lines[1].contains("payload: command records: 1"),
            "{out}"
        );
        assert!(
            out.contains(r#"| {"type":"SetClusterId","cluster_id":"dump-test"}"#),
            "{out}"
        );
        assert!(out.contains("committed: 2@term1"), "{out}");
        assert_eq!(std::fs::read(&log).unwrap(), before);
    }

    #[tokio::test]
    async fn a_flipped_byte_or_a_cut_log_is_reported() {
        let dir = controller_dir().await;
        let log = dir.path().join(LOG_FILE);
        let whole = std::fs::read(&log).unwrap();

        let mut flipped = whole.clone();
        flipped[10] ^= 0x01;
        std::fs::write(&log, &flipped).unwrap();
        let (_, problems) = dump_to_string(dir.path());
        assert!(problems.iter().any(|p| p.contains("CRC")), "{problems:?}");

        std::fs::write(&log, &whole[..whole.len() - 3]).unwrap();
        let (out, problems) = dump_to_string(dir.path());
        assert!(
            problems
                .iter()
                .any(|p| p.contains("after the last whole frame")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("up to 2 were committed")),
            "{problems:?}\n{out}"
        );
        assert_eq!(std::fs::read(&log).unwrap(), &whole[..whole.len() - 3]);
    }
}
