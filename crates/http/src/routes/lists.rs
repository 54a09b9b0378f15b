//! Lists of product objects (one query shape for all: `limit`, `starting_after`, and the
//! filters `customer`, `merchant`, `status`, `resource`, `created_gte`, `created_lt`), and
//! reads by id of the objects made as part of something else (plans, disputes, top-ups,
//! refunds, allowances). The rules are in [`farthing_service::lists`] and
//! [`farthing_service::reads`].

use crate::extract::IdPath;
use axum::extract::{RawQuery, State};
use farthing_products::ids::AllowanceId;
use farthing_products::ids::DisputeId;
use farthing_products::ids::IdKind;
use farthing_products::ids::PlanId;
use farthing_products::ids::RefundId;
use farthing_products::ids::TopupId;
use farthing_products::ids::{CustomerId, MerchantId};
use farthing_service::lists::{self, ListQuery, Page};
use farthing_service::reads;
use farthing_service::state::SharedState;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::extract::Caller;
use crate::routes::parse_query;

/// The query of every list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    limit: Option<usize>,
    starting_after: Option<String>,
    customer: Option<String>,
    merchant: Option<String>,
    status: Option<String>,
    resource: Option<String>,
    /// Unix seconds.
    created_gte: Option<u64>,
    /// Unix seconds.
    created_lt: Option<u64>,
}

/// The list's query checked: a bad `limit`, id or time is a 400 naming it.
fn list_query(
    state: &SharedState,
    query: Option<&str>,
    kind: IdKind,
) -> Result<ListQuery, ApiError> {
    let p: ListParams = parse_query(query)?;
    let page = crate::routes::PageQuery {
        limit: p.limit,
        starting_after: None,
    };
    let ns = |param: &str, seconds: Option<u64>| {
        seconds
            .map(|s| {
                s.checked_mul(1_000_000_000).ok_or_else(|| {
                    ApiError::invalid(param, "invalid_time", format!("{param} is too far ahead"))
                })
            })
            .transpose()
    };
    Ok(ListQuery {
        limit: page.limit(state.limits.page_limit_max)?,
        starting_after: ListQuery::id(kind, "starting_after", p.starting_after.as_deref())?,
        customer: ListQuery::id(IdKind::Customer, "customer", p.customer.as_deref())?
            .map(CustomerId),
        merchant: ListQuery::id(IdKind::Merchant, "merchant", p.merchant.as_deref())?
            .map(MerchantId),
        status: p.status,
        resource: p.resource,
        created_gte_ns: ns("created_gte", p.created_gte)?,
        created_lt_ns: ns("created_lt", p.created_lt)?,
    })
}

/// A list as the documents describe it (the handlers answer a [`Page`] of the same shape).
macro_rules! list_schema {
    ($name:ident, $view:ty) => {
        #[derive(Serialize, utoipa::ToSchema)]
        pub struct $name {
            /// `list`.
            pub object: String,
            pub data: Vec<$view>,
            pub has_more: bool,
            /// Pass as `starting_after` for the next page; absent on the last page.
            pub next_cursor: Option<String>,
        }
    };
}

list_schema!(CustomerList, farthing_service::customers::CustomerView);
list_schema!(ChargeList, farthing_service::charges::ChargeView);
list_schema!(HoldList, farthing_service::holds::HoldView);
list_schema!(
    SubscriptionList,
    farthing_service::subscriptions::SubscriptionView
);
list_schema!(CampaignList, farthing_service::campaigns::CampaignView);
list_schema!(TabList, farthing_service::tabs::TabView);
list_schema!(EventList, farthing_service::webhooks::EventView);
list_schema!(TransferList, farthing_service::transfers::TransferJson);

#[utoipa::path(get, path = "/v1/customers", operation_id = "customers.list", tag = "customers", params(ListFilters), responses((status = 200, description = "a page of the customers the caller may see", body = CustomerList), crate::error::ReadErrors))]
pub async fn customers(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    RawQuery(query): RawQuery,
) -> Result<axum::Json<Page>, ApiError> {
    let query = list_query(&state, query.as_deref(), IdKind::Customer)?;
    Ok(axum::Json(lists::customers(&state, &caller, &query).await?))
}

#[utoipa::path(get, path = "/v1/charges", operation_id = "charges.list", tag = "charges", params(ListFilters), responses((status = 200, description = "a page of the charges and tips the caller may see (status: requires_confirmation, succeeded, failed; resource: the charge's resource_id)", body = ChargeList), crate::error::ReadErrors))]
pub async fn charges(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    RawQuery(query): RawQuery,
) -> Result<axum::Json<Page>, ApiError> {
    let query = list_query(&state, query.as_deref(), IdKind::Charge)?;
    Ok(axum::Json(lists::charges(&state, &caller, &query).await?))
}

#[utoipa::path(get, path = "/v1/holds", operation_id = "holds.list", tag = "holds", params(ListFilters), responses((status = 200, description = "a page of the escrow holds the caller may see (status: held, captured, released, expired, failed)", body = HoldList), crate::error::ReadErrors))]
pub async fn holds(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    RawQuery(query): RawQuery,
) -> Result<axum::Json<Page>, ApiError> {
    let query = list_query(&state, query.as_deref(), IdKind::Hold)?;
    Ok(axum::Json(lists::holds(&state, &caller, &query).await?))
}

#[utoipa::path(get, path = "/v1/subscriptions", operation_id = "subscriptions.list", tag = "subscriptions", params(ListFilters), responses((status = 200, description = "a page of the subscriptions the caller may see (status: trialing, active, past_due, paused, canceled)", body = SubscriptionList), crate::error::ReadErrors))]
pub async fn subscriptions(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    RawQuery(query): RawQuery,
) -> Result<axum::Json<Page>, ApiError> {
    let query = list_query(&state, query.as_deref(), IdKind::Subscription)?;
    Ok(axum::Json(
        lists::subscriptions(&state, &caller, &query).await?,
    ))
}

#[utoipa::path(get, path = "/v1/campaigns", operation_id = "campaigns.list", tag = "campaigns", params(ListFilters), responses((status = 200, description = "a page of campaigns (public objects: every caller sees them all; status: active, succeeded, failed)", body = CampaignList), crate::error::ReadErrors))]
pub async fn campaigns(
    State(state): State<SharedState>,
    Caller(_caller): Caller,
    RawQuery(query): RawQuery,
) -> Result<axum::Json<Page>, ApiError> {
    let query = list_query(&state, query.as_deref(), IdKind::Campaign)?;
    Ok(axum::Json(lists::campaigns(&state, &query).await?))
}

#[utoipa::path(get, path = "/v1/tabs", operation_id = "tabs.list", tag = "tabs", params(ListFilters), responses((status = 200, description = "a page of the tabs the caller may see (status: open, frozen)", body = TabList), crate::error::ReadErrors))]
pub async fn tabs(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    RawQuery(query): RawQuery,
) -> Result<axum::Json<Page>, ApiError> {
    let query = list_query(&state, query.as_deref(), IdKind::Tab)?;
    Ok(axum::Json(lists::tabs(&state, &caller, &query).await?))
}

#[utoipa::path(get, path = "/v1/events", operation_id = "events.list", tag = "webhooks", params(ListFilters), responses((status = 200, description = "a page of the webhook events the caller may see", body = EventList), crate::error::ReadErrors))]
pub async fn events(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    RawQuery(query): RawQuery,
) -> Result<axum::Json<Page>, ApiError> {
    let query = list_query(&state, query.as_deref(), IdKind::Event)?;
    Ok(axum::Json(lists::events(&state, &caller, &query).await?))
}

#[utoipa::path(get, path = "/v1/transfers", operation_id = "transfers.list", tag = "transfers", params(ListFilters), responses((status = 200, description = "a page of the ledger transfers the caller may see (one of its accounts on either side), oldest first (status: posted, pending, voided, expired; no customer or resource filter)", body = TransferList), crate::error::ReadErrors))]
pub async fn transfers(
    State(state): State<SharedState>,
    crate::extract::Key(principal): crate::extract::Key,
    RawQuery(query): RawQuery,
) -> Result<axum::Json<Page>, ApiError> {
    let query = list_query(&state, query.as_deref(), IdKind::Transfer)?;
    Ok(axum::Json(lists::transfers(&state, &principal, &query)?))
}

/// The query parameters of every list (for the document).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ListFilters {
    /// 1 to 100, default 10.
    limit: Option<u32>,
    /// The cursor: `next_cursor` of the previous page (an id of the listed kind).
    starting_after: Option<String>,
    /// Only objects of this customer (`cus_…`).
    customer: Option<String>,
    /// Only objects of this merchant (`mer_…`).
    merchant: Option<String>,
    /// Only objects in this status (the values each list names).
    status: Option<String>,
    /// Only charges for this resource (`resource_id`).
    resource: Option<String>,
    /// Only objects created at or after this time (Unix seconds).
    created_gte: Option<u64>,
    /// Only objects created before this time (Unix seconds).
    created_lt: Option<u64>,
}

#[utoipa::path(get, path = "/v1/plans/{id}", operation_id = "plans.get", tag = "subscriptions", params(("id" = String, Path, description = "plan_… id")), responses((status = 200, description = "the plan (its merchant, the operator, and customers)", body = farthing_service::subscriptions::PlanView), crate::error::ReadErrors))]
pub async fn plan(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    IdPath(id): IdPath<PlanId>,
) -> Result<axum::Json<farthing_service::subscriptions::PlanView>, ApiError> {
    Ok(axum::Json(reads::plan(&state, &caller, id).await?))
}

#[utoipa::path(get, path = "/v1/disputes/{id}", operation_id = "disputes.get", tag = "disputes", params(("id" = String, Path, description = "dp_… id")), responses((status = 200, description = "the dispute (the operator, the merchants it debited, its customer)", body = farthing_service::disputes::DisputeView), crate::error::ReadErrors))]
pub async fn dispute(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    IdPath(id): IdPath<DisputeId>,
) -> Result<axum::Json<farthing_service::disputes::DisputeView>, ApiError> {
    Ok(axum::Json(reads::dispute(&state, &caller, id).await?))
}

#[utoipa::path(get, path = "/v1/topups/{id}", operation_id = "topups.get", tag = "customers", params(("id" = String, Path, description = "top-up id")), responses((status = 200, description = "the top-up (its customer, the customer's merchant, the operator)", body = farthing_service::customers::TopupView), crate::error::ReadErrors))]
pub async fn topup(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    IdPath(id): IdPath<TopupId>,
) -> Result<axum::Json<farthing_service::customers::TopupView>, ApiError> {
    Ok(axum::Json(reads::topup(&state, &caller, id).await?))
}

#[utoipa::path(get, path = "/v1/refunds/{id}", operation_id = "refunds.get", tag = "charges", params(("id" = String, Path, description = "re_… id")), responses((status = 200, description = "the refund (whoever may see its charge)", body = farthing_service::charges::RefundView), crate::error::ReadErrors))]
pub async fn refund(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    IdPath(id): IdPath<RefundId>,
) -> Result<axum::Json<farthing_service::charges::RefundView>, ApiError> {
    Ok(axum::Json(reads::refund(&state, &caller, id).await?))
}

#[utoipa::path(get, path = "/v1/allowances/{id}", operation_id = "allowances.get", tag = "customers", params(("id" = String, Path, description = "al_… id")), responses((status = 200, description = "the allowance (its customer, its merchant, the operator)", body = farthing_service::customers::AllowanceView), crate::error::ReadErrors))]
pub async fn allowance(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    IdPath(id): IdPath<AllowanceId>,
) -> Result<axum::Json<farthing_service::customers::AllowanceView>, ApiError> {
    Ok(axum::Json(reads::allowance(&state, &caller, id).await?))
}
