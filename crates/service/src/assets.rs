//! Assets as the services name them: by code (what requests say) or by id (what records
//! keep), through [`KnownAssets`], a lock-free copy of the ledger's asset list.

use farthing_engine::Engine;
use farthing_ledger::{Asset, AssetId};

use crate::error::ServiceError;
use crate::state::SharedState;

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
