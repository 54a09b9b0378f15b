//! Accounts: `POST /v1/accounts`, `GET /v1/accounts/{id}`, `GET /v1/accounts`.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use farthing_ledger::{
    Account, AccountFlags, AccountId, Amount, BatchResults, Operation, StoredAccount,
};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::extract::IdempotencyKey;
use crate::extract::Key;
use crate::routes::{parse_query, PageQuery};
use farthing_products::ids::{decode_id, encode_id, IdKind};
use farthing_products::money::{format_amount, format_signed, parse_amount};
use farthing_service::accounts::visible_account;
use farthing_service::assets::by_code;
use farthing_service::state::to_json;
use farthing_service::state::SharedState;
use farthing_store::util::derived_id;
use farthing_store::util::random_id;
use farthing_store::util::rfc3339;
use farthing_store::util::sha256;
use farthing_store::{AccountRecord, Changes};

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

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAccount {
    #[schema(pattern = r"^[A-Z0-9_]{1,15}$", example = "USD")]
    pub asset: String,
    #[serde(default)]
    pub flags: FlagsView,
    #[schema(pattern = r"^[0-9]{1,39}(\.[0-9]{1,18})?$", example = "0.0025")]
    pub overdraft_limit: Option<String>,
    /// Operator keys may create accounts for a merchant (`mer_…`).
    #[schema(pattern = r"^mer_[a-z2-7]{26}$")]
    pub owner: Option<String>,
    #[serde(default)]
    pub code: u16,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
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

fn check_metadata(metadata: &serde_json::Map<String, serde_json::Value>) -> Result<(), ApiError> {
    if metadata.len() > METADATA_KEYS_MAX {
        return Err(ApiError::invalid(
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
            return Err(ApiError::invalid(
                &format!("metadata.{key}"),
                "invalid_metadata",
                "metadata values are strings of at most 500 bytes; keys at most 40 bytes",
            ));
        }
    }
    Ok(())
}

#[utoipa::path(post, path = "/v1/accounts", operation_id = "accounts.create", tag = "accounts", request_body = CreateAccount, params(("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry: the first response is stored and replayed")), responses((status = 201, description = "the account", body = AccountView), crate::error::WriteErrors))]
pub async fn create(
    State(state): State<SharedState>,
    Key(principal): Key,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(request, raw): ApiJson<CreateAccount>,
) -> Result<Response, ApiError> {
    principal.require_write()?;
    let owner = match (&request.owner, principal.merchant()) {
        (Some(text), None) => {
            let merchant = decode_id(IdKind::Merchant, text).ok_or_else(|| {
                ApiError::invalid("owner", "invalid_id", "owner must be a mer_… id")
            })?;
            if state.store.merchant(merchant)?.is_none() {
                return Err(ApiError::not_found(Some("owner"), "merchant"));
            }
            Some(merchant)
        }
        (Some(text), Some(own)) if decode_id(IdKind::Merchant, text) == Some(own) => Some(own),
        (Some(_), Some(_)) => return Err(ApiError::not_found(Some("owner"), "merchant")),
        (None, merchant) => merchant,
    };
    let asset = by_code(&state, &request.asset, "asset")?;
    let overdraft_limit = match &request.overdraft_limit {
        Some(text) => parse_amount(text, asset.scale).map_err(|e| {
            ApiError::invalid(
                "overdraft_limit",
                "invalid_amount",
                format!("overdraft_limit {e}"),
            )
        })?,
        None => Amount::ZERO,
    };
    check_metadata(&request.metadata)?;
    let mut flags = AccountFlags::empty();
    if request.flags.debits_must_not_exceed_credits {
        flags = flags | AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS;
    }
    if request.flags.credits_must_not_exceed_debits {
        flags = flags | AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS;
    }
    let id = match &key {
        Some(key) => derived_id(principal.tenant(), key, "accounts", 0),
        None => random_id(),
    };
    let request_hash = sha256(&[&raw]);
    let state2 = state.clone();
    state
        .idempotent(principal.tenant(), key, "accounts", &raw, || async move {
            let account = Account {
                id: AccountId(id),
                asset: asset.id,
                code: request.code,
                flags,
                overdraft_limit,
                user_data: 0,
            };
            // The ledger first: if we crash before the metadata is stored, a retry with the same
            // Idempotency-Key finds the account (`exists`) and completes the record.
            let outcome = state2
                .engine
                .submit_async(Operation::CreateAccounts(vec![account]))?
                .await
                .map_err(|_| ApiError::unavailable("ledger stopped"))??;
            let BatchResults::Accounts(results) = outcome.results else {
                return Err(ApiError::internal("unexpected results"));
            };
            match results.first() {
                Some(r) if r.is_ok() || *r == farthing_ledger::AccountResult::Exists => {}
                Some(r) => return Err(ApiError::from_account(*r)),
                None => return Err(ApiError::internal("no result")),
            }
            let record = AccountRecord {
                id,
                owner,
                metadata: request.metadata,
                request_hash,
            };
            state2.remember_owner(id, owner);
            let stored = state2
                .engine
                .lookup_account(AccountId(id))
                .ok_or_else(|| ApiError::internal("account not visible after commit"))?;
            let body = to_json(&view(&state2, &stored, &record))?;
            Ok((
                StatusCode::CREATED,
                body,
                Changes {
                    account: Some(record),
                    ..Changes::default()
                },
            ))
        })
        .await
        .map(crate::extract::reply)
}

#[utoipa::path(get, path = "/v1/accounts/{id}", operation_id = "accounts.get", tag = "accounts", params(("id" = String, Path, description = "acct_… id")), responses((status = 200, description = "the account with its balances", body = AccountView), crate::error::ReadErrors))]
pub async fn get(
    State(state): State<SharedState>,
    Key(principal): Key,
    Path(id): Path<String>,
) -> Result<axum::Json<AccountView>, ApiError> {
    let (account, record) = visible_account(&state, &principal, &id, "id")?;
    Ok(axum::Json(view(&state, &account, &record)))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AccountList {
    pub object: &'static str,
    pub data: Vec<AccountView>,
    pub has_more: bool,
}

#[utoipa::path(get, path = "/v1/accounts", operation_id = "accounts.list", tag = "accounts", params(("limit" = Option<u32>, Query, description = "1 to 100, default 10"), ("starting_after" = Option<String>, Query, description = "cursor: the id of the last object of the previous page")), responses((status = 200, description = "a page of accounts", body = AccountList), crate::error::ReadErrors))]
pub async fn list(
    State(state): State<SharedState>,
    Key(principal): Key,
    RawQuery(query): RawQuery,
) -> Result<axum::Json<AccountList>, ApiError> {
    let page: PageQuery = parse_query(query.as_deref())?;
    let limit = page.limit(state.limits.page_limit_max)?;
    let after = match &page.starting_after {
        Some(text) => Some(
            visible_account(&state, &principal, text, "starting_after")?
                .0
                .id
                .0,
        ),
        None => None,
    };
    let (ids, has_more) = match principal.merchant() {
        Some(merchant) => state.store.accounts_of(Some(merchant), after, limit)?,
        None => state.store.all_accounts(after, limit)?,
    };
    let mut data = Vec::with_capacity(ids.len());
    for id in ids {
        if let (Some(record), Some(account)) = (
            state.store.account(id)?,
            state.engine.lookup_account(AccountId(id)),
        ) {
            data.push(view(&state, &account, &record));
        }
    }
    Ok(axum::Json(AccountList {
        object: "list",
        data,
        has_more,
    }))
}
