//! The `strata-broker` binary. For now it offers the storage tools (`dump-log`); the
//! gRPC server arrives with the one-node broker.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The Strata broker.
#[derive(Debug, Parser)]
#[command(name = "strata-broker", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the batches of a segment file or of every segment in a partition directory,
    /// checking each batch's framing and CRC (like Kafka's kafka-dump-log).
    DumpLog(strata_broker::dump::DumpLogArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::DumpLog(args)) => strata_broker::dump::run(&args),
        None => {
            eprintln!("strata-broker: the gRPC server is not built yet; try `strata-broker dump-log --help`");
            ExitCode::from(2)
        }
    }
}
