//! Merchants: `POST /v1/merchants` (operator), `GET /v1/merchants/{id}`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::extract::IdempotencyKey;
use crate::extract::Key;
use farthing_products::ids::{decode_id, encode_id, IdKind};
use farthing_service::state::to_json;
use farthing_service::state::SharedState;
use farthing_store::util::now_ns;
use farthing_store::util::random_id;
use farthing_store::util::rfc3339;
use farthing_store::{Changes, MerchantRecord};

/// The longest merchant name, in bytes.

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateMerchant {
    pub name: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MerchantView {
    pub id: String,
    pub object: &'static str,
    pub name: String,
    pub created: String,
}

fn view(m: &MerchantRecord) -> MerchantView {
    MerchantView {
        id: encode_id(IdKind::Merchant, m.id),
        object: "merchant",
        name: m.name.clone(),
        created: rfc3339(m.created_ns),
    }
}

#[utoipa::path(post, path = "/v1/merchants", operation_id = "merchants.create", tag = "merchants", request_body = CreateMerchant, params(("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry: the first response is stored and replayed")), responses((status = 201, description = "the merchant", body = MerchantView), crate::error::WriteErrors))]
pub async fn create(
    State(state): State<SharedState>,
    Key(principal): Key,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(request, raw): ApiJson<CreateMerchant>,
) -> Result<Response, ApiError> {
    principal.require_operator()?;
    crate::routes::check_name(&request.name)?;
    state
        .idempotent(principal.tenant(), key, "merchants", &raw, || async move {
            let record = MerchantRecord {
                id: random_id(),
                name: request.name,
                created_ns: now_ns(),
            };
            let body = to_json(&view(&record))?;
            Ok((
                StatusCode::CREATED,
                body,
                Changes {
                    merchant: Some(record),
                    ..Changes::default()
                },
            ))
        })
        .await
        .map(crate::extract::reply)
}

#[utoipa::path(get, path = "/v1/merchants/{id}", operation_id = "merchants.get", tag = "merchants", params(("id" = String, Path, description = "mer_… id")), responses((status = 200, description = "the merchant", body = MerchantView), crate::error::ReadErrors))]
pub async fn get(
    State(state): State<SharedState>,
    Key(principal): Key,
    Path(id): Path<String>,
) -> Result<axum::Json<MerchantView>, ApiError> {
    let id = decode_id(IdKind::Merchant, &id)
        .ok_or_else(|| ApiError::not_found(Some("id"), "merchant"))?;
    let merchant = state
        .store
        .merchant(id)?
        .filter(|m| principal.can_see(m.id))
        .ok_or_else(|| ApiError::not_found(Some("id"), "merchant"))?;
    Ok(axum::Json(view(&merchant)))
}
