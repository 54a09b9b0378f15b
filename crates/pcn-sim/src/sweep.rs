//! Sweeps: the same network shape and demand at several channel sizes, for several schemes,
//! and the answer to the planning question — the smallest channel size at which each scheme
//! reaches the target success ratio, and how the schemes compare.
//!
//! Every run of a sweep sees the same topology, demand and arrival stream (all drawn from
//! the sweep's seed), so differences come from the scheme and the capacity alone. Running
//! the jobs is the caller's business (the command runs them on threads); everything here is
//! pure.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::demand::{ArrivalGenerator, DemandConfig, DemandError, DemandMatrix};
use crate::network::{CapacityDistribution, Network, NetworkError, NodeId};
use crate::routing::SchemeKind;
use crate::sim::{ArrivalSource, RunReport, SimConfig, SimError, Simulation};
use crate::topology::{Topology, TopologyError};

/// Where the network shape comes from.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum TopologySpec {
    BarabasiAlbert {
        nodes: u32,
        m: u32,
    },
    WattsStrogatz {
        nodes: u32,
        k: u32,
        p: f64,
    },
    /// A fixed topology, e.g. read from an edge-list file.
    Given(Topology),
}

impl TopologySpec {
    /// The paper's name for this shape, when it is one of the paper's.
    pub fn paper_name(&self) -> Option<&'static str> {
        match self {
            TopologySpec::BarabasiAlbert { nodes: 50, m: 8 } => Some("sf50"),
            TopologySpec::WattsStrogatz { nodes: 50, k: 8, p } if *p == 0.25 => Some("sw50"),
            TopologySpec::BarabasiAlbert { nodes: 10, m: 5 } => Some("sf10"),
            _ => None,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            TopologySpec::BarabasiAlbert { nodes, m } => format!("Barabási–Albert({nodes}, {m})"),
            TopologySpec::WattsStrogatz { nodes, k, p } => {
                format!("Watts–Strogatz({nodes}, {k}, {p})")
            }
            TopologySpec::Given(t) => {
                format!(
                    "edge list ({} nodes, {} channels)",
                    t.node_count(),
                    t.edges().len()
                )
            }
        }
    }
}

/// Everything but the scheme and the channel size.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Scenario {
    pub topology: TopologySpec,
    pub capacities: CapacityDistribution,
    pub demand: DemandConfig,
    /// Template for each run; its `scheme` is replaced by the job's.
    pub sim: SimConfig,
    pub seed: u64,
}

/// One run of a sweep.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Job {
    pub scheme: SchemeKind,
    pub channel_size_units: u64,
}

/// Why a sweep could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SweepError {
    #[error(transparent)]
    Topology(#[from] TopologyError),
    #[error(transparent)]
    Demand(#[from] DemandError),
    #[error(transparent)]
    Network(#[from] NetworkError),
    #[error(transparent)]
    Sim(#[from] SimError),
    /// Pairs in different parts could never pay each other; the results would mislead.
    #[error("the topology is disconnected: {parts} separate parts (sizes {sizes:?}); every node with a channel must reach every other")]
    Disconnected { parts: usize, sizes: Vec<usize> },
}

/// A scenario with its random parts drawn, shared by all jobs.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub scenario: Scenario,
    pub topology: Topology,
    pub demand: DemandMatrix,
}

/// Independent random streams from one seed (SplitMix64 finalizer).
fn stream(seed: u64, purpose: u64) -> ChaCha8Rng {
    let mut z = seed ^ purpose.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ChaCha8Rng::seed_from_u64(z ^ (z >> 31))
}

const STREAM_TOPOLOGY: u64 = 1;
const STREAM_CAPACITIES: u64 = 2;
const STREAM_DEMAND: u64 = 3;
const STREAM_ARRIVALS: u64 = 4;

/// Draws the topology and the demand matrix.
pub fn prepare(scenario: &Scenario) -> Result<Prepared, SweepError> {
    let mut rng = stream(scenario.seed, STREAM_TOPOLOGY);
    let topology = match &scenario.topology {
        TopologySpec::BarabasiAlbert { nodes, m } => {
            Topology::barabasi_albert(*nodes, *m, &mut rng)?
        }
        TopologySpec::WattsStrogatz { nodes, k, p } => {
            Topology::watts_strogatz(*nodes, *k, *p, &mut rng)?
        }
        TopologySpec::Given(topology) => topology.clone(),
    };
    let sizes = topology.component_sizes();
    if sizes.len() > 1 {
        return Err(SweepError::Disconnected {
            parts: sizes.len(),
            sizes,
        });
    }
    let mut with_channels = vec![false; topology.node_count() as usize];
    for edge in topology.edges() {
        with_channels[edge.a as usize] = true;
        with_channels[edge.b as usize] = true;
    }
    let nodes: Vec<NodeId> = (0..topology.node_count())
        .filter(|&n| with_channels[n as usize])
        .collect();
    let demand = DemandMatrix::build(
        &scenario.demand,
        &nodes,
        &mut stream(scenario.seed, STREAM_DEMAND),
    )?;
    Ok(Prepared {
        scenario: scenario.clone(),
        topology,
        demand,
    })
}

/// The simulation of one job, ready to run.
pub fn simulation(prepared: &Prepared, job: Job) -> Result<Simulation, SweepError> {
    let scenario = &prepared.scenario;
    let capacities = scenario.capacities.draw(
        &prepared.topology,
        job.channel_size_units,
        &mut stream(scenario.seed, STREAM_CAPACITIES),
    );
    let network = Network::new(&prepared.topology, &capacities)?;
    let arrivals = ArrivalGenerator::new(
        &prepared.demand,
        scenario.demand.sizes,
        stream(scenario.seed, STREAM_ARRIVALS),
    )?;
    let config = SimConfig {
        scheme: job.scheme,
        ..scenario.sim.clone()
    };
    Ok(Simulation::new(
        network,
        ArrivalSource::Generated(Box::new(arrivals)),
        config,
    )?)
}

/// Every (scheme, size) combination, smallest sizes first: scarce capacity means long
/// router queues and many events, so those runs are the longest and should start early.
pub fn plan(schemes: &[SchemeKind], sizes_units: &[u64]) -> Vec<Job> {
    let mut jobs = Vec::with_capacity(schemes.len() * sizes_units.len());
    for &size in sizes_units {
        for &scheme in schemes {
            jobs.push(Job {
                scheme,
                channel_size_units: size,
            });
        }
    }
    jobs
}

/// One finished job.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SweepPoint {
    pub job: Job,
    pub report: RunReport,
}

/// The planning answer for one scheme.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SchemeAnswer {
    pub scheme: SchemeKind,
    /// Smallest swept channel size whose success ratio reaches the target, if any.
    pub min_channel_size_units: Option<u64>,
}

/// How much more capacity one scheme needs than another to reach the target.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CapacityRatio {
    pub scheme: SchemeKind,
    pub baseline: SchemeKind,
    /// `min size(scheme) / min size(baseline)`; `None` when either never reaches the target.
    pub ratio: Option<f64>,
    /// When `scheme` reaches the target but `baseline` does not within the sweep, the ratio
    /// is at most `min size(scheme) / largest swept size`.
    pub ratio_at_most: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    pub target_success_pct: f64,
    pub answers: Vec<SchemeAnswer>,
    /// Each scheme against Spider (or the first scheme swept when Spider is absent).
    pub ratios: Vec<CapacityRatio>,
}

/// Answers the planning question from a sweep's results.
pub fn summarize(
    points: &[SweepPoint],
    schemes: &[SchemeKind],
    target_success_pct: f64,
) -> Summary {
    let largest = points
        .iter()
        .map(|p| p.job.channel_size_units)
        .max()
        .unwrap_or(0);
    let answers: Vec<SchemeAnswer> = schemes
        .iter()
        .map(|&scheme| SchemeAnswer {
            scheme,
            min_channel_size_units: points
                .iter()
                .filter(|p| p.job.scheme == scheme)
                .filter(|p| p.report.metrics.success_ratio_pct >= target_success_pct)
                .map(|p| p.job.channel_size_units)
                .min(),
        })
        .collect();
    let reference = if schemes.contains(&SchemeKind::Spider) {
        Some(SchemeKind::Spider)
    } else {
        schemes.first().copied()
    };
    let min_of = |scheme: SchemeKind| {
        answers
            .iter()
            .find(|a| a.scheme == scheme)
            .and_then(|a| a.min_channel_size_units)
    };
    let mut ratios = Vec::new();
    if let Some(reference) = reference {
        for &baseline in schemes.iter().filter(|&&s| s != reference) {
            let ratio = match (min_of(reference), min_of(baseline)) {
                (Some(a), Some(b)) => Some(a as f64 / b as f64),
                _ => None,
            };
            let ratio_at_most = match (min_of(reference), min_of(baseline)) {
                (Some(a), None) if largest > 0 => Some(a as f64 / largest as f64),
                _ => None,
            };
            ratios.push(CapacityRatio {
                scheme: reference,
                baseline,
                ratio,
                ratio_at_most,
            });
        }
    }
    Summary {
        target_success_pct,
        answers,
        ratios,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::RunMetrics;

    fn point(scheme: SchemeKind, size: u64, success: f64) -> SweepPoint {
        SweepPoint {
            job: Job {
                scheme,
                channel_size_units: size,
            },
            report: RunReport {
                scheme,
                metrics: RunMetrics {
                    arrived: 100,
                    succeeded: success as u64,
                    value_arrived_units: 0,
                    value_delivered_units: 0,
                    success_ratio_pct: success,
                    normalized_throughput_pct: 0.0,
                    completion_mean_ms: 0.0,
                    completion_p50_ms: 0.0,
                    completion_p99_ms: 0.0,
                },
                diagnostics: Default::default(),
                events: 0,
                simulated_ms: 0,
            },
        }
    }

    #[test]
    fn smallest_size_reaching_target_and_ratios() {
        use SchemeKind::*;
        let points = vec![
            point(Spider, 100, 80.0),
            point(Spider, 400, 96.0),
            point(Spider, 1600, 99.0),
            point(Lnd, 100, 10.0),
            point(Lnd, 400, 60.0),
            point(Lnd, 1600, 95.0),
            point(ShortestPath, 1600, 40.0),
        ];
        let summary = summarize(&points, &[Spider, Lnd, ShortestPath], 95.0);
        assert_eq!(summary.answers[0].min_channel_size_units, Some(400));
        assert_eq!(summary.answers[1].min_channel_size_units, Some(1600));
        assert_eq!(summary.answers[2].min_channel_size_units, None);
        assert_eq!(summary.ratios[0].ratio, Some(0.25));
        assert_eq!(summary.ratios[1].ratio, None);
        assert_eq!(summary.ratios[1].ratio_at_most, Some(0.25));
    }

    #[test]
    fn plan_covers_every_combination() {
        let jobs = plan(&SchemeKind::ALL, &[100, 200]);
        assert_eq!(jobs.len(), 8);
        assert_eq!(jobs[0].channel_size_units, 100);
    }
}
