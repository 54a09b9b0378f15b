//! Who pays whom, how often, and how much.
//!
//! Demand follows the Spider paper: a **circulation** is the sum of random permutation
//! matrices plus random cycles through random subsets of the nodes (default 10 + 2), so every
//! node sends exactly as often as it receives and the demand could in principle be routed
//! forever without draining any channel. A **DAG** share mixes in one-way demand (nodes in a random order
//! pay only nodes later in the order), which no routing can sustain without on-chain
//! rebalancing. Arrivals are Poisson per sender-receiver pair, with rates scaled so the
//! average sender starts `tx_rate_per_sender` transactions per second.
//!
//! # Transaction sizes
//!
//! The paper samples sizes from a credit-card data set (mean ≈ 88, median ≈ 26,
//! p99 ≈ 1007 units). We use a log-normal with the same median and mean:
//! `median = 26`, `sigma = sqrt(2 ln(88 / 26)) ≈ 1.56`, which gives p99 ≈ 980, rounded to
//! whole units, at least 1 and at most [`TX_SIZE_MAX_UNITS`].

use std::collections::BTreeMap;

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, LogNormal};
use serde::Serialize;

use crate::event::{TimeUs, US_PER_S};
use crate::network::NodeId;

/// Largest transaction drawn; the log-normal's tail beyond it (about one in a million) is cut.
pub const TX_SIZE_MAX_UNITS: u64 = 20_000;

/// One transaction as the workload offers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct TxSpec {
    pub arrival_us: TimeUs,
    pub src: NodeId,
    pub dst: NodeId,
    pub amount_units: u64,
}

/// Why a demand could not be built.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum DemandError {
    #[error("demand needs at least 2 nodes with channels, found {0}")]
    TooFewNodes(usize),
    #[error("invalid demand parameter: {0}")]
    InvalidParameter(String),
}

/// Shape of the demand.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DemandConfig {
    /// Average transactions per second started by a sender.
    pub tx_rate_per_sender: f64,
    /// Random permutations summed into the circulation.
    pub permutations: u32,
    /// Random cycles through all nodes summed into the circulation.
    pub cycles: u32,
    /// Share of the total rate that is one-way (DAG) demand, 0 to 100.
    pub dag_pct: f64,
    pub sizes: TxSizeDistribution,
}

impl Default for DemandConfig {
    fn default() -> Self {
        DemandConfig {
            tx_rate_per_sender: 30.0,
            permutations: 10,
            cycles: 2,
            dag_pct: 0.0,
            sizes: TxSizeDistribution::CREDIT_CARD,
        }
    }
}

/// Transaction size distribution (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub enum TxSizeDistribution {
    LogNormal { median_units: f64, sigma: f64 },
    Constant { units: u64 },
}

impl TxSizeDistribution {
    pub const CREDIT_CARD: TxSizeDistribution = TxSizeDistribution::LogNormal {
        median_units: 26.0,
        sigma: 1.56,
    };
}

/// A sender-receiver pair and its Poisson rate.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct PairRate {
    pub src: NodeId,
    pub dst: NodeId,
    pub rate_per_s: f64,
}

/// Per-pair arrival rates.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DemandMatrix {
    pairs: Vec<PairRate>,
}

impl DemandMatrix {
    /// Builds the demand over `nodes` (normally every node with at least one channel).
    pub fn build(
        config: &DemandConfig,
        nodes: &[NodeId],
        rng: &mut impl Rng,
    ) -> Result<Self, DemandError> {
        if nodes.len() < 2 {
            return Err(DemandError::TooFewNodes(nodes.len()));
        }
        if !(config.tx_rate_per_sender > 0.0 && config.tx_rate_per_sender.is_finite()) {
            return Err(DemandError::InvalidParameter(format!(
                "tx rate per sender must be positive, got {}",
                config.tx_rate_per_sender
            )));
        }
        if !(0.0..=100.0).contains(&config.dag_pct) {
            return Err(DemandError::InvalidParameter(format!(
                "DAG share must be within 0..=100 %, got {}",
                config.dag_pct
            )));
        }
        if config.permutations + config.cycles == 0 && config.dag_pct < 100.0 {
            return Err(DemandError::InvalidParameter(
                "a circulation needs at least one permutation or cycle".into(),
            ));
        }
        let total_rate = config.tx_rate_per_sender * nodes.len() as f64;
        let dag_share = config.dag_pct / 100.0;
        let circulation = circulation_counts(nodes, config.permutations, config.cycles, rng);
        let dag = dag_counts(nodes, config.permutations + config.cycles, rng);
        let mut rates: BTreeMap<(NodeId, NodeId), f64> = BTreeMap::new();
        for (counts, share) in [(&circulation, 1.0 - dag_share), (&dag, dag_share)] {
            let total: u64 = counts.values().map(|&c| c as u64).sum();
            if share <= 0.0 || total == 0 {
                continue;
            }
            for (&pair, &count) in counts {
                *rates.entry(pair).or_default() += total_rate * share * count as f64 / total as f64;
            }
        }
        let pairs = rates
            .into_iter()
            .map(|((src, dst), rate_per_s)| PairRate {
                src,
                dst,
                rate_per_s,
            })
            .collect();
        Ok(DemandMatrix { pairs })
    }

    /// A demand given pair by pair (tests, custom studies).
    pub fn from_pairs(pairs: Vec<PairRate>) -> Self {
        DemandMatrix { pairs }
    }

    pub fn pairs(&self) -> &[PairRate] {
        &self.pairs
    }

    pub fn total_rate_per_s(&self) -> f64 {
        self.pairs.iter().map(|p| p.rate_per_s).sum()
    }
}

/// The paper's circulation: the sum of random permutation matrices (a node drawn to pay
/// itself is dropped) and random cycles, each through a random subset of the nodes (a random
/// length, nodes drawn with replacement, duplicates dropped). Every term pays each node as
/// much as it makes it pay, so the sum is balanced.
fn circulation_counts(
    nodes: &[NodeId],
    permutations: u32,
    cycles: u32,
    rng: &mut impl Rng,
) -> BTreeMap<(NodeId, NodeId), u32> {
    let mut counts = BTreeMap::new();
    let mut order: Vec<NodeId> = nodes.to_vec();
    for _ in 0..permutations {
        order.shuffle(rng);
        for (&src, &dst) in nodes.iter().zip(&order) {
            if src != dst {
                *counts.entry((src, dst)).or_insert(0) += 1;
            }
        }
    }
    for _ in 0..cycles {
        let length = rng.gen_range(1..=nodes.len());
        let mut cycle: Vec<NodeId> = Vec::with_capacity(length);
        for _ in 0..length {
            let node = nodes[rng.gen_range(0..nodes.len())];
            if !cycle.contains(&node) {
                cycle.push(node);
            }
        }
        if cycle.len() < 2 {
            continue;
        }
        for (index, &src) in cycle.iter().enumerate() {
            let dst = cycle[(index + 1) % cycle.len()];
            *counts.entry((src, dst)).or_insert(0) += 1;
        }
    }
    counts
}

/// One-way demand: in a random order, each node (but the last) pays a random later node,
/// `rounds` times.
fn dag_counts(
    nodes: &[NodeId],
    rounds: u32,
    rng: &mut impl Rng,
) -> BTreeMap<(NodeId, NodeId), u32> {
    let mut counts = BTreeMap::new();
    let mut order: Vec<NodeId> = nodes.to_vec();
    order.shuffle(rng);
    for _ in 0..rounds {
        for index in 0..order.len() - 1 {
            let later = rng.gen_range(index + 1..order.len());
            *counts.entry((order[index], order[later])).or_insert(0) += 1;
        }
    }
    counts
}

/// Draws the Poisson arrival stream of a demand: one merged process whose pair is chosen
/// in proportion to the pair rates, which is the same as independent processes per pair.
#[derive(Clone, Debug)]
pub struct ArrivalGenerator {
    pairs: Vec<PairRate>,
    /// Running sums of pair rates, for picking a pair by binary search.
    cumulative: Vec<f64>,
    interarrival: Option<Exp<f64>>,
    sizes: SizeSampler,
    rng: ChaCha8Rng,
    time_us: TimeUs,
}

#[derive(Clone, Copy, Debug)]
enum SizeSampler {
    LogNormal(LogNormal<f64>),
    Constant(u64),
}

impl ArrivalGenerator {
    pub fn new(
        demand: &DemandMatrix,
        sizes: TxSizeDistribution,
        rng: ChaCha8Rng,
    ) -> Result<Self, DemandError> {
        let mut cumulative = Vec::with_capacity(demand.pairs.len());
        let mut sum = 0.0;
        for pair in &demand.pairs {
            if !(pair.rate_per_s >= 0.0 && pair.rate_per_s.is_finite()) || pair.src == pair.dst {
                return Err(DemandError::InvalidParameter(format!("bad pair {pair:?}")));
            }
            sum += pair.rate_per_s;
            cumulative.push(sum);
        }
        let interarrival = if sum > 0.0 {
            Some(Exp::new(sum).map_err(|e| DemandError::InvalidParameter(e.to_string()))?)
        } else {
            None
        };
        let sizes = match sizes {
            TxSizeDistribution::LogNormal {
                median_units,
                sigma,
            } => SizeSampler::LogNormal(
                LogNormal::new(median_units.ln(), sigma)
                    .map_err(|e| DemandError::InvalidParameter(e.to_string()))?,
            ),
            TxSizeDistribution::Constant { units } => SizeSampler::Constant(units.max(1)),
        };
        Ok(ArrivalGenerator {
            pairs: demand.pairs.clone(),
            cumulative,
            interarrival,
            sizes,
            rng,
            time_us: 0,
        })
    }

    /// The next transaction, or `None` if the demand is empty.
    pub fn next_tx(&mut self) -> Option<TxSpec> {
        let interarrival = self.interarrival?;
        let total = *self.cumulative.last()?;
        let gap_s = interarrival.sample(&mut self.rng);
        // At least a microsecond apart keeps time strictly increasing.
        self.time_us += ((gap_s * US_PER_S as f64).round() as u64).max(1);
        let pick = self.rng.gen::<f64>() * total;
        let index = self
            .cumulative
            .partition_point(|&c| c <= pick)
            .min(self.pairs.len() - 1);
        let pair = self.pairs[index];
        let amount_units = match self.sizes {
            SizeSampler::LogNormal(distribution) => {
                (distribution.sample(&mut self.rng).round() as u64).clamp(1, TX_SIZE_MAX_UNITS)
            }
            SizeSampler::Constant(units) => units,
        };
        Some(TxSpec {
            arrival_us: self.time_us,
            src: pair.src,
            dst: pair.dst,
            amount_units,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn circulation_is_balanced_and_rates_match() {
        let nodes: Vec<NodeId> = (0..50).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let demand = DemandMatrix::build(&DemandConfig::default(), &nodes, &mut rng).unwrap();
        let mut out = vec![0.0; 50];
        let mut into = vec![0.0; 50];
        for pair in demand.pairs() {
            assert_ne!(pair.src, pair.dst);
            out[pair.src as usize] += pair.rate_per_s;
            into[pair.dst as usize] += pair.rate_per_s;
        }
        // Balanced node by node; 30 tx/s per sender on average.
        for node in 0..50 {
            assert!(
                (out[node] - into[node]).abs() < 1e-9,
                "node {node} sends {} and receives {}",
                out[node],
                into[node]
            );
            assert!(
                (15.0..45.0).contains(&out[node]),
                "node {node} sends {}",
                out[node]
            );
        }
        assert!((out.iter().sum::<f64>() - 50.0 * 30.0).abs() < 1e-6);
    }

    #[test]
    fn dag_share_is_imbalanced() {
        let nodes: Vec<NodeId> = (0..20).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let config = DemandConfig {
            dag_pct: 100.0,
            ..DemandConfig::default()
        };
        let demand = DemandMatrix::build(&config, &nodes, &mut rng).unwrap();
        let receivers: std::collections::BTreeSet<_> =
            demand.pairs().iter().map(|p| p.dst).collect();
        let senders: std::collections::BTreeSet<_> = demand.pairs().iter().map(|p| p.src).collect();
        assert!(senders.len() < 20 && receivers.len() < 20);
        assert!((demand.total_rate_per_s() - 600.0).abs() < 1e-6);
    }

    #[test]
    fn size_distribution_matches_the_paper_shape() {
        let demand = DemandMatrix::from_pairs(vec![PairRate {
            src: 0,
            dst: 1,
            rate_per_s: 1.0,
        }]);
        let mut generator = ArrivalGenerator::new(
            &demand,
            TxSizeDistribution::CREDIT_CARD,
            ChaCha8Rng::seed_from_u64(11),
        )
        .unwrap();
        let mut sizes: Vec<u64> = (0..200_000)
            .map(|_| generator.next_tx().unwrap().amount_units)
            .collect();
        sizes.sort_unstable();
        let mean = sizes.iter().sum::<u64>() as f64 / sizes.len() as f64;
        let median = sizes[sizes.len() / 2];
        let p99 = sizes[sizes.len() * 99 / 100];
        assert!((80.0..96.0).contains(&mean), "mean {mean}");
        assert!((24..=28).contains(&median), "median {median}");
        assert!((850..=1150).contains(&p99), "p99 {p99}");
    }
}
