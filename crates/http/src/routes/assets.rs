//! Assets: `POST /v1/assets` (operator), `GET /v1/assets`. The API names an asset by its code.

use axum::extract::State;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::extract::IdempotencyKey;
use crate::extract::Key;
use farthing_service::assets::AssetView;
use farthing_service::state::SharedState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAsset {
    #[schema(pattern = r"^[A-Z0-9_]{1,15}$", example = "USD")]
    pub code: String,
    pub scale: u8,
}

#[utoipa::path(post, path = "/v1/assets", operation_id = "assets.create", tag = "assets", request_body = CreateAsset, params(("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry: the first response is stored and replayed")), responses((status = 201, description = "the asset", body = AssetView), crate::error::WriteErrors))]
pub async fn create(
    State(state): State<SharedState>,
    Key(principal): Key,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(request, raw): ApiJson<CreateAsset>,
) -> Result<Response, ApiError> {
    let reply = farthing_service::assets::create(
        &state,
        &principal,
        key,
        &raw,
        &request.code,
        request.scale,
    )
    .await?;
    Ok(crate::extract::reply(reply))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AssetList {
    pub object: &'static str,
    pub data: Vec<AssetView>,
    pub has_more: bool,
}

#[utoipa::path(get, path = "/v1/assets", operation_id = "assets.list", tag = "assets", responses((status = 200, description = "every asset", body = AssetList), crate::error::ReadErrors))]
pub async fn list(State(state): State<SharedState>, Key(_principal): Key) -> axum::Json<AssetList> {
    axum::Json(AssetList {
        object: "list",
        data: farthing_service::assets::list(&state),
        has_more: false,
    })
}
