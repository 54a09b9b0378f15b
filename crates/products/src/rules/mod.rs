//! The product rules, as pure functions: who may charge, what each money movement books, how
//! much a payout holds back, whom a dispute debits, what a capture moves, how a campaign ends,
//! when a tab settles.
//!
//! Each rule takes what the caller read (balances, records, the time) as plain values and
//! returns a decision or a plan: a list of [`Leg`]s to book as one linked chain, or a typed
//! refusal whose `code()` is the API's error code. The API reads the ledger and the store,
//! calls the rule, and books or renders what it returned.
//!
//! Architecture Invariant: nothing here reads the ledger, the store or the clock, and nothing
//! here knows HTTP. A rule that needs a balance takes it as an argument.
//!
//! - [`allowance`]: consent to a charge (the customer's token, an allowance, or a
//!   confirmation) and the per-charge, per-period and monthly budgets it is checked against.
//! - [`charge`]: pricing a charge ([`charge::ChargeSplit`]) and the legs of a charge, a tip and
//!   a refund.
//! - [`payout`]: how much of a merchant's earnings first pays down its chargeback debt, how
//!   much a payout sends, how much it holds back as a reserve and when that reserve returns,
//!   and what each answer of the payout rail makes of a pending payout.
//! - [`dispute`]: how a chargeback is allocated: the unspent wallet first, then the charges the
//!   money paid for, newest first; what a merchant cannot cover becomes its debt.
//! - [`hold`]: what a capture of an escrow hold posts, re-holds, releases and splits.
//! - [`campaign`]: whether an all-or-nothing campaign captures or releases at its deadline.
//! - [`tab`]: when a post-pay tab settles, for how much, and what a decline does.
//!
//! Legs are positional. A chain's transfer ids are its first id plus the leg's index, and a
//! zero-amount leg is left out of the chain but keeps its index, so a retry names the same
//! transfers. That is why plans keep their zero legs: dropping one would shift every id after
//! it.

pub mod allowance;
pub mod campaign;
pub mod charge;
pub mod dispute;
pub mod hold;
pub mod payout;
pub mod tab;

use farthing_ledger::Amount;

pub use crate::accounts::LedgerAccount;

/// Why a leg exists, so a refusal of it can be explained.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Role {
    /// Money leaves the paying account (wallet, tab, merchant earnings).
    Payment,
    /// The allowance's period budget.
    Allowance,
    /// The customer's monthly spending cap.
    MonthlyCap,
    /// Any other leg (fees, shares, rounding, clearing).
    Other,
}

/// One transfer of a plan: `amount` from `debit` to `credit`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Leg {
    pub debit: LedgerAccount,
    pub credit: LedgerAccount,
    pub amount: Amount,
    /// The ledger transfer code (`crate::accounts::CODE_*`).
    pub code: u16,
    pub role: Role,
}

/// The sum of the legs' amounts, or `None` if it overflows. For the conservation checks of
/// plans and their tests.
pub fn legs_total(legs: &[Leg]) -> Option<Amount> {
    legs.iter()
        .try_fold(Amount::ZERO, |total, leg| total.checked_add(leg.amount))
}
