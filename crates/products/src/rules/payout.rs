//! Payouts and the rolling reserve.
//!
//! A payout sends part of a merchant's earnings to its bank account and holds back a reserve
//! of `reserve_bps` basis points, rounded down ([`RESERVE_ROUNDING`]): on a requested amount
//! the reserve is held on top of it; on "everything" the reserve is taken out of the balance
//! and the rest is sent. Both leave the earnings in one chain ([`PayoutPlan::legs`]); a payout
//! the rail refuses returns both ([`PayoutPlan::return_legs`]). What a payout held returns to
//! the earnings `reserve_days` later ([`reserve_release`]), unless the payout failed.
//!
//! A payout is triggered by hand, by the earnings reaching the merchant's threshold after a
//! charge ([`threshold_payout_due`]), or by the merchant's schedule.
//!
//! Its lifecycle: `pending` from when its record is written (before its chain) until the rail
//! settles it, then `paid`, or `failed` with the money returned. The rail is asked again on a
//! backoff ([`rail_asks`]) while it answers that the payout is in flight or that it is
//! unavailable; what each answer makes of the payout is [`after_rail`].
//!
//! Netting: what a merchant owes after chargebacks its earnings could not cover (its debt
//! account, see [`super::dispute`]) is paid first. A payout's chain moves `min(earnings, debt)`
//! from the earnings to the debt account before anything is sent, and the payout, its reserve
//! and its threshold are measured on what is left ([`Earnings::payable`]). The recovery stays
//! booked if the rail later refuses the payout: only the amount sent and the reserve return.

use crate::ids::MerchantId;
use std::time::Duration;

use farthing_ledger::{Amount, Timestamp};

use super::{LedgerAccount, Leg, Role};
use crate::fees::{mul_div, RoundingRule, BPS_PER_WHOLE};
use crate::processor::PayoutOutcome;
use crate::schedule::{Backoff, NANOS_PER_DAY};

/// The reserve is rounded down: the merchant is paid the rounding unit, not held.
pub const RESERVE_ROUNDING: RoundingRule = RoundingRule::Down;

/// The longest a reserve may be held: ten years.
pub const RESERVE_DAYS_MAX: u32 = 3650;

/// A rolling reserve's default hold: 90 days, the usual card chargeback window.
pub const RESERVE_DAYS_DEFAULT: u32 = 90;

/// A merchant's payout terms. Fields are private: [`PayoutTerms::new`] checks them, so a plan
/// never holds back more than the payout.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct PayoutTerms {
    threshold: Amount,
    reserve_bps: u32,
    reserve_days: u32,
}

/// Why payout terms are refused.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PayoutTermsError {
    /// Code `invalid_reserve` (parameter `reserve_bps`).
    #[error("reserve_bps must be 0 to 10000")]
    ReserveBps { reserve_bps: u32 },
    /// Code `invalid_reserve_days` (parameter `reserve_days`).
    #[error("reserve_days must be 1 to {RESERVE_DAYS_MAX}")]
    ReserveDays { reserve_days: u32 },
}

impl PayoutTermsError {
    pub const fn code(&self) -> &'static str {
        match self {
            PayoutTermsError::ReserveBps { .. } => "invalid_reserve",
            PayoutTermsError::ReserveDays { .. } => "invalid_reserve_days",
        }
    }
}

impl PayoutTerms {
    /// Terms paying out at `threshold` (zero: never by threshold), holding back `reserve_bps`
    /// for `reserve_days` days.
    pub fn new(
        threshold: Amount,
        reserve_bps: u32,
        reserve_days: u32,
    ) -> Result<PayoutTerms, PayoutTermsError> {
        if reserve_bps > BPS_PER_WHOLE {
            return Err(PayoutTermsError::ReserveBps { reserve_bps });
        }
        if !(1..=RESERVE_DAYS_MAX).contains(&reserve_days) {
            return Err(PayoutTermsError::ReserveDays { reserve_days });
        }
        Ok(PayoutTerms {
            threshold,
            reserve_bps,
            reserve_days,
        })
    }

    /// The same reserve terms paying out at `threshold` (zero: never by threshold). Any
    /// threshold is valid: it only says when a payout starts, not what it takes.
    pub fn with_threshold(self, threshold: Amount) -> PayoutTerms {
        PayoutTerms { threshold, ..self }
    }

    pub fn threshold(&self) -> Amount {
        self.threshold
    }

    pub fn reserve_bps(&self) -> u32 {
        self.reserve_bps
    }

    pub fn reserve_days(&self) -> u32 {
        self.reserve_days
    }

    /// `floor(amount * reserve_bps / 10000)`; never more than `amount`.
    pub fn reserve_of(&self, amount: Amount) -> Amount {
        // Cannot fail: the divisor is non-zero and reserve_bps <= 10000 keeps the quotient at
        // most `amount`.
        let reserve = mul_div(
            amount.0,
            u128::from(self.reserve_bps),
            u128::from(BPS_PER_WHOLE),
            RESERVE_ROUNDING,
        )
        .unwrap_or(0);
        assert!(reserve <= amount.0, "a reserve above its payout");
        Amount(reserve)
    }
}

/// A merchant's earnings as a payout sees them: what its earnings account holds and what its
/// debt account says it owes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Earnings {
    /// The earnings account's available balance.
    pub available: Amount,
    /// The debt account's balance: chargebacks the earnings could not cover, less what
    /// earlier payouts recovered.
    pub debt: Amount,
}

impl Earnings {
    /// What a payout takes from the earnings for the debt first: all of the debt if the
    /// earnings cover it, else all of the earnings.
    pub fn recovery(&self) -> Amount {
        self.available.min(self.debt)
    }

    /// What is left to pay out (and to hold a reserve from) once the debt is paid down.
    pub fn payable(&self) -> Amount {
        Amount(self.available.0 - self.recovery().0)
    }
}

/// What started a payout; stored and shown as its [`PayoutTrigger::code`].
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum PayoutTrigger {
    Manual,
    Threshold,
    Schedule,
}

impl PayoutTrigger {
    /// As the payout's `trigger` field says it.
    pub const fn code(self) -> &'static str {
        match self {
            PayoutTrigger::Manual => "manual",
            PayoutTrigger::Threshold => "threshold",
            PayoutTrigger::Schedule => "schedule",
        }
    }
}

/// Why a payout is refused.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PayoutRefusal {
    /// Code `below_threshold`: a threshold payout found the earnings below the threshold
    /// (another payout took them first). Not reported as a failure.
    #[error("earnings are below the threshold")]
    BelowThreshold,
    /// Code `insufficient_balance` (parameter `amount`): nothing to pay, or the payout and its
    /// reserve exceed what the earnings leave once the debt is paid (`available`; `debt` is
    /// what the merchant owed). A scheduled payout does not report it as a failure.
    #[error("the merchant has {available} available after a debt of {debt}")]
    InsufficientBalance { available: Amount, debt: Amount },
}

impl PayoutRefusal {
    pub const fn code(&self) -> &'static str {
        match self {
            PayoutRefusal::BelowThreshold => "below_threshold",
            PayoutRefusal::InsufficientBalance { .. } => "insufficient_balance",
        }
    }
}

/// A payout to book: `recovered` paying down the debt, `amount` sent, `reserve` held back, and
/// when the reserve returns.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct PayoutPlan {
    pub amount: Amount,
    pub reserve: Amount,
    /// Taken from the earnings for the merchant's debt before anything is sent.
    pub recovered: Amount,
    /// `created + reserve_days` days, when there is a reserve.
    pub reserve_release_at: Option<Timestamp>,
}

/// Plans a payout of `requested` (everything payable less the reserve if `None`) from
/// `earnings`, created at `now`: the debt is recovered first, and the payout and its reserve
/// come out of what is left ([`Earnings::payable`]). The ledger still refuses the chain if the
/// earnings moved meanwhile.
pub fn plan_payout(
    terms: &PayoutTerms,
    trigger: PayoutTrigger,
    requested: Option<Amount>,
    earnings: Earnings,
    now: Timestamp,
) -> Result<PayoutPlan, PayoutRefusal> {
    let available = earnings.payable();
    if trigger == PayoutTrigger::Threshold && available < terms.threshold {
        return Err(PayoutRefusal::BelowThreshold);
    }
    let (amount, reserve) = match requested {
        Some(amount) => (amount, terms.reserve_of(amount)),
        None => {
            let reserve = terms.reserve_of(available);
            (Amount(available.0 - reserve.0), reserve)
        }
    };
    let covered = amount
        .checked_add(reserve)
        .is_some_and(|total| total <= available);
    if amount.is_zero() || !covered {
        return Err(PayoutRefusal::InsufficientBalance {
            available,
            debt: earnings.debt,
        });
    }
    let reserve_release_at = (!reserve.is_zero()).then(|| {
        Timestamp(
            u64::from(terms.reserve_days)
                .saturating_mul(NANOS_PER_DAY)
                .saturating_add(now.0),
        )
    });
    Ok(PayoutPlan {
        amount,
        reserve,
        recovered: earnings.recovery(),
        reserve_release_at,
    })
}

impl PayoutPlan {
    /// The payout's chain: the amount from the earnings to the payout clearing account, the
    /// reserve from the earnings to the reserve account, and what pays down the debt from the
    /// earnings to the debt account. Leg 1 is the reserve hold (the release looks for it); the
    /// recovery is leg 2 so that the ids of the first two never move (a zero leg keeps its
    /// place, see [`super`]). The chain is all or nothing, so the order of its legs does not
    /// change what the earnings must cover: the recovery is never skipped for the payout.
    pub fn legs(&self, merchant: MerchantId) -> [Leg; 3] {
        let earnings = LedgerAccount::Earnings { merchant };
        [
            Leg {
                debit: earnings,
                credit: LedgerAccount::PayoutClearing,
                amount: self.amount,
                code: crate::accounts::CODE_PAYOUT,
                role: Role::Payment,
            },
            Leg {
                debit: earnings,
                credit: LedgerAccount::Reserve { merchant },
                amount: self.reserve,
                code: crate::accounts::CODE_RESERVE_HOLD,
                role: Role::Payment,
            },
            Leg {
                debit: earnings,
                credit: LedgerAccount::MerchantDebt { merchant },
                amount: self.recovered,
                code: crate::accounts::CODE_DEBT_RECOVERY,
                role: Role::Payment,
            },
        ]
    }

    /// The chain that gives the amount and the reserve back when the rail refuses the payout;
    /// the debt stays paid. See [`payout_return`].
    pub fn return_legs(&self, merchant: MerchantId) -> [Leg; 2] {
        payout_return(merchant, self.amount, Some(self.reserve), false)
    }
}

/// The chain that gives a failed payout back to the earnings: the `sent` amount, and the
/// reserve its hold leg booked (`held`) unless the reserve's release already returned it. The
/// debt the payout recovered stays paid. Leg 1 returns the reserve (the release looks for it).
pub fn payout_return(
    merchant: MerchantId,
    sent: Amount,
    held: Option<Amount>,
    released: bool,
) -> [Leg; 2] {
    let earnings = LedgerAccount::Earnings { merchant };
    let reserve = held.filter(|_| !released).unwrap_or(Amount::ZERO);
    [
        Leg {
            debit: LedgerAccount::PayoutClearing,
            credit: earnings,
            amount: sent,
            code: crate::accounts::CODE_PAYOUT_RETURN,
            role: Role::Other,
        },
        Leg {
            debit: LedgerAccount::Reserve { merchant },
            credit: earnings,
            amount: reserve,
            code: crate::accounts::CODE_PAYOUT_RETURN,
            role: Role::Other,
        },
    ]
}

/// Asking the rail again about a pending payout: a minute after the first answer, doubling to
/// an hour; 48 asks in all (about 42 hours).
pub const RAIL_ASK_BASE_S: u32 = 60;
pub const RAIL_ASK_FACTOR: u32 = 2;
pub const RAIL_ASK_MAX_S: u32 = 3600;
pub const RAIL_ASKS_MAX: u32 = 48;

/// The backoff of asking the rail again (the constants above).
pub fn rail_asks() -> Backoff {
    // The constants satisfy Backoff's checks; the test below proves it.
    match Backoff::new(
        RAIL_ASK_BASE_S,
        RAIL_ASK_FACTOR,
        RAIL_ASK_MAX_S,
        RAIL_ASKS_MAX,
    ) {
        Ok(backoff) => backoff,
        Err(error) => unreachable!("rail ask constants: {error}"),
    }
}

/// What the rail's answer makes of a pending payout.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum RailStep {
    /// `paid`.
    Paid,
    /// `failed`: nothing was sent, so the money goes back to the earnings.
    Failed,
    /// Still `pending`: ask again after the delay.
    AskAgain(Duration),
    /// Still `pending`, and the rail has been asked [`RAIL_ASKS_MAX`] times: it accepted the
    /// payout but never settled it. The money may have left, so nothing is returned and
    /// nothing more is asked on its own: an operator must look.
    Unresolved,
}

/// What `outcome`, the rail's answer to the `asks`-th ask about a payout (1 for the first),
/// makes of it: sent → paid; failed for good → failed; in flight or unavailable → ask again on
/// the [`rail_asks`] backoff (jittered by `seed`, something stable per payout). Once the asks
/// are used up, an unavailable rail means the payout failed (the rail never took it), while one
/// in flight stays unresolved.
pub fn after_rail(outcome: &PayoutOutcome, asks: u32, seed: u64) -> RailStep {
    let again = || rail_asks().delay_with_jitter(asks, seed);
    match outcome {
        PayoutOutcome::Sent { .. } => RailStep::Paid,
        PayoutOutcome::Failed { reason, .. } if reason.is_retryable() => {
            again().map_or(RailStep::Failed, RailStep::AskAgain)
        }
        PayoutOutcome::Failed { .. } => RailStep::Failed,
        PayoutOutcome::InFlight { .. } => again().map_or(RailStep::Unresolved, RailStep::AskAgain),
    }
}

/// Whether a charge that paid the merchant in its payout asset should trigger a threshold
/// payout: a threshold is set and what the earnings leave after the debt reached it.
pub fn threshold_payout_due(
    terms: &PayoutTerms,
    in_payout_asset: bool,
    earnings: Earnings,
) -> bool {
    !terms.threshold.is_zero() && in_payout_asset && earnings.payable() >= terms.threshold
}

/// The release of a payout's reserve, when it is due: the amount its hold leg booked goes back
/// from the reserve to the earnings, once, unless the payout's return chain already gave it
/// back (a failed payout) or the hold was never booked. `None` when there is nothing to release.
pub fn reserve_release(merchant: MerchantId, held: Option<Amount>, returned: bool) -> Option<Leg> {
    let held = held.filter(|_| !returned)?;
    Some(Leg {
        debit: LedgerAccount::Reserve { merchant },
        credit: LedgerAccount::Earnings { merchant },
        amount: held,
        code: crate::accounts::CODE_RESERVE_RELEASE,
        role: Role::Other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Records written when the trigger was a string read back as the enum, and are written
    /// the same way: the stored word is the trigger's code.
    #[test]
    fn a_trigger_is_stored_as_its_code() {
        for trigger in [
            PayoutTrigger::Manual,
            PayoutTrigger::Threshold,
            PayoutTrigger::Schedule,
        ] {
            let stored = format!("\"{}\"", trigger.code());
            assert_eq!(serde_json::to_string(&trigger).unwrap(), stored);
            assert_eq!(
                serde_json::from_str::<PayoutTrigger>(&stored).unwrap(),
                trigger
            );
        }
    }

    const NOW: Timestamp = Timestamp(1_000);

    fn terms(threshold: u128, reserve_bps: u32) -> PayoutTerms {
        PayoutTerms::new(Amount(threshold), reserve_bps, RESERVE_DAYS_DEFAULT).unwrap()
    }

    fn earnings(available: u128, debt: u128) -> Earnings {
        Earnings {
            available: Amount(available),
            debt: Amount(debt),
        }
    }

    /// Plans a payout from earnings with no debt and compares (amount, reserve) or the
    /// refusal's code.
    fn check(
        terms: PayoutTerms,
        trigger: PayoutTrigger,
        requested: Option<u128>,
        available: u128,
        expected: Result<(u128, u128), &str>,
    ) {
        check_owing(
            terms,
            trigger,
            requested,
            (available, 0),
            expected.map(|(a, r)| (0, a, r)),
        );
    }

    /// Plans a payout from (available, debt) and compares (recovered, amount, reserve) or the
    /// refusal's code.
    fn check_owing(
        terms: PayoutTerms,
        trigger: PayoutTrigger,
        requested: Option<u128>,
        (available, debt): (u128, u128),
        expected: Result<(u128, u128, u128), &str>,
    ) {
        let got = plan_payout(
            &terms,
            trigger,
            requested.map(Amount),
            earnings(available, debt),
            NOW,
        )
        .map(|p| (p.recovered.0, p.amount.0, p.reserve.0))
        .map_err(|e| e.code());
        assert_eq!(got, expected);
    }

    #[test]
    fn everything_pays_the_balance_less_a_rounded_down_reserve() {
        use PayoutTrigger::*;
        check(terms(0, 1_000), Manual, None, 1_005, Ok((905, 100)));
        check(terms(0, 0), Schedule, None, 1_005, Ok((1_005, 0)));
        check(
            terms(0, 10_000),
            Manual,
            None,
            1_005,
            Err("insufficient_balance"),
        );
        check(
            terms(0, 1_000),
            Manual,
            None,
            0,
            Err("insufficient_balance"),
        );
    }

    #[test]
    fn a_requested_amount_holds_its_reserve_on_top() {
        use PayoutTrigger::Manual;
        check(terms(0, 1_000), Manual, Some(500), 1_000, Ok((500, 50)));
        check(
            terms(0, 1_000),
            Manual,
            Some(910),
            1_000,
            Err("insufficient_balance"),
        );
        check(terms(0, 1_000), Manual, Some(909), 1_000, Ok((909, 90)));
    }

    #[test]
    fn a_threshold_payout_waits_for_the_threshold() {
        use PayoutTrigger::*;
        check(terms(500, 0), Threshold, None, 499, Err("below_threshold"));
        check(terms(500, 0), Threshold, None, 500, Ok((500, 0)));
        // Only the threshold trigger looks at the threshold.
        check(terms(500, 0), Manual, None, 499, Ok((499, 0)));
        assert!(!threshold_payout_due(&terms(0, 0), true, earnings(1, 0)));
        assert!(!threshold_payout_due(&terms(5, 0), false, earnings(5, 0)));
        assert!(threshold_payout_due(&terms(5, 0), true, earnings(5, 0)));
    }

    /// Regression (issue 16, item 9): a merchant paid out before a chargeback debited it was
    /// paid its next earnings in full, and the debt stayed. Now the debt comes first.
    #[test]
    fn a_payout_pays_the_debt_down_before_anything_is_sent() {
        use PayoutTrigger::*;
        // Earnings 1000, debt 300: 300 recovered, 700 sent.
        check_owing(terms(0, 0), Manual, None, (1_000, 300), Ok((300, 700, 0)));
        // The reserve is measured on what is left after the debt: 10% of 700.
        check_owing(
            terms(0, 1_000),
            Schedule,
            None,
            (1_000, 300),
            Ok((300, 630, 70)),
        );
        // A requested amount and its reserve must fit in what is left.
        check_owing(
            terms(0, 1_000),
            Manual,
            Some(600),
            (1_000, 300),
            Ok((300, 600, 60)),
        );
        check_owing(
            terms(0, 1_000),
            Manual,
            Some(700),
            (1_000, 300),
            Err("insufficient_balance"),
        );
        // Earnings that do not cover the debt pay nothing (and recover nothing: the payout
        // is refused whole).
        check_owing(
            terms(0, 0),
            Manual,
            None,
            (300, 300),
            Err("insufficient_balance"),
        );
        check_owing(
            terms(0, 0),
            Manual,
            None,
            (200, 300),
            Err("insufficient_balance"),
        );
        let refusal = plan_payout(&terms(0, 0), Manual, None, earnings(200, 300), NOW);
        assert_eq!(
            refusal,
            Err(PayoutRefusal::InsufficientBalance {
                available: Amount(0),
                debt: Amount(300)
            })
        );
        // The threshold is measured after the debt too.
        check_owing(
            terms(500, 0),
            Threshold,
            None,
            (700, 300),
            Err("below_threshold"),
        );
        check_owing(
            terms(500, 0),
            Threshold,
            None,
            (800, 300),
            Ok((300, 500, 0)),
        );
        assert!(!threshold_payout_due(
            &terms(500, 0),
            true,
            earnings(700, 300)
        ));
        assert!(threshold_payout_due(
            &terms(500, 0),
            true,
            earnings(800, 300)
        ));
    }

    #[test]
    fn the_recovery_is_leg_two_from_the_earnings_to_the_debt_and_is_never_returned() {
        let plan = plan_payout(
            &terms(0, 1_000),
            PayoutTrigger::Manual,
            None,
            earnings(1_000, 300),
            NOW,
        )
        .unwrap();
        let legs = plan.legs(MerchantId(3));
        let account = LedgerAccount::Earnings {
            merchant: MerchantId(3),
        };
        assert_eq!(
            legs.map(|l| (l.debit, l.credit, l.amount.0)),
            [
                (account, LedgerAccount::PayoutClearing, 630),
                (
                    account,
                    LedgerAccount::Reserve {
                        merchant: MerchantId(3)
                    },
                    70
                ),
                (
                    account,
                    LedgerAccount::MerchantDebt {
                        merchant: MerchantId(3)
                    },
                    300
                ),
            ]
        );
        assert_eq!(legs[2].code, crate::accounts::CODE_DEBT_RECOVERY);
        // The return gives back what was sent and held, not what paid the debt.
        let back = plan.return_legs(MerchantId(3));
        assert_eq!(
            back.map(|l| (l.credit, l.amount.0)),
            [(account, 630), (account, 70)]
        );
        // Without a debt the recovery leg is zero: the chain's ids are those of before.
        let plain = plan_payout(
            &terms(0, 0),
            PayoutTrigger::Manual,
            None,
            earnings(10, 0),
            NOW,
        );
        assert_eq!(plain.unwrap().legs(MerchantId(3))[2].amount, Amount::ZERO);
    }

    #[test]
    fn the_reserve_returns_after_its_days_once_and_not_after_a_failed_payout() {
        let plan = plan_payout(
            &terms(0, 1_000),
            PayoutTrigger::Manual,
            None,
            earnings(100, 0),
            NOW,
        )
        .unwrap();
        assert_eq!(
            plan.reserve_release_at,
            Some(Timestamp(NOW.0 + 90 * NANOS_PER_DAY))
        );
        let none = plan_payout(
            &terms(0, 0),
            PayoutTrigger::Manual,
            None,
            earnings(100, 0),
            NOW,
        );
        assert_eq!(none.unwrap().reserve_release_at, None);
        let release = reserve_release(MerchantId(3), Some(Amount(10)), false).unwrap();
        assert_eq!(
            (release.debit, release.credit, release.amount),
            (
                LedgerAccount::Reserve {
                    merchant: MerchantId(3)
                },
                LedgerAccount::Earnings {
                    merchant: MerchantId(3)
                },
                Amount(10)
            )
        );
        assert_eq!(reserve_release(MerchantId(3), Some(Amount(10)), true), None);
        assert_eq!(reserve_release(MerchantId(3), None, false), None);
    }

    #[test]
    fn the_rail_is_asked_again_while_the_payout_is_in_flight_or_the_rail_unavailable() {
        use crate::processor::PayoutFailure;
        let sent = PayoutOutcome::Sent {
            payout_id: "po_1".into(),
        };
        let in_flight = PayoutOutcome::InFlight {
            payout_id: "po_1".into(),
        };
        let failed = |reason| PayoutOutcome::Failed {
            reason,
            message: String::new(),
        };
        let unavailable = failed(PayoutFailure::RailUnavailable);
        assert_eq!(after_rail(&sent, 1, 7), RailStep::Paid);
        assert_eq!(after_rail(&sent, RAIL_ASKS_MAX, 7), RailStep::Paid);
        assert_eq!(
            after_rail(&failed(PayoutFailure::AccountClosed), 1, 7),
            RailStep::Failed
        );
        // A minute after the first ask (±20%), doubling, at most an hour (±20%).
        for (asks, base_s) in [(1, 60), (2, 120), (3, 240), (7, 3600), (47, 3600)] {
            for outcome in [&in_flight, &unavailable] {
                let RailStep::AskAgain(after) = after_rail(outcome, asks, 7) else {
                    panic!("ask {asks}: {outcome:?}");
                };
                let ms = after.as_millis() as u64;
                assert!(
                    (base_s * 800..=base_s * 1200).contains(&ms),
                    "ask {asks}: {ms} ms"
                );
            }
        }
        // Out of asks: a rail that never took the payout failed it; one that took it and never
        // settled it leaves it unresolved (the money may have left).
        assert_eq!(after_rail(&unavailable, RAIL_ASKS_MAX, 7), RailStep::Failed);
        assert_eq!(
            after_rail(&in_flight, RAIL_ASKS_MAX, 7),
            RailStep::Unresolved
        );
        assert_eq!(rail_asks().max_attempts(), RAIL_ASKS_MAX);
    }

    #[test]
    fn a_failed_payout_returns_what_it_sent_and_the_reserve_not_yet_released() {
        let earnings = LedgerAccount::Earnings {
            merchant: MerchantId(3),
        };
        let back = |held, released| {
            payout_return(MerchantId(3), Amount(90), held, released)
                .map(|l| (l.debit, l.credit, l.amount.0))
        };
        assert_eq!(
            back(Some(Amount(10)), false),
            [
                (LedgerAccount::PayoutClearing, earnings, 90),
                (
                    LedgerAccount::Reserve {
                        merchant: MerchantId(3)
                    },
                    earnings,
                    10
                ),
            ]
        );
        // The reserve's release came first (a payout pending past its reserve days): the
        // reserve is back in the earnings already and is not returned twice.
        assert_eq!(back(Some(Amount(10)), true)[1].2, 0);
        assert_eq!(back(None, false)[1].2, 0);
    }

    #[test]
    fn a_trigger_reads_back_from_its_code() {
        for t in [
            PayoutTrigger::Manual,
            PayoutTrigger::Threshold,
            PayoutTrigger::Schedule,
        ] {
            let stored = format!("\"{}\"", t.code());
            assert_eq!(serde_json::from_str::<PayoutTrigger>(&stored).unwrap(), t);
        }
        assert!(serde_json::from_str::<PayoutTrigger>("\"weekly\"").is_err());
    }

    #[test]
    fn terms_are_checked() {
        let code = |bps, days| PayoutTerms::new(Amount(0), bps, days).unwrap_err().code();
        assert_eq!(code(10_001, 90), "invalid_reserve");
        assert_eq!(code(0, 0), "invalid_reserve_days");
        assert_eq!(code(0, RESERVE_DAYS_MAX + 1), "invalid_reserve_days");
        assert!(PayoutTerms::new(Amount(0), 10_000, RESERVE_DAYS_MAX).is_ok());
        let terms = terms(0, 250).with_threshold(Amount(7));
        assert_eq!(
            (terms.threshold(), terms.reserve_bps(), terms.reserve_days()),
            (Amount(7), 250, RESERVE_DAYS_DEFAULT)
        );
    }

    proptest! {
        /// A payout, its reserve and its debt recovery never take more than the earnings; the
        /// debt is recovered in full before anything is sent, or as far as the earnings go
        /// when nothing can be sent; the return chain gives back exactly what was sent and
        /// held, never the recovery.
        #[test]
        fn a_payout_never_takes_more_than_is_available(
            available in 0u128..10u128.pow(20),
            debt in prop::option::of(0u128..10u128.pow(20)),
            requested in prop::option::of(1u128..10u128.pow(20)),
            reserve_bps in 0u32..=10_000,
        ) {
            let terms = terms(0, reserve_bps);
            let debt = debt.unwrap_or(0);
            let plan = plan_payout(
                &terms,
                PayoutTrigger::Manual,
                requested.map(Amount),
                earnings(available, debt),
                NOW,
            );
            if let Ok(plan) = plan {
                prop_assert_eq!(plan.recovered.0, debt);
                prop_assert!(plan.recovered.0 + plan.amount.0 + plan.reserve.0 <= available);
                prop_assert!(!plan.amount.is_zero());
                let legs = plan.legs(MerchantId(1));
                let taken = crate::rules::legs_total(&legs).unwrap().0;
                prop_assert!(taken <= available);
                let sent = crate::rules::legs_total(&legs[..2]);
                prop_assert_eq!(sent, crate::rules::legs_total(&plan.return_legs(MerchantId(1))));
                // The reserve is the rounded-down share of what it is measured on.
                let base = requested.unwrap_or(available - debt);
                prop_assert!(plan.reserve.0 * 10_000 <= base * u128::from(reserve_bps));
                prop_assert!((plan.reserve.0 + 1) * 10_000 > base * u128::from(reserve_bps));
            }
        }
    }
}
