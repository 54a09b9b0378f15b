//! The event loop: transactions arrive, routing schemes cut them into packets, packets move
//! hop by hop, and acknowledgements settle or refund each hop on the way back.
//!
//! # Life of a packet
//!
//! A packet is some units of one transaction on one path. At node `j` it needs the paying
//! balance of hop `j`; forwarding locks that much (it is "in flight") and the packet reaches
//! node `j + 1` one hop delay later. At the receiver an acknowledgement travels back; as it
//! reaches each upstream node, that node's hop settles (the locked units now belong to the
//! downstream side). So a hop's funds are locked for about one round trip from the node that
//! forwarded to the receiver and back. A packet that cannot go on (full queue, timeout) turns
//! into a failure acknowledgement that refunds each locked hop on its way back.
//!
//! Routers queue packets they cannot forward yet, per channel direction (bounded, FIFO by
//! default), under every scheme but LND, as the paper's simulator does (its LND routers
//! refuse at once, which is what lets the sender retry elsewhere): a payment short of balance
//! waits, holding the funds it locked upstream, until balance returns, its transaction times
//! out, or the queue is full when it arrives. When balance grows a router forwards the head
//! of the queue; a splitting scheme's packet may go out in part, as many whole MTUs as fit,
//! while an atomic payment goes whole or waits (and blocks the queue behind it). Spider's
//! routers also mark packets that waited longer than the marking threshold.
//!
//! **Architecture invariant:** nothing here reads a clock, touches a file or prints. A run is
//! a pure function of its inputs; the caller drives it with [`Simulation::step`] or
//! [`Simulation::run_until`].

use std::collections::VecDeque;

use serde::Serialize;

use crate::demand::{ArrivalGenerator, TxSpec};
use crate::event::{EventQueue, TimeUs, US_PER_MS};
use crate::metrics::{MetricsCollector, RunMetrics};
use crate::network::{Hop, Network, NodeId};
use crate::routing::{SchemeKind, SchemeParams, SchemeState};

/// Order in which a queue (a router's channel direction, or a sender's per-pair queue) is
/// served.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum QueueOrder {
    /// Newest first: under overload the fresh transactions, which can still meet their
    /// deadline, go before the stale ones (the senders' default).
    Lifo,
    /// Oldest first (the routers' default: what the paper's simulator does, see
    /// [`SimConfig::paper`]).
    Fifo,
}

/// Knobs of one simulation run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SimConfig {
    pub scheme: SchemeKind,
    pub scheme_params: SchemeParams,
    /// Propagation delay of every hop, one way.
    pub hop_delay_ms: u64,
    /// Senders and receivers reach their routers over an end-host link of one more hop
    /// delay with ample funds, as in the paper's simulator: every payment travels two more
    /// hops each way, so the router hops stay locked one more round trip of the end-host
    /// link, and the sender hears back two of them later.
    pub end_hosts: bool,
    /// A transaction not fully delivered this long after it arrived has failed.
    pub timeout_ms: u64,
    /// Smallest indivisible amount a splitting scheme sends or a router forwards.
    pub mtu_units: u64,
    /// A router refuses packets for a channel direction whose queue already holds this many
    /// units.
    pub queue_capacity_units: u64,
    /// Service order of the router queues.
    pub queue_order: QueueOrder,
    /// Service order of Spider's and waterfilling's per-pair sender queues.
    pub sender_queue_order: QueueOrder,
    /// Spider routers mark packets that waited in a queue longer than this.
    pub mark_threshold_ms: u64,
    /// Transactions arriving before this are not measured (warm-up).
    pub warmup_ms: u64,
    /// Arrivals stop here; the run then drains until every transaction is resolved.
    pub duration_ms: u64,
}

impl SimConfig {
    /// The paper's settings for `scheme`, measuring arrivals in `[warmup_ms, duration_ms)`.
    pub fn paper(scheme: SchemeKind, warmup_ms: u64, duration_ms: u64) -> Self {
        SimConfig {
            scheme,
            scheme_params: SchemeParams::default(),
            hop_delay_ms: 30,
            end_hosts: true,
            timeout_ms: 5_000,
            mtu_units: 1,
            queue_capacity_units: 12_000,
            // The paper's runs configure "LIFO", but its routers keep their queues as
            // `std::push_heap`/`pop_heap` heaps ordered by a "later arrival is smaller"
            // comparator, and a heap pops its largest element: the oldest. Its senders'
            // queues are ordered sets whose first element is the newest: truly LIFO.
            queue_order: QueueOrder::Fifo,
            sender_queue_order: QueueOrder::Lifo,
            mark_threshold_ms: 300,
            warmup_ms,
            duration_ms,
        }
    }
}

/// Why a simulation could not start.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum SimError {
    #[error("invalid simulation setting: {0}")]
    InvalidConfig(String),
}

/// Where transactions come from.
#[derive(Clone, Debug)]
pub enum ArrivalSource {
    Generated(Box<ArrivalGenerator>),
    /// Explicit transactions, in arrival order (tests, replays).
    Scripted(VecDeque<TxSpec>),
}

impl ArrivalSource {
    fn next_tx(&mut self) -> Option<TxSpec> {
        match self {
            ArrivalSource::Generated(generator) => generator.next_tx(),
            ArrivalSource::Scripted(list) => list.pop_front(),
        }
    }
}

/// A slot index plus a generation, so a handle to a freed and reused slot is detected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SlotRef {
    index: u32,
    generation: u32,
}

/// Handle to a transaction in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TxRef(SlotRef);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct PacketRef(SlotRef);

struct Slab<T> {
    slots: Vec<(u32, Option<T>)>,
    free: Vec<u32>,
}

impl<T> Slab<T> {
    fn new() -> Self {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
        }
    }

    fn insert(&mut self, value: T) -> SlotRef {
        if let Some(index) = self.free.pop() {
            let slot = &mut self.slots[index as usize];
            slot.1 = Some(value);
            SlotRef {
                index,
                generation: slot.0,
            }
        } else {
            self.slots.push((0, Some(value)));
            SlotRef {
                index: (self.slots.len() - 1) as u32,
                generation: 0,
            }
        }
    }

    fn get(&self, at: SlotRef) -> Option<&T> {
        match self.slots.get(at.index as usize) {
            Some((generation, Some(value))) if *generation == at.generation => Some(value),
            _ => None,
        }
    }

    fn get_mut(&mut self, at: SlotRef) -> Option<&mut T> {
        match self.slots.get_mut(at.index as usize) {
            Some((generation, Some(value))) if *generation == at.generation => Some(value),
            _ => None,
        }
    }

    fn remove(&mut self, at: SlotRef) -> Option<T> {
        let slot = self.slots.get_mut(at.index as usize)?;
        if slot.0 != at.generation || slot.1.is_none() {
            return None;
        }
        slot.0 = slot.0.wrapping_add(1);
        self.free.push(at.index);
        slot.1.take()
    }

    fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }
}

/// A transaction's state as the sender and the metrics see it.
#[derive(Clone, Debug)]
pub struct Tx {
    pub spec: TxSpec,
    pub deadline_us: TimeUs,
    /// Units that reached the receiver before the deadline.
    pub delivered_units: u64,
    /// Units the sender still holds (splitting schemes hand them out over time).
    pub unsent_units: u64,
    /// Attempts made so far (atomic schemes).
    pub attempts: u32,
    /// Whether the sender's queue currently holds this transaction (Spider).
    pub in_sender_queue: bool,
    /// Its packets travelling, queued or returning; at the deadline the queued ones expire.
    packets: Vec<PacketRef>,
    resolved: bool,
    measured: bool,
}

impl Tx {
    /// Succeeded or failed for good: nothing more will be delivered.
    pub fn is_resolved(&self) -> bool {
        self.resolved
    }
}

/// How a packet's journey ended, as its acknowledgement tells the sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Outcome {
    Delivered,
    /// A hop's queue was full (or, under LND, the hop lacked balance).
    Failed,
    /// The transaction timed out before the packet got through.
    Expired,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PacketState {
    Travelling,
    Queued,
    Returning(Outcome),
}

#[derive(Clone, Debug)]
struct Packet {
    tx: TxRef,
    path: PathId,
    path_index: u8,
    amount_units: u64,
    /// Node index along the path where the packet (or its acknowledgement) is.
    position: u16,
    /// Hops `0..frontier` of the path hold this packet's funds.
    frontier: u16,
    state: PacketState,
    queued_since_us: TimeUs,
    marked: bool,
}

/// What the sender learns when an acknowledgement comes home.
#[derive(Clone, Copy, Debug)]
pub struct AckInfo {
    pub tx: TxRef,
    pub path: PathId,
    pub path_index: u8,
    pub amount_units: u64,
    pub outcome: Outcome,
    /// A router queued this packet past the marking threshold.
    pub marked: bool,
    /// The hop that refused the packet, when the outcome is `Failed`.
    pub failed_hop: Option<Hop>,
}

pub type PathId = u32;

/// A loop-free route: its nodes and the hops between them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Path {
    pub nodes: Vec<NodeId>,
    pub hops: Vec<Hop>,
}

/// All routes in use, referred to by index.
#[derive(Default)]
pub struct PathStore {
    paths: Vec<Path>,
}

impl PathStore {
    pub fn add(&mut self, path: Path) -> PathId {
        self.paths.push(path);
        (self.paths.len() - 1) as PathId
    }

    pub fn get(&self, id: PathId) -> &Path {
        &self.paths[id as usize]
    }
}

#[derive(Clone, Copy, Debug)]
enum Event {
    Arrival,
    Deadline(TxRef),
    /// A packet reaches the next node of its path.
    Reach(PacketRef),
    /// A packet leaves the sender's end-host link and is offered to the first router hop.
    Enter(PacketRef),
    /// A packet crosses the receiver's end-host link and reaches the receiver.
    Arrive(PacketRef),
    /// An acknowledgement crosses the sender's end-host link and reaches the sender.
    AckHome(PacketRef),
    /// An acknowledgement reaches the node at the packet's position.
    AckReach(PacketRef),
    /// A timer the routing scheme set, with its own token.
    Timer(u64),
}

#[derive(Default)]
struct RouterQueue {
    entries: VecDeque<PacketRef>,
    queued_units: u64,
    /// Entries still queued; the others are stale and skipped when met.
    live: u32,
}

/// Below this many entries a queue is never compacted.
const QUEUE_COMPACT_MIN_ENTRIES: usize = 64;

/// Router behaviour implied by the scheme.
#[derive(Clone, Copy, Debug)]
struct RouterPolicy {
    /// Packets may be forwarded in part, in whole MTUs (Spider, waterfilling); atomic
    /// payments go whole or wait.
    splitting: bool,
    /// Queue packets short of balance (every scheme but LND) rather than refuse them.
    queueing: bool,
    mark_threshold_us: Option<TimeUs>,
}

/// Everything a routing scheme may look at or act on.
pub struct Core {
    config: SimConfig,
    policy: RouterPolicy,
    now_us: TimeUs,
    hop_delay_us: TimeUs,
    /// One-way delay of the end-host links; zero without end hosts.
    end_host_delay_us: TimeUs,
    network: Network,
    paths: PathStore,
    events: EventQueue<Event>,
    txs: Slab<Tx>,
    packets: Slab<Packet>,
    queues: Vec<[RouterQueue; 2]>,
    metrics: MetricsCollector,
    arrivals: ArrivalSource,
    next_arrival: Option<TxSpec>,
    events_processed: u64,
    diagnostics: Diagnostics,
}

/// One simulation run.
pub struct Simulation {
    core: Core,
    scheme: SchemeState,
}

/// A finished (or interrupted) run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunReport {
    pub scheme: SchemeKind,
    pub metrics: RunMetrics,
    pub diagnostics: Diagnostics,
    pub events: u64,
    pub simulated_ms: u64,
}

/// Where things went wrong, over the whole run (warm-up included): explains the metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Diagnostics {
    /// Failed transactions that still had units at the sender when they timed out.
    pub failed_with_units_at_sender: u64,
    /// Failed transactions whose units had all left the sender.
    pub failed_in_network: u64,
    /// Packets refused by a hop: its queue was full (or, under LND, it lacked balance).
    pub packets_refused: u64,
    /// Packets whose transaction timed out while they waited in a router queue.
    pub packets_expired_in_queue: u64,
    /// Packets that reached a router or the receiver after their transaction timed out.
    pub packets_late: u64,
    /// Packets marked for queueing longer than the threshold (Spider).
    pub packets_marked: u64,
    /// Packets that waited in a router queue at all.
    pub packets_queued: u64,
}

impl Simulation {
    pub fn new(
        network: Network,
        mut arrivals: ArrivalSource,
        config: SimConfig,
    ) -> Result<Self, SimError> {
        if config.mtu_units == 0 {
            return Err(SimError::InvalidConfig(
                "MTU must be at least 1 unit".into(),
            ));
        }
        if config.timeout_ms == 0 {
            return Err(SimError::InvalidConfig("timeout must be positive".into()));
        }
        if config.warmup_ms >= config.duration_ms {
            return Err(SimError::InvalidConfig(format!(
                "warm-up ({} ms) must end before the run does ({} ms)",
                config.warmup_ms, config.duration_ms
            )));
        }
        let policy = RouterPolicy {
            splitting: config.scheme.splits(),
            queueing: config.scheme.routers_queue(),
            mark_threshold_us: (config.scheme == SchemeKind::Spider)
                .then_some(config.mark_threshold_ms * US_PER_MS),
        };
        let channel_count = network.channels().len();
        let mut events = EventQueue::default();
        let duration_us = config.duration_ms * US_PER_MS;
        let next_arrival = arrivals.next_tx().filter(|tx| tx.arrival_us < duration_us);
        if let Some(tx) = next_arrival {
            events.push(tx.arrival_us, Event::Arrival);
        }
        let scheme = SchemeState::new(config.scheme, &config.scheme_params);
        let core = Core {
            policy,
            now_us: 0,
            hop_delay_us: config.hop_delay_ms * US_PER_MS,
            end_host_delay_us: if config.end_hosts {
                config.hop_delay_ms * US_PER_MS
            } else {
                0
            },
            network,
            paths: PathStore::default(),
            events,
            txs: Slab::new(),
            packets: Slab::new(),
            queues: (0..channel_count).map(|_| Default::default()).collect(),
            metrics: MetricsCollector::new(config.warmup_ms * US_PER_MS, duration_us),
            arrivals,
            next_arrival,
            events_processed: 0,
            diagnostics: Diagnostics::default(),
            config,
        };
        Ok(Simulation { core, scheme })
    }

    /// Processes the next event; `false` once nothing is left to do.
    pub fn step(&mut self) -> bool {
        let Some((time_us, event)) = self.core.events.pop() else {
            return false;
        };
        debug_assert!(time_us >= self.core.now_us, "time went backwards");
        self.core.now_us = time_us;
        self.core.events_processed += 1;
        match event {
            Event::Arrival => {
                if let Some(tx) = self.core.admit_arrival() {
                    self.scheme.on_arrival(&mut self.core, tx);
                    self.core.release_if_done(tx);
                }
            }
            Event::Deadline(tx) => self.core.on_deadline(tx),
            Event::Reach(packet) => self.core.on_reach(packet),
            Event::Enter(packet) => self.core.on_enter(packet),
            Event::Arrive(packet) => self.core.on_arrive(packet),
            Event::AckReach(packet) => {
                if let Some(info) = self.core.on_ack_reach(packet) {
                    self.scheme.on_ack(&mut self.core, &info);
                    self.core.release_if_done(info.tx);
                }
            }
            Event::AckHome(packet) => {
                if let Some(info) = self.core.ack_home(packet) {
                    self.scheme.on_ack(&mut self.core, &info);
                    self.core.release_if_done(info.tx);
                }
            }
            Event::Timer(token) => self.scheme.on_timer(&mut self.core, token),
        }
        true
    }

    /// Runs every event due before `time_us`; `false` once the run is over.
    pub fn run_until(&mut self, time_us: TimeUs) -> bool {
        while let Some(next) = self.core.events.peek_time_us() {
            if next >= time_us {
                return true;
            }
            self.step();
        }
        false
    }

    /// Runs to the end and reports.
    pub fn run(mut self) -> RunReport {
        while self.step() {}
        self.report()
    }

    pub fn report(&self) -> RunReport {
        RunReport {
            scheme: self.core.config.scheme,
            metrics: self.core.metrics.summary(),
            diagnostics: self.core.diagnostics.clone(),
            events: self.core.events_processed,
            simulated_ms: self.core.now_us / US_PER_MS,
        }
    }

    pub fn network(&self) -> &Network {
        &self.core.network
    }

    pub fn now_us(&self) -> TimeUs {
        self.core.now_us
    }

    pub fn events_processed(&self) -> u64 {
        self.core.events_processed
    }

    /// Transactions not yet released (resolved ones with packets still returning included).
    pub fn live_transactions(&self) -> usize {
        self.core.txs.len()
    }

    /// Packets travelling, queued or returning.
    pub fn live_packets(&self) -> usize {
        self.core.packets.len()
    }
}

impl Core {
    pub fn now_us(&self) -> TimeUs {
        self.now_us
    }

    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    pub fn network(&self) -> &Network {
        &self.network
    }

    pub fn paths(&self) -> &PathStore {
        &self.paths
    }

    pub fn paths_mut(&mut self) -> &mut PathStore {
        &mut self.paths
    }

    /// Round-trip propagation time of a path, end-host links included.
    pub fn round_trip_us(&self, path: PathId) -> TimeUs {
        2 * self.hop_delay_us * self.paths.get(path).hops.len() as u64 + 4 * self.end_host_delay_us
    }

    pub fn tx(&self, tx: TxRef) -> Option<&Tx> {
        self.txs.get(tx.0)
    }

    pub fn tx_mut(&mut self, tx: TxRef) -> Option<&mut Tx> {
        self.txs.get_mut(tx.0)
    }

    /// Asks for `on_timer(token)` at `time_us`.
    pub fn schedule_timer(&mut self, token: u64, time_us: TimeUs) {
        self.events
            .push(time_us.max(self.now_us), Event::Timer(token));
    }

    /// One-way propagation delay of a hop.
    pub fn hop_delay_us(&self) -> TimeUs {
        self.hop_delay_us
    }

    /// One-way delay of the end-host link between a node and its router; zero without end
    /// hosts.
    pub fn end_host_delay_us(&self) -> TimeUs {
        self.end_host_delay_us
    }

    /// The sender stops trying: the transaction fails now.
    pub fn give_up(&mut self, tx: TxRef) {
        self.resolve(tx, false);
    }

    /// Hands `amount_units` of `tx` to path `path`; `false` if the sender's own first hop
    /// refused it (its queue is full, or under LND it lacks balance). With end hosts the
    /// packet first crosses the sender's end-host link, so the first router hop answers
    /// like any other: `true` now, and a failure acknowledgement if it refuses.
    pub fn send(&mut self, tx: TxRef, path: PathId, path_index: u8, amount_units: u64) -> bool {
        debug_assert!(amount_units > 0);
        if self.txs.get(tx.0).is_none() {
            return false;
        }
        let packet = PacketRef(self.packets.insert(Packet {
            tx,
            path,
            path_index,
            amount_units,
            position: 0,
            frontier: 0,
            state: PacketState::Travelling,
            queued_since_us: self.now_us,
            marked: false,
        }));
        if let Some(record) = self.txs.get_mut(tx.0) {
            record.packets.push(packet);
        }
        if self.end_host_delay_us > 0 {
            self.events
                .push(self.now_us + self.end_host_delay_us, Event::Enter(packet));
            return true;
        }
        match self.offer(packet) {
            Ok(()) => return true,
            Err(outcome) => self.count_refusal(outcome),
        }
        self.packets.remove(packet.0);
        self.forget_packet(tx, packet);
        false
    }

    fn admit_arrival(&mut self) -> Option<TxRef> {
        let spec = self.next_arrival.take()?;
        let duration_us = self.config.duration_ms * US_PER_MS;
        self.next_arrival = self
            .arrivals
            .next_tx()
            .filter(|tx| tx.arrival_us < duration_us);
        if let Some(next) = self.next_arrival {
            self.events
                .push(next.arrival_us.max(self.now_us), Event::Arrival);
        }
        let measured = self.metrics.in_window(spec.arrival_us);
        if measured {
            self.metrics.record_arrival(spec.amount_units);
        }
        let deadline_us = spec.arrival_us + self.config.timeout_ms * US_PER_MS;
        let tx = TxRef(self.txs.insert(Tx {
            spec,
            deadline_us,
            delivered_units: 0,
            unsent_units: spec.amount_units,
            attempts: 0,
            in_sender_queue: false,
            packets: Vec::new(),
            resolved: false,
            measured,
        }));
        self.events.push(deadline_us, Event::Deadline(tx));
        Some(tx)
    }

    fn resolve(&mut self, tx: TxRef, success: bool) {
        let now = self.now_us;
        let Some(record) = self.txs.get_mut(tx.0) else {
            return;
        };
        if record.resolved {
            return;
        }
        record.resolved = true;
        if !success {
            if record.unsent_units > 0 {
                self.diagnostics.failed_with_units_at_sender += 1;
            } else {
                self.diagnostics.failed_in_network += 1;
            }
        }
        if record.measured {
            let completion = success.then(|| now - record.spec.arrival_us);
            self.metrics
                .record_outcome(record.delivered_units, completion);
        }
    }

    fn release_if_done(&mut self, tx: TxRef) {
        if self
            .txs
            .get(tx.0)
            .is_some_and(|t| t.resolved && t.packets.is_empty())
        {
            self.txs.remove(tx.0);
        }
    }

    /// The transaction's time is up: it fails unless already delivered, and its packets
    /// still waiting in router queues leave them and return, refunding their hops.
    fn on_deadline(&mut self, tx: TxRef) {
        self.resolve(tx, false);
        let queued: Vec<PacketRef> = self.txs.get(tx.0).map_or(Vec::new(), |record| {
            let packets = &self.packets;
            record
                .packets
                .iter()
                .copied()
                .filter(|p| {
                    packets
                        .get(p.0)
                        .is_some_and(|r| r.state == PacketState::Queued)
                })
                .collect()
        });
        for packet in queued {
            self.expire_queued(packet);
        }
        self.release_if_done(tx);
    }

    fn forget_packet(&mut self, tx: TxRef, packet: PacketRef) {
        if let Some(record) = self.txs.get_mut(tx.0) {
            if let Some(at) = record.packets.iter().position(|&p| p == packet) {
                record.packets.swap_remove(at);
            }
        }
    }

    /// Offers a packet at its current node to the next hop. `Err` says why it cannot go on.
    fn offer(&mut self, packet: PacketRef) -> Result<(), Outcome> {
        let Some(record) = self.packets.get(packet.0) else {
            return Err(Outcome::Failed);
        };
        let (amount, tx_ref, path, position) =
            (record.amount_units, record.tx, record.path, record.position);
        let expired = self
            .txs
            .get(tx_ref.0)
            .is_none_or(|tx| tx.resolved || self.now_us >= tx.deadline_us);
        if expired {
            return Err(Outcome::Expired);
        }
        let hop = self.paths.get(path).hops[position as usize];
        let balance = self.network.balance_units(hop);
        if !self.policy.queueing {
            if balance < amount {
                return Err(Outcome::Failed);
            }
            self.forward(packet, hop);
            return Ok(());
        }
        let queue = &mut self.queues[hop.channel as usize][hop.direction.side()];
        if queue.live == 0 && balance >= amount {
            self.forward(packet, hop);
            return Ok(());
        }
        // As in the paper's routers: a queue already holding its capacity refuses; one below
        // it takes the packet whatever its size, so a queue overshoots by less than a packet.
        if queue.queued_units >= self.config.queue_capacity_units {
            return Err(Outcome::Failed);
        }
        queue.entries.push_back(packet);
        self.diagnostics.packets_queued += 1;
        queue.queued_units += amount;
        queue.live += 1;
        if let Some(record) = self.packets.get_mut(packet.0) {
            record.state = PacketState::Queued;
            record.queued_since_us = self.now_us;
        }
        self.serve_queue(hop);
        Ok(())
    }

    /// Forwards queued packets over `hop` while its balance allows. When the head does not
    /// fit, a splitting scheme's packet goes out in part (whole MTUs); an atomic payment
    /// waits, and so does everything behind it.
    fn serve_queue(&mut self, hop: Hop) {
        let lifo = self.config.queue_order == QueueOrder::Lifo;
        let mtu = self.config.mtu_units;
        loop {
            let queue = &mut self.queues[hop.channel as usize][hop.direction.side()];
            let head = if lifo {
                queue.entries.back()
            } else {
                queue.entries.front()
            };
            let Some(&packet) = head else {
                break;
            };
            let live = self
                .packets
                .get(packet.0)
                .filter(|p| p.state == PacketState::Queued);
            let Some(record) = live else {
                if lifo {
                    queue.entries.pop_back();
                } else {
                    queue.entries.pop_front();
                }
                continue;
            };
            let amount = record.amount_units;
            let balance = self.network.balance_units(hop);
            if balance >= amount {
                if lifo {
                    queue.entries.pop_back();
                } else {
                    queue.entries.pop_front();
                }
                queue.live -= 1;
                queue.queued_units -= amount;
                self.mark_if_late(packet);
                self.forward(packet, hop);
                continue;
            }
            let part = balance - balance % mtu;
            if self.policy.splitting && part > 0 {
                queue.queued_units -= part;
                let mut split = record.clone();
                split.amount_units = part;
                if let Some(original) = self.packets.get_mut(packet.0) {
                    original.amount_units -= part;
                }
                let tx = split.tx;
                let split = PacketRef(self.packets.insert(split));
                if let Some(record) = self.txs.get_mut(tx.0) {
                    record.packets.push(split);
                }
                self.mark_if_late(split);
                self.forward(split, hop);
            }
            break;
        }
        self.compact_queue(hop);
    }

    /// Drops stale entries once they dominate a queue, so queues whose far end never
    /// drains do not grow without bound.
    fn compact_queue(&mut self, hop: Hop) {
        let queue = &mut self.queues[hop.channel as usize][hop.direction.side()];
        if queue.entries.len() < QUEUE_COMPACT_MIN_ENTRIES
            || queue.entries.len() < 4 * queue.live as usize
        {
            return;
        }
        let packets = &self.packets;
        queue.entries.retain(|p| {
            packets
                .get(p.0)
                .is_some_and(|r| r.state == PacketState::Queued)
        });
        debug_assert_eq!(queue.entries.len(), queue.live as usize);
    }

    fn mark_if_late(&mut self, packet: PacketRef) {
        let Some(threshold) = self.policy.mark_threshold_us else {
            return;
        };
        let now = self.now_us;
        if let Some(record) = self.packets.get_mut(packet.0) {
            if now - record.queued_since_us > threshold && !record.marked {
                record.marked = true;
                self.diagnostics.packets_marked += 1;
            }
        }
    }

    fn forward(&mut self, packet: PacketRef, hop: Hop) {
        let Some(record) = self.packets.get_mut(packet.0) else {
            return;
        };
        // Callers checked the balance; a failure here is a simulator bug, not bad input.
        if let Err(error) = self.network.lock(hop, record.amount_units) {
            panic!("forwarding without balance: {error}");
        }
        record.state = PacketState::Travelling;
        record.frontier = record.position + 1;
        self.events
            .push(self.now_us + self.hop_delay_us, Event::Reach(packet));
    }

    fn on_reach(&mut self, packet: PacketRef) {
        let now = self.now_us;
        let Some(record) = self.packets.get_mut(packet.0) else {
            return;
        };
        record.position += 1;
        let position = record.position;
        let hops = self.paths.get(record.path).hops.len();
        if position as usize == hops {
            if self.end_host_delay_us > 0 {
                self.events
                    .push(now + self.end_host_delay_us, Event::Arrive(packet));
            } else {
                self.on_arrive(packet);
            }
            return;
        }
        if let Err(outcome) = self.offer(packet) {
            self.count_refusal(outcome);
            self.start_return(packet, outcome);
        }
    }

    /// The packet left the sender's end-host link: the first router hop takes it or not.
    fn on_enter(&mut self, packet: PacketRef) {
        if let Err(outcome) = self.offer(packet) {
            self.count_refusal(outcome);
            self.start_return(packet, outcome);
        }
    }

    /// The packet reached the receiver (through its end-host link, if any).
    fn on_arrive(&mut self, packet: PacketRef) {
        let now = self.now_us;
        let Some(record) = self.packets.get(packet.0) else {
            return;
        };
        let (tx_ref, amount) = (record.tx, record.amount_units);
        let on_time = self
            .txs
            .get(tx_ref.0)
            .is_some_and(|tx| !tx.resolved && now <= tx.deadline_us);
        let Some(tx) = self.txs.get_mut(tx_ref.0).filter(|_| on_time) else {
            self.count_refusal(Outcome::Expired);
            self.start_return(packet, Outcome::Expired);
            return;
        };
        tx.delivered_units += amount;
        debug_assert!(tx.delivered_units <= tx.spec.amount_units, "over-delivery");
        if tx.delivered_units == tx.spec.amount_units {
            self.resolve(tx_ref, true);
        }
        self.start_return(packet, Outcome::Delivered);
    }

    fn count_refusal(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Failed => self.diagnostics.packets_refused += 1,
            Outcome::Expired => self.diagnostics.packets_late += 1,
            Outcome::Delivered => {}
        }
    }

    /// Turns the packet around at its current node; at the receiver's router the
    /// acknowledgement first crosses the receiver's end-host link and back.
    fn start_return(&mut self, packet: PacketRef, outcome: Outcome) {
        let Some(record) = self.packets.get_mut(packet.0) else {
            return;
        };
        record.state = PacketState::Returning(outcome);
        let at_receiver = record.position as usize == self.paths.get(record.path).hops.len();
        if record.position == 0 {
            self.events.push(self.now_us, Event::AckReach(packet));
        } else {
            record.position -= 1;
            let delay = if at_receiver {
                self.hop_delay_us + self.end_host_delay_us
            } else {
                self.hop_delay_us
            };
            self.events
                .push(self.now_us + delay, Event::AckReach(packet));
        }
    }

    fn on_ack_reach(&mut self, packet: PacketRef) -> Option<AckInfo> {
        let record = self.packets.get(packet.0)?;
        let PacketState::Returning(outcome) = record.state else {
            return None;
        };
        let (position, amount) = (record.position, record.amount_units);
        let locked_hop = (position < record.frontier)
            .then(|| self.paths.get(record.path).hops[position as usize]);
        if let Some(hop) = locked_hop {
            if outcome == Outcome::Delivered {
                self.network.settle(hop, amount);
                self.serve_queue(Hop {
                    direction: hop.direction.reverse(),
                    ..hop
                });
            } else {
                self.network.refund(hop, amount);
                self.serve_queue(hop);
            }
        }
        if position > 0 {
            if let Some(record) = self.packets.get_mut(packet.0) {
                record.position -= 1;
            }
            self.events
                .push(self.now_us + self.hop_delay_us, Event::AckReach(packet));
            return None;
        }
        if self.end_host_delay_us > 0 {
            self.events
                .push(self.now_us + self.end_host_delay_us, Event::AckHome(packet));
            return None;
        }
        self.ack_home(packet)
    }

    /// The acknowledgement reached the sender: the scheme learns how the packet fared.
    fn ack_home(&mut self, packet: PacketRef) -> Option<AckInfo> {
        let PacketState::Returning(outcome) = self.packets.get(packet.0)?.state else {
            debug_assert!(false, "acknowledgement home for a packet not returning");
            return None;
        };
        let record = self.packets.remove(packet.0)?;
        let failed_hop = match outcome {
            Outcome::Failed => self
                .paths
                .get(record.path)
                .hops
                .get(record.frontier as usize)
                .copied(),
            _ => None,
        };
        self.forget_packet(record.tx, packet);
        Some(AckInfo {
            tx: record.tx,
            path: record.path,
            path_index: record.path_index,
            amount_units: record.amount_units,
            outcome,
            marked: record.marked,
            failed_hop,
        })
    }

    fn expire_queued(&mut self, packet: PacketRef) {
        let Some(record) = self.packets.get(packet.0) else {
            return;
        };
        if record.state != PacketState::Queued {
            return;
        }
        let hop = self.paths.get(record.path).hops[record.position as usize];
        let queue = &mut self.queues[hop.channel as usize][hop.direction.side()];
        queue.live -= 1;
        queue.queued_units -= record.amount_units;
        self.diagnostics.packets_expired_in_queue += 1;
        self.start_return(packet, Outcome::Expired);
        self.compact_queue(hop);
    }
}
