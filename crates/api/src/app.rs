//! Shared state of the server and the pieces every route uses: who is calling ([`Principal`]),
//! JSON bodies with field-naming errors ([`ApiJson`]), and idempotency for requests that are
//! not ledger transfers ([`AppState::idempotent`]).

use foldhash::{HashMap, HashMapExt};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use farthing_engine::Engine;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use parking_lot::{Mutex, RwLock};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::store::{ApiKeyRecord, IdempotencyRecord, Scope, Store};

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
    /// Hash of `FARTHING_ADMIN_KEY`, an operator key that lives only in the environment.
    admin_hash: Option<[u8; 32]>,
    idempotency_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Account → owner (0 = operator), cached from the store.
    owners: RwLock<HashMap<u128, u128>>,
    limiter: DefaultKeyedRateLimiter<u128>,
    pub asset_lock: tokio::sync::Mutex<()>,
    /// Assets copied out of the ledger for lock-free lookups by code and id.
    pub assets: crate::service::assets::KnownAssets,
    pub limits: Limits,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    pub products: crate::products::Products,
}

pub type SharedState = Arc<AppState>;

pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

pub fn rfc3339(ns: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

pub fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// A fresh random 128-bit id (never 0 or `u128::MAX`, which the ledger reserves).
/// A new id whose high 64 bits are `now_ns` and low 64 bits random: ids made later sort later,
/// so records keyed by them append to their B-tree instead of rewriting a random leaf each
/// (the charge path's store writes). The id tells when its object was made.
pub fn time_ordered_id(now_ns: u64) -> u128 {
    (u128::from(now_ns) << 64) | u128::from(rand::random::<u64>() | 1)
}

pub fn random_id() -> u128 {
    loop {
        let id: u128 = rand::random();
        if id != 0 && id != u128::MAX {
            return id;
        }
    }
}

/// Every transfer endpoint derives its ids with this one purpose, so an Idempotency-Key reused on
/// another transfer endpoint, or on another hold, names the same ledger transfer and gets
/// `exists_with_different_fields` (409) rather than running as a new request.
pub const TRANSFERS_PURPOSE: &str = "transfers";

/// The first id of a run of `count` consecutive transfer ids (a batch or a chain): derived from
/// the Idempotency-Key when there is one (so a retry names the same transfers), else random.
/// One hash per request, not per transfer. The start lies in `1..=2^127`, so the run never
/// reaches `u128::MAX` or wraps to 0; two runs overlap with probability about
/// `count / 2^127`.
pub fn id_run_start(tenant: u128, idempotency_key: Option<&str>) -> u128 {
    let seed = match idempotency_key {
        Some(key) => derived_id(tenant, key, TRANSFERS_PURPOSE, 0),
        None => rand::random(),
    };
    (seed >> 1) + 1
}

/// A ledger id derived from a tenant's Idempotency-Key, so that a retry (even after a crash
/// between commit and response) names the same ledger object and the ledger answers `exists`.
pub fn derived_id(tenant: u128, idempotency_key: &str, purpose: &str, index: u64) -> u128 {
    let hash = sha256(&[
        &tenant.to_le_bytes(),
        idempotency_key.as_bytes(),
        purpose.as_bytes(),
        &index.to_le_bytes(),
    ]);
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hash[..16]);
    match u128::from_le_bytes(bytes) {
        0 => 1,
        u128::MAX => u128::MAX - 1,
        id => id,
    }
}

/// The most characters an Idempotency-Key may have.
pub const IDEMPOTENCY_KEY_LEN_MAX: usize = 255;

pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .ok()
        .filter(|t| !t.is_empty() && t.len() <= IDEMPOTENCY_KEY_LEN_MAX)
        .ok_or_else(|| {
            ApiError::invalid(
                "Idempotency-Key",
                "invalid_idempotency_key",
                "Idempotency-Key must be 1 to 255 visible ASCII characters",
            )
        })?;
    Ok(Some(text.to_string()))
}

impl AppState {
    pub fn new(
        engine: Arc<Engine>,
        store: Arc<Store>,
        admin_key: Option<&str>,
        limits: Limits,
        metrics: metrics_exporter_prometheus::PrometheusHandle,
        products: crate::products::Products,
    ) -> Result<AppState, redb::Error> {
        let keys = store
            .api_keys()?
            .into_iter()
            .filter(|k| !k.revoked)
            .map(|k| (k.secret_hash, k))
            .collect();
        let rate = NonZeroU32::new(limits.rate_limit_per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        Ok(AppState {
            engine,
            store,
            keys: RwLock::new(keys),
            admin_hash: admin_key.map(|k| sha256(&[k.as_bytes()])),
            idempotency_locks: Mutex::new(HashMap::new()),
            owners: RwLock::new(HashMap::new()),
            limiter: RateLimiter::keyed(Quota::per_second(rate)),
            asset_lock: tokio::sync::Mutex::new(()),
            assets: Default::default(),
            limits,
            metrics,
            products,
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
        let mut keys = self.keys.write();
        if key.revoked {
            keys.retain(|_, k| k.id != key.id);
        } else {
            keys.insert(key.secret_hash, key);
        }
    }

    pub fn remember_owner(&self, account: u128, owner: Option<u128>) {
        self.owners.write().insert(account, owner.unwrap_or(0));
    }

    /// The owner of an account the API knows (0 = operator), or `None` if it has no record.
    pub fn owner_of(&self, account: u128) -> Result<Option<u128>, ApiError> {
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
    pub fn owners_of(&self, accounts: &[u128]) -> Result<Vec<Option<u128>>, ApiError> {
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

    /// Runs `run` at most once per (tenant, Idempotency-Key): a retry gets the stored response,
    /// the same key with a different request gets 409, and a concurrent duplicate waits for the
    /// first and then gets its response. `run` returns the status, the body, and the changes to
    /// store in the same transaction as the idempotency record.
    pub async fn idempotent<F, Fut>(
        &self,
        tenant: u128,
        key: Option<String>,
        endpoint: &str,
        request: &[u8],
        run: F,
    ) -> Result<Response, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<
            Output = Result<(StatusCode, String, crate::store::Changes), ApiError>,
        >,
    {
        let Some(key) = key else {
            let (status, body, changes) = run().await?;
            self.commit(changes).await?;
            return Ok(json_response(status, body));
        };
        let record_key = idempotency_record_key(tenant, &key);
        let request_hash = sha256(&[endpoint.as_bytes(), request]);
        let lock = self
            .idempotency_locks
            .lock()
            .entry(record_key.clone())
            .or_default()
            .clone();
        let _guard = lock.lock().await;
        let result = async {
            if self.key_used_by_transfers(tenant, &key) {
                return Err(key_used_elsewhere());
            }
            if let Some(previous) = self.store.idempotency(&record_key)? {
                if previous.request_hash != request_hash {
                    return Err(ApiError::idempotency(
                        "this Idempotency-Key was already used with different parameters",
                    ));
                }
                let status = StatusCode::from_u16(previous.status).unwrap_or(StatusCode::OK);
                return Ok(json_response(status, previous.body));
            }
            let (status, body, mut changes) = run().await?;
            changes.idempotency = Some((
                record_key.clone(),
                IdempotencyRecord {
                    request_hash,
                    status: status.as_u16(),
                    body: body.clone(),
                    created_ns: now_ns(),
                },
            ));
            self.commit(changes).await?;
            Ok(json_response(status, body))
        }
        .await;
        drop(_guard);
        let mut locks = self.idempotency_locks.lock();
        if locks
            .get(&record_key)
            .is_some_and(|l| Arc::strong_count(l) == 1)
        {
            locks.remove(&record_key);
        }
        result
    }

    /// Whether a transfer endpoint already used this Idempotency-Key (its first transfer id is
    /// in the ledger).
    fn key_used_by_transfers(&self, tenant: u128, key: &str) -> bool {
        let first = id_run_start(tenant, Some(key));
        self.engine
            .lookup_transfer(farthing_ledger::TransferId(first))
            .is_some()
    }

    /// Refuses an Idempotency-Key on a transfer endpoint when a non-transfer endpoint (one with
    /// a stored response) already used it: one namespace of keys per tenant, as in Stripe.
    pub fn check_key_for_transfers(
        &self,
        tenant: u128,
        key: &Option<String>,
    ) -> Result<(), ApiError> {
        match key {
            Some(key)
                if self
                    .store
                    .idempotency(&idempotency_record_key(tenant, key))?
                    .is_some() =>
            {
                Err(key_used_elsewhere())
            }
            _ => Ok(()),
        }
    }

    /// Writes metadata durably off the async threads (redb fsyncs on commit).
    pub async fn commit(&self, changes: crate::store::Changes) -> Result<(), ApiError> {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || store.apply(changes))
            .await
            .map_err(|e| ApiError::internal(format!("store task failed: {e}")))??;
        Ok(())
    }
}

/// The store key of an Idempotency-Key's record: per tenant, the same for every endpoint (the
/// endpoint is part of the request fingerprint, so reuse elsewhere is a conflict).
fn idempotency_record_key(tenant: u128, key: &str) -> String {
    format!("{tenant:032x}:{key}")
}

fn key_used_elsewhere() -> ApiError {
    ApiError::idempotency("this Idempotency-Key was already used for a different request")
}

pub fn json_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// Room reserved for a JSON document before it is written: most answers and records fit, so
/// the buffer is not regrown (and copied) several times on the way, as from serde_json's 128
/// bytes.
pub(crate) const JSON_BYTES_RESERVED: usize = 1024;

/// `value` as JSON, written into [`JSON_BYTES_RESERVED`] bytes reserved up front.
pub(crate) fn json_bytes<T: serde::Serialize>(value: &T) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(JSON_BYTES_RESERVED);
    serde_json::to_writer(&mut out, value)?;
    Ok(out)
}

pub fn to_json<T: serde::Serialize>(value: &T) -> Result<String, ApiError> {
    let out =
        json_bytes(value).map_err(|e| ApiError::internal(format!("encoding response: {e}")))?;
    // serde_json writes only valid UTF-8.
    String::from_utf8(out).map_err(|e| ApiError::internal(format!("encoding response: {e}")))
}

/// Who is calling.
#[derive(Clone, Debug)]
pub struct Principal {
    pub key_id: u128,
    pub scope: Scope,
    pub merchant: Option<u128>,
    /// For customer tokens: the customer.
    pub customer: Option<u128>,
}

impl Principal {
    /// The tenant the caller's objects belong to: its merchant, or 0 for the operator.
    pub fn tenant(&self) -> u128 {
        self.merchant.unwrap_or(0)
    }

    pub fn is_operator(&self) -> bool {
        self.scope == Scope::Operator
    }

    /// Whether the caller may see objects of `owner` (0 = operator-owned).
    pub fn can_see(&self, owner: u128) -> bool {
        match (self.scope, self.merchant) {
            (Scope::Customer, _) => false,
            (Scope::Operator, _) | (Scope::ReadOnly, None) => true,
            (_, Some(merchant)) => owner == merchant,
            (Scope::Merchant, None) => false,
        }
    }

    /// Whether the caller may change objects it can see.
    pub fn require_write(&self) -> Result<(), ApiError> {
        if self.scope == Scope::ReadOnly {
            return Err(ApiError::forbidden("this API key is read-only"));
        }
        Ok(())
    }

    pub fn require_operator(&self) -> Result<(), ApiError> {
        if !self.is_operator() {
            return Err(ApiError::forbidden("this endpoint needs an operator key"));
        }
        Ok(())
    }
}

impl<S> FromRequestParts<S> for Principal
where
    SharedState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    /// Operator, merchant and read-only keys; customer tokens only reach the endpoints that
    /// take a [`Caller`].
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Principal, ApiError> {
        let principal = authenticate(parts, &SharedState::from_ref(state))?;
        if principal.scope == Scope::Customer {
            return Err(ApiError::forbidden(
                "a customer token can only call the customer endpoints",
            ));
        }
        Ok(principal)
    }
}

/// The request's checked `Idempotency-Key` (see [`idempotency_key`]), read in place: a
/// `HeaderMap` extractor would copy every header of the request to get at it.
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<IdempotencyKey, ApiError> {
        idempotency_key(&parts.headers).map(IdempotencyKey)
    }
}

/// Any authenticated caller, customer tokens included (the customer-facing endpoints).
pub struct Caller(pub Principal);

impl<S> FromRequestParts<S> for Caller
where
    SharedState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Caller, ApiError> {
        Ok(Caller(authenticate(parts, &SharedState::from_ref(state))?))
    }
}

fn authenticate(parts: &Parts, state: &SharedState) -> Result<Principal, ApiError> {
    let header = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::unauthenticated("missing Authorization: Bearer <API key>"))?;
    let secret = header
        .strip_prefix("Bearer ")
        .filter(|s| s.starts_with(crate::service::keys::KEY_PREFIX))
        .ok_or_else(|| ApiError::unauthenticated("Authorization must be `Bearer fk_…`"))?;
    let hash = sha256(&[secret.as_bytes()]);
    let principal = if state.admin_hash == Some(hash) {
        Principal {
            key_id: 0,
            scope: Scope::Operator,
            merchant: None,
            customer: None,
        }
    } else {
        let keys = state.keys.read();
        let key = keys
            .get(&hash)
            .ok_or_else(|| ApiError::unauthenticated("unknown or revoked API key"))?;
        Principal {
            key_id: key.id,
            scope: key.scope,
            merchant: key.merchant,
            customer: key.customer,
        }
    };
    if state.limiter.check_key(&principal.key_id).is_err() {
        return Err(ApiError::rate_limited());
    }
    Ok(principal)
}

/// Parses JSON into `T`; an error names the field (`amount`, `transfers[2].amount`) with
/// `prefix` in front, or `body` when the JSON itself is malformed.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8], prefix: &str) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    // Strict: a struct is accepted only as a JSON object, never as an array by position.
    let value = serde_path_to_error::deserialize(crate::strict::Strict(&mut deserializer))
        .map_err(|error| {
            let path = error.path().to_string();
            let message = error.inner().to_string();
            // A missing field is reported at its parent; name the field itself.
            let field = message
                .split('`')
                .nth(1)
                .filter(|_| message.starts_with("missing field `"));
            // "?" is where serde_path_to_error could not tell (malformed JSON): the body itself.
            let mut param = if path == "." || path == "?" {
                String::new()
            } else {
                path
            };
            if let Some(field) = field {
                if !param.is_empty() {
                    param.push('.');
                }
                param.push_str(field);
            }
            let param = match (prefix, param.is_empty()) {
                ("", true) => "body".to_string(),
                (prefix, true) => prefix.trim_end_matches('.').to_string(),
                (prefix, false) => format!("{prefix}{param}"),
            };
            ApiError::invalid(
                &param,
                "invalid_json",
                format!("invalid request body: {message}"),
            )
        })?;
    // Only whitespace may follow the value.
    deserializer.end().map_err(|error| {
        let param = prefix.trim_end_matches('.');
        ApiError::invalid(
            if param.is_empty() { "body" } else { param },
            "invalid_json",
            format!("invalid request body: {error}"),
        )
    })?;
    Ok(value)
}

/// A JSON body whose errors name the field: malformed JSON, unknown, missing or mistyped
/// fields all become 400 with `param`.
pub struct ApiJson<T>(pub T, pub axum::body::Bytes);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<ApiJson<T>, ApiError> {
        let RawBody(bytes) = RawBody::from_request(request, state).await?;
        let value = parse_json_body(&bytes)?;
        Ok(ApiJson(value, bytes))
    }
}

/// Parses a whole request body as JSON into `T`; errors name the field.
pub fn parse_json_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    T::deserialize(crate::strict::Strict(&mut deserializer))
        .and_then(|value| deserializer.end().map(|()| value))
        .map_err(|error| {
            let message = error.to_string();
            let param = message
                .split('`')
                .nth(1)
                .filter(|_| message.contains("field"))
                .unwrap_or("body")
                .to_string();
            ApiError::invalid(
                &param,
                "invalid_json",
                format!("invalid request body: {message}"),
            )
        })
}

/// The raw request body, with a too-large body refused as 413 naming `body`.
pub struct RawBody(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<RawBody, ApiError> {
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError {
                        status: StatusCode::PAYLOAD_TOO_LARGE,
                        ..ApiError::invalid("body", "body_too_large", "request body is too large")
                    }
                } else {
                    ApiError::invalid("body", "body_unreadable", rejection.body_text())
                }
            })?;
        Ok(RawBody(bytes))
    }
}
