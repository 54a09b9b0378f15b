//! farthing's ledger core: an exact double-entry ledger as a pure state machine.
//!
//! Input: a batch ([`Operation`]) and its timestamp. Output: one result per event
//! ([`BatchResults`]). The rules ([`rules::apply`]) run over any [`LedgerState`]; the default
//! state is [`MemoryLedger`]. [`LedgerDump`] is a backend-independent picture used for the
//! state hash and for checking invariants; [`reference::ReferenceLedger`] is a deliberately
//! simple second implementation that property tests compare against.
//!
//! Architecture Invariant: this crate does no I/O, starts no threads, reads no clock and draws
//! no random numbers. The caller supplies timestamps and the hash seed. Replaying the same
//! batches with the same timestamps always gives the same state hash.

pub mod audit;
pub mod index;
pub mod memory;
pub mod reference;
pub mod results;
pub mod rules;
pub mod state;
pub mod types;

pub use audit::{DumpDifference, InvariantViolation, LedgerDump};
pub use memory::{MemoryLedger, TransferPage, TransferView};
pub use results::{AccountResult, AssetResult, BatchError, BatchResults, TransferResult};
pub use state::{LedgerState, StoredAccount};
pub use types::*;

#[cfg(test)]
mod tests;
