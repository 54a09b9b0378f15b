//! API keys: `POST /v1/api_keys`, `GET /v1/api_keys`, `DELETE /v1/api_keys/{id}`.
//! A key is `fk_<scope>_<26 base32 chars>`; only its SHA-256 is stored, and the secret is
//! shown once, in the response that creates it. A publishable key (`fk_pk_…`, safe in a web
//! page) is made here too, with the origins whose pages may use it.

use crate::extract::IdPath;
use axum::extract::State;
use axum::response::Response;
use farthing_products::ids::ApiKeyId;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::extract::IdempotencyKey;
use crate::extract::Key;
use farthing_service::keys::{KeyView, NewKey, Scope};
use farthing_service::state::SharedState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    pub scope: Scope,
    /// For merchant and read-only keys: the merchant (`mer_…`). Merchant keys may omit it
    /// (their own merchant) but not name another.
    #[schema(pattern = r"^mer_[a-z2-7]{26}$")]
    pub merchant: Option<String>,
    /// For publishable keys (`scope: publishable`, required there and refused elsewhere): the
    /// origins whose pages may use the key, as browsers send them in `Origin`
    /// (`https://news.example`, `http://localhost:3000`).
    #[schema(max_items = 20, example = json!(["https://news.example"]))]
    pub origins: Option<Vec<String>>,
}

#[utoipa::path(post, path = "/v1/api_keys", operation_id = "api_keys.create", tag = "api_keys", request_body = CreateKey, params(("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry: the first response is stored and replayed")), responses((status = 201, description = "the key; `secret` is shown only here", body = KeyView), crate::error::WriteErrors))]
pub async fn create(
    State(state): State<SharedState>,
    Key(principal): Key,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(request, raw): ApiJson<CreateKey>,
) -> Result<Response, ApiError> {
    let reply = farthing_service::keys::create(
        &state,
        &principal,
        key,
        &raw,
        NewKey {
            scope: request.scope,
            merchant: request.merchant.as_deref(),
            origins: request.origins.as_deref(),
        },
    )
    .await?;
    Ok(crate::extract::reply(reply))
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
    Ok(axum::Json(KeyList {
        object: "list",
        data: farthing_service::keys::list(&state, &principal)?,
        has_more: false,
    }))
}

#[utoipa::path(delete, path = "/v1/api_keys/{id}", operation_id = "api_keys.delete", tag = "api_keys", params(("id" = String, Path, description = "key_… id")), responses((status = 200, description = "the revoked key", body = KeyView), crate::error::WriteErrors))]
pub async fn revoke(
    State(state): State<SharedState>,
    Key(principal): Key,
    IdPath(id): IdPath<ApiKeyId>,
) -> Result<axum::Json<KeyView>, ApiError> {
    Ok(axum::Json(
        farthing_service::keys::revoke(&state, &principal, id).await?,
    ))
}
