//! Payment channel network simulator: `farthing pcn-sim`.
//!
//! Answers a network operator's planning question — how much capacity must each channel
//! hold for a routing scheme to deliver, say, 95% of payments — and reproduces the
//! comparison in "High Throughput Cryptocurrency Routing in Payment Channel Networks"
//! (Spider, NSDI 2020).
//!
//! Main types, in the order data flows:
//!
//! - [`topology::Topology`]: who has a channel with whom (Barabási–Albert, Watts–Strogatz,
//!   edge-list files);
//! - [`network::Network`]: channels with per-direction balances and funds in flight, whose
//!   conservation is asserted on every change;
//! - [`demand::DemandMatrix`] and [`demand::ArrivalGenerator`]: circulation and DAG demand,
//!   Poisson arrivals, heavy-tailed sizes;
//! - [`sim::Simulation`]: the discrete-event loop (integer microseconds, ties broken by
//!   scheduling order) moving packets hop by hop, with router queues and timeouts;
//! - [`routing::SchemeKind`]: shortest path, LND-like, waterfilling and Spider senders;
//! - [`metrics::RunMetrics`]: success ratio, normalized throughput, completion time;
//! - [`sweep`]: runs over channel sizes and the planning answer; [`plot`]: the SVG chart;
//!   [`paper`]: the paper's published numbers;
//! - [`cli`]: the command (the only module doing I/O, threads or timing).
//!
//! **Architecture invariant:** the simulation core is pure and deterministic: no I/O, no
//! clock, no threads, randomness only from seeded generators. The same seed gives the same
//! result on any machine and any thread count.

pub mod cli;
pub mod demand;
pub mod event;
pub mod metrics;
pub mod network;
pub mod paper;
pub mod plot;
pub mod routing;
pub mod sim;
pub mod sweep;
pub mod topology;

#[cfg(test)]
mod tests;
