//! The engine's errors: one enum for opening, one for submitting.

use std::io;
use std::path::PathBuf;

use crate::snapshot::SnapshotError;
use crate::wal::ScanError;

/// Why the engine did not open. Each names the file (and offset) concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The message includes the I/O error's; it is deliberately not also the `source()`, which
    /// a report of the whole chain would print a second time.
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: io::Error },
    #[error("data directory {path} is in use by another farthing process (LOCK is held)")]
    Locked { path: PathBuf },
    #[error(transparent)]
    Log(#[from] ScanError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error("{path}: could not log the expiry of holds that fell due while closed: {reason}")]
    Expiry { path: PathBuf, reason: String },
    #[error("{path}: log segment starts at sequence {found} but {expected} was expected next")]
    SequenceGap {
        path: PathBuf,
        expected: u64,
        found: u64,
    },
}

/// Why a batch was not acknowledged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubmitError {
    #[error("batch has {events} events, more than the maximum {max}")]
    TooManyEvents { events: usize, max: usize },
    /// A write or fsync failed (disk full included). Nothing further is acknowledged; the
    /// batch may or may not be in the log, exactly like a crash.
    #[error("engine halted, batch not acknowledged: {reason}")]
    Halted { reason: String },
    #[error("note of {bytes} bytes, more than the maximum {max}")]
    NoteTooLarge { bytes: usize, max: usize },
    #[error("engine is shutting down")]
    ShuttingDown,
    #[error("batch refused: {reason}")]
    Refused { reason: String },
}
