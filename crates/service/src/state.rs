//! Shared state of the server: the engine, the store, the products, the caches of keys and
//! account owners; who is calling ([`Principal`], authenticated by [`AppState::authenticate`]);
//! and the locks of Idempotency-Keys (the rule is in [`crate::idempotency`]).

use farthing_products::ids::{CustomerId, MerchantId};
use foldhash::{HashMap, HashMapExt};
use std::num::NonZeroU32;
use std::sync::Arc;

use farthing_engine::Engine;
use farthing_store::util::{json_bytes, sha256};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use parking_lot::{Mutex, RwLock};

use crate::error::ServiceError;
use farthing_store::{ApiKeyRecord, Scope, Store};

/// A finished answer: its status code and JSON body, as first given (a retry under the same
/// Idempotency-Key gets exactly this).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

/// Where every API secret starts (`fk_op_…`, `fk_live_…`, ...).
pub use crate::keys::KEY_PREFIX;

/// Operational limits, each with its unit.
#[derive(Clone, Debug)]
pub struct Limits {
    pub request_body_bytes_max: usize,
    pub request_timeout_ms: u64,
    pub rate_limit_per_second: u32,
    pub page_limit_max: usize,
}

/// Everything the routes share.
pub struct AppState {
    pub engine: Arc<Engine>,
    pub store: Arc<Store>,
    /// Key hash → key, for every non-revoked key; the store is the truth, this is its cache.
    keys: RwLock<HashMap<[u8; 32], ApiKeyRecord>>,
    /// Every origin a publishable key in `keys` declares: what a CORS preflight, which carries
    /// no key, may be answered for.
    page_origins: RwLock<foldhash::HashSet<String>>,
    /// Hash of `FARTHING_ADMIN_KEY`, an operator key that lives only in the environment.
    admin_hash: Option<[u8; 32]>,
    idempotency_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Account → owner (0 = operator), cached from the store.
    owners: RwLock<HashMap<u128, u128>>,
    limiter: DefaultKeyedRateLimiter<u128>,
    pub asset_lock: tokio::sync::Mutex<()>,
    /// Assets copied out of the ledger for lock-free lookups by code and id.
    pub assets: crate::assets::KnownAssets,
    pub limits: Limits,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    pub products: crate::submit::Products,
    /// The keys that sign entitlement tokens and the pseudonym secret.
    pub signing: crate::signing::Signer,
}

pub type SharedState = Arc<AppState>;

impl AppState {
    pub fn new(
        engine: Arc<Engine>,
        store: Arc<Store>,
        admin_key: Option<&str>,
        limits: Limits,
        metrics: metrics_exporter_prometheus::PrometheusHandle,
        products: crate::submit::Products,
    ) -> Result<AppState, redb::Error> {
        let keys = store
            .api_keys()?
            .into_iter()
            .filter(|k| !k.revoked)
            .map(|k| (k.secret_hash, k))
            .collect();
        let page_origins = page_origins(&keys);
        let signing = crate::signing::Signer::open(&store, products.clock.now())?;
        let rate = NonZeroU32::new(limits.rate_limit_per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        Ok(AppState {
            engine,
            store,
            keys: RwLock::new(keys),
            page_origins: RwLock::new(page_origins),
            admin_hash: admin_key.map(|k| sha256(&[k.as_bytes()])),
            idempotency_locks: Mutex::new(HashMap::new()),
            owners: RwLock::new(HashMap::new()),
            limiter: RateLimiter::keyed(Quota::per_second(rate)),
            asset_lock: tokio::sync::Mutex::new(()),
            assets: Default::default(),
            limits,
            metrics,
            products,
            signing,
        })
    }

    pub fn has_operator_key(&self) -> bool {
        self.admin_hash.is_some()
            || self
                .keys
                .read()
                .values()
                .any(|k| k.scope == Scope::Operator)
    }

    pub fn remember_key(&self, key: ApiKeyRecord) {
        let publishable = key.scope == Scope::Publishable;
        let mut keys = self.keys.write();
        if key.revoked {
            keys.retain(|_, k| k.id != key.id);
        } else {
            keys.insert(key.secret_hash, key);
        }
        if publishable {
            // Rare (a publishable key made or revoked): the set is rebuilt, never counted.
            *self.page_origins.write() = page_origins(&keys);
        }
    }

    /// Whether a publishable key that is not revoked declares `origin` (exactly, as browsers
    /// send it): a CORS preflight from it may be answered. The request that follows is still
    /// checked against its own key's origins ([`Principal::check_origin`]).
    pub fn declares_origin(&self, origin: &str) -> bool {
        self.page_origins.read().contains(origin)
    }

    pub fn remember_owner(&self, account: u128, owner: Option<u128>) {
        self.owners.write().insert(account, owner.unwrap_or(0));
    }

    /// The owner of an account the API knows (0 = operator), or `None` if it has no record.
    pub fn owner_of(&self, account: u128) -> Result<Option<u128>, ServiceError> {
        if let Some(owner) = self.owners.read().get(&account) {
            return Ok(Some(*owner));
        }
        let Some(record) = self.store.account(account)? else {
            return Ok(None);
        };
        let owner = record.owner.unwrap_or(0);
        self.owners.write().insert(account, owner);
        Ok(Some(owner))
    }

    /// The owners of many accounts (0 = operator, `None` = no record), taking the cache's lock
    /// once for all of them rather than once each.
    pub fn owners_of(&self, accounts: &[u128]) -> Result<Vec<Option<u128>>, ServiceError> {
        let mut owners = Vec::with_capacity(accounts.len());
        let mut misses = Vec::new();
        {
            let cache = self.owners.read();
            for (i, account) in accounts.iter().enumerate() {
                let owner = cache.get(account).copied();
                if owner.is_none() {
                    misses.push(i);
                }
                owners.push(owner);
            }
        }
        for i in misses {
            owners[i] = self.owner_of(accounts[i])?;
        }
        Ok(owners)
    }

    /// The lock that serializes requests under one Idempotency-Key's record.
    pub(crate) fn key_lock(&self, record_key: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.idempotency_locks
            .lock()
            .entry(record_key.to_string())
            .or_default()
            .clone()
    }

    /// Forgets a key's lock (released by its caller) when nobody else holds or waits for it.
    pub(crate) fn forget_key_lock(&self, record_key: &str, lock: Arc<tokio::sync::Mutex<()>>) {
        let mut locks = self.idempotency_locks.lock();
        drop(lock);
        if locks
            .get(record_key)
            .is_some_and(|l| Arc::strong_count(l) == 1)
        {
            locks.remove(record_key);
        }
    }

    /// The caller behind an API secret (`fk_…`), rate-limited per key: unknown and revoked
    /// keys are refused alike.
    pub fn authenticate(&self, secret: &str) -> Result<Principal, ServiceError> {
        let hash = sha256(&[secret.as_bytes()]);
        let principal = if self.admin_hash == Some(hash) {
            Principal::operator()
        } else {
            let keys = self.keys.read();
            let key = keys
                .get(&hash)
                .ok_or_else(|| ServiceError::unauthenticated("unknown or revoked API key"))?;
            Principal::of_key(key)
        };
        if self.limiter.check_key(&principal.key_id).is_err() {
            return Err(ServiceError::rate_limited());
        }
        Ok(principal)
    }

    /// Writes metadata durably off the async threads (redb fsyncs on commit).
    pub async fn commit(&self, changes: farthing_store::Changes) -> Result<(), ServiceError> {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || store.apply(changes))
            .await
            .map_err(|e| ServiceError::internal(format!("store task failed: {e}")))??;
        Ok(())
    }
}

/// The origins the publishable keys among `keys` declare.
fn page_origins(keys: &HashMap<[u8; 32], ApiKeyRecord>) -> foldhash::HashSet<String> {
    keys.values()
        .filter(|k| k.scope == Scope::Publishable)
        .flat_map(|k| k.origins.iter().cloned())
        .collect()
}

pub fn to_json<T: serde::Serialize>(value: &T) -> Result<String, ServiceError> {
    let out =
        json_bytes(value).map_err(|e| ServiceError::internal(format!("encoding response: {e}")))?;
    // serde_json writes only valid UTF-8.
    String::from_utf8(out).map_err(|e| ServiceError::internal(format!("encoding response: {e}")))
}

/// Who is calling: an API key (operator, merchant, read-only) or a customer token. Made only
/// by [`AppState::authenticate`] (and [`Principal::operator`] for the server's own work), so a
/// principal always names a key the server knows.
#[derive(Clone, Debug)]
pub struct Principal {
    key_id: u128,
    scope: Scope,
    merchant: Option<MerchantId>,
    /// For customer tokens: the customer.
    customer: Option<CustomerId>,
    /// For publishable keys: the origins whose pages may use the key.
    origins: Vec<String>,
}

impl Principal {
    /// The operator itself (the environment's admin key, and the server's own jobs).
    pub fn operator() -> Principal {
        Principal {
            key_id: 0,
            scope: Scope::Operator,
            merchant: None,
            customer: None,
            origins: Vec::new(),
        }
    }

    fn of_key(key: &ApiKeyRecord) -> Principal {
        Principal {
            key_id: key.id.0,
            scope: key.scope,
            merchant: key.merchant,
            customer: key.customer,
            origins: key.origins.clone(),
        }
    }

    pub fn key_id(&self) -> u128 {
        self.key_id
    }

    pub fn scope(&self) -> Scope {
        self.scope
    }

    /// The merchant a merchant key, read-only key or customer token belongs to.
    pub fn merchant(&self) -> Option<MerchantId> {
        self.merchant
    }

    /// For customer tokens: the customer.
    pub fn customer(&self) -> Option<CustomerId> {
        self.customer
    }

    /// Whether the caller may read what concerns the whole platform (metrics, the ledger's
    /// totals): an operator key, or a read-only key of no merchant.
    pub fn reads_the_platform(&self) -> bool {
        match self.scope {
            Scope::Operator => true,
            Scope::ReadOnly => self.merchant.is_none(),
            Scope::Merchant | Scope::Customer | Scope::Publishable => false,
        }
    }

    pub fn is_customer_token(&self) -> bool {
        self.scope == Scope::Customer
    }

    /// The customer whose own token this is: what only a customer may do itself (tip,
    /// contribute, fund a hold, subscribe, buy an offer) asks this. `action` names it for the
    /// 403 ("a tip is given" → "a tip is given with the customer's own token").
    pub fn own_customer(&self, action: &str) -> Result<CustomerId, ServiceError> {
        self.customer
            .filter(|_| self.is_customer_token())
            .ok_or_else(|| {
                ServiceError::forbidden(&format!("{action} with the customer's own token"))
            })
    }

    /// A publishable key (`fk_pk_…`): it sees nothing through [`Principal::can_see`]; the few
    /// things it may do (read its merchant's offers, verify tokens for it) ask
    /// [`Principal::reads_public_of`].
    pub fn is_publishable(&self) -> bool {
        self.scope == Scope::Publishable
    }

    /// Whether the caller may read what merchant `owner` publishes (its offers): a key that can
    /// see the merchant's objects, or the merchant's publishable key.
    pub fn reads_public_of(&self, owner: MerchantId) -> bool {
        match self.scope {
            Scope::Publishable => self.merchant == Some(owner),
            _ => self.can_see(owner.0),
        }
    }

    /// A publishable key is used only from a page of one of its declared origins: the
    /// request's `Origin` must be one of them (exactly, as browsers send it). Other keys are
    /// not tied to origins.
    pub fn check_origin(&self, origin: Option<&str>) -> Result<(), ServiceError> {
        if self.scope != Scope::Publishable {
            return Ok(());
        }
        match origin {
            Some(origin) if self.origins.iter().any(|o| o == origin) => Ok(()),
            Some(origin) => Err(ServiceError::new(
                crate::ErrorKind::Forbidden,
                "origin_not_allowed",
                format!("this publishable key is not declared for the origin {origin}"),
            )
            .with_param("Origin")),
            None => Err(ServiceError::new(
                crate::ErrorKind::Forbidden,
                "origin_not_allowed",
                "a publishable key is used from a web page: the request has no Origin header",
            )
            .with_param("Origin")),
        }
    }

    /// The one visibility rule, for every object: whether the caller may see an object owned
    /// by merchant `owner` (0 = operator-owned) that belongs to `customer` when it belongs to
    /// one. A customer token sees only its own customer's objects; keys see by owner.
    pub fn can_see_object(&self, owner: MerchantId, customer: Option<CustomerId>) -> bool {
        match self.scope {
            Scope::Customer => customer.is_some() && self.customer == customer,
            _ => self.can_see(owner.0),
        }
    }

    /// Only the customer's own token may do this (consent is the customer's).
    pub fn require_customer(&self, customer: CustomerId) -> Result<(), ServiceError> {
        if self.scope != Scope::Customer || self.customer != Some(customer) {
            return Err(ServiceError::forbidden(
                "only the customer's own token can do this",
            ));
        }
        Ok(())
    }

    /// The tenant the caller's objects belong to: its merchant, or 0 for the operator.
    pub fn tenant(&self) -> u128 {
        self.merchant.map_or(0, |m| m.0)
    }

    /// The namespace of the caller's Idempotency-Keys for what a customer may start itself
    /// (charges, top-ups): its customer for a customer token, otherwise its tenant.
    pub fn key_namespace(&self) -> u128 {
        self.customer.map_or(self.tenant(), |c| c.0)
    }

    pub fn is_operator(&self) -> bool {
        self.scope == Scope::Operator
    }

    /// Whether the caller may see objects of `owner` (0 = operator-owned).
    pub fn can_see(&self, owner: u128) -> bool {
        match (self.scope, self.merchant) {
            (Scope::Customer | Scope::Publishable, _) => false,
            (Scope::Operator, _) | (Scope::ReadOnly, None) => true,
            (_, Some(merchant)) => owner == merchant.0,
            (Scope::Merchant, None) => false,
        }
    }

    /// Whether the caller may change objects it can see.
    pub fn require_write(&self) -> Result<(), ServiceError> {
        if self.scope == Scope::ReadOnly {
            return Err(ServiceError::forbidden("this API key is read-only"));
        }
        if self.scope == Scope::Publishable {
            return Err(ServiceError::forbidden(
                "a publishable key only reads offers and verifies entitlement tokens",
            ));
        }
        Ok(())
    }

    pub fn require_operator(&self) -> Result<(), ServiceError> {
        if !self.is_operator() {
            return Err(ServiceError::forbidden(
                "this endpoint needs an operator key",
            ));
        }
        Ok(())
    }
}
