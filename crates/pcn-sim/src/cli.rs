//! Command-line entry for `farthing pcn-sim`: builds the scenario from flags, runs the sweep
//! on worker threads with a progress bar, and prints the table, JSON, chart and paper
//! comparison. This is the only module that does I/O, reads the clock or spawns threads.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{bail, Context};
use serde::Serialize;

use crate::demand::{DemandConfig, TxSizeDistribution};
use crate::event::US_PER_MS;
use crate::network::CapacityDistribution;
use crate::paper::{self, PaperPoint};
use crate::plot;
use crate::routing::{SchemeKind, SchemeParams};
use crate::sim::{QueueOrder, SimConfig};
use crate::sweep::{self, Job, Scenario, Summary, SweepPoint, TopologySpec};
use crate::topology::Topology;

/// Simulated time between progress updates of a run.
const PROGRESS_SLICE_MS: u64 = 5_000;
/// Worker threads are capped here; a sweep rarely has more runs than this.
const THREADS_MAX: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TopologyKind {
    /// Barabási–Albert scale-free graph (--nodes, --ba-m).
    Ba,
    /// Watts–Strogatz small-world graph (--nodes, --ws-k, --ws-p).
    Ws,
    /// Edge-list file (--edges): lines `a b [capacity]`, `#` comments.
    File,
}

/// Flags of `farthing pcn-sim`.
///
/// Simulates a payment channel network under each routing scheme at each channel size and
/// reports, per scheme, the smallest channel size reaching the target success ratio.
/// Defaults reproduce the Spider paper's 50-node scale-free setup (BA(50, 8), equal channels,
/// circulation demand, 30 tx/s per sender, 30 ms per hop, 5 s timeout, MTU 1).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Network shape.
    #[arg(long, value_enum, default_value_t = TopologyKind::Ba)]
    pub topology: TopologyKind,
    /// Nodes of a generated topology.
    #[arg(long, default_value_t = 50)]
    pub nodes: u32,
    /// Barabási–Albert: channels each new node opens.
    #[arg(long, default_value_t = 8)]
    pub ba_m: u32,
    /// Watts–Strogatz: ring neighbours per node (even).
    #[arg(long, default_value_t = 8)]
    pub ws_k: u32,
    /// Watts–Strogatz: rewiring probability.
    #[arg(long, default_value_t = 0.25)]
    pub ws_p: f64,
    /// Edge-list file (implies --topology file): one channel per line, `a b [capacity]`
    /// with integer node ids; `#` starts a comment; a capacity overrides --channel-sizes.
    #[arg(long, value_name = "FILE")]
    pub edges: Option<PathBuf>,
    /// Channel sizes to sweep (total units per channel, split half per side), comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [100u64, 200, 400, 800, 1600, 3200, 6400])]
    pub channel_sizes: Vec<u64>,
    /// How channel capacities are drawn around each channel size.
    #[arg(long, value_enum, default_value_t = CapacityDistribution::Equal)]
    pub channel_dist: CapacityDistribution,
    /// Routing schemes to compare, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',',
          default_values_t = SchemeKind::ALL)]
    pub schemes: Vec<SchemeKind>,
    /// Share of demand that is one-way (DAG), in percent; the rest is a circulation.
    #[arg(long, default_value_t = 0.0)]
    pub dag_pct: f64,
    /// Average transactions per second started by each sender.
    #[arg(long, default_value_t = 30.0)]
    pub tx_rate: f64,
    /// Every transaction has this size instead of the credit-card-like distribution.
    #[arg(long, value_name = "UNITS")]
    pub tx_size: Option<u64>,
    /// Simulated seconds of arrivals (the run then drains until all are resolved).
    #[arg(long, default_value_t = 120.0)]
    pub duration_s: f64,
    /// Arrivals before this many seconds are not measured (warm-up: windows, probes and
    /// channel balances settle within about a minute).
    #[arg(long, default_value_t = 60.0)]
    pub warmup_s: f64,
    /// Transaction timeout.
    #[arg(long, default_value_t = 5_000)]
    pub timeout_ms: u64,
    /// One-way propagation delay per hop.
    #[arg(long, default_value_t = 30)]
    pub hop_delay_ms: u64,
    /// Attach senders and receivers to their routers directly instead of through the
    /// paper's end-host links (one more hop delay each way at both ends, ample funds).
    #[arg(long)]
    pub no_end_hosts: bool,
    /// Smallest unit a splitting scheme sends or a router forwards.
    #[arg(long, default_value_t = 1)]
    pub mtu: u64,
    /// Paths per sender-receiver pair (waterfilling, Spider).
    #[arg(long, default_value_t = 4)]
    pub paths: usize,
    /// Spider routers mark units queued longer than this.
    #[arg(long, default_value_t = 300)]
    pub mark_threshold_ms: u64,
    /// Units a router may hold queued per channel direction (every scheme but LND, whose
    /// routers do not queue); a packet meeting a full queue fails.
    #[arg(long, default_value_t = 12_000)]
    pub queue_capacity: u64,
    /// Service order of router queues. The default is what the paper's simulator actually
    /// does: its runs ask for LIFO, but its router queues are heaps that pop the oldest.
    #[arg(long, value_enum, default_value_t = QueueOrder::Fifo)]
    pub queue_order: QueueOrder,
    /// Service order of Spider's and waterfilling's per-pair sender queues.
    #[arg(long, value_enum, default_value_t = QueueOrder::Lifo)]
    pub sender_queue_order: QueueOrder,
    /// LND: attempts per transaction.
    #[arg(long, default_value_t = 20)]
    pub lnd_attempts: u32,
    /// LND: how long a failed hop is avoided.
    #[arg(long, default_value_t = 5_000)]
    pub lnd_prune_ms: u64,
    /// Spider: additive increase (units per round trip over a pair's paths).
    #[arg(long, default_value_t = SchemeParams::default().spider_alpha_units)]
    pub spider_alpha: f64,
    /// Spider: window decrease per marked unit.
    #[arg(long, default_value_t = SchemeParams::default().spider_beta)]
    pub spider_beta: f64,
    /// Spider: smallest window, units.
    #[arg(long, default_value_t = SchemeParams::default().spider_window_min_units)]
    pub spider_window_min: f64,
    /// Spider: window a path starts slow start with, units.
    #[arg(long, default_value_t = SchemeParams::default().spider_window_initial_units)]
    pub spider_window_initial: f64,
    /// Spider: start each path in slow start, as the paper's simulator does (one more unit
    /// of window per unmarked unit until a mark or the path's capacity). Off by default:
    /// the transient lasts minutes, longer than the default warm-up (see README.md).
    #[arg(long)]
    pub spider_slow_start: bool,
    /// Seed of every random draw (topology, capacities, demand, arrivals).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Success ratio the planning answer aims for, percent.
    #[arg(long, default_value_t = 95.0)]
    pub target_pct: f64,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Write an SVG chart of success ratio against channel size.
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// Print the paper's published numbers from this CSV next to ours.
    #[arg(long, value_name = "CSV")]
    pub compare_paper: Option<PathBuf>,
    /// Worker threads (results do not depend on it).
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Never show the progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    let scenario = scenario(&args)?;
    if args.channel_sizes.is_empty() || args.channel_sizes.iter().any(|&s| s < 2) {
        bail!("--channel-sizes needs sizes of at least 2 units");
    }
    if args.schemes.is_empty() {
        bail!("--schemes needs at least one scheme");
    }
    let mut schemes = args.schemes.clone();
    schemes.sort();
    schemes.dedup();
    let mut sizes = args.channel_sizes.clone();
    sizes.sort_unstable();
    sizes.dedup();
    // Inputs and outputs are checked before the sweep, which can take minutes: a missing
    // file or an unwritable chart path is reported at once.
    let paper_points = match &args.compare_paper {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Some(paper::parse(&text).with_context(|| format!("parsing {}", path.display()))?)
        }
        None => None,
    };
    let plot_file = match &args.plot {
        Some(path) => Some(
            std::fs::File::create(path)
                .with_context(|| format!("creating the chart file {}", path.display()))?,
        ),
        None => None,
    };
    let prepared = sweep::prepare(&scenario).context("setting up the scenario")?;
    let jobs = sweep::plan(&schemes, &sizes);

    let started = Instant::now();
    let points = run_jobs(&prepared, &jobs, &args)?;
    let wall_s = started.elapsed().as_secs_f64();
    let events: u64 = points.iter().map(|p| p.report.events).sum();
    let performance = Performance {
        runs: points.len(),
        threads: args.threads.clamp(1, THREADS_MAX),
        events,
        wall_s,
        events_per_s: if wall_s > 0.0 {
            events as f64 / wall_s
        } else {
            0.0
        },
    };
    let summary = sweep::summarize(&points, &schemes, args.target_pct);
    let paper_topology = scenario
        .topology
        .paper_name()
        .filter(|_| args.channel_dist == CapacityDistribution::Equal && args.dag_pct == 0.0);

    if let (Some(path), Some(mut file)) = (&args.plot, plot_file) {
        let svg = chart(
            &scenario,
            &points,
            &schemes,
            &summary,
            paper_points.as_deref(),
            paper_topology,
        );
        std::io::Write::write_all(&mut file, svg.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if args.json {
        let comparison = paper_points
            .as_deref()
            .map(|p| comparison_rows(&points, p, paper_topology))
            .unwrap_or_default();
        let output = JsonOutput {
            scenario: &scenario,
            points: &points,
            summary: &summary,
            performance: &performance,
            paper_comparison: comparison,
        };
        println!("{}", serde_json::to_string_pretty(&output)?);
        return Ok(());
    }
    print_table(&scenario, &points, &schemes, &sizes);
    print_summary(&summary, &sizes);
    if let Some(paper_points) = &paper_points {
        print_comparison(&points, paper_points, paper_topology);
    }
    println!(
        "\n{} runs, {} events in {:.1} s wall on {} threads: {:.2} M events/s",
        performance.runs,
        performance.events,
        performance.wall_s,
        performance.threads,
        performance.events_per_s / 1e6
    );
    if let Some(path) = &args.plot {
        println!("chart written to {}", path.display());
    }
    Ok(())
}

fn scenario(args: &Args) -> anyhow::Result<Scenario> {
    let topology = match (&args.edges, args.topology) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            TopologySpec::Given(
                Topology::parse_edge_list(&text)
                    .with_context(|| format!("in {}", path.display()))?,
            )
        }
        (None, TopologyKind::File) => bail!("--topology file needs --edges FILE"),
        (None, TopologyKind::Ba) => TopologySpec::BarabasiAlbert {
            nodes: args.nodes,
            m: args.ba_m,
        },
        (None, TopologyKind::Ws) => TopologySpec::WattsStrogatz {
            nodes: args.nodes,
            k: args.ws_k,
            p: args.ws_p,
        },
    };
    let seconds_to_ms = |flag: &str, seconds: f64| -> anyhow::Result<u64> {
        if !(seconds.is_finite() && seconds >= 0.0) {
            bail!("{flag} must be a non-negative number of seconds, got {seconds}");
        }
        Ok((seconds * 1_000.0).round() as u64)
    };
    let duration_ms = seconds_to_ms("--duration-s", args.duration_s)?;
    let warmup_ms = seconds_to_ms("--warmup-s", args.warmup_s)?;
    if warmup_ms >= duration_ms {
        bail!(
            "--warmup-s ({}) must be less than --duration-s ({})",
            args.warmup_s,
            args.duration_s
        );
    }
    if args.mtu == 0 {
        bail!("--mtu must be at least 1");
    }
    // Zero values are refused rather than clamped: a run must be the run that was asked for.
    if args.hop_delay_ms == 0 {
        bail!("--hop-delay-ms must be at least 1: with no delay, waterfilling's probes re-launch at the same instant and the run never ends");
    }
    if args.timeout_ms == 0 {
        bail!("--timeout-ms must be at least 1");
    }
    if args.paths == 0 {
        bail!("--paths must be at least 1");
    }
    if args.lnd_attempts == 0 {
        bail!("--lnd-attempts must be at least 1");
    }
    let scheme_params = SchemeParams {
        paths_k: args.paths,
        lnd_attempts_max: args.lnd_attempts,
        lnd_prune_ms: args.lnd_prune_ms,
        spider_alpha_units: positive("--spider-alpha", args.spider_alpha)?,
        spider_beta: positive("--spider-beta", args.spider_beta)?,
        spider_window_min_units: positive("--spider-window-min", args.spider_window_min)?,
        spider_window_initial_units: positive(
            "--spider-window-initial",
            args.spider_window_initial,
        )?,
        spider_slow_start: args.spider_slow_start,
    };
    let sim = SimConfig {
        scheme: SchemeKind::Spider,
        scheme_params,
        hop_delay_ms: args.hop_delay_ms,
        end_hosts: !args.no_end_hosts,
        timeout_ms: args.timeout_ms,
        mtu_units: args.mtu,
        queue_capacity_units: args.queue_capacity,
        queue_order: args.queue_order,
        sender_queue_order: args.sender_queue_order,
        mark_threshold_ms: args.mark_threshold_ms,
        warmup_ms,
        duration_ms,
    };
    let demand = DemandConfig {
        tx_rate_per_sender: args.tx_rate,
        dag_pct: args.dag_pct,
        sizes: match args.tx_size {
            Some(units) => TxSizeDistribution::Constant { units },
            None => TxSizeDistribution::CREDIT_CARD,
        },
        ..DemandConfig::default()
    };
    Ok(Scenario {
        topology,
        capacities: args.channel_dist,
        demand,
        sim,
        seed: args.seed,
    })
}

fn positive(flag: &str, value: f64) -> anyhow::Result<f64> {
    if !(value.is_finite() && value > 0.0) {
        bail!("{flag} must be a positive number, got {value}");
    }
    Ok(value)
}

/// Runs the jobs on worker threads. Each run is single-threaded and deterministic, so the
/// results are the same whatever the thread count; only the wall time changes.
fn run_jobs(
    prepared: &sweep::Prepared,
    jobs: &[Job],
    args: &Args,
) -> anyhow::Result<Vec<SweepPoint>> {
    let threads = args.threads.clamp(1, THREADS_MAX).min(jobs.len().max(1));
    let duration_ms = prepared.scenario.sim.duration_ms;
    let show_progress = !args.no_progress && !args.json && std::io::stderr().is_terminal();
    let bar = if show_progress {
        let bar = indicatif::ProgressBar::new(jobs.len() as u64 * duration_ms);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:40} {percent}% simulated ({msg})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Some(bar)
    } else {
        None
    };
    let next_job = AtomicUsize::new(0);
    let finished = AtomicU64::new(0);
    let results: Mutex<Vec<Option<anyhow::Result<SweepPoint>>>> =
        Mutex::new((0..jobs.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let index = next_job.fetch_add(1, Ordering::Relaxed);
                let Some(&job) = jobs.get(index) else {
                    break;
                };
                let outcome = run_job(prepared, job, duration_ms, bar.as_ref());
                let done = finished.fetch_add(1, Ordering::Relaxed) + 1;
                if let Some(bar) = &bar {
                    bar.set_message(format!("{done}/{} runs", jobs.len()));
                }
                if let Ok(mut slots) = results.lock() {
                    slots[index] = Some(outcome);
                }
            });
        }
    });
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let slots = results
        .into_inner()
        .map_err(|_| anyhow::anyhow!("a worker thread panicked"))?;
    let mut points = Vec::with_capacity(jobs.len());
    for (slot, job) in slots.into_iter().zip(jobs) {
        match slot {
            Some(Ok(point)) => points.push(point),
            Some(Err(error)) => return Err(error),
            None => bail!(
                "run {:?} at {} units did not finish",
                job.scheme,
                job.channel_size_units
            ),
        }
    }
    points.sort_by_key(|p| (p.job.channel_size_units, p.job.scheme));
    Ok(points)
}

fn run_job(
    prepared: &sweep::Prepared,
    job: Job,
    duration_ms: u64,
    bar: Option<&indicatif::ProgressBar>,
) -> anyhow::Result<SweepPoint> {
    let mut simulation = sweep::simulation(prepared, job).with_context(|| {
        format!(
            "setting up {} at {} units",
            job.scheme.name(),
            job.channel_size_units
        )
    })?;
    let mut reported_ms = 0;
    let mut until_ms = 0;
    loop {
        until_ms += PROGRESS_SLICE_MS;
        let more = simulation.run_until(until_ms * US_PER_MS);
        let now_ms = (simulation.now_us() / US_PER_MS).min(duration_ms);
        if let Some(bar) = bar {
            bar.inc(now_ms.saturating_sub(reported_ms));
        }
        reported_ms = reported_ms.max(now_ms);
        if !more {
            break;
        }
    }
    if let Some(bar) = bar {
        bar.inc(duration_ms.saturating_sub(reported_ms));
    }
    debug_assert!(simulation.network().is_conserved());
    Ok(SweepPoint {
        job,
        report: simulation.report(),
    })
}

#[derive(Serialize)]
struct Performance {
    runs: usize,
    threads: usize,
    events: u64,
    wall_s: f64,
    events_per_s: f64,
}

#[derive(Serialize)]
struct JsonOutput<'a> {
    scenario: &'a Scenario,
    points: &'a [SweepPoint],
    summary: &'a Summary,
    performance: &'a Performance,
    paper_comparison: Vec<ComparisonRow>,
}

fn find(points: &[SweepPoint], scheme: SchemeKind, size: u64) -> Option<&SweepPoint> {
    points
        .iter()
        .find(|p| p.job.scheme == scheme && p.job.channel_size_units == size)
}

fn print_table(scenario: &Scenario, points: &[SweepPoint], schemes: &[SchemeKind], sizes: &[u64]) {
    let measured_s = (scenario.sim.duration_ms - scenario.sim.warmup_ms) as f64 / 1_000.0;
    println!(
        "{}, {:?} channels, {} demand, seed {}; measured arrivals in [{} s, {} s) ({measured_s} s)",
        scenario.topology.describe(),
        scenario.capacities,
        if scenario.demand.dag_pct > 0.0 {
            format!("circulation + {}% DAG", scenario.demand.dag_pct)
        } else {
            "circulation".to_string()
        },
        scenario.seed,
        scenario.sim.warmup_ms as f64 / 1_000.0,
        scenario.sim.duration_ms as f64 / 1_000.0,
    );
    println!("\nsuccess ratio % / normalized throughput % / mean completion ms");
    print!("{:>8}", "size");
    for scheme in schemes {
        print!("  {:>22}", scheme.name());
    }
    println!();
    for &size in sizes {
        print!("{size:>8}");
        for &scheme in schemes {
            match find(points, scheme, size) {
                Some(p) => {
                    let m = &p.report.metrics;
                    let cell = format!(
                        "{:.1} / {:.1} / {:.0}",
                        m.success_ratio_pct, m.normalized_throughput_pct, m.completion_mean_ms
                    );
                    print!("  {cell:>22}");
                }
                None => print!("  {:>22}", "-"),
            }
        }
        println!();
    }
}

fn print_summary(summary: &Summary, sizes: &[u64]) {
    let largest = sizes.last().copied().unwrap_or(0);
    println!(
        "\nsmallest channel size reaching {}% success (within the sweep):",
        summary.target_success_pct
    );
    for answer in &summary.answers {
        match answer.min_channel_size_units {
            Some(size) => println!("  {:<14} {size} units", answer.scheme.name()),
            None => println!(
                "  {:<14} not reached (> {largest} units)",
                answer.scheme.name()
            ),
        }
    }
    for ratio in &summary.ratios {
        let (a, b) = (ratio.scheme.name(), ratio.baseline.name());
        match (ratio.ratio, ratio.ratio_at_most) {
            (Some(r), _) => println!("  {a} needs {r:.3}x the channel size {b} needs"),
            (None, Some(r)) => println!("  {a} needs at most {r:.3}x the channel size {b} needs"),
            (None, None) => println!("  {a} vs {b}: no ratio (target not reached by {a})"),
        }
    }
}

#[derive(Serialize)]
struct ComparisonRow {
    channel_size_units: u64,
    scheme: SchemeKind,
    ours_success_pct: f64,
    paper_success_pct: f64,
    ours_throughput_pct: f64,
    paper_throughput_pct: Option<f64>,
}

fn comparison_rows(
    points: &[SweepPoint],
    paper_points: &[PaperPoint],
    topology: Option<&str>,
) -> Vec<ComparisonRow> {
    let Some(topology) = topology else {
        return Vec::new();
    };
    points
        .iter()
        .filter_map(|p| {
            let published = paper::lookup(
                paper_points,
                topology,
                "equal",
                p.job.channel_size_units,
                p.job.scheme.name(),
            )?;
            Some(ComparisonRow {
                channel_size_units: p.job.channel_size_units,
                scheme: p.job.scheme,
                ours_success_pct: p.report.metrics.success_ratio_pct,
                paper_success_pct: published.success_ratio_pct,
                ours_throughput_pct: p.report.metrics.normalized_throughput_pct,
                paper_throughput_pct: published.normalized_throughput_pct,
            })
        })
        .collect()
}

fn print_comparison(points: &[SweepPoint], paper_points: &[PaperPoint], topology: Option<&str>) {
    let Some(name) = topology else {
        println!("\npaper comparison: the paper has no data for this topology and demand");
        return;
    };
    let rows = comparison_rows(points, paper_points, topology);
    if rows.is_empty() {
        println!("\npaper comparison: no swept size matches the paper's sizes for {name}");
        return;
    }
    println!(
        "\nagainst the paper ({name}, equal channels): success % and throughput %, ours vs paper"
    );
    println!(
        "{:>8}  {:<14} {:>8} {:>8} {:>7}   {:>8} {:>8}",
        "size", "scheme", "ours", "paper", "diff", "ours", "paper"
    );
    for row in rows {
        let paper_throughput = row
            .paper_throughput_pct
            .map_or_else(|| "-".to_string(), |t| format!("{t:.1}"));
        println!(
            "{:>8}  {:<14} {:>8.1} {:>8.1} {:>+7.1}   {:>8.1} {:>8}",
            row.channel_size_units,
            row.scheme.name(),
            row.ours_success_pct,
            row.paper_success_pct,
            row.ours_success_pct - row.paper_success_pct,
            row.ours_throughput_pct,
            paper_throughput
        );
    }
}

fn chart(
    scenario: &Scenario,
    points: &[SweepPoint],
    schemes: &[SchemeKind],
    summary: &Summary,
    paper_points: Option<&[PaperPoint]>,
    paper_topology: Option<&str>,
) -> String {
    let mut series = Vec::new();
    for (colour, &scheme) in schemes.iter().enumerate() {
        series.push(plot::Series {
            label: scheme.name().to_string(),
            points: points
                .iter()
                .filter(|p| p.job.scheme == scheme)
                .map(|p| (p.job.channel_size_units, p.report.metrics.success_ratio_pct))
                .collect(),
            reference: false,
            colour,
        });
    }
    if let (Some(paper_points), Some(topology)) = (paper_points, paper_topology) {
        for (colour, &scheme) in schemes.iter().enumerate() {
            let published: Vec<(u64, f64)> = paper_points
                .iter()
                .filter(|p| p.topology == topology && p.channel_sizes == "equal")
                .filter(|p| p.scheme == scheme.name())
                .map(|p| (p.channel_size_units, p.success_ratio_pct))
                .collect();
            if !published.is_empty() {
                series.push(plot::Series {
                    label: format!("{} (paper)", scheme.name()),
                    points: published,
                    reference: true,
                    colour,
                });
            }
        }
    }
    let title = format!(
        "{}: success ratio vs channel size (target {}%)",
        scenario.topology.describe(),
        summary.target_success_pct
    );
    plot::success_vs_channel_size(&title, &series, summary.target_success_pct)
}
