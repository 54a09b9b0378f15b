//! Post-pay tabs (the carrier-billing model): a customer opens a tab with a card; charges with
//! `"source": "tab"` accrue on it up to its limit (the ledger refuses beyond); it is settled as
//! ONE card charge when it reaches its threshold or at the end of its period. A declined
//! settlement freezes the tab and retries with backoff; paying it unfreezes the tab.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use farthing_ledger::Amount;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::extract::json_response;
use crate::extract::ApiJson;
use crate::extract::Caller;
use crate::extract::Key;
use crate::routes::positive_amount;
use farthing_products::ids::{decode_id, encode_id, IdKind};
use farthing_products::money::format_amount;
use farthing_service::assets::{asset_by_id, by_code};
use farthing_service::customers::{require_payment_method, visible_customer};
use farthing_service::scheduler::{job_write, period_end, settle_tab, tab_owed};
use farthing_service::state::to_json;
use farthing_service::state::Principal;
use farthing_service::state::SharedState;
use farthing_service::tabs::{settlement_view, tab_of, SettlementView};
use farthing_store::records::{
    CustomerRecord, JobKind, SettlementRecord, TabPeriod, TabRecord, CUSTOMERS, SETTLEMENTS,
    SETTLEMENTS_BY_TAB, TABS, TABS_BY_CUSTOMER,
};
use farthing_store::util::random_id;
use farthing_store::util::rfc3339;
use farthing_store::{Changes, RecordWrite};

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

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TabView {
    pub id: String,
    pub object: &'static str,
    pub customer: String,
    pub asset: String,
    pub limit: String,
    pub settlement_threshold: String,
    pub period: TabPeriod,
    /// What the tab owes now.
    pub owed: String,
    /// `open`, or `frozen` after a declined settlement (charges are refused until it is paid).
    pub status: &'static str,
    pub frozen_reason: Option<String>,
    pub settlements: Vec<SettlementView>,
    pub created: String,
}

fn view(state: &SharedState, tab: &TabRecord) -> Result<TabView, ApiError> {
    let asset = asset_by_id(state, tab.asset)?;
    let s = asset.scale;
    let (ids, _) = state.store.indexed(SETTLEMENTS_BY_TAB, tab.id, None, 100)?;
    let mut settlements = Vec::new();
    for id in ids {
        if let Some(r) = state.store.record::<SettlementRecord>(SETTLEMENTS, id)? {
            settlements.push(r);
        }
    }
    settlements.sort_by_key(|r| r.created_ns);
    Ok(TabView {
        id: encode_id(IdKind::Tab, tab.id),
        object: "tab",
        customer: encode_id(IdKind::Customer, tab.customer),
        asset: asset.code.to_string(),
        limit: format_amount(Amount(tab.limit), s),
        settlement_threshold: format_amount(Amount(tab.threshold), s),
        period: tab.period,
        owed: format_amount(tab_owed(state, tab), s),
        status: if tab.frozen { "frozen" } else { "open" },
        frozen_reason: tab.frozen_reason.clone(),
        settlements: settlements.iter().map(|r| settlement_view(r, s)).collect(),
        created: rfc3339(tab.created_ns),
    })
}

#[utoipa::path(post, path = "/v1/customers/{id}/tabs", operation_id = "customers.tabs.create", tag = "tabs", request_body = CreateTab, params(("id" = String, Path, description = "cus_… id")), responses((status = 201, description = "the tab (customer token only; one per asset)", body = TabView), crate::error::WriteErrors))]
pub async fn create(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    ApiJson(request, _): ApiJson<CreateTab>,
) -> Result<Response, ApiError> {
    let customer = visible_customer(&state, &caller, &id, "id")?;
    caller.require_customer(customer.id)?;
    let asset = by_code(&state, &request.asset, "asset")?;
    let limit = positive_amount(&request.limit, &asset, "limit")?;
    let threshold = positive_amount(
        &request.settlement_threshold,
        &asset,
        "settlement_threshold",
    )?;
    if threshold > limit {
        return Err(ApiError::invalid(
            "settlement_threshold",
            "threshold_above_limit",
            "settlement_threshold must not exceed limit",
        ));
    }
    require_payment_method(&customer, &request.payment_method)?;
    let _guard = state.products.lock(customer.id).await;
    if tab_of(&state, customer.id, asset.id.0)?.is_some() {
        return Err(ApiError::refused(
            "tab_exists",
            "the customer already has a tab in this asset",
        )
        .with_param("asset"));
    }
    let now = state.products.clock.now();
    let tab = TabRecord {
        id: random_id(),
        customer: customer.id,
        asset: asset.id.0,
        limit: limit.0,
        threshold: threshold.0,
        period: request.period,
        payment_method: request.payment_method,
        frozen: false,
        frozen_reason: None,
        failed_attempts: 0,
        settled: 0,
        created_ns: now,
    };
    state
        .products
        .ensure_accounts(&state.engine, &[tab.account()], asset.id)
        .await?;
    state
        .commit(Changes {
            records: vec![
                RecordWrite::put(TABS, tab.id, &tab)?,
                RecordWrite::Index {
                    index: TABS_BY_CUSTOMER,
                    parent: customer.id,
                    id: tab.id,
                },
                job_write(
                    JobKind::TabPeriodEnd { tab: tab.id },
                    period_end(tab.period, now)?,
                )?,
            ],
            ..Changes::default()
        })
        .await?;
    Ok(json_response(
        StatusCode::CREATED,
        to_json(&view(&state, &tab)?)?,
    ))
}

/// The tab if the caller may see it: its customer, the customer's creator, the operator.
fn visible_tab(state: &SharedState, caller: &Principal, id: &str) -> Result<TabRecord, ApiError> {
    let missing = || ApiError::not_found(Some("id"), "tab");
    let id = decode_id(IdKind::Tab, id).ok_or_else(missing)?;
    let tab: TabRecord = state.store.record(TABS, id)?.ok_or_else(missing)?;
    let customer: CustomerRecord = state
        .store
        .record(CUSTOMERS, tab.customer)?
        .ok_or_else(missing)?;
    let visible = caller.can_see_object(customer.creator, Some(tab.customer));
    if !visible {
        return Err(missing());
    }
    Ok(tab)
}

#[utoipa::path(get, path = "/v1/tabs/{id}", operation_id = "tabs.get", tag = "tabs", params(("id" = String, Path, description = "tab_… id")), responses((status = 200, description = "the tab, what it owes, and its settlements", body = TabView), crate::error::ReadErrors))]
pub async fn get(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<TabView>, ApiError> {
    let tab = visible_tab(&state, &caller, &id)?;
    Ok(axum::Json(view(&state, &tab)?))
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
    Path(id): Path<String>,
    ApiJson(request, _): ApiJson<SetTabPaymentMethod>,
) -> Result<Response, ApiError> {
    let tab = visible_tab(&state, &caller, &id)?;
    caller.require_customer(tab.customer)?;
    let customer = visible_customer(
        &state,
        &caller,
        &encode_id(IdKind::Customer, tab.customer),
        "id",
    )?;
    require_payment_method(&customer, &request.payment_method)?;
    let frozen = {
        let _guard = state.products.lock(tab.id).await;
        let mut tab: TabRecord = state
            .store
            .record(TABS, tab.id)?
            .ok_or_else(|| ApiError::not_found(Some("id"), "tab"))?;
        tab.payment_method = request.payment_method;
        state
            .commit(Changes {
                records: vec![RecordWrite::put(TABS, tab.id, &tab)?],
                ..Changes::default()
            })
            .await?;
        tab.frozen
    };
    if frozen {
        settle_tab(&state, tab.id, "payment_method_updated").await?;
    }
    let tab: TabRecord = state
        .store
        .record(TABS, tab.id)?
        .ok_or_else(|| ApiError::not_found(Some("id"), "tab"))?;
    Ok(json_response(
        StatusCode::OK,
        to_json(&view(&state, &tab)?)?,
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdvanceClock {
    /// Seconds to move the products' clock forward (at most ten years).
    pub seconds: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ClockView {
    pub object: &'static str,
    pub now: String,
    /// Jobs that ran because they became due.
    pub jobs_run: usize,
}

#[utoipa::path(get, path = "/v1/test_clock", operation_id = "test_clock.get", tag = "tabs", responses((status = 200, description = "the products' clock now (operator only; needs `farthing serve --test-clock`); jobs_run is 0", body = ClockView), crate::error::ReadErrors))]
pub async fn clock(
    State(state): State<SharedState>,
    Key(principal): Key,
) -> Result<Response, ApiError> {
    require_test_clock(&state, &principal)?;
    Ok(json_response(
        StatusCode::OK,
        to_json(&ClockView {
            object: "test_clock",
            now: rfc3339(state.products.clock.now()),
            jobs_run: 0,
        })?,
    ))
}

/// The test clock is the operator's, and exists only with `farthing serve --test-clock`.
fn require_test_clock(state: &SharedState, principal: &Principal) -> Result<(), ApiError> {
    principal.require_operator()?;
    if !state.products.clock.settable {
        return Err(ApiError::not_found(
            None,
            "test clock (start with --test-clock)",
        ));
    }
    Ok(())
}

/// The most one call may move the clock.
const ADVANCE_SECONDS_MAX: u64 = 10 * 365 * 86_400;

/// The object lock that serializes test clock moves (0 is never an object's id).
const TEST_CLOCK_LOCK: u128 = 0;

#[utoipa::path(post, path = "/v1/test_clock/advance", operation_id = "test_clock.advance", tag = "tabs", request_body = AdvanceClock, responses((status = 200, description = "the products' clock after moving it, and the due work run (operator only; needs `farthing serve --test-clock`)", body = ClockView), crate::error::WriteErrors))]
pub async fn advance_clock(
    State(state): State<SharedState>,
    Key(principal): Key,
    ApiJson(request, _): ApiJson<AdvanceClock>,
) -> Result<Response, ApiError> {
    require_test_clock(&state, &principal)?;
    if request.seconds > ADVANCE_SECONDS_MAX {
        return Err(ApiError::invalid(
            "seconds",
            "out_of_range",
            format!("seconds must be at most {ADVANCE_SECONDS_MAX}"),
        ));
    }
    {
        // One advance at a time, so the stored offset is the latest; durable before answering.
        let _advancing = state.products.lock(TEST_CLOCK_LOCK).await;
        state.products.clock.advance(request.seconds);
        state
            .store
            .set_test_clock_offset(state.products.clock.offset_ns())?;
    }
    // Retries of webhook deliveries may be due now.
    state.store.outbox_ready.notify_one();
    let jobs_run = farthing_service::scheduler::run_due(&state).await?;
    Ok(json_response(
        StatusCode::OK,
        to_json(&ClockView {
            object: "test_clock",
            now: rfc3339(state.products.clock.now()),
            jobs_run,
        })?,
    ))
}
