//! farthing's embedded durable engine: the default storage, needing no server.
//!
//! [`Engine`] owns a [`farthing_ledger::MemoryLedger`] behind one writer thread and makes every
//! batch durable in a write-ahead log ([`wal`]) before answering; [`snapshot`]s bound restart
//! time. [`codec`] is the fixed-size event encoding shared by both files.
//!
//! Architecture Invariant: nothing is acknowledged, and nothing becomes visible to readers,
//! before the log records holding it are fsynced. After a write or fsync error the engine halts
//! and acknowledges nothing more.

pub mod codec;
pub mod engine;
pub mod error;
pub mod sched;
pub mod snapshot;
pub mod wal;

pub use engine::{
    BatchOutcome, Clock, Config, Engine, EngineStats, ManualClock, Note, RecoveryReport,
    SystemClock,
};
pub use error::{OpenError, SubmitError};
