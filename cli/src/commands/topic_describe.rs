//! `strata topic describe NAME [-p]` (docs/CLI.md, "Commands").
//!
//! Text output follows rpk: a `SUMMARY` block, a `CONFIGS` table (`KEY VALUE SOURCE`, the
//! Strata config names) and a `PARTITIONS` table (`PARTITION LEADER EPOCH REPLICAS ISR
//! LOG-START-OFFSET HIGH-WATERMARK`), each under an underlined title; `-p` prints only the
//! partitions table, without a title, so it can be piped into `awk`. `--format json` prints
//! the whole description as one document. Offsets the broker did not report print as `-`
//! (text) or `null` (JSON).

use serde::Serialize;
use strata_client::TopicDescription;

use super::{client_error, Context};
use crate::exit::{CliError, ExitStatus};
use crate::output::OutputFormat;
use crate::table::{cell, list_cell, section, Table};

#[derive(Serialize)]
struct JsonDescription<'a> {
    name: &'a str,
    topic_id: &'a str,
    partition_count: usize,
    replication_factor: usize,
    configs: Vec<JsonConfig<'a>>,
    partitions: Vec<JsonPartition<'a>>,
}

#[derive(Serialize)]
struct JsonConfig<'a> {
    key: &'a str,
    value: &'a str,
    source: &'static str,
}

#[derive(Serialize)]
struct JsonPartition<'a> {
    partition: i32,
    leader: Option<i32>,
    leader_epoch: i32,
    replicas: &'a [i32],
    isr: &'a [i32],
    log_start_offset: Option<i64>,
    high_watermark: Option<i64>,
}

pub async fn run(
    context: &mut Context,
    name: &str,
    partitions_only: bool,
) -> Result<ExitStatus, CliError> {
    let description = context
        .client
        .admin()
        .describe_topic(name)
        .await
        .map_err(|error| client_error(error).context(format!("describing topic {name:?}")))?;
    let text = match context.format() {
        OutputFormat::Json => {
            return context
                .print_json(&to_json(&description))
                .map(|()| ExitStatus::Success)
        }
        OutputFormat::Text if partitions_only => partitions_table(&description).to_string(),
        OutputFormat::Text => render_text(&description),
    };
    context.print(&text)?;
    Ok(ExitStatus::Success)
}

fn replication_factor(description: &TopicDescription) -> usize {
    description
        .partitions
        .iter()
        .map(|p| p.replicas.len())
        .max()
        .unwrap_or(0)
}

/// Offsets are -1 when unknown.
fn known(offset: i64) -> Option<i64> {
    (offset >= 0).then_some(offset)
}

fn render_text(description: &TopicDescription) -> String {
    let mut summary = Table::key_value();
    summary
        .row(["NAME", description.name.as_str()])
        .row(["ID", description.topic_id.as_str()])
        .row([
            "PARTITIONS".to_owned(),
            description.partitions.len().to_string(),
        ])
        .row([
            "REPLICAS".to_owned(),
            replication_factor(description).to_string(),
        ]);
    let mut configs = Table::new(["KEY", "VALUE", "SOURCE"]);
    for config in &description.configs {
        configs.row([
            config.key.as_str(),
            config.value.as_str(),
            config.source.name(),
        ]);
    }
    format!(
        "{}{summary}\n{}{configs}\n{}{}",
        section("SUMMARY"),
        section("CONFIGS"),
        section("PARTITIONS"),
        partitions_table(description)
    )
}

fn partitions_table(description: &TopicDescription) -> Table {
    let mut table = Table::new([
        "PARTITION",
        "LEADER",
        "EPOCH",
        "REPLICAS",
        "ISR",
        "LOG-START-OFFSET",
        "HIGH-WATERMARK",
    ]);
    for partition in &description.partitions {
        table.row([
            partition.partition.to_string(),
            cell((partition.leader >= 0).then_some(partition.leader)),
            partition.leader_epoch.to_string(),
            list_cell(&partition.replicas),
            list_cell(&partition.isr),
            cell(known(partition.log_start_offset)),
            cell(known(partition.high_watermark)),
        ]);
    }
    table
}

fn to_json(description: &TopicDescription) -> JsonDescription<'_> {
    JsonDescription {
        name: &description.name,
        topic_id: &description.topic_id,
        partition_count: description.partitions.len(),
        replication_factor: replication_factor(description),
        configs: description
            .configs
            .iter()
            .map(|config| JsonConfig {
                key: &config.key,
                value: &config.value,
                source: config.source.name(),
            })
            .collect(),
        partitions: description
            .partitions
            .iter()
            .map(|partition| JsonPartition {
                partition: partition.partition,
                leader: (partition.leader >= 0).then_some(partition.leader),
                leader_epoch: partition.leader_epoch,
                replicas: &partition.replicas,
                isr: &partition.isr,
                log_start_offset: known(partition.log_start_offset),
                high_watermark: known(partition.high_watermark),
            })
            .collect(),
    }
}
