//! Assets: `POST /v1/assets` (operator), `GET /v1/assets`. The API names an asset by its code.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use farthing_engine::Engine;
use farthing_ledger::{Asset, AssetCode, AssetId, BatchResults, Operation};
use serde::{Deserialize, Serialize};

use crate::app::{to_json, ApiJson, IdempotencyKey, Principal, SharedState};
use crate::error::ApiError;
use crate::store::Changes;

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

/// The asset with this code, or 404 naming `param`.
pub fn by_code(state: &SharedState, code: &str, param: &str) -> Result<Asset, ApiError> {
    state
        .assets
        .find(&state.engine, |a| a.code.as_str() == code)
        .ok_or_else(|| ApiError::not_found(Some(param), "asset"))
}

/// Assets copied out of the ledger, so that per-request lookups (every charge names its asset)
/// do not take the ledger's lock: the writer holds it while it applies a group, and a tokio
/// worker waiting for it stalls every connection it serves. An asset never changes and is never
/// removed once created, so the copy is never wrong, only possibly incomplete: a miss asks the
/// ledger and, if the asset is there, copies the list again.
#[derive(Default)]
pub struct KnownAssets(parking_lot::RwLock<Vec<Asset>>);

impl KnownAssets {
    pub fn find(&self, engine: &Engine, matches: impl Fn(&Asset) -> bool) -> Option<Asset> {
        if let Some(asset) = self.0.read().iter().find(|a| matches(a)) {
            return Some(*asset);
        }
        let (asset, all) = engine.read(|ledger| {
            let asset = ledger.assets().iter().find(|a| matches(a)).copied()?;
            Some((asset, ledger.assets().to_vec()))
        })?;
        *self.0.write() = all;
        Some(asset)
    }
}

#[utoipa::path(post, path = "/v1/assets", operation_id = "assets.create", tag = "assets", request_body = CreateAsset, params(("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry: the first response is stored and replayed")), responses((status = 201, description = "the asset", body = AssetView), crate::error::WriteErrors))]
pub async fn create(
    State(state): State<SharedState>,
    principal: Principal,
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
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AssetList {
    pub object: &'static str,
    pub data: Vec<AssetView>,
    pub has_more: bool,
}

#[utoipa::path(get, path = "/v1/assets", operation_id = "assets.list", tag = "assets", responses((status = 200, description = "every asset", body = AssetList), crate::error::ReadErrors))]
pub async fn list(
    State(state): State<SharedState>,
    _principal: Principal,
) -> axum::Json<AssetList> {
    let data = state.engine.read(|l| l.assets().iter().map(view).collect());
    axum::Json(AssetList {
        object: "list",
        data,
        has_more: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use farthing_engine::Config;

    fn create(engine: &Engine, id: u32, code: &str, scale: u8) {
        let asset = Asset {
            id: AssetId(id),
            code: AssetCode::new(code).unwrap(),
            scale,
        };
        engine.submit(Operation::CreateAssets(vec![asset])).unwrap();
    }

    #[test]
    fn known_assets_find_assets_created_after_the_copy() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(Config::new(dir.path())).unwrap();
        let known = KnownAssets::default();
        assert_eq!(known.find(&engine, |a| a.code.as_str() == "USD"), None);
        create(&engine, 1, "USD", 2);
        let usd = known.find(&engine, |a| a.code.as_str() == "USD").unwrap();
        assert_eq!((usd.id, usd.scale), (AssetId(1), 2));
        // A second asset is not in the copy yet: the miss reads the ledger.
        create(&engine, 2, "EUR", 6);
        let eur = known.find(&engine, |a| a.id == AssetId(2)).unwrap();
        assert_eq!((eur.code.as_str(), eur.scale), ("EUR", 6));
        assert_eq!(known.0.read().len(), 2);
        assert_eq!(known.find(&engine, |a| a.code.as_str() == "GBP"), None);
        engine.shutdown();
    }
}
