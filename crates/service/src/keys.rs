//! API key secrets: `fk_<scope>_<26 base32 chars>`. Only a key's SHA-256 is stored; the
//! secret exists once, in what [`issue_key`] or [`issue_token`] returns.

use data_encoding::BASE32_NOPAD;

use farthing_store::util::now_ns;
use farthing_store::util::random_id;
use farthing_store::util::sha256;
use farthing_store::{ApiKeyRecord, Scope};

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
pub fn issue_key(scope: Scope, merchant: Option<u128>) -> (ApiKeyRecord, String) {
    issue_token(scope, merchant, None)
}

/// A new key or customer token record and its secret.
pub fn issue_token(
    scope: Scope,
    merchant: Option<u128>,
    customer: Option<u128>,
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
