//! `strata-broker dump-log` through the real binary: a healthy partition directory prints
//! one line per batch and exits 0; one flipped byte in a sealed segment is reported with
//! the segment file and byte position, and the exit status is non-zero.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use bytes::Bytes;
use strata_broker::log::{LogConfig, LogManager, SystemClock, TopicPartition};
use strata_proto::record::{BatchBuilder, BatchSettings, Header, Record};
use strata_proto::types::{LeaderEpoch, PartitionId, TopicName};

const BATCHES: usize = 30;

/// Writes 30 batches of 3 records into `<data>/orders-0` with 1 KiB segments; returns the
/// size of each of the first ten batches (their values have the same length).
fn write_partition(data_dir: &Path) -> usize {
    let config = LogConfig {
        segment_bytes: 1024,
        ..LogConfig::default()
    };
    let manager = LogManager::open(data_dir, config, Arc::new(SystemClock)).unwrap();
    let partition = TopicPartition::new(TopicName::new("orders").unwrap(), PartitionId(0));
    let log = manager.get_or_create(&partition, None).unwrap();
    let mut batch_bytes = 0;
    for i in 0..BATCHES {
        let mut builder = BatchBuilder::new(BatchSettings::default());
        for r in 0..3 {
            let mut record = Record::from_key_value(
                1_700_000_000_000,
                format!("k{r}"),
                format!("value-{i}-{r}"),
            );
            record
                .headers
                .push(Header::new("source", Some(Bytes::from_static(b"test"))));
            builder.append(&record).unwrap();
        }
        let batch = builder.build().unwrap();
        if i == 0 {
            batch_bytes = batch.len();
        }
        log.append(&batch, LeaderEpoch(1)).unwrap();
    }
    drop(log);
    manager.close().unwrap();
    batch_bytes
}

fn dump(path: &Path, records: bool) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_strata-broker"));
    command.arg("dump-log").arg(path);
    if records {
        command.arg("--records");
    }
    command.output().unwrap()
}

#[test]
fn healthy_partition_prints_every_batch_and_exits_zero() {
    let data = tempfile::tempdir().unwrap();
    write_partition(data.path());
    let output = dump(&data.path().join("orders-0"), true);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        stdout
            .lines()
            .filter(|line| line.starts_with("baseOffset:"))
            .count(),
        BATCHES
    );
    assert!(stdout.contains("baseOffset: 87 lastOffset: 89 count: 3 leaderEpoch: 1"));
    assert!(stdout.contains(r#"| offset: 89 timestamp: 1700000000000 key: "k2" value: "value-29-2" headers: [source="test"]"#));
}

#[test]
fn flipped_byte_in_a_sealed_segment_is_named_with_its_position() {
    let data = tempfile::tempdir().unwrap();
    let batch_bytes = write_partition(data.path());
    let dir = data.path().join("orders-0");
    let sealed = dir.join("00000000000000000000.log");
    let mut bytes = std::fs::read(&sealed).unwrap();
    let position = batch_bytes * 2 + 40; // inside the third batch, covered by the CRC
    bytes[position] ^= 0x01;
    std::fs::write(&sealed, bytes).unwrap();

    let output = dump(&dir, false);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    let expected = format!(
        "corrupt batch in {} at byte {}",
        sealed.display(),
        batch_bytes * 2
    );
    assert!(stderr.contains(&expected), "stderr: {stderr}");
    assert!(stderr.contains("CRC mismatch"), "stderr: {stderr}");
    // The batches before the damage are still printed, and later segments too.
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains("baseOffset: 3 lastOffset: 5"));
    assert!(
        stdout
            .lines()
            .filter(|line| line.starts_with("Dumping"))
            .count()
            > 1
    );
}

/// The active (last) segment of `dir`, grown to `len` bytes with `fill`.
fn extend_active_segment(dir: &Path, len: u64, fill: u8) -> std::path::PathBuf {
    let mut segments: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "log"))
        .collect();
    segments.sort();
    let active = segments.pop().unwrap();
    let mut bytes = std::fs::read(&active).unwrap();
    bytes.resize(len as usize, fill);
    std::fs::write(&active, bytes).unwrap();
    active
}

#[test]
fn direct_io_padding_at_the_end_is_reported_as_padding_not_damage() {
    let data = tempfile::tempdir().unwrap();
    write_partition(data.path());
    let dir = data.path().join("orders-0");
    // What a direct-I/O broker killed mid-segment leaves: zeros up to the block boundary.
    let active = extend_active_segment(&dir, 4096, 0);
    let output = dump(&dir, false);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains("padding:"), "stdout: {stdout}");
    assert!(stdout.contains("baseOffset: 87 lastOffset: 89"));

    // Zeros that do not end on a block boundary are a torn tail, as recovery sees them.
    extend_active_segment(&dir, 4096 + 100, 0);
    let output = dump(&dir, false);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains(&format!("corrupt batch in {}", active.display())),
        "stderr: {stderr}"
    );
}

#[test]
fn non_zero_bytes_after_the_last_batch_are_damage_even_on_a_block_boundary() {
    let data = tempfile::tempdir().unwrap();
    write_partition(data.path());
    let dir = data.path().join("orders-0");
    extend_active_segment(&dir, 4096, 0xff);
    let output = dump(&dir, false);
    assert_eq!(output.status.code(), Some(1));
    assert!(!String::from_utf8(output.stdout)
        .unwrap()
        .contains("padding:"));
}
