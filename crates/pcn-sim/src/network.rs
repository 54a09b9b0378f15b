//! Channels and their balances: the money state of the simulated network.
//!
//! **Invariant:** for every channel, the two spendable balances plus the two amounts locked
//! in flight equal the channel's capacity, always. Every mutation re-checks it (it is three
//! additions), in release builds too: a simulator that creates or loses money answers the
//! capacity question wrongly.

use rand::Rng;
use rand_distr::{Distribution, Exp};
use serde::Serialize;

use crate::topology::Topology;

pub type NodeId = u32;
pub type ChannelId = u32;

/// The way value moves over a channel. `AtoB` spends the first end's balance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Direction {
    AtoB,
    BtoA,
}

impl Direction {
    /// Index of the paying side.
    pub fn side(self) -> usize {
        match self {
            Direction::AtoB => 0,
            Direction::BtoA => 1,
        }
    }

    pub fn reverse(self) -> Direction {
        match self {
            Direction::AtoB => Direction::BtoA,
            Direction::BtoA => Direction::AtoB,
        }
    }
}

/// A hop of a route: a channel and the direction value crosses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Hop {
    pub channel: ChannelId,
    pub direction: Direction,
}

/// Why a balance operation was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum NetworkError {
    #[error("channel {channel}: {needed} units needed, {available} spendable")]
    InsufficientBalance {
        channel: ChannelId,
        needed: u64,
        available: u64,
    },
    #[error("channel capacity must be at least 2 units, got {0}")]
    CapacityTooSmall(u64),
    #[error("{capacities} capacities given for {channels} channels")]
    CapacityCountMismatch { capacities: usize, channels: usize },
}

/// A bidirectional payment channel.
#[derive(Clone, Debug, Serialize)]
pub struct Channel {
    ends: [NodeId; 2],
    capacity_units: u64,
    /// Spendable by `ends[i]`.
    balance_units: [u64; 2],
    /// Locked by `ends[i]` for payments towards the other end, not yet settled or refunded.
    in_flight_units: [u64; 2],
}

impl Channel {
    /// Opens a channel with its capacity split half per side (the odd unit goes to `b`).
    pub fn new(a: NodeId, b: NodeId, capacity_units: u64) -> Result<Self, NetworkError> {
        if capacity_units < 2 {
            return Err(NetworkError::CapacityTooSmall(capacity_units));
        }
        let half = capacity_units / 2;
        Ok(Channel {
            ends: [a, b],
            capacity_units,
            balance_units: [half, capacity_units - half],
            in_flight_units: [0, 0],
        })
    }

    pub fn ends(&self) -> [NodeId; 2] {
        self.ends
    }

    pub fn capacity_units(&self) -> u64 {
        self.capacity_units
    }

    /// What the paying side of `direction` can spend now.
    pub fn balance_units(&self, direction: Direction) -> u64 {
        self.balance_units[direction.side()]
    }

    /// What the paying side of `direction` has locked in flight.
    pub fn in_flight_units(&self, direction: Direction) -> u64 {
        self.in_flight_units[direction.side()]
    }

    pub fn is_conserved(&self) -> bool {
        let total = self.balance_units[0] as u128
            + self.balance_units[1] as u128
            + self.in_flight_units[0] as u128
            + self.in_flight_units[1] as u128;
        total == self.capacity_units as u128
    }

    fn assert_conserved(&self) {
        assert!(
            self.is_conserved(),
            "funds not conserved on channel {self:?}"
        );
    }
}

/// A neighbour as seen from one node.
#[derive(Clone, Copy, Debug)]
pub struct Link {
    pub neighbor: NodeId,
    pub hop: Hop,
}

/// How channel capacities are drawn around the sweep's channel size `S`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum CapacityDistribution {
    /// Every channel holds exactly `S`.
    Equal,
    /// Uniform between `S / 2` and `3 S / 2`.
    Uniform,
    /// Exponential with mean `S` (at least 2 units): a few big channels, many small ones.
    Exponential,
}

impl CapacityDistribution {
    /// One capacity per channel of `topology`; channels with a capacity in the topology keep it.
    pub fn draw(self, topology: &Topology, size_units: u64, rng: &mut impl Rng) -> Vec<u64> {
        let exp = Exp::new(1.0).ok();
        topology
            .edges()
            .iter()
            .map(|edge| {
                // Draw for every edge, used or not, so one edge's override does not shift the
                // random stream of the others.
                let drawn = match self {
                    CapacityDistribution::Equal => size_units,
                    CapacityDistribution::Uniform => {
                        rng.gen_range(size_units / 2..=size_units + size_units / 2)
                    }
                    CapacityDistribution::Exponential => match exp {
                        Some(exp) => (exp.sample(rng) * size_units as f64).round() as u64,
                        None => size_units,
                    },
                };
                edge.capacity_units.unwrap_or(drawn.max(2))
            })
            .collect()
    }
}

/// All channels, with an adjacency index for route finding.
#[derive(Clone, Debug)]
pub struct Network {
    node_count: u32,
    channels: Vec<Channel>,
    links: Vec<Vec<Link>>,
}

impl Network {
    /// Opens one channel per topology edge with the given total capacities.
    pub fn new(topology: &Topology, capacities_units: &[u64]) -> Result<Self, NetworkError> {
        if capacities_units.len() != topology.edges().len() {
            return Err(NetworkError::CapacityCountMismatch {
                capacities: capacities_units.len(),
                channels: topology.edges().len(),
            });
        }
        let mut channels = Vec::with_capacity(capacities_units.len());
        let mut links = vec![Vec::new(); topology.node_count() as usize];
        for (index, (edge, &capacity)) in topology.edges().iter().zip(capacities_units).enumerate()
        {
            let channel = index as ChannelId;
            channels.push(Channel::new(edge.a, edge.b, capacity)?);
            links[edge.a as usize].push(Link {
                neighbor: edge.b,
                hop: Hop {
                    channel,
                    direction: Direction::AtoB,
                },
            });
            links[edge.b as usize].push(Link {
                neighbor: edge.a,
                hop: Hop {
                    channel,
                    direction: Direction::BtoA,
                },
            });
        }
        Ok(Network {
            node_count: topology.node_count(),
            channels,
            links,
        })
    }

    pub fn node_count(&self) -> u32 {
        self.node_count
    }

    pub fn channels(&self) -> &[Channel] {
        &self.channels
    }

    pub fn channel(&self, channel: ChannelId) -> &Channel {
        &self.channels[channel as usize]
    }

    /// Channels of `node`, in topology order (route finding relies on this order for
    /// determinism).
    pub fn links(&self, node: NodeId) -> &[Link] {
        &self.links[node as usize]
    }

    pub fn balance_units(&self, hop: Hop) -> u64 {
        self.channels[hop.channel as usize].balance_units(hop.direction)
    }

    /// Locks `amount` of the paying side's balance for a payment crossing `hop`.
    pub fn lock(&mut self, hop: Hop, amount: u64) -> Result<(), NetworkError> {
        let channel = &mut self.channels[hop.channel as usize];
        let side = hop.direction.side();
        let available = channel.balance_units[side];
        if available < amount {
            return Err(NetworkError::InsufficientBalance {
                channel: hop.channel,
                needed: amount,
                available,
            });
        }
        channel.balance_units[side] = available - amount;
        channel.in_flight_units[side] += amount;
        channel.assert_conserved();
        Ok(())
    }

    /// The payment crossing `hop` completed: the locked amount now belongs to the receiving side.
    pub fn settle(&mut self, hop: Hop, amount: u64) {
        let channel = &mut self.channels[hop.channel as usize];
        let side = hop.direction.side();
        assert!(
            channel.in_flight_units[side] >= amount,
            "settling more than is in flight"
        );
        channel.in_flight_units[side] -= amount;
        channel.balance_units[1 - side] += amount;
        channel.assert_conserved();
    }

    /// The payment crossing `hop` failed: the locked amount returns to the paying side.
    pub fn refund(&mut self, hop: Hop, amount: u64) {
        let channel = &mut self.channels[hop.channel as usize];
        let side = hop.direction.side();
        assert!(
            channel.in_flight_units[side] >= amount,
            "refunding more than is in flight"
        );
        channel.in_flight_units[side] -= amount;
        channel.balance_units[side] += amount;
        channel.assert_conserved();
    }

    /// Whether every channel conserves its funds (tests call it after every event).
    pub fn is_conserved(&self) -> bool {
        self.channels.iter().all(Channel::is_conserved)
    }

    /// Total units locked in flight over all channels.
    pub fn in_flight_units(&self) -> u64 {
        self.channels
            .iter()
            .map(|c| c.in_flight_units[0] + c.in_flight_units[1])
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::Edge;

    fn line() -> Network {
        let topology = Topology::new(
            3,
            vec![
                Edge {
                    a: 0,
                    b: 1,
                    capacity_units: None,
                },
                Edge {
                    a: 1,
                    b: 2,
                    capacity_units: None,
                },
            ],
        )
        .unwrap();
        Network::new(&topology, &[101, 100]).unwrap()
    }

    #[test]
    fn capacity_is_split_half_per_side() {
        let network = line();
        assert_eq!(network.channel(0).balance_units(Direction::AtoB), 50);
        assert_eq!(network.channel(0).balance_units(Direction::BtoA), 51);
        assert_eq!(network.channel(1).balance_units(Direction::AtoB), 50);
    }

    #[test]
    fn lock_settle_refund_conserve_funds() {
        let mut network = line();
        let hop = Hop {
            channel: 0,
            direction: Direction::AtoB,
        };
        network.lock(hop, 30).unwrap();
        assert_eq!(network.balance_units(hop), 20);
        assert_eq!(network.in_flight_units(), 30);
        network.settle(hop, 10);
        network.refund(hop, 20);
        assert_eq!(network.balance_units(hop), 40);
        assert_eq!(
            network.balance_units(Hop {
                channel: 0,
                direction: Direction::BtoA
            }),
            61
        );
        assert_eq!(network.in_flight_units(), 0);
        assert!(network.is_conserved());
        assert_eq!(
            network.lock(hop, 41),
            Err(NetworkError::InsufficientBalance {
                channel: 0,
                needed: 41,
                available: 40
            })
        );
    }
}
