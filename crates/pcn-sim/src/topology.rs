//! Network shapes: who has a channel with whom, before any money is put in.
//!
//! Three sources: the Barabási–Albert and Watts–Strogatz generators the Spider paper uses
//! (`sf50` = BA(50, 8), `sw50` = WS(50, 8, 0.25)), and an edge-list file.
//!
//! # Edge-list format
//!
//! One channel per line: two node ids (non-negative integers) and an optional total channel
//! capacity in units, separated by spaces, tabs or commas. `#` starts a comment; blank lines
//! are ignored. The node count is the largest id plus one. A capacity given in the file
//! overrides `--channel-sizes` for that channel.
//!
//! ```text
//! # a triangle; the 0-2 channel is bigger
//! 0 1
//! 1 2
//! 0 2 5000
//! ```

use std::collections::HashSet;

use rand::Rng;
use serde::Serialize;

use crate::network::NodeId;

/// Node counts above this are refused: the simulator keeps per-pair state.
pub const NODES_MAX: u32 = 100_000;

/// One undirected channel of a topology.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Edge {
    pub a: NodeId,
    pub b: NodeId,
    /// Total capacity fixed by the topology source (edge-list files only).
    pub capacity_units: Option<u64>,
}

/// A simple undirected graph: no self-loops, no parallel channels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Topology {
    node_count: u32,
    edges: Vec<Edge>,
}

/// Why a topology could not be built or read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TopologyError {
    #[error("invalid generator parameters: {0}")]
    InvalidParameters(String),
    #[error("line {line}: {reason}")]
    Parse { line: usize, reason: String },
    #[error("line {line}: channel from node {node} to itself")]
    SelfLoop { line: usize, node: NodeId },
    #[error("line {line}: second channel between nodes {a} and {b}")]
    DuplicateChannel { line: usize, a: NodeId, b: NodeId },
    #[error("the topology has no channels")]
    Empty,
}

impl Topology {
    /// Builds a topology from edges, rejecting self-loops, duplicates and unknown nodes.
    /// Errors name the (1-based) position of the offending edge as its line.
    pub fn new(node_count: u32, edges: Vec<Edge>) -> Result<Self, TopologyError> {
        if edges.is_empty() {
            return Err(TopologyError::Empty);
        }
        if node_count > NODES_MAX {
            return Err(TopologyError::InvalidParameters(format!(
                "{node_count} nodes is more than the limit of {NODES_MAX}"
            )));
        }
        let mut seen = HashSet::with_capacity(edges.len());
        for (index, edge) in edges.iter().enumerate() {
            let line = index + 1;
            if edge.a == edge.b {
                return Err(TopologyError::SelfLoop { line, node: edge.a });
            }
            if edge.a >= node_count || edge.b >= node_count {
                return Err(TopologyError::Parse {
                    line,
                    reason: format!("node id out of range 0..{node_count}"),
                });
            }
            if !seen.insert((edge.a.min(edge.b), edge.a.max(edge.b))) {
                return Err(TopologyError::DuplicateChannel {
                    line,
                    a: edge.a,
                    b: edge.b,
                });
            }
        }
        Ok(Topology { node_count, edges })
    }

    pub fn node_count(&self) -> u32 {
        self.node_count
    }

    /// The sizes of the connected parts among nodes that have a channel, largest first.
    /// Nodes without any channel are not counted (no demand is drawn for them).
    pub fn component_sizes(&self) -> Vec<usize> {
        let n = self.node_count as usize;
        let mut parent: Vec<usize> = (0..n).collect();
        fn root(parent: &mut [usize], mut node: usize) -> usize {
            while parent[node] != node {
                parent[node] = parent[parent[node]];
                node = parent[node];
            }
            node
        }
        let mut has_channel = vec![false; n];
        for edge in &self.edges {
            let (a, b) = (edge.a as usize, edge.b as usize);
            has_channel[a] = true;
            has_channel[b] = true;
            let (ra, rb) = (root(&mut parent, a), root(&mut parent, b));
            parent[ra] = rb;
        }
        let mut sizes = std::collections::HashMap::new();
        for node in (0..n).filter(|&node| has_channel[node]) {
            *sizes.entry(root(&mut parent, node)).or_insert(0usize) += 1;
        }
        let mut sizes: Vec<usize> = sizes.into_values().collect();
        sizes.sort_unstable_by(|a, b| b.cmp(a));
        sizes
    }

    pub fn edges(&self) -> &[Edge] {
        &self.edges
    }

    /// Preferential attachment: starts from `m` unconnected nodes; each later node links to
    /// `m` distinct earlier nodes drawn with probability proportional to their degree (the
    /// first one links to all `m`). Gives `m * (n - m)` channels.
    pub fn barabasi_albert(n: u32, m: u32, rng: &mut impl Rng) -> Result<Self, TopologyError> {
        if m == 0 || m >= n {
            return Err(TopologyError::InvalidParameters(format!(
                "Barabási–Albert needs 1 <= m < n, got n = {n}, m = {m}"
            )));
        }
        let mut edges = Vec::with_capacity((m * (n - m)) as usize);
        // Every endpoint of every edge so far, so a uniform draw is a degree-weighted draw.
        let mut endpoints: Vec<NodeId> = Vec::with_capacity(2 * (m * (n - m)) as usize);
        let mut targets: Vec<NodeId> = (0..m).collect();
        for source in m..n {
            for &target in &targets {
                edges.push(Edge {
                    a: target,
                    b: source,
                    capacity_units: None,
                });
            }
            endpoints.extend_from_slice(&targets);
            endpoints.extend(std::iter::repeat_n(source, m as usize));
            targets.clear();
            while targets.len() < m as usize {
                let pick = endpoints[rng.gen_range(0..endpoints.len())];
                if !targets.contains(&pick) {
                    targets.push(pick);
                }
            }
        }
        Topology::new(n, edges)
    }

    /// Small world: a ring where each node links to its `k / 2` nearest neighbours on each
    /// side, then each of those links is rewired with probability `p` to a uniformly chosen
    /// node (never a self-loop or a duplicate).
    pub fn watts_strogatz(
        n: u32,
        k: u32,
        p: f64,
        rng: &mut impl Rng,
    ) -> Result<Self, TopologyError> {
        if k < 2 || k % 2 == 1 || k >= n || !(0.0..=1.0).contains(&p) {
            return Err(TopologyError::InvalidParameters(format!(
                "Watts–Strogatz needs an even k with 2 <= k < n and 0 <= p <= 1, \
                 got n = {n}, k = {k}, p = {p}"
            )));
        }
        let key = |a: NodeId, b: NodeId| (a.min(b), a.max(b));
        let mut edges = Vec::with_capacity((n * k / 2) as usize);
        let mut present = HashSet::new();
        for j in 1..=k / 2 {
            for u in 0..n {
                let v = (u + j) % n;
                edges.push(Edge {
                    a: u,
                    b: v,
                    capacity_units: None,
                });
                present.insert(key(u, v));
            }
        }
        for edge in edges.iter_mut() {
            if rng.gen::<f64>() >= p {
                continue;
            }
            let Edge { a: u, b: v, .. } = *edge;
            // A node already linked to everyone keeps its edge.
            let degree_full = (0..n)
                .filter(|&w| w != u && !present.contains(&key(u, w)))
                .count();
            if degree_full == 0 {
                continue;
            }
            let w = loop {
                let w = rng.gen_range(0..n);
                if w != u && !present.contains(&key(u, w)) {
                    break w;
                }
            };
            present.remove(&key(u, v));
            present.insert(key(u, w));
            edge.b = w;
        }
        Topology::new(n, edges)
    }

    /// Reads the edge-list format described in the module documentation.
    pub fn parse_edge_list(text: &str) -> Result<Self, TopologyError> {
        let mut edges = Vec::new();
        let mut lines_of_edges = Vec::new();
        let mut node_count: u32 = 0;
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let content = raw.split('#').next().unwrap_or("").trim();
            if content.is_empty() {
                continue;
            }
            let fields: Vec<&str> = content
                .split(|c: char| c.is_whitespace() || c == ',')
                .filter(|f| !f.is_empty())
                .collect();
            if fields.len() < 2 || fields.len() > 3 {
                return Err(TopologyError::Parse {
                    line,
                    reason: format!("expected `a b [capacity]`, found {} fields", fields.len()),
                });
            }
            let node = |text: &str| -> Result<NodeId, TopologyError> {
                let id: NodeId = text.parse().map_err(|_| TopologyError::Parse {
                    line,
                    reason: format!("node id `{text}` is not a non-negative integer"),
                })?;
                if id >= NODES_MAX {
                    return Err(TopologyError::Parse {
                        line,
                        reason: format!("node id {id} is above the limit of {NODES_MAX}"),
                    });
                }
                Ok(id)
            };
            let a = node(fields[0])?;
            let b = node(fields[1])?;
            let capacity_units = match fields.get(2) {
                None => None,
                Some(text) => match text.parse::<u64>() {
                    Ok(value) if value >= 2 => Some(value),
                    _ => {
                        return Err(TopologyError::Parse {
                            line,
                            reason: format!("capacity `{text}` is not an integer >= 2"),
                        })
                    }
                },
            };
            node_count = node_count.max(a + 1).max(b + 1);
            edges.push(Edge {
                a,
                b,
                capacity_units,
            });
            lines_of_edges.push(line);
        }
        // Re-run validation, then translate edge positions back into file line numbers.
        Topology::new(node_count, edges).map_err(|error| match error {
            TopologyError::SelfLoop { line, node } => TopologyError::SelfLoop {
                line: lines_of_edges[line - 1],
                node,
            },
            TopologyError::DuplicateChannel { line, a, b } => TopologyError::DuplicateChannel {
                line: lines_of_edges[line - 1],
                a,
                b,
            },
            other => other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn check(text: &str, expected: Result<(u32, usize), TopologyError>) {
        let got = Topology::parse_edge_list(text).map(|t| (t.node_count(), t.edges().len()));
        assert_eq!(got, expected, "input:\n{text}");
    }

    #[test]
    fn edge_list_parsing() {
        check("0 1\n1 2\n", Ok((3, 2)));
        check("# c\n\n0,1 100 # trailing\n 3\t1\n", Ok((4, 2)));
        check("", Err(TopologyError::Empty));
        check(
            "0 1\nx 2\n",
            Err(TopologyError::Parse {
                line: 2,
                reason: "node id `x` is not a non-negative integer".into(),
            }),
        );
        check(
            "0 1\n\n2 2\n",
            Err(TopologyError::SelfLoop { line: 3, node: 2 }),
        );
        check(
            "0 1\n1 0\n",
            Err(TopologyError::DuplicateChannel {
                line: 2,
                a: 1,
                b: 0,
            }),
        );
        check(
            "0 1 1\n",
            Err(TopologyError::Parse {
                line: 1,
                reason: "capacity `1` is not an integer >= 2".into(),
            }),
        );
        check(
            "0 1 2 3\n",
            Err(TopologyError::Parse {
                line: 1,
                reason: "expected `a b [capacity]`, found 4 fields".into(),
            }),
        );
    }

    #[test]
    fn generators_have_the_expected_size() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let ba = Topology::barabasi_albert(50, 8, &mut rng).unwrap();
        assert_eq!(ba.edges().len(), 8 * 42);
        let ws = Topology::watts_strogatz(50, 8, 0.25, &mut rng).unwrap();
        assert_eq!(ws.edges().len(), 200);
        assert!(Topology::barabasi_albert(5, 5, &mut rng).is_err());
        assert!(Topology::watts_strogatz(50, 7, 0.1, &mut rng).is_err());
    }
}
