//! Damaged or missing cluster metadata never costs partition data. A real broker holds a
//! topic with acknowledged records and has just deleted another one; then its controller
//! directory (`<data>/controller`: the Raft log `raft.log`, `committed.json`, …) is
//! damaged: one byte flipped in an early frame of the Raft log, or in its last frame while
//! that entry is committed (a bad last frame is only a torn tail when its entry was never
//! committed), the log cut to half (entries up to the committed index gone), or the whole
//! directory gone, after a clean stop and after a crash. The broker must refuse to start
//! with a nonzero exit and a message that names the controller directory, delete or rename
//! nothing, and once the directory is put back, serve every acknowledged record with the
//! deleted topic still deleted. A partition directory the metadata does not know is set
//! aside, never deleted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{
    assert_ok, connect, create_topic, fetch_all, kill, metadata, produce_ok, restart, terminate,
    values_batch,
};
use strata_broker::controller::quorum::log_store::{read_stored, StoredLog};
use strata_broker::controller::quorum::CONTROLLER_DIR;
use strata_proto::api::v1::DeleteTopicsRequest;
use strata_tests::broker_process::{BrokerOptions, BrokerProcess};

const KEPT: &str = "kept";
const GONE: &str = "gone";
const PARTITIONS: i32 = 2;
const RAFT_LOG: &str = "raft.log";
/// Bytes before a frame's JSON entry: length and CRC (`quorum/log_store.rs`).
const FRAME_HEADER_BYTES: u64 = 8;

#[derive(Debug, Clone, Copy)]
enum Damage {
    /// A byte of the first frame's entry, with whole frames after it.
    FlipFirstFrameByte,
    /// A byte of the last frame's entry, which is committed.
    FlipLastFrameByte,
    CutToHalf,
    Missing,
}

/// Starts a broker whose log goes to `log_file`, creates `kept` with records and `gone`,
/// deletes `gone`; returns the broker (running) and the acknowledged values per partition
/// of `kept`.
async fn populated(dir: &Path, log_file: &Path) -> (BrokerProcess, Vec<Vec<String>>) {
    let options = BrokerOptions {
        log_file: Some(log_file.to_path_buf()),
        ..BrokerOptions::default()
    };
    let broker =
        tokio::task::block_in_place(|| BrokerProcess::start_with_options(dir, options)).unwrap();
    let mut client = connect(&broker).await;
    create_topic(&mut client, KEPT, PARTITIONS, &[]).await;
    create_topic(&mut client, GONE, 1, &[]).await;
    let mut acked = Vec::new();
    for partition in 0..PARTITIONS {
        let values: Vec<String> = (0..5).map(|i| format!("p{partition}-v{i}")).collect();
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        produce_ok(&mut client, KEPT, partition, values_batch(&refs)).await;
        acked.push(values);
    }
    let request = DeleteTopicsRequest {
        names: vec![GONE.to_owned()],
    };
    let response = client.delete_topics(request).await.unwrap().into_inner();
    assert_ok(&response.results[0].error);
    (broker, acked)
}

fn controller_dir(dir: &Path) -> PathBuf {
    dir.join(CONTROLLER_DIR)
}

/// The Raft state as a start reads it (read-only); it must be intact before the damage.
fn stored(dir: &Path) -> StoredLog {
    let stored = read_stored(&controller_dir(dir)).unwrap();
    assert_eq!(stored.whole_bytes, stored.file_bytes, "{RAFT_LOG} is whole");
    stored
}

/// Flips a byte in the middle of the JSON entry of the frame at `position`.
fn flip_entry_byte(raft_log: &Path, position: u64, next_frame: u64) {
    let mut bytes = fs::read(raft_log).unwrap();
    let json_bytes = next_frame - position - FRAME_HEADER_BYTES;
    let target = usize::try_from(position + FRAME_HEADER_BYTES + json_bytes / 2).unwrap();
    bytes[target] ^= 0x01;
    fs::write(raft_log, bytes).unwrap();
}

/// Damages the controller directory after copying it to `backup`, to undo it later.
fn damage(dir: &Path, damage: Damage, backup: &Path) {
    copy_dir(&controller_dir(dir), backup);
    let raft_log = controller_dir(dir).join(RAFT_LOG);
    match damage {
        Damage::FlipFirstFrameByte => {
            let stored = stored(dir);
            assert!(stored.entries.len() >= 2, "{:?}", stored.entries);
            let (first, second) = (stored.entries[0].0, stored.entries[1].0);
            flip_entry_byte(&raft_log, first, second);
        }
        Damage::FlipLastFrameByte => {
            let stored = stored(dir);
            let (position, last) = stored.entries.last().expect("entries in the Raft log");
            let committed = stored.committed.expect("a committed index");
            assert_eq!(
                committed.index, last.log_id.index,
                "the last entry must be committed for this damage to be more than a torn tail"
            );
            flip_entry_byte(&raft_log, *position, stored.file_bytes);
        }
        Damage::CutToHalf => {
            let stored = stored(dir);
            assert!(stored.committed.is_some(), "a committed index");
            let file = fs::OpenOptions::new().write(true).open(&raft_log).unwrap();
            file.set_len(stored.file_bytes / 2).unwrap();
        }
        Damage::Missing => fs::remove_dir_all(controller_dir(dir)).unwrap(),
    }
}

fn undo(dir: &Path, backup: &Path) {
    let controller = controller_dir(dir);
    if controller.exists() {
        fs::remove_dir_all(&controller).unwrap();
    }
    copy_dir(backup, &controller);
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// Every file of the controller directory with its bytes (none when it is missing).
fn controller_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(entries) = fs::read_dir(controller_dir(dir)) else {
        return Vec::new();
    };
    let mut files: Vec<(String, Vec<u8>)> = entries
        .map(|entry| entry.unwrap())
        .map(|entry| {
            let name = entry.file_name().into_string().unwrap();
            (name, fs::read(entry.path()).unwrap())
        })
        .collect();
    files.sort();
    files
}

/// The names of the directories in the data directory, to show none was deleted or
/// renamed (set aside).
fn directories(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap())
        .filter(|entry| entry.file_type().unwrap().is_dir())
        .map(|entry| entry.file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// The bytes of every segment of `kept`, to show nothing in them changed.
fn kept_segments(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    (0..PARTITIONS)
        .map(|partition| {
            let path = dir
                .join(format!("{KEPT}-{partition}"))
                .join("00000000000000000000.log");
            let bytes = fs::read(&path)
                .unwrap_or_else(|error| panic!("{} must still be there: {error}", path.display()));
            (path, bytes)
        })
        .collect()
}

async fn assert_served(broker: &BrokerProcess, acked: &[Vec<String>]) {
    let mut client = connect(broker).await;
    for (partition, values) in acked.iter().enumerate() {
        let records = fetch_all(&mut client, KEPT, partition as i32).await;
        let served: Vec<String> = records
            .iter()
            .map(|record| String::from_utf8(record.value.clone().unwrap().to_vec()).unwrap())
            .collect();
        assert_eq!(&served, values, "{KEPT}-{partition}");
    }
    let topics = metadata(&mut client).await.topics;
    assert!(
        topics.iter().all(|topic| topic.name != GONE),
        "a deleted topic came back: {topics:?}"
    );
}

async fn refuses_to_start_and_keeps_the_data(damage_kind: Damage, crash: bool) {
    let dir = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let log_file = logs.path().join("broker.log");
    let (mut broker, acked) = populated(dir.path(), &log_file).await;
    if crash {
        kill(&mut broker);
    } else {
        terminate(&mut broker);
    }
    let before = kept_segments(dir.path());
    let backup = tempfile::tempdir().unwrap();
    damage(dir.path(), damage_kind, backup.path());
    let directories_before = directories(dir.path());
    let controller_before = controller_files(dir.path());
    let log_bytes_before = fs::metadata(&log_file).unwrap().len();

    let start = tokio::task::block_in_place(|| broker.restart());
    let what = format!("{damage_kind:?} (crash: {crash})");
    let error = match start {
        Ok(()) => panic!("{what}: the broker started on damaged metadata"),
        Err(error) => error.to_string(),
    };
    assert!(
        error.contains("exited during start-up") && !error.contains("exit status: 0"),
        "{what}: {error}"
    );
    let log = fs::read(&log_file).unwrap();
    let log = String::from_utf8_lossy(&log[usize::try_from(log_bytes_before).unwrap()..]);
    let named = controller_dir(dir.path()).display().to_string();
    assert!(
        log.contains("cannot be trusted") && log.contains(&named),
        "{what}: the refusal names {named}:\n{log}"
    );
    assert_eq!(
        kept_segments(dir.path()),
        before,
        "{what}: partition data changed"
    );
    assert_eq!(
        directories(dir.path()),
        directories_before,
        "{what}: a directory was deleted, renamed or created"
    );
    // The damage stays for the operator to see (and `dump-log` to show): a refused start
    // cuts nothing, not even what looks like a torn tail.
    assert!(
        controller_files(dir.path()) == controller_before,
        "{what}: the refused start changed the controller directory"
    );

    undo(dir.path(), backup.path());
    restart(&mut broker);
    assert_served(&broker, &acked).await;
    terminate(&mut broker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_in_an_early_raft_log_frame_stops_the_start() {
    refuses_to_start_and_keeps_the_data(Damage::FlipFirstFrameByte, true).await;
    refuses_to_start_and_keeps_the_data(Damage::FlipFirstFrameByte, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_in_the_last_committed_raft_log_frame_stops_the_start() {
    refuses_to_start_and_keeps_the_data(Damage::FlipLastFrameByte, true).await;
    refuses_to_start_and_keeps_the_data(Damage::FlipLastFrameByte, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raft_log_cut_to_half_stops_the_start() {
    refuses_to_start_and_keeps_the_data(Damage::CutToHalf, true).await;
    refuses_to_start_and_keeps_the_data(Damage::CutToHalf, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_controller_dir_beside_partition_data_stops_the_start() {
    refuses_to_start_and_keeps_the_data(Damage::Missing, true).await;
    refuses_to_start_and_keeps_the_data(Damage::Missing, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_the_metadata_does_not_know_is_set_aside_not_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let (mut broker, acked) = populated(dir.path(), &logs.path().join("broker.log")).await;
    terminate(&mut broker);
    let ghost = dir.path().join("ghost-0");
    copy_dir(&dir.path().join(format!("{KEPT}-0")), &ghost);
    let ghost_bytes = fs::read(ghost.join("00000000000000000000.log")).unwrap();

    restart(&mut broker);
    assert_served(&broker, &acked).await;
    assert!(!ghost.exists(), "the unknown partition is out of service");
    let aside: Vec<PathBuf> = fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("ghost-0.orphaned."))
        })
        .collect();
    assert_eq!(aside.len(), 1, "set aside once: {aside:?}");
    let kept = fs::read(aside[0].join("00000000000000000000.log")).unwrap();
    assert_eq!(kept, ghost_bytes, "its data is intact");

    // A set-aside directory is skipped by later starts.
    terminate(&mut broker);
    restart(&mut broker);
    assert_served(&broker, &acked).await;
    assert!(aside[0].exists());
    terminate(&mut broker);
}
