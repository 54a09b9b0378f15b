//! Spider: congestion-controlled multipath routing.
//!
//! Each sender-receiver pair uses k edge-disjoint widest paths, each with a window: the most
//! units that may be in flight on it. Transactions wait in a per-pair sender queue (served
//! newest first by default) and are cut into MTU units that go out whenever a path's window
//! has room. Routers queue units they cannot forward yet and mark units that waited longer
//! than the marking threshold (300 ms). On each acknowledged unit the sender adjusts the
//! path's window, as the paper's simulator (spider_omnet, `hostNodeDCTCP`) does:
//!
//! - with `--spider-slow-start`, a path starts in **slow start** at the initial window: each
//!   unmarked unit adds one unit to the window (it doubles every round trip) until the
//!   window exceeds the path's capacity or a unit comes back marked. By default paths start
//!   directly in congestion avoidance at the initial window (see below);
//! - after slow start, unmarked: `w += alpha / sum(w over the pair's paths)` (additive
//!   increase: all windows of a pair together grow by about `alpha` units per round trip);
//! - marked (or refused, or timed out): `w -= beta` (fixed decrease per unit, so a path whose
//!   units are all marked shrinks by the fraction `beta` per round trip), never below
//!   `spider_window_min_units`, and slow start ends;
//! - a window never exceeds the path's **capacity**, the smallest total capacity of its
//!   channels: more could never be in flight on it at once.
//!
//! Refused and timed-out units of a transaction that still has time go back to the sender
//! queue.
//!
//! Why no slow start by default: the paper measures 800 s into each run, long after slow
//! start. With slow start, a pair whose demand is below its windows never sees a mark, so
//! its windows climb to the path capacity within the first minute and only shrink again
//! over several minutes of marks; a run measured at [60 s, 120 s) sees that transient
//! (Spider at 3200 units: 79.8% then, 95.9% once measured at [300 s, 400 s)). Starting in
//! congestion avoidance reaches the same steady state within the default warm-up (96.0% at
//! 3200 measured at [60 s, 120 s)); `--spider-slow-start` restores the paper's start for
//! long runs.

use std::collections::VecDeque;

use crate::network::NodeId;
use crate::routing::{paths, FastMap, SchemeParams};
use crate::sim::{AckInfo, Core, Outcome, PathId, QueueOrder, TxRef};

/// The constants of the window update.
struct WindowRules {
    alpha_units: f64,
    beta: f64,
    window_min_units: f64,
}

pub struct Spider {
    paths_k: usize,
    alpha_units: f64,
    beta: f64,
    window_min_units: f64,
    window_initial_units: f64,
    slow_start: bool,
    pairs: FastMap<(NodeId, NodeId), Pair>,
}

struct Pair {
    paths: Vec<PathId>,
    windows_units: Vec<f64>,
    /// Per path: the window's ceiling, the smallest channel capacity on the path.
    window_caps_units: Vec<f64>,
    /// Per path: still in slow start (one more unit per unmarked unit acknowledged).
    slow_start: Vec<bool>,
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
            slow_start: params.spider_slow_start,
            pairs: FastMap::default(),
        }
    }

    pub(crate) fn on_arrival(&mut self, core: &mut Core, tx: TxRef) {
        let Some(spec) = core.tx(tx).map(|t| t.spec) else {
            return;
        };
        let key = (spec.src, spec.dst);
        let (k, initial, slow_start) = (self.paths_k, self.window_initial_units, self.slow_start);
        let pair = self.pairs.entry(key).or_insert_with(|| {
            let found = paths::widest_disjoint_paths(core.network(), spec.src, spec.dst, k);
            let window_caps_units: Vec<f64> = found
                .iter()
                .map(|path| {
                    let network = core.network();
                    let smallest = path
                        .hops
                        .iter()
                        .map(|hop| network.channel(hop.channel).capacity_units());
                    smallest.min().unwrap_or(0) as f64
                })
                .collect();
            let paths: Vec<PathId> = found.into_iter().map(|p| core.paths_mut().add(p)).collect();
            Pair {
                windows_units: window_caps_units
                    .iter()
                    .map(|&cap| initial.min(cap))
                    .collect(),
                slow_start: vec![slow_start; paths.len()],
                window_caps_units,
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
        let rules = self.rules();
        let Some(pair) = self.pairs.get_mut(&key) else {
            return;
        };
        let index = ack.path_index as usize;
        pair.in_flight_units[index] -= ack.amount_units;
        let congested = ack.marked || ack.outcome != Outcome::Delivered;
        Self::update_window(&rules, pair, index, ack.amount_units, congested);
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

    fn rules(&self) -> WindowRules {
        WindowRules {
            alpha_units: self.alpha_units,
            beta: self.beta,
            window_min_units: self.window_min_units,
        }
    }

    /// Adjusts path `index`'s window for `units` acknowledged units, marked (`congested`)
    /// or not.
    fn update_window(
        rules: &WindowRules,
        pair: &mut Pair,
        index: usize,
        units: u64,
        congested: bool,
    ) {
        let units = units as f64;
        let cap = pair.window_caps_units[index];
        let window = if congested {
            pair.slow_start[index] = false;
            (pair.windows_units[index] - rules.beta * units).max(rules.window_min_units)
        } else if pair.slow_start[index] {
            let grown = pair.windows_units[index] + units;
            if grown > cap {
                pair.slow_start[index] = false;
            }
            grown
        } else {
            let sum: f64 = pair.windows_units.iter().sum();
            pair.windows_units[index] + rules.alpha_units * units / sum
        };
        // The floor wins over the cap on a path narrower than the minimum window.
        pair.windows_units[index] = window.min(cap).max(rules.window_min_units);
    }

    /// Sends waiting units while some path of the pair has window room.
    fn pump(&mut self, core: &mut Core, key: (NodeId, NodeId)) {
        let rules = self.rules();
        let Some(pair) = self.pairs.get_mut(&key) else {
            return;
        };
        let lifo = core.config().sender_queue_order == QueueOrder::Lifo;
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
            let rooms: Vec<u64> = (0..pair.paths.len())
                .map(|index| {
                    (pair.windows_units[index].floor() as u64)
                        .saturating_sub(pair.in_flight_units[index])
                })
                .collect();
            let shares = equal_split(&rooms, unsent, mtu);
            if shares.iter().all(|&share| share == 0) {
                return;
            }
            for (index, &share) in shares.iter().enumerate() {
                if share == 0 {
                    continue;
                }
                if !core.send(tx, pair.paths[index], index as u8, share) {
                    // The sender's own channel queue is full: back off as if marked.
                    Self::update_window(&rules, pair, index, share, true);
                    return;
                }
                pair.in_flight_units[index] += share;
                if let Some(record) = core.tx_mut(tx) {
                    record.unsent_units -= share;
                }
            }
        }
    }
}

/// Splits `amount` over paths with `room` for so many more units in flight, as the paper's
/// sender spreads a transaction's units: each unit takes a path drawn at random among those
/// with room, so on average every path with room gets an equal share until its room runs
/// out. This is that average, in whole MTUs (the transaction's last, partial unit
/// excepted): equal shares capped at each path's room, leftover units one each to the
/// earliest paths with room left. Returns zeros when no path has room for a whole MTU
/// (or for the whole amount, if smaller).
pub fn equal_split(room: &[u64], amount: u64, mtu: u64) -> Vec<u64> {
    let mtu = mtu.max(1);
    if amount < mtu {
        // A last partial unit goes whole, on the first path with room for it.
        let mut shares = vec![0; room.len()];
        if let Some(index) = room.iter().position(|&r| r >= amount) {
            shares[index] = amount;
        }
        return shares;
    }
    let blocks: Vec<u64> = room.iter().map(|r| r / mtu).collect();
    let wanted = (amount.div_ceil(mtu)).min(blocks.iter().sum());
    // Largest level L with sum(min(b, L)) <= wanted; the remainder goes one block each to
    // the earliest paths with room above L.
    let filled = |level: u64| -> u64 { blocks.iter().map(|&b| b.min(level)).sum() };
    let (mut low, mut high) = (0u64, blocks.iter().copied().max().unwrap_or(0));
    while low < high {
        let mid = low + (high - low).div_ceil(2);
        if filled(mid) <= wanted {
            low = mid;
        } else {
            high = mid - 1;
        }
    }
    let mut shares: Vec<u64> = blocks.iter().map(|&b| b.min(low)).collect();
    let mut remainder = wanted - filled(low);
    for (share, &b) in shares.iter_mut().zip(&blocks) {
        if remainder == 0 {
            break;
        }
        if b > *share {
            *share += 1;
            remainder -= 1;
        }
    }
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
    use std::collections::VecDeque;

    use super::{equal_split, Pair, Spider, WindowRules};

    const PAPER: WindowRules = WindowRules {
        alpha_units: 10.0,
        beta: 0.1,
        window_min_units: 1.0,
    };

    fn pair(windows: &[f64], caps: &[f64], slow_start: bool) -> Pair {
        Pair {
            paths: (0..windows.len() as u32).collect(),
            windows_units: windows.to_vec(),
            window_caps_units: caps.to_vec(),
            slow_start: vec![slow_start; windows.len()],
            in_flight_units: vec![0; windows.len()],
            waiting: VecDeque::new(),
        }
    }

    /// Applies acknowledgements `(path, units, marked)` in order; returns the windows.
    fn windows_after(mut pair: Pair, acks: &[(usize, u64, bool)]) -> Vec<f64> {
        for &(index, units, marked) in acks {
            Spider::update_window(&PAPER, &mut pair, index, units, marked);
        }
        pair.windows_units
    }

    #[test]
    fn window_increase_is_shared_and_decrease_is_per_unit() {
        // Unmarked: alpha / sum(w) per unit: 10 / 20 on path 0.
        assert_eq!(
            windows_after(
                pair(&[10.0, 10.0], &[100.0, 100.0], false),
                &[(0, 1, false)]
            ),
            [10.5, 10.0]
        );
        // Marked: beta per unit, never below the minimum window.
        assert_eq!(
            windows_after(
                pair(&[10.0, 10.0], &[100.0, 100.0], false),
                &[(1, 20, true)]
            ),
            [10.0, 8.0]
        );
        assert_eq!(
            windows_after(pair(&[1.5, 1.0], &[100.0, 100.0], false), &[(0, 20, true)]),
            [1.0, 1.0]
        );
        // Never above the path's capacity.
        assert_eq!(
            windows_after(
                pair(&[99.9, 1.0], &[100.0, 100.0], false),
                &[(0, 50, false)]
            ),
            [100.0, 1.0]
        );
    }

    #[test]
    fn slow_start_grows_one_unit_per_unit_until_a_mark_or_the_capacity() {
        // One more unit of window per unmarked unit acknowledged, capped at 40.
        let acks = [(0, 5, false), (0, 10, false), (0, 30, false), (0, 1, false)];
        let grown = windows_after(pair(&[1.0], &[40.0], true), &acks);
        // 1 + 5 + 10 = 16, then 46 > 40: capped, out of slow start; then +10/40 per unit.
        assert_eq!(grown, [40.0]);
        let mut marked = pair(&[1.0, 1.0], &[40.0, 40.0], true);
        Spider::update_window(&PAPER, &mut marked, 0, 3, false);
        Spider::update_window(&PAPER, &mut marked, 0, 1, true);
        assert_eq!(marked.slow_start, [false, true]);
        assert!((marked.windows_units[0] - 3.9).abs() < 1e-9);
        // Out of slow start, growth is additive again: 10 / (3.9 + 1) per unit.
        Spider::update_window(&PAPER, &mut marked, 0, 1, false);
        assert!((marked.windows_units[0] - (3.9 + 10.0 / 4.9)).abs() < 1e-9);
    }

    fn check(room: &[u64], amount: u64, mtu: u64, expected: &[u64]) {
        assert_eq!(
            equal_split(room, amount, mtu),
            expected,
            "room {room:?} amount {amount} mtu {mtu}"
        );
    }

    #[test]
    fn equal_shares_capped_at_room() {
        check(&[50, 50], 80, 1, &[40, 40]);
        // Unlike waterfilling, the path with more room does not take it all.
        check(&[100, 10], 20, 1, &[10, 10]);
        check(&[100, 10], 50, 1, &[40, 10]);
        check(&[30, 20], 80, 1, &[30, 20]);
        check(&[0, 0], 5, 1, &[0, 0]);
        check(&[10, 10, 10], 7, 1, &[3, 2, 2]);
        check(&[0, 10, 10, 10], 2, 1, &[0, 1, 1, 0]);
        check(&[12, 9], 7, 5, &[5, 2]);
        check(&[12, 9], 14, 5, &[10, 4]);
        check(&[12, 9], 3, 5, &[3, 0]);
        check(&[2, 9], 3, 5, &[0, 3]);
        check(&[2, 2], 3, 5, &[0, 0]);
    }
}
