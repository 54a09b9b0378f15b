//! Payment channel network simulator: `farthing pcn-sim` (issue 6, in progress).
pub mod cli;
