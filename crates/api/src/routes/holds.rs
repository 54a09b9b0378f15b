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
//! The record says what the hold is; where it stands is read from the ledger by walking its
//! holds: hold `k` has the id `chain_id(hold, "hold", k)`; capture `k` posts it with the chain
//! `chain_id(hold, "capture", k)` (and creates hold `k + 1` for the rest); a release voids it
//! with `chain_id(hold, "release", k)`, an expiry with `chain_id(hold, "expire", k)`. Each id
//! names one transfer forever, so a hold resolves exactly once however often (or however
//! concurrently, or after whatever crash) an operation is retried.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use farthing_ledger::{
    AccountId, Amount, AssetId, PendingStatus, Transfer, TransferFlags, TransferId, TransferResult,
};
use serde::{Deserialize, Serialize};

use crate::app::{
    derived_id, json_response, random_id, rfc3339, sha256, to_json, ApiJson, Caller,
    IdempotencyKey, Principal, SharedState,
};
use crate::error::ApiError;
use crate::ids::{decode_id, encode_id, IdKind};
use crate::money::format_amount;
use crate::products::ledger::{chain_id, CODE_ESCROW, CODE_ESCROW_CAPTURE};
use crate::products::records::{HoldRecord, JobKind, OnExpiry, HOLDS};
use crate::products::{submit_transfers, submit_transfers_noted, LedgerAccount};
use crate::routes::charges::{merchant_exists, priced};
use crate::routes::customers::{positive_amount, require_customer};
use crate::service::assets::{asset_by_id, by_code};
use crate::store::{RecordWrite, Scope};
use crate::webhooks::{event_write, EventKind};

/// A hold expires after a week unless asked otherwise.
const EXPIRES_IN_DEFAULT_S: u64 = 7 * 86_400;
const EXPIRES_IN_MIN_S: u64 = 60;
/// 90 days: about as long as a card network lets money be held.
const EXPIRES_IN_MAX_S: u64 = 90 * 86_400;
const DESCRIPTION_BYTES_MAX: usize = 500;
/// Partial captures one hold may have (each re-holds the rest).
const CAPTURES_MAX: u64 = 1000;

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

fn hold_id(hold: u128, k: u64) -> TransferId {
    TransferId(chain_id(hold, "hold", k))
}

/// Where a hold stands, from the ledger.
struct Walk {
    status: &'static str,
    /// The current hold's index and amount, while `held`.
    current: Option<(u64, Amount)>,
    /// (amount posted, timestamp, the post's `user_data`: the capture's Idempotency-Key
    /// marker) of each capture.
    captures: Vec<(Amount, u64, u128)>,
}

fn walk(state: &SharedState, h: &HoldRecord) -> Walk {
    let mut captures = Vec::new();
    let mut k = 0;
    loop {
        let Some(hold) = state.engine.lookup_transfer(hold_id(h.id, k)) else {
            let status = if k == 0 { "failed" } else { "captured" };
            return Walk {
                status,
                current: None,
                captures,
            };
        };
        let resolved = |purpose: &str| {
            state
                .engine
                .lookup_transfer(TransferId(chain_id(h.id, purpose, k)))
        };
        match hold.hold_status {
            Some(PendingStatus::Pending) => {
                return Walk {
                    status: "held",
                    current: Some((k, hold.amount)),
                    captures,
                }
            }
            Some(PendingStatus::Posted) => {
                if let Some(post) = resolved("capture") {
                    captures.push((post.amount, post.timestamp.0, post.user_data));
                }
                k += 1;
            }
            Some(PendingStatus::Voided) if resolved("expire").is_some() => {
                return Walk {
                    status: "expired",
                    current: None,
                    captures,
                }
            }
            Some(PendingStatus::Expired) => {
                return Walk {
                    status: "expired",
                    current: None,
                    captures,
                }
            }
            _ => {
                return Walk {
                    status: "released",
                    current: None,
                    captures,
                }
            }
        }
    }
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
        .customer
        .filter(|_| caller.scope == Scope::Customer)
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
        return Err(not_held("expired"));
    }
    // The record and its expiry job first: a crash before the hold leaves a record the ledger
    // has no hold for, which reads as `failed` (and a retry funds it), never money held
    // without a record. A retry writes the same again (the job may have run meanwhile).
    state
        .products
        .records
        .write(vec![
            RecordWrite::put(HOLDS, id, &record)?,
            crate::products::scheduler::job_write(
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
    let visible = match caller.scope {
        Scope::Customer => caller.customer == Some(hold.customer),
        _ => caller.can_see(hold.merchant),
    };
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

/// Why a hold that is not `held` cannot be captured or released.
fn not_held(status: &str) -> ApiError {
    match status {
        "released" => ApiError::refused("hold_released", "the hold was released"),
        "expired" => ApiError::refused("hold_expired", "the hold expired"),
        "failed" => ApiError::refused("hold_not_funded", "the hold was never funded"),
        _ => ApiError::refused("hold_captured", "the hold was captured in full"),
    }
}

/// Captures `amount` (everything held if `None`) of the current hold; `last` releases the
/// rest. One linked chain; refused as a whole. `marker` (derived from the request's
/// Idempotency-Key) is kept in the capture's post: a capture whose marker is already there was
/// made, and is not made again. `kind` is the event it emits: `hold.captured`, or
/// `hold.expired` for a capture at expiry.
async fn capture_now(
    state: &SharedState,
    h: &HoldRecord,
    (amount, last): (Option<Amount>, bool),
    marker: u128,
    kind: EventKind,
) -> Result<(), ApiError> {
    let w = walk(state, h);
    if marker != h.id && w.captures.iter().any(|(_, _, m)| *m == marker) {
        return Ok(());
    }
    let asset = asset_by_id(state, h.asset)?;
    let Some((k, held)) = w.current else {
        return Err(not_held(w.status));
    };
    let amount = amount.unwrap_or(held);
    if amount > held {
        return Err(ApiError::refused(
            "amount_exceeds_hold",
            format!("the hold holds {}", format_amount(held, asset.scale)),
        )
        .with_param("amount"));
    }
    let rest = Amount(held.0 - amount.0);
    let (fee, net, _, rounding) = priced(state, h.merchant, &asset, amount, &[])?;
    let first = chain_id(h.id, "capture", k);
    let escrow = LedgerAccount::Escrow.id(asset.id);
    let mut transfers = vec![Transfer {
        id: TransferId(first),
        debit_account_id: farthing_ledger::AccountId(0),
        credit_account_id: farthing_ledger::AccountId(0),
        amount,
        pending_id: hold_id(h.id, k),
        user_data: marker,
        timeout_s: 0,
        asset: AssetId(0),
        code: CODE_ESCROW,
        flags: TransferFlags::POST_PENDING,
    }];
    if !last && !rest.is_zero() && k + 1 < CAPTURES_MAX {
        transfers.push(Transfer {
            id: hold_id(h.id, k + 1),
            debit_account_id: LedgerAccount::Wallet {
                customer: h.customer,
            }
            .id(asset.id),
            credit_account_id: escrow,
            amount: rest,
            pending_id: TransferId(0),
            user_data: h.id,
            timeout_s: 0,
            asset: asset.id,
            code: CODE_ESCROW,
            flags: TransferFlags::PENDING,
        });
    }
    transfers.extend(split_transfers(
        escrow,
        h.merchant,
        asset.id,
        (net, fee, rounding),
        first,
        h.id,
    ));
    link_chain(&mut transfers);
    let released = if last || k + 1 >= CAPTURES_MAX {
        rest
    } else {
        Amount::ZERO
    };
    let step = match kind {
        EventKind::HoldExpired => "expire",
        _ => "capture",
    };
    let moved = Moved {
        captured: amount,
        platform_fee: Amount(fee),
        merchant_net: Amount(net),
        released,
        held: Amount(rest.0 - released.0),
    };
    let event = event_write(
        &state.store,
        kind,
        Some(h.merchant),
        state.products.clock.now(),
        || hold_event(state, h, step, moved),
    )?;
    submit_chain(state, transfers, event).await
}

/// What one step of a hold moved, for its event.
#[derive(Clone, Copy, Default)]
struct Moved {
    captured: Amount,
    platform_fee: Amount,
    merchant_net: Amount,
    released: Amount,
    /// Still held after the step.
    held: Amount,
}

/// What a hold event carries: the hold (`amount`: what funded it) and what this step moved.
fn hold_event(
    state: &SharedState,
    h: &HoldRecord,
    step: &str,
    moved: Moved,
) -> Result<serde_json::Value, ApiError> {
    let asset = asset_by_id(state, h.asset)?;
    let s = asset.scale;
    Ok(serde_json::json!({
        "id": encode_id(IdKind::Hold, h.id),
        "object": "hold",
        "step": step,
        "customer": encode_id(IdKind::Customer, h.customer),
        "merchant": encode_id(IdKind::Merchant, h.merchant),
        "asset": asset.code.to_string(),
        "amount": format_amount(Amount(h.amount), s),
        "captured": format_amount(moved.captured, s),
        "platform_fee": format_amount(moved.platform_fee, s),
        "merchant_net": format_amount(moved.merchant_net, s),
        "released": format_amount(moved.released, s),
        "held": format_amount(moved.held, s),
        "description": h.description,
    }))
}

/// Submits `transfers` as they are, with `event` in their log record if there is one.
async fn submit_with_event(
    state: &SharedState,
    transfers: Vec<Transfer>,
    event: Option<RecordWrite>,
) -> Result<Vec<TransferResult>, ApiError> {
    match event {
        None => submit_transfers(&state.engine, transfers).await,
        Some(event) => {
            let journal = &state.products.journal;
            submit_transfers_noted(&state.engine, journal, transfers, &[event]).await
        }
    }
}

/// The transfers that split `(net, fee, rounding)` from `from` to the merchant's earnings, the
/// platform's revenue and the rounding account, with ids `first + 1`, `+ 2`, `+ 3` (`first`
/// is the chain's own first transfer); zero parts are left out.
pub(crate) fn split_transfers(
    from: AccountId,
    merchant: u128,
    asset: AssetId,
    (net, fee, rounding): (u128, u128, u128),
    first: u128,
    user_data: u128,
) -> Vec<Transfer> {
    let parts = [
        (LedgerAccount::Earnings { merchant }, net),
        (LedgerAccount::PlatformRevenue, fee),
        (LedgerAccount::Rounding, rounding),
    ];
    parts
        .iter()
        .enumerate()
        .filter(|(_, (_, part))| *part > 0)
        .map(|(i, (credit, part))| Transfer {
            id: TransferId(first.wrapping_add(1 + i as u128)),
            debit_account_id: from,
            credit_account_id: credit.id(asset),
            amount: Amount(*part),
            pending_id: TransferId(0),
            user_data,
            timeout_s: 0,
            asset,
            code: CODE_ESCROW_CAPTURE,
            flags: TransferFlags::empty(),
        })
        .collect()
}

/// Makes `transfers` one chain: every transfer but the last is linked to the next.
pub(crate) fn link_chain(transfers: &mut [Transfer]) {
    let linked = transfers.len().saturating_sub(1);
    for t in &mut transfers[..linked] {
        t.flags = t.flags.union(TransferFlags::LINKED);
    }
}

/// Submits one chain; `exists` (a retry) counts as done, any refusal is the error. `event`
/// rides in the chain's log record, applied only if this submission created the chain's first
/// transfer (see [`crate::webhooks`]).
pub(crate) async fn submit_chain(
    state: &SharedState,
    transfers: Vec<Transfer>,
    event: Option<RecordWrite>,
) -> Result<(), ApiError> {
    let results = submit_with_event(state, transfers, event).await?;
    let failure = results.iter().find(|r| {
        !r.is_ok() && **r != TransferResult::Exists && **r != TransferResult::LinkedEventFailed
    });
    match failure {
        None => Ok(()),
        Some(TransferResult::ExceedsCredits) => Err(ApiError::refused(
            "insufficient_funds",
            "the customer's wallet does not hold enough",
        )
        .with_param("amount")),
        Some(r) => Err(ApiError::from_transfer(*r, "")),
    }
}

/// Voids the current hold with the chain of `purpose` (`release` or `expire`).
async fn void_now(state: &SharedState, h: &HoldRecord, purpose: &str) -> Result<(), ApiError> {
    let w = walk(state, h);
    let Some((k, held)) = w.current else {
        return Err(not_held(w.status));
    };
    let void = Transfer {
        id: TransferId(chain_id(h.id, purpose, k)),
        debit_account_id: farthing_ledger::AccountId(0),
        credit_account_id: farthing_ledger::AccountId(0),
        amount: Amount::ZERO,
        pending_id: hold_id(h.id, k),
        user_data: h.id,
        timeout_s: 0,
        asset: AssetId(0),
        code: CODE_ESCROW,
        flags: TransferFlags::VOID_PENDING,
    };
    let moved = Moved {
        released: held,
        ..Moved::default()
    };
    let kind = if purpose == "expire" {
        EventKind::HoldExpired
    } else {
        EventKind::HoldReleased
    };
    let event = event_write(
        &state.store,
        kind,
        Some(h.merchant),
        state.products.clock.now(),
        || hold_event(state, h, purpose, moved),
    )?;
    match submit_with_event(state, vec![void], event).await?.first() {
        Some(r) if r.is_ok() || *r == TransferResult::Exists => Ok(()),
        Some(r) => Err(ApiError::from_transfer(*r, "")),
        None => Err(ApiError::internal("no result")),
    }
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
        require_customer(&caller, hold.customer)?;
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
    principal: Principal,
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

/// The expiry job: releases or captures what the hold still holds; nothing if it is resolved.
pub(crate) async fn expire(state: &SharedState, hold: u128) -> Result<(), ApiError> {
    let Some(h) = state.store.record::<HoldRecord>(HOLDS, hold)? else {
        return Ok(());
    };
    let _guard = state.products.lock(h.id).await;
    if walk(state, &h).current.is_none() {
        return Ok(());
    }
    match h.on_expiry {
        OnExpiry::Release => void_now(state, &h, "expire").await,
        // What the expiry captures is announced as the expiry.
        OnExpiry::Capture => {
            capture_now(state, &h, (None, true), h.id, EventKind::HoldExpired).await
        }
    }
}
