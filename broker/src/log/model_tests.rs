//! The partition log against a `Vec` model over random sequences of append, roll,
//! truncate_to, retention, clean close/reopen and crash/reopen.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use strata_proto::types::{LeaderEpoch, Offset};

use super::test_support::{open, read_all, small_config, tagged_batch};
use super::{LogConfig, ManualClock, PartitionLog, PreviousShutdown};

const NOW_MS: i64 = 1_700_000_000_000;

#[derive(Debug, Clone)]
enum Op {
    Append {
        records: usize,
        new_epoch: bool,
    },
    Roll,
    /// Truncate to this fraction (per mille) of the current log.
    Truncate {
        per_mille: u16,
    },
    Retention,
    CloseAndReopen,
    CrashAndReopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1usize..6, prop::bool::weighted(0.1)).prop_map(|(records, new_epoch)| Op::Append { records, new_epoch }),
        1 => Just(Op::Roll),
        1 => (0u16..1000).prop_map(|per_mille| Op::Truncate { per_mille }),
        1 => Just(Op::Retention),
        1 => Just(Op::CloseAndReopen),
        1 => Just(Op::CrashAndReopen),
    ]
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 600,
        index_interval_bytes: 100,
        index_bytes_max: 1024,
        retention_bytes: Some(1500),
        retention_ms: None,
        // Direct I/O when the run asks for it (`test_support::small_config`).
        direct_io: small_config().direct_io,
        ..LogConfig::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn log_matches_vec_model(ops in prop::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(NOW_MS);
        let config = config();
        let mut log: PartitionLog = open(dir.path(), &config, &clock, PreviousShutdown::Crashed);
        let mut model: Vec<(Offset, Vec<u8>)> = Vec::new();
        let mut epoch = LeaderEpoch(0);
        let mut next_tag = 0u32;
        let mut model_end = Offset(0);
        for op in ops {
            match op {
                Op::Append { records, new_epoch } => {
                    if new_epoch { epoch = LeaderEpoch(epoch.0 + 1); }
                    let tag = format!("v{next_tag}");
                    next_tag += 1;
                    let info = log.append(&tagged_batch(&tag, records, NOW_MS), epoch).unwrap();
                    prop_assert_eq!(info.base_offset, model_end);
                    for i in 0..records {
                        model.push((model_end, format!("{tag}-{i}").into_bytes()));
                        model_end = model_end.plus(1);
                    }
                }
                Op::Roll => log.roll().unwrap(),
                Op::Truncate { per_mille } => {
                    let start = log.log_start_offset().0;
                    let end = log.log_end_offset().0;
                    let target = Offset(start + (end - start) * i64::from(per_mille) / 1000);
                    let new_end = log.truncate_to(target).unwrap();
                    prop_assert!(new_end <= target);
                    model.retain(|(offset, _)| *offset < new_end);
                    // A cut inside a batch removes the whole batch, never part of one.
                    prop_assert!(new_end == target || new_end == log.log_start_offset() || model.last().is_some_and(|(o, _)| o.plus(1) == new_end));
                    model_end = new_end;
                }
                Op::Retention => {
                    log.set_high_watermark(log.log_end_offset());
                    let before = log.log_start_offset();
                    log.apply_retention().unwrap();
                    prop_assert!(log.log_start_offset() >= before);
                    let start = log.log_start_offset();
                    model.retain(|(offset, _)| *offset >= start);
                }
                Op::CloseAndReopen => {
                    log.close().unwrap();
                    drop(log);
                    log = open(dir.path(), &config, &clock, PreviousShutdown::Clean);
                }
                Op::CrashAndReopen => {
                    drop(log);
                    log = open(dir.path(), &config, &clock, PreviousShutdown::Crashed);
                    prop_assert_eq!(log.recovery_report().truncated_bytes, 0);
                }
            }
            prop_assert_eq!(&read_all(&log), &model);
            prop_assert_eq!(log.log_end_offset(), model_end);
            prop_assert!(log.log_start_offset() <= log.log_end_offset());
            let epochs = log.leader_epochs();
            prop_assert!(epochs.windows(2).all(|pair| pair[0].0 < pair[1].0 && pair[0].1 <= pair[1].1));
            prop_assert!(epochs.iter().all(|(_, start)| *start < log.log_end_offset() || model.is_empty()));
        }
    }
}
