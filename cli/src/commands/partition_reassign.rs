//! `strata partition reassign` (docs/CLI.md, "Commands"; issue 19): new replica lists for
//! partitions, from `--topic/--partition/--replicas` or a `--reassignment-json-file`
//! (`crate::reassignment_file`). The controller applies them all or nothing.
//!
//! Prints `TOPIC PARTITION CURRENT-REPLICAS TARGET-REPLICAS LEADER ISR`, the leader and
//! ISR being those after the change (or after it would be made, with `--dry-run`, which
//! also says on stderr that nothing changed). A refusal (`INVALID_REPLICA_ASSIGNMENT` for
//! an unknown broker, `UNKNOWN_TOPIC_OR_PARTITION`) is one `error:` line with the
//! broker's message and exit 1. `--format json` prints
//! `{"dry_run":..,"partitions":[{"topic","partition","current_replicas",
//! "target_replicas","leader","isr"}]}`.

use serde::Serialize;
use strata_client::ReassignmentResult;

use super::{client_error, Context};
use crate::args::ReassignArgs;
use crate::exit::{CliError, ExitStatus};
use crate::output::{status, OutputFormat};
use crate::reassignment_file::check_replicas;
use crate::table::{cell, list_cell, Table};

/// The whole report; also its JSON form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ReassignmentReport {
    pub(crate) dry_run: bool,
    pub(crate) partitions: Vec<ReassignmentRow>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ReassignmentRow {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) current_replicas: Vec<i32>,
    pub(crate) target_replicas: Vec<i32>,
    pub(crate) leader: Option<i32>,
    pub(crate) isr: Vec<i32>,
}

impl ReassignmentRow {
    fn new(result: &ReassignmentResult) -> ReassignmentRow {
        ReassignmentRow {
            topic: result.topic.clone(),
            partition: result.partition,
            current_replicas: result.current_replicas.clone(),
            target_replicas: result.target_replicas.clone(),
            leader: result.leader,
            isr: result.isr.clone(),
        }
    }
}

pub async fn run(context: &mut Context, args: ReassignArgs) -> Result<ExitStatus, CliError> {
    let dry_run = args.dry_run;
    let reassignments = requested(&args)?;
    let results = context
        .client
        .admin()
        .reassign_partitions(reassignments, dry_run)
        .await
        .map_err(|error| client_error(error).context("reassigning partitions"))?;
    let report = ReassignmentReport {
        dry_run,
        partitions: results.iter().map(ReassignmentRow::new).collect(),
    };
    match context.format() {
        OutputFormat::Json => context.print_json(&report)?,
        OutputFormat::Text => context.print(&report.table().to_string())?,
    }
    if dry_run && context.format() == OutputFormat::Text {
        status!("dry run: nothing was changed; run again without --dry-run to apply");
    }
    Ok(ExitStatus::Success)
}

/// Checks the flags without a cluster, so a bad `--replicas` is a usage error before
/// anything connects (a bad file already is one: clap reads it).
pub fn check_before_connecting(args: &ReassignArgs) -> Result<(), CliError> {
    requested(args).map(drop)
}

/// The (topic, partition, replicas) to send: the file's, or the one given by flags.
pub(crate) fn requested(args: &ReassignArgs) -> Result<Vec<(String, i32, Vec<i32>)>, CliError> {
    if let Some(file) = &args.reassignment_json_file {
        return Ok(file.partitions.clone());
    }
    // clap makes --topic, --partition and --replicas come together; this is the fallback.
    let (Some(topic), Some(partition)) = (&args.topic, args.partition) else {
        return Err(CliError::usage(
            "give --topic, --partition and --replicas, or --reassignment-json-file",
        ));
    };
    check_replicas(&args.replicas)
        .map_err(|reason| CliError::usage(format!("--replicas: {reason}")))?;
    Ok(vec![(topic.clone(), partition, args.replicas.clone())])
}

impl ReassignmentReport {
    pub(crate) fn table(&self) -> Table {
        let mut table = Table::new([
            "TOPIC",
            "PARTITION",
            "CURRENT-REPLICAS",
            "TARGET-REPLICAS",
            "LEADER",
            "ISR",
        ]);
        for row in &self.partitions {
            table.row([
                row.topic.clone(),
                row.partition.to_string(),
                list_cell(&row.current_replicas),
                list_cell(&row.target_replicas),
                cell(row.leader),
                list_cell(&row.isr),
            ]);
        }
        table
    }
}

#[cfg(test)]
#[path = "partition_reassign_tests.rs"]
mod tests;
