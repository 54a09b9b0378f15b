//! Escrow holds: where a hold stands (`walk`, read from the ledger), capturing and
//! releasing it, and its expiry job (`expire`).
//!
//! The record says what the hold is; where it stands is read from the ledger by walking its
//! holds: hold `k` has the id `chain_id(hold, "hold", k)`; capture `k` posts it with the chain
//! `chain_id(hold, "capture", k)` (and creates hold `k + 1` for the rest); a release voids it
//! with `chain_id(hold, "release", k)`, an expiry with `chain_id(hold, "expire", k)`. Each id
//! names one transfer forever, so a hold resolves exactly once however often (or however
//! concurrently, or after whatever crash) an operation is retried.
//!
//! What a capture, a release and an expiry do is decided by the pure rules in
//! [`farthing_products::rules::hold`]; this module reads where the hold stands, calls the rule
//! and submits the chain it planned.
//!
//! The API's operations: [`create`] (the customer funds a hold), [`get`], [`capture`] and
//! [`release`], each answering the [`HoldView`].
//!
//! Its chains (pending holds, posts, voids) go through the one submitter,
//! [`crate::submit::submit_transfer_chain`].

use farthing_ledger::{
    Amount, Asset, AssetId, PendingStatus, Transfer, TransferFlags, TransferId, TransferResult,
};
use farthing_products::ids::HoldId;
use farthing_products::ids::{CustomerId, MerchantId};
use serde::Serialize;

use crate::assets::asset_by_id;
use crate::charges::{fee_plan, price_error};
use crate::error::{Reason, ServiceError};
use crate::state::{to_json, Principal, Reply, SharedState};
use crate::submit::{leg_transfers, link_chain, submit_transfers, LedgerAccount};
use farthing_products::accounts::{chain_id, CODE_ESCROW};
use farthing_products::ids::{encode_id, IdKind};
use farthing_products::money::format_amount;
use farthing_products::rules::charge::price;
use farthing_products::rules::hold::{
    self as rule, Capture, CaptureError, CaptureRequest, ExpiryAction, HoldRefusal, HoldStatus,
};
use farthing_store::outbox::{event_write, EventKind};
use farthing_store::records::{HoldRecord, JobKind, HOLDS};
use farthing_store::util::{derived_id, random_id, rfc3339, sha256};
use farthing_store::RecordWrite;

/// What expiry does with what a hold still holds (a field of [`NewHold`]).
pub use farthing_store::records::OnExpiry;

/// A hold expires after a week unless asked otherwise.
const EXPIRES_IN_DEFAULT_S: u64 = 7 * 86_400;
const EXPIRES_IN_MIN_S: u64 = 60;
/// 90 days: about as long as a card network lets money be held.
const EXPIRES_IN_MAX_S: u64 = 90 * 86_400;
const DESCRIPTION_BYTES_MAX: usize = 500;

pub fn hold_id(hold: u128, k: u64) -> TransferId {
    TransferId(chain_id(hold, "hold", k))
}

/// Where a hold stands, from the ledger.
pub struct Walk {
    /// Where the hold stands; while held, the current hold's index and amount.
    pub status: HoldStatus,
    /// (amount posted, timestamp, the post's `user_data`: the capture's Idempotency-Key
    /// marker) of each capture.
    pub captures: Vec<(Amount, u64, u128)>,
}

pub fn walk(state: &SharedState, h: &HoldRecord) -> Walk {
    let mut captures = Vec::new();
    let mut k = 0;
    loop {
        let Some(hold) = state.engine.lookup_transfer(hold_id(h.id.0, k)) else {
            let status = if k == 0 {
                HoldStatus::Failed
            } else {
                HoldStatus::Captured
            };
            return Walk { status, captures };
        };
        let resolved = |purpose: &str| {
            state
                .engine
                .lookup_transfer(TransferId(chain_id(h.id.0, purpose, k)))
        };
        match hold.hold_status {
            Some(PendingStatus::Pending) => {
                return Walk {
                    status: HoldStatus::Held {
                        index: k,
                        amount: hold.amount,
                    },
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
                    status: HoldStatus::Expired,
                    captures,
                }
            }
            Some(PendingStatus::Expired) => {
                return Walk {
                    status: HoldStatus::Expired,
                    captures,
                }
            }
            _ => {
                return Walk {
                    status: HoldStatus::Released,
                    captures,
                }
            }
        }
    }
}

/// The API's error for a hold rule's refusal; amounts are written in `asset`'s scale.
fn refused(refusal: HoldRefusal, asset: &Asset) -> ServiceError {
    match refusal {
        HoldRefusal::AmountExceedsHold { held } => ServiceError::refusal(
            Reason::Hold(refusal),
            format!("the hold holds {}", format_amount(held, asset.scale)),
        )
        .with_param("amount"),
        other => ServiceError::refusal(Reason::Hold(other), other.to_string()),
    }
}

fn capture_refused(error: CaptureError, asset: &Asset) -> ServiceError {
    match error {
        CaptureError::Refused(refusal) => refused(refusal, asset),
        CaptureError::Price(error) => price_error(error),
        other => ServiceError::refused(other.code(), other.to_string()),
    }
}

/// Captures what `request` asks of the current hold (see [`rule::plan_capture`]). One linked
/// chain; refused as a whole. `marker` (derived from the request's Idempotency-Key) is kept in
/// the capture's post: a capture whose marker is already there was made, and is not made
/// again. `kind` is the event it emits: `hold.captured`, or `hold.expired` for a capture at
/// expiry.
pub async fn capture_now(
    state: &SharedState,
    h: &HoldRecord,
    request: CaptureRequest,
    marker: u128,
    kind: EventKind,
) -> Result<(), ServiceError> {
    let w = walk(state, h);
    let asset = asset_by_id(state, h.asset)?;
    let plan = fee_plan(state, h.merchant, &asset)?;
    let earlier: Vec<u128> = w.captures.iter().map(|(_, _, m)| *m).collect();
    let capture = rule::plan_capture(
        h.id.0,
        w.status,
        request,
        (marker, &earlier),
        (&plan, h.merchant.0),
    )
    .map_err(|e| capture_refused(e, &asset))?;
    let Capture::Plan(capture) = capture else {
        return Ok(());
    };
    let k = capture.index;
    let first = chain_id(h.id.0, "capture", k);
    let mut transfers = vec![Transfer {
        id: TransferId(first),
        debit_account_id: farthing_ledger::AccountId(0),
        credit_account_id: farthing_ledger::AccountId(0),
        amount: capture.captured,
        pending_id: hold_id(h.id.0, k),
        user_data: marker,
        timeout_s: 0,
        asset: AssetId(0),
        code: CODE_ESCROW,
        flags: TransferFlags::POST_PENDING,
    }];
    if let Some(rest) = capture.rehold {
        transfers.push(Transfer {
            id: hold_id(h.id.0, k + 1),
            debit_account_id: LedgerAccount::Wallet {
                customer: h.customer,
            }
            .id(asset.id),
            credit_account_id: LedgerAccount::Escrow.id(asset.id),
            amount: rest,
            pending_id: TransferId(0),
            user_data: h.id.0,
            timeout_s: 0,
            asset: asset.id,
            code: CODE_ESCROW,
            flags: TransferFlags::PENDING,
        });
    }
    // The split's ids follow the post's (the re-hold has its own).
    transfers.extend(leg_transfers(
        &capture.split_legs(),
        asset.id,
        first.wrapping_add(1),
        h.id.0,
    ));
    link_chain(&mut transfers);
    let step = match kind {
        EventKind::HoldExpired => "expire",
        _ => "capture",
    };
    let moved = Moved {
        captured: capture.captured,
        platform_fee: capture.split.platform_fee(),
        merchant_net: capture.split.merchant_net(),
        released: capture.released,
        held: capture.still_held,
    };
    let event = event_write(
        &state.store,
        kind,
        Some(h.merchant),
        state.products.clock.now(),
        || hold_event(state, h, step, moved),
    )?;
    crate::submit::submit_transfer_chain(state, transfers, event).await
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
) -> Result<serde_json::Value, ServiceError> {
    let asset = asset_by_id(state, h.asset)?;
    let s = asset.scale;
    Ok(serde_json::json!({
        "id": encode_id(IdKind::Hold, h.id.0),
        "object": "hold",
        "step": step,
        "customer": encode_id(IdKind::Customer, h.customer.0),
        "merchant": encode_id(IdKind::Merchant, h.merchant.0),
        "asset": asset.code.to_string(),
        "amount": format_amount(h.amount, s),
        "captured": format_amount(moved.captured, s),
        "platform_fee": format_amount(moved.platform_fee, s),
        "merchant_net": format_amount(moved.merchant_net, s),
        "released": format_amount(moved.released, s),
        "held": format_amount(moved.held, s),
        "description": h.description,
    }))
}

/// Voids hold `k`, which holds `held`, with the chain of `purpose` (`release` or `expire`).
async fn void_now(
    state: &SharedState,
    h: &HoldRecord,
    purpose: &str,
    (k, held): (u64, Amount),
) -> Result<(), ServiceError> {
    let void = Transfer {
        id: TransferId(chain_id(h.id.0, purpose, k)),
        debit_account_id: farthing_ledger::AccountId(0),
        credit_account_id: farthing_ledger::AccountId(0),
        amount: Amount::ZERO,
        pending_id: hold_id(h.id.0, k),
        user_data: h.id.0,
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
    match crate::submit::submit_noted(state, vec![void], event)
        .await?
        .first()
    {
        Some(r) if r.is_ok() || *r == TransferResult::Exists => Ok(()),
        Some(r) => Err(ServiceError::from_transfer(*r, "")),
        None => Err(ServiceError::internal("no result")),
    }
}

/// The expiry job: releases or captures what the hold still holds; nothing if it is resolved.
pub async fn expire(state: &SharedState, hold: u128) -> Result<(), ServiceError> {
    let Some(h) = state.store.record::<HoldRecord>(HOLDS, hold)? else {
        return Ok(());
    };
    let _guard = state.products.lock(h.id.0).await;
    let status = walk(state, &h).status;
    let on_expiry = match h.on_expiry {
        OnExpiry::Release => rule::OnExpiry::Release,
        OnExpiry::Capture => rule::OnExpiry::Capture,
    };
    match rule::expiry_action(status, on_expiry) {
        ExpiryAction::Nothing => Ok(()),
        ExpiryAction::Release { index } => {
            void_now(state, &h, "expire", (index, status.held())).await
        }
        // What the expiry captures is announced as the expiry; marked with the hold's own id.
        ExpiryAction::CaptureAll(request) => {
            capture_now(state, &h, request, h.id.0, EventKind::HoldExpired).await
        }
    }
}

/// A hold a customer asks for, its ids and amount parsed.
pub struct NewHold {
    /// The worker the task is for.
    pub merchant: MerchantId,
    pub asset: Asset,
    pub amount: Amount,
    pub description: Option<String>,
    /// Seconds until the hold expires (default a week).
    pub expires_in_seconds: Option<u64>,
    /// Default `release`.
    pub on_expiry: Option<OnExpiry>,
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

/// The hold as it stands: its record, and its captures and status from the ledger.
pub fn view(state: &SharedState, h: &HoldRecord) -> Result<HoldView, ServiceError> {
    let asset = asset_by_id(state, h.asset)?;
    let s = asset.scale;
    let w = walk(state, h);
    let plan = fee_plan(state, h.merchant, &asset)?;
    let mut captured = 0u128;
    let mut captures = Vec::with_capacity(w.captures.len());
    for (amount, at, _) in &w.captures {
        captured = captured.saturating_add(amount.0);
        let split = price(*amount, &plan, h.merchant, &[]).map_err(price_error)?;
        captures.push(CaptureView {
            amount: format_amount(*amount, s),
            platform_fee: format_amount(split.platform_fee(), s),
            merchant_net: format_amount(split.merchant_net(), s),
            created: rfc3339(*at),
        });
    }
    Ok(HoldView {
        id: encode_id(IdKind::Hold, h.id.0),
        object: "hold",
        customer: encode_id(IdKind::Customer, h.customer.0),
        merchant: encode_id(IdKind::Merchant, h.merchant.0),
        asset: asset.code.to_string(),
        amount: format_amount(h.amount, s),
        held: format_amount(w.status.held(), s),
        captured: format_amount(Amount(captured), s),
        status: w.status.code(),
        on_expiry: h.on_expiry,
        expires_at: rfc3339(h.expires_ns),
        description: h.description.clone(),
        captures,
        created: rfc3339(h.created_ns),
    })
}

/// The customer who funds a hold: only a customer's own token does.
pub fn funder(caller: &Principal) -> Result<CustomerId, ServiceError> {
    caller.own_customer("a hold is funded")
}

/// Holds `hold.amount` of `customer`'s wallet for the worker: 201 with the hold, or 200 for a
/// retry under the same Idempotency-Key (`key`; `request` is the request's body, whose hash
/// tells a retry from a different request).
pub async fn create(
    state: &SharedState,
    customer: CustomerId,
    key: Option<String>,
    request: &[u8],
    hold: NewHold,
) -> Result<Reply, ServiceError> {
    if hold
        .description
        .as_ref()
        .is_some_and(|d| d.len() > DESCRIPTION_BYTES_MAX)
    {
        return Err(ServiceError::invalid(
            "description",
            "too_long",
            format!("description must be at most {DESCRIPTION_BYTES_MAX} bytes"),
        ));
    }
    let expires_in = hold.expires_in_seconds.unwrap_or(EXPIRES_IN_DEFAULT_S);
    if !(EXPIRES_IN_MIN_S..=EXPIRES_IN_MAX_S).contains(&expires_in) {
        return Err(ServiceError::invalid(
            "expires_in_seconds",
            "invalid_expiry",
            format!("expires_in_seconds must be {EXPIRES_IN_MIN_S} to {EXPIRES_IN_MAX_S}"),
        ));
    }
    let NewHold {
        merchant,
        asset,
        amount,
        ..
    } = hold;
    let request_hash = sha256(&[b"holds", request]);
    let id = match &key {
        Some(key) => derived_id(customer.0, key, "hold", 0),
        None => random_id(),
    };
    let _guard = state.products.lock(id).await;
    let existing = state.store.record::<HoldRecord>(HOLDS, id)?;
    if let Some(existing) = &existing {
        crate::idempotency::same_request(existing.request_hash, Some(request_hash))?;
        // Funded (or resolved since): the same hold. Never funded (refused, or a crash
        // between the record and the hold): funded now, under the same ids.
        if walk(state, existing).status != HoldStatus::Failed {
            return Ok(Reply {
                status: 201,
                body: to_json(&view(state, existing)?)?,
            });
        }
    }
    let retry = existing.is_some();
    let record = match existing {
        Some(existing) => existing,
        None => {
            let now = state.products.clock.now();
            HoldRecord {
                id: HoldId(id),
                customer,
                merchant,
                asset: asset.id.0,
                amount,
                description: hold.description,
                on_expiry: hold.on_expiry.unwrap_or(OnExpiry::Release),
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
        return Err(refused(HoldRefusal::Expired, &asset));
    }
    // The record and its expiry job first: a crash before the hold leaves a record the ledger
    // has no hold for, which reads as `failed` (and a retry funds it), never money held
    // without a record. A retry writes the same again (the job may have run meanwhile).
    state
        .products
        .records
        .write(vec![
            RecordWrite::put(HOLDS, id, &record)?,
            crate::scheduler::job_write(
                JobKind::HoldExpiry { hold: HoldId(id) },
                record.expires_ns,
            )?,
        ])
        .await?;
    let funding = Transfer {
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
    match submit_transfers(&state.engine, vec![funding])
        .await?
        .first()
    {
        Some(r) if r.is_ok() || *r == TransferResult::Exists => {}
        Some(TransferResult::ExceedsCredits) => {
            return Err(ServiceError::refused(
                "insufficient_funds",
                "the customer's wallet does not hold enough",
            )
            .with_param("amount"))
        }
        Some(r) => return Err(ServiceError::from_transfer(*r, "")),
        None => return Err(ServiceError::internal("no result")),
    }
    Ok(Reply {
        status: if retry { 200 } else { 201 },
        body: to_json(&view(state, &record)?)?,
    })
}

/// Hold `id` if the caller may see it: its customer, its worker, the operator; otherwise 404.
pub fn visible(
    state: &SharedState,
    caller: &Principal,
    id: u128,
) -> Result<HoldRecord, ServiceError> {
    let missing = || ServiceError::not_found(Some("id"), "hold");
    let hold: HoldRecord = state.store.record(HOLDS, id)?.ok_or_else(missing)?;
    let visible = caller.can_see_object(hold.merchant, Some(hold.customer));
    visible.then_some(hold).ok_or_else(missing)
}

/// Hold `id` and its captures, if the caller may see it.
pub fn get(state: &SharedState, caller: &Principal, id: u128) -> Result<HoldView, ServiceError> {
    view(state, &visible(state, caller, id)?)
}

/// Hold `id` if the caller may capture it: the customer's own token, or the operator.
pub fn capturable(
    state: &SharedState,
    caller: &Principal,
    id: u128,
) -> Result<HoldRecord, ServiceError> {
    let hold = visible(state, caller, id)?;
    if !caller.is_operator() {
        caller.require_customer(hold.customer)?;
    }
    Ok(hold)
}

/// Captures `amount` of `hold` (everything held if `None`) for the worker; `last` releases
/// the rest. One capture per Idempotency-Key (`key`), even across crashes.
pub async fn capture(
    state: &SharedState,
    hold: &HoldRecord,
    (amount, last): (Option<Amount>, bool),
    key: Option<String>,
) -> Result<HoldView, ServiceError> {
    let marker = match key {
        Some(key) => derived_id(hold.id.0, &key, "capture", 0),
        None => hold.id.0,
    };
    let _guard = state.products.lock(hold.id.0).await;
    let request = CaptureRequest { amount, last };
    capture_now(state, hold, request, marker, EventKind::HoldCaptured).await?;
    view(state, hold)
}

/// Releases hold `id` (what it still holds stays the customer's), if the caller may see it;
/// releasing a released hold is a retry, not an error.
pub async fn release(
    state: &SharedState,
    caller: &Principal,
    id: u128,
) -> Result<HoldView, ServiceError> {
    let hold = visible(state, caller, id)?;
    let asset = asset_by_id(state, hold.asset)?;
    let _guard = state.products.lock(hold.id.0).await;
    let status = walk(state, &hold).status;
    // Releasing a released hold is a retry: nothing to void.
    if let Some(index) = rule::release(status).map_err(|r| refused(r, &asset))? {
        void_now(state, &hold, "release", (index, status.held())).await?;
    }
    view(state, &hold)
}
