//! API keys: creating ([`create`]), listing ([`list`]) and revoking ([`revoke`]) them. A key's
//! secret is `fk_<scope>_<26 base32 chars>`; only its SHA-256 is stored, and the secret exists
//! once, in what [`issue_key`] or [`issue_token`] returns (and so in the answer that creates it).

use data_encoding::BASE32_NOPAD;
use farthing_products::ids::ApiKeyId;
use farthing_products::ids::{CustomerId, MerchantId};
use serde::Serialize;

use crate::error::ServiceError;
use crate::state::{to_json, Principal, Reply, SharedState};
use farthing_products::ids::{encode_id, IdKind};
use farthing_store::util::now_ns;
use farthing_store::util::random_id;
use farthing_store::util::rfc3339;
use farthing_store::util::sha256;
use farthing_store::{ApiKeyRecord, Changes};

/// What a key may do; requests name it (`operator`, `merchant`, `read_only`, `customer`).
pub use farthing_store::Scope;

/// Every secret starts with this, so leaked keys are easy to recognise and scan for.
pub const KEY_PREFIX: &str = "fk_";

/// A new random secret for `scope`.
pub fn new_secret(scope: Scope) -> String {
    let tag = match scope {
        Scope::Operator => "op",
        Scope::Merchant => "mk",
        Scope::ReadOnly => "ro",
        Scope::Customer => "cu",
    };
    let random: [u8; 20] = rand::random();
    format!(
        "{KEY_PREFIX}{tag}_{}",
        BASE32_NOPAD.encode(&random).to_ascii_lowercase()
    )
}

/// A new key record and its secret.
pub fn issue_key(scope: Scope, merchant: Option<MerchantId>) -> (ApiKeyRecord, String) {
    issue_token(scope, merchant, None)
}

/// A new key or customer token record and its secret.
pub fn issue_token(
    scope: Scope,
    merchant: Option<MerchantId>,
    customer: Option<CustomerId>,
) -> (ApiKeyRecord, String) {
    let secret = new_secret(scope);
    let record = ApiKeyRecord {
        id: random_id(),
        secret_hash: sha256(&[secret.as_bytes()]),
        scope,
        merchant,
        customer,
        created_ns: now_ns(),
        revoked: false,
    };
    (record, secret)
}

/// Without an operator key (stored, or given by `FARTHING_ADMIN_KEY`), creates one and returns
/// its secret, to be shown once; `None` when there is one already. Call it only when the start
/// can no longer fail on its inputs, or the printed key is lost with the failed start.
pub async fn mint_operator_key(
    state: &crate::state::AppState,
) -> Result<Option<String>, crate::ServiceError> {
    if state.has_operator_key() {
        return Ok(None);
    }
    let (record, secret) = issue_key(Scope::Operator, None);
    state
        .commit(farthing_store::Changes {
            api_key: Some(record.clone()),
            ..farthing_store::Changes::default()
        })
        .await?;
    state.remember_key(record);
    Ok(Some(secret))
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
        merchant: key.merchant.map(|m| encode_id(IdKind::Merchant, m.0)),
        created: rfc3339(key.created_ns),
        revoked: key.revoked,
        secret,
    }
}

/// Issues a key of `scope` for `merchant` (a `mer_…` id; merchant keys may omit it, meaning
/// their own, but not name another), at most once per Idempotency-Key. Operator keys and
/// global read-only keys need an operator; customer tokens come from the customer endpoints.
pub async fn create(
    state: &SharedState,
    principal: &Principal,
    key: Option<String>,
    request: &[u8],
    scope: Scope,
    merchant: Option<&str>,
) -> Result<Reply, ServiceError> {
    principal.require_write()?;
    let merchant = match merchant {
        Some(text) => Some(MerchantId::decode(text).ok_or_else(|| {
            ServiceError::invalid("merchant", "invalid_id", "merchant must be a mer_… id")
        })?),
        None => principal.merchant(),
    };
    if let Some(merchant) = merchant {
        if !principal.can_see(merchant.0) || state.store.merchant(merchant.0)?.is_none() {
            return Err(ServiceError::not_found(Some("merchant"), "merchant"));
        }
    }
    match (scope, merchant) {
        (Scope::Operator, _) => principal.require_operator()?,
        (Scope::Merchant, None) => {
            return Err(ServiceError::invalid(
                "merchant",
                "merchant_required",
                "a merchant key needs a merchant",
            ))
        }
        (Scope::ReadOnly, None) => principal.require_operator()?,
        (Scope::Customer, _) => {
            return Err(ServiceError::invalid(
                "scope",
                "customer_scope",
                "customer tokens are issued by POST /v1/customers",
            ))
        }
        _ => {}
    }
    state
        .idempotent(
            principal.tenant(),
            key,
            "api_keys",
            request,
            || async move {
                let (record, secret) = issue_key(scope, merchant);
                state.remember_key(record.clone());
                let body = to_json(&view(&record, Some(secret)))?;
                Ok((
                    201_u16,
                    body,
                    Changes {
                        api_key: Some(record),
                        ..Changes::default()
                    },
                ))
            },
        )
        .await
}

/// The keys the caller may see: a merchant's own, or all of them for the operator and global
/// read-only keys.
pub fn list(state: &SharedState, principal: &Principal) -> Result<Vec<KeyView>, ServiceError> {
    Ok(state
        .store
        .api_keys()?
        .iter()
        .filter(|k| match principal.merchant() {
            Some(merchant) => k.merchant == Some(merchant),
            None => principal.is_operator() || principal.scope() == Scope::ReadOnly,
        })
        .map(|k| view(k, None))
        .collect())
}

/// Revokes the key `id` (a `key_…` id the caller may see); operator keys and global keys only
/// by an operator. Returns the revoked key.
pub async fn revoke(
    state: &SharedState,
    principal: &Principal,
    id: ApiKeyId,
) -> Result<KeyView, ServiceError> {
    principal.require_write()?;
    let missing = || ServiceError::not_found(Some("id"), "api key");
    let id = id.0;
    let mut key = state
        .store
        .api_keys()?
        .into_iter()
        .find(|k| k.id == id && principal.can_see(k.merchant.map_or(0, |m| m.0)))
        .ok_or_else(missing)?;
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
    Ok(view(&key, None))
}
