//! `farthing`: the one binary. Each subcommand lives in `commands/`.

mod commands;

use clap::{Parser, Subcommand};

/// farthing: micropayments on an exact, crash-safe double-entry ledger.
#[derive(Debug, Parser)]
#[command(name = "farthing", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Payment channel network capacity planning (Spider, NSDI 2020).
    PcnSim(farthing_pcn_sim::cli::Args),
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::PcnSim(args) => farthing_pcn_sim::cli::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
