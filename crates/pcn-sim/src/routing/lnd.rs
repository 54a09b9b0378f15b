//! LND-like routing, as the paper's baseline: atomic payments on the fewest-hop path that
//! avoids recently failed hops. Routers do not queue under this scheme: a hop short of
//! balance fails the attempt at once, the sender prunes that hop (for itself) and retries on
//! another path, up to `lnd_attempts_max` attempts and while the transaction has time left.
//! With nothing pruned, the first attempt takes the same path as shortest-path routing.
//!
//! Real LND also weighs fees and time locks, skips channels smaller than the amount and
//! forgets failures with a one-hour half-life; the paper's baseline (and this one) does
//! none of that: paths are fewest-hop over all channels, and a pruned hop comes back after
//! `lnd_prune_ms` (5 s, the paper's value).

use std::collections::HashMap;

use crate::event::{TimeUs, US_PER_MS};
use crate::network::{Hop, NodeId};
use crate::routing::{paths, FastMap, SchemeParams};
use crate::sim::{AckInfo, Core, Outcome, PathId, TxRef};

pub struct Lnd {
    attempts_max: u32,
    prune_us: TimeUs,
    /// Per sender: hops it leaves out of path finding, until the given time.
    pruned: FastMap<NodeId, FastMap<Hop, TimeUs>>,
    /// Paths seen so far, so repeated routes share one stored path.
    known_paths: HashMap<Vec<NodeId>, PathId>,
}

impl Lnd {
    pub(crate) fn new(params: &SchemeParams) -> Self {
        Lnd {
            attempts_max: params.lnd_attempts_max.max(1),
            prune_us: params.lnd_prune_ms * US_PER_MS,
            pruned: FastMap::default(),
            known_paths: HashMap::new(),
        }
    }

    pub(crate) fn on_arrival(&mut self, core: &mut Core, tx: TxRef) {
        self.attempt(core, tx);
    }

    pub(crate) fn on_ack(&mut self, core: &mut Core, ack: &AckInfo) {
        match ack.outcome {
            Outcome::Delivered => {}
            Outcome::Expired => core.give_up(ack.tx),
            Outcome::Failed => {
                let Some(src) = core.paths().get(ack.path).nodes.first().copied() else {
                    return;
                };
                if let Some(hop) = ack.failed_hop {
                    self.prune(src, hop, core.now_us());
                }
                self.attempt(core, ack.tx);
            }
        }
    }

    fn prune(&mut self, src: NodeId, hop: Hop, now_us: TimeUs) {
        self.pruned
            .entry(src)
            .or_default()
            .insert(hop, now_us + self.prune_us);
    }

    /// Tries paths until one is accepted by the sender's own first hop (the rest of the
    /// path answers later), or gives up.
    fn attempt(&mut self, core: &mut Core, tx: TxRef) {
        loop {
            let Some(record) = core.tx(tx) else {
                return;
            };
            let (spec, attempts) = (record.spec, record.attempts);
            if record.is_resolved() {
                return;
            }
            if attempts >= self.attempts_max || core.now_us() >= record.deadline_us {
                core.give_up(tx);
                return;
            }
            let now = core.now_us();
            let pruned = self.pruned.get(&spec.src);
            let usable = |hop: Hop| {
                pruned
                    .and_then(|p| p.get(&hop))
                    .is_none_or(|&until| until <= now)
            };
            let Some(path) = paths::shortest_path(core.network(), spec.src, spec.dst, usable)
            else {
                core.give_up(tx);
                return;
            };
            let first_hop = path.hops[0];
            let path_id = match self.known_paths.get(&path.nodes) {
                Some(&id) => id,
                None => {
                    let nodes = path.nodes.clone();
                    let id = core.paths_mut().add(path);
                    self.known_paths.insert(nodes, id);
                    id
                }
            };
            if let Some(record) = core.tx_mut(tx) {
                record.attempts += 1;
            }
            if core.send(tx, path_id, 0, spec.amount_units) {
                return;
            }
            self.prune(spec.src, first_hop, now);
        }
    }
}
