//! Waterfilling: each pair uses k edge-disjoint widest paths and learns each path's
//! bottleneck balance by probing it once per round trip. A transaction is split into MTU
//! units and poured into the paths with the most spare balance first (the "water level"
//! evens out across paths). Whatever finds no spare balance waits one round trip and tries
//! again, until the transaction times out.
//!
//! A probe is modelled as a read of the path's current balances, refreshed when the last
//! reading is a round trip old; the units sent on a path since its last probe count against
//! its spare balance, as the paper's sender does.

use crate::event::TimeUs;
use crate::network::NodeId;
use crate::routing::{paths, FastMap, SchemeParams};
use crate::sim::{AckInfo, Core, Outcome, PathId, TxRef};

pub struct Waterfilling {
    paths_k: usize,
    pairs: FastMap<(NodeId, NodeId), PairPaths>,
}

struct PairPaths {
    paths: Vec<PathId>,
    probes: Vec<Probe>,
    round_trip_us: TimeUs,
}

#[derive(Clone, Copy, Default)]
struct Probe {
    bottleneck_units: u64,
    sent_since_units: u64,
    probed_at_us: Option<TimeUs>,
}

impl Waterfilling {
    pub(crate) fn new(params: &SchemeParams) -> Self {
        Waterfilling {
            paths_k: params.paths_k.max(1),
            pairs: FastMap::default(),
        }
    }

    pub(crate) fn on_arrival(&mut self, core: &mut Core, tx: TxRef) {
        self.pour(core, tx);
    }

    pub(crate) fn on_retry(&mut self, core: &mut Core, tx: TxRef) {
        self.pour(core, tx);
    }

    pub(crate) fn on_ack(&mut self, core: &mut Core, ack: &AckInfo) {
        if ack.outcome == Outcome::Delivered {
            return;
        }
        // Refused units go back to the sender and are tried again after a round trip.
        let Some(record) = core.tx_mut(ack.tx) else {
            return;
        };
        if record.is_resolved() {
            return;
        }
        record.unsent_units += ack.amount_units;
        let retry_at = core.now_us() + core.round_trip_us(ack.path);
        core.schedule_retry(ack.tx, retry_at);
    }

    fn pour(&mut self, core: &mut Core, tx: TxRef) {
        let Some(record) = core.tx(tx) else {
            return;
        };
        let (spec, unsent, deadline) = (record.spec, record.unsent_units, record.deadline_us);
        if record.is_resolved() || unsent == 0 {
            return;
        }
        let k = self.paths_k;
        let pair = self.pairs.entry((spec.src, spec.dst)).or_insert_with(|| {
            let found = paths::widest_disjoint_paths(core.network(), spec.src, spec.dst, k);
            let ids: Vec<PathId> = found.into_iter().map(|p| core.paths_mut().add(p)).collect();
            let round_trip_us = ids
                .iter()
                .map(|&p| core.round_trip_us(p))
                .max()
                .unwrap_or(0);
            PairPaths {
                probes: vec![Probe::default(); ids.len()],
                paths: ids,
                round_trip_us,
            }
        });
        if pair.paths.is_empty() {
            core.give_up(tx);
            return;
        }
        let now = core.now_us();
        for (probe, &path) in pair.probes.iter_mut().zip(&pair.paths) {
            let stale = probe
                .probed_at_us
                .is_none_or(|at| now - at >= core.round_trip_us(path));
            if stale {
                let hops = &core.paths().get(path).hops;
                probe.bottleneck_units = hops
                    .iter()
                    .map(|&hop| core.network().balance_units(hop))
                    .min()
                    .unwrap_or(0);
                probe.sent_since_units = 0;
                probe.probed_at_us = Some(now);
            }
        }
        let spare: Vec<u64> = pair
            .probes
            .iter()
            .map(|p| p.bottleneck_units.saturating_sub(p.sent_since_units))
            .collect();
        let shares = waterfill(&spare, unsent, core.config().mtu_units);
        let mut left = unsent;
        for (index, &share) in shares.iter().enumerate() {
            if share == 0 {
                continue;
            }
            if core.send(tx, pair.paths[index], index as u8, share) {
                pair.probes[index].sent_since_units += share;
                left -= share;
            }
        }
        if let Some(record) = core.tx_mut(tx) {
            record.unsent_units = left;
        }
        if left > 0 && now + pair.round_trip_us < deadline {
            core.schedule_retry(tx, now + pair.round_trip_us);
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
