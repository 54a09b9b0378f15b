//! What a store operation can fail with. The service layer decides what each means for its
//! caller (see `farthing_service::ServiceError`'s `From<StoreError>`).

/// Why a read or write of the metadata store, the record writer or the journal failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database itself failed (disk, corruption, a commit).
    #[error("metadata store: {0}")]
    Storage(#[from] redb::Error),
    /// A worker the write goes through has stopped (`ledger`, `journal`, `record writer`).
    #[error("{0} stopped")]
    Stopped(&'static str),
    /// The journal could not apply a note; the log holds it and a restart applies it.
    #[error("the journal stopped ({0})")]
    JournalFailed(String),
    /// The ledger engine refused a batch (stopped, or the batch too large).
    #[error("ledger refused a batch: {0}")]
    Submit(#[from] farthing_engine::SubmitError),
    /// The record writer's commit failed.
    #[error("writing records: {0}")]
    Write(String),
    /// A record or note could not be encoded.
    #[error("encoding: {0}")]
    Encode(String),
}
