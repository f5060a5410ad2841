//! `strata-broker dump-log`: prints batches of a segment or a partition directory.

use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `dump-log`.
#[derive(Debug, clap::Args)]
pub struct DumpLogArgs {
    /// A segment file (`<base_offset>.log`) or a partition directory.
    pub path: PathBuf,
    /// Also print each record's key, value and headers.
    #[arg(long)]
    pub records: bool,
}

/// Runs the command; exit code 0 when every batch is intact, 1 on corruption.
pub fn run(_args: &DumpLogArgs) -> ExitCode {
    ExitCode::from(2)
}
