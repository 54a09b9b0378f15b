//! Shortest path: the whole amount on the one fewest-hop path, or nothing.

use crate::network::NodeId;
use crate::routing::{paths, FastMap};
use crate::sim::{AckInfo, Core, Outcome, PathId, TxRef};

#[derive(Default)]
pub struct ShortestPath {
    /// Fewest-hop path per sender-receiver pair (`None`: unreachable), found on first use.
    routes: FastMap<(NodeId, NodeId), Option<PathId>>,
}

impl ShortestPath {
    pub(crate) fn on_arrival(&mut self, core: &mut Core, tx: TxRef) {
        let Some(spec) = core.tx(tx).map(|t| t.spec) else {
            return;
        };
        let route = *self.routes.entry((spec.src, spec.dst)).or_insert_with(|| {
            let path = paths::shortest_path(core.network(), spec.src, spec.dst, |_| true)?;
            Some(core.paths_mut().add(path))
        });
        let sent = route.is_some_and(|path| core.send(tx, path, 0, spec.amount_units));
        if !sent {
            core.give_up(tx);
        }
    }

    pub(crate) fn on_ack(&mut self, core: &mut Core, ack: &AckInfo) {
        if ack.outcome != Outcome::Delivered {
            core.give_up(ack.tx);
        }
    }
}
