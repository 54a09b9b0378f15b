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

/// What a key may do; requests name it (`operator`, `merchant`, `read_only`, `customer`,
/// `publishable`).
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
        Scope::Publishable => "pk",
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
        id: ApiKeyId(random_id()),
        secret_hash: sha256(&[secret.as_bytes()]),
        scope,
        merchant,
        customer,
        created_ns: now_ns(),
        revoked: false,
        origins: Vec::new(),
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
    /// For publishable keys: the origins whose pages may use it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origins: Option<Vec<String>>,
    /// Only in the response that creates the key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

pub fn view(key: &ApiKeyRecord, secret: Option<String>) -> KeyView {
    KeyView {
        id: encode_id(IdKind::ApiKey, key.id.0),
        object: "api_key",
        scope: key.scope,
        merchant: key.merchant.map(|m| encode_id(IdKind::Merchant, m.0)),
        created: rfc3339(key.created_ns),
        revoked: key.revoked,
        origins: (key.scope == Scope::Publishable).then(|| key.origins.clone()),
        secret,
    }
}

/// The most origins a publishable key declares.
pub const ORIGINS_MAX: usize = 20;
/// The longest origin, in bytes.
pub const ORIGIN_BYTES_MAX: usize = 200;

/// A key as asked for: its scope, its merchant (a `mer_…` id), and for publishable keys the
/// origins whose pages may use it.
pub struct NewKey<'a> {
    pub scope: Scope,
    pub merchant: Option<&'a str>,
    pub origins: Option<&'a [String]>,
}

/// Issues a key of `scope` for `merchant` (a `mer_…` id; merchant keys may omit it, meaning
/// their own, but not name another), at most once per Idempotency-Key. Operator keys and
/// global read-only keys need an operator; customer tokens come from the customer endpoints;
/// a publishable key needs a merchant and its declared origins.
pub async fn create(
    state: &SharedState,
    principal: &Principal,
    key: Option<String>,
    request: &[u8],
    new: NewKey<'_>,
) -> Result<Reply, ServiceError> {
    let NewKey {
        scope,
        merchant,
        origins,
    } = new;
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
        (Scope::Publishable, None) => {
            return Err(ServiceError::invalid(
                "merchant",
                "merchant_required",
                "a publishable key needs a merchant",
            ))
        }
        _ => {}
    }
    let origins = match (scope, origins) {
        (Scope::Publishable, Some(origins)) => declared_origins(origins)?,
        (Scope::Publishable, None) => {
            return Err(ServiceError::invalid(
                "origins",
                "origins_required",
                "a publishable key needs the origins (https://news.example) whose pages use it",
            ))
        }
        (_, Some(_)) => {
            return Err(ServiceError::invalid(
                "origins",
                "origins_not_allowed",
                "only publishable keys declare origins",
            ))
        }
        (_, None) => Vec::new(),
    };
    state
        .idempotent(
            principal.tenant(),
            key,
            "api_keys",
            request,
            || async move {
                let (mut record, secret) = issue_key(scope, merchant);
                record.origins = origins;
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

/// Origins as a browser sends them in `Origin`: `scheme://host[:port]`, http or https, with
/// nothing after (no path, query, fragment or credentials); each is kept in that serialized
/// form (lower-case host, default port left out) so it compares equal to what browsers send.
pub fn declared_origins(origins: &[String]) -> Result<Vec<String>, ServiceError> {
    if origins.is_empty() || origins.len() > ORIGINS_MAX {
        return Err(ServiceError::invalid(
            "origins",
            "invalid_origins",
            format!("a publishable key declares 1 to {ORIGINS_MAX} origins"),
        ));
    }
    let mut out = Vec::with_capacity(origins.len());
    for (i, text) in origins.iter().enumerate() {
        let invalid = || {
            ServiceError::invalid(
                &format!("origins.{i}"),
                "invalid_origin",
                "an origin is scheme://host[:port] with http or https and nothing after it",
            )
        };
        if text.len() > ORIGIN_BYTES_MAX {
            return Err(invalid());
        }
        let url = url::Url::parse(text).map_err(|_| invalid())?;
        let bare = url.path() == "/"
            && url.query().is_none()
            && url.fragment().is_none()
            && url.username().is_empty()
            && url.password().is_none()
            && !text.trim_end_matches('/').ends_with(['?', '#']);
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() || !bare {
            return Err(invalid());
        }
        let origin = url.origin().ascii_serialization();
        if !out.contains(&origin) {
            out.push(origin);
        }
    }
    Ok(out)
}

/// The keys the caller may see: a merchant's own, or all of them for the operator and global
/// read-only keys.
pub fn list(state: &SharedState, principal: &Principal) -> Result<Vec<KeyView>, ServiceError> {
    if principal.is_publishable() || principal.is_customer_token() {
        return Err(ServiceError::forbidden("this key cannot list API keys"));
    }
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
        .find(|k| k.id == ApiKeyId(id) && principal.can_see(k.merchant.map_or(0, |m| m.0)))
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
