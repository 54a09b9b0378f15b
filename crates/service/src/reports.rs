//! The fee economics report: for a merchant (or the platform) and a period, what its payments
//! were, what the platform earned, what card processing actually cost (top-ups and tab
//! settlements), and what it would have cost had each payment been its own card charge — the
//! saving. As a view (JSON) or CSV.

use farthing_ledger::{Amount, Asset};
use farthing_products::fees::{mul_div, RoundingRule};
use farthing_products::ids::{decode_id, encode_id, IdKind};
use farthing_products::money::format_amount;
use farthing_products::report::{
    build_fee_report, to_csv, FeeReport, PaymentKind, PaymentRecord, ProcessorFeeRecord,
};
use farthing_store::records::{
    ChargeRecord, SettlementRecord, TabRecord, TopupRecord, CHARGES, SETTLEMENTS, TABS, TOPUPS,
};
use serde::Serialize;

use crate::assets::by_code;
use crate::error::ServiceError;
use crate::state::{Principal, SharedState};

/// A merchant's share of the platform's processor fees is pro rata to its gross, rounded
/// down (named: the platform's own report carries the exact total).
const ALLOCATION_ROUNDING: RoundingRule = RoundingRule::Down;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FeeReportView {
    pub object: &'static str,
    /// `mer_…`, or `platform`.
    pub scope: String,
    pub asset: String,
    pub payments: u64,
    pub gross_volume: String,
    pub average_payment: Option<String>,
    pub platform_fees: String,
    /// Card charges the platform paid for (top-ups), and their fees.
    pub processor_charges: u64,
    pub processor_fees_paid: String,
    /// What the processor would have kept had each payment been its own card charge.
    pub processor_fees_if_each_card: String,
    /// The difference (negative when batching cost more).
    pub saving: String,
    /// saving / processor_fees_if_each_card, 4 decimal places.
    pub saving_ratio: Option<String>,
}

/// What a fee report is asked for, as the request says it: the asset's code, the merchant
/// (`mer_…`; merchant keys: their own, the default), the period as RFC 3339 times (`from`
/// inclusive, default the beginning; `to` exclusive, default now) and the format (`json`, the
/// default, or `csv`).
#[derive(Debug, Clone, Copy)]
pub struct FeeReportQuery<'a> {
    pub asset: &'a str,
    pub merchant: Option<&'a str>,
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    pub format: Option<&'a str>,
}

/// A fee report in the format asked for.
#[derive(Debug)]
pub enum FeeReportAnswer {
    Json(Box<FeeReportView>),
    Csv(String),
}

fn parse_time(text: Option<&str>, param: &str, default: u64) -> Result<u64, ServiceError> {
    match text {
        None => Ok(default),
        Some(t) => time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
            .ok()
            .and_then(|d| u64::try_from(d.unix_timestamp_nanos()).ok())
            .ok_or_else(|| {
                ServiceError::invalid(
                    param,
                    "invalid_time",
                    format!("{param} must be an RFC 3339 time"),
                )
            }),
    }
}

/// The fee economics report of a merchant the caller may see (or of the platform), over the
/// charges, top-ups and settlements of the period.
pub async fn fees(
    state: &SharedState,
    principal: &Principal,
    query: FeeReportQuery<'_>,
) -> Result<FeeReportAnswer, ServiceError> {
    let asset = by_code(state, query.asset, "asset")?;
    let merchant = match (query.merchant, principal.merchant()) {
        (Some(text), _) => Some(
            decode_id(IdKind::Merchant, text)
                .filter(|m| principal.can_see(*m))
                .ok_or_else(|| ServiceError::not_found(Some("merchant"), "merchant"))?,
        ),
        (None, Some(own)) => Some(own),
        (None, None) => None,
    };
    let from = parse_time(query.from, "from", 0)?;
    let to = parse_time(query.to, "to", u64::MAX)?;
    // The report scans the charges in the store: every answered one first.
    state.products.journal.settle_all().await?;
    let csv = match query.format {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => {
            return Err(ServiceError::invalid(
                "format",
                "invalid_format",
                "format must be json or csv",
            ))
        }
    };
    let report = build(state, &asset, merchant, from, to)?;
    let scope = merchant.map_or_else(
        || "platform".to_string(),
        |m| encode_id(IdKind::Merchant, m),
    );
    if csv {
        return Ok(FeeReportAnswer::Csv(to_csv([(scope.as_str(), &report)])));
    }
    Ok(FeeReportAnswer::Json(Box::new(view(
        scope, &asset, &report,
    ))))
}

/// The report of `merchant` (or the platform) in `asset` over `from..to` (nanoseconds).
fn build(
    state: &SharedState,
    asset: &Asset,
    merchant: Option<u128>,
    from: u64,
    to: u64,
) -> Result<FeeReport, ServiceError> {
    let in_period = |t: u64| t >= from && t < to;
    let charges: Vec<ChargeRecord> = state
        .store
        .all_records::<ChargeRecord>(CHARGES)?
        .into_iter()
        .filter(|c| c.asset == asset.id.0 && in_period(c.created_ns) && !c.requires_confirmation)
        .filter(|c| crate::charges::charge_status(state, c) == "succeeded")
        .collect();
    let platform_gross = total(charges.iter().map(|c| c.amount))?;
    let mine: Vec<&ChargeRecord> = charges
        .iter()
        .filter(|c| merchant.is_none_or(|m| c.merchant == m))
        .collect();
    let gross = total(mine.iter().map(|c| c.amount))?;
    // What card processing actually cost: top-ups and tab settlements, as (charged, fee).
    let mut card_charges: Vec<(u128, u128)> = state
        .store
        .all_records::<TopupRecord>(TOPUPS)?
        .into_iter()
        .filter(|t| t.asset == asset.id.0 && t.status == "succeeded" && in_period(t.created_ns))
        .map(|t| (t.amount, t.processor_fee))
        .collect();
    let tab_assets: std::collections::HashMap<u128, u32> = state
        .store
        .all_records::<TabRecord>(TABS)?
        .into_iter()
        .map(|t| (t.id, t.asset))
        .collect();
    card_charges.extend(
        state
            .store
            .all_records::<SettlementRecord>(SETTLEMENTS)?
            .into_iter()
            .filter(|s| {
                s.status == "succeeded"
                    && tab_assets.get(&s.tab) == Some(&asset.id.0)
                    && in_period(s.created_ns)
            })
            .map(|s| (s.amount, s.processor_fee)),
    );
    let allocate = |total: u128| -> Result<u128, ServiceError> {
        match merchant {
            None => Ok(total),
            Some(_) if platform_gross == 0 => Ok(0),
            Some(_) => mul_div(total, gross, platform_gross, ALLOCATION_ROUNDING)
                .map_err(|e| ServiceError::internal(format!("allocation: {e}"))),
        }
    };
    let processor_records: Vec<ProcessorFeeRecord> = match merchant {
        None => card_charges
            .iter()
            .map(|(amount, fee)| ProcessorFeeRecord {
                amount_charged: Amount(*amount),
                fee: Amount(*fee),
            })
            .collect(),
        Some(_) => vec![ProcessorFeeRecord {
            amount_charged: Amount(allocate(total(card_charges.iter().map(|c| c.0))?)?),
            fee: Amount(allocate(total(card_charges.iter().map(|c| c.1))?)?),
        }],
    };
    let fees = state.products.card_fees;
    build_fee_report(
        mine.iter().map(|c| PaymentRecord {
            amount: Amount(c.amount),
            platform_fee: Amount(c.platform_fee),
            kind: if c.tab.is_some() {
                PaymentKind::Tab
            } else {
                PaymentKind::Wallet
            },
        }),
        processor_records,
        asset.scale,
        |amount, scale| fees.card_fee(amount, scale),
    )
    .map_err(|e| ServiceError::internal(format!("report: {e}")))
}

/// The sum of amounts, or an error if it does not fit 128 bits (never a wrapped total).
fn total(mut amounts: impl Iterator<Item = u128>) -> Result<u128, ServiceError> {
    amounts
        .try_fold(0u128, u128::checked_add)
        .ok_or_else(|| ServiceError::internal("report totals overflow 128 bits"))
}

fn view(scope: String, asset: &Asset, r: &FeeReport) -> FeeReportView {
    let s = asset.scale;
    FeeReportView {
        object: "fee_report",
        scope,
        asset: asset.code.to_string(),
        payments: r.payments,
        gross_volume: format_amount(r.gross, s),
        average_payment: r.average_payment.map(|a| format_amount(a, s)),
        platform_fees: format_amount(r.platform_fees, s),
        processor_charges: r.processor_charges,
        processor_fees_paid: format_amount(r.processor_fees_paid, s),
        processor_fees_if_each_card: format_amount(r.processor_fees_if_each_card, s),
        saving: r.saving.format(s),
        saving_ratio: r.saving_ratio.map(|x| x.to_string()),
    }
}
