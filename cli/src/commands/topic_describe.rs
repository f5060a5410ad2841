//! `strata topic describe NAME [-p]` (docs/CLI.md, "Commands").
//!
//! Text output follows rpk: a `SUMMARY` block, a `CONFIGS` table (`KEY VALUE SOURCE`, the
//! Strata config names) and a `PARTITIONS` table (`PARTITION LEADER EPOCH REPLICAS ISR
//! LOG-START-OFFSET HIGH-WATERMARK`), each under an underlined title; `-p` prints only the
//! partitions table, without a title, so it can be piped into `awk`. `--format json` prints
//! the whole description as one document (`strata_proto::views::TopicView`, the same as
//! the broker's `GET /v1/topics/{topic}`). Offsets the broker did not report print as `-`
//! (text) or `null` (JSON).

use strata_client::TopicDescription;
use strata_proto::views::{ConfigView, PartitionView, TopicView};

use super::{client_error, Context};
use crate::exit::{CliError, ExitStatus};
use crate::output::OutputFormat;
use crate::table::{cell, list_cell, section, Table};

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

/// The JSON form, [`TopicView`], shared with the broker's `GET /v1/topics/{topic}`.
fn to_json(description: &TopicDescription) -> TopicView {
    let partitions: Vec<PartitionView> = description
        .partitions
        .iter()
        .map(|partition| PartitionView {
            partition: partition.partition,
            leader: (partition.leader >= 0).then_some(partition.leader),
            leader_epoch: partition.leader_epoch,
            replicas: partition.replicas.clone(),
            isr: partition.isr.clone(),
            log_start_offset: known(partition.log_start_offset),
            high_watermark: known(partition.high_watermark),
        })
        .collect();
    TopicView {
        name: description.name.clone(),
        topic_id: description.topic_id.clone(),
        partition_count: description.partitions.len(),
        replication_factor: replication_factor(description),
        configs: description
            .configs
            .iter()
            .map(|config| ConfigView {
                key: config.key.clone(),
                value: config.value.clone(),
                source: config.source.name().to_owned(),
            })
            .collect(),
        partitions,
    }
}
