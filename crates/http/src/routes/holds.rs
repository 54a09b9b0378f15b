//! Escrow holds (gig work, marketplaces): a customer funds a task; the money is held in the
//! customer's wallet as a ledger hold (a pending transfer to escrow), not yet the worker's.
//!
//! - **Capture**, by the customer (or the operator), in full or in part: ONE linked chain posts
//!   the part from the hold, re-holds the rest (unless the capture is `final`), and splits the
//!   part by the worker's fee plan (worker, platform fee, rounding). Milestones are several
//!   partial captures of one funded task.
//! - **Release**, by the worker (cancellation) or the operator: the hold is voided, the money
//!   stays the customer's.
//! - **Expiry**: a scheduled job releases what is still held, or captures it (`on_expiry`).
//!
//! The operations (and how a hold's ids name each step) are in [`farthing_service::holds`].

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use crate::error::ApiError;
use crate::extract::json_response;
use crate::extract::ApiJson;
use crate::extract::Caller;
use crate::extract::IdempotencyKey;
use crate::extract::Key;
use crate::routes::positive_amount;
use farthing_products::ids::{decode_id, IdKind};
use farthing_service::assets::{asset_by_id, by_code};
use farthing_service::charges::merchant_exists;
use farthing_service::holds::{self, HoldView, NewHold, OnExpiry};
use farthing_service::state::to_json;
use farthing_service::state::SharedState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateHold {
    /// The worker (`mer_…`) the task is for.
    pub merchant: String,
    #[schema(pattern = r"^[0-9]{1,39}(\.[0-9]{1,18})?$", example = "25.00")]
    pub amount: String,
    #[schema(pattern = r"^[A-Z0-9_]{1,15}$", example = "USD")]
    pub asset: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Seconds until the hold expires (60 to 7,776,000; default 604,800, a week).
    #[serde(default)]
    pub expires_in_seconds: Option<u64>,
    /// What expiry does with what is still held (default `release`).
    #[serde(default)]
    pub on_expiry: Option<OnExpiry>,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CaptureHold {
    /// How much to capture (default: everything still held).
    #[serde(default)]
    #[schema(pattern = r"^[0-9]{1,39}(\.[0-9]{1,18})?$", example = "10.00")]
    pub amount: Option<String>,
    /// Release what is left after this capture (the last milestone). A capture of everything
    /// held is always final.
    #[serde(default)]
    pub r#final: bool,
}

/// A `hold_…` id; anything else names no hold (404).
fn hold_id(text: &str) -> Result<u128, ApiError> {
    decode_id(IdKind::Hold, text).ok_or_else(|| ApiError::not_found(Some("id"), "hold"))
}

#[utoipa::path(post, path = "/v1/holds", operation_id = "holds.create", tag = "holds", request_body = CreateHold, params(("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry: funded once")), responses((status = 201, description = "the hold: the customer's money held for the worker (customer token only)", body = HoldView), crate::error::WriteErrors))]
pub async fn create(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(request, raw): ApiJson<CreateHold>,
) -> Result<Response, ApiError> {
    let customer = holds::funder(&caller)?;
    let merchant = merchant_exists(&state, &request.merchant, "merchant")?;
    let asset = by_code(&state, &request.asset, "asset")?;
    let amount = positive_amount(&request.amount, &asset, "amount")?;
    let hold = NewHold {
        merchant,
        asset,
        amount,
        description: request.description,
        expires_in_seconds: request.expires_in_seconds,
        on_expiry: request.on_expiry,
    };
    let reply = holds::create(&state, customer, key, &raw, hold).await?;
    Ok(crate::extract::reply(reply))
}

#[utoipa::path(get, path = "/v1/holds/{id}", operation_id = "holds.get", tag = "holds", params(("id" = String, Path, description = "hold_… id")), responses((status = 200, description = "the hold and its captures", body = HoldView), crate::error::ReadErrors))]
pub async fn get(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<HoldView>, ApiError> {
    Ok(axum::Json(holds::get(&state, &caller, hold_id(&id)?)?))
}

#[utoipa::path(post, path = "/v1/holds/{id}/capture", operation_id = "holds.capture", tag = "holds", request_body = CaptureHold, params(("id" = String, Path, description = "hold_… id"), ("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry: one capture per key, even across crashes")), responses((status = 200, description = "the hold after the capture (the customer's token, or the operator): the part goes to the worker less the platform fee; the rest stays held unless `final`", body = HoldView), crate::error::WriteErrors))]
pub async fn capture(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    IdempotencyKey(key): IdempotencyKey,
    Path(id): Path<String>,
    ApiJson(request, _): ApiJson<CaptureHold>,
) -> Result<Response, ApiError> {
    let hold = holds::capturable(&state, &caller, hold_id(&id)?)?;
    let asset = asset_by_id(&state, hold.asset)?;
    let amount = request
        .amount
        .as_deref()
        .map(|a| positive_amount(a, &asset, "amount"))
        .transpose()?;
    let view = holds::capture(&state, &hold, (amount, request.r#final), key).await?;
    Ok(json_response(StatusCode::OK, to_json(&view)?))
}

#[utoipa::path(post, path = "/v1/holds/{id}/release", operation_id = "holds.release", tag = "holds", params(("id" = String, Path, description = "hold_… id")), responses((status = 200, description = "the hold, released: what it still held stays the customer's (the worker's key, or the operator)", body = HoldView), crate::error::WriteErrors))]
pub async fn release(
    State(state): State<SharedState>,
    Key(principal): Key,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    principal.require_write()?;
    let view = holds::release(&state, &principal, hold_id(&id)?).await?;
    Ok(json_response(StatusCode::OK, to_json(&view)?))
}
