//! API keys: `POST /v1/api_keys`, `GET /v1/api_keys`, `DELETE /v1/api_keys/{id}`.
//! A key is `fk_<scope>_<26 base32 chars>`; only its SHA-256 is stored, and the secret is
//! shown once, in the response that creates it.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::extract::IdempotencyKey;
use crate::extract::Key;
use farthing_products::ids::{decode_id, encode_id, IdKind};
use farthing_service::keys::issue_key;
use farthing_service::state::to_json;
use farthing_service::state::SharedState;
use farthing_store::util::rfc3339;
use farthing_store::{ApiKeyRecord, Changes, Scope};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    pub scope: Scope,
    /// For merchant and read-only keys: the merchant (`mer_…`). Merchant keys may omit it
    /// (their own merchant) but not name another.
    #[schema(pattern = r"^mer_[a-z2-7]{26}$")]
    pub merchant: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyView {
    pub id: String,
    pub object: &'static str,
    pub scope: Scope,
    pub merchant: Option<String>,
    pub created: String,
    pub revoked: bool,
    /// Only in the response that creates the key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

pub fn view(key: &ApiKeyRecord, secret: Option<String>) -> KeyView {
    KeyView {
        id: encode_id(IdKind::ApiKey, key.id),
        object: "api_key",
        scope: key.scope,
        merchant: key.merchant.map(|m| encode_id(IdKind::Merchant, m)),
        created: rfc3339(key.created_ns),
        revoked: key.revoked,
        secret,
    }
}

#[utoipa::path(post, path = "/v1/api_keys", operation_id = "api_keys.create", tag = "api_keys", request_body = CreateKey, params(("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry: the first response is stored and replayed")), responses((status = 201, description = "the key; `secret` is shown only here", body = KeyView), crate::error::WriteErrors))]
pub async fn create(
    State(state): State<SharedState>,
    Key(principal): Key,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(request, raw): ApiJson<CreateKey>,
) -> Result<Response, ApiError> {
    principal.require_write()?;
    let merchant = match &request.merchant {
        Some(text) => Some(decode_id(IdKind::Merchant, text).ok_or_else(|| {
            ApiError::invalid("merchant", "invalid_id", "merchant must be a mer_… id")
        })?),
        None => principal.merchant(),
    };
    if let Some(merchant) = merchant {
        if !principal.can_see(merchant) || state.store.merchant(merchant)?.is_none() {
            return Err(ApiError::not_found(Some("merchant"), "merchant"));
        }
    }
    match (request.scope, merchant) {
        (Scope::Operator, _) => principal.require_operator()?,
        (Scope::Merchant, None) => {
            return Err(ApiError::invalid(
                "merchant",
                "merchant_required",
                "a merchant key needs a merchant",
            ))
        }
        (Scope::ReadOnly, None) => principal.require_operator()?,
        (Scope::Customer, _) => {
            return Err(ApiError::invalid(
                "scope",
                "customer_scope",
                "customer tokens are issued by POST /v1/customers",
            ))
        }
        _ => {}
    }
    let state2 = state.clone();
    let response = state
        .idempotent(principal.tenant(), key, "api_keys", &raw, || async move {
            let (record, secret) = issue_key(request.scope, merchant);
            state2.remember_key(record.clone());
            let body = to_json(&view(&record, Some(secret)))?;
            Ok::<_, ApiError>((
                StatusCode::CREATED,
                body,
                Changes {
                    api_key: Some(record),
                    ..Changes::default()
                },
            ))
        })
        .await
        .map(crate::extract::reply)?;
    Ok(response)
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct KeyList {
    pub object: &'static str,
    pub data: Vec<KeyView>,
    pub has_more: bool,
}

#[utoipa::path(get, path = "/v1/api_keys", operation_id = "api_keys.list", tag = "api_keys", responses((status = 200, description = "keys visible to the caller", body = KeyList), crate::error::ReadErrors))]
pub async fn list(
    State(state): State<SharedState>,
    Key(principal): Key,
) -> Result<axum::Json<KeyList>, ApiError> {
    let data = state
        .store
        .api_keys()?
        .iter()
        .filter(|k| match principal.merchant() {
            Some(merchant) => k.merchant == Some(merchant),
            None => principal.is_operator() || principal.scope() == Scope::ReadOnly,
        })
        .map(|k| view(k, None))
        .collect();
    Ok(axum::Json(KeyList {
        object: "list",
        data,
        has_more: false,
    }))
}

#[utoipa::path(delete, path = "/v1/api_keys/{id}", operation_id = "api_keys.delete", tag = "api_keys", params(("id" = String, Path, description = "key_… id")), responses((status = 200, description = "the revoked key", body = KeyView), crate::error::WriteErrors))]
pub async fn revoke(
    State(state): State<SharedState>,
    Key(principal): Key,
    Path(id): Path<String>,
) -> Result<axum::Json<KeyView>, ApiError> {
    principal.require_write()?;
    let id =
        decode_id(IdKind::ApiKey, &id).ok_or_else(|| ApiError::not_found(Some("id"), "api key"))?;
    let mut key = state
        .store
        .api_keys()?
        .into_iter()
        .find(|k| k.id == id && principal.can_see(k.merchant.unwrap_or(0)))
        .ok_or_else(|| ApiError::not_found(Some("id"), "api key"))?;
    if key.scope == Scope::Operator || key.merchant.is_none() {
        principal.require_operator()?;
    }
    key.revoked = true;
    state
        .commit(Changes {
            api_key: Some(key.clone()),
            ..Changes::default()
        })
        .await?;
    state.remember_key(key.clone());
    Ok(axum::Json(view(&key, None)))
}
