//! Spider: congestion-controlled multipath routing.
//!
//! Each sender-receiver pair uses k edge-disjoint widest paths, each with a window: the most
//! units that may be in flight on it. Transactions wait in a per-pair sender queue (served
//! newest first, like the routers) and are cut into MTU units that go out whenever a path's
//! window has room. Routers queue units they cannot forward yet and mark units that waited
//! longer than the marking threshold (300 ms). On each acknowledged unit the sender adjusts
//! the path's window:
//!
//! - unmarked: `w += alpha / sum(w over the pair's paths)` (additive increase: all windows of
//!   a pair together grow by about `alpha` units per round trip);
//! - marked (or refused, or timed out): `w -= beta` (fixed decrease per unit, so a path whose
//!   units are all marked shrinks by the fraction `beta` per round trip), never below
//!   `spider_window_min_units`.
//!
//! Refused and timed-out units of a transaction that still has time go back to the sender
//! queue.

use std::collections::VecDeque;

use crate::network::NodeId;
use crate::routing::{paths, FastMap, SchemeParams};
use crate::sim::{AckInfo, Core, Outcome, PathId, QueueOrder, TxRef};

pub struct Spider {
    paths_k: usize,
    alpha_units: f64,
    beta: f64,
    window_min_units: f64,
    window_initial_units: f64,
    pairs: FastMap<(NodeId, NodeId), Pair>,
}

struct Pair {
    paths: Vec<PathId>,
    windows_units: Vec<f64>,
    in_flight_units: Vec<u64>,
    waiting: VecDeque<TxRef>,
}

impl Spider {
    pub(crate) fn new(params: &SchemeParams) -> Self {
        Spider {
            paths_k: params.paths_k.max(1),
            alpha_units: params.spider_alpha_units,
            beta: params.spider_beta,
            window_min_units: params.spider_window_min_units.max(1.0),
            window_initial_units: params
                .spider_window_initial_units
                .max(params.spider_window_min_units),
            pairs: FastMap::default(),
        }
    }

    pub(crate) fn on_arrival(&mut self, core: &mut Core, tx: TxRef) {
        let Some(spec) = core.tx(tx).map(|t| t.spec) else {
            return;
        };
        let key = (spec.src, spec.dst);
        let (k, initial) = (self.paths_k, self.window_initial_units);
        let pair = self.pairs.entry(key).or_insert_with(|| {
            let found = paths::widest_disjoint_paths(core.network(), spec.src, spec.dst, k);
            let paths: Vec<PathId> = found.into_iter().map(|p| core.paths_mut().add(p)).collect();
            Pair {
                windows_units: vec![initial; paths.len()],
                in_flight_units: vec![0; paths.len()],
                paths,
                waiting: VecDeque::new(),
            }
        });
        if pair.paths.is_empty() {
            core.give_up(tx);
            return;
        }
        pair.waiting.push_back(tx);
        if let Some(record) = core.tx_mut(tx) {
            record.in_sender_queue = true;
        }
        self.pump(core, key);
    }

    pub(crate) fn on_ack(&mut self, core: &mut Core, ack: &AckInfo) {
        let nodes = &core.paths().get(ack.path).nodes;
        let (Some(&src), Some(&dst)) = (nodes.first(), nodes.last()) else {
            return;
        };
        let key = (src, dst);
        let Some(pair) = self.pairs.get_mut(&key) else {
            return;
        };
        let index = ack.path_index as usize;
        pair.in_flight_units[index] -= ack.amount_units;
        let congested = ack.marked || ack.outcome != Outcome::Delivered;
        if congested {
            let decreased = pair.windows_units[index] - self.beta * ack.amount_units as f64;
            pair.windows_units[index] = decreased.max(self.window_min_units);
        } else {
            let sum: f64 = pair.windows_units.iter().sum();
            pair.windows_units[index] += self.alpha_units * ack.amount_units as f64 / sum;
        }
        if ack.outcome != Outcome::Delivered {
            if let Some(record) = core.tx_mut(ack.tx) {
                if !record.is_resolved() {
                    record.unsent_units += ack.amount_units;
                    if !record.in_sender_queue {
                        record.in_sender_queue = true;
                        pair.waiting.push_back(ack.tx);
                    }
                }
            }
        }
        self.pump(core, key);
    }

    /// Sends waiting units while some path of the pair has window room.
    fn pump(&mut self, core: &mut Core, key: (NodeId, NodeId)) {
        let Some(pair) = self.pairs.get_mut(&key) else {
            return;
        };
        let lifo = core.config().queue_order == QueueOrder::Lifo;
        let mtu = core.config().mtu_units;
        loop {
            let head = if lifo {
                pair.waiting.back()
            } else {
                pair.waiting.front()
            };
            let Some(&tx) = head else {
                return;
            };
            let now = core.now_us();
            let unsent = match core.tx(tx) {
                Some(t) if !t.is_resolved() && t.unsent_units > 0 && now < t.deadline_us => {
                    t.unsent_units
                }
                _ => {
                    if lifo {
                        pair.waiting.pop_back();
                    } else {
                        pair.waiting.pop_front();
                    }
                    if let Some(record) = core.tx_mut(tx) {
                        record.in_sender_queue = false;
                    }
                    continue;
                }
            };
            // The path with the most room; ties go to the earlier (wider or shorter) path.
            let mut best = 0;
            let mut best_room = 0u64;
            for index in 0..pair.paths.len() {
                let room = (pair.windows_units[index].floor() as u64)
                    .saturating_sub(pair.in_flight_units[index]);
                if room > best_room {
                    best = index;
                    best_room = room;
                }
            }
            let chunk = if unsent <= best_room {
                unsent
            } else {
                best_room - best_room % mtu
            };
            if chunk == 0 {
                return;
            }
            if !core.send(tx, pair.paths[best], best as u8, chunk) {
                // The sender's own channel queue is full: back off as if marked.
                let decreased = pair.windows_units[best] - self.beta * chunk as f64;
                pair.windows_units[best] = decreased.max(self.window_min_units);
                return;
            }
            pair.in_flight_units[best] += chunk;
            if let Some(record) = core.tx_mut(tx) {
                record.unsent_units -= chunk;
            }
        }
    }
}
