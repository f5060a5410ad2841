//! One file per command group; this module connects and dispatches.
//!
//! Each command gets a [`Context`]: the global flags, a connected [`Client`] and stdout.
//! Commands return `Ok(ExitStatus)` when they have reported everything themselves (also a
//! partial failure, exit 1, after per-item error lines) and `Err(CliError)` for a single
//! failure that `main` reports as `error: ... (CODE)`.

mod bench;
mod cluster;
mod completions;
mod consume;
mod consume_group;
mod consume_plan;
mod dlt;
mod dlt_replay;
mod group;
mod group_describe;
mod group_seek;
mod man;
mod offsets;
mod partition;
mod partition_reassign;
mod produce;
mod produce_input;
mod statuses;
mod topic;
mod topic_alter;
mod topic_describe;

use strata_client::Client;

pub use bench::BenchCommand;

use crate::args::{Command, GlobalArgs, GroupCommand, PartitionCommand, TopicCommand};
use crate::exit::{CliError, ExitStatus};
use crate::output::{Output, OutputError, OutputFormat};
use crate::signals::Interrupts;

/// What every command needs.
#[derive(Debug)]
pub struct Context {
    pub global: GlobalArgs,
    pub client: Client,
    pub out: Output,
}

impl Context {
    pub fn format(&self) -> OutputFormat {
        self.global.format
    }

    /// Prints a whole result (table or JSON document) on stdout.
    pub fn print(&mut self, text: &str) -> Result<(), CliError> {
        self.out.print(text).or_else(stdout_closed_is_fine)
    }

    /// Prints `value` as one pretty JSON document on stdout.
    pub fn print_json<T: serde::Serialize>(&mut self, value: &T) -> Result<(), CliError> {
        let text = serde_json::to_string_pretty(value)
            .map_err(|e| CliError::failure("INTERNAL", format!("encoding JSON output: {e}")))?;
        self.print(&(text + "\n"))
    }
}

/// A reader that closed stdout early (`| head`) is not an error for one-shot output.
pub fn stdout_closed_is_fine(error: OutputError) -> Result<(), CliError> {
    match error {
        OutputError::Closed => Ok(()),
        OutputError::Io(error) => Err(CliError::io("writing to stdout", &error)),
    }
}

/// Converts a library error, keeping its code and retriability.
pub fn client_error(error: strata_client::Error) -> CliError {
    CliError::failure(error.code_name(), &error).retriable(error.is_retriable())
}

/// Runs the parsed command line. Connecting and admin commands are abandoned on the first
/// Ctrl-C (exit 130: nothing to finish); produce, consume and bench handle it themselves to
/// finish cleanly and exit 0. Commands that need no cluster run without connecting.
pub async fn run(
    global: GlobalArgs,
    command: Command,
    mut interrupts: Interrupts,
) -> Result<ExitStatus, CliError> {
    match &command {
        Command::Completions { shell } => return completions::run(*shell),
        Command::Man => return man::run(),
        Command::Consume(args) => consume::check_before_connecting(args)?,
        Command::Produce(args) => produce::check_before_connecting(args)?,
        Command::Partition(PartitionCommand::Reassign(args)) => {
            partition_reassign::check_before_connecting(args)?;
        }
        _ => {}
    }
    let client = tokio::select! {
        client = connect(&global) => client?,
        () = interrupts.requested() => return Ok(ExitStatus::Interrupted),
    };
    let mut context = Context {
        global,
        client,
        out: Output::stdout(),
    };
    match command {
        Command::Produce(args) => produce::run(&mut context, args, interrupts).await,
        Command::Consume(args) => consume::run(&mut context, args, interrupts).await,
        Command::Bench(command) => bench::run(&mut context, command, interrupts).await,
        command => {
            tokio::select! {
                result = run_admin(&mut context, command) => result,
                () = interrupts.requested() => Ok(ExitStatus::Interrupted),
            }
        }
    }
}

async fn run_admin(context: &mut Context, command: Command) -> Result<ExitStatus, CliError> {
    match command {
        Command::Topic(TopicCommand::List) | Command::Topics => topic::list(context).await,
        Command::Topic(command) => topic::run(context, command).await,
        Command::Group(GroupCommand::List) | Command::Groups => group::list(context).await,
        Command::Group(command) => group::run(context, command).await,
        Command::Offsets(args) => offsets::run(context, args).await,
        Command::Cluster(command) => cluster::run(context, command).await,
        Command::Partition(command) => partition::run(context, command).await,
        Command::Dlt(command) => dlt::run(context, command).await,
        Command::Produce(_)
        | Command::Consume(_)
        | Command::Bench(_)
        | Command::Completions { .. }
        | Command::Man => Err(CliError::failure(
            "INTERNAL",
            "produce, consume, bench, completions and man are dispatched elsewhere",
        )),
    }
}

async fn connect(global: &GlobalArgs) -> Result<Client, CliError> {
    Client::builder()
        .brokers(global.brokers.iter().cloned())
        .client_id("strata-cli")
        .request_timeout(global.timeout)
        .connect_timeout(global.timeout)
        .build()
        .await
        .map_err(|error| {
            let hint = match error.code_name() {
                "CONNECT" | "TRANSPORT" | "TIMEOUT" => Some(format!(
                    "is a broker running at {}? Set --brokers or STRATA_BROKERS",
                    global.brokers.join(",")
                )),
                _ => None,
            };
            let error = client_error(error).context("connecting to the cluster");
            match hint {
                Some(hint) => error.with_hint(hint),
                None => error,
            }
        })
}
