//! Ledger accounts as the API knows them: creating one ([`create`]), reading ([`get`]) and
//! listing them ([`list`]). An account is visible to the caller who owns it (see
//! [`Principal::can_see`]).

use farthing_ledger::{
    Account, AccountFlags, AccountId, Amount, BatchResults, Operation, StoredAccount,
};
use farthing_products::ids::MerchantId;
use farthing_products::ids::{decode_id, encode_id, IdKind};
use farthing_products::money::{format_amount, format_signed, parse_amount};
use farthing_store::util::derived_id;
use farthing_store::util::random_id;
use farthing_store::util::rfc3339;
use farthing_store::util::sha256;
use farthing_store::{AccountRecord, Changes};
use serde::{Deserialize, Serialize};

use crate::assets::by_code;
use crate::error::ServiceError;
use crate::state::{to_json, Principal, Reply, SharedState};

/// Metadata limits: keys, key length and value length, in entries and bytes.
const METADATA_KEYS_MAX: usize = 50;
const METADATA_KEY_BYTES_MAX: usize = 40;
const METADATA_VALUE_BYTES_MAX: usize = 500;

#[derive(Debug, Default, Deserialize, Serialize, Clone, Copy, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlagsView {
    /// A prepaid wallet: may never go below zero (or below -overdraft_limit).
    #[serde(default)]
    pub debits_must_not_exceed_credits: bool,
    #[serde(default)]
    pub credits_must_not_exceed_debits: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Balances {
    /// credits_posted − debits_posted.
    pub posted: String,
    /// credits_pending − debits_pending.
    pub pending: String,
    /// What the account can still pay: credits_posted + overdraft_limit − debits_posted − debits_pending.
    pub available: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AccountView {
    pub id: String,
    pub object: &'static str,
    pub asset: String,
    pub owner: Option<String>,
    pub code: u16,
    pub flags: FlagsView,
    pub overdraft_limit: String,
    pub balances: Balances,
    pub debits_posted: String,
    pub credits_posted: String,
    pub debits_pending: String,
    pub credits_pending: String,
    #[schema(value_type = Object)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub created: String,
}

pub fn view(state: &SharedState, account: &StoredAccount, record: &AccountRecord) -> AccountView {
    let asset = state.engine.read(|l| l.asset_by_id(account.asset));
    let (code, scale) = asset.map_or((String::new(), 0), |a| (a.code.to_string(), a.scale));
    let b = account.balances;
    let f = |a: Amount| format_amount(a, scale);
    let debits = b.debits_posted.0.saturating_add(b.debits_pending.0);
    let allowed = b.credits_posted.0.saturating_add(account.overdraft_limit.0);
    AccountView {
        id: encode_id(IdKind::Account, account.id.0),
        object: "account",
        asset: code,
        owner: record.owner.map(|m| encode_id(IdKind::Merchant, m)),
        code: account.code,
        flags: FlagsView {
            debits_must_not_exceed_credits: account
                .flags
                .contains(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS),
            credits_must_not_exceed_debits: account
                .flags
                .contains(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS),
        },
        overdraft_limit: f(account.overdraft_limit),
        balances: Balances {
            posted: format_signed(b.credits_posted.0, b.debits_posted.0, scale),
            pending: format_signed(b.credits_pending.0, b.debits_pending.0, scale),
            available: format_signed(allowed, debits, scale),
        },
        debits_posted: f(b.debits_posted),
        credits_posted: f(b.credits_posted),
        debits_pending: f(b.debits_pending),
        credits_pending: f(b.credits_pending),
        metadata: record.metadata.clone(),
        created: rfc3339(account.timestamp.0),
    }
}

/// A new account, as asked for: the asset's code, amounts as decimal text, the owner as a
/// `mer_…` id (operator keys only; a merchant's accounts are its own).
#[derive(Debug)]
pub struct NewAccount {
    pub asset: String,
    pub flags: FlagsView,
    pub overdraft_limit: Option<String>,
    pub owner: Option<String>,
    pub code: u16,
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

fn check_metadata(
    metadata: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), ServiceError> {
    if metadata.len() > METADATA_KEYS_MAX {
        return Err(ServiceError::invalid(
            "metadata",
            "metadata_too_large",
            "at most 50 metadata keys",
        ));
    }
    for (key, value) in metadata {
        let fits = key.len() <= METADATA_KEY_BYTES_MAX
            && value
                .as_str()
                .is_some_and(|v| v.len() <= METADATA_VALUE_BYTES_MAX);
        if !fits {
            return Err(ServiceError::invalid(
                &format!("metadata.{key}"),
                "invalid_metadata",
                "metadata values are strings of at most 500 bytes; keys at most 40 bytes",
            ));
        }
    }
    Ok(())
}

/// Creates a ledger account and its record, at most once per Idempotency-Key (the account's
/// id derives from the key, so a retry after a crash finds the account the ledger made).
pub async fn create(
    state: &SharedState,
    principal: &Principal,
    key: Option<String>,
    request: &[u8],
    new: NewAccount,
) -> Result<Reply, ServiceError> {
    principal.require_write()?;
    let owner = match (&new.owner, principal.merchant()) {
        (Some(text), None) => {
            let merchant = MerchantId::decode(text).ok_or_else(|| {
                ServiceError::invalid("owner", "invalid_id", "owner must be a mer_… id")
            })?;
            if state.store.merchant(merchant.0)?.is_none() {
                return Err(ServiceError::not_found(Some("owner"), "merchant"));
            }
            Some(merchant)
        }
        (Some(text), Some(own)) if MerchantId::decode(text) == Some(own) => Some(own),
        (Some(_), Some(_)) => return Err(ServiceError::not_found(Some("owner"), "merchant")),
        (None, merchant) => merchant,
    };
    let asset = by_code(state, &new.asset, "asset")?;
    let overdraft_limit = match &new.overdraft_limit {
        Some(text) => parse_amount(text, asset.scale).map_err(|e| {
            ServiceError::invalid(
                "overdraft_limit",
                "invalid_amount",
                format!("overdraft_limit {e}"),
            )
        })?,
        None => Amount::ZERO,
    };
    check_metadata(&new.metadata)?;
    let mut flags = AccountFlags::empty();
    if new.flags.debits_must_not_exceed_credits {
        flags = flags | AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS;
    }
    if new.flags.credits_must_not_exceed_debits {
        flags = flags | AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS;
    }
    let id = match &key {
        Some(key) => derived_id(principal.tenant(), key, "accounts", 0),
        None => random_id(),
    };
    let request_hash = sha256(&[request]);
    state
        .idempotent(
            principal.tenant(),
            key,
            "accounts",
            request,
            || async move {
                let account = Account {
                    id: AccountId(id),
                    asset: asset.id,
                    code: new.code,
                    flags,
                    overdraft_limit,
                    user_data: 0,
                };
                // The ledger first: if we crash before the metadata is stored, a retry with the same
                // Idempotency-Key finds the account (`exists`) and completes the record.
                let outcome = state
                    .engine
                    .submit_async(Operation::CreateAccounts(vec![account]))?
                    .await
                    .map_err(|_| ServiceError::unavailable("ledger stopped"))??;
                let BatchResults::Accounts(results) = outcome.results else {
                    return Err(ServiceError::internal("unexpected results"));
                };
                match results.first() {
                    Some(r) if r.is_ok() || *r == farthing_ledger::AccountResult::Exists => {}
                    Some(r) => return Err(ServiceError::from_account(*r)),
                    None => return Err(ServiceError::internal("no result")),
                }
                let record = AccountRecord {
                    id,
                    owner: owner.map(|m| m.0),
                    metadata: new.metadata,
                    request_hash,
                };
                state.remember_owner(id, owner.map(|m| m.0));
                let stored = state
                    .engine
                    .lookup_account(AccountId(id))
                    .ok_or_else(|| ServiceError::internal("account not visible after commit"))?;
                let body = to_json(&view(state, &stored, &record))?;
                Ok((
                    201_u16,
                    body,
                    Changes {
                        account: Some(record),
                        ..Changes::default()
                    },
                ))
            },
        )
        .await
}

/// A visible account with its balances, or 404 naming `id`.
pub fn get(
    state: &SharedState,
    principal: &Principal,
    id: &str,
) -> Result<AccountView, ServiceError> {
    let (account, record) = visible_account(state, principal, id, "id")?;
    Ok(view(state, &account, &record))
}

/// A page of the caller's accounts (every account for the operator), after the account
/// `starting_after`; and whether more follow.
pub fn list(
    state: &SharedState,
    principal: &Principal,
    starting_after: Option<&str>,
    limit: usize,
) -> Result<(Vec<AccountView>, bool), ServiceError> {
    let after = match starting_after {
        Some(text) => Some(
            visible_account(state, principal, text, "starting_after")?
                .0
                .id
                .0,
        ),
        None => None,
    };
    let (ids, has_more) = match principal.merchant() {
        Some(merchant) => state.store.accounts_of(Some(merchant.0), after, limit)?,
        None => state.store.all_accounts(after, limit)?,
    };
    let mut data = Vec::with_capacity(ids.len());
    for id in ids {
        if let (Some(record), Some(account)) = (
            state.store.account(id)?,
            state.engine.lookup_account(AccountId(id)),
        ) {
            data.push(view(state, &account, &record));
        }
    }
    Ok((data, has_more))
}

/// A visible account and its record, or 404 naming `param`.
pub fn visible_account(
    state: &SharedState,
    principal: &Principal,
    id: &str,
    param: &str,
) -> Result<(StoredAccount, AccountRecord), ServiceError> {
    let missing = || ServiceError::not_found(Some(param), "account");
    let id = decode_id(IdKind::Account, id).ok_or_else(missing)?;
    let record = state.store.account(id)?.ok_or_else(missing)?;
    if !principal.can_see(record.owner.unwrap_or(0)) {
        return Err(missing());
    }
    let account = state
        .engine
        .lookup_account(AccountId(id))
        .ok_or_else(missing)?;
    Ok((account, record))
}

/// A visible account for moving money: the owner comes from the in-memory cache, so the
/// transfer path reads no metadata from disk.
pub fn account_for_transfer(
    state: &SharedState,
    principal: &Principal,
    id: &str,
    param: &str,
) -> Result<StoredAccount, ServiceError> {
    let missing = || ServiceError::not_found(Some(param), "account");
    let id = decode_id(IdKind::Account, id).ok_or_else(missing)?;
    let owner = state.owner_of(id)?.ok_or_else(missing)?;
    if !principal.can_see(owner) {
        return Err(missing());
    }
    state
        .engine
        .lookup_account(AccountId(id))
        .ok_or_else(missing)
}
