//! Accounts: `POST /v1/accounts`, `GET /v1/accounts/{id}`, `GET /v1/accounts`.

use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::extract::IdempotencyKey;
use crate::extract::Key;
use crate::routes::{parse_query, PageQuery};
use farthing_service::accounts::{AccountView, FlagsView, NewAccount};
use farthing_service::state::SharedState;

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

#[utoipa::path(post, path = "/v1/accounts", operation_id = "accounts.create", tag = "accounts", request_body = CreateAccount, params(("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry: the first response is stored and replayed")), responses((status = 201, description = "the account", body = AccountView), crate::error::WriteErrors))]
pub async fn create(
    State(state): State<SharedState>,
    Key(principal): Key,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(request, raw): ApiJson<CreateAccount>,
) -> Result<Response, ApiError> {
    let new = NewAccount {
        asset: request.asset,
        flags: request.flags,
        overdraft_limit: request.overdraft_limit,
        owner: request.owner,
        code: request.code,
        metadata: request.metadata,
    };
    let reply = farthing_service::accounts::create(&state, &principal, key, &raw, new).await?;
    Ok(crate::extract::reply(reply))
}

#[utoipa::path(get, path = "/v1/accounts/{id}", operation_id = "accounts.get", tag = "accounts", params(("id" = String, Path, description = "acct_… id")), responses((status = 200, description = "the account with its balances", body = AccountView), crate::error::ReadErrors))]
pub async fn get(
    State(state): State<SharedState>,
    Key(principal): Key,
    Path(id): Path<String>,
) -> Result<axum::Json<AccountView>, ApiError> {
    Ok(axum::Json(farthing_service::accounts::get(
        &state, &principal, &id,
    )?))
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
    let (data, has_more) = farthing_service::accounts::list(
        &state,
        &principal,
        page.starting_after.as_deref(),
        limit,
    )?;
    Ok(axum::Json(AccountList {
        object: "list",
        data,
        has_more,
    }))
}
