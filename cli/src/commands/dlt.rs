//! `strata dlt list [TOPIC]` (docs/CLI.md, "Dead-letter topics"): the dead-letter topics
//! the client library created for consumer groups with a retry policy (`docs/RETRY.md`),
//! found by their `strata.retry.*` labels, with their records counted by
//! `strata.error.type`. Each topic is read once to count; records written meanwhile are
//! not counted. `replay` is in `dlt_replay.rs`.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{client_error, Context};
use crate::args::DltCommand;
use crate::exit::{CliError, ExitStatus};
use crate::output::OutputFormat;
use crate::table::Table;

/// One dead-letter topic in `--format json`.
#[derive(Debug, Serialize)]
struct DeadLetterView {
    topic: String,
    source: String,
    group: String,
    records: u64,
    by_error_type: BTreeMap<String, u64>,
}

pub async fn run(context: &mut Context, command: DltCommand) -> Result<ExitStatus, CliError> {
    match command {
        DltCommand::List { topic } => list(context, topic.as_deref()).await,
        DltCommand::Replay(args) => super::dlt_replay::run(context, args).await,
    }
}

async fn list(context: &mut Context, source: Option<&str>) -> Result<ExitStatus, CliError> {
    let topics = context
        .client
        .admin()
        .dead_letter_topics(source)
        .await
        .map_err(|error| client_error(error).context("listing dead-letter topics"))?;
    match context.format() {
        OutputFormat::Json => {
            let views: Vec<DeadLetterView> = topics
                .into_iter()
                .map(|topic| DeadLetterView {
                    topic: topic.name,
                    source: topic.source,
                    group: topic.group,
                    records: topic.records,
                    by_error_type: topic.by_error_type,
                })
                .collect();
            context.print_json(&views)?;
        }
        OutputFormat::Text => {
            let mut table = Table::new(["DLT", "SOURCE", "GROUP", "ERROR-TYPE", "RECORDS"]);
            for topic in &topics {
                let row = |table: &mut Table, kind: &str, count: u64| {
                    table.row([
                        topic.name.clone(),
                        topic.source.clone(),
                        topic.group.clone(),
                        kind.to_owned(),
                        count.to_string(),
                    ]);
                };
                if topic.by_error_type.is_empty() {
                    row(&mut table, "-", 0);
                }
                for (kind, count) in &topic.by_error_type {
                    row(&mut table, kind, *count);
                }
            }
            context.print(&table.to_string())?;
        }
    }
    Ok(ExitStatus::Success)
}
