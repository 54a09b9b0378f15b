//! Transfers: `POST /v1/transfers` (one, or a linked chain as a list), `POST
//! /v1/transfers/batch` (JSON, or the binary encoding of [`crate::wire`]), holds (`"pending":
//! true`, then `POST /v1/transfers/{id}/post` or `/void`), `GET /v1/transfers/{id}`, `GET
//! /v1/accounts/{id}/transfers`. The rules, and idempotency through the ledger's own ids, live
//! in [`farthing_service::transfers`].

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use farthing_ledger::{Amount, TransferResult};
use farthing_service::ServiceError;
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
use farthing_service::state::to_json;
use farthing_service::state::Principal;
use farthing_service::state::SharedState;
use farthing_service::transfers::{
    DecodedTransferInput, TransferInput, TransferJson, TransferWriter,
};

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

impl From<TransferRequest> for TransferInput {
    fn from(r: TransferRequest) -> TransferInput {
        TransferInput {
            debit_account: r.debit_account,
            credit_account: r.credit_account,
            amount: r.amount,
            asset: r.asset,
            code: r.code,
            pending: r.pending,
            timeout_seconds: r.timeout_seconds,
        }
    }
}

/// `POST /v1/transfers`: one transfer object, or a list that succeeds or fails as one.
#[utoipa::path(post, path = "/v1/transfers", operation_id = "transfers.create", tag = "transfers", request_body(content = TransfersBody, description = "one transfer, or a list that succeeds or fails as one (a linked chain)"), params(("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry: the first response is stored and replayed")), responses((status = 201, description = "created (a list for a chain)", body = TransfersResponse), crate::error::WriteErrors))]
pub async fn create(
    State(state): State<SharedState>,
    Key(principal): Key,
    IdempotencyKey(key): IdempotencyKey,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let writer = TransferWriter::check(&principal, &key)?;
    let is_chain = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    let requests: Vec<TransferInput> = if is_chain {
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
                crate::extract::parse_json::<TransferRequest>(
                    member.to_string().as_bytes(),
                    &format!("{i}."),
                )
                .map(TransferInput::from)
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
        vec![crate::extract::parse_json::<TransferRequest>(&body, "")?.into()]
    };
    let (status, views) =
        farthing_service::transfers::create(&state, &writer, &requests, is_chain).await?;
    let body = if is_chain {
        to_json(&views)?
    } else {
        to_json(&views[0])?
    };
    Ok(json_response(status_code(status), body))
}

/// A service's status code (201 or 200) as HTTP's.
fn status_code(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::OK)
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
    // A read-only key is refused before its Idempotency-Key is read (the writer checks again).
    principal.require_write()?;
    let key = idempotency_key(&headers)?;
    let writer = TransferWriter::check(&principal, &key)?;
    let binary = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(wire::CONTENT_TYPE));
    if binary {
        return batch_binary(&state, &writer, &body).await;
    }
    let request: BatchRequest = parse_json_body(&body)?;
    let requests: Vec<TransferInput> = request
        .transfers
        .into_iter()
        .map(TransferInput::from)
        .collect();
    let results = farthing_service::transfers::create_batch(&state, &writer, &requests).await?;
    let results = results
        .into_iter()
        .enumerate()
        .map(|(index, result)| match result {
            Ok(transfer) => BatchItem {
                index,
                transfer: Some(transfer),
                error: None,
            },
            Err(error) => BatchItem {
                index,
                transfer: None,
                error: Some(batch_error(error)),
            },
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        to_json(&BatchResponse {
            object: "batch_result",
            results,
        })?,
    ))
}

/// The compact binary encoding of a batch request or response (see [`crate::wire`]).
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct BinaryBatch(pub Vec<u8>);

/// The binary batch: the decoder checks each record's format (reserved bytes, flags, asset
/// index) and the service the rest; one result byte per record.
async fn batch_binary(
    state: &SharedState,
    writer: &TransferWriter<'_>,
    body: &[u8],
) -> Result<Response, ApiError> {
    let request = wire::decode_request(body, farthing_ledger::BATCH_EVENTS_MAX)
        .map_err(|e| ApiError::invalid(e.param(), "invalid_batch", e.to_string()))?;
    let asset_count = request.assets.len();
    let transfers: Vec<DecodedTransferInput> = request
        .records()
        .map(|r| decoded(&r, asset_count))
        .collect();
    let outcome =
        farthing_service::transfers::create_decoded(state, writer, &request.assets, &transfers)
            .await?;
    let mut response = Response::new(axum::body::Body::from(wire::encode_response(
        outcome.first_id,
        &outcome.results,
    )));
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static(wire::CONTENT_TYPE),
    );
    Ok(response)
}

/// A wire record as the service takes it, refused already if its format is wrong.
fn decoded(r: &wire::Record, asset_count: usize) -> DecodedTransferInput {
    let refused = if !r.reserved_zero {
        Some(wire::RESULT_RESERVED_NOT_ZERO)
    } else if !r.flags_known() {
        Some(TransferResult::FlagsUnknown.code())
    } else if usize::from(r.asset_index) >= asset_count {
        Some(wire::RESULT_ASSET_INDEX_UNKNOWN)
    } else {
        None
    };
    DecodedTransferInput {
        debit_account: r.debit_account,
        credit_account: r.credit_account,
        amount: Amount(r.amount),
        asset_index: r.asset_index,
        code: r.code,
        flags: r.transfer_flags(),
        timeout_seconds: r.timeout_seconds,
        refused,
    }
}

fn batch_error(error: ServiceError) -> BatchError {
    BatchError {
        kind: crate::error::type_of(error.kind),
        code: error.code,
        message: error.message,
        param: error.param,
    }
}

#[utoipa::path(get, path = "/v1/transfers/{id}", operation_id = "transfers.get", tag = "transfers", params(("id" = String, Path, description = "tr_… id")), responses((status = 200, description = "the transfer", body = TransferJson), crate::error::ReadErrors))]
pub async fn get(
    State(state): State<SharedState>,
    Key(principal): Key,
    Path(id): Path<String>,
) -> Result<axum::Json<TransferJson>, ApiError> {
    Ok(axum::Json(farthing_service::transfers::get(
        &state, &principal, &id,
    )?))
}

async fn resolve(
    state: &SharedState,
    principal: &Principal,
    key: &Option<String>,
    id: &str,
    request: ResolveRequest,
    post: bool,
) -> Result<Response, ApiError> {
    let amount = request.amount.as_deref();
    let (status, view) =
        farthing_service::transfers::resolve(state, principal, key, id, amount, post).await?;
    Ok(json_response(status_code(status), to_json(&view)?))
}

#[utoipa::path(post, path = "/v1/transfers/{id}/post", operation_id = "transfers.post", tag = "transfers", request_body = ResolveRequest, params(("id" = String, Path, description = "tr_… id of a hold"), ("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry: the first response is stored and replayed")), responses((status = 201, description = "the capture", body = TransferJson), crate::error::WriteErrors))]
pub async fn post_hold(
    State(state): State<SharedState>,
    Key(principal): Key,
    IdempotencyKey(key): IdempotencyKey,
    Path(id): Path<String>,
    ApiJson(request, _): ApiJson<ResolveRequest>,
) -> Result<Response, ApiError> {
    resolve(&state, &principal, &key, &id, request, true).await
}

#[utoipa::path(post, path = "/v1/transfers/{id}/void", operation_id = "transfers.void", tag = "transfers", request_body = ResolveRequest, params(("id" = String, Path, description = "tr_… id of a hold"), ("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry: the first response is stored and replayed")), responses((status = 201, description = "the release", body = TransferJson), crate::error::WriteErrors))]
pub async fn void_hold(
    State(state): State<SharedState>,
    Key(principal): Key,
    IdempotencyKey(key): IdempotencyKey,
    Path(id): Path<String>,
    ApiJson(request, _): ApiJson<ResolveRequest>,
) -> Result<Response, ApiError> {
    resolve(&state, &principal, &key, &id, request, false).await
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
    let (data, has_more) = farthing_service::transfers::history(
        &state,
        &principal,
        &id,
        page.starting_after.as_deref(),
        limit,
    )?;
    Ok(axum::Json(TransferList {
        object: "list",
        data,
        has_more,
    }))
}
