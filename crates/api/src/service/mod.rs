//! The service layer: the operations behind the HTTP routes and the scheduler's jobs, one
//! module per product. A route handler parses the request, checks who is calling, calls a
//! service function and renders its answer; a scheduled job calls the same functions.
//!
//! **Architecture Invariant:** `service` never imports `crate::routes`, axum or HTTP types;
//! imports point down only (routes → service → products, store, engine → ledger). The one
//! exception for now: the operations still return the crate's [`crate::error::ApiError`]
//! (which carries an HTTP status); a later step replaces it with typed errors per operation.
//! The views a service operation puts in webhook events (`PayoutView`, …) live here with it,
//! and the routes render the same types.

pub mod assets;
pub mod campaigns;
pub mod charges;
pub mod customers;
pub mod holds;
pub mod keys;
pub mod payouts;
pub mod subscriptions;
pub mod tabs;
