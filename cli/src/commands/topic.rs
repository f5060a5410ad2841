//! `strata topic create|list|delete` and the dispatch of the other topic subcommands
//! (docs/CLI.md, "Commands").
//!
//! Commands that act on several topics print one `TOPIC STATUS` row per topic on stdout
//! (`OK` or the error code) and one `error: ... (CODE)` line per failure on stderr, and exit
//! 1 if any topic failed: a partial failure is a failure. Topic names are checked locally
//! with the broker's own rule (`TopicName::new`) before anything is sent, so a bad name is
//! reported as `INVALID_TOPIC` without touching the cluster.

use std::io::IsTerminal as _;

use strata_client::NewTopic;
use strata_proto::types::TopicName;
use strata_proto::views::TopicListingView;

use super::statuses::report_statuses;
use super::topic_alter::Growth;
use super::{client_error, topic_alter, topic_describe, Context};
use crate::args::TopicCommand;
use crate::exit::{CliError, ExitStatus};
use crate::output::{status, OutputFormat};
use crate::table::Table;

pub async fn run(context: &mut Context, command: TopicCommand) -> Result<ExitStatus, CliError> {
    match command {
        TopicCommand::Create {
            names,
            partitions,
            replicas,
            configs,
            dry_run,
        } => {
            let topics = names
                .into_iter()
                .map(|name| {
                    let mut topic = NewTopic::new(name)
                        .partitions(partitions.unwrap_or(0))
                        .replication_factor(replicas.unwrap_or(0));
                    for (key, value) in &configs {
                        topic = topic.config(key.clone(), value.clone());
                    }
                    topic
                })
                .collect();
            create(context, topics, dry_run).await
        }
        TopicCommand::List => list(context).await,
        TopicCommand::Describe {
            name,
            partitions_only,
        } => topic_describe::run(context, &name, partitions_only).await,
        TopicCommand::Delete { names, yes } => delete(context, names, yes).await,
        TopicCommand::AlterConfig { name, set, delete } => {
            topic_alter::alter_config(context, &name, set, delete).await
        }
        TopicCommand::AddPartitions { name, count, total } => {
            let growth = match (count, total) {
                (Some(count), _) => Growth::Add(count),
                (None, Some(total)) => Growth::Total(total),
                (None, None) => return Err(CliError::usage("give -n N or --total N")),
            };
            topic_alter::add_partitions(context, &name, growth).await
        }
    }
}

async fn create(
    context: &mut Context,
    topics: Vec<NewTopic>,
    dry_run: bool,
) -> Result<ExitStatus, CliError> {
    let mut failures = Vec::new();
    let mut valid = Vec::new();
    for topic in topics {
        match TopicName::new(&topic.name) {
            Ok(_) => valid.push(topic),
            Err(reason) => {
                let error = CliError::failure("INVALID_TOPIC", reason);
                let error = match suggest_name(&topic.name) {
                    Some(name) => error.with_hint(format!("try {name:?}")),
                    None => error,
                };
                failures.push((topic.name.clone(), error));
            }
        }
    }
    let mut outcomes = Vec::new();
    if !valid.is_empty() {
        let results = context
            .client
            .admin()
            .create_topics(valid, dry_run)
            .await
            .map_err(|error| client_error(error).context("creating topics"))?;
        for (name, result) in results {
            outcomes.push((name, result.map_err(client_error)));
        }
    }
    outcomes.extend(failures.into_iter().map(|(name, error)| (name, Err(error))));
    let verb = if dry_run {
        "validating topic"
    } else {
        "creating topic"
    };
    let status = report_statuses(context, "topic", outcomes, verb)?;
    if dry_run && status == ExitStatus::Success {
        status!("dry run: nothing was created");
    }
    Ok(status)
}

/// A valid name close to `name`: each forbidden character becomes `-`, cut to the limit.
fn suggest_name(name: &str) -> Option<String> {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(strata_proto::types::TOPIC_NAME_MAX_CHARS)
        .collect();
    TopicName::new(&cleaned).ok().map(|_| cleaned)
}

pub async fn list(context: &mut Context) -> Result<ExitStatus, CliError> {
    let topics = context
        .client
        .admin()
        .list_topics()
        .await
        .map_err(|error| client_error(error).context("listing topics"))?;
    match context.format() {
        OutputFormat::Json => {
            let listed: Vec<_> = topics
                .iter()
                .map(|topic| TopicListingView {
                    name: topic.name.clone(),
                    partitions: topic.partitions,
                    replicas: topic.replication_factor,
                })
                .collect();
            context.print_json(&listed)?;
        }
        OutputFormat::Text => {
            let mut table = Table::new(["NAME", "PARTITIONS", "REPLICAS"]);
            for topic in &topics {
                table.row([
                    topic.name.clone(),
                    topic.partitions.to_string(),
                    topic.replication_factor.to_string(),
                ]);
            }
            context.print(&table.to_string())?;
        }
    }
    Ok(ExitStatus::Success)
}

async fn delete(
    context: &mut Context,
    names: Vec<String>,
    yes: bool,
) -> Result<ExitStatus, CliError> {
    if !yes {
        confirm_delete(&names).await?;
    }
    let results = context
        .client
        .admin()
        .delete_topics(names)
        .await
        .map_err(|error| client_error(error).context("deleting topics"))?;
    let outcomes = results
        .into_iter()
        .map(|(name, result)| (name, result.map_err(client_error)))
        .collect();
    report_statuses(context, "topic", outcomes, "deleting topic")
}

/// Asks on the terminal; refuses (exit 2) when stdin is not one.
async fn confirm_delete(names: &[String]) -> Result<(), CliError> {
    let question = format!("Delete {} and all their records? [y/N] ", names.join(", "));
    confirm("delete topics", question).await
}

/// Asks `question` on the terminal (stderr, stdin); refuses (exit 2) when stdin is not a
/// terminal, and fails unless the answer is yes. `action` completes "refusing to ...".
pub(super) async fn confirm(action: &str, question: String) -> Result<(), CliError> {
    if !std::io::stdin().is_terminal() {
        return Err(CliError::usage(format!(
            "refusing to {action} without confirmation: stdin is not a terminal"
        ))
        .with_hint("pass -y to delete without asking"));
    }
    let (sender, answer) = tokio::sync::oneshot::channel();
    // A plain thread: a blocked read must not keep the runtime alive after Ctrl-C.
    std::thread::spawn(move || {
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), "{question}");
        let mut line = String::new();
        let _ = sender.send(std::io::stdin().read_line(&mut line).map(|_| line));
    });
    let answer = answer
        .await
        .map_err(|_| CliError::failure("IO_ERROR", "reading the confirmation failed"))?
        .map_err(|error| CliError::io("reading the confirmation", &error))?;
    if matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
        Ok(())
    } else {
        Err(CliError::failure("ABORTED", "nothing deleted"))
    }
}

#[cfg(test)]
mod tests {
    use super::suggest_name;

    #[test]
    fn suggested_names_are_valid_or_absent() {
        assert_eq!(suggest_name("bad/name").as_deref(), Some("bad-name"));
        assert_eq!(suggest_name("ünï code").as_deref(), Some("-n--code"));
        assert_eq!(suggest_name(&"x".repeat(300)).map(|n| n.len()), Some(249));
        assert_eq!(suggest_name(""), None);
        assert_eq!(suggest_name(".."), None);
    }
}
