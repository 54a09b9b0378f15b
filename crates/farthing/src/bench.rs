//! `farthing bench`: a TigerBeetle-like load on the in-process durable engine.
//!
//! Creates the accounts, then `clients` threads submit batches of random transfers between
//! them (uniform, or zipf-distributed hot accounts) and wait for each to be durable. Reports
//! throughput, batch latency, recovery replay rate, peak memory and disk use.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use farthing_engine::{Config, Engine};
use farthing_ledger::{
    Account, AccountFlags, AccountId, Amount, Asset, AssetCode, AssetId, Operation, Transfer,
    BATCH_EVENTS_MAX,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use serde::Serialize;

/// Flags of `farthing bench`.
#[derive(Debug, Clone, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    /// Another workload instead of the engine's (its flags follow it).
    #[command(subcommand)]
    pub workload: Option<BenchWorkload>,
    /// Number of accounts.
    #[arg(long, default_value_t = 10_000)]
    pub accounts: u64,
    /// Number of transfers to submit.
    #[arg(long, default_value_t = 10_000_000)]
    pub transfers: u64,
    /// Transfers per batch (at most 8190).
    #[arg(long, default_value_t = 8190)]
    pub batch_size: usize,
    /// Threads submitting batches concurrently (more batches in flight let group commit merge
    /// them and keep the writer busy while the log syncs).
    #[arg(long, default_value_t = 4)]
    pub clients: u64,
    /// Pick accounts from a zipf distribution with this exponent (hot accounts) instead of
    /// uniformly.
    #[arg(long)]
    pub zipf: Option<f64>,
    /// Directory for the data (a fresh subdirectory is created and removed afterwards).
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Keep the data directory afterwards.
    #[arg(long)]
    pub keep: bool,
    /// Random seed for the workload.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Benchmark `farthing serve` over loopback HTTP instead of the engine in-process: spawns a
    /// server on a fresh data directory under --dir (or uses --target), keeps --connections
    /// keep-alive connections busy and reports throughput and per-request latency. The flags
    /// below apply to it, as do --batch-size, --dir, --keep, --seed and --json.
    #[arg(long)]
    pub http: bool,
    /// With --http: `single` sends one transfer per `POST /v1/transfers`; `batch` sends
    /// --batch-size transfers per `POST /v1/transfers/batch`.
    #[arg(long, value_enum, default_value_t = crate::bench_http::Scenario::Single, requires = "http")]
    pub scenario: crate::bench_http::Scenario,
    /// With --http: concurrent HTTP/1.1 keep-alive connections, each with one request in
    /// flight.
    #[arg(long, default_value_t = 64, requires = "http")]
    pub connections: usize,
    /// With --http: the measured phase stops after this many requests (or --seconds, whichever
    /// comes first).
    #[arg(long, requires = "http")]
    pub requests: Option<u64>,
    /// With --http: the measured phase stops after this many seconds (or --requests, whichever
    /// comes first).
    #[arg(long, default_value_t = 10.0, requires = "http")]
    pub seconds: f64,
    /// With --http: seconds of load before the measured phase, left out of every figure
    /// (connections, caches and the server's allocator warm up).
    #[arg(long, default_value_t = 1.0, requires = "http")]
    pub warmup_seconds: f64,
    /// With --http: accounts to create and move money between (unconstrained, so transfers
    /// never fail for lack of funds).
    #[arg(long, default_value_t = 1000, requires = "http")]
    pub http_accounts: u64,
    /// With --http: threads of the load generator's runtime (1 = a single-threaded runtime;
    /// the load generator shares the machine with a spawned server).
    #[arg(long, default_value_t = 1, requires = "http")]
    pub client_threads: usize,
    /// With --http: the base URL of an already running server on loopback
    /// (`http://127.0.0.1:8080`) instead of spawning one. Needs --key.
    #[arg(long, requires_all = ["http", "key"])]
    pub target: Option<String>,
    /// With --target: an operator key (the benchmark then creates the USD asset if missing, a
    /// merchant and its key) or a merchant key (the USD asset must exist). Either way each run
    /// adds --http-accounts accounts and the transfers to the target's ledger. Ignored without
    /// --target: a spawned server gets a fresh operator key.
    #[arg(long, env = "FARTHING_BENCH_KEY", hide_env_values = true)]
    pub key: Option<String>,
}

/// The workloads `farthing bench` can run besides the engine's.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum BenchWorkload {
    /// Off-ledger vouchers in-process on one core: PayWord payments, and signed vouchers
    /// verified alone and in batches, per second.
    Vouchers(crate::bench_vouchers::VouchersBenchArgs),
    /// Entitlement tokens (EdDSA JWS) signed and verified per second on one core.
    Tokens(crate::bench_tokens::TokenBenchArgs),
}

#[derive(Debug, Serialize)]
pub struct LatencyMs {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

/// What `farthing bench --json` prints.
#[derive(Debug, Serialize)]
pub struct BenchReport {
    pub accounts: u64,
    pub transfers: u64,
    pub batch_size: usize,
    pub clients: u64,
    pub distribution: String,
    pub seconds: f64,
    pub transfers_per_second: f64,
    pub batch_latency_ms: LatencyMs,
    pub commits: u64,
    pub transfers_per_commit: f64,
    pub fsync_ms_mean: f64,
    pub apply_ms_mean: f64,
    pub replay_seconds: f64,
    pub replay_transfers_per_second: f64,
    pub replay_from_snapshot: bool,
    pub peak_rss_bytes: u64,
    pub ledger_bytes_per_account: f64,
    pub ledger_bytes_per_transfer: f64,
    pub disk_bytes_per_transfer: f64,
    pub log_bytes_per_transfer: f64,
    pub machine: String,
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    match &args.workload {
        Some(BenchWorkload::Vouchers(vouchers)) => return crate::bench_vouchers::run(vouchers),
        Some(BenchWorkload::Tokens(tokens)) => return crate::bench_tokens::run(tokens),
        None => {}
    }
    if args.http {
        return crate::bench_http::run(&args);
    }
    let report = measure(&args)?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_table(&report);
    }
    Ok(())
}

fn account_op(ids: std::ops::Range<u64>) -> Operation {
    Operation::CreateAccounts(
        ids.map(|id| Account {
            id: AccountId(u128::from(id)),
            asset: AssetId(1),
            code: 1,
            flags: AccountFlags::empty(),
            overdraft_limit: Amount(0),
            user_data: 0,
        })
        .collect(),
    )
}

pub fn measure(args: &BenchArgs) -> anyhow::Result<BenchReport> {
    ensure!(
        args.batch_size >= 1 && args.batch_size <= BATCH_EVENTS_MAX,
        "--batch-size must be 1..={BATCH_EVENTS_MAX}"
    );
    ensure!(args.accounts >= 2, "--accounts must be at least 2");
    ensure!(args.clients >= 1, "--clients must be at least 1");
    if let Some(s) = args.zipf {
        ensure!(
            s > 0.0 && s.is_finite(),
            "--zipf must be a positive exponent"
        );
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let data = tempfile::Builder::new()
        .prefix("farthing-bench-")
        .tempdir_in(&args.dir)?;
    let dir = data.path().to_path_buf();
    let config = Config {
        transfers_expected: args.transfers as usize,
        ..Config::new(&dir)
    };
    let engine = Engine::open(config)?;
    let asset = Asset {
        id: AssetId(1),
        code: AssetCode::new("USD").expect("valid"),
        scale: 6,
    };
    engine.submit(Operation::CreateAssets(vec![asset]))?;
    let mut next = 1;
    while next <= args.accounts {
        let end = (next + BATCH_EVENTS_MAX as u64).min(args.accounts + 1);
        engine.submit(account_op(next..end))?;
        next = end;
    }
    let bar = crate::progress::bar(args.transfers, "transfers");
    let done = AtomicU64::new(0);
    let started = Instant::now();
    let latencies: Vec<Vec<Duration>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..args.clients)
            .map(|client| {
                let (engine, done, bar) = (&engine, &done, &bar);
                scope.spawn(move || client_loop(args, client, engine, done, bar))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Ok(Vec::new())))
            .collect::<anyhow::Result<_>>()
    })?;
    let seconds = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let stats = engine.stats();
    let usage = engine.read(|ledger| ledger.memory_usage());
    let peak_rss_bytes = peak_rss_bytes();
    engine.shutdown();
    let disk_bytes = dir_bytes(&dir);
    let reopen_started = Instant::now();
    let reopened = Engine::open(Config::new(&dir))?;
    let replay_seconds = reopen_started.elapsed().as_secs_f64();
    let recovered = reopened.read(|ledger| ledger.transfer_count()) as u64;
    ensure!(
        recovered == args.transfers,
        "reopened ledger has {recovered} transfers, expected {}",
        args.transfers
    );
    let replay_from_snapshot = reopened.recovery().snapshot.is_some();
    drop(reopened);
    if args.keep {
        let kept = data.keep();
        eprintln!("data kept in {}", kept.display());
    }
    let mut all: Vec<Duration> = latencies.into_iter().flatten().collect();
    all.sort();
    let pick = |q: f64| {
        all.get(((all.len() as f64 - 1.0) * q).round() as usize)
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    let transfers = args.transfers as f64;
    Ok(BenchReport {
        accounts: args.accounts,
        transfers: args.transfers,
        batch_size: args.batch_size,
        clients: args.clients,
        distribution: args.zipf.map_or("uniform".into(), |s| format!("zipf({s})")),
        seconds,
        transfers_per_second: transfers / seconds,
        batch_latency_ms: LatencyMs {
            p50: pick(0.5),
            p99: pick(0.99),
            max: pick(1.0),
        },
        commits: stats.commits,
        transfers_per_commit: transfers / stats.commits.max(1) as f64,
        fsync_ms_mean: stats.fsync_nanos_total as f64 / stats.commits.max(1) as f64 / 1e6,
        apply_ms_mean: stats.apply_nanos_total as f64 / stats.commits.max(1) as f64 / 1e6,
        replay_seconds,
        replay_transfers_per_second: transfers / replay_seconds,
        replay_from_snapshot,
        peak_rss_bytes,
        ledger_bytes_per_account: usage.accounts as f64 / args.accounts as f64,
        ledger_bytes_per_transfer: usage.transfers as f64 / transfers,
        disk_bytes_per_transfer: disk_bytes as f64 / transfers,
        log_bytes_per_transfer: stats.log_bytes as f64 / transfers,
        machine: machine_description(),
    })
}

fn client_loop(
    args: &BenchArgs,
    client: u64,
    engine: &Engine,
    done: &AtomicU64,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<Vec<Duration>> {
    let mut rng = StdRng::seed_from_u64(args.seed ^ (client << 32));
    let zipf = match args.zipf {
        Some(s) => Some(Zipf::new(args.accounts, s).context("zipf distribution")?),
        None => None,
    };
    let pick = |rng: &mut StdRng| match &zipf {
        Some(z) => z.sample(rng) as u64,
        None => rng.gen_range(1..=args.accounts),
    };
    let share = args.transfers / args.clients + u64::from(client < args.transfers % args.clients);
    let first_id = u128::from(client) << 64;
    let mut latencies = Vec::new();
    let mut sent = 0u64;
    while sent < share {
        let n = (share - sent).min(args.batch_size as u64);
        let transfers = (0..n)
            .map(|i| {
                let debit = pick(&mut rng);
                let mut credit = pick(&mut rng);
                if credit == debit {
                    credit = debit % args.accounts + 1;
                }
                let id = first_id + u128::from(sent + i) + 1;
                Transfer::simple(
                    id,
                    u128::from(debit),
                    u128::from(credit),
                    rng.gen_range(1..1000),
                    1,
                )
            })
            .collect();
        let started = Instant::now();
        let outcome = engine.submit(Operation::CreateTransfers(transfers))?;
        latencies.push(started.elapsed());
        let failed = outcome.results.codes().iter().filter(|&&c| c != 0).count();
        ensure!(
            failed == 0,
            "{failed} transfers failed in a benchmark batch"
        );
        sent += n;
        done.fetch_add(n, Ordering::Relaxed);
        bar.inc(n);
    }
    Ok(latencies)
}

/// Peak resident memory of this process (VmHWM), in bytes.
pub fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Bytes the directory's files occupy on disk (allocated blocks, so preallocation counts).
fn dir_bytes(dir: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.blocks() * 512)
        .sum()
}

pub(crate) fn machine_description() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown cpu".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores, {cpu}")
}

fn print_table(r: &BenchReport) {
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    println!(
        "farthing bench: {} transfers, {} accounts ({}), batches of {}, {} clients, durable",
        r.transfers, r.accounts, r.distribution, r.batch_size, r.clients
    );
    println!("  machine                   {}", r.machine);
    println!(
        "  throughput                {:>12.0} transfers/s  ({:.2} s)",
        r.transfers_per_second, r.seconds
    );
    println!(
        "  batch latency             p50 {:.2} ms   p99 {:.2} ms   max {:.2} ms",
        r.batch_latency_ms.p50, r.batch_latency_ms.p99, r.batch_latency_ms.max
    );
    println!(
        "  group commits             {} ({:.0} transfers each; mean apply {:.2} ms, write+fsync {:.2} ms)",
        r.commits, r.transfers_per_commit, r.apply_ms_mean, r.fsync_ms_mean
    );
    println!(
        "  recovery replay           {:>12.0} transfers/s  ({:.2} s{})",
        r.replay_transfers_per_second,
        r.replay_seconds,
        if r.replay_from_snapshot {
            ", from snapshot + log"
        } else {
            ", log only"
        }
    );
    println!(
        "  peak RSS                  {:>12.1} MiB",
        mib(r.peak_rss_bytes)
    );
    println!(
        "  ledger memory             {:.0} B/account, {:.0} B/transfer",
        r.ledger_bytes_per_account, r.ledger_bytes_per_transfer
    );
    println!(
        "  disk                      {:.1} B/transfer on disk, {:.1} B/transfer of log records",
        r.disk_bytes_per_transfer, r.log_bytes_per_transfer
    );
}
