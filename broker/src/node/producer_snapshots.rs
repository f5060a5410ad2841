//! Producer-state snapshots: the idempotent producers' state of a partition saved at
//! segment boundaries, so that opening a partition for leadership (at start-up, or when a
//! follower takes over) replays only the batch headers after the newest snapshot, at most
//! about one segment, instead of the whole log.
//!
//! Snapshots are taken in the background, for every partition this broker holds, led or
//! followed alike: a snapshot is due at the active segment's base offset once the segment
//! below it is sealed. It is computed from the log itself (the newest earlier snapshot plus
//! the batch headers up to that offset), never from a leader's live table, so a follower
//! has them too and both copies agree.
//!
//! # Payload (inside the storage layer's `<offset:020>.snapshot` frame)
//!
//! ```text
//! version        u8      1
//! anchor_offset  i64 BE  base offset of the last batch below the snapshot offset (-1: none)
//! anchor_crc     u32 BE  that batch's CRC
//! table                  ProducerStateTable::encode_into
//! ```
//!
//! The anchor is checked against the log before a snapshot is used: a snapshot whose last
//! batch is not in the log any more, or not the same batch, is skipped (the log was
//! truncated and rewritten after it was taken). The storage layer also deletes snapshots
//! above the log end when it truncates, so the check is a second line of defence.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use strata_proto::record::BatchHeader;
use strata_proto::types::Offset;

use super::error::NodeError;
use super::producer_state::{take, ProducerStateTable};
use crate::log::producer_snapshot::{
    list_snapshots, prune_snapshots, read_snapshot, write_snapshot, SNAPSHOTS_KEPT,
};
use crate::log::{LogManager, PartitionLog, TopicPartition};

const PAYLOAD_VERSION: u8 = 1;
/// How often the background task looks for partitions with a snapshot due.
pub const SNAPSHOT_CHECK_INTERVAL: Duration = Duration::from_secs(15);
/// Bytes read from the log per step of a replay.
const REPLAY_READ_BYTES: usize = 1 << 20;

/// The last batch below a snapshot's offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Anchor {
    base_offset: Offset,
    crc: u32,
}

/// A producer table as of `offset`: every batch below it is in the table.
struct StateAt {
    offset: Offset,
    anchor: Option<Anchor>,
    table: ProducerStateTable,
}

/// The producer state of `log` up to its log end: the newest usable snapshot, then the
/// batch headers after it. An offline log has none.
pub fn load(log: &PartitionLog) -> Result<ProducerStateTable, NodeError> {
    if log.is_offline() {
        // Damaged at open: it refuses every read and write, so there is nothing to dedupe.
        return Ok(ProducerStateTable::default());
    }
    let mut state = newest_usable(log, log.log_end_offset())?;
    replay(log, &mut state, None)?;
    Ok(state.table)
}

/// Writes the snapshot due for `log`, if one is: at the active segment's base offset,
/// when the newest snapshot is below it. Returns whether one was written.
pub fn take_if_due(log: &PartitionLog) -> Result<bool, NodeError> {
    if log.is_offline() {
        return Ok(false);
    }
    let target = log.active_segment_base_offset();
    if target <= log.log_start_offset() {
        return Ok(false);
    }
    let mut state = newest_usable(log, target)?;
    if state.offset >= target {
        return Ok(false);
    }
    replay(log, &mut state, Some(target))?;
    if state.offset != target {
        // The log changed under the replay (truncated, or retention moved past it).
        return Ok(false);
    }
    let mut payload = vec![PAYLOAD_VERSION];
    let anchor = state.anchor.unwrap_or(Anchor {
        base_offset: Offset(-1),
        crc: 0,
    });
    payload.extend_from_slice(&anchor.base_offset.0.to_be_bytes());
    payload.extend_from_slice(&anchor.crc.to_be_bytes());
    state.table.encode_into(&mut payload);
    write_snapshot(log.dir(), target, &payload)?;
    prune_snapshots(log.dir(), log.log_end_offset(), SNAPSHOTS_KEPT)?;
    tracing::debug!(dir = %log.dir().display(), offset = target.0,
        producers = state.table.producer_count(), "wrote a producer-state snapshot");
    Ok(true)
}

/// [`take_if_due`] for every partition of `logs` whose active segment changed since the
/// last pass (`checked`: the active segment base each partition had then, so an idle
/// partition costs no I/O); a failure is logged and the others go on. Blocking.
pub fn take_all_due(logs: &LogManager, checked: &mut HashMap<TopicPartition, Offset>) {
    let partitions = logs.partitions();
    checked.retain(|partition, _| partitions.contains(partition));
    for partition in partitions {
        let Some(log) = logs.get(&partition) else {
            continue;
        };
        let active = log.active_segment_base_offset();
        if checked.get(&partition) == Some(&active) {
            continue;
        }
        match take_if_due(&log) {
            Ok(_) => {
                checked.insert(partition, active);
            }
            Err(error) => {
                tracing::warn!(%partition, %error, "could not write a producer-state snapshot");
            }
        }
    }
}

/// Every [`SNAPSHOT_CHECK_INTERVAL`] until `stopping` resolves: [`take_all_due`] on a
/// blocking thread.
pub async fn run(logs: Arc<LogManager>, stopping: impl std::future::Future<Output = ()>) {
    let mut ticks = tokio::time::interval(SNAPSHOT_CHECK_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stopping);
    let mut checked = HashMap::new();
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = &mut stopping => return,
        }
        let logs = Arc::clone(&logs);
        let pass = tokio::task::spawn_blocking(move || {
            take_all_due(&logs, &mut checked);
            checked
        });
        match pass.await {
            Ok(kept) => checked = kept,
            Err(error) => {
                tracing::warn!(%error, "the producer-state snapshot task failed");
                checked = HashMap::new();
            }
        }
    }
}

/// The newest snapshot at or below `at_most` (and at or above the log start) whose anchor
/// batch is still in the log; the empty table at the log start when there is none.
fn newest_usable(log: &PartitionLog, at_most: Offset) -> Result<StateAt, NodeError> {
    let log_start = log.log_start_offset();
    for offset in list_snapshots(log.dir())?.into_iter().rev() {
        if offset > at_most || offset < log_start {
            continue;
        }
        match usable(log, offset) {
            Ok(Some(state)) => return Ok(state),
            Ok(None) => {}
            Err(reason) => {
                tracing::warn!(dir = %log.dir().display(), offset = offset.0, %reason,
                    "skipping a producer-state snapshot");
            }
        }
    }
    Ok(StateAt {
        offset: log_start,
        anchor: None,
        table: ProducerStateTable::default(),
    })
}

/// The snapshot at `offset` if its anchor still matches the log; `Err` says why not.
fn usable(log: &PartitionLog, offset: Offset) -> Result<Option<StateAt>, String> {
    let Some(payload) = read_snapshot(log.dir(), offset).map_err(|error| error.to_string())? else {
        return Ok(None);
    };
    let mut input = &payload[..];
    let [version] = take::<1>(&mut input)?;
    if version != PAYLOAD_VERSION {
        return Err(format!("unknown payload version {version}"));
    }
    let anchor_offset = Offset(i64::from_be_bytes(take(&mut input)?));
    let anchor_crc = u32::from_be_bytes(take(&mut input)?);
    let table = ProducerStateTable::decode_from(&mut input)?;
    if !input.is_empty() {
        return Err(format!("{} bytes after the table", input.len()));
    }
    let anchor = if anchor_offset.0 < 0 {
        if offset != log.log_start_offset() {
            return Err("it has no anchor batch but is above the log start".into());
        }
        None
    } else {
        let read = log
            .read(anchor_offset, 1, Some(offset))
            .map_err(|error| error.to_string())?;
        let header = BatchHeader::parse(&read.batches)
            .map_err(|error| format!("its anchor batch cannot be read: {error}"))?;
        if header.base_offset != anchor_offset
            || header.crc != anchor_crc
            || header.next_offset() != offset
        {
            return Err("its anchor batch is not in the log any more".into());
        }
        Some(Anchor {
            base_offset: anchor_offset,
            crc: anchor_crc,
        })
    };
    Ok(Some(StateAt {
        offset,
        anchor,
        table,
    }))
}

/// Records the batch headers from `state.offset` to `until` (the log end when `None`).
fn replay(log: &PartitionLog, state: &mut StateAt, until: Option<Offset>) -> Result<(), NodeError> {
    loop {
        if until.is_some_and(|until| state.offset >= until) {
            return Ok(());
        }
        let read = log.read(state.offset, REPLAY_READ_BYTES, until)?;
        if read.batches.is_empty() {
            return Ok(());
        }
        let mut bytes = &read.batches[..];
        while let Ok(header) = BatchHeader::parse(bytes) {
            state.table.record(&header, header.base_offset);
            state.offset = header.next_offset();
            state.anchor = Some(Anchor {
                base_offset: header.base_offset,
                crc: header.crc,
            });
            bytes = bytes.get(header.total_bytes()..).unwrap_or_default();
        }
    }
}

#[cfg(test)]
#[path = "producer_snapshots_tests.rs"]
mod tests;
