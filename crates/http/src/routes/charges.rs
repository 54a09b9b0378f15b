//! Charges (pay-per-use, per article, in-app items), tips, their receipts and refunds, and
//! the merchants' fee plans.
//!
//! A charge moves money from a customer's wallet to the merchant (and revenue-share payees),
//! the platform's fee and the rounding account, as ONE linked chain. Consent comes from an
//! allowance the customer granted the merchant (its per-charge maximum checked here, its period
//! budget by a ledger limit account in the same chain) or from the customer's own token:
//! either the customer creates the charge, or confirms one the merchant created.
//!
//! Booking a charge (and what it triggers) is [`farthing_service::charges`]; subscriptions book
//! their periods through it too.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use farthing_ledger::{Amount, TransferResult};
use farthing_products::fees::{reverse, Destination, FeePlan, RoundingRule};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::extract::json_response;
use crate::extract::ApiJson;
use crate::extract::Caller;
use crate::extract::IdempotencyKey;
use crate::extract::Key;
use crate::routes::positive_amount;
use farthing_products::accounts::{chain_id, CODE_REFUND};
use farthing_products::ids::{decode_id, encode_id, IdKind};
use farthing_products::money::{format_amount, parse_amount};
use farthing_service::assets::{asset_by_id, by_code};
use farthing_service::charges::{
    booked_split, find_merchant, load_charge, merchant_exists, part_merchant, reversed_so_far,
    visible_charge,
};
use farthing_service::charges::{
    charge_status, charge_view, charge_writes, execute, merchant_settings, priced,
    refund_committed, refund_view, ChargeView, RefundView,
};
use farthing_service::customers::allowances_of;
use farthing_service::state::to_json;
use farthing_service::state::SharedState;
use farthing_service::submit::{
    run_chain_recorded, ChainOutcome, LedgerAccount, Leg, ObjectGuard, Role,
};
use farthing_store::outbox::{event_write, EventKind};
use farthing_store::records::{
    ChargeKind, ChargeRecord, FeePlanRecord, RefundRecord, CHARGES, MERCHANT_SETTINGS, REFUNDS,
};
use farthing_store::util::derived_id;
use farthing_store::util::random_id;
use farthing_store::util::sha256;
use farthing_store::util::time_ordered_id;
use farthing_store::{Changes, RecordWrite, Scope};

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
    let merchant = decode_id(IdKind::Merchant, &id)
        .filter(|m| {
            matches!(
                state.products.cache.merchant_exists(&state.store, *m),
                Ok(true)
            )
        })
        .ok_or_else(|| ApiError::not_found(Some("id"), "merchant"))?;
    let asset = by_code(&state, &request.asset, "asset")?;
    let amount = |text: &str, param: &str| {
        parse_amount(text, asset.scale)
            .map_err(|e| ApiError::invalid(param, "invalid_amount", format!("{param} {e}")))
    };
    let plan = FeePlan {
        percent_bps: request.percent_bps,
        fixed: amount(&request.fixed, "fixed")?,
        minimum: request
            .minimum
            .as_deref()
            .map(|m| amount(m, "minimum"))
            .transpose()?,
        maximum: request
            .maximum
            .as_deref()
            .map(|m| amount(m, "maximum"))
            .transpose()?,
        rounding: request.rounding,
    };
    plan.validate().map_err(|e| {
        let param = match e {
            farthing_products::fees::FeePlanError::PercentBpsOutOfRange { .. } => "percent_bps",
            _ => "minimum",
        };
        ApiError::invalid(param, "invalid_fee_plan", e.to_string())
    })?;
    let _guard = state.products.lock(merchant).await;
    let mut settings = merchant_settings(&state, merchant)?;
    settings.fee_plans.retain(|(a, _)| *a != asset.id.0);
    settings.fee_plans.push((
        asset.id.0,
        FeePlanRecord {
            percent_bps: plan.percent_bps,
            fixed: plan.fixed.0,
            minimum: plan.minimum.map(|m| m.0.to_string()),
            maximum: plan.maximum.map(|m| m.0.to_string()),
            rounding: plan.rounding,
        },
    ));
    state
        .commit(Changes {
            records: vec![RecordWrite::put(MERCHANT_SETTINGS, merchant, &settings)?],
            ..Changes::default()
        })
        .await?;
    state.products.cache.forget_settings(merchant);
    let view = FeePlanView {
        object: "fee_plan",
        merchant: encode_id(IdKind::Merchant, merchant),
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

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChargeSource {
    #[default]
    Wallet,
    Tab,
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

#[utoipa::path(post, path = "/v1/charges", operation_id = "charges.create", tag = "charges", request_body = CreateCharge, params(("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry: the customer is charged once")), responses((status = 201, description = "the charge: succeeded (with an allowance or a customer token), or requires_confirmation (a merchant key without an allowance; the customer confirms it)", body = ChargeView), (status = 200, description = "an idempotent retry", body = ChargeView), crate::error::WriteErrors))]
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
    let (customer, merchant) = match (caller.scope(), caller.merchant()) {
        (Scope::Customer, _) => {
            let merchant = request.merchant.as_deref().ok_or_else(|| {
                ApiError::invalid(
                    "merchant",
                    "missing_field",
                    "merchant is required with a customer token",
                )
            })?;
            let customer = caller.customer().unwrap_or(0);
            if request
                .customer
                .as_deref()
                .is_some_and(|c| decode_id(IdKind::Customer, c) != Some(customer))
            {
                return Err(ApiError::not_found(Some("customer"), "customer"));
            }
            (customer, merchant_exists(&state, merchant, "merchant")?)
        }
        (Scope::Merchant, Some(own)) => {
            if request
                .merchant
                .as_deref()
                .is_some_and(|m| decode_id(IdKind::Merchant, m) != Some(own))
            {
                return Err(ApiError::not_found(Some("merchant"), "merchant"));
            }
            let text = request.customer.as_deref().ok_or_else(|| {
                ApiError::invalid("customer", "missing_field", "customer is required")
            })?;
            let id = decode_id(IdKind::Customer, text)
                .ok_or_else(|| ApiError::not_found(Some("customer"), "customer"))?;
            (id, own)
        }
        _ => {
            return Err(ApiError::forbidden(
                "charges are made by a merchant key or a customer's token",
            ))
        }
    };
    let customer_record = state
        .products
        .cache
        .customer(&state.store, customer)?
        .ok_or_else(|| ApiError::not_found(Some("customer"), "customer"))?;
    // Consent: the customer's token, or an active allowance of this customer to this merchant.
    let allowance = if caller.scope() == Scope::Customer {
        None
    } else {
        allowances_of(&state, customer)?
            .iter()
            .find(|a| a.merchant == merchant && a.asset == asset.id.0 && a.revoked_ns.is_none())
            .cloned()
    };
    // A merchant that neither created the customer nor holds an allowance cannot learn that
    // the customer exists.
    if caller.scope() == Scope::Merchant
        && allowance.is_none()
        && customer_record.creator != merchant
    {
        return Err(ApiError::not_found(Some("customer"), "customer"));
    }
    if let Some(a) = &allowance {
        if amount.0 > a.max_per_charge {
            return Err(ApiError::refused(
                "allowance_exceeded",
                "this charge is above the allowance's maximum per charge",
            )
            .with_param("amount"));
        }
    }
    let mut shares = Vec::with_capacity(request.shares.len());
    for (i, s) in request.shares.iter().enumerate() {
        shares.push((
            // The parameter's name is only spelled out for the error.
            find_merchant(&state, &s.merchant)?.ok_or_else(|| {
                ApiError::not_found(Some(&format!("shares.{i}.merchant")), "merchant")
            })?,
            s.bps,
        ));
    }
    let (platform_fee, merchant_net, payees, rounding) =
        priced(&state, merchant, &asset, amount, &shares)?;
    let tenant = caller.customer().unwrap_or(caller.tenant());
    // Only a keyed request can be retried, so only it needs a fingerprint to tell a retry from a
    // reused key.
    let request_hash = key.is_some().then(|| sha256(&[b"charges", &raw]));
    let (id, _same_key, existing) = charge_id_for(&state, tenant, &key).await?;
    if let Some(existing) = existing {
        return replay(&state, &existing, request_hash);
    }
    let tab = match request.source {
        ChargeSource::Wallet => None,
        ChargeSource::Tab => {
            let tab = farthing_service::tabs::tab_of(&state, customer, asset.id.0)?
                .ok_or_else(|| ApiError::not_found(Some("source"), "tab"))?;
            if tab.frozen {
                return Err(ApiError::refused(
                    "tab_frozen",
                    "the customer's tab is frozen until its last settlement is paid",
                )
                .with_param("source"));
            }
            Some((tab.id, tab.limit))
        }
    };
    let requires_confirmation = caller.scope() != Scope::Customer && allowance.is_none();
    let charge = ChargeRecord {
        id,
        kind: ChargeKind::Charge,
        merchant,
        customer,
        asset: asset.id.0,
        amount: amount.0,
        platform_fee,
        merchant_net,
        payees,
        rounding,
        description: request.description,
        resource_id: request.resource_id,
        message: None,
        allowance: allowance.map(|a| a.id),
        requires_confirmation,
        created_ns: state.products.clock.now(),
        refunds: Vec::new(),
        request_hash,
        tab,
        disputed: 0,
        attempt: 0,
    };
    if requires_confirmation {
        state
            .products
            .records
            .write(charge_writes(&charge)?)
            .await?;
        return Ok(json_response(
            StatusCode::CREATED,
            to_json(&charge_view(&state, &charge)?)?,
        ));
    }
    let view = execute(&state, &charge).await?;
    Ok(json_response(StatusCode::CREATED, to_json(&view)?))
}

/// The id of a new charge or tip: derived from the Idempotency-Key, or random. With a key, the
/// returned guard serializes concurrent requests with that key (so only the first writes the
/// record and books it), and the charge the key already made, if any, is returned to replay.
async fn charge_id_for<'a>(
    state: &'a SharedState,
    tenant: u128,
    key: &Option<String>,
) -> Result<(u128, Option<ObjectGuard<'a>>, Option<ChargeRecord>), ApiError> {
    let Some(key) = key else {
        // Time first, so the record appends to the charges table (see `time_ordered_id`).
        return Ok((time_ordered_id(state.products.clock.now()), None, None));
    };
    let id = derived_id(tenant, key, "charge", 0);
    let guard = state.products.lock(id).await;
    let existing = load_charge(state, id).await?;
    Ok((id, Some(guard), existing))
}

/// A retry with the same Idempotency-Key: the same charge if the request is the same, 409 if
/// not. A charge whose chain never committed (a crash) is booked now.
fn replay(
    state: &SharedState,
    existing: &ChargeRecord,
    request_hash: Option<[u8; 32]>,
) -> Result<Response, ApiError> {
    if existing.request_hash != request_hash {
        return Err(ApiError::idempotency(
            "this Idempotency-Key was already used with different parameters",
        ));
    }
    Ok(json_response(
        StatusCode::OK,
        to_json(&charge_view(state, existing)?)?,
    ))
}

#[utoipa::path(post, path = "/v1/charges/{id}/confirm", operation_id = "charges.confirm", tag = "charges", params(("id" = String, Path, description = "ch_… id")), responses((status = 200, description = "the confirmed charge (customer token only)", body = ChargeView), crate::error::WriteErrors))]
pub async fn confirm(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let missing = || ApiError::not_found(Some("id"), "charge");
    let id = decode_id(IdKind::Charge, &id).ok_or_else(missing)?;
    let _guard = state.products.lock(id).await;
    let mut charge = load_charge(&state, id).await?.ok_or_else(missing)?;
    if caller.customer() != Some(charge.customer) {
        return Err(missing());
    }
    caller.require_customer(charge.customer)?;
    if !charge.requires_confirmation {
        // Already confirmed: answer as before; after a refusal, try again as a new attempt.
        if charge_status(&state, &charge) == "succeeded" {
            return Ok(json_response(
                StatusCode::OK,
                to_json(&charge_view(&state, &charge)?)?,
            ));
        }
        charge.attempt += 1;
    }
    charge.requires_confirmation = false;
    let view = execute(&state, &charge).await?;
    Ok(json_response(StatusCode::OK, to_json(&view)?))
}

#[utoipa::path(post, path = "/v1/tips", operation_id = "tips.create", tag = "charges", request_body = CreateTip, params(("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry")), responses((status = 201, description = "the tip (customer token only), with the merchant's fee plan applied", body = ChargeView), (status = 200, description = "an idempotent retry", body = ChargeView), crate::error::WriteErrors))]
pub async fn tip(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(request, raw): ApiJson<CreateTip>,
) -> Result<Response, ApiError> {
    let customer = caller
        .customer()
        .filter(|_| caller.scope() == Scope::Customer)
        .ok_or_else(|| ApiError::forbidden("a tip is given with the customer's own token"))?;
    let merchant = merchant_exists(&state, &request.merchant, "merchant")?;
    let asset = by_code(&state, &request.asset, "asset")?;
    let amount = positive_amount(&request.amount, &asset, "amount")?;
    if let Some(m) = &request.message {
        text_field(m, MESSAGE_BYTES_MAX, "message")?;
    }
    let (platform_fee, merchant_net, payees, rounding) =
        priced(&state, merchant, &asset, amount, &[])?;
    let request_hash = key.is_some().then(|| sha256(&[b"tips", &raw]));
    let (id, _same_key, existing) = charge_id_for(&state, customer, &key).await?;
    if let Some(existing) = existing {
        return replay(&state, &existing, request_hash);
    }
    let charge = ChargeRecord {
        id,
        kind: ChargeKind::Tip,
        merchant,
        customer,
        asset: asset.id.0,
        amount: amount.0,
        platform_fee,
        merchant_net,
        payees,
        rounding,
        description: "tip".into(),
        resource_id: None,
        message: request.message,
        allowance: None,
        requires_confirmation: false,
        created_ns: state.products.clock.now(),
        refunds: Vec::new(),
        request_hash,
        tab: None,
        disputed: 0,
        attempt: 0,
    };
    let view = execute(&state, &charge).await?;
    Ok(json_response(StatusCode::CREATED, to_json(&view)?))
}

#[utoipa::path(get, path = "/v1/charges/{id}", operation_id = "charges.get", tag = "charges", params(("id" = String, Path, description = "ch_… id")), responses((status = 200, description = "the charge and its receipt", body = ChargeView), crate::error::ReadErrors))]
pub async fn get(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<ChargeView>, ApiError> {
    let charge = visible_charge(&state, &caller, &id).await?;
    Ok(axum::Json(charge_view(&state, &charge)?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRefund {
    /// How much to refund (default: all that is left).
    #[schema(pattern = r"^[0-9]{1,39}(\.[0-9]{1,18})?$", example = "0.001")]
    pub amount: Option<String>,
}

fn refund_legs(c: &ChargeRecord, reversal: &farthing_products::fees::Reversal) -> Vec<Leg> {
    let wallet = c.source();
    reversal
        .parts()
        .into_iter()
        .map(|(destination, amount)| {
            let debit = match (&destination, part_merchant(c, &destination)) {
                (_, Some(merchant)) => LedgerAccount::Earnings { merchant },
                (Destination::Platform, None) => LedgerAccount::PlatformRevenue,
                _ => LedgerAccount::Rounding,
            };
            Leg {
                debit,
                credit: wallet,
                amount,
                code: CODE_REFUND,
                role: Role::Payment,
            }
        })
        .collect()
}

#[utoipa::path(post, path = "/v1/charges/{id}/refunds", operation_id = "charges.refunds.create", tag = "charges", request_body = CreateRefund, params(("id" = String, Path, description = "ch_… id"), ("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry: refunded once")), responses((status = 201, description = "the refund, back to the customer's wallet; fees reversed pro rata", body = RefundView), crate::error::WriteErrors))]
pub async fn refund(
    State(state): State<SharedState>,
    Key(principal): Key,
    IdempotencyKey(key): IdempotencyKey,
    Path(id): Path<String>,
    ApiJson(request, raw): ApiJson<CreateRefund>,
) -> Result<Response, ApiError> {
    principal.require_write()?;
    let charge = visible_charge(&state, &principal, &id).await?;
    if !principal.can_see(charge.merchant) {
        return Err(ApiError::not_found(Some("id"), "charge"));
    }
    let request_hash = sha256(&[b"refunds", &charge.id.to_le_bytes(), &raw]);
    let _guard = state.products.lock(charge.id).await;
    // With a key, the refund's id derives from it: a retry finds the refund it already made.
    let refund_id = match &key {
        Some(key) => derived_id(principal.tenant(), key, "refund", 0),
        None => random_id(),
    };
    if let Some(existing) = match key {
        Some(_) => state.store.record::<RefundRecord>(REFUNDS, refund_id)?,
        None => None,
    } {
        if existing.request_hash != Some(request_hash) {
            return Err(ApiError::idempotency(
                "this Idempotency-Key was already used with different parameters",
            ));
        }
        let charge = load_charge(&state, existing.charge)
            .await?
            .ok_or_else(|| ApiError::not_found(Some("id"), "charge"))?;
        if refund_committed(&state, &charge, &existing) {
            let scale = asset_by_id(&state, charge.asset)?.scale;
            return Ok(json_response(
                StatusCode::OK,
                to_json(&refund_view(&state, &existing, scale))?,
            ));
        }
        return Err(ApiError::refused(
            "refund_not_booked",
            "the refund with this Idempotency-Key was refused; use a new key to try again",
        ));
    }
    let mut charge = load_charge(&state, charge.id)
        .await?
        .ok_or_else(|| ApiError::not_found(Some("id"), "charge"))?;
    if charge_status(&state, &charge) != "succeeded" {
        return Err(ApiError::refused(
            "charge_not_succeeded",
            "only a succeeded charge can be refunded",
        ));
    }
    let asset = asset_by_id(&state, charge.asset)?;
    let refunded = reversed_so_far(&state, &charge)?;
    let remaining = Amount(charge.amount.saturating_sub(refunded.0));
    let amount = match &request.amount {
        Some(text) => positive_amount(text, &asset, "amount")?,
        None => remaining,
    };
    if amount > remaining || remaining.is_zero() {
        return Err(ApiError::refused(
            "refund_exceeds_charge",
            format!(
                "at most {} of this charge is left to refund",
                format_amount(remaining, asset.scale)
            ),
        )
        .with_param("amount"));
    }
    let reversal = reverse(
        &booked_split(&charge)?,
        refunded,
        amount,
        state.products.refund_policy,
    )
    .map_err(|e| ApiError::internal(format!("refund split: {e}")))?;
    let index = charge.refunds.len() as u64;
    let legs = refund_legs(&charge, &reversal);
    let record = RefundRecord {
        first_leg: legs.iter().position(|l| !l.amount.is_zero()).unwrap_or(0) as u64,
        request_hash: key.as_ref().map(|_| request_hash),
        id: refund_id,
        charge: charge.id,
        index,
        amount: amount.0,
        platform_fee_returned: reversal.amount_for(&Destination::Platform).0,
        created_ns: state.products.clock.now(),
    };
    // Refused refunds stay listed: their index (and chain ids) is never used again.
    charge.refunds.push(record.id);
    let mut writes = vec![RecordWrite::put(REFUNDS, record.id, &record)?];
    writes.push(RecordWrite::put(CHARGES, charge.id, &charge)?);
    state.products.records.write(writes).await?;
    let mut accounts: Vec<LedgerAccount> = legs.iter().flat_map(|l| [l.debit, l.credit]).collect();
    accounts.dedup();
    state
        .products
        .ensure_accounts(&state.engine, &accounts, asset.id)
        .await?;
    // The refund, with whose it is (built only if some endpoint wants it).
    let refund_event = || {
        let mut data = serde_json::to_value(refund_view(&state, &record, asset.scale))
            .map_err(|e| ApiError::internal(format!("refund event: {e}")))?;
        if let Some(map) = data.as_object_mut() {
            map.insert(
                "merchant".into(),
                encode_id(IdKind::Merchant, charge.merchant).into(),
            );
            map.insert(
                "customer".into(),
                encode_id(IdKind::Customer, charge.customer).into(),
            );
            map.insert("asset".into(), asset.code.to_string().into());
        }
        Ok::<_, ApiError>(data)
    };
    let event = event_write(
        &state.store,
        EventKind::ChargeRefunded,
        Some(charge.merchant),
        record.created_ns,
        refund_event,
    )?;
    match run_chain_recorded(
        &state.engine,
        &state.products.journal,
        event.as_slice(),
        chain_id(charge.id, "refund", index),
        &legs,
        asset.id,
        record.id,
    )
    .await?
    {
        ChainOutcome::Committed { .. } => Ok(json_response(
            StatusCode::CREATED,
            to_json(&refund_view(&state, &record, asset.scale))?,
        )),
        ChainOutcome::Refused {
            result: TransferResult::ExceedsCredits,
            ..
        } => Err(ApiError::refused(
            "merchant_balance_insufficient",
            "the merchant's balance cannot cover this refund (already paid out)",
        )
        .with_param("amount")),
        ChainOutcome::Refused { result, .. } => Err(ApiError::from_transfer(result, "")),
    }
}
