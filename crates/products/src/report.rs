//! Fee economics: what farthing's batching saved in card fees.
//!
//! Card networks charge a percentage plus a fixed fee per charge, so a one-cent payment charged
//! on its own would cost thirty times its value. farthing charges cards only for wallet top-ups
//! and tab settlements and moves the payments themselves on its ledger. [`FeeReport`] puts the
//! two side by side: the processor fees actually paid, and what the processor would have
//! charged had every payment been its own card charge.
//!
//! It also says what the platform earned: the platform fees taken on every kind of payment
//! (charges and tips from wallets and tabs, escrow captures, campaign contributions), the fees
//! given back by refunds and chargebacks ([`ReversalRecord`]), and the net of the two, which is
//! what the ledger's platform revenue account moved by.
//!
//! The report is built in one pass over the records (constant memory), and rendered as CSV by
//! [`to_csv`] with every amount an exact decimal string in the asset's scale.

use std::collections::BTreeMap;
use std::fmt;

use farthing_ledger::{Amount, ASSET_SCALE_MAX};
use serde::{Deserialize, Serialize};

use crate::fees::{div_round, mul_div, RoundingRule};
use crate::processor::CardFeeError;

/// How a payment was made: the three ways farthing makes small payments economical, and the
/// products that pay a merchant from money held first. New kinds go last: the order is the
/// order of `payments_by_kind` in the CSV.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PaymentKind {
    /// Spent from a prepaid wallet.
    Wallet,
    /// Accrued on a post-paid tab.
    Tab,
    /// Settled from off-ledger vouchers.
    Voucher,
    /// An escrow hold's capture (each milestone is one payment).
    Escrow,
    /// A campaign contribution: paid at once (keep-what-you-raise) or captured at the deadline
    /// (all-or-nothing). A released contribution is no payment.
    Campaign,
}

impl PaymentKind {
    pub const fn code(self) -> &'static str {
        match self {
            PaymentKind::Wallet => "wallet",
            PaymentKind::Tab => "tab",
            PaymentKind::Voucher => "voucher",
            PaymentKind::Escrow => "escrow",
            PaymentKind::Campaign => "campaign",
        }
    }
}

/// How money paid was given back.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ReversalKind {
    /// A merchant (or the operator) refunded part or all of a charge.
    Refund,
    /// A chargeback took back a charge (or part of one) for the card processor.
    Chargeback,
}

/// One refund, or one chargeback's reversal of charges: what was given back, and the part of it
/// that was the platform's fee.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ReversalRecord {
    pub amount: Amount,
    /// The platform's fee given back with it (debited from the platform's revenue).
    pub platform_fee_returned: Amount,
    pub kind: ReversalKind,
}

/// One payment made on the ledger.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct PaymentRecord {
    pub amount: Amount,
    /// The platform's fee taken from it.
    pub platform_fee: Amount,
    pub kind: PaymentKind,
}

/// One card charge actually sent to the processor (a top-up or a tab settlement).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ProcessorFeeRecord {
    pub amount_charged: Amount,
    /// What the processor kept.
    pub fee: Amount,
}

/// An amount that may be negative: a sign and a magnitude, because differences of `u128`
/// totals do not fit in `i128`. Zero is never negative.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct SignedAmount {
    negative: bool,
    magnitude: Amount,
}

impl SignedAmount {
    /// `minuend - subtrahend`, exactly.
    pub fn difference(minuend: Amount, subtrahend: Amount) -> SignedAmount {
        if minuend >= subtrahend {
            SignedAmount {
                negative: false,
                magnitude: Amount(minuend.0 - subtrahend.0),
            }
        } else {
            SignedAmount {
                negative: true,
                magnitude: Amount(subtrahend.0 - minuend.0),
            }
        }
    }

    pub fn is_negative(&self) -> bool {
        self.negative
    }

    pub fn magnitude(&self) -> Amount {
        self.magnitude
    }

    /// As an exact decimal string at `scale`, with a leading `-` when negative.
    pub fn format(&self, scale: u8) -> String {
        let sign = if self.negative { "-" } else { "" };
        format!("{sign}{}", self.magnitude.to_decimal(scale))
    }
}

/// The decimal places of a [`SavingRatio`].
pub const SAVING_RATIO_SCALE: u8 = 4;

/// A signed ratio in ten-thousandths, shown as an exact decimal with four places (`0.9833`,
/// `-1.2500`). Zero is never negative.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct SavingRatio {
    negative: bool,
    ten_thousandths: u128,
}

impl SavingRatio {
    pub fn is_negative(&self) -> bool {
        self.negative
    }

    pub fn ten_thousandths(&self) -> u128 {
        self.ten_thousandths
    }
}

impl fmt::Display for SavingRatio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.negative { "-" } else { "" };
        let digits = Amount(self.ten_thousandths).to_decimal(SAVING_RATIO_SCALE);
        write!(f, "{sign}{digits}")
    }
}

/// The average payment rounds to the nearest minor unit, halves to even, so that averages
/// over many reports do not drift upward.
pub const AVERAGE_ROUNDING: RoundingRule = RoundingRule::HalfEven;

/// The saving ratio rounds to the nearest ten-thousandth, halves to even, for the same reason.
pub const SAVING_RATIO_ROUNDING: RoundingRule = RoundingRule::HalfEven;

/// Payment count and sums for one [`PaymentKind`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct KindTotals {
    pub payments: u64,
    pub gross: Amount,
    pub platform_fees: Amount,
}

/// The fee economics of a set of payments in one asset.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct FeeReport {
    pub asset_scale: u8,
    /// How many payments were made on the ledger.
    pub payments: u64,
    /// Their total.
    pub gross: Amount,
    /// `gross / payments`, rounded by [`AVERAGE_ROUNDING`]; `None` without payments.
    pub average_payment: Option<Amount>,
    /// The platform's fees on those payments.
    pub platform_fees: Amount,
    /// How many card charges were sent to the processor.
    pub processor_charges: u64,
    /// Their total.
    pub processor_charged: Amount,
    /// What the processor kept from them.
    pub processor_fees_paid: Amount,
    /// What the processor would have kept had every payment been its own card charge.
    pub processor_fees_if_each_card: Amount,
    /// `processor_fees_if_each_card - processor_fees_paid`; negative when batching cost more.
    pub saving: SignedAmount,
    /// `saving / processor_fees_if_each_card`, rounded by [`SAVING_RATIO_ROUNDING`]; `None`
    /// when that would be a division by zero.
    pub saving_ratio: Option<SavingRatio>,
    /// The payments broken down by how they were funded; kinds with no payments are absent.
    pub by_kind: BTreeMap<PaymentKind, KindTotals>,
    /// How many refunds were made.
    pub refunds: u64,
    /// What they gave back.
    pub refunded: Amount,
    /// The platform fees they gave back.
    pub refunded_platform_fees: Amount,
    /// How many chargebacks reversed charges.
    pub chargebacks: u64,
    /// What they took back from the charges.
    pub charged_back: Amount,
    /// The platform fees they took back.
    pub charged_back_platform_fees: Amount,
    /// `platform_fees - refunded_platform_fees - charged_back_platform_fees`: what the
    /// platform's revenue account moved by. Negative when more fees were given back (of
    /// payments made earlier) than were taken.
    pub net_platform_fees: SignedAmount,
}

/// Why a report could not be built. Each names the field at fault.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    #[error("asset_scale must be at most {ASSET_SCALE_MAX}, got {asset_scale}")]
    ScaleTooLarge { asset_scale: u8 },
    #[error("{field} does not fit in its integer type")]
    Overflow { field: &'static str },
    #[error("card fee: {0}")]
    CardFee(#[from] CardFeeError),
}

fn add(total: Amount, amount: Amount, field: &'static str) -> Result<Amount, ReportError> {
    total
        .checked_add(amount)
        .ok_or(ReportError::Overflow { field })
}

fn increment(count: u64, field: &'static str) -> Result<u64, ReportError> {
    count.checked_add(1).ok_or(ReportError::Overflow { field })
}

/// Builds the report in one pass over `payments`, `reversals` and `processor_fees`.
///
/// `card_fee(amount, asset_scale)` is the processor's price for one card charge, such as
/// [`crate::processor::SandboxFees::card_fee`] or [`crate::processor::PaymentProcessor::fee`].
pub fn build_fee_report<P, V, R, C>(
    payments: P,
    reversals: V,
    processor_fees: R,
    asset_scale: u8,
    card_fee: C,
) -> Result<FeeReport, ReportError>
where
    P: IntoIterator<Item = PaymentRecord>,
    V: IntoIterator<Item = ReversalRecord>,
    R: IntoIterator<Item = ProcessorFeeRecord>,
    C: Fn(Amount, u8) -> Result<Amount, CardFeeError>,
{
    if asset_scale > ASSET_SCALE_MAX {
        return Err(ReportError::ScaleTooLarge { asset_scale });
    }
    let mut report = FeeReport {
        asset_scale,
        payments: 0,
        gross: Amount::ZERO,
        average_payment: None,
        platform_fees: Amount::ZERO,
        processor_charges: 0,
        processor_charged: Amount::ZERO,
        processor_fees_paid: Amount::ZERO,
        processor_fees_if_each_card: Amount::ZERO,
        saving: SignedAmount::default(),
        saving_ratio: None,
        by_kind: BTreeMap::new(),
        refunds: 0,
        refunded: Amount::ZERO,
        refunded_platform_fees: Amount::ZERO,
        chargebacks: 0,
        charged_back: Amount::ZERO,
        charged_back_platform_fees: Amount::ZERO,
        net_platform_fees: SignedAmount::default(),
    };
    for payment in payments {
        report.add_payment(payment, card_fee(payment.amount, asset_scale)?)?;
    }
    for reversal in reversals {
        report.add_reversal(reversal)?;
    }
    for charge in processor_fees {
        report.add_processor_charge(charge)?;
    }
    report.finish()?;
    Ok(report)
}

impl FeeReport {
    fn add_payment(&mut self, payment: PaymentRecord, card_fee: Amount) -> Result<(), ReportError> {
        self.payments = increment(self.payments, "payments")?;
        self.gross = add(self.gross, payment.amount, "gross")?;
        self.platform_fees = add(self.platform_fees, payment.platform_fee, "platform_fees")?;
        self.processor_fees_if_each_card = add(
            self.processor_fees_if_each_card,
            card_fee,
            "processor_fees_if_each_card",
        )?;
        let kind = self.by_kind.entry(payment.kind).or_default();
        // Cannot overflow: each kind's totals are at most the overall totals checked above.
        kind.payments += 1;
        kind.gross = Amount(kind.gross.0 + payment.amount.0);
        kind.platform_fees = Amount(kind.platform_fees.0 + payment.platform_fee.0);
        Ok(())
    }

    fn add_reversal(&mut self, reversal: ReversalRecord) -> Result<(), ReportError> {
        let ReversalRecord {
            amount,
            platform_fee_returned: fee,
            kind,
        } = reversal;
        match kind {
            ReversalKind::Refund => {
                self.refunds = increment(self.refunds, "refunds")?;
                self.refunded = add(self.refunded, amount, "refunded")?;
                self.refunded_platform_fees =
                    add(self.refunded_platform_fees, fee, "refunded_platform_fees")?;
            }
            ReversalKind::Chargeback => {
                self.chargebacks = increment(self.chargebacks, "chargebacks")?;
                self.charged_back = add(self.charged_back, amount, "charged_back")?;
                self.charged_back_platform_fees = add(
                    self.charged_back_platform_fees,
                    fee,
                    "charged_back_platform_fees",
                )?;
            }
        }
        Ok(())
    }

    fn add_processor_charge(&mut self, charge: ProcessorFeeRecord) -> Result<(), ReportError> {
        self.processor_charges = increment(self.processor_charges, "processor_charges")?;
        self.processor_charged = add(
            self.processor_charged,
            charge.amount_charged,
            "processor_charged",
        )?;
        self.processor_fees_paid =
            add(self.processor_fees_paid, charge.fee, "processor_fees_paid")?;
        Ok(())
    }

    /// Computes the derived figures once every record is in.
    fn finish(&mut self) -> Result<(), ReportError> {
        self.average_payment = match self.payments {
            0 => None,
            count => Some(Amount(
                div_round(self.gross.0, u128::from(count), AVERAGE_ROUNDING).map_err(|_| {
                    ReportError::Overflow {
                        field: "average_payment",
                    }
                })?,
            )),
        };
        self.saving =
            SignedAmount::difference(self.processor_fees_if_each_card, self.processor_fees_paid);
        self.saving_ratio = self.compute_saving_ratio()?;
        let returned = add(
            self.refunded_platform_fees,
            self.charged_back_platform_fees,
            "net_platform_fees",
        )?;
        self.net_platform_fees = SignedAmount::difference(self.platform_fees, returned);
        Ok(())
    }

    fn compute_saving_ratio(&self) -> Result<Option<SavingRatio>, ReportError> {
        let whole = self.processor_fees_if_each_card.0;
        if whole == 0 {
            return Ok(None);
        }
        let ten_thousandths = mul_div(
            self.saving.magnitude.0,
            10_000,
            whole,
            SAVING_RATIO_ROUNDING,
        )
        .map_err(|_| ReportError::Overflow {
            field: "saving_ratio",
        })?;
        Ok(Some(SavingRatio {
            negative: self.saving.negative && ten_thousandths != 0,
            ten_thousandths,
        }))
    }
}

/// The CSV columns, in order. Amounts are decimal strings in the asset's scale; an absent
/// average or ratio is an empty field. New columns go last, so that a reader by position keeps
/// working.
pub const CSV_COLUMNS: [&str; 20] = [
    "label",
    "asset_scale",
    "payments",
    "gross",
    "average_payment",
    "platform_fees",
    "processor_charges",
    "processor_charged",
    "processor_fees_paid",
    "processor_fees_if_each_card",
    "saving",
    "saving_ratio",
    "payments_by_kind",
    "refunds",
    "refunded",
    "refunded_platform_fees",
    "chargebacks",
    "charged_back",
    "charged_back_platform_fees",
    "net_platform_fees",
];

/// CSV lines end in CRLF, as RFC 4180 asks.
const CSV_LINE_END: &str = "\r\n";

/// Renders labelled reports (one per merchant, period, ...) as CSV: a header line, then one
/// line per report. Labels are quoted as needed, and a label that a spreadsheet would take
/// for a formula (starting with `=`, `+`, `-`, `@`, tab or CR) gets a leading `'`.
pub fn to_csv<'a, I>(reports: I) -> String
where
    I: IntoIterator<Item = (&'a str, &'a FeeReport)>,
{
    let mut csv = CSV_COLUMNS.join(",");
    csv.push_str(CSV_LINE_END);
    for (label, report) in reports {
        csv.push_str(&csv_row(label, report));
        csv.push_str(CSV_LINE_END);
    }
    csv
}

fn csv_row(label: &str, report: &FeeReport) -> String {
    let scale = report.asset_scale;
    let amount = |a: Amount| a.to_decimal(scale);
    let fields = [
        csv_text_field(label),
        scale.to_string(),
        report.payments.to_string(),
        amount(report.gross),
        report.average_payment.map(amount).unwrap_or_default(),
        amount(report.platform_fees),
        report.processor_charges.to_string(),
        amount(report.processor_charged),
        amount(report.processor_fees_paid),
        amount(report.processor_fees_if_each_card),
        report.saving.format(scale),
        report
            .saving_ratio
            .map(|r| r.to_string())
            .unwrap_or_default(),
        csv_text_field(&kinds_summary(report)),
        report.refunds.to_string(),
        amount(report.refunded),
        amount(report.refunded_platform_fees),
        report.chargebacks.to_string(),
        amount(report.charged_back),
        amount(report.charged_back_platform_fees),
        report.net_platform_fees.format(scale),
    ];
    fields.join(",")
}

/// `wallet=3;tab=1`: payment counts per kind, in a fixed order.
fn kinds_summary(report: &FeeReport) -> String {
    report
        .by_kind
        .iter()
        .map(|(kind, totals)| format!("{}={}", kind.code(), totals.payments))
        .collect::<Vec<_>>()
        .join(";")
}

/// Quotes a free-text CSV field when it needs it, and defuses spreadsheet formulas.
fn csv_text_field(text: &str) -> String {
    let formula_start = text.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let text = if formula_start {
        format!("'{text}")
    } else {
        text.to_string()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

#[cfg(test)]
mod tests;
