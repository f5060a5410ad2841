//! # Storage engine (`broker::log`)
//!
//! Synchronous, no tokio, tonic or prost (a CI check keeps it that way). Layout on disk,
//! byte by byte, in `docs/FORMAT.md`:
//!
//! ```text
//! <data>/.lock                    held (flock) by the one process using the directory
//! <data>/.strata_cleanshutdown    written last by a clean shutdown, removed at start
//! <data>/<topic>-<partition>/
//!     <base:020>.log              record batches, verbatim          (segment.rs)
//!     <base:020>.index            sparse offset → position          (offset_index.rs)
//!     <base:020>.timeindex        timestamp → offset                (time_index.rs)
//!     partition.checkpoint        recovery point, HW, log start     (checkpoint.rs)
//!     leader-epoch.checkpoint     epoch → start offset              (leader_epoch_cache.rs)
//!     <offset:020>.snapshot       idempotent producers' state       (producer_snapshot.rs)
//!     cleaner.checkpoint          compaction: first dirty offset    (cleaner/state.rs)
//!     <base:020>.*.cleaned|.swap  a cleaned segment being swapped in (cleaner/swap.rs)
//! ```
//!
//! Where to start reading: [`PartitionLog`] (append, read, truncate, retention; a
//! follower's verbatim append of fetched batches in `partition_log/follower.rs`), then
//! [`recovery`] (what happens after a crash) and [`group_commit`] (how `flush = always`
//! stays fast), and [`cleaner`] for compacted topics. [`LogManager`] opens every
//! partition of a data directory, and [`repair`] cuts a damaged one back to its valid
//! prefix for its leader to fill. All fsyncs go
//! through [`durable`]; an fsync error stops the log for good. The storage layer's metric
//! series (fsync time, recovery cuts, damage found) are named in [`metrics`]. A sealed segment holds no
//! descriptor or map unless it was read recently: its files are opened on demand and kept
//! in the shared, bounded [`OpenSegments`] cache (`segment/files.rs`).

pub mod checkpoint;
pub mod cleaner;
pub mod clock;
pub mod config;
mod direct;
pub mod durable;
pub mod error;
pub mod group_commit;
mod index_file;
pub mod leader_epoch_cache;
pub mod manager;
pub mod metrics;
pub mod offset_index;
pub mod open_segments;
pub mod partition_log;
pub mod producer_snapshot;
mod read_buffer;
pub mod reclaim;
pub mod recovery;
pub mod repair;
pub mod segment;
mod segment_map;
pub mod time_index;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{CleanupPolicy, DirtyRatio, FlushPolicy, LogConfig};
pub use direct::ends_in_padding as ends_in_direct_padding;
pub use error::{LogError, LogResult};
pub use manager::{BackgroundSchedule, BackgroundTasks, LogManager, Repaired, TopicPartition};
pub use open_segments::{OpenSegmentStats, OpenSegments};
pub use partition_log::{
    AppendInfo, Durability, LogResources, PartitionLog, ReadResult, ReplicaRole, RetentionOutcome,
    SyncClaim,
};
pub use reclaim::{ReclaimPace, ReclaimStats, Reclaimer, ReclaimerThread};
pub use recovery::{PreviousShutdown, RecoveryReport};
pub use repair::{Damage, RepairReport};
pub use segment::epoch_step_back_blames_previous;

#[cfg(test)]
mod compaction_tests;
#[cfg(test)]
mod crash_tests;
#[cfg(test)]
mod damage_tests;
#[cfg(test)]
mod epoch_recovery_tests;
#[cfg(test)]
mod follower_model_tests;
#[cfg(test)]
mod follower_tests;
#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod open_segments_tests;
#[cfg(test)]
mod partition_log_tests;
#[cfg(test)]
mod reclaim_tests;
#[cfg(test)]
mod repair_tests;
#[cfg(test)]
mod test_support;
