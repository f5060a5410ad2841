//! `strata partition elect-leader` and the dispatch of `partition reassign`
//! (docs/CLI.md, "Commands"; issue 19).
//!
//! `elect-leader` is Kafka's `kafka-leader-election --election-type preferred`: one row
//! per partition, `TOPIC PARTITION LEADER EPOCH STATUS`, with STATUS `ELECTED`,
//! `ELECTION_NOT_NEEDED` (the preferred replica already leads: not a failure, as in Kafka's
//! tool) or the error code. Each real failure also gets an `error: ...` line on stderr,
//! a summary line follows on stderr (text format only), and the exit status is 1 only if
//! some partition really failed.

use serde::Serialize;
use strata_client::{ElectionResult, ElectionSelection, ErrorCode};

use super::{client_error, partition_reassign, Context};
use crate::args::{ElectLeaderArgs, PartitionCommand};
use crate::exit::{CliError, ExitStatus};
use crate::output::{status, OutputFormat};
use crate::table::{cell, Table};

pub async fn run(context: &mut Context, command: PartitionCommand) -> Result<ExitStatus, CliError> {
    match command {
        PartitionCommand::ElectLeader(args) => elect_leader(context, args).await,
        PartitionCommand::Reassign(args) => partition_reassign::run(context, args).await,
    }
}

/// STATUS of a partition whose leadership moved.
const ELECTED: &str = "ELECTED";

/// One row of the election report; also its JSON form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ElectionRow {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) leader: Option<i32>,
    pub(crate) leader_epoch: i32,
    /// `ELECTED`, `ELECTION_NOT_NEEDED` or the error code.
    pub(crate) status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) message: Option<String>,
    /// Whether this partition counts as failed (exit 1).
    #[serde(skip)]
    pub(crate) failed: bool,
}

impl ElectionRow {
    fn new(result: &ElectionResult) -> ElectionRow {
        let (status, message) = match &result.outcome {
            Ok(()) => (ELECTED.to_owned(), None),
            Err(error) => (error.code_name().to_owned(), Some(error.to_string())),
        };
        ElectionRow {
            topic: result.topic.clone(),
            partition: result.partition,
            leader: result.leader,
            leader_epoch: result.leader_epoch,
            status,
            message,
            failed: result.is_failure(),
        }
    }
}

async fn elect_leader(
    context: &mut Context,
    args: ElectLeaderArgs,
) -> Result<ExitStatus, CliError> {
    let selection = match args.topic {
        Some(topic) => ElectionSelection::topic(topic, args.partitions),
        None => ElectionSelection::AllTopics,
    };
    let results = context
        .client
        .admin()
        .elect_leaders(selection)
        .await
        .map_err(|error| client_error(error).context("electing preferred leaders"))?;
    let rows: Vec<ElectionRow> = results.iter().map(ElectionRow::new).collect();
    match context.format() {
        OutputFormat::Json => context.print_json(&rows)?,
        OutputFormat::Text => context.print(&election_table(&rows).to_string())?,
    }
    for row in rows.iter().filter(|row| row.failed) {
        CliError::failure(&row.status, row.message.as_deref().unwrap_or_default())
            .context(format!("electing a leader for {}", partition_name(row)))
            .report(context.format());
    }
    if context.format() == OutputFormat::Text {
        status!("{}", election_summary(&rows));
    }
    let failed = rows.iter().any(|row| row.failed);
    Ok(if failed {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}

/// `orders/3`, or just `orders` for a topic the broker did not know at all.
fn partition_name(row: &ElectionRow) -> String {
    if row.partition < 0 {
        row.topic.clone()
    } else {
        format!("{}/{}", row.topic, row.partition)
    }
}

pub(crate) fn election_table(rows: &[ElectionRow]) -> Table {
    let mut table = Table::new(["TOPIC", "PARTITION", "LEADER", "EPOCH", "STATUS"]);
    for row in rows {
        table.row([
            row.topic.clone(),
            cell((row.partition >= 0).then_some(row.partition)),
            cell(row.leader),
            cell((row.leader_epoch >= 0).then_some(row.leader_epoch)),
            row.status.clone(),
        ]);
    }
    table
}

/// `3 partitions: 1 elected, 1 already led by the preferred replica, 1 failed`.
pub(crate) fn election_summary(rows: &[ElectionRow]) -> String {
    if rows.is_empty() {
        return "no partitions to elect leaders for".to_owned();
    }
    let elected = rows.iter().filter(|row| row.status == ELECTED).count();
    let not_needed = rows
        .iter()
        .filter(|row| row.status == ErrorCode::ElectionNotNeeded.as_str_name())
        .count();
    let failed = rows.iter().filter(|row| row.failed).count();
    let mut summary = format!(
        "{} partition{}: {elected} elected, {not_needed} already led by the preferred replica",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" }
    );
    if failed > 0 {
        summary.push_str(&format!(", {failed} failed"));
    }
    summary
}

#[cfg(test)]
#[path = "partition_tests.rs"]
mod tests;
