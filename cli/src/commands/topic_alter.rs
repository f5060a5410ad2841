//! `strata topic alter-config` and `strata topic add-partitions` (docs/CLI.md, "Commands").
//!
//! Both print what changed, old → new: `KEY OLD-VALUE NEW-VALUE` for configs (`-` where a
//! key had no value or lost it) and `TOPIC OLD-PARTITIONS NEW-PARTITIONS` for partitions.
//! `add-partitions` warns on stderr first, because adding partitions moves keys: the key
//! hash is taken modulo the partition count (the client's partitioner, murmur2 as in Kafka).

use serde::Serialize;

use super::{client_error, Context};
use crate::exit::{CliError, ExitStatus};
use crate::output::{status, OutputFormat};
use crate::table::{cell, Table};

pub async fn alter_config(
    context: &mut Context,
    topic: &str,
    set: Vec<(String, String)>,
    delete: Vec<String>,
) -> Result<ExitStatus, CliError> {
    if set.is_empty() && delete.is_empty() {
        return Err(
            CliError::usage("nothing to change").with_hint("add --set KEY=VALUE or --delete KEY")
        );
    }
    let changes = context
        .client
        .admin()
        .alter_config(topic, set, delete, false)
        .await
        .map_err(|error| {
            client_error(error).context(format!("altering the configs of topic {topic:?}"))
        })?;
    match context.format() {
        OutputFormat::Json => {
            #[derive(Serialize)]
            struct Change<'a> {
                key: &'a str,
                old_value: Option<&'a str>,
                new_value: Option<&'a str>,
            }
            let changes: Vec<_> = changes
                .iter()
                .map(|change| Change {
                    key: &change.key,
                    old_value: change.old_value.as_deref(),
                    new_value: change.new_value.as_deref(),
                })
                .collect();
            context.print_json(&changes)?;
        }
        OutputFormat::Text => {
            let mut table = Table::new(["KEY", "OLD-VALUE", "NEW-VALUE"]);
            for change in &changes {
                table.row([
                    change.key.clone(),
                    cell(change.old_value.as_deref()),
                    cell(change.new_value.as_deref()),
                ]);
            }
            context.print(&table.to_string())?;
        }
    }
    Ok(ExitStatus::Success)
}

/// How `add-partitions` grows a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Growth {
    /// `-n N`: N more partitions.
    Add(i32),
    /// `--total N`: N partitions in all, as Kafka's `--partitions N`.
    Total(i32),
}

impl Growth {
    /// The partition count after growing from `before`; a usage error when that is not more.
    pub fn partitions_after(self, before: i32) -> Result<i32, CliError> {
        match self {
            Growth::Add(count) => before.checked_add(count).ok_or_else(|| {
                CliError::usage(format!("{before} + {count} partitions is too many"))
            }),
            Growth::Total(total) if total > before => Ok(total),
            Growth::Total(total) => Err(CliError::usage(format!(
                "--total {total} must be more than the {before} partitions the topic has \
                 (partitions can be added, never removed)"
            ))),
        }
    }
}

pub async fn add_partitions(
    context: &mut Context,
    topic: &str,
    growth: Growth,
) -> Result<ExitStatus, CliError> {
    let admin = context.client.admin();
    let context_error =
        |error| client_error(error).context(format!("adding partitions to topic {topic:?}"));
    let before = admin
        .describe_topic(topic)
        .await
        .map_err(context_error)?
        .partitions
        .len();
    let before = i32::try_from(before).map_err(|_| {
        CliError::failure("INVALID_PARTITIONS", "the topic has too many partitions")
    })?;
    let after = growth.partitions_after(before)?;
    status!(
        "warning: keyed records map to partitions by hash modulo the partition count; \
         after this change most keys go to a different partition than their earlier records"
    );
    admin
        .create_partitions(topic, after)
        .await
        .map_err(context_error)?;
    match context.format() {
        OutputFormat::Json => {
            #[derive(Serialize)]
            struct Added<'a> {
                topic: &'a str,
                old_partitions: i32,
                new_partitions: i32,
            }
            context.print_json(&Added {
                topic,
                old_partitions: before,
                new_partitions: after,
            })?;
        }
        OutputFormat::Text => {
            let mut table = Table::new(["TOPIC", "OLD-PARTITIONS", "NEW-PARTITIONS"]);
            table.row([topic.to_owned(), before.to_string(), after.to_string()]);
            context.print(&table.to_string())?;
        }
    }
    Ok(ExitStatus::Success)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn add_counts_up_and_total_sets_the_count() {
        assert_eq!(Growth::Add(3).partitions_after(2).unwrap(), 5);
        assert_eq!(Growth::Total(12).partitions_after(2).unwrap(), 12);
        for refused in [Growth::Total(2), Growth::Total(1), Growth::Add(i32::MAX)] {
            let error = refused.partitions_after(2).unwrap_err();
            assert_eq!(error.exit, ExitStatus::Usage, "{refused:?}");
        }
    }
}
