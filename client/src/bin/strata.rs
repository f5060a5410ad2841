//! `strata`, the command-line client. Commands (`topic`, `produce`, `consume`, `bench`, …)
//! arrive with the gRPC API; see `reference/cli.md` for the conventions they follow.

use clap::Parser;

/// Produce, consume and administer a Strata cluster.
#[derive(Debug, Parser)]
#[command(name = "strata", version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
    eprintln!("strata: no commands yet; the gRPC API lands with the one-node broker");
    std::process::exit(2);
}
