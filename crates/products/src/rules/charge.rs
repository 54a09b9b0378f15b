//! Pricing a charge and the legs of a charge, a tip and a refund.
//!
//! A charge of `gross` is split by the merchant's [`FeePlan`] and the revenue shares with
//! [`fees::split`]: the platform's fee, the merchant's net (or each payee's floored share) and
//! the rounding remainder, which together are exactly the gross. [`price`] names the payees by
//! merchant id; [`ChargeSplit`] is that split as a charge's record keeps it.
//!
//! The charge's chain ([`charge_legs`]) pays every part from the customer's wallet or tab, in a
//! fixed order (merchant net, platform fee, payees in share order, rounding), then draws the
//! whole gross from the allowance's period budget and the customer's monthly cap, when they
//! apply. A tip is a charge without shares, booked under the tip code.
//!
//! A refund ([`plan_refund`]) gives back what [`fees::reverse`] allocates to each part: the
//! merchants' earnings, the platform's revenue and the rounding account each pay their part back
//! to the account the customer paid from. Partial refunds add up exactly to one refund of their
//! total (see [`fees::reverse`]).

use crate::ids::MerchantId;
use farthing_ledger::Amount;

use super::{LedgerAccount, Leg, Role};
use crate::fees::{
    self, Destination, FeeError, FeePlan, FeeRefundPolicy, NetDistribution, PayeeAmount,
    RefundError, Reversal, Share, Split,
};

/// A revenue share's payee as [`fees`] names it: the merchant id as 32 lowercase hex digits.
fn payee_name(merchant: MerchantId) -> String {
    format!("{:032x}", merchant.0)
}

/// One payee's part of a charge: `bps` of the net, `amount` booked to `merchant`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct PayeePart {
    pub merchant: MerchantId,
    pub bps: u32,
    pub amount: Amount,
}

/// A charge's split as booked: the charging merchant, the platform's fee, the merchant's net
/// (zero with revenue shares), each payee's part and the rounding remainder.
///
/// Invariant (checked when built): the parts add up to the gross, and they are a valid
/// [`fees::Split`]; so booking every part moves exactly the gross.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct ChargeSplit {
    gross: Amount,
    merchant: MerchantId,
    platform_fee: Amount,
    merchant_net: Amount,
    payees: Vec<PayeePart>,
    rounding: Amount,
}

/// Why a charge could not be priced. Code `invalid_split` (parameter `shares`).
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error("the split is invalid: {0}")]
pub struct PriceError(#[from] pub FeeError);

impl PriceError {
    pub const fn code(&self) -> &'static str {
        "invalid_split"
    }
}

/// Why stored parts are not a charge's split (a corrupt record). Code `internal_error`.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SplitError {
    #[error("stored split: {0}")]
    Fees(#[from] FeeError),
    #[error("stored split: a merchant net ({merchant_net}) beside revenue shares")]
    NetBesideShares { merchant_net: Amount },
}

impl SplitError {
    pub const fn code(&self) -> &'static str {
        "internal_error"
    }
}

/// Splits a charge of `gross` to `merchant` by its fee `plan` and the revenue `shares`
/// (merchant id, bps); no shares means the merchant keeps the whole net. Rounding: the fee by
/// the plan's [`fees::RoundingRule`], each share floored, the remainder to the rounding account
/// (see [`fees::split`]).
///
/// Used by `farthing_service::charges::price` (charges, tips, hold captures, campaign captures).
pub fn price(
    gross: Amount,
    plan: &FeePlan,
    merchant: MerchantId,
    shares: &[(MerchantId, u32)],
) -> Result<ChargeSplit, PriceError> {
    let share_list: Vec<Share> = shares
        .iter()
        .map(|(payee, bps)| Share {
            payee: payee_name(*payee),
            bps: *bps,
        })
        .collect();
    let split = fees::split(gross, plan, &share_list)?;
    let payees = split
        .payees()
        .iter()
        .zip(shares)
        .map(|(p, (payee, _))| PayeePart {
            merchant: *payee,
            bps: p.bps,
            amount: p.amount,
        })
        .collect();
    Ok(ChargeSplit {
        gross,
        merchant,
        platform_fee: split.platform_fee(),
        merchant_net: split.merchant_net().unwrap_or(Amount::ZERO),
        payees,
        rounding: split.rounding_remainder(),
    })
}

impl ChargeSplit {
    /// Rebuilds a split from a charge's record, checking its invariant.
    pub fn new(
        gross: Amount,
        merchant: MerchantId,
        platform_fee: Amount,
        merchant_net: Amount,
        payees: Vec<PayeePart>,
        rounding: Amount,
    ) -> Result<ChargeSplit, SplitError> {
        if !payees.is_empty() && !merchant_net.is_zero() {
            return Err(SplitError::NetBesideShares { merchant_net });
        }
        let split = ChargeSplit {
            gross,
            merchant,
            platform_fee,
            merchant_net,
            payees,
            rounding,
        };
        split.to_fee_split()?;
        Ok(split)
    }

    pub fn gross(&self) -> Amount {
        self.gross
    }

    pub fn merchant(&self) -> u128 {
        self.merchant.0
    }

    pub fn platform_fee(&self) -> Amount {
        self.platform_fee
    }

    /// The charging merchant's net; zero when there are revenue shares.
    pub fn merchant_net(&self) -> Amount {
        self.merchant_net
    }

    pub fn payees(&self) -> &[PayeePart] {
        &self.payees
    }

    pub fn rounding(&self) -> Amount {
        self.rounding
    }

    /// The split in [`fees`]' terms, to allocate a refund or a dispute against.
    pub fn to_fee_split(&self) -> Result<Split, FeeError> {
        let net = if self.payees.is_empty() {
            NetDistribution::Merchant(self.merchant_net)
        } else {
            NetDistribution::Payees {
                payees: self
                    .payees
                    .iter()
                    .map(|p| PayeeAmount {
                        payee: payee_name(p.merchant),
                        bps: p.bps,
                        amount: p.amount,
                    })
                    .collect(),
                rounding_remainder: self.rounding,
            }
        };
        Split::from_parts(self.gross, self.platform_fee, net)
    }

    /// The merchant that received a part of the split: the charging merchant, or a payee;
    /// `None` for the platform's and the rounding parts. A payee name that is not a merchant id
    /// (never made by [`price`]) counts as the charging merchant.
    pub fn part_merchant(&self, destination: &Destination) -> Option<u128> {
        match destination {
            Destination::Merchant => Some(self.merchant.0),
            Destination::Payee(hex) => {
                Some(u128::from_str_radix(hex, 16).unwrap_or(self.merchant.0))
            }
            Destination::Platform | Destination::Rounding => None,
        }
    }

    /// The account that gives back `destination`'s part of a reversal: the merchant's
    /// earnings, the platform's revenue, or the rounding account.
    pub fn part_account(&self, destination: &Destination) -> LedgerAccount {
        match (destination, self.part_merchant(destination)) {
            (_, Some(merchant)) => LedgerAccount::Earnings {
                merchant: MerchantId(merchant),
            },
            (Destination::Platform, None) => LedgerAccount::PlatformRevenue,
            _ => LedgerAccount::Rounding,
        }
    }
}

/// A charge, or a tip (a charge without shares, booked under its own code).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ChargeKind {
    Charge,
    Tip,
}

impl ChargeKind {
    pub const fn code(self) -> &'static str {
        match self {
            ChargeKind::Charge => "charge",
            ChargeKind::Tip => "tip",
        }
    }

    fn transfer_code(self) -> u16 {
        match self {
            ChargeKind::Charge => crate::accounts::CODE_CHARGE,
            ChargeKind::Tip => crate::accounts::CODE_TIP,
        }
    }
}

/// The legs of a charge, in booking order: from `source` (the wallet or tab) to the merchant's
/// earnings (its net), the platform's revenue (the fee), each payee's earnings, the rounding
/// account; then the gross from the allowance's period budget, then from the monthly cap, each
/// to the limit sink, when given. Zero parts stay in the list (see [`super`]). The payment legs
/// sum to the gross.
///
/// The order decides which refusal a short charge gets: the ledger refuses the first leg that
/// fails, so a short wallet wins over a spent budget (see [`super::allowance::admit`]).
pub fn charge_legs(
    split: &ChargeSplit,
    kind: ChargeKind,
    source: LedgerAccount,
    allowance_period: Option<LedgerAccount>,
    monthly_cap: Option<LedgerAccount>,
) -> Vec<Leg> {
    let pay = |credit, amount| Leg {
        debit: source,
        credit,
        amount,
        code: kind.transfer_code(),
        role: Role::Payment,
    };
    let mut legs = Vec::with_capacity(split.payees.len() + 5);
    legs.push(pay(
        LedgerAccount::Earnings {
            merchant: split.merchant,
        },
        split.merchant_net,
    ));
    legs.push(pay(LedgerAccount::PlatformRevenue, split.platform_fee));
    for p in &split.payees {
        legs.push(pay(
            LedgerAccount::Earnings {
                merchant: p.merchant,
            },
            p.amount,
        ));
    }
    legs.push(pay(LedgerAccount::Rounding, split.rounding));
    let limit = |debit, role| Leg {
        debit,
        credit: LedgerAccount::LimitSink,
        amount: split.gross,
        code: crate::accounts::CODE_LIMIT_USE,
        role,
    };
    if let Some(account) = allowance_period {
        legs.push(limit(account, Role::Allowance));
    }
    if let Some(account) = monthly_cap {
        legs.push(limit(account, Role::MonthlyCap));
    }
    legs
}

/// Where a charge stands, as the API reads it from its record and the ledger.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ChargeStatus {
    /// Created by a merchant without an allowance; no money has moved.
    RequiresConfirmation,
    /// Its chain is in the ledger.
    Succeeded,
    /// Its chain was refused (or never submitted).
    Failed,
}

impl ChargeStatus {
    pub const fn code(self) -> &'static str {
        match self {
            ChargeStatus::RequiresConfirmation => "requires_confirmation",
            ChargeStatus::Succeeded => "succeeded",
            ChargeStatus::Failed => "failed",
        }
    }
}

/// A refund to book: its amount, its legs (every part's give-back, back to the account the
/// customer paid from) and what the platform returns of its fee.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RefundPlan {
    pub amount: Amount,
    /// One leg per part that gives back a non-zero amount, in the split's order; they sum to
    /// `amount`.
    pub legs: Vec<Leg>,
    pub platform_fee_returned: Amount,
    /// The index of the first non-zero leg (the refund's record keeps it to find its chain).
    pub first_leg: u64,
}

/// Why a refund is refused.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RefundRefusal {
    /// Code `charge_not_succeeded`.
    #[error("only a succeeded charge can be refunded")]
    ChargeNotSucceeded,
    /// Code `refund_exceeds_charge` (parameter `amount`); also when nothing is left.
    #[error("at most {remaining} of this charge is left to refund")]
    ExceedsCharge { remaining: Amount },
    /// Code `internal_error`: the stored split or the allocation broke an invariant.
    #[error("refund split: {0}")]
    Split(#[from] FeeError),
    /// Code `internal_error`.
    #[error("refund split: {0}")]
    Allocation(#[from] RefundError),
}

impl RefundRefusal {
    pub const fn code(&self) -> &'static str {
        match self {
            RefundRefusal::ChargeNotSucceeded => "charge_not_succeeded",
            RefundRefusal::ExceedsCharge { .. } => "refund_exceeds_charge",
            RefundRefusal::Split(_) | RefundRefusal::Allocation(_) => "internal_error",
        }
    }
}

/// Whether a charge whose `status` is given can be refunded at all: only a succeeded one can.
/// The API asks this before it reads the amount asked for, so a bad amount is reported only
/// after what is wrong with the charge itself; [`plan_refund`] asks it again.
pub fn refundable(status: ChargeStatus) -> Result<(), RefundRefusal> {
    if status != ChargeStatus::Succeeded {
        return Err(RefundRefusal::ChargeNotSucceeded);
    }
    Ok(())
}

/// Plans a refund of `requested` (everything left if `None`) of a charge whose `status` is
/// given, of which `reversed_so_far` (committed refunds plus disputes) was taken back before.
/// The refund goes back to `source`, the account the charge was paid from. The allocation is
/// [`fees::reverse`] under `policy`.
pub fn plan_refund(
    split: &ChargeSplit,
    status: ChargeStatus,
    source: LedgerAccount,
    reversed_so_far: Amount,
    requested: Option<Amount>,
    policy: FeeRefundPolicy,
) -> Result<RefundPlan, RefundRefusal> {
    refundable(status)?;
    let remaining = Amount(split.gross.0.saturating_sub(reversed_so_far.0));
    let amount = requested.unwrap_or(remaining);
    if amount > remaining || remaining.is_zero() {
        return Err(RefundRefusal::ExceedsCharge { remaining });
    }
    let reversal = fees::reverse(&split.to_fee_split()?, reversed_so_far, amount, policy)?;
    let legs = reversal_legs(split, &reversal, source, crate::accounts::CODE_REFUND);
    Ok(RefundPlan {
        amount,
        first_leg: legs.iter().position(|l| !l.amount.is_zero()).unwrap_or(0) as u64,
        legs,
        platform_fee_returned: reversal.amount_for(&Destination::Platform),
    })
}

/// One leg per non-zero part of `reversal`, from the part's account to `credit`.
fn reversal_legs(
    split: &ChargeSplit,
    reversal: &Reversal,
    credit: LedgerAccount,
    code: u16,
) -> Vec<Leg> {
    reversal
        .parts()
        .into_iter()
        .map(|(destination, amount)| Leg {
            debit: split.part_account(&destination),
            credit,
            amount,
            code,
            role: Role::Payment,
        })
        .collect()
}

/// The legs that pass a captured amount on from `from` (escrow, a campaign's pot), split by
/// `split`: the merchant's net, the platform's fee and the rounding remainder, in that order
/// (zero legs kept: chain ids count them).
pub fn split_legs(from: LedgerAccount, split: &ChargeSplit) -> [Leg; 3] {
    let leg = |credit, amount| Leg {
        debit: from,
        credit,
        amount,
        code: crate::accounts::CODE_ESCROW_CAPTURE,
        role: Role::Other,
    };
    [
        leg(
            LedgerAccount::Earnings {
                merchant: MerchantId(split.merchant()),
            },
            split.merchant_net(),
        ),
        leg(LedgerAccount::PlatformRevenue, split.platform_fee()),
        leg(LedgerAccount::Rounding, split.rounding()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fees::RoundingRule;
    use crate::ids::{AllowanceId, CustomerId, TabId};
    use crate::rules::legs_total;
    use proptest::prelude::*;

    const MERCHANT: u128 = 7;
    const WALLET: LedgerAccount = LedgerAccount::Wallet {
        customer: CustomerId(1),
    };

    fn plan(percent_bps: u32) -> FeePlan {
        FeePlan {
            percent_bps,
            fixed: Amount::ZERO,
            minimum: None,
            maximum: None,
            rounding: RoundingRule::HalfEven,
        }
    }

    fn earnings(merchant: MerchantId) -> LedgerAccount {
        LedgerAccount::Earnings { merchant }
    }

    /// Revenue shares (merchant number, bps) with typed merchant ids.
    fn typed(shares: &[(u128, u32)]) -> Vec<(MerchantId, u32)> {
        shares
            .iter()
            .map(|&(m, bps)| (MerchantId(m), bps))
            .collect()
    }

    /// Prices `gross` at `percent_bps` with `shares` and checks the payment legs' (credit,
    /// amount) in booking order.
    fn check(
        gross: u128,
        percent_bps: u32,
        shares: &[(u128, u32)],
        expected: &[(LedgerAccount, u128)],
    ) {
        let shares = typed(shares);
        let split = price(
            Amount(gross),
            &plan(percent_bps),
            MerchantId(MERCHANT),
            &shares,
        )
        .unwrap();
        let legs = charge_legs(&split, ChargeKind::Charge, WALLET, None, None);
        let got: Vec<(LedgerAccount, u128)> = legs.iter().map(|l| (l.credit, l.amount.0)).collect();
        assert_eq!(got, expected);
        assert!(legs
            .iter()
            .all(|l| l.debit == WALLET && l.code == crate::accounts::CODE_CHARGE));
        assert_eq!(legs_total(&legs), Some(Amount(gross)));
    }

    #[test]
    fn a_charge_pays_the_merchant_the_platform_and_rounding_in_that_order() {
        check(
            1_000,
            250,
            &[],
            &[
                (earnings(MerchantId(MERCHANT)), 975),
                (LedgerAccount::PlatformRevenue, 25),
                (LedgerAccount::Rounding, 0),
            ],
        );
    }

    #[test]
    fn revenue_shares_floor_and_the_remainder_goes_to_rounding() {
        // Fee 50.05 -> 50 (half even); net 951: 665.7 -> 665, 285.3 -> 285, 1 left over.
        check(
            1_001,
            500,
            &[(20, 7_000), (30, 3_000)],
            &[
                (earnings(MerchantId(MERCHANT)), 0),
                (LedgerAccount::PlatformRevenue, 50),
                (earnings(MerchantId(20)), 665),
                (earnings(MerchantId(30)), 285),
                (LedgerAccount::Rounding, 1),
            ],
        );
    }

    #[test]
    fn invalid_shares_are_invalid_split() {
        let error = price(
            Amount(100),
            &plan(0),
            MerchantId(MERCHANT),
            &[(MerchantId(20), 5_000)],
        )
        .unwrap_err();
        assert_eq!(error.code(), "invalid_split");
        let error = price(
            Amount(100),
            &plan(0),
            MerchantId(MERCHANT),
            &[(MerchantId(20), 5_000), (MerchantId(20), 5_000)],
        );
        assert_eq!(error.unwrap_err().code(), "invalid_split");
    }

    #[test]
    fn budgets_draw_the_gross_after_the_payment_legs() {
        let split = price(Amount(300), &plan(1_000), MerchantId(MERCHANT), &[]).unwrap();
        let period = LedgerAccount::AllowancePeriod {
            allowance: AllowanceId(3),
            period: 0,
        };
        let cap = LedgerAccount::MonthlyCap {
            customer: CustomerId(1),
            month: 0,
        };
        let legs = charge_legs(&split, ChargeKind::Tip, WALLET, Some(period), Some(cap));
        assert_eq!(legs.len(), 5);
        assert!(legs[..3]
            .iter()
            .all(|l| l.code == crate::accounts::CODE_TIP));
        assert_eq!(
            (legs[3].debit, legs[3].amount, legs[3].role),
            (period, Amount(300), Role::Allowance)
        );
        assert_eq!(
            (legs[4].debit, legs[4].amount, legs[4].role),
            (cap, Amount(300), Role::MonthlyCap)
        );
        assert!(legs[3..]
            .iter()
            .all(|l| l.credit == LedgerAccount::LimitSink));
    }

    #[test]
    fn a_stored_split_must_add_up() {
        let parts = |fee: u128, net: u128| {
            ChargeSplit::new(
                Amount(100),
                MerchantId(MERCHANT),
                Amount(fee),
                Amount(net),
                vec![],
                Amount(0),
            )
        };
        assert!(parts(10, 90).is_ok());
        assert_eq!(parts(10, 91).unwrap_err().code(), "internal_error");
        let beside = ChargeSplit::new(
            Amount(100),
            MerchantId(MERCHANT),
            Amount(0),
            Amount(1),
            vec![PayeePart {
                merchant: MerchantId(2),
                bps: 10_000,
                amount: Amount(99),
            }],
            Amount(0),
        );
        assert!(matches!(beside, Err(SplitError::NetBesideShares { .. })));
    }

    #[test]
    fn a_refund_gives_back_each_part_to_the_source() {
        let split = price(Amount(1_000), &plan(1_000), MerchantId(MERCHANT), &[]).unwrap();
        let tab = LedgerAccount::Tab {
            tab: TabId(4),
            limit: 5_000,
        };
        let plan = plan_refund(
            &split,
            ChargeStatus::Succeeded,
            tab,
            Amount::ZERO,
            Some(Amount(500)),
            FeeRefundPolicy::Proportional,
        )
        .unwrap();
        let got: Vec<(LedgerAccount, u128)> =
            plan.legs.iter().map(|l| (l.debit, l.amount.0)).collect();
        assert_eq!(
            got,
            [
                (LedgerAccount::PlatformRevenue, 50),
                (earnings(MerchantId(MERCHANT)), 450)
            ]
        );
        assert!(plan
            .legs
            .iter()
            .all(|l| l.credit == tab && l.code == crate::accounts::CODE_REFUND));
        assert_eq!(plan.platform_fee_returned, Amount(50));
        assert_eq!(plan.first_leg, 0);
    }

    #[test]
    fn refund_refusals_keep_their_codes() {
        let split = price(Amount(1_000), &plan(0), MerchantId(MERCHANT), &[]).unwrap();
        let refund = |status, before, requested: Option<u128>| {
            plan_refund(
                &split,
                status,
                WALLET,
                Amount(before),
                requested.map(Amount),
                FeeRefundPolicy::Proportional,
            )
        };
        let code = |r: Result<RefundPlan, RefundRefusal>| r.unwrap_err().code();
        assert_eq!(
            code(refund(ChargeStatus::Failed, 0, None)),
            "charge_not_succeeded"
        );
        assert_eq!(
            code(refund(ChargeStatus::RequiresConfirmation, 0, None)),
            "charge_not_succeeded"
        );
        assert_eq!(refundable(ChargeStatus::Succeeded), Ok(()));
        assert_eq!(
            refundable(ChargeStatus::Failed),
            Err(RefundRefusal::ChargeNotSucceeded)
        );
        assert_eq!(
            code(refund(ChargeStatus::Succeeded, 600, Some(401))),
            "refund_exceeds_charge"
        );
        // Nothing left: refused even without an amount.
        assert_eq!(
            code(refund(ChargeStatus::Succeeded, 1_000, None)),
            "refund_exceeds_charge"
        );
        // Disputes beyond the gross leave nothing, not an underflow.
        assert_eq!(
            code(refund(ChargeStatus::Succeeded, 1_200, None)),
            "refund_exceeds_charge"
        );
        let rest = refund(ChargeStatus::Succeeded, 600, None).unwrap();
        assert_eq!(rest.amount, Amount(400));
    }

    fn shares_strategy() -> impl Strategy<Value = Vec<(u128, u32)>> {
        prop::collection::vec(1u32..=100, 0..5).prop_map(|weights| {
            // Weights to bps summing to exactly 10,000; the last share takes the remainder.
            let total: u32 = weights.iter().sum();
            let mut shares = Vec::new();
            let mut given = 0;
            for (i, w) in weights.iter().enumerate() {
                let bps = if i + 1 == weights.len() {
                    10_000 - given
                } else {
                    w * 10_000 / total
                };
                given += bps;
                shares.push((100 + i as u128, bps));
            }
            shares.retain(|(_, bps)| *bps > 0);
            shares
        })
    }

    proptest! {
        /// Conservation: the payment legs move exactly the gross, and each refund's legs its
        /// amount; refunding in two steps gives back every part exactly.
        #[test]
        fn legs_sum_to_the_gross_and_refunds_reverse_it_exactly(
            gross in 1u128..10u128.pow(15),
            percent_bps in 0u32..=10_000,
            shares in shares_strategy(),
            first_cut in 0u128..=10_000,
        ) {
            let split = price(Amount(gross), &plan(percent_bps), MerchantId(MERCHANT), &typed(&shares)).unwrap();
            let legs = charge_legs(&split, ChargeKind::Charge, WALLET, None, None);
            prop_assert_eq!(legs_total(&legs), Some(Amount(gross)));
            let rebuilt = ChargeSplit::new(
                split.gross(), MerchantId(MERCHANT), split.platform_fee(), split.merchant_net(),
                split.payees().to_vec(), split.rounding(),
            ).unwrap();
            prop_assert_eq!(&rebuilt, &split);

            let first = (gross * first_cut / 10_000).max(1).min(gross);
            let refund = |before: u128, amount: Option<u128>| plan_refund(
                &split, ChargeStatus::Succeeded, WALLET, Amount(before), amount.map(Amount),
                FeeRefundPolicy::Proportional,
            ).unwrap();
            let a = refund(0, Some(first));
            prop_assert_eq!(legs_total(&a.legs), Some(Amount(first)));
            let mut given_back = std::collections::HashMap::<LedgerAccount, u128>::new();
            for leg in &a.legs {
                *given_back.entry(leg.debit).or_default() += leg.amount.0;
            }
            if first < gross {
                let b = refund(first, None);
                prop_assert_eq!(b.amount, Amount(gross - first));
                prop_assert_eq!(legs_total(&b.legs), Some(Amount(gross - first)));
                for leg in &b.legs {
                    *given_back.entry(leg.debit).or_default() += leg.amount.0;
                }
            }
            let mut booked = std::collections::HashMap::<LedgerAccount, u128>::new();
            for leg in legs.iter().filter(|l| !l.amount.is_zero()) {
                *booked.entry(leg.credit).or_default() += leg.amount.0;
            }
            prop_assert_eq!(given_back, booked);
        }
    }
}
