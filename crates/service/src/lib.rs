//! farthing's service layer: the operations behind the HTTP routes and the scheduler's jobs,
//! one module per product. A route handler parses the request, checks who is calling, calls a
//! service function and renders its answer; a scheduled job calls the same functions.
//!
//! - [`state`]: the shared [`state::AppState`] (engine, store, products, key and owner caches),
//!   [`state::Principal`] (who is calling, and the one visibility rule).
//! - [`idempotency`]: the one Idempotency-Key rule every POST runs under.
//! - [`submit`]: the one place that submits product chains to the ledger ([`submit::Products`]).
//! - [`scheduler`]: the products' clock and the durable jobs (tab settlements, renewals,
//!   payouts, expiries, campaign ends).
//! - [`delivery`]: the webhook delivery worker.
//! - One module per product: [`assets`], [`keys`], [`customers`], [`charges`], [`tabs`],
//!   [`payouts`], [`holds`], [`campaigns`], [`subscriptions`]; the paywall's [`offers`] and
//!   [`entitlements`] (purchases, token verification, view counting), and [`signing`] (the
//!   keys that sign entitlement tokens, their rotation and the JWK Set).
//!
//! **Architecture Invariant:** nothing here imports axum, hyper or any HTTP type, nor the
//! `farthing-http` crate (Cargo makes that impossible: it is not a dependency). Imports point
//! down only: http → service → {products, store, engine} → ledger. Errors are
//! [`ServiceError`]s, whose [`ErrorKind`] the HTTP layer maps to a status. The views a service
//! operation puts in webhook events (`PayoutView`, …) live here with it, and the routes render
//! the same types.

pub mod accounts;
pub mod assets;
pub mod cache;
pub mod campaigns;
pub mod charges;
pub mod customers;
pub mod delivery;
pub mod disputes;
pub mod entitlements;
pub mod error;
pub mod holds;
pub mod idempotency;
pub mod keys;
pub mod ledger;
pub mod lists;
pub mod merchants;
pub mod offers;
pub mod payouts;
pub mod reads;
pub mod reports;
pub mod scheduler;
pub mod signing;
pub mod state;
pub mod submit;
pub mod subscriptions;
pub mod tabs;
pub mod transfers;
pub mod webhooks;

pub use error::{ErrorKind, Reason, ServiceError};
