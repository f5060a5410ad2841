//! `strata group describe GROUP...` (docs/CLI.md, "Consumer groups").
//!
//! Text output follows rpk and Kafka's `kafka-consumer-groups --describe`: per group a
//! `SUMMARY` block (`GROUP STATE MEMBERS TOTAL-LAG`, then coordinator, assignor and
//! epoch), a `MEMBERS` table with each member's partitions, and a `PARTITIONS` table
//! (`TOPIC PARTITION CURRENT-OFFSET LOG-START-OFFSET LOG-END-OFFSET LAG MEMBER-ID
//! CLIENT-ID HOST`) with `-` where nothing is committed or nothing is known. The
//! coordinator computes the lag from the committed offset and the high watermark.
//! A group with retry or dead-letter topics (`docs/RETRY.md`, found by their
//! `strata.retry.group` label) gets a `RETRY TOPICS` table (`TOPIC KIND LEVEL SOURCE
//! PARTITIONS RECORDS`).
//! `--format json` prints one array with one object per group (`strata_proto::views::
//! GroupView`, the same object as the broker's `GET /v1/groups/{group}`, its
//! `retry_topics` included). A group that does not
//! exist (`GROUP_ID_NOT_FOUND`) is an error line on stderr and makes the command exit 1;
//! the other groups are still printed.

use strata_client::{GroupDescription, GroupMemberDescription, GroupRetryTopic};
use strata_proto::views::{
    GroupMemberView, GroupPartitionView, GroupRetryTopicView, GroupView, TopicPartitionView,
};

use super::{client_error, Context};
use crate::exit::{CliError, ExitStatus};
use crate::output::OutputFormat;
use crate::table::{cell, section, Table};

pub async fn run(context: &mut Context, groups: &[String]) -> Result<ExitStatus, CliError> {
    let admin = context.client.admin();
    let results = admin.describe_groups(groups.iter().cloned()).await;
    let mut described = Vec::new();
    let mut errors = Vec::new();
    for (group, result) in results {
        let retry_topics = match result {
            Ok(description) => admin
                .group_retry_topics(&description.group_id)
                .await
                .map(|topics| (description, topics)),
            Err(error) => Err(error),
        };
        match retry_topics {
            Ok(described_group) => described.push(described_group),
            Err(error) => {
                errors.push(client_error(error).context(format!("describing group {group:?}")))
            }
        }
    }
    match context.format() {
        OutputFormat::Json => {
            let json: Vec<GroupView> = described
                .iter()
                .map(|(group, retry_topics)| GroupView {
                    retry_topics: retry_topics.iter().map(retry_topic_json).collect(),
                    ..to_json(group)
                })
                .collect();
            context.print_json(&json)?;
        }
        OutputFormat::Text => {
            let text: Vec<String> = described
                .iter()
                .map(|(group, retry_topics)| render_text(group, retry_topics))
                .collect();
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

fn render_text(group: &GroupDescription, retry_topics: &[GroupRetryTopic]) -> String {
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
    let mut text = format!(
        "{}{summary}\n{}{members}\n{}{}",
        section("SUMMARY"),
        section("MEMBERS"),
        section("PARTITIONS"),
        partitions_table(group)
    );
    if !retry_topics.is_empty() {
        let mut table = Table::new(["TOPIC", "KIND", "LEVEL", "SOURCE", "PARTITIONS", "RECORDS"]);
        for topic in retry_topics {
            table.row([
                topic.name.clone(),
                topic.kind.clone(),
                cell(topic.level),
                topic.source.clone(),
                topic.partitions.to_string(),
                topic.records.to_string(),
            ]);
        }
        text.push_str(&format!("\n{}{table}", section("RETRY TOPICS")));
    }
    text
}

fn retry_topic_json(topic: &GroupRetryTopic) -> GroupRetryTopicView {
    GroupRetryTopicView {
        topic: topic.name.clone(),
        kind: topic.kind.clone(),
        level: topic.level,
        source: topic.source.clone(),
        partitions: topic.partitions,
        records: topic.records,
    }
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

fn topic_partitions(assignment: &[(String, i32)]) -> Vec<TopicPartitionView> {
    assignment
        .iter()
        .map(|(topic, partition)| TopicPartitionView {
            topic: topic.clone(),
            partition: *partition,
        })
        .collect()
}

/// The JSON form, [`GroupView`], shared with the broker's `GET /v1/groups/{group}`.
fn to_json(group: &GroupDescription) -> GroupView {
    GroupView {
        group: group.group_id.clone(),
        state: group.state.as_str().to_owned(),
        coordinator: group.coordinator,
        assignor: group.assignor.clone(),
        group_epoch: group.group_epoch,
        assignment_epoch: group.assignment_epoch,
        total_lag: group.total_lag(),
        members: group
            .members
            .iter()
            .map(|member| GroupMemberView {
                member_id: member.member_id.clone(),
                instance_id: member.instance_id.clone(),
                client_id: member.client_id.clone(),
                host: member.client_host.clone(),
                member_epoch: member.member_epoch,
                subscribed_topics: member.subscribed_topics.clone(),
                subscribed_topic_regex: member.subscribed_topic_regex.clone(),
                assignment: topic_partitions(&member.assignment),
                target_assignment: topic_partitions(&member.target_assignment),
            })
            .collect(),
        partitions: group
            .offsets
            .iter()
            .map(|offset| {
                let member = owner(group, offset.member_id.as_deref());
                GroupPartitionView {
                    topic: offset.topic.clone(),
                    partition: offset.partition,
                    current_offset: offset.committed_offset,
                    log_start_offset: offset.log_start_offset,
                    log_end_offset: offset.high_watermark,
                    lag: offset.lag,
                    member_id: offset.member_id.clone(),
                    client_id: member.map(|member| member.client_id.clone()),
                    host: member.map(|member| member.client_host.clone()),
                }
            })
            .collect(),
        retry_topics: Vec::new(),
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
