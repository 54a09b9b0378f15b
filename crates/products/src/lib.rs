//! farthing's product logic, as pure functions over plain values.
//!
//! Architecture Invariant: this crate does no I/O, starts no threads, reads no clock and draws
//! no random numbers. Times, seeds and records come in as arguments; decisions come out as
//! values. The caller (the API and its workers) turns those decisions into ledger batches,
//! HTTP calls and timers. That keeps every money rule here replayable and property-tested.
//!
//! - [`fees`]: [`fees::FeePlan`] and revenue [`fees::Share`]s; [`fees::split`] divides a
//!   payment into a [`fees::Split`] whose parts always add up to the gross, and
//!   [`fees::reverse`] allocates full or partial refunds against it. Also the exact
//!   [`fees::mul_div`] with named [`fees::RoundingRule`]s that every division here uses.
//! - [`processor`]: the [`processor::PaymentProcessor`] and [`processor::PayoutRail`] traits
//!   that card charges and bank payouts go through, and deterministic sandbox implementations
//!   driven by well-known test card and bank account numbers.
//! - [`schedule`]: UTC calendar periods ([`schedule::Interval`]), retry [`schedule::Backoff`]
//!   with deterministic jitter, and the [`schedule::DueQueue`] index of what work is due when.
//! - [`report`]: the fee economics report — what the platform's batching saved in card fees
//!   compared with charging every payment to a card — and its CSV rendering.
//!
//! - [`amounts`]: the cap on a product operation's amount, so no shared account can overflow.
//! - [`rules`]: the product rules as pure decisions and plans: consent and allowance budgets,
//!   the legs of charges, tips and refunds, payouts and reserves, dispute allocation, hold
//!   captures, campaign ends, tab settlements. Refusals carry the API's error codes.
//!
//! - [`entitlement`]: what an offer grants ([`entitlement::Access`]), the per-merchant
//!   customer [`entitlement::pseudonym`], and the EdDSA-signed entitlement token (sign,
//!   verify, the JWK of a key).
//!
//! Money is always integer minor units ([`farthing_ledger::Amount`]); no floating point is
//! used anywhere.

pub mod accounts;
pub mod amounts;
pub mod entitlement;
pub mod fees;
pub mod ids;
pub mod money;
pub mod processor;
pub mod report;
pub mod rules;
pub mod schedule;
pub mod webhooks;
