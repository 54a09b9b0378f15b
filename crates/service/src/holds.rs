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
//! Also the chain helpers other products reuse: `split_transfers`, `link_chain` and
//! `submit_chain`.

use farthing_ledger::{
    AccountId, Amount, AssetId, PendingStatus, Transfer, TransferFlags, TransferId, TransferResult,
};

use crate::assets::asset_by_id;
use crate::charges::priced;
use crate::error::ServiceError;
use crate::state::SharedState;
use crate::submit::{submit_transfers, submit_transfers_noted, LedgerAccount};
use farthing_products::accounts::{chain_id, CODE_ESCROW, CODE_ESCROW_CAPTURE};
use farthing_products::ids::{encode_id, IdKind};
use farthing_products::money::format_amount;
use farthing_store::outbox::{event_write, EventKind};
use farthing_store::records::{HoldRecord, OnExpiry, HOLDS};
use farthing_store::RecordWrite;

/// Partial captures one hold may have (each re-holds the rest).
const CAPTURES_MAX: u64 = 1000;

pub fn hold_id(hold: u128, k: u64) -> TransferId {
    TransferId(chain_id(hold, "hold", k))
}

/// Where a hold stands, from the ledger.
pub struct Walk {
    pub status: &'static str,
    /// The current hold's index and amount, while `held`.
    pub current: Option<(u64, Amount)>,
    /// (amount posted, timestamp, the post's `user_data`: the capture's Idempotency-Key
    /// marker) of each capture.
    pub captures: Vec<(Amount, u64, u128)>,
}

pub fn walk(state: &SharedState, h: &HoldRecord) -> Walk {
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

/// Why a hold that is not `held` cannot be captured or released.
pub fn not_held(status: &str) -> ServiceError {
    match status {
        "released" => ServiceError::refused("hold_released", "the hold was released"),
        "expired" => ServiceError::refused("hold_expired", "the hold expired"),
        "failed" => ServiceError::refused("hold_not_funded", "the hold was never funded"),
        _ => ServiceError::refused("hold_captured", "the hold was captured in full"),
    }
}

/// Captures `amount` (everything held if `None`) of the current hold; `last` releases the
/// rest. One linked chain; refused as a whole. `marker` (derived from the request's
/// Idempotency-Key) is kept in the capture's post: a capture whose marker is already there was
/// made, and is not made again. `kind` is the event it emits: `hold.captured`, or
/// `hold.expired` for a capture at expiry.
pub async fn capture_now(
    state: &SharedState,
    h: &HoldRecord,
    (amount, last): (Option<Amount>, bool),
    marker: u128,
    kind: EventKind,
) -> Result<(), ServiceError> {
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
        return Err(ServiceError::refused(
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
) -> Result<serde_json::Value, ServiceError> {
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
) -> Result<Vec<TransferResult>, ServiceError> {
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
pub fn split_transfers(
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
pub fn link_chain(transfers: &mut [Transfer]) {
    let linked = transfers.len().saturating_sub(1);
    for t in &mut transfers[..linked] {
        t.flags = t.flags.union(TransferFlags::LINKED);
    }
}

/// Submits one chain; `exists` (a retry) counts as done, any refusal is the error. `event`
/// rides in the chain's log record, applied only if this submission created the chain's first
/// transfer (see [`farthing_store::outbox`]).
pub async fn submit_chain(
    state: &SharedState,
    transfers: Vec<Transfer>,
    event: Option<RecordWrite>,
) -> Result<(), ServiceError> {
    let results = submit_with_event(state, transfers, event).await?;
    let failure = results.iter().find(|r| {
        !r.is_ok() && **r != TransferResult::Exists && **r != TransferResult::LinkedEventFailed
    });
    match failure {
        None => Ok(()),
        Some(TransferResult::ExceedsCredits) => Err(ServiceError::refused(
            "insufficient_funds",
            "the customer's wallet does not hold enough",
        )
        .with_param("amount")),
        Some(r) => Err(ServiceError::from_transfer(*r, "")),
    }
}

/// Voids the current hold with the chain of `purpose` (`release` or `expire`).
pub async fn void_now(
    state: &SharedState,
    h: &HoldRecord,
    purpose: &str,
) -> Result<(), ServiceError> {
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
        Some(r) => Err(ServiceError::from_transfer(*r, "")),
        None => Err(ServiceError::internal("no result")),
    }
}

/// The expiry job: releases or captures what the hold still holds; nothing if it is resolved.
pub async fn expire(state: &SharedState, hold: u128) -> Result<(), ServiceError> {
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
