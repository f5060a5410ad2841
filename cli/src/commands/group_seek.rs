//! `strata group seek GROUP --to start|end|N|@T | --shift-by ±N [--topics T,T] [--execute]`
//! (docs/CLI.md, "strata group seek").
//!
//! Flow: learn whether the group has live members (describe), choose the partitions
//! (every partition of `--topics`, or those the group has committed), read their committed
//! offsets (OffsetFetch) and log bounds (ListOffsets), and compute each new offset with
//! [`new_offset`]. The plan is printed as `GROUP TOPIC PARTITION CURRENT-OFFSET
//! NEW-OFFSET`. Without `--execute` that is all (Kafka's `--reset-offsets` rule; rpk applies
//! at once, Strata does not). With it, a group with live members is refused before
//! anything is sent (the coordinator would refuse the commit too, with the same
//! `NON_EMPTY_GROUP`), and otherwise the offsets are stored with one administrative commit
//! and the table shows the applied values with a STATUS column.

use serde::Serialize;
use strata_client::{ErrorCode, OffsetSpec};

use super::group::with_group_hint;
use super::{client_error, Context};
use crate::args::GroupSeekArgs;
use crate::exit::{CliError, ExitStatus};
use crate::output::{status, OutputFormat};
use crate::seek_target::SeekTarget;
use crate::table::{cell, Table};

/// How the new offsets are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeekMove {
    To(SeekTarget),
    ShiftBy(i64),
}

/// What is known of one partition before the seek.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    pub topic: String,
    pub partition: i32,
    pub committed: Option<i64>,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    /// For `--to @T`: the first offset at or after T, `None` when no record is that new.
    pub time_offset: Option<i64>,
}

/// Where the plan puts one partition, and why when it is not exactly what was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Planned {
    Move(i64),
    /// Outside the log: moved to the nearest end, with the offset asked for.
    Clamped {
        asked: i64,
        offset: i64,
    },
    /// `--shift-by` on a partition with nothing committed: left alone.
    Skipped,
}

/// The new offset of one partition. Offsets outside `[log start, log end]` go to the
/// nearest end (Kafka's `--reset-offsets` does the same; the coordinator refuses offsets
/// beyond the log end). `@T` with no record that new goes to the end.
pub fn new_offset(state: &PartitionState, seek: SeekMove) -> Planned {
    let asked = match seek {
        SeekMove::To(SeekTarget::Start) => return Planned::Move(state.log_start_offset),
        SeekMove::To(SeekTarget::End) => return Planned::Move(state.log_end_offset),
        SeekMove::To(SeekTarget::Time(_)) => {
            return Planned::Move(state.time_offset.unwrap_or(state.log_end_offset))
        }
        SeekMove::To(SeekTarget::Offset(offset)) => offset,
        SeekMove::ShiftBy(delta) => match state.committed {
            Some(committed) => committed.saturating_add(delta),
            None => return Planned::Skipped,
        },
    };
    let offset = asked.clamp(
        state.log_start_offset,
        state.log_end_offset.max(state.log_start_offset),
    );
    if offset == asked {
        Planned::Move(offset)
    } else {
        Planned::Clamped { asked, offset }
    }
}

#[derive(Serialize)]
struct JsonRow<'a> {
    group: &'a str,
    topic: &'a str,
    partition: i32,
    current_offset: Option<i64>,
    new_offset: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<String>,
}

/// One line of the plan.
struct Row {
    topic: String,
    partition: i32,
    current: Option<i64>,
    new: i64,
    /// After `--execute`: `OK` or the error code.
    status: Option<String>,
}

pub async fn run(context: &mut Context, args: GroupSeekArgs) -> Result<ExitStatus, CliError> {
    let seek = match (args.to, args.shift_by) {
        (Some(target), _) => SeekMove::To(target),
        (None, Some(delta)) => SeekMove::ShiftBy(delta),
        (None, None) => return Err(CliError::usage("give --to or --shift-by")),
    };
    let group = args.group.as_str();
    let live_members = live_members(context, group).await?;
    if args.execute && live_members > 0 {
        return Err(non_empty(group, live_members));
    }
    let states = partition_states(context, &args, seek).await?;
    let mut rows = plan(&states, seek);
    if rows.is_empty() {
        status!("nothing to seek: no partition has an offset to move");
        return Ok(ExitStatus::Success);
    }
    let mut errors = Vec::new();
    if args.execute {
        errors = execute(context, group, &mut rows).await?;
    }
    print_rows(context, group, &rows)?;
    if !args.execute {
        status!("(dry run: add --execute to apply)");
        if live_members > 0 {
            status!(
                "note: group {group} has {live_members} live member(s); --execute is refused until they leave"
            );
        }
        return Ok(ExitStatus::Success);
    }
    if errors.is_empty() {
        return Ok(ExitStatus::Success);
    }
    let failed = errors.len();
    for error in errors {
        error.report(context.format());
    }
    status!("{failed} of {} partitions were not moved", rows.len());
    Ok(ExitStatus::Failure)
}

fn non_empty(group: &str, members: usize) -> CliError {
    with_group_hint(CliError::failure(
        ErrorCode::NonEmptyGroup.as_str_name(),
        format!(
            "group {group} has {members} live member(s); its offsets can be moved only while it has none"
        ),
    ))
}

/// The group's live members; a group that does not exist yet has none (a seek may give
/// it its first offsets).
async fn live_members(context: &Context, group: &str) -> Result<usize, CliError> {
    match context.client.admin().describe_group(group).await {
        Ok(description) => Ok(description.members.len()),
        Err(error) if error.code() == Some(ErrorCode::GroupIdNotFound) => Ok(0),
        Err(error) => Err(client_error(error).context(format!("describing group {group:?}"))),
    }
}

/// The partitions to move with their committed offsets and log bounds.
async fn partition_states(
    context: &Context,
    args: &GroupSeekArgs,
    seek: SeekMove,
) -> Result<Vec<PartitionState>, CliError> {
    let group = args.group.as_str();
    let admin = context.client.admin();
    let offsets_error =
        |error| client_error(error).context(format!("reading the offsets of group {group:?}"));
    let partitions: Vec<(String, i32)> = if args.topics.is_empty() {
        let committed =
            committed_or_none(admin.committed_offsets(group, None).await).map_err(offsets_error)?;
        if committed.is_empty() {
            return Err(CliError::failure(
                ErrorCode::GroupIdNotFound.as_str_name(),
                format!("group {group} has no committed offsets"),
            )
            .with_hint("name the topics to seek with --topics"));
        }
        committed
            .into_iter()
            .map(|offset| (offset.topic, offset.partition))
            .collect()
    } else {
        let mut partitions = Vec::new();
        for topic in &args.topics {
            let description = admin.describe_topic(topic).await.map_err(|error| {
                client_error(error).context(format!("describing topic {topic:?}"))
            })?;
            partitions.extend(
                description
                    .partitions
                    .iter()
                    .map(|partition| (topic.clone(), partition.partition)),
            );
        }
        partitions
    };
    let committed = committed_or_none(admin.committed_offsets(group, Some(&partitions)).await)
        .map_err(offsets_error)?;
    let mut states = Vec::with_capacity(partitions.len());
    for (topic, partition) in partitions {
        let bounds_error = |error| {
            client_error(error).context(format!("reading the offsets of {topic}/{partition}"))
        };
        let list = |spec| admin.list_offsets(&topic, partition, spec);
        let log_start_offset = list(OffsetSpec::Earliest).await.map_err(bounds_error)?.0;
        let log_end_offset = list(OffsetSpec::Latest).await.map_err(bounds_error)?.0;
        let time_offset = match seek {
            SeekMove::To(SeekTarget::Time(time)) => {
                let (offset, _) = list(OffsetSpec::Timestamp(time))
                    .await
                    .map_err(bounds_error)?;
                (offset >= 0).then_some(offset)
            }
            _ => None,
        };
        let current = committed
            .iter()
            .find(|offset| offset.topic == topic && offset.partition == partition)
            .and_then(|offset| offset.offset);
        states.push(PartitionState {
            topic,
            partition,
            committed: current,
            log_start_offset,
            log_end_offset,
            time_offset,
        });
    }
    Ok(states)
}

/// A group the coordinator does not know has committed nothing.
fn committed_or_none(
    result: Result<Vec<strata_client::CommittedOffset>, strata_client::Error>,
) -> Result<Vec<strata_client::CommittedOffset>, strata_client::Error> {
    match result {
        Err(error) if error.code() == Some(ErrorCode::GroupIdNotFound) => Ok(Vec::new()),
        result => result,
    }
}

/// The rows of the plan; clamped and skipped partitions are reported on stderr.
fn plan(states: &[PartitionState], seek: SeekMove) -> Vec<Row> {
    let mut rows = Vec::new();
    for state in states {
        let (topic, partition) = (&state.topic, state.partition);
        let new = match new_offset(state, seek) {
            Planned::Move(offset) => offset,
            Planned::Clamped { asked, offset } => {
                status!(
                    "warning: {topic}/{partition}: offset {asked} is outside the log [{}, {}]; using {offset}",
                    state.log_start_offset,
                    state.log_end_offset
                );
                offset
            }
            Planned::Skipped => {
                status!("warning: {topic}/{partition}: nothing committed to shift; left alone");
                continue;
            }
        };
        rows.push(Row {
            topic: topic.clone(),
            partition,
            current: state.committed,
            new,
            status: None,
        });
    }
    rows
}

/// Stores the planned offsets; fills each row's status and returns the failures.
async fn execute(
    context: &Context,
    group: &str,
    rows: &mut [Row],
) -> Result<Vec<CliError>, CliError> {
    let offsets: Vec<(String, i32, i64)> = rows
        .iter()
        .map(|row| (row.topic.clone(), row.partition, row.new))
        .collect();
    let results = context
        .client
        .admin()
        .alter_group_offsets(group, offsets)
        .await
        .map_err(|error| {
            with_group_hint(client_error(error))
                .context(format!("moving the offsets of group {group:?}"))
        })?;
    let mut errors = Vec::new();
    for result in results {
        let Some(row) = rows
            .iter_mut()
            .find(|row| row.topic == result.topic && row.partition == result.partition)
        else {
            continue;
        };
        match result.result {
            Ok(()) => row.status = Some("OK".to_owned()),
            Err(error) => {
                let error = client_error(error);
                row.status = Some(error.code.clone());
                errors.push(error.context(format!("moving {}/{}", row.topic, row.partition)));
            }
        }
    }
    Ok(errors)
}

fn print_rows(context: &mut Context, group: &str, rows: &[Row]) -> Result<(), CliError> {
    match context.format() {
        OutputFormat::Json => {
            let json: Vec<JsonRow<'_>> = rows
                .iter()
                .map(|row| JsonRow {
                    group,
                    topic: &row.topic,
                    partition: row.partition,
                    current_offset: row.current,
                    new_offset: row.new,
                    status: row.status.clone(),
                })
                .collect();
            context.print_json(&json)
        }
        OutputFormat::Text => {
            let executed = rows.iter().any(|row| row.status.is_some());
            let mut headers = vec![
                "GROUP",
                "TOPIC",
                "PARTITION",
                "CURRENT-OFFSET",
                "NEW-OFFSET",
            ];
            if executed {
                headers.push("STATUS");
            }
            let mut table = Table::new(headers);
            for row in rows {
                let mut cells = vec![
                    group.to_owned(),
                    row.topic.clone(),
                    row.partition.to_string(),
                    cell(row.current),
                    row.new.to_string(),
                ];
                if executed {
                    cells.push(cell(row.status.as_deref()));
                }
                table.row(cells);
            }
            context.print(&table.to_string())
        }
    }
}

#[cfg(test)]
#[path = "group_seek_tests.rs"]
mod tests;
