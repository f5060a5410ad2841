//! `strata`, the command-line client for Strata (`reference/cli.md`).
//!
//! Map of this binary:
//!
//! - [`args`]: the clap definitions of every flag and subcommand, with their examples.
//! - [`commands`]: one file per command group (`topic`, `produce`, `consume`, `offsets`,
//!   `cluster`), each turning parsed arguments into library calls and output.
//! - Pure building blocks, unit-tested without a broker: [`offset_spec`] (the `-o` grammar),
//!   [`format`] (`-f` tokens, rendered for consume) and [`format_input`] (the same tokens
//!   cutting records out of produce input),
//!   [`json_record`] (consume's default JSON lines), [`table`] (aligned text tables),
//!   [`duration`] and [`timestamp`] (the time syntax shared by all flags).
//! - Process plumbing: [`exit`] (exit codes and `error: ... (CODE)` reports), [`output`]
//!   (stdout that stops cleanly on a closed pipe; `status!` for stderr) and [`signals`]
//!   (first Ctrl-C stops cleanly, the second exits 130).
//!
//! Rule of the whole binary: results go to stdout, everything else to stderr, and nothing
//! panics on a closed pipe.

mod args;
mod commands;
mod duration;
mod exit;
mod format;
mod format_input;
mod json_record;
mod offset_spec;
mod output;
mod record_view;
mod signals;
mod table;
mod timestamp;

use std::process::ExitCode;

use clap::Parser as _;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = args::Cli::parse();
    init_logging(cli.global.verbose);
    let format = cli.global.format;
    let interrupts = signals::Interrupts::install();
    match commands::run(cli, interrupts).await {
        Ok(status) => status.into(),
        Err(error) => {
            error.report(format);
            error.exit.into()
        }
    }
}

/// Logs go to stderr: warnings by default, debug with `-v`, everything with `-vv`;
/// `RUST_LOG` wins when set.
fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "warn,strata=debug,strata_client=debug",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
