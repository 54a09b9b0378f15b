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
use farthing_ledger::{Amount, Transfer, TransferFlags, TransferId, TransferResult};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::extract::json_response;
use crate::extract::ApiJson;
use crate::extract::Caller;
use crate::extract::IdempotencyKey;
use crate::extract::Key;
use crate::routes::positive_amount;
use farthing_products::accounts::CODE_ESCROW;
use farthing_products::ids::{decode_id, encode_id, IdKind};
use farthing_products::money::format_amount;
use farthing_service::assets::{asset_by_id, by_code};
use farthing_service::charges::merchant_exists;
use farthing_service::charges::priced;
use farthing_service::holds::{capture_now, hold_id, not_held, void_now, walk};
use farthing_service::state::to_json;
use farthing_service::state::Principal;
use farthing_service::state::SharedState;
use farthing_service::submit::{submit_transfers, LedgerAccount};
use farthing_store::outbox::EventKind;
use farthing_store::records::{HoldRecord, JobKind, OnExpiry, HOLDS};
use farthing_store::util::derived_id;
use farthing_store::util::random_id;
use farthing_store::util::rfc3339;
use farthing_store::util::sha256;
use farthing_store::{RecordWrite, Scope};

/// A hold expires after a week unless asked otherwise.
const EXPIRES_IN_DEFAULT_S: u64 = 7 * 86_400;
const EXPIRES_IN_MIN_S: u64 = 60;
/// 90 days: about as long as a card network lets money be held.
const EXPIRES_IN_MAX_S: u64 = 90 * 86_400;
const DESCRIPTION_BYTES_MAX: usize = 500;
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

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CaptureView {
    pub amount: String,
    pub platform_fee: String,
    pub merchant_net: String,
    pub created: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HoldView {
    pub id: String,
    pub object: &'static str,
    pub customer: String,
    pub merchant: String,
    pub asset: String,
    /// What the task was funded with.
    pub amount: String,
    /// Still held (0 once resolved).
    pub held: String,
    /// Captured so far, in total.
    pub captured: String,
    /// `held`, `captured` (fully resolved by captures), `released`, `expired`, or `failed`
    /// (never funded: the wallet did not hold enough).
    pub status: &'static str,
    pub on_expiry: OnExpiry,
    pub expires_at: String,
    pub description: Option<String>,
    pub captures: Vec<CaptureView>,
    pub created: String,
}

fn view(state: &SharedState, h: &HoldRecord) -> Result<HoldView, ApiError> {
    let asset = asset_by_id(state, h.asset)?;
    let s = asset.scale;
    let w = walk(state, h);
    let mut captured = 0u128;
    let mut captures = Vec::with_capacity(w.captures.len());
    for (amount, at, _) in &w.captures {
        captured = captured.saturating_add(amount.0);
        let (fee, net, _, _) = priced(state, h.merchant, &asset, *amount, &[])?;
        captures.push(CaptureView {
            amount: format_amount(*amount, s),
            platform_fee: format_amount(Amount(fee), s),
            merchant_net: format_amount(Amount(net), s),
            created: rfc3339(*at),
        });
    }
    Ok(HoldView {
        id: encode_id(IdKind::Hold, h.id),
        object: "hold",
        customer: encode_id(IdKind::Customer, h.customer),
        merchant: encode_id(IdKind::Merchant, h.merchant),
        asset: asset.code.to_string(),
        amount: format_amount(Amount(h.amount), s),
        held: format_amount(w.current.map_or(Amount::ZERO, |(_, a)| a), s),
        captured: format_amount(Amount(captured), s),
        status: w.status,
        on_expiry: h.on_expiry,
        expires_at: rfc3339(h.expires_ns),
        description: h.description.clone(),
        captures,
        created: rfc3339(h.created_ns),
    })
}

#[utoipa::path(post, path = "/v1/holds", operation_id = "holds.create", tag = "holds", request_body = CreateHold, params(("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry: funded once")), responses((status = 201, description = "the hold: the customer's money held for the worker (customer token only)", body = HoldView), (status = 200, description = "an idempotent retry", body = HoldView), crate::error::WriteErrors))]
pub async fn create(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(request, raw): ApiJson<CreateHold>,
) -> Result<Response, ApiError> {
    let customer = caller
        .customer()
        .filter(|_| caller.scope() == Scope::Customer)
        .ok_or_else(|| ApiError::forbidden("a hold is funded with the customer's own token"))?;
    let merchant = merchant_exists(&state, &request.merchant, "merchant")?;
    let asset = by_code(&state, &request.asset, "asset")?;
    let amount = positive_amount(&request.amount, &asset, "amount")?;
    if request
        .description
        .as_ref()
        .is_some_and(|d| d.len() > DESCRIPTION_BYTES_MAX)
    {
        return Err(ApiError::invalid(
            "description",
            "too_long",
            format!("description must be at most {DESCRIPTION_BYTES_MAX} bytes"),
        ));
    }
    let expires_in = request.expires_in_seconds.unwrap_or(EXPIRES_IN_DEFAULT_S);
    if !(EXPIRES_IN_MIN_S..=EXPIRES_IN_MAX_S).contains(&expires_in) {
        return Err(ApiError::invalid(
            "expires_in_seconds",
            "invalid_expiry",
            format!("expires_in_seconds must be {EXPIRES_IN_MIN_S} to {EXPIRES_IN_MAX_S}"),
        ));
    }
    let request_hash = sha256(&[b"holds", &raw]);
    let id = match &key {
        Some(key) => derived_id(customer, key, "hold", 0),
        None => random_id(),
    };
    let _guard = state.products.lock(id).await;
    let existing = state.store.record::<HoldRecord>(HOLDS, id)?;
    if let Some(existing) = &existing {
        if existing.request_hash != Some(request_hash) {
            return Err(ApiError::idempotency(
                "this Idempotency-Key was already used with different parameters",
            ));
        }
        // Funded (or resolved since): the same hold. Never funded (refused, or a crash
        // between the record and the hold): funded now, under the same ids.
        if walk(&state, existing).status != "failed" {
            return Ok(json_response(
                StatusCode::OK,
                to_json(&view(&state, existing)?)?,
            ));
        }
    }
    let retry = existing.is_some();
    let record = match existing {
        Some(existing) => existing,
        None => {
            let now = state.products.clock.now();
            HoldRecord {
                id,
                customer,
                merchant,
                asset: asset.id.0,
                amount: amount.0,
                description: request.description,
                on_expiry: request.on_expiry.unwrap_or(OnExpiry::Release),
                expires_ns: now.saturating_add(expires_in.saturating_mul(1_000_000_000)),
                created_ns: now,
                request_hash: Some(request_hash),
            }
        }
    };
    let wallet = LedgerAccount::Wallet { customer };
    let accounts = [
        wallet,
        LedgerAccount::Escrow,
        LedgerAccount::Earnings { merchant },
        LedgerAccount::PlatformRevenue,
        LedgerAccount::Rounding,
    ];
    state
        .products
        .ensure_accounts(&state.engine, &accounts, asset.id)
        .await?;
    if retry && state.products.clock.now() >= record.expires_ns {
        return Err(not_held("expired").into());
    }
    // The record and its expiry job first: a crash before the hold leaves a record the ledger
    // has no hold for, which reads as `failed` (and a retry funds it), never money held
    // without a record. A retry writes the same again (the job may have run meanwhile).
    state
        .products
        .records
        .write(vec![
            RecordWrite::put(HOLDS, id, &record)?,
            farthing_service::scheduler::job_write(
                JobKind::HoldExpiry { hold: id },
                record.expires_ns,
            )?,
        ])
        .await?;
    let hold = Transfer {
        id: hold_id(id, 0),
        debit_account_id: wallet.id(asset.id),
        credit_account_id: LedgerAccount::Escrow.id(asset.id),
        amount,
        pending_id: TransferId(0),
        user_data: id,
        timeout_s: 0,
        asset: asset.id,
        code: CODE_ESCROW,
        flags: TransferFlags::PENDING,
    };
    match submit_transfers(&state.engine, vec![hold]).await?.first() {
        Some(r) if r.is_ok() || *r == TransferResult::Exists => {}
        Some(TransferResult::ExceedsCredits) => {
            return Err(ApiError::refused(
                "insufficient_funds",
                "the customer's wallet does not hold enough",
            )
            .with_param("amount"))
        }
        Some(r) => return Err(ApiError::from_transfer(*r, "")),
        None => return Err(ApiError::internal("no result")),
    }
    let status = if retry {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok(json_response(status, to_json(&view(&state, &record)?)?))
}

/// The hold if the caller may see it: its customer, its worker, the operator.
fn visible_hold(state: &SharedState, caller: &Principal, id: &str) -> Result<HoldRecord, ApiError> {
    let missing = || ApiError::not_found(Some("id"), "hold");
    let id = decode_id(IdKind::Hold, id).ok_or_else(missing)?;
    let hold: HoldRecord = state.store.record(HOLDS, id)?.ok_or_else(missing)?;
    let visible = caller.can_see_object(hold.merchant, Some(hold.customer));
    visible.then_some(hold).ok_or_else(missing)
}

#[utoipa::path(get, path = "/v1/holds/{id}", operation_id = "holds.get", tag = "holds", params(("id" = String, Path, description = "hold_… id")), responses((status = 200, description = "the hold and its captures", body = HoldView), crate::error::ReadErrors))]
pub async fn get(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<HoldView>, ApiError> {
    let hold = visible_hold(&state, &caller, &id)?;
    Ok(axum::Json(view(&state, &hold)?))
}

#[utoipa::path(post, path = "/v1/holds/{id}/capture", operation_id = "holds.capture", tag = "holds", request_body = CaptureHold, params(("id" = String, Path, description = "hold_… id"), ("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry: one capture per key, even across crashes")), responses((status = 200, description = "the hold after the capture (the customer's token, or the operator): the part goes to the worker less the platform fee; the rest stays held unless `final`", body = HoldView), crate::error::WriteErrors))]
pub async fn capture(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    IdempotencyKey(key): IdempotencyKey,
    Path(id): Path<String>,
    ApiJson(request, _): ApiJson<CaptureHold>,
) -> Result<Response, ApiError> {
    let hold = visible_hold(&state, &caller, &id)?;
    if !caller.is_operator() {
        caller.require_customer(hold.customer)?;
    }
    let asset = asset_by_id(&state, hold.asset)?;
    let amount = request
        .amount
        .as_deref()
        .map(|a| positive_amount(a, &asset, "amount"))
        .transpose()?;
    let marker = match key {
        Some(key) => derived_id(hold.id, &key, "capture", 0),
        None => hold.id,
    };
    let _guard = state.products.lock(hold.id).await;
    capture_now(
        &state,
        &hold,
        (amount, request.r#final),
        marker,
        EventKind::HoldCaptured,
    )
    .await?;
    Ok(json_response(
        StatusCode::OK,
        to_json(&view(&state, &hold)?)?,
    ))
}

#[utoipa::path(post, path = "/v1/holds/{id}/release", operation_id = "holds.release", tag = "holds", params(("id" = String, Path, description = "hold_… id")), responses((status = 200, description = "the hold, released: what it still held stays the customer's (the worker's key, or the operator)", body = HoldView), crate::error::WriteErrors))]
pub async fn release(
    State(state): State<SharedState>,
    Key(principal): Key,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    principal.require_write()?;
    let hold = visible_hold(&state, &principal, &id)?;
    let _guard = state.products.lock(hold.id).await;
    // Releasing a released hold is a retry, not an error.
    if walk(&state, &hold).status != "released" {
        void_now(&state, &hold, "release").await?;
    }
    Ok(json_response(
        StatusCode::OK,
        to_json(&view(&state, &hold)?)?,
    ))
}
