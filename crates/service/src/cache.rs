//! Read-through caches of the product records a charge reads (customer, allowances, merchant
//! settings, which merchants exist): the store is the truth, and only this process writes it,
//! so every write path forgets the entry it changed after its commit. A charge concurrent with
//! such a write may see the state just before it, as it could without a cache.

use farthing_products::ids::{CustomerId, MerchantId};
use foldhash::{HashMap, HashSet};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::error::ServiceError;
use farthing_store::records::{
    AllowanceRecord, CustomerRecord, MerchantSettings, ALLOWANCES, ALLOWANCES_BY_CUSTOMER,
    CUSTOMERS, MERCHANT_SETTINGS,
};
use farthing_store::Store;

/// Allowances one customer may hold (active or revoked).
pub const ALLOWANCES_MAX: usize = 1000;

/// Entries are only inserted if nothing was forgotten since the store was read: a read that
/// raced a write (read, write commits, forget, insert) would otherwise cache the old value.
#[derive(Default)]
pub struct Cache {
    generation: std::sync::atomic::AtomicU64,
    customers: RwLock<HashMap<u128, Arc<CustomerRecord>>>,
    allowances: RwLock<HashMap<CustomerId, Arc<Vec<AllowanceRecord>>>>,
    settings: RwLock<HashMap<MerchantId, Arc<MerchantSettings>>>,
    merchants: RwLock<HashSet<MerchantId>>,
}

impl Cache {
    pub fn customer(
        &self,
        store: &Store,
        id: u128,
    ) -> Result<Option<Arc<CustomerRecord>>, ServiceError> {
        if let Some(c) = self.customers.read().get(&id) {
            return Ok(Some(Arc::clone(c)));
        }
        let generation = self.generation();
        let Some(record) = store.record::<CustomerRecord>(CUSTOMERS, id)? else {
            return Ok(None);
        };
        let record = Arc::new(record);
        self.insert_if_current(generation, &self.customers, id, &record);
        Ok(Some(record))
    }

    pub fn forget_customer(&self, id: u128) {
        self.bump();
        self.customers.write().remove(&id);
    }

    fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn bump(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    fn insert_if_current<K: std::hash::Hash + Eq, T>(
        &self,
        generation: u64,
        map: &RwLock<HashMap<K, Arc<T>>>,
        key: K,
        value: &Arc<T>,
    ) {
        let mut map = map.write();
        if self.generation() == generation {
            map.insert(key, Arc::clone(value));
        }
    }

    /// Every allowance the customer granted, revoked ones included.
    pub fn allowances(
        &self,
        store: &Store,
        customer: CustomerId,
    ) -> Result<Arc<Vec<AllowanceRecord>>, ServiceError> {
        if let Some(a) = self.allowances.read().get(&customer) {
            return Ok(Arc::clone(a));
        }
        let generation = self.generation();
        let (ids, _) = store.indexed(ALLOWANCES_BY_CUSTOMER, customer.0, None, ALLOWANCES_MAX)?;
        let mut list = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(a) = store.record::<AllowanceRecord>(ALLOWANCES, id)? {
                list.push(a);
            }
        }
        let list = Arc::new(list);
        self.insert_if_current(generation, &self.allowances, customer, &list);
        Ok(list)
    }

    pub fn forget_allowances(&self, customer: CustomerId) {
        self.bump();
        self.allowances.write().remove(&customer);
    }

    /// A merchant's settings, or the defaults.
    pub fn settings(
        &self,
        store: &Store,
        merchant: MerchantId,
    ) -> Result<Arc<MerchantSettings>, ServiceError> {
        if let Some(s) = self.settings.read().get(&merchant) {
            return Ok(Arc::clone(s));
        }
        let generation = self.generation();
        let settings = Arc::new(
            store
                .record(MERCHANT_SETTINGS, merchant.0)?
                .unwrap_or_else(|| MerchantSettings::new(merchant)),
        );
        self.insert_if_current(generation, &self.settings, merchant, &settings);
        Ok(settings)
    }

    pub fn forget_settings(&self, merchant: MerchantId) {
        self.bump();
        self.settings.write().remove(&merchant);
    }

    /// Whether the merchant exists (merchants are never deleted, so only "yes" is cached).
    pub fn merchant_exists(
        &self,
        store: &Store,
        merchant: MerchantId,
    ) -> Result<bool, ServiceError> {
        if self.merchants.read().contains(&merchant) {
            return Ok(true);
        }
        let exists = store.merchant(merchant.0)?.is_some();
        if exists {
            self.merchants.write().insert(merchant);
        }
        Ok(exists)
    }
}
