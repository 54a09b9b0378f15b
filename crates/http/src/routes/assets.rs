//! Assets: `POST /v1/assets` (operator), `GET /v1/assets`. The API names an asset by its code.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use farthing_ledger::{Asset, AssetCode, AssetId, BatchResults, Operation};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::extract::IdempotencyKey;
use crate::extract::Key;
use farthing_service::state::to_json;
use farthing_service::state::SharedState;
use farthing_store::Changes;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAsset {
    #[schema(pattern = r"^[A-Z0-9_]{1,15}$", example = "USD")]
    pub code: String,
    pub scale: u8,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AssetView {
    pub object: &'static str,
    pub code: String,
    pub scale: u8,
}

pub fn view(asset: &Asset) -> AssetView {
    AssetView {
        object: "asset",
        code: asset.code.to_string(),
        scale: asset.scale,
    }
}

#[utoipa::path(post, path = "/v1/assets", operation_id = "assets.create", tag = "assets", request_body = CreateAsset, params(("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry: the first response is stored and replayed")), responses((status = 201, description = "the asset", body = AssetView), crate::error::WriteErrors))]
pub async fn create(
    State(state): State<SharedState>,
    Key(principal): Key,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(request, raw): ApiJson<CreateAsset>,
) -> Result<Response, ApiError> {
    principal.require_operator()?;
    let code = AssetCode::new(&request.code)
        .map_err(|e| ApiError::invalid("code", "invalid_code", e.to_string()))?;
    if request.scale > farthing_ledger::ASSET_SCALE_MAX {
        return Err(ApiError::invalid(
            "scale",
            "scale_out_of_range",
            "scale must be 0 to 18",
        ));
    }
    let state2 = state.clone();
    state
        .idempotent(principal.tenant(), key, "assets", &raw, || async move {
            // Ids are assigned in order; one creation at a time keeps them unique.
            let _guard = state2.asset_lock.lock().await;
            let next = state2
                .engine
                .read(|l| l.assets().iter().map(|a| a.id.0).max().unwrap_or(0))
                + 1;
            let asset = Asset {
                id: AssetId(next),
                code,
                scale: request.scale,
            };
            let outcome = state2
                .engine
                .submit_async(Operation::CreateAssets(vec![asset]))?
                .await
                .map_err(|_| ApiError::unavailable("ledger stopped"))??;
            let BatchResults::Assets(results) = outcome.results else {
                return Err(ApiError::internal("unexpected results"));
            };
            match results.first() {
                Some(r) if r.is_ok() => Ok((
                    StatusCode::CREATED,
                    to_json(&view(&asset))?,
                    Changes::default(),
                )),
                Some(r) => Err(ApiError::from_asset(*r)),
                None => Err(ApiError::internal("no result")),
            }
        })
        .await
        .map(crate::extract::reply)
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AssetList {
    pub object: &'static str,
    pub data: Vec<AssetView>,
    pub has_more: bool,
}

#[utoipa::path(get, path = "/v1/assets", operation_id = "assets.list", tag = "assets", responses((status = 200, description = "every asset", body = AssetList), crate::error::ReadErrors))]
pub async fn list(State(state): State<SharedState>, Key(_principal): Key) -> axum::Json<AssetList> {
    let data = state.engine.read(|l| l.assets().iter().map(view).collect());
    axum::Json(AssetList {
        object: "list",
        data,
        has_more: false,
    })
}
