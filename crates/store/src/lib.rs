//! farthing's metadata store: everything the ledger does not hold.
//!
//! - [`db`]: the redb file (`metadata.redb`): merchants, API keys (hashed), account owners,
//!   idempotency records, and the [`db::RecordWrite`]s every product record goes through.
//! - [`records`]: the typed product records (customers, charges, tabs, payouts, ...), their
//!   tables and indexes, and the [`records::RecordWriter`] thread that groups their commits.
//! - [`journal`]: record writes that ride in the ledger batch's log note, so they are durable
//!   exactly when the money is, and are re-applied after a crash.
//! - [`paywall`]: offers, entitlements and their view counts, and the keys that sign
//!   entitlement tokens.
//! - [`outbox`]: webhook events, endpoints, the deliveries they fan out to, and attempts.
//! - [`util`]: the clock, hashing, and ids derived from Idempotency-Keys.
//!
//! **Architecture Invariant:** the store knows nothing of HTTP or of the service above it;
//! it depends only on the ledger, the engine (for the journal) and the pure product crate
//! (for the account mapping records name). Its errors are [`StoreError`]s.

pub mod db;
pub mod error;
pub mod journal;
pub mod outbox;
pub mod paywall;
pub mod records;
pub mod util;

pub use db::{
    AccountRecord, ApiKeyRecord, Changes, IdempotencyRecord, IndexTable, MerchantRecord,
    RecordTable, RecordWrite, Scope, Store, STORE_FILE,
};
pub use error::StoreError;
