//! Routing schemes: how a sender turns a transaction into packets on paths.
//!
//! | scheme | paths | splitting | router queues | reaction |
//! |---|---|---|---|---|
//! | [`shortest_path`] | 1 fewest-hop | none, atomic | bounded, FIFO | fail |
//! | [`lnd`] | fewest-hop avoiding pruned hops | none, atomic | none: refuse | prune the failed hop, retry (≤ 20 attempts) |
//! | [`waterfilling`] | k = 4 disjoint widest | MTU units | bounded, FIFO | probes travel each path and back; send on the paths with most probed balance minus in-flight |
//! | [`spider`] | k = 4 disjoint widest | MTU units | bounded, FIFO, marking | per-path windows: additive increase, fixed decrease on marks, capped at the path's capacity; units spread evenly over paths with room |
//!
//! As in the paper's simulator, routers queue under every scheme but LND (see
//! [`crate::sim`]): a payment short of balance waits at the router, holding the funds it
//! locked upstream, until balance returns, its transaction times out, or it meets a full
//! queue (which fails it). Atomic payments go whole; splitting schemes' units may go in
//! part, in whole MTUs. LND's routers refuse a payment short of balance at once, which is
//! what lets its sender learn of the failure and retry elsewhere.

pub mod lnd;
pub mod paths;
pub mod shortest_path;
pub mod spider;
pub mod waterfilling;

use serde::Serialize;

use crate::sim::{AckInfo, Core, TxRef};

/// The four schemes the Spider paper compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum SchemeKind {
    Spider,
    Waterfilling,
    Lnd,
    ShortestPath,
}

impl SchemeKind {
    pub const ALL: [SchemeKind; 4] = [
        SchemeKind::Spider,
        SchemeKind::Waterfilling,
        SchemeKind::Lnd,
        SchemeKind::ShortestPath,
    ];

    /// Name as in the paper's data file.
    pub fn name(self) -> &'static str {
        match self {
            SchemeKind::Spider => "spider",
            SchemeKind::Waterfilling => "waterfilling",
            SchemeKind::Lnd => "lnd",
            SchemeKind::ShortestPath => "shortest_path",
        }
    }

    /// Whether transactions are cut into units that routers may forward in part.
    pub fn splits(self) -> bool {
        matches!(self, SchemeKind::Spider | SchemeKind::Waterfilling)
    }

    /// Whether routers queue a payment they cannot forward yet. The paper's simulator gives
    /// its LND baseline routers without queues (a hop short of balance fails the attempt at
    /// once, so the sender can retry) and every other scheme a 12,000-unit queue.
    pub fn routers_queue(self) -> bool {
        self != SchemeKind::Lnd
    }
}

/// Scheme constants. Defaults follow the paper where it states them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SchemeParams {
    /// Paths per sender-receiver pair for waterfilling and Spider.
    pub paths_k: usize,
    /// LND: attempts per transaction, first one included.
    pub lnd_attempts_max: u32,
    /// LND: how long a hop that failed is left out of path finding.
    pub lnd_prune_ms: u64,
    /// Spider: window growth, spread over a window's worth of unmarked acknowledgements.
    pub spider_alpha_units: f64,
    /// Spider: window decrease per marked unit acknowledged.
    pub spider_beta: f64,
    pub spider_window_min_units: f64,
    pub spider_window_initial_units: f64,
    /// Spider: paths start in slow start (the paper's simulator) rather than directly in
    /// congestion avoidance.
    pub spider_slow_start: bool,
}

impl Default for SchemeParams {
    fn default() -> Self {
        SchemeParams {
            paths_k: 4,
            lnd_attempts_max: 20,
            lnd_prune_ms: 5_000,
            spider_alpha_units: 10.0,
            spider_beta: 0.1,
            spider_window_min_units: 1.0,
            spider_window_initial_units: 1.0,
            spider_slow_start: false,
        }
    }
}

/// Per-scheme sender state, dispatched by the event loop.
pub(crate) enum SchemeState {
    ShortestPath(shortest_path::ShortestPath),
    Lnd(lnd::Lnd),
    Waterfilling(waterfilling::Waterfilling),
    Spider(spider::Spider),
}

impl SchemeState {
    pub(crate) fn new(kind: SchemeKind, params: &SchemeParams) -> Self {
        match kind {
            SchemeKind::ShortestPath => SchemeState::ShortestPath(Default::default()),
            SchemeKind::Lnd => SchemeState::Lnd(lnd::Lnd::new(params)),
            SchemeKind::Waterfilling => {
                SchemeState::Waterfilling(waterfilling::Waterfilling::new(params))
            }
            SchemeKind::Spider => SchemeState::Spider(spider::Spider::new(params)),
        }
    }

    pub(crate) fn on_arrival(&mut self, core: &mut Core, tx: TxRef) {
        match self {
            SchemeState::ShortestPath(s) => s.on_arrival(core, tx),
            SchemeState::Lnd(s) => s.on_arrival(core, tx),
            SchemeState::Waterfilling(s) => s.on_arrival(core, tx),
            SchemeState::Spider(s) => s.on_arrival(core, tx),
        }
    }

    pub(crate) fn on_ack(&mut self, core: &mut Core, ack: &AckInfo) {
        match self {
            SchemeState::ShortestPath(s) => s.on_ack(core, ack),
            SchemeState::Lnd(s) => s.on_ack(core, ack),
            SchemeState::Waterfilling(s) => s.on_ack(core, ack),
            SchemeState::Spider(s) => s.on_ack(core, ack),
        }
    }

    pub(crate) fn on_timer(&mut self, core: &mut Core, token: u64) {
        match self {
            SchemeState::ShortestPath(_) | SchemeState::Lnd(_) | SchemeState::Spider(_) => {}
            SchemeState::Waterfilling(s) => s.on_timer(core, token),
        }
    }
}

/// Hasher for the small integer keys of per-pair and per-hop maps: a multiply-rotate mix,
/// several times cheaper than the default SipHash on the hot path. Maps keyed with it are
/// only looked up, never iterated, so their order cannot leak into results.
#[derive(Default, Clone, Copy)]
pub(crate) struct FastHasher(u64);

impl std::hash::Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(byte as u64);
        }
    }

    fn write_u32(&mut self, value: u32) {
        self.write_u64(value as u64);
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = (self.0.rotate_left(5) ^ value).wrapping_mul(0x51_7C_C1_B7_27_22_0A_95);
    }

    fn write_usize(&mut self, value: usize) {
        self.write_u64(value as u64);
    }
}

pub(crate) type FastMap<K, V> =
    std::collections::HashMap<K, V, std::hash::BuildHasherDefault<FastHasher>>;
