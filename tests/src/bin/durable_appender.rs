//! Test helper for the SIGKILL durability test (`tests/tests/sigkill_durability.rs`).
//!
//! `durable_appender <data-dir> <incarnation> <threads>` opens the data directory with the
//! real log manager (`flush = always`, small segments so rolls happen), then appends from
//! several threads until it is killed or has done `APPENDS_MAX` appends. After each append
//! *returns* — i.e. once the log reported the batch durable — it prints one line:
//!
//! ```text
//! <base_offset> <incarnation> <thread> <sequence> <record_count>
//! ```
//!
//! Record `i` of that batch has the value `value(incarnation, thread, sequence, i)`, so the
//! test can check every reported batch by content after the kill.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use bytes::Bytes;
use strata_broker::log::{FlushPolicy, LogConfig, LogManager, SystemClock, TopicPartition};
use strata_proto::record::{BatchBuilder, BatchSettings, Record};
use strata_proto::types::{LeaderEpoch, PartitionId, TopicName};
use strata_tests::durability::{record_count, value};

const APPENDS_MAX: u64 = 20_000;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let data_dir = PathBuf::from(
        args.next()
            .context("usage: durable_appender <dir> <incarnation> <threads> [buffered|direct]")?,
    );
    let incarnation: u32 = args.next().context("missing incarnation")?.parse()?;
    let threads: u32 = args.next().context("missing threads")?.parse()?;
    let direct_io = match args.next().as_deref() {
        None | Some("buffered") => false,
        Some("direct") => true,
        Some(other) => anyhow::bail!("unknown I/O mode {other:?}"),
    };
    let config = LogConfig {
        segment_bytes: 256 * 1024,
        flush: FlushPolicy::Always,
        direct_io,
        ..LogConfig::default()
    };
    let manager = LogManager::open(&data_dir, config, Arc::new(SystemClock))?;
    let partition = TopicPartition::new(TopicName::new("durability")?, PartitionId(0));
    let log = manager.get_or_create(&partition, None)?;
    let stdout = Arc::new(Mutex::new(std::io::stdout()));
    std::thread::scope(|scope| {
        for thread in 0..threads {
            let log = Arc::clone(&log);
            let stdout = Arc::clone(&stdout);
            scope.spawn(move || -> anyhow::Result<()> {
                for sequence in 0..APPENDS_MAX / u64::from(threads) {
                    let count = record_count(sequence);
                    let mut builder = BatchBuilder::new(BatchSettings::default());
                    for index in 0..count {
                        let record = Record::from_value(
                            0,
                            Bytes::from(value(incarnation, thread, sequence, index)),
                        );
                        builder.append(&record)?;
                    }
                    let batch = builder.build()?;
                    let info = log.append(&batch, LeaderEpoch(incarnation as i32))?;
                    let mut out = stdout
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                    writeln!(
                        out,
                        "{} {incarnation} {thread} {sequence} {count}",
                        info.base_offset
                    )?;
                    out.flush()?;
                }
                Ok(())
            });
        }
    });
    manager.close()?;
    Ok(())
}
