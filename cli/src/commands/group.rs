//! `strata group list|delete` and the dispatch of the other group subcommands (docs/CLI.md,
//! "Consumer groups"): `describe` lives in `group_describe.rs`, `seek` in `group_seek.rs`.
//!
//! `list` merges every broker's answer (each reports the groups it coordinates); a broker
//! that did not answer makes the list incomplete, which is reported on stderr and exits 1.
//! `delete` prints one `GROUP STATUS` row per group, like `topic delete`, asks for
//! confirmation unless `-y`, and exits 1 if any group was refused (a group with live
//! members is `NON_EMPTY_GROUP`).

use strata_proto::views::GroupListingView;

use super::statuses::report_statuses;
use super::topic::confirm;
use super::{client_error, group_describe, group_seek, Context};
use crate::args::GroupCommand;
use crate::exit::{CliError, ExitStatus};
use crate::output::{status, OutputFormat};
use crate::table::Table;

pub async fn run(context: &mut Context, command: GroupCommand) -> Result<ExitStatus, CliError> {
    match command {
        GroupCommand::List => list(context).await,
        GroupCommand::Describe { groups } => group_describe::run(context, &groups).await,
        GroupCommand::Seek(args) => group_seek::run(context, args).await,
        GroupCommand::Delete { groups, yes } => delete(context, groups, yes).await,
    }
}

/// The hint for `NON_EMPTY_GROUP`, shared by `delete` and `seek --execute`.
pub const NON_EMPTY_GROUP_HINT: &str =
    "stop the group's consumers first (strata group describe shows them); a member that \
     crashed leaves once its session times out";

/// Adds the `NON_EMPTY_GROUP` hint where it applies.
pub fn with_group_hint(error: CliError) -> CliError {
    if error.code == "NON_EMPTY_GROUP" {
        error.with_hint(NON_EMPTY_GROUP_HINT)
    } else {
        error
    }
}

pub async fn list(context: &mut Context) -> Result<ExitStatus, CliError> {
    let listings = context
        .client
        .admin()
        .list_groups()
        .await
        .map_err(|error| client_error(error).context("listing groups"))?;
    match context.format() {
        OutputFormat::Json => {
            let listed: Vec<_> = listings
                .groups
                .iter()
                .map(|group| GroupListingView {
                    group: group.group_id.clone(),
                    state: group.state.as_str().to_owned(),
                    members: group.members,
                    coordinator: group.coordinator,
                })
                .collect();
            context.print_json(&listed)?;
        }
        OutputFormat::Text => {
            let mut table = Table::new(["GROUP", "STATE", "MEMBERS", "COORDINATOR"]);
            for group in &listings.groups {
                table.row([
                    group.group_id.clone(),
                    group.state.to_string(),
                    group.members.to_string(),
                    group.coordinator.to_string(),
                ]);
            }
            context.print(&table.to_string())?;
        }
    }
    if listings.failures.is_empty() {
        return Ok(ExitStatus::Success);
    }
    let failed = listings.failures.len();
    for failure in listings.failures {
        let error = client_error(failure.error).context(format!(
            "listing the groups of broker {} ({})",
            failure.node_id, failure.address
        ));
        error.report(context.format());
    }
    status!("the list is incomplete: {failed} broker(s) did not answer");
    Ok(ExitStatus::Failure)
}

async fn delete(
    context: &mut Context,
    groups: Vec<String>,
    yes: bool,
) -> Result<ExitStatus, CliError> {
    if !yes {
        let question = format!(
            "Delete group(s) {} and their committed offsets? [y/N] ",
            groups.join(", ")
        );
        confirm("delete groups", question).await?;
    }
    let outcomes = context
        .client
        .admin()
        .delete_groups(groups)
        .await
        .into_iter()
        .map(|(group, result)| {
            (
                group,
                result.map_err(|error| with_group_hint(client_error(error))),
            )
        })
        .collect();
    report_statuses(context, "group", outcomes, "deleting group")
}
