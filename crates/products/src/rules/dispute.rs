//! How a chargeback is allocated.
//!
//! The card processor takes back a top-up or a tab settlement. The money comes back, in this
//! order, named and fixed:
//!
//! 1. for a top-up, what is still unspent in the wallet;
//! 2. the charges that money paid for, newest first (the caller lists them: for a top-up the
//!    wallet charges made since it, for a settlement the tab charges it paid for). Each charge
//!    gives back at most what refunds and earlier disputes left of it, by the proportional
//!    reversal of [`crate::fees::reverse`]: the platform's fee and the rounding remainder pro
//!    rata, the merchant's part (or each payee's) from its earnings, and what those earnings
//!    cannot cover from the merchant's debt account (the merchant owes it, and its next
//!    payouts pay it down first: see [`super::payout`]);
//! 3. what no charge covers is the platform's loss.
//!
//! Every leg returns money to the processor's clearing account, and the legs sum to the
//! disputed amount. All of it is one chain.

use crate::ids::{CustomerId, MerchantId};
use std::collections::BTreeMap;

use farthing_ledger::Amount;

use super::charge::ChargeSplit;
use super::{LedgerAccount, Leg, Role};
use crate::fees::{reverse, FeeError, FeeRefundPolicy, RefundError};

/// The refund policy a dispute reverses charges by: every part gives back pro rata.
pub const DISPUTE_REVERSAL_POLICY: FeeRefundPolicy = FeeRefundPolicy::Proportional;

/// What is disputed and the wallet it came into.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Disputed {
    pub customer: CustomerId,
    pub amount: Amount,
    /// `Some(available)` for a top-up: the wallet's unspent balance is drawn on first.
    /// `None` for a tab settlement.
    pub wallet_available: Option<Amount>,
}

impl Disputed {
    /// What the unspent wallet gives back: all of it up to the disputed amount, for a top-up.
    fn wallet_part(&self) -> u128 {
        self.wallet_available
            .map_or(0, |available| self.amount.0.min(available.0))
    }
}

/// A charge the disputed money paid for.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct DisputedCharge {
    pub id: u128,
    pub split: ChargeSplit,
    /// What committed refunds and earlier disputes already took back from it.
    pub reversed_so_far: Amount,
}

impl DisputedCharge {
    /// What refunds and earlier disputes left of it: the most a dispute can take back.
    pub fn left(&self) -> Amount {
        Amount(self.split.gross().0.saturating_sub(self.reversed_so_far.0))
    }
}

/// What a dispute still needs from charges after the ones listed so far. The caller loads
/// (and locks) the charges newest first while it is not zero: [`plan_dispute`] draws on no
/// charge after that.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Uncovered(Amount);

impl Uncovered {
    /// Before any charge: the disputed amount less what the unspent wallet gives.
    pub fn new(disputed: &Disputed) -> Uncovered {
        Uncovered(Amount(disputed.amount.0 - disputed.wallet_part()))
    }

    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }

    /// What is still needed once `charge` gives what is left of it.
    pub fn after(self, charge: &DisputedCharge) -> Uncovered {
        Uncovered(Amount(self.0 .0.saturating_sub(charge.left().0)))
    }
}

/// The dispute's plan: its legs, and whom it debited, for the dispute's record.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct DisputePlan {
    /// Positional, zero legs included (see [`super`]); they sum to the disputed amount.
    pub legs: Vec<Leg>,
    /// Taken back from the unspent wallet.
    pub from_wallet: Amount,
    /// Each merchant concerned, in first-debited order, and its total part (from earnings and
    /// debt together).
    pub merchants: Vec<(u128, Amount)>,
    /// Each charge reversed, newest first, and by how much.
    pub charges: Vec<(u128, Amount)>,
    /// What nothing covered: the platform's loss.
    pub loss: Amount,
}

/// Why a dispute could not be planned: a stored charge is inconsistent. Code `internal_error`.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DisputeError {
    #[error("dispute split: {0}")]
    Split(#[from] FeeError),
    #[error("dispute split: {0}")]
    Allocation(#[from] RefundError),
    /// A bug: the legs do not sum to the disputed amount. Reported rather than booked.
    #[error("dispute plan: the legs do not sum to the disputed amount ({amount})")]
    Unbalanced { amount: Amount },
}

impl DisputeError {
    pub const fn code(&self) -> &'static str {
        "internal_error"
    }
}

/// Every merchant whose earnings a dispute over `charges` may debit: look their available
/// earnings up for [`plan_dispute`].
pub fn merchants_involved(charges: &[DisputedCharge]) -> Vec<u128> {
    let mut merchants: Vec<u128> = Vec::new();
    for charge in charges {
        let split = &charge.split;
        let ids =
            std::iter::once(split.merchant()).chain(split.payees().iter().map(|p| p.merchant.0));
        for id in ids {
            if !merchants.contains(&id) {
                merchants.push(id);
            }
        }
    }
    merchants
}

/// Allocates a dispute. `charges` are newest first (those after [`Uncovered`] reaches zero
/// are not drawn on); `earnings` is each merchant's available earnings before the dispute (a
/// merchant missing from it has none).
pub fn plan_dispute(
    disputed: &Disputed,
    charges: &[DisputedCharge],
    earnings: &BTreeMap<u128, Amount>,
) -> Result<DisputePlan, DisputeError> {
    let mut legs = Vec::new();
    let from_wallet = disputed.wallet_part();
    if disputed.wallet_available.is_some() {
        let wallet = LedgerAccount::Wallet {
            customer: disputed.customer,
        };
        legs.push(chargeback(wallet, from_wallet));
    }
    let mut needed = Uncovered::new(disputed).0 .0;
    // Earnings each merchant can still give, as this dispute draws on them.
    let mut left: BTreeMap<u128, u128> = BTreeMap::new();
    let mut merchants: Vec<(u128, Amount)> = Vec::new();
    let mut reversed = Vec::new();
    for charge in charges {
        if needed == 0 {
            break;
        }
        let take = needed.min(charge.left().0);
        if take == 0 {
            continue;
        }
        let reversal = reverse(
            &charge.split.to_fee_split()?,
            charge.reversed_so_far,
            Amount(take),
            DISPUTE_REVERSAL_POLICY,
        )?;
        for (destination, amount) in reversal.parts() {
            let Some(merchant) = charge.split.part_merchant(&destination) else {
                legs.push(chargeback(
                    charge.split.part_account(&destination),
                    amount.0,
                ));
                continue;
            };
            let left = left
                .entry(merchant)
                .or_insert_with(|| earnings.get(&merchant).map_or(0, |a| a.0));
            let covered = amount.0.min(*left);
            *left -= covered;
            legs.push(chargeback(
                LedgerAccount::Earnings {
                    merchant: MerchantId(merchant),
                },
                covered,
            ));
            legs.push(chargeback(
                LedgerAccount::MerchantDebt {
                    merchant: MerchantId(merchant),
                },
                amount.0 - covered,
            ));
            match merchants.iter_mut().find(|(m, _)| *m == merchant) {
                Some((_, total)) => total.0 += amount.0,
                None => merchants.push((merchant, amount)),
            }
        }
        needed -= take;
        reversed.push((charge.id, Amount(take)));
    }
    legs.push(chargeback(LedgerAccount::DisputeLosses, needed));
    let plan = DisputePlan {
        legs,
        from_wallet: Amount(from_wallet),
        merchants,
        charges: reversed,
        loss: Amount(needed),
    };
    if super::legs_total(&plan.legs) != Some(disputed.amount) {
        return Err(DisputeError::Unbalanced {
            amount: disputed.amount,
        });
    }
    Ok(plan)
}

/// A leg that returns `amount` from `debit` to the processor.
fn chargeback(debit: LedgerAccount, amount: u128) -> Leg {
    Leg {
        debit,
        credit: LedgerAccount::ProcessorClearing,
        amount: Amount(amount),
        code: crate::accounts::CODE_CHARGEBACK,
        role: Role::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fees::{FeePlan, RoundingRule};
    use crate::rules::charge::price;
    use proptest::prelude::*;

    const CUSTOMER: u128 = 1;
    const WALLET: LedgerAccount = LedgerAccount::Wallet {
        customer: CustomerId(CUSTOMER),
    };

    fn charge(
        id: u128,
        merchant: MerchantId,
        gross: u128,
        fee_bps: u32,
        reversed: u128,
    ) -> DisputedCharge {
        let plan = FeePlan {
            percent_bps: fee_bps,
            fixed: Amount::ZERO,
            minimum: None,
            maximum: None,
            rounding: RoundingRule::HalfEven,
        };
        DisputedCharge {
            id,
            split: price(Amount(gross), &plan, merchant, &[]).unwrap(),
            reversed_so_far: Amount(reversed),
        }
    }

    fn plan(
        amount: u128,
        wallet: Option<u128>,
        charges: &[DisputedCharge],
        earnings: &[(u128, u128)],
    ) -> DisputePlan {
        let disputed = Disputed {
            customer: CustomerId(CUSTOMER),
            amount: Amount(amount),
            wallet_available: wallet.map(Amount),
        };
        let earnings = earnings.iter().map(|(m, a)| (*m, Amount(*a))).collect();
        plan_dispute(&disputed, charges, &earnings).unwrap()
    }

    /// The non-zero legs as (debit, amount).
    fn debits(plan: &DisputePlan) -> Vec<(LedgerAccount, u128)> {
        plan.legs
            .iter()
            .filter(|l| !l.amount.is_zero())
            .map(|l| (l.debit, l.amount.0))
            .collect()
    }

    #[test]
    fn the_unspent_wallet_goes_first() {
        let p = plan(
            100,
            Some(150),
            &[charge(9, MerchantId(5), 80, 0, 0)],
            &[(5, 80)],
        );
        assert_eq!(debits(&p), [(WALLET, 100)]);
        assert_eq!(p.from_wallet, Amount(100));
        assert!(p.charges.is_empty() && p.merchants.is_empty());
        // Zero legs keep their places: the wallet, then the loss.
        assert_eq!(p.legs.len(), 2);
        assert!(p
            .legs
            .iter()
            .all(|l| l.credit == LedgerAccount::ProcessorClearing));
    }

    #[test]
    fn then_charges_newest_first_with_fees_pro_rata() {
        // Wallet has 20; 80 more from the newest charge (10% fee), then the next.
        let charges = [
            charge(2, MerchantId(5), 50, 1_000, 0),
            charge(1, MerchantId(6), 100, 1_000, 0),
        ];
        let p = plan(100, Some(20), &charges, &[(5, 1_000), (6, 1_000)]);
        assert_eq!(
            debits(&p),
            [
                (WALLET, 20),
                (LedgerAccount::PlatformRevenue, 5),
                (
                    LedgerAccount::Earnings {
                        merchant: MerchantId(5)
                    },
                    45
                ),
                (LedgerAccount::PlatformRevenue, 3),
                (
                    LedgerAccount::Earnings {
                        merchant: MerchantId(6)
                    },
                    27
                ),
            ]
        );
        assert_eq!(p.charges, [(2, Amount(50)), (1, Amount(30))]);
        assert_eq!(p.merchants, [(5, Amount(45)), (6, Amount(27))]);
        assert_eq!(p.loss, Amount::ZERO);
    }

    #[test]
    fn what_earnings_cannot_cover_becomes_the_merchants_debt() {
        // The same merchant twice: its 30 of earnings are used once.
        let charges = [
            charge(2, MerchantId(5), 40, 0, 0),
            charge(1, MerchantId(5), 40, 0, 0),
        ];
        let p = plan(80, None, &charges, &[(5, 30)]);
        assert_eq!(
            debits(&p),
            [
                (
                    LedgerAccount::Earnings {
                        merchant: MerchantId(5)
                    },
                    30
                ),
                (
                    LedgerAccount::MerchantDebt {
                        merchant: MerchantId(5)
                    },
                    10
                ),
                (
                    LedgerAccount::MerchantDebt {
                        merchant: MerchantId(5)
                    },
                    40
                ),
            ]
        );
        assert_eq!(p.merchants, [(5, Amount(80))]);
    }

    #[test]
    fn refunded_charges_give_only_what_is_left_and_the_rest_is_the_platforms_loss() {
        let charges = [
            charge(2, MerchantId(5), 40, 0, 40),
            charge(1, MerchantId(5), 40, 0, 25),
        ];
        // A merchant missing from `earnings` has none.
        let p = plan(100, None, &charges, &[]);
        assert_eq!(
            debits(&p),
            [
                (
                    LedgerAccount::MerchantDebt {
                        merchant: MerchantId(5)
                    },
                    15
                ),
                (LedgerAccount::DisputeLosses, 85),
            ]
        );
        assert_eq!(p.charges, [(1, Amount(15))]);
        assert_eq!(p.loss, Amount(85));
    }

    proptest! {
        /// Conservation: the legs sum to the disputed amount; no charge gives back more than is
        /// left of it; no merchant's earnings are debited beyond what was available.
        #[test]
        fn allocation_conserves_and_never_overdraws(
            amount in 1u128..100_000,
            wallet in prop::option::of(0u128..50_000),
            charges in prop::collection::vec(
                (1u128..4, 1u128..20_000, 0u32..=10_000, 0u128..20_000), 0..8),
            earnings in prop::collection::vec(0u128..20_000, 3),
        ) {
            let charges: Vec<DisputedCharge> = charges
                .into_iter()
                .enumerate()
                .map(|(i, (m, gross, bps, reversed))| {
                    charge(i as u128, MerchantId(m), gross, bps, reversed.min(gross))
                })
                .collect();
            let earnings: Vec<(u128, u128)> =
                earnings.into_iter().enumerate().map(|(i, a)| (i as u128 + 1, a)).collect();
            let p = plan(amount, wallet, &charges, &earnings);
            prop_assert_eq!(crate::rules::legs_total(&p.legs), Some(Amount(amount)));
            // The charges listed until nothing is uncovered plan the same dispute.
            let disputed = Disputed {
                customer: CustomerId(CUSTOMER),
                amount: Amount(amount),
                wallet_available: wallet.map(Amount),
            };
            let mut uncovered = Uncovered::new(&disputed);
            let mut listed = 0;
            while listed < charges.len() && !uncovered.is_zero() {
                uncovered = uncovered.after(&charges[listed]);
                listed += 1;
            }
            prop_assert_eq!(&plan(amount, wallet, &charges[..listed], &earnings), &p);
            prop_assert!(p.charges.iter().all(|(id, _)| (*id as usize) < listed));
            prop_assert!(p.from_wallet.0 <= wallet.unwrap_or(0));
            for (id, taken) in &p.charges {
                let c = &charges[*id as usize];
                prop_assert!(taken.0 <= c.split.gross().0 - c.reversed_so_far.0);
            }
            for (merchant, available) in &earnings {
                let debited: u128 = p.legs.iter()
                    .filter(|l| l.debit == LedgerAccount::Earnings { merchant: MerchantId(*merchant) })
                    .map(|l| l.amount.0)
                    .sum();
                prop_assert!(debited <= *available);
            }
        }
    }
}
