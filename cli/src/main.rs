//! `strata`, the command-line client for Strata (its grammar for users: `docs/CLI.md`).
//!
//! Map of this binary:
//!
//! - [`args`]: the clap definitions of every flag and subcommand, with their examples.
//! - [`commands`]: one file per command group (`topic`, `produce`, `consume`, `group`,
//!   `offsets`, `cluster`, `partition`, `bench`, `completions`, `man`), each turning
//!   parsed arguments into library calls and output.
//! - [`client_settings`]: the `-X` names the client library accepts (`-X list`).
//! - Pure building blocks, unit-tested without a broker: [`offset_spec`] (the `-o` grammar),
//!   [`format`] (`-f` tokens, rendered for consume) and [`format_input`] (the same tokens
//!   cutting records out of produce input),
//!   [`json_record`] (consume's default JSON lines), [`table`] (aligned text tables),
//!   [`seek_target`] (`group seek --to`),
//!   [`reassignment_file`] (`partition reassign`'s JSON file),
//!   [`duration`] and [`timestamp`] (the time syntax shared by all flags).
//! - Process plumbing: [`exit`] (exit codes and `error: ... (CODE)` reports), [`output`]
//!   (stdout that stops cleanly on a closed pipe; `status!` for stderr) and [`signals`]
//!   (first Ctrl-C stops cleanly, the second exits 130).
//!
//! Rule of the whole binary: results go to stdout, everything else to stderr, and nothing
//! panics on a closed pipe.

mod args;
mod client_settings;
mod commands;
mod dlt_args;
mod duration;
mod exit;
mod format;
mod format_input;
mod json_record;
mod offset_spec;
mod output;
mod reassignment_file;
mod record_view;
mod seek_target;
mod signals;
mod table;
mod timestamp;

use std::io::IsTerminal as _;
use std::process::ExitCode;

use clap::{CommandFactory as _, Parser as _};

#[tokio::main]
async fn main() -> ExitCode {
    keep_freed_memory();
    let cli = args::Cli::parse();
    init_logging(cli.global.verbose);
    let format = cli.global.format;
    if cli.global.lists_settings() {
        let _ = output::Output::stdout().print(&client_settings::render_list(format));
        return ExitCode::SUCCESS;
    }
    let Some(command) = cli.command else {
        args::Cli::command()
            .error(
                clap::error::ErrorKind::MissingSubcommand,
                "a command is required (see strata --help), or -X list",
            )
            .exit()
    };
    let interrupts = signals::Interrupts::install();
    match commands::run(cli.global, command, interrupts).await {
        Ok(status) => status.into(),
        Err(error) => {
            error.report(format);
            error.exit.into()
        }
    }
}

/// Logs go to stderr: warnings by default, debug with `-v`, everything with `-vv`;
/// `RUST_LOG` wins when set. Colour only when stderr is a terminal and `NO_COLOR` is unset,
/// so `strata -v ... 2> log` and pipes get plain text.
fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "warn,strata=debug,strata_client=debug",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .try_init();
}

/// Keeps freed memory in glibc's malloc instead of handing it back to the kernel.
///
/// HTTP/2 frames of up to 1 MiB are kept as they arrive (produce batches until they are
/// written, fetched batches until they are consumed), so each frame's buffer is a fresh
/// allocation of about 1 MiB. By default glibc serves those with `mmap` and returns
/// freed memory at once, and every page of every frame is then faulted in anew: 125,000
/// to 350,000 page faults while a consumer read 2.5 GB, about a third of its CPU on a
/// VM whose first touch of a page costs 4 µs (`docs/bench/history.md` item 16). With these
/// settings freed buffers are reused, and the process keeps its peak heap.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    // 32 MiB is the largest mmap threshold glibc accepts; 1 GiB may sit free on the heap.
    for (parameter, value) in [
        (libc::M_MMAP_THRESHOLD, 32 << 20),
        (libc::M_TRIM_THRESHOLD, 1 << 30),
    ] {
        // SAFETY: mallopt takes two integers by value and changes only malloc's tuning.
        unsafe { libc::mallopt(parameter, value) };
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}
