//! `farthing`: the one binary. Commands live in libraries (`farthing-api` for `serve`, this
//! crate's `bench` and `crash`, `farthing-pcn-sim`); this file only parses the command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// mimalloc: per-request allocations (headers, bodies, JSON) cost far less than with glibc's
/// malloc, which took about 13% of the server's CPU under `bench --http`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// farthing: micropayments on an exact, crash-safe double-entry ledger.
#[derive(Debug, Parser)]
#[command(name = "farthing", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP API on the embedded engine.
    Serve(Box<farthing_api::config::ServeArgs>),
    /// Benchmark the durable engine in-process (TigerBeetle-like workload), or with --http the
    /// HTTP API under load.
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

fn init_logging(json: bool, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| default_level.into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn serve(args: farthing_api::config::ServeArgs) -> anyhow::Result<()> {
    let config = farthing_api::config::ServeConfig::resolve(args)?;
    init_logging(config.log_json, "info");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(farthing_api::serve(config))
}

/// No transparent huge pages for this process. With them, memory the allocator gives back and
/// takes again comes back as 2 MiB pages the kernel zeroes in one fault: measured on the shared
/// 2-core machine, `bench --http --scenario charges` went from about 23,000 to 25,000 charges/s
/// with p99 from 9.7 to 6 ms, and `bench` from 1.7–2.8M to 3.2M transfers/s.
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl(PR_SET_THP_DISABLE) only sets a flag of this process; no memory is passed.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

fn main() -> std::process::ExitCode {
    disable_transparent_huge_pages();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(*args),
        Command::Bench(args) => {
            init_logging(false, "warn");
            farthing::bench::run(args)
        }
        Command::PcnSim(args) => {
            init_logging(false, "warn");
            farthing_pcn_sim::cli::run(*args)
        }
        Command::CrashWorker {
            dir,
            seed,
            run,
            clients,
        } => {
            init_logging(false, "warn");
            farthing::crash::run_worker(&dir, seed, run, clients)
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
