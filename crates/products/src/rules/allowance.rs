//! Consent to a charge, and the budgets a charge is checked against.
//!
//! A charge moves a customer's money only with the customer's consent: the customer's own
//! token, or an active allowance the customer granted the merchant in the charge's asset. A
//! merchant without an allowance may still create a charge for a customer it created; the
//! charge then waits for the customer's confirmation. Any other merchant does not learn that
//! the customer exists. [`consent`] decides which, and checks the allowance's per-charge
//! maximum.
//!
//! The allowance's per-period maximum and the customer's monthly cap are budgets: each UTC
//! period (day or month) has its own budget, funded once with the maximum when the period's
//! first charge is booked, and every charge draws its whole gross from it. A new period starts
//! a fresh budget ("rollover"); refunds never give budget back. The ledger enforces budgets
//! (a limit account per period, in the charge's own chain, so concurrent charges cannot race);
//! [`admit`] is the same decision over balances the caller passes in, in the ledger's order.

use crate::ids::MerchantId;
use farthing_ledger::{Amount, AssetId, Timestamp, TransferResult};

use super::Role;
use crate::schedule::{period_start, Interval, ScheduleError};

/// Who asks for the charge. (The API refuses any other caller, `insufficient_scope`, before
/// the customer is even looked up.)
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Caller {
    /// The customer's own token: consent by itself.
    CustomerToken,
    /// A merchant's key, for the charge's merchant.
    MerchantKey,
}

/// How long an allowance's budget lasts: a UTC calendar day or month.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum BudgetPeriod {
    Day,
    Month,
}

impl BudgetPeriod {
    pub const fn code(self) -> &'static str {
        match self {
            BudgetPeriod::Day => "day",
            BudgetPeriod::Month => "month",
        }
    }

    fn interval(self) -> Interval {
        match self {
            BudgetPeriod::Day => Interval::Day,
            BudgetPeriod::Month => Interval::Month,
        }
    }
}

/// What a customer granted a merchant: charges in `asset` of at most `max_per_charge` each and
/// `max_per_period` in total per period.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Allowance {
    pub id: u128,
    pub merchant: MerchantId,
    pub asset: AssetId,
    pub max_per_charge: Amount,
    pub max_per_period: Amount,
    pub period: BudgetPeriod,
    pub revoked: bool,
}

/// A charge asking for consent.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ConsentRequest {
    pub caller: Caller,
    pub merchant: MerchantId,
    pub asset: AssetId,
    pub amount: Amount,
    /// The merchant that created the customer (0 for the operator).
    pub customer_creator: u128,
}

/// Why a charge has consent.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Consent {
    /// The customer asked for it: book it now.
    CustomerToken,
    /// An allowance covers it (per-charge maximum checked): book it now, drawing on the
    /// allowance's period budget.
    Allowance(Allowance),
    /// The merchant created the customer but holds no allowance: record the charge as
    /// `requires_confirmation`; the customer confirms it.
    RequiresConfirmation,
}

/// Why a charge is refused before any money moves.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsentRefusal {
    /// Code `resource_missing` (parameter `customer`): a merchant that neither created the
    /// customer nor holds an allowance cannot learn that the customer exists.
    #[error("no such customer")]
    CustomerHidden,
    /// Code `allowance_exceeded` (parameter `amount`).
    #[error("this charge is above the allowance's maximum per charge")]
    AboveMaxPerCharge { max_per_charge: Amount },
}

impl ConsentRefusal {
    pub const fn code(&self) -> &'static str {
        match self {
            ConsentRefusal::CustomerHidden => "resource_missing",
            ConsentRefusal::AboveMaxPerCharge { .. } => "allowance_exceeded",
        }
    }

    /// The request parameter at fault.
    pub const fn param(&self) -> &'static str {
        match self {
            ConsentRefusal::CustomerHidden => "customer",
            ConsentRefusal::AboveMaxPerCharge { .. } => "amount",
        }
    }
}

/// Decides a charge's consent from the customer's `allowances` (revoked ones included; the
/// first active one for the merchant and asset counts).
pub fn consent(
    request: &ConsentRequest,
    allowances: &[Allowance],
) -> Result<Consent, ConsentRefusal> {
    if request.caller == Caller::CustomerToken {
        return Ok(Consent::CustomerToken);
    }
    let allowance = allowances
        .iter()
        .find(|a| a.merchant == request.merchant && a.asset == request.asset && !a.revoked);
    let Some(allowance) = allowance else {
        if request.customer_creator != request.merchant.0 {
            return Err(ConsentRefusal::CustomerHidden);
        }
        return Ok(Consent::RequiresConfirmation);
    };
    if request.amount > allowance.max_per_charge {
        return Err(ConsentRefusal::AboveMaxPerCharge {
            max_per_charge: allowance.max_per_charge,
        });
    }
    Ok(Consent::Allowance(*allowance))
}

/// The key of the budget period a charge at `now` draws on: the start of its UTC day or month,
/// in nanoseconds. Charges with different keys draw on different budgets.
pub fn budget_period_key(period: BudgetPeriod, now: Timestamp) -> Result<u64, ScheduleError> {
    period_start(now, period.interval()).map(|t| t.0)
}

/// A customer's monthly spending cap: at most `amount` in `asset` per UTC calendar month,
/// whoever charges.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct MonthlyCap {
    pub asset: AssetId,
    pub amount: Amount,
}

impl MonthlyCap {
    /// Whether a charge in `asset` draws on the cap (only charges in the cap's asset do).
    pub fn applies(&self, asset: AssetId) -> bool {
        self.asset == asset
    }

    /// The key of the month a charge at `now` draws on.
    pub fn month_key(now: Timestamp) -> Result<u64, ScheduleError> {
        budget_period_key(BudgetPeriod::Month, now)
    }
}

/// One period's budget: funded with `limit` (the maximum in force at the period's first
/// charge; a later change of a monthly cap applies from the next month), of which `spent` was
/// drawn by earlier charges in the period.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Budget {
    pub limit: Amount,
    pub spent: Amount,
}

impl Budget {
    /// A period no charge has drawn on yet.
    pub fn fresh(limit: Amount) -> Budget {
        Budget {
            limit,
            spent: Amount::ZERO,
        }
    }

    /// What the period's budget still allows.
    pub fn remaining(&self) -> Amount {
        Amount(self.limit.0.saturating_sub(self.spent.0))
    }
}

/// What the charge is paid from, and how much more it can pay: a wallet's available balance
/// (credits less posted and pending debits), or a tab's headroom (credits plus its limit less
/// debits).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Source {
    Wallet { available: Amount },
    Tab { headroom: Amount },
}

/// Why a charge's chain is refused by the ledger.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChargeRefusal {
    /// Code `insufficient_funds` (parameter `amount`).
    #[error("the customer's wallet does not hold enough")]
    InsufficientFunds,
    /// Code `tab_limit_exceeded` (parameter `amount`).
    #[error("this charge would take the customer's tab over its limit")]
    TabLimitExceeded,
    /// Code `allowance_exceeded` (parameter `amount`).
    #[error("this charge would exceed the allowance's budget for the period")]
    AllowanceBudgetExceeded,
    /// Code `monthly_cap_exceeded` (parameter `amount`).
    #[error("this charge would exceed the customer's monthly spending cap")]
    MonthlyCapExceeded,
}

impl ChargeRefusal {
    pub const fn code(&self) -> &'static str {
        match self {
            ChargeRefusal::InsufficientFunds => "insufficient_funds",
            ChargeRefusal::TabLimitExceeded => "tab_limit_exceeded",
            ChargeRefusal::AllowanceBudgetExceeded => "allowance_exceeded",
            ChargeRefusal::MonthlyCapExceeded => "monthly_cap_exceeded",
        }
    }

    /// The request parameter at fault: always the amount.
    pub const fn param(&self) -> &'static str {
        "amount"
    }

    /// The refusal the ledger's `result` on a leg of `role` means; `None` for results that are
    /// not a charge refusal (the API reports those as the ledger's own error).
    pub fn from_ledger(role: Role, result: TransferResult) -> Option<ChargeRefusal> {
        match (role, result) {
            (Role::Allowance, TransferResult::ExceedsCredits) => {
                Some(ChargeRefusal::AllowanceBudgetExceeded)
            }
            (Role::MonthlyCap, TransferResult::ExceedsCredits) => {
                Some(ChargeRefusal::MonthlyCapExceeded)
            }
            (Role::Payment, TransferResult::ExceedsCredits) => {
                Some(ChargeRefusal::InsufficientFunds)
            }
            (Role::Payment, TransferResult::ExceedsLimit) => Some(ChargeRefusal::TabLimitExceeded),
            _ => None,
        }
    }
}

/// Whether a charge of `amount` (its gross) is booked: the source must cover it, then the
/// allowance's period budget, then the monthly cap, in the order of the charge's legs (see
/// [`super::charge::charge_legs`]), so the first that falls short names the refusal.
///
/// The ledger enforces this on the chain `farthing_service::charges::execute` submits (so
/// concurrent charges cannot race); this is the same decision as a reference model, for tests.
pub fn admit(
    amount: Amount,
    source: Source,
    allowance: Option<Budget>,
    monthly_cap: Option<Budget>,
) -> Result<(), ChargeRefusal> {
    match source {
        Source::Wallet { available } if amount > available => {
            return Err(ChargeRefusal::InsufficientFunds)
        }
        Source::Tab { headroom } if amount > headroom => {
            return Err(ChargeRefusal::TabLimitExceeded)
        }
        _ => {}
    }
    if allowance.is_some_and(|b| amount > b.remaining()) {
        return Err(ChargeRefusal::AllowanceBudgetExceeded);
    }
    if monthly_cap.is_some_and(|b| amount > b.remaining()) {
        return Err(ChargeRefusal::MonthlyCapExceeded);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MERCHANT: u128 = 5;
    const USD: AssetId = AssetId(1);

    fn allowance(merchant: MerchantId, asset: AssetId, revoked: bool) -> Allowance {
        Allowance {
            id: 100 + merchant.0,
            merchant,
            asset,
            max_per_charge: Amount(50),
            max_per_period: Amount(200),
            period: BudgetPeriod::Day,
            revoked,
        }
    }

    /// Asks for consent to `amount` and compares the outcome, named as a string.
    fn check(
        caller: Caller,
        creator: u128,
        allowances: &[Allowance],
        amount: u128,
        expected: &str,
    ) {
        let request = ConsentRequest {
            caller,
            merchant: MerchantId(MERCHANT),
            asset: USD,
            amount: Amount(amount),
            customer_creator: creator,
        };
        let got = match consent(&request, allowances) {
            Ok(Consent::CustomerToken) => "customer_token".to_string(),
            Ok(Consent::Allowance(a)) => format!("allowance {}", a.id),
            Ok(Consent::RequiresConfirmation) => "requires_confirmation".to_string(),
            Err(e) => e.code().to_string(),
        };
        assert_eq!(got, expected);
    }

    #[test]
    fn consent_comes_from_the_token_an_allowance_or_a_confirmation() {
        use Caller::*;
        // The customer's token needs no allowance, whatever the amount.
        check(CustomerToken, 0, &[], 1_000_000, "customer_token");
        check(
            MerchantKey,
            0,
            &[allowance(MerchantId(MERCHANT), USD, false)],
            50,
            "allowance 105",
        );
        // Above the per-charge maximum.
        check(
            MerchantKey,
            0,
            &[allowance(MerchantId(MERCHANT), USD, false)],
            51,
            "allowance_exceeded",
        );
        // No allowance: the creator asks for confirmation, anyone else sees no customer.
        check(
            MerchantKey,
            MERCHANT,
            &[],
            1_000_000,
            "requires_confirmation",
        );
        check(MerchantKey, 9, &[], 1, "resource_missing");
    }

    #[test]
    fn only_an_active_allowance_for_this_merchant_and_asset_counts() {
        use Caller::MerchantKey;
        let others = [
            allowance(MerchantId(MERCHANT), USD, true),
            allowance(MerchantId(9), USD, false),
            allowance(MerchantId(MERCHANT), AssetId(2), false),
        ];
        check(MerchantKey, 0, &others, 1, "resource_missing");
        check(MerchantKey, MERCHANT, &others, 1, "requires_confirmation");
        // A revoked one listed first does not hide an active one after it.
        let mut both = others.to_vec();
        let mut active = allowance(MerchantId(MERCHANT), USD, false);
        active.id = 999;
        both.push(active);
        check(MerchantKey, 0, &both, 1, "allowance 999");
    }

    #[test]
    fn each_utc_day_and_month_is_its_own_budget() {
        const DAY_NS: u64 = 86_400_000_000_000;
        // 2024-03-15 13:00 UTC.
        let now = Timestamp(1_710_507_600_000_000_000);
        let day = budget_period_key(BudgetPeriod::Day, now).unwrap();
        assert_eq!(day, 1_710_460_800_000_000_000);
        assert_eq!(
            budget_period_key(BudgetPeriod::Day, Timestamp(day + DAY_NS - 1)),
            Ok(day)
        );
        assert_eq!(
            budget_period_key(BudgetPeriod::Day, Timestamp(day + DAY_NS)),
            Ok(day + DAY_NS)
        );
        // 2024-03-01 00:00 UTC.
        assert_eq!(MonthlyCap::month_key(now), Ok(1_709_251_200_000_000_000));
    }

    #[test]
    fn the_first_leg_that_falls_short_names_the_refusal() {
        let wallet = |available| Source::Wallet {
            available: Amount(available),
        };
        let budget = |limit, spent| {
            Some(Budget {
                limit: Amount(limit),
                spent: Amount(spent),
            })
        };
        let admit = |source, allowance, cap| admit(Amount(100), source, allowance, cap);
        assert_eq!(admit(wallet(100), budget(100, 0), budget(100, 0)), Ok(()));
        // Everything short: the wallet comes first.
        assert_eq!(
            admit(wallet(99), budget(100, 1), budget(100, 1)),
            Err(ChargeRefusal::InsufficientFunds)
        );
        let tab = Source::Tab {
            headroom: Amount(99),
        };
        assert_eq!(
            admit(tab, None, None).map_err(|e| e.code()),
            Err("tab_limit_exceeded")
        );
        assert_eq!(
            admit(wallet(100), budget(150, 51), budget(100, 1)).map_err(|e| e.code()),
            Err("allowance_exceeded")
        );
        assert_eq!(
            admit(wallet(100), budget(150, 50), budget(100, 1)).map_err(|e| e.code()),
            Err("monthly_cap_exceeded")
        );
        // A new period's budget is fresh.
        assert_eq!(
            admit(wallet(100), Some(Budget::fresh(Amount(100))), None),
            Ok(())
        );
    }

    #[test]
    fn ledger_results_map_to_the_same_refusals() {
        use ChargeRefusal::*;
        let map = |role, result| ChargeRefusal::from_ledger(role, result);
        assert_eq!(
            map(Role::Allowance, TransferResult::ExceedsCredits),
            Some(AllowanceBudgetExceeded)
        );
        assert_eq!(
            map(Role::MonthlyCap, TransferResult::ExceedsCredits),
            Some(MonthlyCapExceeded)
        );
        assert_eq!(
            map(Role::Payment, TransferResult::ExceedsCredits),
            Some(InsufficientFunds)
        );
        assert_eq!(
            map(Role::Payment, TransferResult::ExceedsLimit),
            Some(TabLimitExceeded)
        );
        assert_eq!(map(Role::Other, TransferResult::ExceedsCredits), None);
        assert_eq!(map(Role::Payment, TransferResult::Overflow), None);
    }

    proptest! {
        /// A budget never lets a period's charges add up to more than its limit.
        #[test]
        fn admitted_charges_never_exceed_the_budget(
            limit in 0u128..10_000,
            charges in prop::collection::vec(1u128..3_000, 0..20),
        ) {
            let mut budget = Budget::fresh(Amount(limit));
            for charge in charges {
                let source = Source::Wallet { available: Amount(u128::MAX) };
                if admit(Amount(charge), source, Some(budget), None).is_ok() {
                    budget.spent = Amount(budget.spent.0 + charge);
                }
                prop_assert!(budget.spent <= budget.limit);
            }
        }
    }
}
