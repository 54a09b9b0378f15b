//! Transfers: `POST /v1/transfers` (one, or a linked chain as a list), `POST
//! /v1/transfers/batch`, holds (`"pending": true`, then `POST /v1/transfers/{id}/post` or
//! `/void`), `GET /v1/transfers/{id}`, `GET /v1/accounts/{id}/transfers`.
//!
//! Idempotency is the ledger's own: with an `Idempotency-Key`, the transfer ids derive from
//! (tenant, key), so a retry — concurrent, or after a crash between commit and response —
//! names the same transfers and the ledger answers `exists` (same response),
//! `exists_with_different_fields` (409), or the original failure.

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use farthing_ledger::{
    AccountId, Amount, Asset, BatchResults, Operation, PendingStatus, Timestamp, Transfer,
    TransferFlags, TransferId, TransferResult, TransferView,
};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::extract::idempotency_key;
use crate::extract::json_response;
use crate::extract::parse_json_body;
use crate::extract::ApiJson;
use crate::extract::IdempotencyKey;
use crate::extract::Key;
use crate::extract::RawBody;
use crate::routes::{parse_query, PageQuery};
use crate::wire;
use farthing_products::ids::{decode_id, encode_id, IdKind};
use farthing_products::money::{format_amount, parse_amount};
use farthing_service::accounts::{account_for_transfer, visible_account};
use farthing_service::assets::by_code;
use farthing_service::state::to_json;
use farthing_service::state::Principal;
use farthing_service::state::SharedState;
use farthing_store::util::id_run_start;
use farthing_store::util::random_id;
use farthing_store::util::rfc3339;

/// The most transfers in one linked chain through `POST /v1/transfers`.
pub const CHAIN_TRANSFERS_MAX: usize = 64;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferRequest {
    #[schema(pattern = r"^acct_[a-z2-7]{26}$")]
    pub debit_account: String,
    #[schema(pattern = r"^acct_[a-z2-7]{26}$")]
    pub credit_account: String,
    #[schema(pattern = r"^[0-9]{1,39}(\.[0-9]{1,18})?$", example = "0.0025")]
    pub amount: String,
    #[schema(pattern = r"^[A-Z0-9_]{1,15}$", example = "USD")]
    pub asset: String,
    #[serde(default)]
    pub code: u16,
    /// A hold: reserve the amount until posted, voided or expired.
    #[serde(default)]
    pub pending: bool,
    /// For holds: seconds until the hold expires (0 = never).
    #[serde(default)]
    pub timeout_seconds: u32,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    /// For a post: the amount to capture (default: all of it). For a void: must be absent or
    /// the whole held amount.
    #[schema(pattern = r"^[0-9]{1,39}(\.[0-9]{1,18})?$", example = "0.0025")]
    pub amount: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    pub transfers: Vec<TransferRequest>,
}

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

/// Turns one request into a ledger transfer, checking every field and that the caller may
/// move money between these accounts. `prefix` names fields inside lists (`2.amount`).
fn build(
    state: &SharedState,
    principal: &Principal,
    request: &TransferRequest,
    id: u128,
    prefix: &str,
) -> Result<(Transfer, Asset), ApiError> {
    let p = |field: &str| format!("{prefix}{field}");
    let asset = by_code(state, &request.asset, &p("asset"))?;
    let amount = parse_amount(&request.amount, asset.scale)
        .map_err(|e| ApiError::invalid(&p("amount"), "invalid_amount", format!("amount {e}")))?;
    if amount.is_zero() {
        return Err(ApiError::invalid(
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
        return Err(ApiError::invalid(
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
) -> Result<Vec<TransferResult>, ApiError> {
    Ok(submit_timed(state, transfers).await?.1)
}

/// Submits transfers; returns the batch's timestamp (event `i` has `timestamp + i`) and the
/// results.
async fn submit_timed(
    state: &SharedState,
    transfers: Vec<Transfer>,
) -> Result<(Timestamp, Vec<TransferResult>), ApiError> {
    let outcome = state
        .engine
        .submit_async(Operation::CreateTransfers(transfers))?
        .await
        .map_err(|_| ApiError::unavailable("ledger stopped"))??;
    match outcome.results {
        BatchResults::Transfers(results) => Ok((outcome.timestamp, results)),
        _ => Err(ApiError::internal("unexpected results")),
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

fn stored_view(state: &SharedState, id: u128) -> Result<TransferJson, ApiError> {
    let t = state
        .engine
        .lookup_transfer(TransferId(id))
        .ok_or_else(|| ApiError::internal("transfer not visible after commit"))?;
    let asset = state
        .engine
        .read(|l| l.asset_by_id(t.asset))
        .ok_or_else(|| ApiError::internal("asset missing"))?;
    Ok(view(&asset, &t))
}

/// The ids of a run of `count` transfers: consecutive from one start, derived from the
/// Idempotency-Key when there is one.
fn ids_for(principal: &Principal, key: &Option<String>, count: usize) -> Vec<u128> {
    let first = id_run_start(principal.tenant(), key.as_deref());
    (0..count as u128).map(|i| first + i).collect()
}

/// `POST /v1/transfers`: one transfer object, or a list that succeeds or fails as one.
#[utoipa::path(post, path = "/v1/transfers", operation_id = "transfers.create", tag = "transfers", request_body(content = TransfersBody, description = "one transfer, or a list that succeeds or fails as one (a linked chain)"), params(("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry: the first response is stored and replayed")), responses((status = 201, description = "created (a list for a chain)", body = TransfersResponse), (status = 200, description = "an idempotent retry of an earlier request", body = TransfersResponse), crate::error::WriteErrors))]
pub async fn create(
    State(state): State<SharedState>,
    Key(principal): Key,
    IdempotencyKey(key): IdempotencyKey,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    principal.require_write()?;
    state.check_key_for_transfers(principal.tenant(), &key)?;
    let is_chain = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    let requests: Vec<TransferRequest> = if is_chain {
        // Each member is parsed on its own so that an error names it (`2.amount`).
        let members: Vec<serde_json::Value> = parse_json_body(&body)?;
        if members.is_empty() || members.len() > CHAIN_TRANSFERS_MAX {
            return Err(ApiError::invalid(
                "body",
                "chain_size",
                format!("a chain has 1 to {CHAIN_TRANSFERS_MAX} transfers"),
            ));
        }
        members
            .into_iter()
            .enumerate()
            .map(|(i, member)| {
                crate::extract::parse_json(member.to_string().as_bytes(), &format!("{i}."))
            })
            .collect::<Result<_, _>>()?
    } else {
        // The common case, one transfer object, is parsed once, straight into its type.
        let is_object = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        if !is_object {
            // Malformed JSON says so; well-formed JSON of another shape is the wrong body.
            parse_json_body::<serde::de::IgnoredAny>(&body)?;
            return Err(ApiError::invalid(
                "body",
                "invalid_json",
                "body must be a transfer object or a list of them",
            ));
        }
        vec![crate::extract::parse_json(&body, "")?]
    };
    let ids = ids_for(&principal, &key, requests.len());
    let mut transfers = Vec::with_capacity(requests.len());
    let mut assets = Vec::with_capacity(requests.len());
    for (i, request) in requests.iter().enumerate() {
        let prefix = if is_chain {
            format!("{i}.")
        } else {
            String::new()
        };
        let (mut transfer, asset) = build(&state, &principal, request, ids[i], &prefix)?;
        if i + 1 < ids.len() {
            transfer.flags = transfer.flags | TransferFlags::LINKED;
        }
        transfers.push(transfer);
        assets.push(asset);
    }
    let (timestamp, results) = submit_timed(&state, transfers.clone()).await?;
    // The failing member explains the chain; `linked_event_failed` only says "another one".
    if let Some((i, failure)) = results.iter().enumerate().find(|(_, r)| {
        !r.is_ok() && **r != TransferResult::Exists && **r != TransferResult::LinkedEventFailed
    }) {
        let prefix = if is_chain {
            format!("{i}.")
        } else {
            String::new()
        };
        return Err(ApiError::from_transfer(*failure, &prefix));
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
            .map(|id| stored_view(&state, *id))
            .collect::<Result<Vec<_>, _>>()?
    };
    let created = results.iter().any(|r| r.is_ok());
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let body = if is_chain {
        to_json(&views)?
    } else {
        to_json(&views[0])?
    };
    Ok(json_response(status, body))
}

/// The body of `POST /v1/transfers`: one transfer, or a linked chain.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum TransfersBody {
    One(TransferRequest),
    Chain(Vec<TransferRequest>),
}

/// The response of `POST /v1/transfers`: the transfer, or the chain's transfers.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum TransfersResponse {
    One(TransferJson),
    Chain(Vec<TransferJson>),
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct BatchResponse {
    pub object: &'static str,
    pub results: Vec<BatchItem>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct BatchItem {
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfer: Option<TransferJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<BatchError>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct BatchError {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub code: String,
    pub message: String,
    pub param: Option<String>,
}

/// `POST /v1/transfers/batch`: up to 8,190 independent transfers, one result each, as JSON or
/// (with `Content-Type: application/octet-stream`) in the compact binary encoding of
/// [`crate::wire`].
#[utoipa::path(post, path = "/v1/transfers/batch", operation_id = "transfers.batch", tag = "transfers", request_body(content((BatchRequest = "application/json"), (BinaryBatch = "application/octet-stream")), description = "JSON, or the compact binary encoding (see the wire module: FTB1 header, asset table, 64-byte records)"), params(("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry: the first response is stored and replayed")), responses((status = 200, description = "one result per transfer", content((BatchResponse = "application/json"), (BinaryBatch = "application/octet-stream"))), crate::error::WriteErrors))]
pub async fn batch(
    State(state): State<SharedState>,
    Key(principal): Key,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    principal.require_write()?;
    let key = idempotency_key(&headers)?;
    state.check_key_for_transfers(principal.tenant(), &key)?;
    let binary = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(wire::CONTENT_TYPE));
    if binary {
        return batch_binary(&state, &principal, &key, &body).await;
    }
    let request: BatchRequest = parse_json_body(&body)?;
    let count = request.transfers.len();
    if count == 0 || count > farthing_ledger::BATCH_EVENTS_MAX {
        return Err(ApiError::invalid(
            "transfers",
            "batch_size",
            format!(
                "a batch has 1 to {} transfers",
                farthing_ledger::BATCH_EVENTS_MAX
            ),
        ));
    }
    let ids = ids_for(&principal, &key, count);
    let mut items: Vec<BatchItem> = Vec::with_capacity(count);
    let mut transfers = Vec::with_capacity(count);
    let mut positions = Vec::with_capacity(count);
    let mut assets = Vec::with_capacity(count);
    for (i, r) in request.transfers.iter().enumerate() {
        match build(&state, &principal, r, ids[i], &format!("transfers.{i}.")) {
            Ok((transfer, asset)) => {
                positions.push(i);
                transfers.push(transfer);
                assets.push(asset);
                items.push(BatchItem {
                    index: i,
                    transfer: None,
                    error: None,
                });
            }
            Err(error) => items.push(BatchItem {
                index: i,
                transfer: None,
                error: Some(batch_error(error)),
            }),
        }
    }
    if !transfers.is_empty() {
        let results = submit(&state, transfers).await?;
        for ((position, result), asset) in positions.iter().zip(results).zip(assets) {
            let item = &mut items[*position];
            if result.is_ok() || result == TransferResult::Exists {
                let t = state
                    .engine
                    .lookup_transfer(TransferId(ids[*position]))
                    .ok_or_else(|| ApiError::internal("transfer not visible"))?;
                item.transfer = Some(view(&asset, &t));
            } else {
                item.error = Some(batch_error(ApiError::from_transfer(
                    result,
                    &format!("transfers.{position}."),
                )));
            }
        }
    }
    Ok(json_response(
        StatusCode::OK,
        to_json(&BatchResponse {
            object: "batch_result",
            results: items,
        })?,
    ))
}

/// The compact binary encoding of a batch request or response (see [`crate::wire`]).
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct BinaryBatch(pub Vec<u8>);

/// The binary batch: the API checks each record (reserved bytes, flags, asset, that the caller
/// may use both accounts) and the ledger decides the rest; one result byte per record.
async fn batch_binary(
    state: &SharedState,
    principal: &Principal,
    key: &Option<String>,
    body: &[u8],
) -> Result<Response, ApiError> {
    let request = wire::decode_request(body, farthing_ledger::BATCH_EVENTS_MAX)
        .map_err(|e| ApiError::invalid(e.param(), "invalid_batch", e.to_string()))?;
    let assets = request
        .assets
        .iter()
        .enumerate()
        .map(|(i, code)| by_code(state, code, &format!("assets.{i}")))
        .collect::<Result<Vec<Asset>, _>>()?;
    let records: Vec<wire::Record> = request.records().collect();
    let accounts: Vec<u128> = records
        .iter()
        .flat_map(|r| [r.debit_account, r.credit_account])
        .collect();
    let owners = state.owners_of(&accounts)?;
    let usable = |i: usize| owners[i].is_some_and(|o| principal.can_see(o));
    let first = id_run_start(principal.tenant(), key.as_deref());
    let mut results = vec![0u8; records.len()];
    let mut transfers = Vec::with_capacity(records.len());
    let mut positions = Vec::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        let refusal = if !r.reserved_zero {
            Some(wire::RESULT_RESERVED_NOT_ZERO)
        } else if !r.flags_known() {
            Some(TransferResult::FlagsUnknown.code())
        } else if usize::from(r.asset_index) >= assets.len() {
            Some(wire::RESULT_ASSET_INDEX_UNKNOWN)
        } else if !usable(2 * i) {
            Some(TransferResult::DebitAccountNotFound.code())
        } else if !usable(2 * i + 1) {
            Some(TransferResult::CreditAccountNotFound.code())
        } else {
            None
        };
        if let Some(code) = refusal {
            results[i] = code;
            continue;
        }
        positions.push(i);
        transfers.push(Transfer {
            id: TransferId(first + i as u128),
            debit_account_id: AccountId(r.debit_account),
            credit_account_id: AccountId(r.credit_account),
            amount: Amount(r.amount),
            pending_id: TransferId(0),
            user_data: 0,
            timeout_s: r.timeout_seconds,
            asset: assets[usize::from(r.asset_index)].id,
            code: r.code,
            flags: r.transfer_flags(),
        });
    }
    if !transfers.is_empty() {
        for (position, result) in positions.into_iter().zip(submit(state, transfers).await?) {
            results[position] = result.code();
        }
    }
    let mut response = Response::new(axum::body::Body::from(wire::encode_response(
        first, &results,
    )));
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static(wire::CONTENT_TYPE),
    );
    Ok(response)
}

fn batch_error(error: ApiError) -> BatchError {
    BatchError {
        kind: crate::error::type_of(error.error.kind),
        code: error.error.code,
        message: error.error.message,
        param: error.error.param,
    }
}

/// A transfer the caller may see (it can see one of its accounts), or 404.
fn visible_transfer(
    state: &SharedState,
    principal: &Principal,
    id: &str,
) -> Result<(TransferView, Asset), ApiError> {
    let missing = || ApiError::not_found(Some("id"), "transfer");
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
    if !(visible(t.debit_account_id)? || visible(t.credit_account_id)?) {
        return Err(missing());
    }
    let asset = state
        .engine
        .read(|l| l.asset_by_id(t.asset))
        .ok_or_else(missing)?;
    Ok((t, asset))
}

#[utoipa::path(get, path = "/v1/transfers/{id}", operation_id = "transfers.get", tag = "transfers", params(("id" = String, Path, description = "tr_… id")), responses((status = 200, description = "the transfer", body = TransferJson), crate::error::ReadErrors))]
pub async fn get(
    State(state): State<SharedState>,
    Key(principal): Key,
    Path(id): Path<String>,
) -> Result<axum::Json<TransferJson>, ApiError> {
    let (t, asset) = visible_transfer(&state, &principal, &id)?;
    Ok(axum::Json(view(&asset, &t)))
}

async fn resolve(
    state: SharedState,
    principal: Principal,
    key: Option<String>,
    id: String,
    request: ResolveRequest,
    post: bool,
) -> Result<Response, ApiError> {
    principal.require_write()?;
    let (hold, asset) = visible_transfer(&state, &principal, &id)?;
    // Both sides of a hold must be the caller's to capture or release it.
    for (account, param) in [
        (hold.debit_account_id, "id"),
        (hold.credit_account_id, "id"),
    ] {
        if !state
            .owner_of(account.0)?
            .is_some_and(|o| principal.can_see(o))
        {
            return Err(ApiError::not_found(Some(param), "transfer"));
        }
    }
    if !hold.flags.contains(TransferFlags::PENDING) {
        return Err(ApiError::invalid(
            "id",
            "not_a_hold",
            "only holds (pending transfers) can be posted or voided",
        ));
    }
    let amount = match &request.amount {
        Some(text) => parse_amount(text, asset.scale)
            .map_err(|e| ApiError::invalid("amount", "invalid_amount", format!("amount {e}")))?,
        None => Amount::ZERO,
    };
    if request.amount.is_some() && amount.is_zero() {
        return Err(ApiError::invalid(
            "amount",
            "zero_amount",
            "amount must be greater than zero",
        ));
    }
    state.check_key_for_transfers(principal.tenant(), &key)?;
    // The same derivation as every transfer endpoint: the key reused on another hold, or to
    // void what it posted, names this transfer again and gets 409.
    let new_id = match &key {
        Some(key) => id_run_start(principal.tenant(), Some(key)),
        None => random_id(),
    };
    let transfer = Transfer {
        id: TransferId(new_id),
        debit_account_id: AccountId(0),
        credit_account_id: AccountId(0),
        amount,
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
    let results = submit(&state, vec![transfer]).await?;
    match results.first() {
        Some(r) if r.is_ok() || *r == TransferResult::Exists => {
            let status = if r.is_ok() {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(json_response(
                status,
                to_json(&stored_view(&state, new_id)?)?,
            ))
        }
        Some(r) => Err(ApiError::from_transfer(*r, "")),
        None => Err(ApiError::internal("no result")),
    }
}

#[utoipa::path(post, path = "/v1/transfers/{id}/post", operation_id = "transfers.post", tag = "transfers", request_body = ResolveRequest, params(("id" = String, Path, description = "tr_… id of a hold"), ("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry: the first response is stored and replayed")), responses((status = 201, description = "the capture", body = TransferJson), (status = 200, description = "an idempotent retry", body = TransferJson), crate::error::WriteErrors))]
pub async fn post_hold(
    State(state): State<SharedState>,
    Key(principal): Key,
    IdempotencyKey(key): IdempotencyKey,
    Path(id): Path<String>,
    ApiJson(request, _): ApiJson<ResolveRequest>,
) -> Result<Response, ApiError> {
    resolve(state, principal, key, id, request, true).await
}

#[utoipa::path(post, path = "/v1/transfers/{id}/void", operation_id = "transfers.void", tag = "transfers", request_body = ResolveRequest, params(("id" = String, Path, description = "tr_… id of a hold"), ("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry: the first response is stored and replayed")), responses((status = 201, description = "the release", body = TransferJson), (status = 200, description = "an idempotent retry", body = TransferJson), crate::error::WriteErrors))]
pub async fn void_hold(
    State(state): State<SharedState>,
    Key(principal): Key,
    IdempotencyKey(key): IdempotencyKey,
    Path(id): Path<String>,
    ApiJson(request, _): ApiJson<ResolveRequest>,
) -> Result<Response, ApiError> {
    resolve(state, principal, key, id, request, false).await
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TransferList {
    pub object: &'static str,
    pub data: Vec<TransferJson>,
    pub has_more: bool,
}

/// `GET /v1/accounts/{id}/transfers`: newest first.
#[utoipa::path(get, path = "/v1/accounts/{id}/transfers", operation_id = "accounts.transfers.list", tag = "transfers", params(("id" = String, Path, description = "acct_… id"), ("limit" = Option<u32>, Query, description = "1 to 100, default 10"), ("starting_after" = Option<String>, Query, description = "cursor: the id of the last object of the previous page")), responses((status = 200, description = "the account's transfers, newest first", body = TransferList), crate::error::ReadErrors))]
pub async fn history(
    State(state): State<SharedState>,
    Key(principal): Key,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<axum::Json<TransferList>, ApiError> {
    let page: PageQuery = parse_query(query.as_deref())?;
    let limit = page.limit(state.limits.page_limit_max)?;
    let (account, _) = visible_account(&state, &principal, &id, "id")?;
    let cursor = match &page.starting_after {
        Some(text) => Some(TransferId(decode_id(IdKind::Transfer, text).ok_or_else(
            || {
                ApiError::invalid(
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
            ApiError::invalid(
                "starting_after",
                "invalid_cursor",
                "starting_after is not in this account's history",
            )
        })?;
    let asset = state
        .engine
        .read(|l| l.asset_by_id(account.asset))
        .ok_or_else(|| ApiError::internal("asset missing"))?;
    let data = page.transfers.iter().map(|t| view(&asset, t)).collect();
    Ok(axum::Json(TransferList {
        object: "list",
        data,
        has_more: page.has_more,
    }))
}
