//! Payouts: a merchant's earnings leave for its bank account through the payout rail — on
//! demand, or when they reach the merchant's threshold. The money leaves the earnings account
//! (one chain, with the optional reserve held back) before the rail is asked; a failed payout
//! returns it with a second chain and says why.
//!
//! The reserve is a rolling one: what a payout held back returns to the earnings
//! `reserve_days` later (a scheduled job, one chain), unless the payout failed (its return
//! chain already gave it back).
//!
//! The handlers parse and render; the settings, the balance, paying out and releasing
//! reserves are [`farthing_service::payouts`] operations (the scheduler runs them too).

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use farthing_products::ids::MerchantId;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::extract::json_response;
use crate::extract::ApiJson;
use crate::extract::Key;
use crate::routes::positive_amount;
use farthing_products::ids::{decode_id, IdKind};
use farthing_service::assets::by_code;
use farthing_service::payouts::{
    self, BalanceView, PayoutSchedule, PayoutSettingsView, PayoutTerms, PayoutView,
};
use farthing_service::state::to_json;
use farthing_service::state::Principal;
use farthing_service::state::SharedState;

/// Merchant `id` (a `mer_…` id) if the caller may see it; otherwise 404.
fn visible_merchant(
    state: &SharedState,
    principal: &Principal,
    id: &str,
) -> Result<u128, ApiError> {
    let id = decode_id(IdKind::Merchant, id)
        .ok_or_else(|| ApiError::not_found(Some("id"), "merchant"))?;
    Ok(payouts::visible_merchant(state, principal, id)?)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPayoutSettings {
    #[schema(pattern = r"^[A-Z0-9_]{1,15}$", example = "USD")]
    pub asset: String,
    /// The bank account number. Sandbox: 000123456789 succeeds, 000111111116 fails
    /// (`no_account`), 000111111113 fails (`account_closed`).
    pub bank_account: String,
    /// Pay out automatically when earnings reach this (0 = never by threshold).
    #[schema(pattern = r"^[0-9]{1,39}(\.[0-9]{1,18})?$", example = "10.00")]
    #[serde(default)]
    pub threshold: Option<String>,
    #[serde(default = "manual")]
    pub schedule: PayoutSchedule,
    /// Part of each payout held back as a reserve, in basis points.
    #[serde(default)]
    pub reserve_bps: u32,
    /// Days each payout's reserve is held before it returns to the earnings (1 to 3650;
    /// default 90).
    #[serde(default)]
    pub reserve_days: Option<u32>,
}

fn manual() -> PayoutSchedule {
    PayoutSchedule::Manual
}

#[utoipa::path(post, path = "/v1/merchants/{id}/payout_settings", operation_id = "merchants.payout_settings.set", tag = "payouts", request_body = SetPayoutSettings, params(("id" = String, Path, description = "mer_… id")), responses((status = 200, description = "the merchant's payout settings", body = PayoutSettingsView), crate::error::WriteErrors))]
pub async fn set_settings(
    State(state): State<SharedState>,
    Key(principal): Key,
    Path(id): Path<String>,
    ApiJson(request, _): ApiJson<SetPayoutSettings>,
) -> Result<Response, ApiError> {
    principal.require_write()?;
    let merchant = visible_merchant(&state, &principal, &id)?;
    let asset = by_code(&state, &request.asset, "asset")?;
    let terms = PayoutTerms::new(
        request.bank_account,
        request.schedule,
        request.reserve_bps,
        request.reserve_days,
    )?;
    let threshold = request
        .threshold
        .as_deref()
        // "0" is no threshold (documented: never by threshold); anything else is an amount.
        .map(
            |t| match farthing_products::money::parse_amount(t, asset.scale) {
                Ok(amount) if amount.is_zero() => Ok(amount),
                _ => positive_amount(t, &asset, "threshold"),
            },
        )
        .transpose()?;
    let view =
        payouts::set_settings(&state, MerchantId(merchant), &asset, threshold, terms).await?;
    Ok(json_response(StatusCode::OK, to_json(&view)?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AssetQuery {
    asset: String,
}

#[utoipa::path(get, path = "/v1/merchants/{id}/balance", operation_id = "merchants.balance.get", tag = "payouts", params(("id" = String, Path, description = "mer_… id"), ("asset" = String, Query, description = "asset code")), responses((status = 200, description = "the merchant's earnings", body = BalanceView), crate::error::ReadErrors))]
pub async fn balance(
    State(state): State<SharedState>,
    Key(principal): Key,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<axum::Json<BalanceView>, ApiError> {
    let merchant = visible_merchant(&state, &principal, &id)?;
    let query: AssetQuery = crate::routes::parse_query(query.as_deref())?;
    let asset = by_code(&state, &query.asset, "asset")?;
    Ok(axum::Json(payouts::balance(
        &state,
        MerchantId(merchant),
        &asset,
    )))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePayout {
    /// How much to pay out (default: everything available, less the reserve).
    #[schema(pattern = r"^[0-9]{1,39}(\.[0-9]{1,18})?$", example = "10.00")]
    pub amount: Option<String>,
}

#[utoipa::path(post, path = "/v1/merchants/{id}/payouts", operation_id = "merchants.payouts.create", tag = "payouts", request_body = CreatePayout, params(("id" = String, Path, description = "mer_… id"), ("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry: paid out once")), responses((status = 201, description = "the payout: paid; pending while the rail has not settled it (asked again on a backoff, then paid or failed); or failed with the funds returned", body = PayoutView), crate::error::WriteErrors))]
pub async fn create(
    State(state): State<SharedState>,
    Key(principal): Key,
    headers: axum::http::HeaderMap,
    Path(id): Path<String>,
    ApiJson(request, raw): ApiJson<CreatePayout>,
) -> Result<Response, ApiError> {
    principal.require_write()?;
    let merchant = visible_merchant(&state, &principal, &id)?;
    let requested = match &request.amount {
        Some(text) => {
            let asset = payouts::payout_asset(&state, MerchantId(merchant))?;
            Some(positive_amount(text, &asset, "amount")?)
        }
        None => None,
    };
    // Checked after the merchant and the amount: its place in this endpoint's order of errors.
    let key = crate::extract::idempotency_key(&headers)?;
    let view = payouts::create(
        &state,
        &principal,
        MerchantId(merchant),
        requested,
        key,
        &raw,
    )
    .await?;
    Ok(json_response(StatusCode::CREATED, to_json(&view)?))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PayoutList {
    pub object: &'static str,
    pub data: Vec<PayoutView>,
    pub has_more: bool,
}

#[utoipa::path(get, path = "/v1/merchants/{id}/payouts", operation_id = "merchants.payouts.list", tag = "payouts", params(("id" = String, Path, description = "mer_… id")), responses((status = 200, description = "the merchant's payouts", body = PayoutList), crate::error::ReadErrors))]
pub async fn list(
    State(state): State<SharedState>,
    Key(principal): Key,
    Path(id): Path<String>,
) -> Result<axum::Json<PayoutList>, ApiError> {
    let merchant = visible_merchant(&state, &principal, &id)?;
    let (data, has_more) = payouts::list(&state, MerchantId(merchant))?;
    Ok(axum::Json(PayoutList {
        object: "list",
        data,
        has_more,
    }))
}
