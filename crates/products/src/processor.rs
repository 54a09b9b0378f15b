//! The edges where money enters and leaves farthing: card charges and bank payouts.
//!
//! [`PaymentProcessor`] is what a wallet top-up or a tab settlement charges through;
//! [`PayoutRail`] is what a merchant payout is sent through. Both are traits so that a real
//! processor adapter (which does I/O) can be plugged in by the caller; this crate ships only the
//! deterministic sandboxes, [`SandboxProcessor`] and [`SandboxPayoutRail`], whose behaviour is
//! chosen by well-known test card and bank account numbers (Stripe's, where Stripe has one).
//!
//! The sandboxes are pure functions of their input: the same request always gives the same
//! outcome and the same ids, so a retried request after a crash finds the original result.
//! They keep no state; the caller enforces that an idempotency key is never reused for a
//! different request.
//!
//! Payment methods are tokens: the card number goes through [`SandboxProcessor::tokenize`] once
//! and only the `pm_...` token (which does not contain the card number) is stored or charged.
//! A token belongs to one customer: its fingerprint is keyed by the platform's secret
//! [`TokenKey`] and the customer, so the same card gives one customer the same token every time
//! while two customers' tokens for it cannot be linked.

use farthing_ledger::{Amount, ASSET_SCALE_MAX};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::fees::{mul_div, RoundingRule, BPS_PER_WHOLE};

/// The longest idempotency key a processor request may carry, in bytes.
pub const IDEMPOTENCY_KEY_BYTES_MAX: usize = 255;

/// The longest charge or payout description, in bytes.
pub const DESCRIPTION_BYTES_MAX: usize = 1000;

/// A request to charge a payment method once.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct ProcessorCharge {
    /// Identifies this charge across retries: the same key always means the same charge.
    pub idempotency_key: String,
    /// A payment-method token from [`SandboxProcessor::tokenize`] (or the real processor's).
    pub payment_method: String,
    /// In the asset's minor unit.
    pub amount: Amount,
    pub asset_scale: u8,
    pub description: String,
}

/// Why a charge (or a refund) did not go through. The codes are stable: they reach API clients.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeclineReason {
    /// The issuer declined without saying why.
    CardDeclined,
    InsufficientFunds,
    SuspectedFraud,
    /// The payment method is unknown, malformed, or not a valid card.
    InvalidPaymentMethod,
    /// The processor could not be reached or failed; retrying later may succeed.
    ProcessorUnavailable,
    /// The request itself is malformed (zero amount, bad scale, missing idempotency key); the
    /// message names the field.
    InvalidRequest,
}

impl DeclineReason {
    /// The stable snake_case code, as serialized.
    pub const fn code(self) -> &'static str {
        match self {
            DeclineReason::CardDeclined => "card_declined",
            DeclineReason::InsufficientFunds => "insufficient_funds",
            DeclineReason::SuspectedFraud => "suspected_fraud",
            DeclineReason::InvalidPaymentMethod => "invalid_payment_method",
            DeclineReason::ProcessorUnavailable => "processor_unavailable",
            DeclineReason::InvalidRequest => "invalid_request",
        }
    }

    /// Whether the same request may succeed if tried again later. Only an outage is; a decline
    /// is the issuer's answer and retrying it would look like card testing.
    pub const fn is_retryable(self) -> bool {
        matches!(self, DeclineReason::ProcessorUnavailable)
    }

    const fn message(self) -> &'static str {
        match self {
            DeclineReason::CardDeclined => "the card was declined",
            DeclineReason::InsufficientFunds => "the card has insufficient funds",
            DeclineReason::SuspectedFraud => "the charge was blocked as suspected fraud",
            DeclineReason::InvalidPaymentMethod => "the payment method is not valid",
            DeclineReason::ProcessorUnavailable => "the processor is unavailable; retry later",
            DeclineReason::InvalidRequest => "the request is not valid",
        }
    }
}

/// What came of a charge.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum ProcessorOutcome {
    /// The money was captured. `fee` is what the processor keeps, in the charge's minor unit.
    Succeeded {
        processor_charge_id: String,
        fee: Amount,
    },
    /// Nothing was captured.
    Failed {
        reason: DeclineReason,
        message: String,
    },
}

/// A request to return all or part of a succeeded charge to its payment method.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct ProcessorRefund {
    pub idempotency_key: String,
    pub processor_charge_id: String,
    pub amount: Amount,
    pub asset_scale: u8,
}

/// What came of a processor refund.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum ProcessorRefundOutcome {
    Succeeded {
        processor_refund_id: String,
    },
    Failed {
        reason: DeclineReason,
        message: String,
    },
}

/// Why a cardholder disputed a charge.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DisputeReason {
    Fraudulent,
    ProductNotReceived,
}

impl DisputeReason {
    pub const fn code(self) -> &'static str {
        match self {
            DisputeReason::Fraudulent => "fraudulent",
            DisputeReason::ProductNotReceived => "product_not_received",
        }
    }
}

/// A dispute (chargeback) the processor opens against a succeeded charge: `amount` is pulled
/// back from the platform until the dispute is resolved.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ProcessorDispute {
    pub reason: DisputeReason,
    pub amount: Amount,
}

/// Why a card fee could not be computed.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CardFeeError {
    #[error("asset_scale must be at most {ASSET_SCALE_MAX}, got {asset_scale}")]
    ScaleTooLarge { asset_scale: u8 },
    #[error("percent_bps must be between 0 and 10000, got {percent_bps}")]
    PercentBpsOutOfRange { percent_bps: u32 },
    #[error("card fee on {amount} does not fit in 128 bits")]
    Overflow { amount: Amount },
}

/// A card processor. Implementations must be deterministic per idempotency key: charging the
/// same request twice captures money once and returns the same outcome both times.
pub trait PaymentProcessor: Send + Sync {
    /// Charges `request.payment_method`. Never panics on bad input: a malformed request fails
    /// with [`DeclineReason::InvalidRequest`].
    fn charge(&self, request: &ProcessorCharge) -> ProcessorOutcome;

    /// What this processor keeps from a card charge of `amount` at `asset_scale`.
    fn fee(&self, amount: Amount, asset_scale: u8) -> Result<Amount, CardFeeError>;

    /// Returns money from a succeeded charge to its payment method.
    fn refund(&self, request: &ProcessorRefund) -> ProcessorRefundOutcome;

    /// The dispute the processor will open against this (succeeded) charge, if any.
    ///
    /// A real processor reports disputes later, through its webhooks; its adapter returns
    /// `None` here and feeds those events in elsewhere. The sandbox answers from the test card
    /// behind the payment method, so dispute handling can be exercised end to end.
    fn dispute(&self, _request: &ProcessorCharge) -> Option<ProcessorDispute> {
        None
    }
}

/// The sandbox processor's pricing, in the shape card networks charge: a percentage plus a
/// fixed amount in cents.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct SandboxFees {
    pub percent_bps: u32,
    pub fixed_cents: u32,
}

impl Default for SandboxFees {
    /// 2.9% + 30¢, the common card rate.
    fn default() -> Self {
        SandboxFees {
            percent_bps: 290,
            fixed_cents: 30,
        }
    }
}

/// The percentage part of a card fee rounds to the nearest minor unit, halves up, as card
/// processors round their fees.
pub const CARD_FEE_PERCENT_ROUNDING: RoundingRule = RoundingRule::HalfUp;

/// In an asset coarser than cents (scale 0 or 1) the fixed part rounds up to the smallest unit,
/// so a fixed fee is never rounded away to nothing.
pub const CARD_FEE_FIXED_ROUNDING: RoundingRule = RoundingRule::Up;

/// The decimal scale in which `fixed_cents` is expressed.
const CENTS_SCALE: u8 = 2;

impl SandboxFees {
    pub fn validate(&self) -> Result<(), CardFeeError> {
        if self.percent_bps > BPS_PER_WHOLE {
            return Err(CardFeeError::PercentBpsOutOfRange {
                percent_bps: self.percent_bps,
            });
        }
        Ok(())
    }

    /// What a card charge of `amount` (minor units at `asset_scale`) costs:
    /// `round_half_up(amount * percent_bps / 10000) + fixed`, where the fixed part is
    /// `fixed_cents * 10^(scale - 2)` minor units (rounded up for scales below 2).
    ///
    /// The fee economics report uses this for "what this payment would have cost as its own
    /// card charge". It may well exceed `amount`: that is the point of the report.
    pub fn card_fee(&self, amount: Amount, asset_scale: u8) -> Result<Amount, CardFeeError> {
        self.validate()?;
        let fixed = self.fixed_minor_units(asset_scale)?;
        let overflow = CardFeeError::Overflow { amount };
        let percent = mul_div(
            amount.0,
            u128::from(self.percent_bps),
            u128::from(BPS_PER_WHOLE),
            CARD_FEE_PERCENT_ROUNDING,
        )
        .map_err(|_| overflow)?;
        percent.checked_add(fixed).map(Amount).ok_or(overflow)
    }

    /// `fixed_cents` in minor units of an asset at `asset_scale`.
    fn fixed_minor_units(&self, asset_scale: u8) -> Result<u128, CardFeeError> {
        if asset_scale > ASSET_SCALE_MAX {
            return Err(CardFeeError::ScaleTooLarge { asset_scale });
        }
        let cents = u128::from(self.fixed_cents);
        // Cannot overflow: 10^18 * u32::MAX < 2^128.
        if asset_scale >= CENTS_SCALE {
            Ok(cents * 10u128.pow(u32::from(asset_scale - CENTS_SCALE)))
        } else {
            let cents_per_unit = 10u128.pow(u32::from(CENTS_SCALE - asset_scale));
            mul_div(cents, 1, cents_per_unit, CARD_FEE_FIXED_ROUNDING)
                .map_err(|_| CardFeeError::Overflow { amount: Amount(0) })
        }
    }
}

/// A card network brand, read from the card number's prefix.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CardBrand {
    Visa,
    Mastercard,
    Amex,
    Discover,
    Unknown,
}

impl CardBrand {
    pub const fn code(self) -> &'static str {
        match self {
            CardBrand::Visa => "visa",
            CardBrand::Mastercard => "mastercard",
            CardBrand::Amex => "amex",
            CardBrand::Discover => "discover",
            CardBrand::Unknown => "unknown",
        }
    }

    const ALL: [CardBrand; 5] = [
        CardBrand::Visa,
        CardBrand::Mastercard,
        CardBrand::Amex,
        CardBrand::Discover,
        CardBrand::Unknown,
    ];

    fn from_code(code: &str) -> Option<CardBrand> {
        CardBrand::ALL.into_iter().find(|b| b.code() == code)
    }

    /// The brand from the issuer prefix of a card number (digits only).
    fn of_card(digits: &str) -> CardBrand {
        let prefix = |n: usize| digits.get(..n).and_then(|p| p.parse::<u32>().ok());
        match (prefix(1), prefix(2), prefix(3), prefix(4)) {
            (Some(4), ..) => CardBrand::Visa,
            (_, Some(51..=55), ..) | (.., Some(2221..=2720)) => CardBrand::Mastercard,
            (_, Some(34 | 37), ..) => CardBrand::Amex,
            (_, Some(65), ..) | (_, _, Some(644..=649), _) | (.., Some(6011)) => {
                CardBrand::Discover
            }
            _ => CardBrand::Unknown,
        }
    }
}

/// The platform's secret that keys payment-method fingerprints (see
/// [`SandboxProcessor::tokenize`]). Whoever lacks it cannot tell from two customers' tokens
/// whether they hold the same card, nor test a guessed card number against a token.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenKey([u8; 32]);

impl TokenKey {
    pub const fn new(secret: [u8; 32]) -> TokenKey {
        TokenKey(secret)
    }
}

impl std::fmt::Debug for TokenKey {
    /// Never shows the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

/// A stored payment method: a token to charge, and what may be shown to its owner.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct PaymentMethod {
    /// `pm_sandbox_...`: what the platform stores and charges. Never contains the card number.
    pub token: String,
    pub brand: CardBrand,
    pub last4: String,
}

/// Why a card number could not be tokenized. Each names the field, `card_number`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenizeError {
    #[error("card_number must be {CARD_DIGITS_MIN} to {CARD_DIGITS_MAX} digits (spaces and dashes allowed)")]
    Malformed,
    #[error("card_number fails the Luhn check")]
    FailsLuhnCheck,
}

impl TokenizeError {
    /// The decline reason a charge with this card number would have had.
    pub const fn decline_reason(self) -> DeclineReason {
        DeclineReason::InvalidPaymentMethod
    }
}

/// The fewest digits in a card number.
pub const CARD_DIGITS_MIN: usize = 12;
/// The most digits in a card number.
pub const CARD_DIGITS_MAX: usize = 19;

/// What the sandbox does with a card, chosen by its number.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum SandboxCardBehaviour {
    /// Charges succeed.
    Succeeds,
    /// Charges fail with this reason.
    Declines(DeclineReason),
    /// Charges succeed, then the processor opens a dispute for this reason.
    Disputed(DisputeReason),
}

impl SandboxCardBehaviour {
    const ALL: [SandboxCardBehaviour; 7] = [
        SandboxCardBehaviour::Succeeds,
        SandboxCardBehaviour::Declines(DeclineReason::CardDeclined),
        SandboxCardBehaviour::Declines(DeclineReason::InsufficientFunds),
        SandboxCardBehaviour::Declines(DeclineReason::SuspectedFraud),
        SandboxCardBehaviour::Declines(DeclineReason::ProcessorUnavailable),
        SandboxCardBehaviour::Disputed(DisputeReason::Fraudulent),
        SandboxCardBehaviour::Disputed(DisputeReason::ProductNotReceived),
    ];

    /// The stable code embedded in tokens.
    pub const fn code(self) -> &'static str {
        match self {
            SandboxCardBehaviour::Succeeds => "succeeds",
            SandboxCardBehaviour::Declines(reason) => reason.code(),
            SandboxCardBehaviour::Disputed(DisputeReason::Fraudulent) => "disputed_fraudulent",
            SandboxCardBehaviour::Disputed(DisputeReason::ProductNotReceived) => {
                "disputed_product_not_received"
            }
        }
    }

    fn from_code(code: &str) -> Option<SandboxCardBehaviour> {
        SandboxCardBehaviour::ALL
            .into_iter()
            .find(|b| b.code() == code)
    }
}

/// Stripe's test card numbers, which the sandbox honours. Any other number that passes the
/// Luhn check succeeds.
pub mod test_cards {
    /// Succeeds.
    pub const SUCCEEDS: &str = "4242424242424242";
    /// Declined: `card_declined`.
    pub const DECLINED: &str = "4000000000000002";
    /// Declined: `insufficient_funds`.
    pub const INSUFFICIENT_FUNDS: &str = "4000000000009995";
    /// Declined: `suspected_fraud` (Stripe's "always blocked" card).
    pub const SUSPECTED_FRAUD: &str = "4100000000000019";
    /// Fails: `processor_unavailable` (Stripe's processing-error card).
    pub const PROCESSING_ERROR: &str = "4000000000000119";
    /// Succeeds, then disputed as fraudulent.
    pub const DISPUTED_FRAUDULENT: &str = "4000000000000259";
    /// Succeeds, then disputed as product not received.
    pub const DISPUTED_PRODUCT_NOT_RECEIVED: &str = "4000000000002685";
}

/// The sandbox behaviour of a (Luhn-valid, digits-only) card number.
pub fn sandbox_card_behaviour(digits: &str) -> SandboxCardBehaviour {
    use SandboxCardBehaviour::{Declines, Disputed, Succeeds};
    match digits {
        test_cards::DECLINED => Declines(DeclineReason::CardDeclined),
        test_cards::INSUFFICIENT_FUNDS => Declines(DeclineReason::InsufficientFunds),
        test_cards::SUSPECTED_FRAUD => Declines(DeclineReason::SuspectedFraud),
        test_cards::PROCESSING_ERROR => Declines(DeclineReason::ProcessorUnavailable),
        test_cards::DISPUTED_FRAUDULENT => Disputed(DisputeReason::Fraudulent),
        test_cards::DISPUTED_PRODUCT_NOT_RECEIVED => Disputed(DisputeReason::ProductNotReceived),
        _ => Succeeds,
    }
}

/// Whether a digit string passes the Luhn checksum that every card number carries.
pub fn luhn_valid(digits: &str) -> bool {
    let mut sum = 0u32;
    for (position, byte) in digits.bytes().rev().enumerate() {
        if !byte.is_ascii_digit() {
            return false;
        }
        let mut digit = u32::from(byte - b'0');
        if position % 2 == 1 {
            digit *= 2;
            if digit > 9 {
                digit -= 9;
            }
        }
        sum += digit;
    }
    !digits.is_empty() && sum.is_multiple_of(10)
}

/// The card number's digits without the spaces and dashes people type.
fn normalize_card_number(card_number: &str) -> Result<String, TokenizeError> {
    // Bound the work before allocating: a card number with separators is short.
    if card_number.len() > CARD_DIGITS_MAX * 2 {
        return Err(TokenizeError::Malformed);
    }
    let digits: String = card_number
        .chars()
        .filter(|c| *c != ' ' && *c != '-')
        .collect();
    let well_formed = (CARD_DIGITS_MIN..=CARD_DIGITS_MAX).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit());
    if !well_formed {
        return Err(TokenizeError::Malformed);
    }
    Ok(digits)
}

/// The token prefix the sandbox issues and accepts.
const SANDBOX_TOKEN_PREFIX: &str = "pm_sandbox_";
/// The longest token the sandbox accepts, in bytes.
const SANDBOX_TOKEN_BYTES_MAX: usize = 96;
/// Hex digits of the card fingerprint in a token: 48 bits, ample to tell one customer's few
/// cards apart.
const FINGERPRINT_HEX_LEN: usize = 12;

/// What a sandbox token says about its card.
struct SandboxToken {
    behaviour: SandboxCardBehaviour,
}

impl SandboxToken {
    /// `pm_sandbox_<behaviour>_<brand>_<last4>_<fingerprint>`. The behaviour code may contain
    /// underscores, so the other fields are read from the right.
    fn parse(token: &str) -> Option<SandboxToken> {
        if token.len() > SANDBOX_TOKEN_BYTES_MAX {
            return None;
        }
        let rest = token.strip_prefix(SANDBOX_TOKEN_PREFIX)?;
        let mut fields = rest.rsplitn(4, '_');
        let fingerprint = fields.next()?;
        let last4 = fields.next()?;
        let brand = fields.next()?;
        let behaviour = fields.next()?;
        let hex = |s: &str| s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        let well_formed = fingerprint.len() == FINGERPRINT_HEX_LEN
            && hex(fingerprint)
            && last4.len() == 4
            && last4.bytes().all(|b| b.is_ascii_digit())
            && CardBrand::from_code(brand).is_some();
        if !well_formed {
            return None;
        }
        Some(SandboxToken {
            behaviour: SandboxCardBehaviour::from_code(behaviour)?,
        })
    }
}

/// Lowercase hex of the first `len / 2` bytes of SHA-256 over a domain tag and a value. The tag
/// keeps the ids of different kinds apart.
fn hashed_hex(domain: &str, value: &str, len: usize) -> String {
    let digest = Sha256::new()
        .chain_update(domain.as_bytes())
        .chain_update([0u8])
        .chain_update(value.as_bytes())
        .finalize();
    let mut hex = String::with_capacity(len);
    for byte in digest.iter().take(len.div_ceil(2)) {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex.truncate(len);
    hex
}

/// The first [`FINGERPRINT_HEX_LEN`] hex digits of HMAC-SHA256 under `key` over a domain tag,
/// the customer and the card's digits.
fn card_fingerprint(key: &TokenKey, customer: u128, digits: &str) -> String {
    // HMAC takes a key of any length.
    let Ok(mac) = Hmac::<Sha256>::new_from_slice(&key.0) else {
        unreachable!("HMAC-SHA256 refused a 32-byte key")
    };
    let tag = mac
        .chain_update(b"farthing sandbox card\0")
        .chain_update(customer.to_le_bytes())
        .chain_update(digits.as_bytes())
        .finalize()
        .into_bytes();
    let mut hex = String::with_capacity(FINGERPRINT_HEX_LEN);
    for byte in tag.iter().take(FINGERPRINT_HEX_LEN / 2) {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

/// Hex digits of a processor id's hash part: 96 bits, so ids from distinct keys never collide
/// in practice.
const ID_HEX_LEN: usize = 24;

/// A charge, refund or payout request's checks shared by the sandboxes: the message names the
/// field at fault.
fn check_request(idempotency_key: &str, amount: Amount, asset_scale: u8) -> Result<(), String> {
    if idempotency_key.is_empty() || idempotency_key.len() > IDEMPOTENCY_KEY_BYTES_MAX {
        return Err(format!(
            "idempotency_key must be 1 to {IDEMPOTENCY_KEY_BYTES_MAX} bytes"
        ));
    }
    if amount.is_zero() {
        return Err("amount must be greater than zero".to_string());
    }
    if asset_scale > ASSET_SCALE_MAX {
        return Err(format!("asset_scale must be at most {ASSET_SCALE_MAX}"));
    }
    Ok(())
}

/// A deterministic card processor for development and tests. See [`test_cards`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct SandboxProcessor {
    fees: SandboxFees,
}

impl SandboxProcessor {
    pub fn new(fees: SandboxFees) -> Result<SandboxProcessor, CardFeeError> {
        fees.validate()?;
        Ok(SandboxProcessor { fees })
    }

    pub fn fees(&self) -> SandboxFees {
        self.fees
    }

    /// Turns a card number into customer `customer`'s payment method. The token encodes the
    /// sandbox behaviour, the brand, the last four digits and a short fingerprint, never the
    /// number, so the platform can store it freely. The fingerprint is an HMAC-SHA256 under
    /// `key` of the customer and the number: the same card gets the same token for one customer
    /// (so adding it again finds it), and a different one for every other customer.
    pub fn tokenize(
        &self,
        card_number: &str,
        key: &TokenKey,
        customer: u128,
    ) -> Result<PaymentMethod, TokenizeError> {
        let digits = normalize_card_number(card_number)?;
        if !luhn_valid(&digits) {
            return Err(TokenizeError::FailsLuhnCheck);
        }
        let brand = CardBrand::of_card(&digits);
        // Cannot fail: at least 12 ASCII digits.
        let last4 = digits[digits.len() - 4..].to_string();
        let behaviour = sandbox_card_behaviour(&digits);
        let fingerprint = card_fingerprint(key, customer, &digits);
        let token = format!(
            "{SANDBOX_TOKEN_PREFIX}{}_{}_{last4}_{fingerprint}",
            behaviour.code(),
            brand.code()
        );
        Ok(PaymentMethod {
            token,
            brand,
            last4,
        })
    }

    /// The processor charge id for an idempotency key: the same key, the same id.
    pub fn charge_id(idempotency_key: &str) -> String {
        format!(
            "ch_sandbox_{}",
            hashed_hex("farthing sandbox charge", idempotency_key, ID_HEX_LEN)
        )
    }

    fn failed(reason: DeclineReason, message: String) -> ProcessorOutcome {
        ProcessorOutcome::Failed { reason, message }
    }

    fn check_charge(request: &ProcessorCharge) -> Result<SandboxCardBehaviour, ProcessorOutcome> {
        check_request(
            &request.idempotency_key,
            request.amount,
            request.asset_scale,
        )
        .map_err(|message| Self::failed(DeclineReason::InvalidRequest, message))?;
        if request.description.len() > DESCRIPTION_BYTES_MAX {
            return Err(Self::failed(
                DeclineReason::InvalidRequest,
                format!("description must be at most {DESCRIPTION_BYTES_MAX} bytes"),
            ));
        }
        SandboxToken::parse(&request.payment_method)
            .map(|token| token.behaviour)
            .ok_or_else(|| {
                Self::failed(
                    DeclineReason::InvalidPaymentMethod,
                    "payment_method is not a token this sandbox issued".to_string(),
                )
            })
    }
}

impl PaymentProcessor for SandboxProcessor {
    fn charge(&self, request: &ProcessorCharge) -> ProcessorOutcome {
        let behaviour = match Self::check_charge(request) {
            Ok(behaviour) => behaviour,
            Err(failed) => return failed,
        };
        if let SandboxCardBehaviour::Declines(reason) = behaviour {
            return Self::failed(reason, reason.message().to_string());
        }
        match self.fees.card_fee(request.amount, request.asset_scale) {
            Ok(fee) => ProcessorOutcome::Succeeded {
                processor_charge_id: Self::charge_id(&request.idempotency_key),
                fee,
            },
            Err(error) => Self::failed(DeclineReason::InvalidRequest, error.to_string()),
        }
    }

    fn fee(&self, amount: Amount, asset_scale: u8) -> Result<Amount, CardFeeError> {
        self.fees.card_fee(amount, asset_scale)
    }

    fn refund(&self, request: &ProcessorRefund) -> ProcessorRefundOutcome {
        let failed = |reason, message| ProcessorRefundOutcome::Failed { reason, message };
        if let Err(message) = check_request(
            &request.idempotency_key,
            request.amount,
            request.asset_scale,
        ) {
            return failed(DeclineReason::InvalidRequest, message);
        }
        if !request.processor_charge_id.starts_with("ch_sandbox_") {
            return failed(
                DeclineReason::InvalidRequest,
                "processor_charge_id is not a charge this sandbox made".to_string(),
            );
        }
        ProcessorRefundOutcome::Succeeded {
            processor_refund_id: format!(
                "re_sandbox_{}",
                hashed_hex(
                    "farthing sandbox refund",
                    &request.idempotency_key,
                    ID_HEX_LEN
                )
            ),
        }
    }

    fn dispute(&self, request: &ProcessorCharge) -> Option<ProcessorDispute> {
        match Self::check_charge(request) {
            Ok(SandboxCardBehaviour::Disputed(reason)) => Some(ProcessorDispute {
                reason,
                amount: request.amount,
            }),
            _ => None,
        }
    }
}

/// A request to pay money out to a bank account.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct PayoutRequest {
    pub idempotency_key: String,
    /// The destination account number (digits).
    pub bank_account: String,
    pub amount: Amount,
    pub asset_scale: u8,
    pub description: String,
}

/// Why a payout was not sent. The codes are stable: they reach API clients.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PayoutFailure {
    /// No account with that number exists.
    NoAccount,
    AccountClosed,
    /// The platform's balance at the payout provider cannot cover the payout.
    InsufficientFunds,
    /// The bank refused the transfer.
    DebitNotAuthorized,
    /// The account number is malformed.
    InvalidAccountNumber,
    /// The request itself is malformed; the message names the field.
    InvalidRequest,
    /// The rail could not be reached; retrying later may succeed.
    RailUnavailable,
}

impl PayoutFailure {
    pub const fn code(self) -> &'static str {
        match self {
            PayoutFailure::NoAccount => "no_account",
            PayoutFailure::AccountClosed => "account_closed",
            PayoutFailure::InsufficientFunds => "insufficient_funds",
            PayoutFailure::DebitNotAuthorized => "debit_not_authorized",
            PayoutFailure::InvalidAccountNumber => "invalid_account_number",
            PayoutFailure::InvalidRequest => "invalid_request",
            PayoutFailure::RailUnavailable => "rail_unavailable",
        }
    }

    /// Whether the same payout may succeed if sent again later.
    pub const fn is_retryable(self) -> bool {
        matches!(self, PayoutFailure::RailUnavailable)
    }

    const fn message(self) -> &'static str {
        match self {
            PayoutFailure::NoAccount => "no bank account with that number exists",
            PayoutFailure::AccountClosed => "the bank account is closed",
            PayoutFailure::InsufficientFunds => "the payout balance cannot cover this payout",
            PayoutFailure::DebitNotAuthorized => "the bank did not authorize the transfer",
            PayoutFailure::InvalidAccountNumber => "bank_account is not a valid account number",
            PayoutFailure::InvalidRequest => "the request is not valid",
            PayoutFailure::RailUnavailable => "the payout rail is unavailable; retry later",
        }
    }
}

/// What came of a payout.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum PayoutOutcome {
    /// The money is on its way to the bank account.
    Sent { payout_id: String },
    /// The rail accepted the payout but has not settled it yet (a bank transfer can take
    /// days): ask [`PayoutRail::status`] later.
    InFlight { payout_id: String },
    /// Nothing was sent.
    Failed {
        reason: PayoutFailure,
        message: String,
    },
}

/// A way to send money to a bank account. Implementations must be deterministic per
/// idempotency key: sending the same request twice pays once.
pub trait PayoutRail: Send + Sync {
    /// Sends a payout (or, for a key already sent, answers what became of it).
    fn send(&self, request: &PayoutRequest) -> PayoutOutcome;

    /// What became of a payout the rail answered [`PayoutOutcome::InFlight`] for: still in
    /// flight, sent, or failed (returned by the bank).
    fn status(&self, request: &PayoutRequest, payout_id: &str) -> PayoutOutcome;
}

/// Test bank account numbers the sandbox rail honours: Stripe's, plus one of farthing's own for
/// an outage. Any other 4 to 17 digit number succeeds.
pub mod test_bank_accounts {
    /// Sent.
    pub const SUCCEEDS: &str = "000123456789";
    /// Fails: `no_account`.
    pub const NO_ACCOUNT: &str = "000111111116";
    /// Fails: `account_closed`.
    pub const ACCOUNT_CLOSED: &str = "000111111113";
    /// Fails: `insufficient_funds`.
    pub const INSUFFICIENT_FUNDS: &str = "000222222227";
    /// Fails: `debit_not_authorized`.
    pub const DEBIT_NOT_AUTHORIZED: &str = "000333333335";
    /// Fails: `rail_unavailable` (farthing's own; Stripe has no such number).
    pub const RAIL_UNAVAILABLE: &str = "000999999990";
    /// In flight when sent; sent when its status is asked (farthing's own: a transfer that
    /// takes a while to settle).
    pub const IN_TRANSIT: &str = "000888888883";
}

/// The fewest digits in a bank account number.
pub const BANK_ACCOUNT_DIGITS_MIN: usize = 4;
/// The most digits in a bank account number.
pub const BANK_ACCOUNT_DIGITS_MAX: usize = 17;

/// A deterministic payout rail for development and tests. See [`test_bank_accounts`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct SandboxPayoutRail;

impl SandboxPayoutRail {
    /// The payout id for an idempotency key: the same key, the same id.
    pub fn payout_id(idempotency_key: &str) -> String {
        format!(
            "po_sandbox_{}",
            hashed_hex("farthing sandbox payout", idempotency_key, ID_HEX_LEN)
        )
    }

    /// What the sandbox does with a payout to `bank_account`: `None` means it is sent.
    pub fn failure_for(bank_account: &str) -> Option<PayoutFailure> {
        let well_formed = (BANK_ACCOUNT_DIGITS_MIN..=BANK_ACCOUNT_DIGITS_MAX)
            .contains(&bank_account.len())
            && bank_account.bytes().all(|b| b.is_ascii_digit());
        if !well_formed {
            return Some(PayoutFailure::InvalidAccountNumber);
        }
        match bank_account {
            test_bank_accounts::NO_ACCOUNT => Some(PayoutFailure::NoAccount),
            test_bank_accounts::ACCOUNT_CLOSED => Some(PayoutFailure::AccountClosed),
            test_bank_accounts::INSUFFICIENT_FUNDS => Some(PayoutFailure::InsufficientFunds),
            test_bank_accounts::DEBIT_NOT_AUTHORIZED => Some(PayoutFailure::DebitNotAuthorized),
            test_bank_accounts::RAIL_UNAVAILABLE => Some(PayoutFailure::RailUnavailable),
            _ => None,
        }
    }
}

impl PayoutRail for SandboxPayoutRail {
    fn send(&self, request: &PayoutRequest) -> PayoutOutcome {
        match self.settle(request) {
            PayoutOutcome::Sent { payout_id }
                if request.bank_account == test_bank_accounts::IN_TRANSIT =>
            {
                PayoutOutcome::InFlight { payout_id }
            }
            outcome => outcome,
        }
    }

    /// The payout settles: what [`PayoutRail::send`] answers, and an in-transit one is sent.
    fn status(&self, request: &PayoutRequest, _payout_id: &str) -> PayoutOutcome {
        self.settle(request)
    }
}

impl SandboxPayoutRail {
    /// What becomes of a payout once it has settled.
    fn settle(&self, request: &PayoutRequest) -> PayoutOutcome {
        let failed = |reason, message| PayoutOutcome::Failed { reason, message };
        if let Err(message) = check_request(
            &request.idempotency_key,
            request.amount,
            request.asset_scale,
        ) {
            return failed(PayoutFailure::InvalidRequest, message);
        }
        if request.description.len() > DESCRIPTION_BYTES_MAX {
            return failed(
                PayoutFailure::InvalidRequest,
                format!("description must be at most {DESCRIPTION_BYTES_MAX} bytes"),
            );
        }
        match Self::failure_for(&request.bank_account) {
            Some(reason) => failed(reason, reason.message().to_string()),
            None => PayoutOutcome::Sent {
                payout_id: Self::payout_id(&request.idempotency_key),
            },
        }
    }
}

#[cfg(test)]
mod tests;
