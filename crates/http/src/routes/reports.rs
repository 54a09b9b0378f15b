//! The fee economics report: for a merchant (or the platform) and a period, what its payments
//! were (charges, tips, escrow captures, campaign contributions), what the platform earned and
//! what refunds and chargebacks gave back, what card processing actually cost (top-ups and tab
//! settlements), and what it would have cost had each payment been its own card charge — the
//! saving. JSON or CSV.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::error::ApiError;
use crate::extract::Key;
use farthing_service::reports::{FeeReportAnswer, FeeReportQuery, FeeReportView};
use farthing_service::state::SharedState;

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

#[utoipa::path(get, path = "/v1/reports/fees", operation_id = "reports.fees.get", tag = "reports", params(("asset" = String, Query, description = "asset code"), ("merchant" = Option<String>, Query, description = "mer_… (merchant keys: their own)"), ("from" = Option<String>, Query, description = "RFC 3339, inclusive"), ("to" = Option<String>, Query, description = "RFC 3339, exclusive"), ("format" = Option<String>, Query, description = "json (default) or csv")), responses((status = 200, description = "the fee economics report (JSON, or CSV with format=csv): payments by kind and their platform fees, refunds and chargebacks with the fees they gave back, the net platform fees (for the platform: equal to the ledger's platform revenue change over the period), and processor fees paid against processor fees had each payment been its own card charge", content((FeeReportView = "application/json"), (String = "text/csv"))), crate::error::ReadErrors))]
pub async fn fees(
    State(state): State<SharedState>,
    Key(principal): Key,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let parsed: ReportQuery = crate::routes::parse_query(query.as_deref())?;
    let query = FeeReportQuery {
        asset: &parsed.asset,
        merchant: parsed.merchant.as_deref(),
        from: parsed.from.as_deref(),
        to: parsed.to.as_deref(),
        format: parsed.format.as_deref(),
    };
    Ok(
        match farthing_service::reports::fees(&state, &principal, query).await? {
            FeeReportAnswer::Csv(body) => (
                StatusCode::OK,
                [(axum::http::header::CONTENT_TYPE, "text/csv")],
                body,
            )
                .into_response(),
            FeeReportAnswer::Json(view) => axum::Json(view).into_response(),
        },
    )
}
