//! A real crash: `durable_appender` appends with `flush = always` from 4 threads and
//! prints each batch the log reported durable; the test SIGKILLs it at random moments
//! (25 times, restarting it on the same data directory each time, so every run also
//! recovers the previous crash), then reopens the log and finds every reported batch, by
//! content, at the offset that was reported. Nothing reported durable may be missing, and
//! no offset may hold anything else. Run with buffered and with direct I/O; the check
//! always reopens the log with buffered I/O, so a direct-written log must also read back
//! (its block padding recognised) on a broker that does not use direct I/O.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use strata_broker::log::{LogConfig, LogManager, SystemClock, TopicPartition};
use strata_proto::record::{decode_batch, BatchHeader, DecodeLimits};
use strata_proto::types::{Offset, PartitionId, TopicName};
use strata_tests::durability::value;

const KILLS: u32 = 25;

#[derive(Debug)]
struct Reported {
    base_offset: i64,
    incarnation: u32,
    thread: u32,
    sequence: u64,
    count: u32,
}

fn parse_complete_lines(stdout: &str) -> Vec<Reported> {
    // A line cut by the kill has no newline and was never fully reported: skip it.
    let complete = match stdout.rfind('\n') {
        Some(end) => &stdout[..end],
        None => "",
    };
    complete
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            Reported {
                base_offset: fields[0].parse().unwrap(),
                incarnation: fields[1].parse().unwrap(),
                thread: fields[2].parse().unwrap(),
                sequence: fields[3].parse().unwrap(),
                count: fields[4].parse().unwrap(),
            }
        })
        .collect()
}

fn read_log(data_dir: &std::path::Path) -> BTreeMap<i64, Vec<u8>> {
    let manager = LogManager::open(data_dir, LogConfig::default(), Arc::new(SystemClock)).unwrap();
    let partition = TopicPartition::new(TopicName::new("durability").unwrap(), PartitionId(0));
    let Some(log) = manager.get(&partition) else {
        return BTreeMap::new();
    };
    let mut values = BTreeMap::new();
    let mut offset = log.log_start_offset();
    loop {
        let read = log.read(offset, 1 << 20, None).unwrap();
        if read.batches.is_empty() {
            break;
        }
        let mut bytes = &read.batches[..];
        while !bytes.is_empty() {
            let header = BatchHeader::parse(bytes).unwrap();
            let (batch, rest) = bytes.split_at(header.total_bytes());
            for record in decode_batch(batch, &DecodeLimits::default())
                .unwrap()
                .records
            {
                assert!(values
                    .insert(record.offset.0, record.value.unwrap().to_vec())
                    .is_none());
                offset = record.offset.plus(1);
            }
            bytes = rest;
        }
    }
    assert_eq!(offset, log.log_end_offset());
    assert_eq!(
        offset,
        Offset(values.len() as i64),
        "offsets are dense from 0"
    );
    values
}

#[test]
fn every_batch_reported_durable_survives_sigkill() {
    sigkill_rounds("buffered");
}

#[test]
fn every_batch_reported_durable_survives_sigkill_with_direct_io() {
    sigkill_rounds("direct");
}

fn sigkill_rounds(io: &str) {
    let data_dir = tempfile::tempdir().unwrap();
    let mut rng = rand::thread_rng();
    let mut reported = Vec::new();
    for incarnation in 0..KILLS {
        let mut child = Command::new(env!("CARGO_BIN_EXE_durable_appender"))
            .arg(data_dir.path())
            .arg(incarnation.to_string())
            .arg("4")
            .arg(io)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        // Let it run a random while; the timing only chooses where the kill lands.
        let started = Instant::now();
        std::thread::sleep(Duration::from_millis(rng.gen_range(30..400)));
        let pid = child.id() as libc::pid_t;
        // SAFETY: kill(2) on the pid of a child we spawned and have not yet reaped.
        let killed = unsafe { libc::kill(pid, libc::SIGKILL) };
        assert_eq!(killed, 0, "kill failed");
        let mut stdout = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .unwrap();
        let status = child.wait().unwrap();
        assert!(!status.success() || started.elapsed() > Duration::from_secs(1));
        let lines = parse_complete_lines(&stdout);
        reported.extend(lines);
        // Reopen after every kill: recovery must keep every reported batch each time.
        check(&read_log(data_dir.path()), &reported);
    }
    assert!(
        reported.len() > 100,
        "the appender reported only {} batches",
        reported.len()
    );
}

fn check(log: &BTreeMap<i64, Vec<u8>>, reported: &[Reported]) {
    for batch in reported {
        for index in 0..batch.count {
            let offset = batch.base_offset + i64::from(index);
            let expected = value(batch.incarnation, batch.thread, batch.sequence, index);
            let found = log.get(&offset);
            assert_eq!(
                found.map(Vec::as_slice),
                Some(expected.as_slice()),
                "offset {offset} reported durable by incarnation {} thread {} sequence {} is lost or wrong",
                batch.incarnation,
                batch.thread,
                batch.sequence
            );
        }
    }
}
