//! The fee economics report: for a merchant (or the platform) and a period, what its payments
//! were, what the platform earned, what card processing actually cost (top-ups), and what it
//! would have cost had each payment been its own card charge — the saving. JSON or CSV.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use farthing_ledger::Amount;
use farthing_products::fees::{mul_div, RoundingRule};
use farthing_products::report::{
    build_fee_report, to_csv, FeeReport, PaymentKind, PaymentRecord, ProcessorFeeRecord,
};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::extract::Key;
use farthing_products::ids::{decode_id, IdKind};
use farthing_products::money::format_amount;
use farthing_service::assets::by_code;
use farthing_service::state::SharedState;
use farthing_store::records::{
    ChargeRecord, SettlementRecord, TabRecord, TopupRecord, CHARGES, SETTLEMENTS, TABS, TOPUPS,
};

/// A merchant's share of the platform's processor fees is pro rata to its gross, rounded
/// down (named: the platform's own report carries the exact total).
const ALLOCATION_ROUNDING: RoundingRule = RoundingRule::Down;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportQuery {
    asset: String,
    /// `mer_…`; required for merchant keys (their own), optional for the operator.
    merchant: Option<String>,
    /// RFC 3339; default: the beginning.
    from: Option<String>,
    /// RFC 3339, exclusive; default: now.
    to: Option<String>,
    /// `json` (default) or `csv`.
    format: Option<String>,
}

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

fn parse_time(text: &Option<String>, param: &str, default: u64) -> Result<u64, ApiError> {
    match text {
        None => Ok(default),
        Some(t) => time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
            .ok()
            .and_then(|d| u64::try_from(d.unix_timestamp_nanos()).ok())
            .ok_or_else(|| {
                ApiError::invalid(
                    param,
                    "invalid_time",
                    format!("{param} must be an RFC 3339 time"),
                )
            }),
    }
}

#[utoipa::path(get, path = "/v1/reports/fees", operation_id = "reports.fees.get", tag = "reports", params(("asset" = String, Query, description = "asset code"), ("merchant" = Option<String>, Query, description = "mer_… (merchant keys: their own)"), ("from" = Option<String>, Query, description = "RFC 3339, inclusive"), ("to" = Option<String>, Query, description = "RFC 3339, exclusive"), ("format" = Option<String>, Query, description = "json (default) or csv")), responses((status = 200, description = "the fee economics report (JSON, or CSV with format=csv)", content((FeeReportView = "application/json"), (String = "text/csv"))), crate::error::ReadErrors))]
pub async fn fees(
    State(state): State<SharedState>,
    Key(principal): Key,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let query: ReportQuery = crate::routes::parse_query(query.as_deref())?;
    let asset = by_code(&state, &query.asset, "asset")?;
    let merchant = match (&query.merchant, principal.merchant()) {
        (Some(text), _) => Some(
            decode_id(IdKind::Merchant, text)
                .filter(|m| principal.can_see(*m))
                .ok_or_else(|| ApiError::not_found(Some("merchant"), "merchant"))?,
        ),
        (None, Some(own)) => Some(own),
        (None, None) => None,
    };
    let from = parse_time(&query.from, "from", 0)?;
    let to = parse_time(&query.to, "to", u64::MAX)?;
    // The report scans the charges in the store: every answered one first.
    state.products.journal.settle_all().await?;
    let csv = match query.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => {
            return Err(ApiError::invalid(
                "format",
                "invalid_format",
                "format must be json or csv",
            ))
        }
    };
    let in_period = |t: u64| t >= from && t < to;
    let charges: Vec<ChargeRecord> = state
        .store
        .all_records::<ChargeRecord>(CHARGES)?
        .into_iter()
        .filter(|c| c.asset == asset.id.0 && in_period(c.created_ns) && !c.requires_confirmation)
        .filter(|c| farthing_service::charges::charge_status(&state, c) == "succeeded")
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
    let allocate = |total: u128| -> Result<u128, ApiError> {
        match merchant {
            None => Ok(total),
            Some(_) if platform_gross == 0 => Ok(0),
            Some(_) => mul_div(total, gross, platform_gross, ALLOCATION_ROUNDING)
                .map_err(|e| ApiError::internal(format!("allocation: {e}"))),
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
    let report = build_fee_report(
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
    .map_err(|e| ApiError::internal(format!("report: {e}")))?;
    let scope = merchant.map_or_else(
        || "platform".to_string(),
        |m| farthing_products::ids::encode_id(IdKind::Merchant, m),
    );
    if csv {
        let body = to_csv([(scope.as_str(), &report)]);
        return Ok((
            StatusCode::OK,
            [(axum::http::header::CONTENT_TYPE, "text/csv")],
            body,
        )
            .into_response());
    }
    Ok(axum::Json(view(scope, &asset, &report)).into_response())
}

/// The sum of amounts, or an error if it does not fit 128 bits (never a wrapped total).
fn total(mut amounts: impl Iterator<Item = u128>) -> Result<u128, ApiError> {
    amounts
        .try_fold(0u128, u128::checked_add)
        .ok_or_else(|| ApiError::internal("report totals overflow 128 bits"))
}

fn view(scope: String, asset: &farthing_ledger::Asset, r: &FeeReport) -> FeeReportView {
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
