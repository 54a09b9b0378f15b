//! Plain ledger transfers between API accounts: one, or a linked chain that succeeds or fails
//! as one ([`create`]); batches of independent transfers ([`create_batch`], and
//! [`create_decoded`] for the binary encoding, which the HTTP layer decodes); holds and their
//! capture or release ([`resolve`]); reads ([`get`], [`history`]).
//!
//! Idempotency is the ledger's own: with an `Idempotency-Key`, the transfer ids derive from
//! (tenant, key), so a retry — concurrent, or after a crash between commit and response —
//! names the same transfers and the ledger answers `exists` (same response),
//! `exists_with_different_fields` (409), or the original failure.
//!
//! This is the hot path: no lookups, locks or copies beyond what each transfer needs.

use farthing_ledger::{
    AccountId, Amount, Asset, BatchResults, Operation, PendingStatus, Timestamp, Transfer,
    TransferFlags, TransferId, TransferResult, TransferView,
};
use farthing_products::ids::{decode_id, encode_id, IdKind};
use farthing_products::money::{format_amount, parse_amount};
use farthing_store::util::id_run_start;
use farthing_store::util::random_id;
use farthing_store::util::rfc3339;
use serde::Serialize;

use crate::accounts::{account_for_transfer, visible_account};
use crate::assets::by_code;
use crate::error::ServiceError;
use crate::state::{Principal, SharedState};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TransferJson {
    pub id: String,
    pub object: &'static str,
    /// `transfer`, `hold`, `capture` (posts a hold) or `release` (voids a hold).
    #[serde(rename = "type")]
    pub kind: &'static str,

    pub debit_account: String,
    pub credit_account: String,
    pub amount: String,
    pub asset: String,
    pub code: u16,
    /// For holds: `pending`, `posted`, `voided` or `expired`; otherwise `posted`.
    pub status: &'static str,
    /// For captures and releases: the hold they resolve.
    pub hold: Option<String>,
    pub timeout_seconds: u32,
    pub created: String,
}

pub fn view(asset: &Asset, t: &TransferView) -> TransferJson {
    let kind = if t.flags.contains(TransferFlags::PENDING) {
        "hold"
    } else if t.flags.contains(TransferFlags::POST_PENDING) {
        "capture"
    } else if t.flags.contains(TransferFlags::VOID_PENDING) {
        "release"
    } else {
        "transfer"
    };
    let status = match t.hold_status {
        None | Some(PendingStatus::Posted) if !t.flags.contains(TransferFlags::PENDING) => "posted",
        Some(PendingStatus::Pending) => "pending",
        Some(PendingStatus::Posted) => "posted",
        Some(PendingStatus::Voided) => "voided",
        Some(PendingStatus::Expired) => "expired",
        None => "posted",
    };
    TransferJson {
        id: encode_id(IdKind::Transfer, t.id.0),
        object: "transfer",
        kind,
        debit_account: encode_id(IdKind::Account, t.debit_account_id.0),
        credit_account: encode_id(IdKind::Account, t.credit_account_id.0),
        amount: format_amount(t.amount, asset.scale),
        asset: asset.code.to_string(),
        code: t.code,
        status,
        hold: (t.pending_id.0 != 0).then(|| encode_id(IdKind::Transfer, t.pending_id.0)),
        timeout_seconds: t.timeout_s,
        created: rfc3339(t.timestamp.0),
    }
}

/// One transfer as a request asks for it: accounts as `acct_…` ids, the asset by code, the
/// amount as decimal text.
#[derive(Debug)]
pub struct TransferInput {
    pub debit_account: String,
    pub credit_account: String,
    pub amount: String,
    pub asset: String,
    pub code: u16,
    /// A hold: reserve the amount until posted, voided or expired.
    pub pending: bool,
    /// For holds: seconds until the hold expires (0 = never).
    pub timeout_seconds: u32,
}

/// A caller cleared to create transfers, under its Idempotency-Key if it sent one (the ids
/// derive from it). Made by [`TransferWriter::check`] before the request's body is read, so
/// this refusal comes first.
pub struct TransferWriter<'a> {
    principal: &'a Principal,
    key: Option<&'a str>,
}

impl<'a> TransferWriter<'a> {
    pub fn check(
        principal: &'a Principal,
        key: &'a Option<String>,
    ) -> Result<TransferWriter<'a>, ServiceError> {
        principal.require_write()?;
        Ok(TransferWriter {
            principal,
            key: key.as_deref(),
        })
    }

    /// The first id of this request's run of transfers: consecutive from one start, derived
    /// from the Idempotency-Key when there is one (random otherwise: call it once).
    fn first_id(&self) -> u128 {
        id_run_start(self.principal.tenant(), self.key)
    }

    /// The ids of a run of `count` transfers.
    fn ids(&self, count: usize) -> Vec<u128> {
        let first = self.first_id();
        (0..count as u128).map(|i| first + i).collect()
    }
}

/// Turns one request into a ledger transfer, checking every field and that the caller may
/// move money between these accounts. `prefix` names fields inside lists (`2.amount`).
fn build(
    state: &SharedState,
    principal: &Principal,
    request: &TransferInput,
    id: u128,
    prefix: &str,
) -> Result<(Transfer, Asset), ServiceError> {
    let p = |field: &str| format!("{prefix}{field}");
    let asset = by_code(state, &request.asset, &p("asset"))?;
    let amount = parse_amount(&request.amount, asset.scale).map_err(|e| {
        ServiceError::invalid(&p("amount"), "invalid_amount", format!("amount {e}"))
    })?;
    if amount.is_zero() {
        return Err(ServiceError::invalid(
            &p("amount"),
            "zero_amount",
            "amount must be greater than zero",
        ));
    }
    let debit = account_for_transfer(
        state,
        principal,
        &request.debit_account,
        &p("debit_account"),
    )?;
    let credit = account_for_transfer(
        state,
        principal,
        &request.credit_account,
        &p("credit_account"),
    )?;
    if !request.pending && request.timeout_seconds != 0 {
        return Err(ServiceError::invalid(
            &p("timeout_seconds"),
            "timeout_requires_pending",
            "timeout_seconds is only for holds (pending: true)",
        ));
    }
    let flags = if request.pending {
        TransferFlags::PENDING
    } else {
        TransferFlags::empty()
    };
    let transfer = Transfer {
        id: TransferId(id),
        debit_account_id: debit.id,
        credit_account_id: credit.id,
        amount,
        pending_id: TransferId(0),
        user_data: 0,
        timeout_s: request.timeout_seconds,
        asset: asset.id,
        code: request.code,
        flags,
    };
    Ok((transfer, asset))
}

async fn submit(
    state: &SharedState,
    transfers: Vec<Transfer>,
) -> Result<Vec<TransferResult>, ServiceError> {
    Ok(submit_timed(state, transfers).await?.1)
}

/// Submits transfers; returns the batch's timestamp (event `i` has `timestamp + i`) and the
/// results.
async fn submit_timed(
    state: &SharedState,
    transfers: Vec<Transfer>,
) -> Result<(Timestamp, Vec<TransferResult>), ServiceError> {
    let outcome = state
        .engine
        .submit_async(Operation::CreateTransfers(transfers))?
        .await
        .map_err(|_| ServiceError::unavailable("ledger stopped"))??;
    match outcome.results {
        BatchResults::Transfers(results) => Ok((outcome.timestamp, results)),
        _ => Err(ServiceError::internal("unexpected results")),
    }
}

/// The view of a transfer this request just created, built from what was submitted: the
/// ledger applied it exactly, so there is nothing to look up.
fn created_view(asset: &Asset, t: &Transfer, timestamp: Timestamp) -> TransferJson {
    view(
        asset,
        &TransferView {
            id: t.id,
            debit_account_id: t.debit_account_id,
            credit_account_id: t.credit_account_id,
            amount: t.amount,
            pending_id: t.pending_id,
            user_data: t.user_data,
            timeout_s: t.timeout_s,
            asset: t.asset,
            code: t.code,
            flags: t.flags,
            timestamp,
            hold_status: t
                .flags
                .contains(TransferFlags::PENDING)
                .then_some(PendingStatus::Pending),
        },
    )
}

fn stored_view(state: &SharedState, id: u128) -> Result<TransferJson, ServiceError> {
    let t = state
        .engine
        .lookup_transfer(TransferId(id))
        .ok_or_else(|| ServiceError::internal("transfer not visible after commit"))?;
    let asset = state
        .engine
        .read(|l| l.asset_by_id(t.asset))
        .ok_or_else(|| ServiceError::internal("asset missing"))?;
    Ok(view(&asset, &t))
}

/// Creates one transfer, or (`is_chain`) a linked chain that succeeds or fails as one; errors
/// of a chain's member name it (`2.amount`). Returns the status (201, for a retry too) and the transfers.
pub async fn create(
    state: &SharedState,
    writer: &TransferWriter<'_>,
    requests: &[TransferInput],
    is_chain: bool,
) -> Result<(u16, Vec<TransferJson>), ServiceError> {
    let ids = writer.ids(requests.len());
    let mut transfers = Vec::with_capacity(requests.len());
    let mut assets = Vec::with_capacity(requests.len());
    for (i, request) in requests.iter().enumerate() {
        let prefix = if is_chain {
            format!("{i}.")
        } else {
            String::new()
        };
        let (mut transfer, asset) = build(state, writer.principal, request, ids[i], &prefix)?;
        if i + 1 < ids.len() {
            transfer.flags = transfer.flags | TransferFlags::LINKED;
        }
        transfers.push(transfer);
        assets.push(asset);
    }
    let (timestamp, results) = submit_timed(state, transfers.clone()).await?;
    // The failing member explains the chain; `linked_event_failed` only says "another one".
    if let Some((i, failure)) = results.iter().enumerate().find(|(_, r)| {
        !r.is_ok() && **r != TransferResult::Exists && **r != TransferResult::LinkedEventFailed
    }) {
        let prefix = if is_chain {
            format!("{i}.")
        } else {
            String::new()
        };
        return Err(ServiceError::from_transfer(*failure, &prefix));
    }
    let views = if results.iter().all(|r| r.is_ok()) {
        transfers
            .iter()
            .zip(&assets)
            .enumerate()
            .map(|(i, (t, asset))| created_view(asset, t, Timestamp(timestamp.0 + i as u64)))
            .collect()
    } else {
        // A retry: what the ledger holds is the answer.
        ids.iter()
            .map(|id| stored_view(state, *id))
            .collect::<Result<Vec<_>, _>>()?
    };
    // A retry the key's stored answer did not catch (a crash before it was stored, or after
    // it expired) answers as the first request did.
    Ok((201, views))
}

/// Creates up to [`farthing_ledger::BATCH_EVENTS_MAX`] independent transfers; one result each,
/// in order: the transfer, or why it was refused (its fields named `transfers.{i}.…`).
pub async fn create_batch(
    state: &SharedState,
    writer: &TransferWriter<'_>,
    requests: &[TransferInput],
) -> Result<Vec<Result<TransferJson, ServiceError>>, ServiceError> {
    let count = requests.len();
    if count == 0 || count > farthing_ledger::BATCH_EVENTS_MAX {
        return Err(ServiceError::invalid(
            "transfers",
            "batch_size",
            format!(
                "a batch has 1 to {} transfers",
                farthing_ledger::BATCH_EVENTS_MAX
            ),
        ));
    }
    let ids = writer.ids(count);
    let built: Vec<Result<(Transfer, Asset), ServiceError>> = requests
        .iter()
        .enumerate()
        .map(|(i, r)| {
            build(
                state,
                writer.principal,
                r,
                ids[i],
                &format!("transfers.{i}."),
            )
        })
        .collect();
    let transfers: Vec<Transfer> = built.iter().flatten().map(|(t, _)| *t).collect();
    let mut results = if transfers.is_empty() {
        Vec::new()
    } else {
        submit(state, transfers).await?
    }
    .into_iter();
    built
        .into_iter()
        .enumerate()
        .map(|(i, built)| {
            let (transfer, asset) = match built {
                Ok(built) => built,
                Err(refused) => return Ok(Err(refused)),
            };
            let result = results
                .next()
                .ok_or_else(|| ServiceError::internal("no result"))?;
            if !(result.is_ok() || result == TransferResult::Exists) {
                let prefix = format!("transfers.{i}.");
                return Ok(Err(ServiceError::from_transfer(result, &prefix)));
            }
            let t = state
                .engine
                .lookup_transfer(transfer.id)
                .ok_or_else(|| ServiceError::internal("transfer not visible"))?;
            Ok(Ok(view(&asset, &t)))
        })
        .collect()
}

/// One transfer of a binary batch as the HTTP layer decoded it: account ids, the amount in
/// minor units, and an index into the request's asset table.
#[derive(Clone, Copy, Debug)]
pub struct DecodedTransferInput {
    pub debit_account: u128,
    pub credit_account: u128,
    pub amount: Amount,
    pub asset_index: u16,
    pub code: u16,
    pub flags: TransferFlags,
    pub timeout_seconds: u32,
    /// The result byte of a record the decoder already refused (reserved bytes, unknown flags,
    /// an asset index outside the table): it is answered with this and not submitted.
    pub refused: Option<u8>,
}

/// What a binary batch created: the first transfer's id (transfer `i` has `first_id + i`) and
/// one result byte per transfer (the ledger's codes, or the decoder's refusal).
#[derive(Debug)]
pub struct DecodedOutcome {
    pub first_id: u128,
    pub results: Vec<u8>,
}

/// The binary batch: the decoder checked each record's format; this checks that the caller
/// may use both accounts (one look at the owner cache for all of them) and the ledger decides
/// the rest. `asset_codes` is the request's asset table; an unknown code refuses the batch.
pub async fn create_decoded(
    state: &SharedState,
    writer: &TransferWriter<'_>,
    asset_codes: &[String],
    transfers: &[DecodedTransferInput],
) -> Result<DecodedOutcome, ServiceError> {
    let assets = asset_codes
        .iter()
        .enumerate()
        .map(|(i, code)| by_code(state, code, &format!("assets.{i}")))
        .collect::<Result<Vec<Asset>, _>>()?;
    let accounts: Vec<u128> = transfers
        .iter()
        .flat_map(|r| [r.debit_account, r.credit_account])
        .collect();
    let owners = state.owners_of(&accounts)?;
    let usable = |i: usize| owners[i].is_some_and(|o| writer.principal.can_see(o));
    let first = writer.first_id();
    let mut results = vec![0u8; transfers.len()];
    let mut submitted = Vec::with_capacity(transfers.len());
    let mut positions = Vec::with_capacity(transfers.len());
    for (i, r) in transfers.iter().enumerate() {
        let refusal = r.refused.or_else(|| {
            if !usable(2 * i) {
                Some(TransferResult::DebitAccountNotFound.code())
            } else if !usable(2 * i + 1) {
                Some(TransferResult::CreditAccountNotFound.code())
            } else {
                None
            }
        });
        if let Some(code) = refusal {
            results[i] = code;
            continue;
        }
        // The decoder refused every record whose index is outside the table.
        let asset = assets
            .get(usize::from(r.asset_index))
            .ok_or_else(|| ServiceError::internal("asset index outside the asset table"))?;
        positions.push(i);
        submitted.push(Transfer {
            id: TransferId(first + i as u128),
            debit_account_id: AccountId(r.debit_account),
            credit_account_id: AccountId(r.credit_account),
            amount: r.amount,
            pending_id: TransferId(0),
            user_data: 0,
            timeout_s: r.timeout_seconds,
            asset: asset.id,
            code: r.code,
            flags: r.flags,
        });
    }
    if !submitted.is_empty() {
        for (position, result) in positions.into_iter().zip(submit(state, submitted).await?) {
            results[position] = result.code();
        }
    }
    Ok(DecodedOutcome {
        first_id: first,
        results,
    })
}

/// A transfer the caller may see (it can see one of its accounts), or 404.
fn visible_transfer(
    state: &SharedState,
    principal: &Principal,
    id: &str,
) -> Result<(TransferView, Asset), ServiceError> {
    let missing = || ServiceError::not_found(Some("id"), "transfer");
    let id = decode_id(IdKind::Transfer, id).ok_or_else(missing)?;
    let t = state
        .engine
        .lookup_transfer(TransferId(id))
        .ok_or_else(missing)?;
    let visible = |account: AccountId| {
        state
            .owner_of(account.0)
            .map(|o| o.is_some_and(|o| principal.can_see(o)))
    };
    if !(principal.is_operator() || visible(t.debit_account_id)? || visible(t.credit_account_id)?) {
        return Err(missing());
    }
    let asset = state
        .engine
        .read(|l| l.asset_by_id(t.asset))
        .ok_or_else(missing)?;
    Ok((t, asset))
}

/// A transfer the caller may see (a `tr_…` id), or 404.
pub fn get(
    state: &SharedState,
    principal: &Principal,
    id: &str,
) -> Result<TransferJson, ServiceError> {
    let (t, asset) = visible_transfer(state, principal, id)?;
    Ok(view(&asset, &t))
}

/// Captures (`post`) or releases a hold (a `tr_…` id) whose both accounts are the caller's:
/// `amount` (decimal text) captures part of it; a release takes all of it. Returns the status
/// (201, for a retry too) and the capture or release.
pub async fn resolve(
    state: &SharedState,
    principal: &Principal,
    key: &Option<String>,
    id: &str,
    amount: Option<&str>,
    post: bool,
) -> Result<(u16, TransferJson), ServiceError> {
    principal.require_write()?;
    let (hold, asset) = visible_transfer(state, principal, id)?;
    // Both sides of a hold must be the caller's to capture or release it.
    for (account, param) in [
        (hold.debit_account_id, "id"),
        (hold.credit_account_id, "id"),
    ] {
        if !state
            .owner_of(account.0)?
            .is_some_and(|o| principal.can_see(o))
        {
            return Err(ServiceError::not_found(Some(param), "transfer"));
        }
    }
    if !hold.flags.contains(TransferFlags::PENDING) {
        return Err(ServiceError::invalid(
            "id",
            "not_a_hold",
            "only holds (pending transfers) can be posted or voided",
        ));
    }
    let parsed = match amount {
        Some(text) => parse_amount(text, asset.scale).map_err(|e| {
            ServiceError::invalid("amount", "invalid_amount", format!("amount {e}"))
        })?,
        None => Amount::ZERO,
    };
    if amount.is_some() && parsed.is_zero() {
        return Err(ServiceError::invalid(
            "amount",
            "zero_amount",
            "amount must be greater than zero",
        ));
    }
    // The same derivation as every transfer endpoint: the key reused on another hold, or to
    // void what it posted, names this transfer again and gets 409.
    let new_id = match key {
        Some(key) => id_run_start(principal.tenant(), Some(key)),
        None => random_id(),
    };
    let transfer = Transfer {
        id: TransferId(new_id),
        debit_account_id: AccountId(0),
        credit_account_id: AccountId(0),
        amount: parsed,
        pending_id: hold.id,
        user_data: 0,
        timeout_s: 0,
        asset: farthing_ledger::AssetId(0),
        code: hold.code,
        flags: if post {
            TransferFlags::POST_PENDING
        } else {
            TransferFlags::VOID_PENDING
        },
    };
    let results = submit(state, vec![transfer]).await?;
    match results.first() {
        Some(r) if r.is_ok() || *r == TransferResult::Exists => {
            // `exists`: a retry the stored answer did not catch, answered as the first was.
            Ok((201, stored_view(state, new_id)?))
        }
        Some(r) => Err(ServiceError::from_transfer(*r, "")),
        None => Err(ServiceError::internal("no result")),
    }
}

/// A page of a visible account's transfers (an `acct_…` id), newest first, after the transfer
/// `starting_after` (a `tr_…` id of its history); and whether more follow.
pub fn history(
    state: &SharedState,
    principal: &Principal,
    account: &str,
    starting_after: Option<&str>,
    limit: usize,
) -> Result<(Vec<TransferJson>, bool), ServiceError> {
    let (account, _) = visible_account(state, principal, account, "id")?;
    let cursor = match starting_after {
        Some(text) => Some(TransferId(decode_id(IdKind::Transfer, text).ok_or_else(
            || {
                ServiceError::invalid(
                    "starting_after",
                    "invalid_cursor",
                    "starting_after must be a tr_… id of this account's history",
                )
            },
        )?)),
        None => None,
    };
    let page = state
        .engine
        .account_transfers(account.id, cursor, limit)
        .map_err(|_| {
            ServiceError::invalid(
                "starting_after",
                "invalid_cursor",
                "starting_after is not in this account's history",
            )
        })?;
    let asset = state
        .engine
        .read(|l| l.asset_by_id(account.asset))
        .ok_or_else(|| ServiceError::internal("asset missing"))?;
    let data = page.transfers.iter().map(|t| view(&asset, t)).collect();
    Ok((data, page.has_more))
}
