//! `farthing`: the one binary. Commands live in libraries (`farthing-api` for `serve`, this
//! crate's `bench` and `crash`, `farthing-pcn-sim`); this file only parses the command line.

use std::io::IsTerminal;
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
    Serve(Box<farthing::config::ServeArgs>),
    /// Benchmark the durable engine in-process (TigerBeetle-like workload), or with --http the
    /// HTTP API under load.
    Bench(farthing::bench::BenchArgs),
    /// Payment channel network capacity planning (Spider, NSDI 2020).
    PcnSim(Box<farthing_pcn_sim::cli::Args>),
    /// Crash-test the engine: start a worker under load, SIGKILL it at a random moment,
    /// recover and check everything acknowledged; repeat. The long mode of the crash test.
    CrashTest(CrashTestArgs),
    /// Re-check a data directory kept by a failed crash test (`data/` and `acks.txt`).
    CrashCheck(CrashCheckArgs),
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

#[derive(Debug, clap::Args)]
struct CrashTestArgs {
    /// SIGKILLs, each followed by recovery and a full check.
    #[arg(long, default_value_t = 1000)]
    kills: u64,
    /// Seed of the workload and of the kill moments; the same seed repeats the same run.
    #[arg(long, default_value_t = 20261121)]
    seed: u64,
    /// Folder for `data/` and `acks.txt`; kept afterwards. Default: a temporary folder,
    /// removed after a passing run and kept after a failing one.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// The longest a worker runs before its kill, in milliseconds.
    #[arg(long, default_value_t = 300)]
    kill_after_max_ms: u64,
}

#[derive(Debug, clap::Args)]
struct CrashCheckArgs {
    /// The folder a crash test kept (holding `data/` and `acks.txt`), or a data directory.
    #[arg(long)]
    dir: PathBuf,
    /// The seed the crash test ran with (its failure message names it).
    #[arg(long)]
    seed: u64,
}

fn crash_test(args: CrashTestArgs) -> anyhow::Result<()> {
    let temporary = match &args.dir {
        Some(_) => None,
        None => Some(tempfile::tempdir()?),
    };
    let dir = match (&args.dir, &temporary) {
        (Some(dir), _) => dir.clone(),
        (None, Some(temp)) => temp.path().to_owned(),
        (None, None) => unreachable!("a folder is chosen above"),
    };
    let options = farthing::crash::KillOptions {
        binary: std::env::current_exe()?,
        dir: dir.clone(),
        seed: args.seed,
        kills: args.kills,
        kill_after_max_ms: args.kill_after_max_ms,
        worker_start_timeout_s: 60,
    };
    eprintln!(
        "crash test: {} kills, seed {}, folder {}",
        args.kills,
        args.seed,
        dir.display()
    );
    let bar = farthing::progress::bar(args.kills, "kills");
    let result = farthing::crash::run_kills(&options, |k| {
        bar.inc(1);
        if bar.is_hidden() && (k.run % 50 == 0 || k.run == args.kills) {
            eprintln!(
                "run {}: {} log records, {} transfers, check {:?}",
                k.run, k.check.log_records, k.check.transfers, k.check_time
            );
        }
    });
    bar.finish_and_clear();
    match result {
        Ok(summary) => {
            println!(
                "crash test passed: {} kills, seed {}, {} acknowledged batches, {} log records, {} transfers, {:.1} s",
                summary.kills,
                args.seed,
                summary.acks,
                summary.log_records,
                summary.transfers,
                summary.elapsed.as_secs_f64()
            );
            Ok(())
        }
        Err(error) => {
            if let Some(temp) = temporary {
                let _ = temp.keep();
            }
            Err(error)
        }
    }
}

fn crash_check(args: CrashCheckArgs) -> anyhow::Result<()> {
    let acks_path = farthing::crash::acks_path(&args.dir);
    let (data, acks) = if acks_path.exists() {
        (
            farthing::crash::data_dir(&args.dir),
            farthing::crash::read_saved_acks(&acks_path)?,
        )
    } else {
        (args.dir.clone(), Vec::new())
    };
    let report = farthing::crash::check(&data, args.seed, &acks)?;
    println!(
        "check passed: {} log records (state read at {}), {} transfers, {} acknowledged batches, state {}",
        report.log_records,
        report.state_sequence,
        report.transfers,
        report.acknowledged,
        report.state_hash
    );
    Ok(())
}

fn init_logging(json: bool, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| default_level.into());
    // Colours only for a person at a terminal: in a file, a pipe or a journal they are noise.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn serve(args: farthing::config::ServeArgs) -> anyhow::Result<()> {
    let config = farthing::config::ServeConfig::resolve(args)?;
    init_logging(config.log_json, "info");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(farthing::serve::serve(config))
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
        Command::CrashTest(args) => {
            init_logging(false, "warn");
            crash_test(args)
        }
        Command::CrashCheck(args) => {
            init_logging(false, "warn");
            crash_check(args)
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
            eprintln!("error: {}", farthing::error_message(&error));
            std::process::ExitCode::FAILURE
        }
    }
}
