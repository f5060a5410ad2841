//! `strata group describe GROUP...` (docs/CLI.md, "Consumer groups").
//!
//! Text output follows rpk and Kafka's `kafka-consumer-groups --describe`: per group a
//! `SUMMARY` block (`GROUP STATE MEMBERS TOTAL-LAG`, then coordinator, assignor and
//! epoch), a `MEMBERS` table with each member's partitions, and a `PARTITIONS` table
//! (`TOPIC PARTITION CURRENT-OFFSET LOG-START-OFFSET LOG-END-OFFSET LAG MEMBER-ID
//! CLIENT-ID HOST`) with `-` where nothing is committed or nothing is known. The
//! coordinator computes the lag from the committed offset and the high watermark.
//! `--format json` prints one array with one object per group. A group that does not
//! exist (`GROUP_ID_NOT_FOUND`) is an error line on stderr and makes the command exit 1;
//! the other groups are still printed.

use serde::Serialize;
use strata_client::{GroupDescription, GroupMemberDescription};

use super::{client_error, Context};
use crate::exit::{CliError, ExitStatus};
use crate::output::OutputFormat;
use crate::table::{cell, section, Table};

#[derive(Serialize)]
struct JsonGroup<'a> {
    group: &'a str,
    state: &'a str,
    coordinator: i32,
    assignor: &'a str,
    group_epoch: i32,
    assignment_epoch: i32,
    total_lag: Option<i64>,
    members: Vec<JsonMember<'a>>,
    partitions: Vec<JsonPartition<'a>>,
}

#[derive(Serialize)]
struct JsonMember<'a> {
    member_id: &'a str,
    instance_id: Option<&'a str>,
    client_id: &'a str,
    host: &'a str,
    member_epoch: i32,
    subscribed_topics: &'a [String],
    subscribed_topic_regex: Option<&'a str>,
    assignment: Vec<JsonTopicPartition<'a>>,
    target_assignment: Vec<JsonTopicPartition<'a>>,
}

#[derive(Serialize)]
struct JsonTopicPartition<'a> {
    topic: &'a str,
    partition: i32,
}

#[derive(Serialize)]
struct JsonPartition<'a> {
    topic: &'a str,
    partition: i32,
    current_offset: Option<i64>,
    log_start_offset: Option<i64>,
    log_end_offset: Option<i64>,
    lag: Option<i64>,
    member_id: Option<&'a str>,
    client_id: Option<&'a str>,
    host: Option<&'a str>,
}

pub async fn run(context: &mut Context, groups: &[String]) -> Result<ExitStatus, CliError> {
    let results = context
        .client
        .admin()
        .describe_groups(groups.iter().cloned())
        .await;
    let mut described = Vec::new();
    let mut errors = Vec::new();
    for (group, result) in results {
        match result {
            Ok(description) => described.push(description),
            Err(error) => {
                errors.push(client_error(error).context(format!("describing group {group:?}")))
            }
        }
    }
    match context.format() {
        OutputFormat::Json => {
            let json: Vec<JsonGroup<'_>> = described.iter().map(to_json).collect();
            context.print_json(&json)?;
        }
        OutputFormat::Text => {
            let text: Vec<String> = described.iter().map(render_text).collect();
            if !text.is_empty() {
                context.print(&text.join("\n"))?;
            }
        }
    }
    if errors.is_empty() {
        return Ok(ExitStatus::Success);
    }
    for error in errors {
        error.report(context.format());
    }
    Ok(ExitStatus::Failure)
}

/// `orders:0,1;audit:2`: one awk field whatever the number of partitions.
fn assignment_cell(assignment: &[(String, i32)]) -> String {
    let mut text = String::new();
    let mut current: Option<&str> = None;
    for (topic, partition) in assignment {
        if current == Some(topic.as_str()) {
            text.push_str(&format!(",{partition}"));
        } else {
            if current.is_some() {
                text.push(';');
            }
            text.push_str(&format!("{topic}:{partition}"));
            current = Some(topic);
        }
    }
    text
}

fn render_text(group: &GroupDescription) -> String {
    let mut summary = Table::key_value();
    summary
        .row(["GROUP", group.group_id.as_str()])
        .row(["STATE".to_owned(), group.state.to_string()])
        .row(["MEMBERS".to_owned(), group.members.len().to_string()])
        .row(["TOTAL-LAG".to_owned(), cell(group.total_lag())])
        .row(["COORDINATOR".to_owned(), group.coordinator.to_string()])
        .row(["ASSIGNOR", group.assignor.as_str()])
        .row(["EPOCH".to_owned(), group.group_epoch.to_string()]);
    let mut members = Table::new(["MEMBER-ID", "CLIENT-ID", "HOST", "EPOCH", "PARTITIONS"]);
    for member in &group.members {
        members.row([
            member.member_id.clone(),
            member.client_id.clone(),
            member.client_host.clone(),
            member.member_epoch.to_string(),
            assignment_cell(&member.assignment),
        ]);
    }
    format!(
        "{}{summary}\n{}{members}\n{}{}",
        section("SUMMARY"),
        section("MEMBERS"),
        section("PARTITIONS"),
        partitions_table(group)
    )
}

fn partitions_table(group: &GroupDescription) -> Table {
    let mut table = Table::new([
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-START-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "MEMBER-ID",
        "CLIENT-ID",
        "HOST",
    ]);
    for offset in &group.offsets {
        let member = owner(group, offset.member_id.as_deref());
        table.row([
            offset.topic.clone(),
            offset.partition.to_string(),
            cell(offset.committed_offset),
            cell(offset.log_start_offset),
            cell(offset.high_watermark),
            cell(offset.lag),
            cell(offset.member_id.as_deref()),
            cell(member.map(|member| member.client_id.as_str())),
            cell(member.map(|member| member.client_host.as_str())),
        ]);
    }
    table
}

fn owner<'a>(
    group: &'a GroupDescription,
    member_id: Option<&str>,
) -> Option<&'a GroupMemberDescription> {
    member_id.and_then(|member_id| group.member(member_id))
}

fn topic_partitions(assignment: &[(String, i32)]) -> Vec<JsonTopicPartition<'_>> {
    assignment
        .iter()
        .map(|(topic, partition)| JsonTopicPartition {
            topic,
            partition: *partition,
        })
        .collect()
}

fn to_json(group: &GroupDescription) -> JsonGroup<'_> {
    JsonGroup {
        group: &group.group_id,
        state: group.state.as_str(),
        coordinator: group.coordinator,
        assignor: &group.assignor,
        group_epoch: group.group_epoch,
        assignment_epoch: group.assignment_epoch,
        total_lag: group.total_lag(),
        members: group
            .members
            .iter()
            .map(|member| JsonMember {
                member_id: &member.member_id,
                instance_id: member.instance_id.as_deref(),
                client_id: &member.client_id,
                host: &member.client_host,
                member_epoch: member.member_epoch,
                subscribed_topics: &member.subscribed_topics,
                subscribed_topic_regex: member.subscribed_topic_regex.as_deref(),
                assignment: topic_partitions(&member.assignment),
                target_assignment: topic_partitions(&member.target_assignment),
            })
            .collect(),
        partitions: group
            .offsets
            .iter()
            .map(|offset| {
                let member = owner(group, offset.member_id.as_deref());
                JsonPartition {
                    topic: &offset.topic,
                    partition: offset.partition,
                    current_offset: offset.committed_offset,
                    log_start_offset: offset.log_start_offset,
                    log_end_offset: offset.high_watermark,
                    lag: offset.lag,
                    member_id: offset.member_id.as_deref(),
                    client_id: member.map(|member| member.client_id.as_str()),
                    host: member.map(|member| member.client_host.as_str()),
                }
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::assignment_cell;

    #[test]
    fn an_assignment_is_one_field() {
        let assignment = [
            ("audit".to_owned(), 2),
            ("orders".to_owned(), 0),
            ("orders".to_owned(), 1),
        ];
        assert_eq!(assignment_cell(&assignment), "audit:2;orders:0,1");
        assert_eq!(assignment_cell(&[]), "");
    }
}
