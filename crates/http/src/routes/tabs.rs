//! Post-pay tabs (the carrier-billing model): a customer opens a tab with a card; charges with
//! `"source": "tab"` accrue on it up to its limit (the ledger refuses beyond); it is settled as
//! ONE card charge when it reaches its threshold or at the end of its period. A declined
//! settlement freezes the tab and retries with backoff; paying it unfreezes the tab. The
//! operations, and the test clock that drives the settlements in tests, are in
//! [`farthing_service::tabs`].

use crate::extract::IdPath;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use farthing_products::ids::CustomerId;
use farthing_products::ids::TabId;
use serde::Deserialize;

use crate::error::ApiError;
use crate::extract::json_response;
use crate::extract::ApiJson;
use crate::extract::Caller;
use crate::extract::Key;
use crate::routes::positive_amount;
use farthing_service::assets::by_code;
use farthing_service::customers::own_customer;
use farthing_service::state::to_json;
use farthing_service::state::SharedState;
use farthing_service::tabs::{self, ClockView, NewTab, TabPeriod, TabView};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTab {
    #[schema(pattern = r"^[A-Z0-9_]{1,15}$", example = "USD")]
    pub asset: String,
    /// The most the tab may owe.
    #[schema(pattern = r"^[0-9]{1,39}(\.[0-9]{1,18})?$", example = "20.00")]
    pub limit: String,
    /// Settle as soon as the tab owes this much.
    #[schema(pattern = r"^[0-9]{1,39}(\.[0-9]{1,18})?$", example = "5.00")]
    pub settlement_threshold: String,
    /// Settle at the end of every period (UTC) too.
    pub period: TabPeriod,
    /// The card the settlements are charged to (from the customer's payment methods).
    pub payment_method: String,
}

#[utoipa::path(post, path = "/v1/customers/{id}/tabs", operation_id = "customers.tabs.create", tag = "tabs", request_body = CreateTab, params(("id" = String, Path, description = "cus_… id")), responses((status = 201, description = "the tab (customer token only; one per asset)", body = TabView), crate::error::WriteErrors))]
pub async fn create(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    IdPath(id): IdPath<CustomerId>,
    ApiJson(request, _): ApiJson<CreateTab>,
) -> Result<Response, ApiError> {
    let customer = own_customer(&state, &caller, id)?;
    let asset = by_code(&state, &request.asset, "asset")?;
    let tab = NewTab {
        limit: positive_amount(&request.limit, &asset, "limit")?,
        threshold: positive_amount(
            &request.settlement_threshold,
            &asset,
            "settlement_threshold",
        )?,
        asset,
        period: request.period,
        payment_method: request.payment_method,
    };
    let tab = tabs::open(&state, &customer, tab).await?;
    Ok(json_response(StatusCode::CREATED, to_json(&tab)?))
}

#[utoipa::path(get, path = "/v1/tabs/{id}", operation_id = "tabs.get", tag = "tabs", params(("id" = String, Path, description = "tab_… id")), responses((status = 200, description = "the tab, what it owes, and its settlements", body = TabView), crate::error::ReadErrors))]
pub async fn get(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    IdPath(id): IdPath<TabId>,
) -> Result<axum::Json<TabView>, ApiError> {
    Ok(axum::Json(tabs::get(&state, &caller, id)?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetTabPaymentMethod {
    pub payment_method: String,
}

#[utoipa::path(post, path = "/v1/tabs/{id}/payment_method", operation_id = "tabs.payment_method.set", tag = "tabs", request_body = SetTabPaymentMethod, params(("id" = String, Path, description = "tab_… id")), responses((status = 200, description = "the tab; a frozen tab is settled again at once with the new card", body = TabView), crate::error::WriteErrors))]
pub async fn set_payment_method(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    IdPath(id): IdPath<TabId>,
    ApiJson(request, _): ApiJson<SetTabPaymentMethod>,
) -> Result<Response, ApiError> {
    let tab = tabs::set_payment_method(&state, &caller, id, request.payment_method).await?;
    Ok(json_response(StatusCode::OK, to_json(&tab)?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdvanceClock {
    /// Seconds to move the products' clock forward (at most ten years).
    pub seconds: u64,
}

#[utoipa::path(get, path = "/v1/test_clock", operation_id = "test_clock.get", tag = "tabs", responses((status = 200, description = "the products' clock now (operator only; needs `farthing serve --test-clock`); jobs_run is 0", body = ClockView), crate::error::ReadErrors))]
pub async fn clock(
    State(state): State<SharedState>,
    Key(principal): Key,
) -> Result<Response, ApiError> {
    let clock: ClockView = tabs::test_clock(&state, &principal)?;
    Ok(json_response(StatusCode::OK, to_json(&clock)?))
}

#[utoipa::path(post, path = "/v1/test_clock/advance", operation_id = "test_clock.advance", tag = "tabs", request_body = AdvanceClock, responses((status = 200, description = "the products' clock after moving it, and the due work run (operator only; needs `farthing serve --test-clock`)", body = ClockView), crate::error::WriteErrors))]
pub async fn advance_clock(
    State(state): State<SharedState>,
    Key(principal): Key,
    ApiJson(request, _): ApiJson<AdvanceClock>,
) -> Result<Response, ApiError> {
    let clock = tabs::advance_test_clock(&state, &principal, request.seconds).await?;
    Ok(json_response(StatusCode::OK, to_json(&clock)?))
}
