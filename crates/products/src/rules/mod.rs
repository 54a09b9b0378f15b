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
//! - [`payout`]: how much of a merchant's earnings a payout sends, how much it holds back as a
//!   reserve, and when that reserve returns.
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

/// A product ledger account, named by what it is for. The API derives the ledger's account id
/// from it (`LedgerAccount` in `crates/api`, one variant per variant here).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Account {
    /// A customer's prepaid wallet: never negative.
    Wallet { customer: u128 },
    /// A customer's post-pay tab: may owe up to `limit`.
    Tab { tab: u128, limit: Amount },
    /// A merchant's earnings, available for payout: never negative.
    Earnings { merchant: u128 },
    /// What a merchant owes the platform (chargebacks its earnings could not cover).
    MerchantDebt { merchant: u128 },
    /// The part of a merchant's earnings held back as a reserve.
    Reserve { merchant: u128 },
    /// Platform fees earned.
    PlatformRevenue,
    /// Remainders of splits that no payee's share could take.
    Rounding,
    /// Money in transit with the card processor.
    ProcessorClearing,
    /// Chargebacks no charge could cover: the platform's loss.
    DisputeLosses,
    /// Money sent to merchants' bank accounts.
    PayoutClearing,
    /// Where a captured escrow hold passes on its way to the worker and the platform.
    Escrow,
    /// A crowdfunding campaign's pot.
    Campaign { campaign: u128 },
    /// Where limit budgets go when used: a memo account, not money.
    LimitSink,
    /// An allowance's budget for one period (keyed by the period's start, nanoseconds).
    AllowancePeriod { allowance: u128, period: u64 },
    /// A customer's spending budget for one calendar month (keyed by the month's start).
    MonthlyCap { customer: u128, month: u64 },
}

/// What a leg's transfer is, as the ledger's transfer `code`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum LegKind {
    Charge,
    Tip,
    Refund,
    Payout,
    PayoutReturn,
    LimitUse,
    ReserveHold,
    Chargeback,
    ReserveRelease,
    /// A capture's split from escrow (or a campaign's pot) to the merchant, the platform and
    /// rounding.
    EscrowCapture,
}

impl LegKind {
    /// The ledger transfer code (the API's `CODE_*` constants in `products/ledger.rs`).
    pub const fn transfer_code(self) -> u16 {
        match self {
            LegKind::Charge => 1,
            LegKind::Tip => 2,
            LegKind::Refund => 5,
            LegKind::Payout => 6,
            LegKind::PayoutReturn => 7,
            LegKind::LimitUse => 9,
            LegKind::ReserveHold => 10,
            LegKind::Chargeback => 12,
            LegKind::ReserveRelease => 13,
            LegKind::EscrowCapture => 15,
        }
    }
}

/// Why a leg exists, so a refusal of it can be explained.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum LegRole {
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
    pub debit: Account,
    pub credit: Account,
    pub amount: Amount,
    pub kind: LegKind,
    pub role: LegRole,
}

/// The sum of the legs' amounts, or `None` if it overflows. For the conservation checks of
/// plans and their tests.
pub fn legs_total(legs: &[Leg]) -> Option<Amount> {
    legs.iter()
        .try_fold(Amount::ZERO, |total, leg| total.checked_add(leg.amount))
}
