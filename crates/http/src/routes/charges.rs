//! Charges (pay-per-use, per article, in-app items), tips, their receipts and refunds, and
//! the merchants' fee plans: the requests and their parsing.
//!
//! A charge moves money from a customer's wallet to the merchant (and revenue-share payees),
//! the platform's fee and the rounding account, as ONE linked chain. Consent comes from an
//! allowance the customer granted the merchant (its per-charge maximum, its period budget by a
//! ledger limit account in the same chain) or from the customer's own token: either the
//! customer creates the charge, or confirms one the merchant created.
//!
//! Who may charge whom, consent, idempotency, booking a charge (and what it triggers) and
//! refunds are [`farthing_service::charges`]; subscriptions book their periods through it too.

use crate::extract::IdPath;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use farthing_ledger::Asset;
use farthing_products::fees::{FeePlan, RoundingRule};
use farthing_products::ids::ChargeId;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::extract::json_response;
use crate::extract::reply;
use crate::extract::ApiJson;
use crate::extract::Caller;
use crate::extract::IdempotencyKey;
use crate::extract::Key;
use crate::routes::positive_amount;
use farthing_products::ids::{decode_id, encode_id, IdKind};
use farthing_products::money::{format_amount, parse_amount};
use farthing_service::assets::by_code;
use farthing_service::charges::{self, merchant_exists, tipping_customer};
use farthing_service::charges::{ChargeSource, ChargeView, NewCharge, NewTip, RefundView};
use farthing_service::state::to_json;
use farthing_service::state::SharedState;

const DESCRIPTION_BYTES_MAX: usize = 500;
const RESOURCE_ID_BYTES_MAX: usize = 200;
const MESSAGE_BYTES_MAX: usize = 500;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetFeePlan {
    #[schema(pattern = r"^[A-Z0-9_]{1,15}$", example = "USD")]
    pub asset: String,
    /// The percentage part in basis points (250 = 2.5%).
    pub percent_bps: u32,
    /// A fixed part per payment, in the asset.
    #[schema(pattern = r"^[0-9]{1,39}(\.[0-9]{1,18})?$", example = "0.0001")]
    #[serde(default = "zero_text")]
    pub fixed: String,
    pub minimum: Option<String>,
    pub maximum: Option<String>,
    /// How the percentage part is rounded to the asset's smallest unit: `down`, `up`,
    /// `half_up` or `half_even`.
    #[schema(value_type = String, example = "half_even")]
    pub rounding: RoundingRule,
}

fn zero_text() -> String {
    "0".into()
}

impl SetFeePlan {
    /// The plan, its amounts parsed in `asset` (the rules it must satisfy are the service's).
    fn fee_plan(&self, asset: &Asset) -> Result<FeePlan, ApiError> {
        let amount = |text: &str, param: &str| {
            parse_amount(text, asset.scale)
                .map_err(|e| ApiError::invalid(param, "invalid_amount", format!("{param} {e}")))
        };
        let optional = |text: &Option<String>, param: &str| {
            text.as_deref().map(|m| amount(m, param)).transpose()
        };
        Ok(FeePlan {
            percent_bps: self.percent_bps,
            fixed: amount(&self.fixed, "fixed")?,
            minimum: optional(&self.minimum, "minimum")?,
            maximum: optional(&self.maximum, "maximum")?,
            rounding: self.rounding,
        })
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FeePlanView {
    pub object: &'static str,
    pub merchant: String,
    pub asset: String,
    pub percent_bps: u32,
    pub fixed: String,
    pub minimum: Option<String>,
    pub maximum: Option<String>,
    #[schema(value_type = String, example = "half_even")]
    pub rounding: RoundingRule,
}

#[utoipa::path(post, path = "/v1/merchants/{id}/fee_plan", operation_id = "merchants.fee_plan.set", tag = "charges", request_body = SetFeePlan, params(("id" = String, Path, description = "mer_… id")), responses((status = 200, description = "the merchant's fee plan for the asset (operator only)", body = FeePlanView), crate::error::WriteErrors))]
pub async fn set_fee_plan(
    State(state): State<SharedState>,
    Key(principal): Key,
    Path(id): Path<String>,
    ApiJson(request, _): ApiJson<SetFeePlan>,
) -> Result<Response, ApiError> {
    principal.require_operator()?;
    let merchant = merchant_exists(&state, &id, "id")?;
    let asset = by_code(&state, &request.asset, "asset")?;
    let plan = request.fee_plan(&asset)?;
    charges::set_fee_plan(&state, merchant, &asset, &plan).await?;
    let view = FeePlanView {
        object: "fee_plan",
        merchant: encode_id(IdKind::Merchant, merchant.0),
        asset: asset.code.to_string(),
        percent_bps: plan.percent_bps,
        fixed: format_amount(plan.fixed, asset.scale),
        minimum: plan.minimum.map(|m| format_amount(m, asset.scale)),
        maximum: plan.maximum.map(|m| format_amount(m, asset.scale)),
        rounding: plan.rounding,
    };
    Ok(json_response(StatusCode::OK, to_json(&view)?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShareRequest {
    /// A merchant (`mer_…`) receiving part of the net.
    pub merchant: String,
    /// Its share of the net in basis points; all shares add up to 10,000.
    pub bps: u32,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCharge {
    /// The customer (`cus_…`); required with a merchant key.
    pub customer: Option<String>,
    /// The merchant (`mer_…`); required with a customer token.
    pub merchant: Option<String>,
    #[schema(pattern = r"^[0-9]{1,39}(\.[0-9]{1,18})?$", example = "0.0025")]
    pub amount: String,
    #[schema(pattern = r"^[A-Z0-9_]{1,15}$", example = "USD")]
    pub asset: String,
    /// What was bought.
    #[serde(default)]
    pub description: String,
    /// The merchant's id of what was bought (article, item, API call).
    pub resource_id: Option<String>,
    /// Revenue shares of the net (author 70% / publisher 30%); default: all to the merchant.
    #[serde(default)]
    pub shares: Vec<ShareRequest>,
    /// Where the money comes from: the prepaid `wallet` (default) or the customer's post-pay
    /// `tab` in this asset.
    #[serde(default)]
    pub source: ChargeSource,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTip {
    /// The creator (`mer_…`) receiving the tip.
    pub merchant: String,
    #[schema(pattern = r"^[0-9]{1,39}(\.[0-9]{1,18})?$", example = "1.00")]
    pub amount: String,
    #[schema(pattern = r"^[A-Z0-9_]{1,15}$", example = "USD")]
    pub asset: String,
    /// A message to the creator.
    pub message: Option<String>,
}

fn text_field(value: &str, max: usize, param: &str) -> Result<(), ApiError> {
    if value.len() > max {
        return Err(ApiError::invalid(
            param,
            "too_long",
            format!("{param} must be at most {max} bytes"),
        ));
    }
    Ok(())
}

#[utoipa::path(post, path = "/v1/charges", operation_id = "charges.create", tag = "charges", request_body = CreateCharge, params(("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry: the customer is charged once")), responses((status = 201, description = "the charge: succeeded (with an allowance or a customer token), or requires_confirmation (a merchant key without an allowance; the customer confirms it)", body = ChargeView), crate::error::WriteErrors))]
pub async fn create(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(request, raw): ApiJson<CreateCharge>,
) -> Result<Response, ApiError> {
    caller.require_write()?;
    let asset = by_code(&state, &request.asset, "asset")?;
    let amount = positive_amount(&request.amount, &asset, "amount")?;
    text_field(&request.description, DESCRIPTION_BYTES_MAX, "description")?;
    if let Some(r) = &request.resource_id {
        text_field(r, RESOURCE_ID_BYTES_MAX, "resource_id")?;
    }
    let charge = NewCharge {
        customer: request.customer,
        merchant: request.merchant,
        amount,
        asset,
        description: request.description,
        resource_id: request.resource_id,
        shares: request
            .shares
            .into_iter()
            .map(|s| (s.merchant, s.bps))
            .collect(),
        source: request.source,
    };
    Ok(reply(
        charges::create_charge(&state, &caller, charge, key, &raw).await?,
    ))
}

#[utoipa::path(post, path = "/v1/charges/{id}/confirm", operation_id = "charges.confirm", tag = "charges", params(("id" = String, Path, description = "ch_… id")), responses((status = 200, description = "the confirmed charge (customer token only)", body = ChargeView), crate::error::WriteErrors))]
pub async fn confirm(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id =
        decode_id(IdKind::Charge, &id).ok_or_else(|| ApiError::not_found(Some("id"), "charge"))?;
    let view = charges::confirm(&state, &caller, id).await?;
    Ok(json_response(StatusCode::OK, to_json(&view)?))
}

#[utoipa::path(post, path = "/v1/tips", operation_id = "tips.create", tag = "charges", request_body = CreateTip, params(("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry")), responses((status = 201, description = "the tip (customer token only), with the merchant's fee plan applied", body = ChargeView), crate::error::WriteErrors))]
pub async fn tip(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(request, raw): ApiJson<CreateTip>,
) -> Result<Response, ApiError> {
    let customer = tipping_customer(&caller)?;
    let merchant = merchant_exists(&state, &request.merchant, "merchant")?;
    let asset = by_code(&state, &request.asset, "asset")?;
    let amount = positive_amount(&request.amount, &asset, "amount")?;
    if let Some(m) = &request.message {
        text_field(m, MESSAGE_BYTES_MAX, "message")?;
    }
    let tip = NewTip {
        customer,
        merchant,
        amount,
        asset,
        message: request.message,
    };
    Ok(reply(charges::tip(&state, tip, key, &raw).await?))
}

#[utoipa::path(get, path = "/v1/charges/{id}", operation_id = "charges.get", tag = "charges", params(("id" = String, Path, description = "ch_… id")), responses((status = 200, description = "the charge and its receipt", body = ChargeView), crate::error::ReadErrors))]
pub async fn get(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    IdPath(id): IdPath<ChargeId>,
) -> Result<axum::Json<ChargeView>, ApiError> {
    Ok(axum::Json(charges::get_charge(&state, &caller, id).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRefund {
    /// How much to refund (default: all that is left).
    #[schema(pattern = r"^[0-9]{1,39}(\.[0-9]{1,18})?$", example = "0.001")]
    pub amount: Option<String>,
}

#[utoipa::path(post, path = "/v1/charges/{id}/refunds", operation_id = "charges.refunds.create", tag = "charges", request_body = CreateRefund, params(("id" = String, Path, description = "ch_… id"), ("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry: refunded once")), responses((status = 201, description = "the refund, back to the customer's wallet; fees reversed pro rata", body = RefundView), crate::error::WriteErrors))]
pub async fn refund(
    State(state): State<SharedState>,
    Key(principal): Key,
    IdempotencyKey(key): IdempotencyKey,
    IdPath(id): IdPath<ChargeId>,
    ApiJson(request, raw): ApiJson<CreateRefund>,
) -> Result<Response, ApiError> {
    principal.require_write()?;
    // The amount is parsed once the charge's asset is known.
    let amount = |asset: &Asset| {
        let text = request.amount.as_deref();
        text.map(|t| positive_amount(t, asset, "amount"))
            .transpose()
    };
    Ok(reply(
        charges::refund(&state, &principal, id, key, &raw, amount).await?,
    ))
}
