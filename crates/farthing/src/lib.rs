//! The `farthing` binary's commands, as a library so that integration tests can reuse the
//! deterministic workloads. `main.rs` only parses the command line.

pub mod bench;
pub mod bench_http;
pub mod crash;
pub mod progress;
