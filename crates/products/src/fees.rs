//! Fee plans, revenue shares, payment splits and refund reversals.
//!
//! A payment of `gross` is split into the platform's fee and the merchant's net; the net is
//! either the merchant's alone or divided among revenue-share payees. Every division names its
//! [`RoundingRule`], and what flooring the shares leaves over is booked explicitly as the
//! split's rounding remainder, so a [`Split`]'s parts always add up to its gross exactly.
//!
//! A refund ([`reverse`]) takes money back from those parts. Refund allocations are cumulative
//! functions of "how much of this charge has been refunded so far", so a sequence of partial
//! refunds gives back exactly what a single refund of their total would, and refunding the whole
//! charge reverses every part to the minor unit.
//!
//! ```
//! use farthing_ledger::Amount;
//! use farthing_products::fees::{reverse, split, Destination, FeePlan, FeeRefundPolicy, RoundingRule, Share};
//!
//! let plan = FeePlan {
//!     percent_bps: 500, // 5%
//!     fixed: Amount::ZERO,
//!     minimum: None,
//!     maximum: None,
//!     rounding: RoundingRule::HalfEven,
//! };
//! let shares = [
//!     Share { payee: "author".into(), bps: 7_000 },
//!     Share { payee: "publisher".into(), bps: 3_000 },
//! ];
//! let charge = split(Amount(1_001), &plan, &shares)?;
//! // Fee 50.05 -> 50; net 951: author floor(665.7), publisher floor(285.3), 1 left over.
//! assert_eq!(charge.parts(), vec![
//!     (Destination::Platform, Amount(50)),
//!     (Destination::Payee("author".into()), Amount(665)),
//!     (Destination::Payee("publisher".into()), Amount(285)),
//!     (Destination::Rounding, Amount(1)),
//! ]);
//!
//! // Refund 500 now and the other 501 later: together they reverse every part exactly.
//! let first = reverse(&charge, Amount::ZERO, Amount(500), FeeRefundPolicy::Proportional)?;
//! let second = reverse(&charge, Amount(500), Amount(501), FeeRefundPolicy::Proportional)?;
//! for (destination, booked) in charge.parts() {
//!     let given_back = first.amount_for(&destination).0 + second.amount_for(&destination).0;
//!     assert_eq!(given_back, booked.0);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use farthing_ledger::Amount;
use serde::{Deserialize, Serialize};

/// Basis points in a whole: 10,000 bps = 100%.
pub const BPS_PER_WHOLE: u32 = 10_000;

/// The most revenue shares one payment may be split into. Bounds the work and the size of the
/// ledger batch a split turns into (one transfer per part).
pub const SHARES_MAX: usize = 16;

/// The longest opaque payee reference, in bytes.
pub const PAYEE_BYTES_MAX: usize = 128;

/// How a division that does not come out even is rounded to a whole minor unit.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoundingRule {
    /// Toward zero (floor, since everything here is unsigned).
    Down,
    /// Away from zero (ceiling).
    Up,
    /// To the nearest unit; an exact half goes up.
    HalfUp,
    /// To the nearest unit; an exact half goes to the even neighbour (banker's rounding), so
    /// halves do not drift one way over many roundings.
    HalfEven,
}

impl RoundingRule {
    /// The stable snake_case name, as serialized.
    pub const fn code(self) -> &'static str {
        match self {
            RoundingRule::Down => "down",
            RoundingRule::Up => "up",
            RoundingRule::HalfUp => "half_up",
            RoundingRule::HalfEven => "half_even",
        }
    }
}

/// Why an exact integer division could not produce a result.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArithmeticError {
    #[error("division by zero")]
    DivisionByZero,
    #[error("result does not fit in 128 bits")]
    Overflow,
}

/// Computes `a * b / c` rounded by `rule`, exactly: the product is formed in 256 bits, so it
/// never overflows; only a quotient that does not fit in `u128` is an error.
pub fn mul_div(a: u128, b: u128, c: u128, rule: RoundingRule) -> Result<u128, ArithmeticError> {
    let (quotient, remainder) = mul_div_rem(a, b, c)?;
    round_quotient(quotient, remainder, c, rule)
}

/// Computes `n / d` rounded by `rule`.
pub fn div_round(n: u128, d: u128, rule: RoundingRule) -> Result<u128, ArithmeticError> {
    mul_div(n, 1, d, rule)
}

/// The truncated quotient and remainder of `a * b / c`.
fn mul_div_rem(a: u128, b: u128, c: u128) -> Result<(u128, u128), ArithmeticError> {
    if c == 0 {
        return Err(ArithmeticError::DivisionByZero);
    }
    // The common case (amounts times basis points) fits in 128 bits; skip the long division.
    if let Some(product) = a.checked_mul(b) {
        return Ok((product / c, product % c));
    }
    let (high, low) = widening_mul(a, b);
    divide_wide(high, low, c)
}

/// The full 256-bit product of two `u128`s as (high, low) halves.
fn widening_mul(a: u128, b: u128) -> (u128, u128) {
    const LOW_MASK: u128 = u64::MAX as u128;
    let (a_high, a_low) = (a >> 64, a & LOW_MASK);
    let (b_high, b_low) = (b >> 64, b & LOW_MASK);
    // Each partial product of two 64-bit halves fits in 128 bits.
    let low_low = a_low * b_low;
    let low_high = a_low * b_high;
    let high_low = a_high * b_low;
    let high_high = a_high * b_high;
    // The middle column: at most three 64-bit quantities, so it fits in 128 bits.
    let middle = (low_low >> 64) + (low_high & LOW_MASK) + (high_low & LOW_MASK);
    let low = (middle << 64) | (low_low & LOW_MASK);
    let high = high_high + (low_high >> 64) + (high_low >> 64) + (middle >> 64);
    (high, low)
}

/// Divides the 256-bit number `high:low` by `divisor` with schoolbook binary long division.
/// The quotient fits in 128 bits exactly when `high < divisor`.
fn divide_wide(high: u128, low: u128, divisor: u128) -> Result<(u128, u128), ArithmeticError> {
    if high >= divisor {
        return Err(ArithmeticError::Overflow);
    }
    let mut remainder = high;
    let mut quotient = 0u128;
    for bit in (0..128).rev() {
        // `remainder < divisor` holds here, so shifting it left loses at most one bit, which
        // `carry` keeps: the true value `carry:remainder` is below `2 * divisor`.
        let carry = remainder >> 127;
        remainder = (remainder << 1) | ((low >> bit) & 1);
        quotient <<= 1;
        if carry == 1 || remainder >= divisor {
            remainder = remainder.wrapping_sub(divisor);
            quotient |= 1;
        }
    }
    Ok((quotient, remainder))
}

/// Rounds `quotient + remainder / divisor` (with `remainder < divisor`) to a whole number.
fn round_quotient(
    quotient: u128,
    remainder: u128,
    divisor: u128,
    rule: RoundingRule,
) -> Result<u128, ArithmeticError> {
    if remainder == 0 {
        return Ok(quotient);
    }
    // Compare `remainder` with `divisor - remainder` rather than `2 * remainder` with
    // `divisor`, which could overflow.
    let above_half = remainder > divisor - remainder;
    let exactly_half = remainder == divisor - remainder;
    let round_up = match rule {
        RoundingRule::Down => false,
        RoundingRule::Up => true,
        RoundingRule::HalfUp => above_half || exactly_half,
        RoundingRule::HalfEven => above_half || (exactly_half && quotient % 2 == 1),
    };
    if round_up {
        quotient.checked_add(1).ok_or(ArithmeticError::Overflow)
    } else {
        Ok(quotient)
    }
}

/// How the platform prices a payment: a percentage plus a fixed part, clamped to an optional
/// minimum and maximum.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct FeePlan {
    /// The percentage part in basis points, 0 to 10,000.
    pub percent_bps: u32,
    /// Added to the percentage part, in the asset's minor unit.
    pub fixed: Amount,
    /// The fee is at least this (but never more than the payment).
    pub minimum: Option<Amount>,
    /// The fee is at most this.
    pub maximum: Option<Amount>,
    /// How the percentage part is rounded.
    pub rounding: RoundingRule,
}

/// Why a fee plan is not usable. Each variant names the field at fault.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FeePlanError {
    #[error("percent_bps must be between 0 and 10000, got {percent_bps}")]
    PercentBpsOutOfRange { percent_bps: u32 },
    #[error("minimum ({minimum}) must not exceed maximum ({maximum})")]
    MinimumAboveMaximum { minimum: Amount, maximum: Amount },
}

impl FeePlan {
    /// A plan that charges nothing.
    pub const FREE: FeePlan = FeePlan {
        percent_bps: 0,
        fixed: Amount::ZERO,
        minimum: None,
        maximum: None,
        rounding: RoundingRule::HalfEven,
    };

    pub fn validate(&self) -> Result<(), FeePlanError> {
        if self.percent_bps > BPS_PER_WHOLE {
            return Err(FeePlanError::PercentBpsOutOfRange {
                percent_bps: self.percent_bps,
            });
        }
        if let (Some(minimum), Some(maximum)) = (self.minimum, self.maximum) {
            if minimum > maximum {
                return Err(FeePlanError::MinimumAboveMaximum { minimum, maximum });
            }
        }
        Ok(())
    }

    /// The platform's fee on a payment of `gross`:
    /// `round(gross * percent_bps / 10000) + fixed`, clamped to `[minimum, maximum]`, then
    /// capped at `gross`. A fee never exceeds the payment it is taken from; when the plan
    /// would ask for more, the merchant simply nets zero.
    pub fn fee(&self, gross: Amount) -> Result<Amount, FeePlanError> {
        self.validate()?;
        // Cannot fail: the divisor is non-zero and the quotient is at most `gross`, because
        // `percent_bps <= 10000` (rounding up included).
        let percent = mul_div(
            gross.0,
            u128::from(self.percent_bps),
            u128::from(BPS_PER_WHOLE),
            self.rounding,
        )
        .unwrap_or(gross.0);
        // Saturating is exact here: the result is capped at `gross <= u128::MAX` below, so a
        // sum too large for u128 would be capped to the same value anyway.
        let mut fee = percent.saturating_add(self.fixed.0);
        if let Some(minimum) = self.minimum {
            fee = fee.max(minimum.0);
        }
        if let Some(maximum) = self.maximum {
            fee = fee.min(maximum.0);
        }
        Ok(Amount(fee.min(gross.0)))
    }
}

/// One revenue share of a merchant's net: `bps` basis points of it go to `payee`.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct Share {
    /// An opaque reference to whoever is paid (an account, a merchant id); the caller maps it
    /// to a ledger account.
    pub payee: String,
    pub bps: u32,
}

/// Why a list of revenue shares is not usable. Each variant names the share at fault.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShareError {
    #[error("shares: at most {SHARES_MAX} allowed, got {count}")]
    TooMany { count: usize },
    #[error("shares[{index}].payee must be 1 to {PAYEE_BYTES_MAX} bytes")]
    PayeeLength { index: usize },
    #[error("shares[{index}].bps must be between 1 and 10000, got {bps}")]
    BpsOutOfRange { index: usize, bps: u32 },
    #[error("shares[{index}].payee {payee:?} appears more than once")]
    DuplicatePayee { index: usize, payee: String },
    #[error("shares' bps must sum to exactly 10000, got {sum}")]
    BpsSum { sum: u32 },
}

/// Checks a list of revenue shares. An empty list is valid: the merchant keeps the whole net.
/// Otherwise there are at most [`SHARES_MAX`] shares, each with a distinct non-empty payee and
/// a non-zero bps, summing to exactly 10,000 so that the whole net is accounted for.
pub fn validate_shares(shares: &[Share]) -> Result<(), ShareError> {
    if shares.is_empty() {
        return Ok(());
    }
    if shares.len() > SHARES_MAX {
        return Err(ShareError::TooMany {
            count: shares.len(),
        });
    }
    let mut sum = 0u32;
    for (index, share) in shares.iter().enumerate() {
        validate_share(index, share)?;
        if shares[..index].iter().any(|s| s.payee == share.payee) {
            return Err(ShareError::DuplicatePayee {
                index,
                payee: share.payee.clone(),
            });
        }
        // Cannot overflow: at most 16 shares of at most 10,000 each.
        sum += share.bps;
    }
    if sum != BPS_PER_WHOLE {
        return Err(ShareError::BpsSum { sum });
    }
    Ok(())
}

fn validate_share(index: usize, share: &Share) -> Result<(), ShareError> {
    if share.payee.is_empty() || share.payee.len() > PAYEE_BYTES_MAX {
        return Err(ShareError::PayeeLength { index });
    }
    if share.bps == 0 || share.bps > BPS_PER_WHOLE {
        return Err(ShareError::BpsOutOfRange {
            index,
            bps: share.bps,
        });
    }
    Ok(())
}

/// Where one part of a payment goes (or, in a refund, comes back from).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Destination {
    /// The platform's fee revenue.
    Platform,
    /// The merchant, when the payment has no revenue shares.
    Merchant,
    /// A revenue-share payee, by its opaque reference.
    Payee(String),
    /// The platform's rounding account, which collects what flooring the shares left over.
    Rounding,
}

/// A payee's part of a split.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct PayeeAmount {
    pub payee: String,
    /// The payee's share of the net, kept so that refunds can charge the payees back by share.
    pub bps: u32,
    pub amount: Amount,
}

/// Who receives the merchant's net.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum NetDistribution {
    /// No revenue shares: the merchant keeps the whole net, and nothing is left to round.
    Merchant(Amount),
    /// Revenue shares: each payee's floored share, in the order the shares were given, and
    /// what flooring left over (less than one minor unit per payee).
    Payees {
        payees: Vec<PayeeAmount>,
        rounding_remainder: Amount,
    },
}

/// A payment divided into its parts.
///
/// Invariant (checked when built): `platform_fee + payees (or merchant) + rounding_remainder
/// == gross`, so booking every part moves exactly the gross. Fields are private so that no
/// split breaking it can exist.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Split {
    gross: Amount,
    platform_fee: Amount,
    net: NetDistribution,
}

/// Why a payment could not be split, or a split could not be rebuilt.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FeeError {
    #[error("fee plan: {0}")]
    Plan(#[from] FeePlanError),
    #[error(transparent)]
    Shares(#[from] ShareError),
    #[error("split parts sum to {parts_total:?}, not the gross of {gross}")]
    Unbalanced {
        gross: Amount,
        /// `None` when the parts overflow u128.
        parts_total: Option<Amount>,
    },
    #[error("split: {0}")]
    Arithmetic(#[from] ArithmeticError),
}

impl Split {
    /// Rebuilds a split from stored parts (to refund a charge booked earlier), checking that
    /// they add up to `gross` and that the payees are a valid share list (see
    /// [`validate_shares`]; an empty payee list is refused, use `NetDistribution::Merchant`).
    pub fn from_parts(
        gross: Amount,
        platform_fee: Amount,
        net: NetDistribution,
    ) -> Result<Split, FeeError> {
        if let NetDistribution::Payees { payees, .. } = &net {
            validate_payee_list(payees)?;
        }
        let split = Split {
            gross,
            platform_fee,
            net,
        };
        let parts_total = split
            .booked_parts()
            .iter()
            .try_fold(Amount::ZERO, |total, (_, amount)| {
                total.checked_add(*amount)
            });
        if parts_total != Some(gross) {
            return Err(FeeError::Unbalanced { gross, parts_total });
        }
        Ok(split)
    }

    pub fn gross(&self) -> Amount {
        self.gross
    }

    pub fn platform_fee(&self) -> Amount {
        self.platform_fee
    }

    /// What is left for the merchant side after the platform fee: payees plus remainder.
    pub fn net(&self) -> Amount {
        // Cannot underflow: the constructor checked that the fee is part of the gross.
        Amount(self.gross.0 - self.platform_fee.0)
    }

    pub fn distribution(&self) -> &NetDistribution {
        &self.net
    }

    /// The merchant's net when there are no revenue shares.
    pub fn merchant_net(&self) -> Option<Amount> {
        match &self.net {
            NetDistribution::Merchant(amount) => Some(*amount),
            NetDistribution::Payees { .. } => None,
        }
    }

    /// The payees' amounts; empty when there are no revenue shares.
    pub fn payees(&self) -> &[PayeeAmount] {
        match &self.net {
            NetDistribution::Merchant(_) => &[],
            NetDistribution::Payees { payees, .. } => payees,
        }
    }

    /// What flooring the shares left over; always zero without revenue shares.
    pub fn rounding_remainder(&self) -> Amount {
        match &self.net {
            NetDistribution::Merchant(_) => Amount::ZERO,
            NetDistribution::Payees {
                rounding_remainder, ..
            } => *rounding_remainder,
        }
    }

    /// Every destination with a non-zero amount, in a fixed order: the platform, then the
    /// merchant or each payee in share order, then the rounding account. Booking one transfer
    /// per entry moves exactly the gross.
    pub fn parts(&self) -> Vec<(Destination, Amount)> {
        let mut parts = self.booked_parts();
        parts.retain(|(_, amount)| !amount.is_zero());
        parts
    }

    /// Every destination including zero amounts, in the order of [`Split::parts`]. Refund
    /// allocation depends on this order, so it must never change.
    fn booked_parts(&self) -> Vec<(Destination, Amount)> {
        let mut parts = vec![(Destination::Platform, self.platform_fee)];
        match &self.net {
            NetDistribution::Merchant(amount) => parts.push((Destination::Merchant, *amount)),
            NetDistribution::Payees {
                payees,
                rounding_remainder,
            } => {
                for payee in payees {
                    parts.push((Destination::Payee(payee.payee.clone()), payee.amount));
                }
                parts.push((Destination::Rounding, *rounding_remainder));
            }
        }
        parts
    }
}

/// Checks the payees form a valid share list (see [`validate_shares`]), and there is one.
fn validate_payee_list(payees: &[PayeeAmount]) -> Result<(), ShareError> {
    let shares: Vec<Share> = payees
        .iter()
        .map(|p| Share {
            payee: p.payee.clone(),
            bps: p.bps,
        })
        .collect();
    if shares.is_empty() {
        return Err(ShareError::BpsSum { sum: 0 });
    }
    validate_shares(&shares)
}

/// Splits a payment of `gross` by `plan` and the revenue `shares`.
///
/// The platform fee is [`FeePlan::fee`]. The net (`gross - fee`) goes to the merchant when
/// `shares` is empty; otherwise each payee gets `floor(net * bps / 10000)` and what flooring
/// left over becomes the split's rounding remainder, which the caller books to the platform's
/// rounding account. Flooring (rather than a configurable rule) guarantees the shares never
/// add up to more than the net.
pub fn split(gross: Amount, plan: &FeePlan, shares: &[Share]) -> Result<Split, FeeError> {
    validate_shares(shares)?;
    let platform_fee = plan.fee(gross)?;
    // Cannot underflow: the fee is capped at the gross.
    let net = Amount(gross.0 - platform_fee.0);
    let distribution = if shares.is_empty() {
        NetDistribution::Merchant(net)
    } else {
        distribute_net(net, shares)?
    };
    Split::from_parts(gross, platform_fee, distribution)
}

/// Floors each share of `net` and collects what is left over.
fn distribute_net(net: Amount, shares: &[Share]) -> Result<NetDistribution, FeeError> {
    let mut payees = Vec::with_capacity(shares.len());
    let mut distributed = 0u128;
    for share in shares {
        let amount = mul_div(
            net.0,
            u128::from(share.bps),
            u128::from(BPS_PER_WHOLE),
            RoundingRule::Down,
        )?;
        // Cannot overflow: the floored shares of bps summing to 10,000 add up to at most net.
        distributed += amount;
        payees.push(PayeeAmount {
            payee: share.payee.clone(),
            bps: share.bps,
            amount: Amount(amount),
        });
    }
    let rounding_remainder = net
        .checked_sub(Amount(distributed))
        .ok_or(FeeError::Arithmetic(ArithmeticError::Overflow))?;
    Ok(NetDistribution::Payees {
        payees,
        rounding_remainder,
    })
}

/// Who gives a refund back.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeeRefundPolicy {
    /// Every part of the split gives back its pro-rata share of the refund: the platform
    /// returns part of its fee, the payees (or merchant) and the rounding account part of
    /// theirs. Refunding the whole charge reverses every part exactly.
    Proportional,
    /// The platform keeps its fee and the rounding remainder; the merchant (or the payees, pro
    /// rata to their share bps) return the whole refund. Like a card processor that keeps its
    /// fee on a refund, this can take back more from the merchant side than it received.
    MerchantBearsFees,
}

impl FeeRefundPolicy {
    pub const fn code(self) -> &'static str {
        match self {
            FeeRefundPolicy::Proportional => "proportional",
            FeeRefundPolicy::MerchantBearsFees => "merchant_bears_fees",
        }
    }
}

/// What a refund takes back from each part of a split. The amounts sum to the refund.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Reversal {
    refund: Amount,
    parts: Vec<(Destination, Amount)>,
}

impl Reversal {
    /// The amount returned to the customer.
    pub fn refund(&self) -> Amount {
        self.refund
    }

    /// Every destination that gives back a non-zero amount, in the order of
    /// [`Split::parts`]. Booking one transfer per entry (destination → customer) moves
    /// exactly the refund.
    pub fn parts(&self) -> Vec<(Destination, Amount)> {
        self.parts
            .iter()
            .filter(|(_, amount)| !amount.is_zero())
            .cloned()
            .collect()
    }

    /// What `destination` gives back (zero if it gives back nothing).
    pub fn amount_for(&self, destination: &Destination) -> Amount {
        self.parts
            .iter()
            .find(|(d, _)| d == destination)
            .map_or(Amount::ZERO, |(_, amount)| *amount)
    }
}

/// Why a refund could not be allocated. Each variant names the argument at fault.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RefundError {
    #[error("refund_amount must be greater than zero")]
    ZeroRefund,
    #[error("already_refunded ({already_refunded}) exceeds the charge's gross ({gross})")]
    AlreadyRefundedExceedsGross {
        already_refunded: Amount,
        gross: Amount,
    },
    #[error("refund_amount ({refund}) exceeds what is left to refund ({remaining})")]
    ExceedsRemaining { refund: Amount, remaining: Amount },
    #[error("refund: {0}")]
    Arithmetic(#[from] ArithmeticError),
    /// A bug: the allocation broke its own invariant. Reported rather than booked.
    #[error("refund allocation broke an invariant: {what}")]
    InvariantViolated { what: &'static str },
}

/// The rounding of each step of the refund allocation. The allocation's guarantees (no part
/// ever gives back more than it was booked; no part's total give-back ever shrinks as more is
/// refunded) hold for any rule, because each step's weight fraction is below one. `Down` is
/// chosen so that each part rounds in the same direction and the shortfall flows toward the
/// end of the list, where the rounding account, which exists to absorb rounding, sits.
pub const REFUND_ALLOCATION_ROUNDING: RoundingRule = RoundingRule::Down;

/// Allocates a refund of `refund_amount` against `split`, of which `already_refunded` has
/// been refunded before (the sum of earlier refunds' amounts).
///
/// The rule: for every policy there is a fixed cumulative allocation `A(c)` saying what each
/// part has given back in total once `c` of the charge is refunded; this refund gives back
/// `A(already_refunded + refund_amount) - A(already_refunded)`. So partial refunds add up to
/// exactly what one refund of their total would give back, whatever the steps, and the last
/// refund sweeps the exact remainder of every part.
///
/// `A(c)` is a nested pro-rata ("take your floor, pass the rest on"): the parts are visited in
/// the order of [`Split::parts`] (platform, merchant or payees, rounding account); each takes
/// `floor(c_left * weight / weight_left)` of what is still unallocated among itself and the
/// parts after it, and the last part with any weight takes all that is left. For
/// [`FeeRefundPolicy::Proportional`] the weights are the booked amounts and `c <= gross`, so:
/// each part's total give-back never decreases as `c` grows, never exceeds what was booked,
/// equals it exactly when `c == gross`, and stays within a few minor units (fewer than the
/// number of parts) of the exact pro-rata share. The last parts (payees listed later, then the
/// rounding account) absorb the rounding of the earlier ones. For
/// [`FeeRefundPolicy::MerchantBearsFees`] the weights are the payees' share bps (or the
/// merchant alone), `c` may exceed what the merchant side was booked, and the platform and
/// rounding account give back nothing.
pub fn reverse(
    split: &Split,
    already_refunded: Amount,
    refund_amount: Amount,
    policy: FeeRefundPolicy,
) -> Result<Reversal, RefundError> {
    let refunded_after = check_refund_bounds(split, already_refunded, refund_amount)?;
    let booked = split.booked_parts();
    let weights = refund_weights(split, &booked, policy);
    let before = nested_pro_rata(&weights, already_refunded.0)?;
    let after = nested_pro_rata(&weights, refunded_after.0)?;
    let mut parts = Vec::with_capacity(booked.len());
    let mut total = 0u128;
    for (((destination, _), before), after) in booked.into_iter().zip(before).zip(after) {
        let give_back = after
            .checked_sub(before)
            .ok_or(RefundError::InvariantViolated {
                what: "a part's cumulative give-back decreased",
            })?;
        total = total
            .checked_add(give_back)
            .ok_or(ArithmeticError::Overflow)?;
        parts.push((destination, Amount(give_back)));
    }
    if total != refund_amount.0 {
        return Err(RefundError::InvariantViolated {
            what: "give-backs do not sum to the refund",
        });
    }
    Ok(Reversal {
        refund: refund_amount,
        parts,
    })
}

/// Checks the refund fits in what is left of the charge; returns the refunded total after it.
fn check_refund_bounds(
    split: &Split,
    already_refunded: Amount,
    refund_amount: Amount,
) -> Result<Amount, RefundError> {
    if refund_amount.is_zero() {
        return Err(RefundError::ZeroRefund);
    }
    let remaining = split.gross.checked_sub(already_refunded).ok_or(
        RefundError::AlreadyRefundedExceedsGross {
            already_refunded,
            gross: split.gross,
        },
    )?;
    if refund_amount > remaining {
        return Err(RefundError::ExceedsRemaining {
            refund: refund_amount,
            remaining,
        });
    }
    // Cannot overflow: the sum is at most the gross.
    Ok(Amount(already_refunded.0 + refund_amount.0))
}

/// The weight of each booked part in the refund allocation, in the order of `booked`.
fn refund_weights(
    split: &Split,
    booked: &[(Destination, Amount)],
    policy: FeeRefundPolicy,
) -> Vec<u128> {
    match policy {
        FeeRefundPolicy::Proportional => booked.iter().map(|(_, amount)| amount.0).collect(),
        FeeRefundPolicy::MerchantBearsFees => booked
            .iter()
            .map(|(destination, _)| merchant_side_weight(split, destination))
            .collect(),
    }
}

/// Under `MerchantBearsFees`: the merchant alone, or each payee by its share bps. Share bps
/// rather than booked amounts, because a split whose fee took the whole gross booked the payees
/// nothing, yet they still bear the refund.
fn merchant_side_weight(split: &Split, destination: &Destination) -> u128 {
    match destination {
        Destination::Merchant => 1,
        Destination::Payee(payee) => split
            .payees()
            .iter()
            .find(|p| &p.payee == payee)
            .map_or(0, |p| u128::from(p.bps)),
        Destination::Platform | Destination::Rounding => 0,
    }
}

/// The cumulative allocation `A(c)` described on [`reverse`]: splits `allocated` among the
/// parts by `weights`, visiting them in order, each taking the floor of its pro-rata share of
/// what is still unallocated, the last weighted part taking the rest.
fn nested_pro_rata(weights: &[u128], allocated: u128) -> Result<Vec<u128>, RefundError> {
    let mut weight_left = weights
        .iter()
        .try_fold(0u128, |sum, w| sum.checked_add(*w))
        .ok_or(ArithmeticError::Overflow)?;
    let mut left = allocated;
    let mut takes = Vec::with_capacity(weights.len());
    for &weight in weights {
        let take = if weight == 0 {
            0
        } else if weight == weight_left {
            left
        } else {
            // At most `left`, because `weight < weight_left`.
            mul_div(left, weight, weight_left, REFUND_ALLOCATION_ROUNDING)?
        };
        takes.push(take);
        left -= take;
        weight_left -= weight;
    }
    if left != 0 {
        return Err(RefundError::InvariantViolated {
            what: "refund left unallocated (no part has any weight)",
        });
    }
    Ok(takes)
}

#[cfg(test)]
mod tests;
