//! Route finding over the channel graph: fewest-hop paths and edge-disjoint widest paths.
//!
//! Ties are broken by the order of each node's channels in the topology, so the same
//! network always yields the same routes.

use std::collections::{BinaryHeap, VecDeque};

use crate::network::{ChannelId, Hop, Network, NodeId};
use crate::sim::Path;

/// Fewest-hop path from `src` to `dst` over hops for which `usable` holds.
pub fn shortest_path(
    network: &Network,
    src: NodeId,
    dst: NodeId,
    usable: impl Fn(Hop) -> bool,
) -> Option<Path> {
    if src == dst || src >= network.node_count() || dst >= network.node_count() {
        return None;
    }
    let mut parent: Vec<Option<(NodeId, Hop)>> = vec![None; network.node_count() as usize];
    let mut visited = vec![false; network.node_count() as usize];
    let mut frontier = VecDeque::from([src]);
    visited[src as usize] = true;
    while let Some(node) = frontier.pop_front() {
        for link in network.links(node) {
            if visited[link.neighbor as usize] || !usable(link.hop) {
                continue;
            }
            visited[link.neighbor as usize] = true;
            parent[link.neighbor as usize] = Some((node, link.hop));
            if link.neighbor == dst {
                return Some(trace(&parent, src, dst));
            }
            frontier.push_back(link.neighbor);
        }
    }
    None
}

fn trace(parent: &[Option<(NodeId, Hop)>], src: NodeId, dst: NodeId) -> Path {
    let mut nodes = vec![dst];
    let mut hops = Vec::new();
    let mut at = dst;
    while at != src {
        let Some((previous, hop)) = parent[at as usize] else {
            break;
        };
        hops.push(hop);
        nodes.push(previous);
        at = previous;
    }
    nodes.reverse();
    hops.reverse();
    Path { nodes, hops }
}

/// Largest bottleneck capacity of any path from `src` to `dst` avoiding `excluded` channels.
fn widest_bottleneck(
    network: &Network,
    src: NodeId,
    dst: NodeId,
    excluded: &[bool],
) -> Option<u64> {
    let mut best = vec![0u64; network.node_count() as usize];
    let mut heap = BinaryHeap::from([(u64::MAX, src)]);
    best[src as usize] = u64::MAX;
    while let Some((width, node)) = heap.pop() {
        if width < best[node as usize] {
            continue;
        }
        if node == dst {
            return Some(width);
        }
        for link in network.links(node) {
            if excluded[link.hop.channel as usize] {
                continue;
            }
            let through = width.min(network.channel(link.hop.channel).capacity_units());
            if through > best[link.neighbor as usize] {
                best[link.neighbor as usize] = through;
                heap.push((through, link.neighbor));
            }
        }
    }
    None
}

/// Up to `k` channel-disjoint paths, each the widest (largest smallest capacity) among the
/// remaining channels and, among equally wide ones, the one with the fewest hops. With
/// equal channel sizes this is `k` disjoint shortest paths.
pub fn widest_disjoint_paths(network: &Network, src: NodeId, dst: NodeId, k: usize) -> Vec<Path> {
    let mut excluded = vec![false; network.channels().len()];
    let mut paths = Vec::with_capacity(k);
    if src == dst {
        return paths;
    }
    while paths.len() < k {
        let Some(width) = widest_bottleneck(network, src, dst, &excluded) else {
            break;
        };
        let usable = |hop: Hop| {
            !excluded[hop.channel as usize]
                && network.channel(hop.channel).capacity_units() >= width
        };
        let Some(path) = shortest_path(network, src, dst, usable) else {
            break;
        };
        for hop in &path.hops {
            excluded[hop.channel as usize] = true;
        }
        paths.push(path);
    }
    paths
}

/// Channels of a path, for tests and diagnostics.
pub fn channels_of(path: &Path) -> Vec<ChannelId> {
    path.hops.iter().map(|hop| hop.channel).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::{Edge, Topology};

    fn network(edges: &[(u32, u32, u64)]) -> Network {
        let nodes = edges.iter().map(|e| e.0.max(e.1) + 1).max().unwrap_or(0);
        let topology = Topology::new(
            nodes,
            edges
                .iter()
                .map(|&(a, b, _)| Edge {
                    a,
                    b,
                    capacity_units: None,
                })
                .collect(),
        )
        .unwrap();
        let capacities: Vec<u64> = edges.iter().map(|e| e.2).collect();
        Network::new(&topology, &capacities).unwrap()
    }

    fn check(edges: &[(u32, u32, u64)], src: u32, dst: u32, k: usize, expected: &[&[u32]]) {
        let network = network(edges);
        let got: Vec<Vec<u32>> = widest_disjoint_paths(&network, src, dst, k)
            .into_iter()
            .map(|p| p.nodes)
            .collect();
        let expected: Vec<Vec<u32>> = expected.iter().map(|p| p.to_vec()).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn widest_disjoint_paths_known_answers() {
        // A line has one path.
        check(&[(0, 1, 100), (1, 2, 100)], 0, 2, 4, &[&[0, 1, 2]]);
        // A triangle: the direct channel first (fewer hops), then the detour.
        check(
            &[(0, 1, 100), (1, 2, 100), (0, 2, 100)],
            0,
            2,
            4,
            &[&[0, 2], &[0, 1, 2]],
        );
        // A wider detour beats a narrow direct channel.
        check(
            &[(0, 1, 500), (1, 2, 500), (0, 2, 100)],
            0,
            2,
            1,
            &[&[0, 1, 2]],
        );
        // Disconnected.
        check(&[(0, 1, 100), (2, 3, 100)], 0, 3, 4, &[]);
    }

    #[test]
    fn shortest_path_respects_exclusions() {
        let network = network(&[(0, 1, 100), (1, 2, 100), (0, 2, 100)]);
        let direct = shortest_path(&network, 0, 2, |_| true).unwrap();
        assert_eq!(channels_of(&direct), vec![2]);
        let detour = shortest_path(&network, 0, 2, |hop| hop.channel != 2).unwrap();
        assert_eq!(detour.nodes, vec![0, 1, 2]);
        assert!(shortest_path(&network, 0, 2, |hop| hop.channel == 0).is_none());
    }
}
