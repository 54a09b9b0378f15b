//! `farthing`: the one binary. Commands live in the library (`bench`, `crash`); this file only
//! parses the command line.

use std::path::PathBuf;

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
    /// Benchmark the durable engine in-process (TigerBeetle-like workload).
    Bench(farthing::bench::BenchArgs),
    /// Payment channel network capacity planning (Spider, NSDI 2020).
    PcnSim(Box<farthing_pcn_sim::cli::Args>),
    /// Run the crash-test workload until killed (used by the crash tests).
    #[command(hide = true)]
    CrashWorker {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        seed: u64,
        #[arg(long)]
        run: u64,
        #[arg(long, default_value_t = 2)]
        clients: u64,
    },
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench(args) => farthing::bench::run(args),
        Command::PcnSim(args) => farthing_pcn_sim::cli::run(*args),
        Command::CrashWorker {
            dir,
            seed,
            run,
            clients,
        } => farthing::crash::run_worker(&dir, seed, run, clients),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
