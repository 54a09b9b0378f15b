//! Capturing an escrow hold: milestones, partial captures, the release of the rest, and the
//! platform's fee on what is captured.
//!
//! A hold is a chain of ledger holds: hold `k` keeps what is still held in the customer's
//! wallet. A capture of `k` posts part (or all) of it and, unless the capture is final, holds
//! the rest again as hold `k + 1`: milestones are several partial captures of one funded task.
//! A final capture releases the rest; so does any capture once a hold has had
//! [`CAPTURES_MAX`] holds. The captured part is split by the worker's fee plan as a charge
//! without shares: from escrow to the worker's earnings, the platform's revenue and rounding.
//!
//! Expiry does what the hold was created to do ([`expiry_action`]): release, or capture all that
//! is still held as a final capture.

use crate::ids::MerchantId;
use farthing_ledger::Amount;

use super::charge::{price, ChargeSplit, PriceError};
use super::{LedgerAccount, Leg};
use crate::fees::FeePlan;

/// Holds one hold may go through (each partial capture re-holds the rest as the next one).
pub const CAPTURES_MAX: u64 = 1000;

/// Where a hold stands, read from the ledger.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum HoldStatus {
    /// Hold `index` keeps `amount`.
    Held {
        index: u64,
        amount: Amount,
    },
    /// Fully resolved by captures.
    Captured,
    Released,
    Expired,
    /// Never funded (the wallet did not hold enough).
    Failed,
}

impl HoldStatus {
    pub const fn code(&self) -> &'static str {
        match self {
            HoldStatus::Held { .. } => "held",
            HoldStatus::Captured => "captured",
            HoldStatus::Released => "released",
            HoldStatus::Expired => "expired",
            HoldStatus::Failed => "failed",
        }
    }

    /// What is still held: the current hold's amount, zero once resolved.
    pub const fn held(&self) -> Amount {
        match self {
            HoldStatus::Held { amount, .. } => *amount,
            _ => Amount::ZERO,
        }
    }
}

/// Why a hold cannot be captured or released.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HoldRefusal {
    /// Code `hold_released`.
    #[error("the hold was released")]
    Released,
    /// Code `hold_expired`.
    #[error("the hold expired")]
    Expired,
    /// Code `hold_not_funded`.
    #[error("the hold was never funded")]
    NotFunded,
    /// Code `hold_captured`.
    #[error("the hold was captured in full")]
    Captured,
    /// Code `amount_exceeds_hold` (parameter `amount`).
    #[error("the hold holds {held}")]
    AmountExceedsHold { held: Amount },
}

impl HoldRefusal {
    pub const fn code(&self) -> &'static str {
        match self {
            HoldRefusal::Released => "hold_released",
            HoldRefusal::Expired => "hold_expired",
            HoldRefusal::NotFunded => "hold_not_funded",
            HoldRefusal::Captured => "hold_captured",
            HoldRefusal::AmountExceedsHold { .. } => "amount_exceeds_hold",
        }
    }

    /// Why a hold that is not held cannot be captured or released; `None` while it is held.
    ///
    /// Used by `service/holds.rs` for every capture and release.
    pub fn not_held(status: HoldStatus) -> Option<HoldRefusal> {
        match status {
            HoldStatus::Held { .. } => None,
            HoldStatus::Released => Some(HoldRefusal::Released),
            HoldStatus::Expired => Some(HoldRefusal::Expired),
            HoldStatus::Failed => Some(HoldRefusal::NotFunded),
            HoldStatus::Captured => Some(HoldRefusal::Captured),
        }
    }
}

/// A capture asked for.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct CaptureRequest {
    /// How much to capture; everything held if `None`.
    pub amount: Option<Amount>,
    /// Release what is left after this capture (the last milestone).
    pub last: bool,
}

/// What a capture does.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Capture {
    /// A capture with the same Idempotency-Key marker was already made: nothing to do.
    AlreadyMade,
    /// Boxed: a plan is large beside the empty variant.
    Plan(Box<CapturePlan>),
}

/// One capture of hold `index`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CapturePlan {
    /// The hold posted.
    pub index: u64,
    pub captured: Amount,
    /// Held again as hold `index + 1`; `None` when nothing is.
    pub rehold: Option<Amount>,
    /// Given back to the customer (the hold is posted for less than it held).
    pub released: Amount,
    /// Still held after the capture (the re-hold's amount, or zero).
    pub still_held: Amount,
    /// The captured part, priced by the worker's fee plan.
    pub split: ChargeSplit,
}

impl CapturePlan {
    /// The split's legs, positional: from escrow to the worker's earnings (net), the platform's
    /// revenue (fee) and rounding, in that order; they sum to `captured`. In the capture's
    /// chain they follow the post (and the re-hold, which has its own id).
    pub fn split_legs(&self) -> [Leg; 3] {
        super::charge::split_legs(LedgerAccount::Escrow, &self.split)
    }
}

/// Plans a capture of a hold standing at `status`. `marker` names the request (derived from
/// its Idempotency-Key; the hold's own id without one) and `earlier_markers` those of the
/// captures already made. The captured amount is split by the worker's fee `plan` (see
/// [`super::charge::price`]; no shares).
///
/// Used by `service/holds.rs: capture_now`, which books the plan as one chain.
pub fn plan_capture(
    hold: u128,
    status: HoldStatus,
    request: CaptureRequest,
    (marker, earlier_markers): (u128, &[u128]),
    (plan, worker): (&FeePlan, u128),
) -> Result<Capture, CaptureError> {
    if marker != hold && earlier_markers.contains(&marker) {
        return Ok(Capture::AlreadyMade);
    }
    let HoldStatus::Held {
        index,
        amount: held,
    } = status
    else {
        return Err(HoldRefusal::not_held(status)
            .unwrap_or(HoldRefusal::Captured)
            .into());
    };
    let captured = request.amount.unwrap_or(held);
    if captured > held {
        return Err(HoldRefusal::AmountExceedsHold { held }.into());
    }
    let rest = Amount(held.0 - captured.0);
    let split = price(captured, plan, MerchantId(worker), &[])?;
    let holds_left = index + 1 < CAPTURES_MAX;
    let rehold = (!request.last && !rest.is_zero() && holds_left).then_some(rest);
    let released = if request.last || !holds_left {
        rest
    } else {
        Amount::ZERO
    };
    Ok(Capture::Plan(Box::new(CapturePlan {
        index,
        captured,
        rehold,
        released,
        still_held: Amount(rest.0 - released.0),
        split,
    })))
}

/// Why a capture was not planned: refused, or the fee plan could not price it.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    #[error(transparent)]
    Refused(#[from] HoldRefusal),
    /// Code `invalid_split`, as the API answers today for a fee plan that cannot price.
    #[error(transparent)]
    Price(#[from] PriceError),
}

impl CaptureError {
    pub const fn code(&self) -> &'static str {
        match self {
            CaptureError::Refused(refusal) => refusal.code(),
            CaptureError::Price(error) => error.code(),
        }
    }
}

/// What a hold was told to do at expiry.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum OnExpiry {
    Release,
    Capture,
}

/// What expiry does.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ExpiryAction {
    /// Nothing is held any more.
    Nothing,
    /// Void the current hold, hold `index` (announced as `hold.expired`).
    Release { index: u64 },
    /// Capture everything still held as a final capture, marked with the hold's own id.
    CaptureAll(CaptureRequest),
}

/// Used by `service/holds.rs: expire` (the hold's expiry job).
pub fn expiry_action(status: HoldStatus, on_expiry: OnExpiry) -> ExpiryAction {
    let HoldStatus::Held { index, .. } = status else {
        return ExpiryAction::Nothing;
    };
    match on_expiry {
        OnExpiry::Release => ExpiryAction::Release { index },
        OnExpiry::Capture => ExpiryAction::CaptureAll(CaptureRequest {
            amount: None,
            last: true,
        }),
    }
}

/// What a release does: void the current hold, or nothing for a hold already released
/// (a retry, not an error); any other resolved hold is refused.
///
/// Used by `service/holds.rs: release`.
pub fn release(status: HoldStatus) -> Result<Option<u64>, HoldRefusal> {
    match status {
        HoldStatus::Held { index, .. } => Ok(Some(index)),
        HoldStatus::Released => Ok(None),
        other => Err(HoldRefusal::not_held(other).unwrap_or(HoldRefusal::Captured)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fees::RoundingRule;
    use proptest::prelude::*;

    const HOLD: u128 = 77;
    const WORKER: u128 = 8;

    const PLAN: FeePlan = FeePlan {
        percent_bps: 1_000,
        fixed: Amount::ZERO,
        minimum: None,
        maximum: None,
        rounding: RoundingRule::HalfEven,
    };

    /// Plans a capture with the worker's 10% plan.
    fn capture(
        status: HoldStatus,
        request: CaptureRequest,
        marker: u128,
        earlier: &[u128],
    ) -> Result<Capture, CaptureError> {
        plan_capture(HOLD, status, request, (marker, earlier), (&PLAN, WORKER))
    }

    fn held(index: u64, amount: u128) -> HoldStatus {
        HoldStatus::Held {
            index,
            amount: Amount(amount),
        }
    }

    /// Plans a capture and compares (captured, rehold, released, still held) or the code.
    fn check(
        status: HoldStatus,
        amount: Option<u128>,
        last: bool,
        expected: Result<(u128, Option<u128>, u128, u128), &str>,
    ) {
        let request = CaptureRequest {
            amount: amount.map(Amount),
            last,
        };
        let got = match capture(status, request, HOLD, &[]) {
            Ok(Capture::Plan(p)) => Ok((
                p.captured.0,
                p.rehold.map(|a| a.0),
                p.released.0,
                p.still_held.0,
            )),
            Ok(Capture::AlreadyMade) => Err("already_made"),
            Err(e) => Err(e.code()),
        };
        assert_eq!(got, expected);
    }

    #[test]
    fn milestones_capture_part_and_hold_the_rest() {
        check(held(0, 100), Some(30), false, Ok((30, Some(70), 0, 70)));
        // The last milestone releases what is left.
        check(held(1, 70), Some(30), true, Ok((30, None, 40, 0)));
        // Everything held: nothing to re-hold or release.
        check(held(2, 40), None, false, Ok((40, None, 0, 0)));
        // The last hold allowed cannot re-hold: the rest is released.
        check(
            held(CAPTURES_MAX - 1, 10),
            Some(3),
            false,
            Ok((3, None, 7, 0)),
        );
    }

    #[test]
    fn refusals_keep_their_codes() {
        check(held(0, 100), Some(101), false, Err("amount_exceeds_hold"));
        check(HoldStatus::Released, None, false, Err("hold_released"));
        check(HoldStatus::Expired, None, false, Err("hold_expired"));
        check(HoldStatus::Failed, None, false, Err("hold_not_funded"));
        check(HoldStatus::Captured, None, false, Err("hold_captured"));
    }

    #[test]
    fn a_keyed_capture_is_made_once() {
        let request = CaptureRequest {
            amount: None,
            last: false,
        };
        let again = capture(HoldStatus::Captured, request, 5, &[4, 5]);
        assert_eq!(again, Ok(Capture::AlreadyMade));
        // Without a key the marker is the hold's id, which never counts as made.
        let unkeyed = capture(held(0, 1), request, HOLD, &[HOLD]);
        assert!(matches!(unkeyed, Ok(Capture::Plan(_))));
    }

    #[test]
    fn the_fee_is_taken_from_what_is_captured() {
        let request = CaptureRequest {
            amount: Some(Amount(250)),
            last: false,
        };
        let Ok(Capture::Plan(plan)) = capture(held(0, 1_000), request, HOLD, &[]) else {
            panic!("planned");
        };
        let legs = plan.split_legs();
        let got: Vec<(LedgerAccount, u128)> = legs.iter().map(|l| (l.credit, l.amount.0)).collect();
        assert_eq!(
            got,
            [
                (
                    LedgerAccount::Earnings {
                        merchant: MerchantId(WORKER)
                    },
                    225
                ),
                (LedgerAccount::PlatformRevenue, 25),
                (LedgerAccount::Rounding, 0),
            ]
        );
        assert!(legs.iter().all(|l| l.debit == LedgerAccount::Escrow));
    }

    #[test]
    fn expiry_and_release_follow_the_status() {
        let capture_all = ExpiryAction::CaptureAll(CaptureRequest {
            amount: None,
            last: true,
        });
        assert_eq!(expiry_action(held(3, 1), OnExpiry::Capture), capture_all);
        assert_eq!(
            expiry_action(held(3, 1), OnExpiry::Release),
            ExpiryAction::Release { index: 3 }
        );
        assert_eq!(
            expiry_action(HoldStatus::Captured, OnExpiry::Capture),
            ExpiryAction::Nothing
        );
        assert_eq!(release(held(3, 1)), Ok(Some(3)));
        assert_eq!(held(3, 5).held(), Amount(5));
        assert_eq!(HoldStatus::Captured.held(), Amount::ZERO);
        assert_eq!(release(HoldStatus::Released), Ok(None));
        assert_eq!(
            release(HoldStatus::Expired).map_err(|e| e.code()),
            Err("hold_expired")
        );
    }

    proptest! {
        /// Conservation: what was held is captured, held again or released, exactly; the split
        /// legs move exactly what is captured.
        #[test]
        fn a_capture_accounts_for_everything_held(
            held_amount in 1u128..10u128.pow(18),
            cut in 0u128..=10_000,
            index in 0u64..CAPTURES_MAX,
            last in any::<bool>(),
            whole in any::<bool>(),
        ) {
            let amount = (!whole).then(|| Amount(held_amount * cut / 10_000));
            let request = CaptureRequest { amount, last };
            let Ok(Capture::Plan(p)) =
                capture(held(index, held_amount), request, HOLD, &[])
            else {
                panic!("planned");
            };
            prop_assert_eq!(
                p.captured.0 + p.released.0 + p.still_held.0,
                held_amount
            );
            prop_assert_eq!(p.rehold.unwrap_or(Amount::ZERO), p.still_held);
            prop_assert_eq!(crate::rules::legs_total(&p.split_legs()), Some(p.captured));
        }
    }
}
