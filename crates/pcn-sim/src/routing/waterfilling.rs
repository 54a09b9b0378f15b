//! Waterfilling, as the paper's baseline: each pair uses k edge-disjoint widest paths and
//! learns each path's bottleneck balance from probes. A probe travels the path, reading each
//! router hop's spendable balance as it passes (hop `i` one hop delay after hop `i - 1`,
//! the first after the sender's end-host link), turns around at the receiver and brings the
//! smallest reading home a full round trip after it left; it is sent again at once while
//! the pair has traffic. So the sender's view is between half a round trip and a round trip
//! old.
//!
//! A path's available balance is its probed bottleneck minus the units the sender has in
//! flight on it (sent, not yet acknowledged). An arriving transaction is cut into MTU units;
//! each unit goes to the path with the most available balance while that is positive, which
//! fills the paths to a common water level. Units that find no available balance wait at
//! the sender, and leave slowly: as in the paper's simulator, each probe that comes home on
//! a path with available balance releases **one** waiting unit (newest transaction first,
//! like the routers' queues), sent on the path with the most available balance.
//! Acknowledgements release nothing. Sent units are ordinary packets: a hop short of balance
//! queues them at the router, where they hold the funds they locked upstream, exactly as
//! under every other scheme. Refused and timed-out units go back to the sender queue while
//! their transaction has time.

use std::collections::VecDeque;

use crate::event::TimeUs;
use crate::network::NodeId;
use crate::routing::{paths, FastMap, SchemeParams};
use crate::sim::{AckInfo, Core, Outcome, PathId, QueueOrder, TxRef};

pub struct Waterfilling {
    paths_k: usize,
    pair_index: FastMap<(NodeId, NodeId), usize>,
    pairs: Vec<Pair>,
    /// Every path's probe; a timer token is an index here.
    probes: Vec<Probe>,
}

struct Pair {
    paths: Vec<PathId>,
    /// Index in `probes` of each path's probe.
    probes: Vec<usize>,
    in_flight_units: Vec<u64>,
    /// Transactions with units still at the sender.
    waiting: VecDeque<TxRef>,
    /// Probes keep circulating until then: a transaction timeout after the last arrival.
    active_until_us: TimeUs,
    /// No probe round has completed yet: the first transactions to a new destination wait
    /// for it and then go as if they had just arrived (the paper's simulator retries them
    /// one network round trip after arrival), not one unit per probe.
    fresh: bool,
}

struct Probe {
    pair: usize,
    path_index: usize,
    /// Bottleneck brought home by the last probe, if it is current.
    bottleneck_units: Option<u64>,
    /// Smallest balance read so far by the probe under way.
    reading_units: u64,
    /// Next hop the probe under way reads; the hop count once it is on its way home.
    next_hop: usize,
    under_way: bool,
}

impl Waterfilling {
    pub(crate) fn new(params: &SchemeParams) -> Self {
        Waterfilling {
            paths_k: params.paths_k.max(1),
            pair_index: FastMap::default(),
            pairs: Vec::new(),
            probes: Vec::new(),
        }
    }

    pub(crate) fn on_arrival(&mut self, core: &mut Core, tx: TxRef) {
        let Some(spec) = core.tx(tx).map(|t| t.spec) else {
            return;
        };
        let pair = self.pair_for(core, spec.src, spec.dst);
        if self.pairs[pair].paths.is_empty() {
            core.give_up(tx);
            return;
        }
        let timeout_us = core.config().timeout_ms * crate::event::US_PER_MS;
        self.pairs[pair].active_until_us = core.now_us() + timeout_us;
        // Probes that stopped while the pair was idle carry stale news: start them again and
        // wait for them.
        for index in 0..self.pairs[pair].probes.len() {
            let probe = self.pairs[pair].probes[index];
            if !self.probes[probe].under_way {
                self.probes[probe].bottleneck_units = None;
                self.launch(core, probe);
            }
        }
        self.send_arrival(core, pair, tx);
    }

    pub(crate) fn on_ack(&mut self, core: &mut Core, ack: &AckInfo) {
        let nodes = &core.paths().get(ack.path).nodes;
        let (Some(&src), Some(&dst)) = (nodes.first(), nodes.last()) else {
            return;
        };
        let Some(&pair) = self.pair_index.get(&(src, dst)) else {
            return;
        };
        let state = &mut self.pairs[pair];
        state.in_flight_units[ack.path_index as usize] -= ack.amount_units;
        if ack.outcome == Outcome::Delivered {
            return;
        }
        // Refused or late units go back to the sender; they leave one per returning probe.
        let Some(record) = core.tx_mut(ack.tx) else {
            return;
        };
        if record.is_resolved() {
            return;
        }
        record.unsent_units += ack.amount_units;
        if !record.in_sender_queue {
            record.in_sender_queue = true;
            state.waiting.push_back(ack.tx);
        }
    }

    /// A probe reads its next hop, or comes home.
    pub(crate) fn on_timer(&mut self, core: &mut Core, token: u64) {
        let Some(probe) = self.probes.get_mut(token as usize) else {
            return;
        };
        let pair = probe.pair;
        let path = self.pairs[pair].paths[probe.path_index];
        let hops = &core.paths().get(path).hops;
        if probe.next_hop < hops.len() {
            probe.reading_units = probe
                .reading_units
                .min(core.network().balance_units(hops[probe.next_hop]));
            probe.next_hop += 1;
            let delay = Self::next_leg_us(core, probe.next_hop, hops.len());
            core.schedule_timer(token, core.now_us() + delay);
            return;
        }
        probe.bottleneck_units = Some(probe.reading_units);
        probe.under_way = false;
        let path_index = probe.path_index;
        let all_home = self.pairs[pair]
            .probes
            .iter()
            .all(|&p| self.probes[p].bottleneck_units.is_some());
        if self.pairs[pair].fresh && all_home {
            self.pairs[pair].fresh = false;
            self.send_first_arrivals(core, pair);
        } else {
            self.release_one(core, pair, path_index);
        }
        if core.now_us() < self.pairs[pair].active_until_us {
            self.launch(core, token as usize);
        }
    }

    /// Time from reading hop `next_hop - 1` to the next event: the next hop's reading, or,
    /// after the last hop, the rest of the way to the receiver (through its end-host link)
    /// and all the way back (through both end-host links).
    fn next_leg_us(core: &Core, next_hop: usize, hop_count: usize) -> TimeUs {
        let hop_delay = core.hop_delay_us();
        if next_hop < hop_count {
            hop_delay
        } else {
            (hop_count as u64 + 1) * hop_delay + 3 * core.end_host_delay_us()
        }
    }

    fn launch(&mut self, core: &mut Core, probe_index: usize) {
        let probe = &mut self.probes[probe_index];
        let path = self.pairs[probe.pair].paths[probe.path_index];
        let hops = &core.paths().get(path).hops;
        probe.under_way = true;
        let end_host_delay = core.end_host_delay_us();
        if end_host_delay > 0 {
            // The probe reads the first router hop once it has crossed the end-host link.
            probe.reading_units = u64::MAX;
            probe.next_hop = 0;
            core.schedule_timer(probe_index as u64, core.now_us() + end_host_delay);
            return;
        }
        // The sender is the first router and reads its own channel as the probe leaves.
        probe.reading_units = core.network().balance_units(hops[0]);
        probe.next_hop = 1;
        let delay = Self::next_leg_us(core, 1, hops.len());
        core.schedule_timer(probe_index as u64, core.now_us() + delay);
    }

    fn pair_for(&mut self, core: &mut Core, src: NodeId, dst: NodeId) -> usize {
        if let Some(&pair) = self.pair_index.get(&(src, dst)) {
            return pair;
        }
        let found = paths::widest_disjoint_paths(core.network(), src, dst, self.paths_k);
        let paths: Vec<PathId> = found.into_iter().map(|p| core.paths_mut().add(p)).collect();
        let pair = self.pairs.len();
        let probes = (0..paths.len())
            .map(|path_index| {
                self.probes.push(Probe {
                    pair,
                    path_index,
                    bottleneck_units: None,
                    reading_units: 0,
                    next_hop: 0,
                    under_way: false,
                });
                self.probes.len() - 1
            })
            .collect();
        self.pairs.push(Pair {
            in_flight_units: vec![0; paths.len()],
            paths,
            probes,
            waiting: VecDeque::new(),
            active_until_us: 0,
            fresh: true,
        });
        self.pair_index.insert((src, dst), pair);
        pair
    }

    /// Available balance of each of the pair's paths: probed bottleneck minus units in
    /// flight (zero until a probe has come home).
    fn available(&self, pair: usize) -> Vec<u64> {
        let state = &self.pairs[pair];
        state
            .probes
            .iter()
            .zip(&state.in_flight_units)
            .map(|(&probe, &in_flight)| {
                self.probes[probe]
                    .bottleneck_units
                    .unwrap_or(0)
                    .saturating_sub(in_flight)
            })
            .collect()
    }

    /// The first probe round of a new pair is home: its waiting transactions go as if they
    /// had just arrived, newest first (oldest first under `--queue-order fifo`).
    fn send_first_arrivals(&mut self, core: &mut Core, pair: usize) {
        let lifo = core.config().sender_queue_order == QueueOrder::Lifo;
        let mut waiting = std::mem::take(&mut self.pairs[pair].waiting);
        if lifo {
            waiting.make_contiguous().reverse();
        }
        for tx in waiting {
            self.send_arrival(core, pair, tx);
        }
        if lifo {
            self.pairs[pair].waiting.make_contiguous().reverse();
        }
    }

    /// A transaction just arrived: its units go at once wherever the water level allows;
    /// the rest wait at the sender.
    fn send_arrival(&mut self, core: &mut Core, pair: usize, tx: TxRef) {
        let mtu = core.config().mtu_units;
        let available = self.available(pair);
        let now = core.now_us();
        let unsent = core
            .tx(tx)
            .filter(|t| !t.is_resolved() && now < t.deadline_us)
            .map_or(0, |t| t.unsent_units);
        let state = &mut self.pairs[pair];
        let shares = waterfill(&available, unsent, mtu);
        let mut left = unsent;
        for (index, &share) in shares.iter().enumerate() {
            if share > 0 && core.send(tx, state.paths[index], index as u8, share) {
                state.in_flight_units[index] += share;
                left -= share;
            }
        }
        if let Some(record) = core.tx_mut(tx) {
            record.unsent_units = left;
            record.in_sender_queue = left > 0;
        }
        if left > 0 {
            state.waiting.push_back(tx);
        }
    }

    /// A probe came home on path `path_index`: if that path has balance to spare, the
    /// newest waiting transaction (oldest under `--queue-order fifo`) sends one MTU on the
    /// path with the most available balance. One unit per returning probe, as the paper's
    /// waterfilling sender releases one waiting transaction unit per probe.
    fn release_one(&mut self, core: &mut Core, pair: usize, path_index: usize) {
        let lifo = core.config().sender_queue_order == QueueOrder::Lifo;
        let mtu = core.config().mtu_units;
        let available = self.available(pair);
        if available[path_index] == 0 {
            return;
        }
        let state = &mut self.pairs[pair];
        let now = core.now_us();
        let (tx, unsent) = loop {
            let head = if lifo {
                state.waiting.back()
            } else {
                state.waiting.front()
            };
            let Some(&tx) = head else {
                return;
            };
            match core.tx(tx) {
                Some(t) if !t.is_resolved() && t.unsent_units > 0 && now < t.deadline_us => {
                    break (tx, t.unsent_units);
                }
                _ => {
                    if lifo {
                        state.waiting.pop_back();
                    } else {
                        state.waiting.pop_front();
                    }
                    if let Some(record) = core.tx_mut(tx) {
                        record.in_sender_queue = false;
                    }
                }
            }
        };
        // The first path with the most available balance.
        let mut best = path_index;
        for (index, &units) in available.iter().enumerate() {
            if units > available[best] || (units == available[best] && index < best) {
                best = index;
            }
        }
        let unit = unsent.min(mtu);
        if !core.send(tx, state.paths[best], best as u8, unit) {
            return;
        }
        state.in_flight_units[best] += unit;
        let left = unsent - unit;
        if let Some(record) = core.tx_mut(tx) {
            record.unsent_units = left;
            record.in_sender_queue = left > 0;
        }
        if left == 0 {
            if lifo {
                state.waiting.pop_back();
            } else {
                state.waiting.pop_front();
            }
        }
    }
}

/// Splits `amount` over paths with `spare` balances so that the paths with the most spare
/// are filled first and end at a common level; never more than a path's spare, in whole
/// MTUs (the last, partial unit of the transaction excepted). Returns zeros when no path
/// has a whole MTU to spare.
pub fn waterfill(spare: &[u64], amount: u64, mtu: u64) -> Vec<u64> {
    let mtu = mtu.max(1);
    let blocks: Vec<u64> = spare.iter().map(|s| s / mtu).collect();
    let wanted = amount.div_ceil(mtu);
    let total: u64 = blocks.iter().sum();
    let mut shares: Vec<u64> = if wanted >= total {
        blocks.clone()
    } else {
        // Smallest level L with sum(max(0, b - L)) <= wanted; the remainder goes one block
        // each to the fullest paths at that level.
        let above = |level: u64| -> u64 { blocks.iter().map(|&b| b.saturating_sub(level)).sum() };
        let (mut low, mut high) = (0u64, blocks.iter().copied().max().unwrap_or(0));
        while low < high {
            let mid = low + (high - low) / 2;
            if above(mid) <= wanted {
                high = mid;
            } else {
                low = mid + 1;
            }
        }
        let level = low;
        let mut shares: Vec<u64> = blocks.iter().map(|&b| b.saturating_sub(level)).collect();
        let mut remainder = wanted - above(level);
        let mut order: Vec<usize> = (0..blocks.len()).filter(|&i| blocks[i] >= level).collect();
        order.sort_by(|&a, &b| blocks[b].cmp(&blocks[a]).then(a.cmp(&b)));
        for index in order {
            if remainder == 0 {
                break;
            }
            if blocks[index] > shares[index] {
                shares[index] += 1;
                remainder -= 1;
            }
        }
        shares
    };
    for share in &mut shares {
        *share *= mtu;
    }
    // Whole MTUs may overshoot a transaction that is not a multiple of the MTU.
    let mut excess = shares.iter().sum::<u64>().saturating_sub(amount);
    for share in shares.iter_mut().rev() {
        let cut = excess.min(*share);
        *share -= cut;
        excess -= cut;
    }
    shares
}

#[cfg(test)]
mod tests {
    use super::waterfill;

    fn check(spare: &[u64], amount: u64, mtu: u64, expected: &[u64]) {
        assert_eq!(
            waterfill(spare, amount, mtu),
            expected,
            "spare {spare:?} amount {amount}"
        );
    }

    #[test]
    fn water_levels() {
        check(&[50, 50], 80, 1, &[40, 40]);
        check(&[100, 10], 50, 1, &[50, 0]);
        check(&[100, 60], 60, 1, &[50, 10]);
        check(&[30, 20], 80, 1, &[30, 20]);
        check(&[0, 0], 5, 1, &[0, 0]);
        check(&[10, 10, 10], 7, 1, &[3, 2, 2]);
        check(&[12, 9], 7, 5, &[7, 0]);
        check(&[12, 9], 14, 5, &[10, 4]);
    }
}
