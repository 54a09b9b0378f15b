//! Assets: creating one (the operator) and listing them ([`create`], [`list`]); and assets as
//! the services name them: by code (what requests say) or by id (what records keep), through
//! [`KnownAssets`], a lock-free copy of the ledger's asset list.

use farthing_engine::Engine;
use farthing_ledger::{Asset, AssetCode, AssetId, BatchResults, Operation};
use serde::Serialize;

use crate::error::ServiceError;
use crate::state::{to_json, Principal, Reply, SharedState};
use farthing_store::Changes;

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

/// Creates the asset `code` with `scale` decimal places (operator only), at most once per
/// Idempotency-Key. The ledger assigns nothing: ids are the next free one, in order.
pub async fn create(
    state: &SharedState,
    principal: &Principal,
    key: Option<String>,
    request: &[u8],
    code: &str,
    scale: u8,
) -> Result<Reply, ServiceError> {
    principal.require_operator()?;
    let code = AssetCode::new(code)
        .map_err(|e| ServiceError::invalid("code", "invalid_code", e.to_string()))?;
    if scale > farthing_ledger::ASSET_SCALE_MAX {
        return Err(ServiceError::invalid(
            "scale",
            "scale_out_of_range",
            "scale must be 0 to 18",
        ));
    }
    state
        .idempotent(principal.tenant(), key, "assets", request, || async move {
            // Ids are assigned in order; one creation at a time keeps them unique.
            let _guard = state.asset_lock.lock().await;
            let next = state
                .engine
                .read(|l| l.assets().iter().map(|a| a.id.0).max().unwrap_or(0))
                + 1;
            let asset = Asset {
                id: AssetId(next),
                code,
                scale,
            };
            let outcome = state
                .engine
                .submit_async(Operation::CreateAssets(vec![asset]))?
                .await
                .map_err(|_| ServiceError::unavailable("ledger stopped"))??;
            let BatchResults::Assets(results) = outcome.results else {
                return Err(ServiceError::internal("unexpected results"));
            };
            match results.first() {
                Some(r) if r.is_ok() => Ok((201_u16, to_json(&view(&asset))?, Changes::default())),
                Some(r) => Err(ServiceError::from_asset(*r)),
                None => Err(ServiceError::internal("no result")),
            }
        })
        .await
}

/// Every asset.
pub fn list(state: &SharedState) -> Vec<AssetView> {
    state.engine.read(|l| l.assets().iter().map(view).collect())
}

/// The asset with this code, or 404 naming `param`.
pub fn by_code(state: &SharedState, code: &str, param: &str) -> Result<Asset, ServiceError> {
    state
        .assets
        .find(&state.engine, |a| a.code.as_str() == code)
        .ok_or_else(|| ServiceError::not_found(Some(param), "asset"))
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

/// The asset with this id (one a record names, so it exists: a miss is an internal error).
pub fn asset_by_id(state: &SharedState, id: u32) -> Result<Asset, ServiceError> {
    state
        .assets
        .find(&state.engine, |a| a.id == AssetId(id))
        .ok_or_else(|| ServiceError::internal("asset missing"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use farthing_engine::Config;
    use farthing_ledger::{AssetCode, Operation};

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
