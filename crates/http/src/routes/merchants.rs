//! Merchants: `POST /v1/merchants` (operator), `GET /v1/merchants/{id}`.

use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;

use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::extract::IdempotencyKey;
use crate::extract::Key;
use farthing_products::ids::{decode_id, IdKind};
use farthing_service::merchants::MerchantView;
use farthing_service::state::SharedState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateMerchant {
    pub name: String,
}

#[utoipa::path(post, path = "/v1/merchants", operation_id = "merchants.create", tag = "merchants", request_body = CreateMerchant, params(("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry: the first response is stored and replayed")), responses((status = 201, description = "the merchant", body = MerchantView), crate::error::WriteErrors))]
pub async fn create(
    State(state): State<SharedState>,
    Key(principal): Key,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(request, raw): ApiJson<CreateMerchant>,
) -> Result<Response, ApiError> {
    let reply =
        farthing_service::merchants::create(&state, &principal, key, &raw, request.name).await?;
    Ok(crate::extract::reply(reply))
}

#[utoipa::path(get, path = "/v1/merchants/{id}", operation_id = "merchants.get", tag = "merchants", params(("id" = String, Path, description = "mer_… id")), responses((status = 200, description = "the merchant", body = MerchantView), crate::error::ReadErrors))]
pub async fn get(
    State(state): State<SharedState>,
    Key(principal): Key,
    Path(id): Path<String>,
) -> Result<axum::Json<MerchantView>, ApiError> {
    let id = decode_id(IdKind::Merchant, &id)
        .ok_or_else(|| ApiError::not_found(Some("id"), "merchant"))?;
    Ok(axum::Json(farthing_service::merchants::get(
        &state, &principal, id,
    )?))
}
