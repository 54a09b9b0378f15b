//! Micro-subscriptions and pledges (the Patreon / Ko-fi model).
//!
//! A plan has a price (down to the asset's smallest unit), an interval and an optional trial;
//! a pledge is a subscription with a customer-chosen amount and no plan. The customer's own
//! token subscribes (consent). Each period is ONE charge through the charge machinery (the
//! merchant's fee plan, the wallet or the tab, the monthly cap), whose id derives from the
//! subscription and the period number, so a period is charged at most once however often its
//! job runs. Periods are anchored at the start: period `n` is charged at `anchor + n`
//! intervals, so months do not drift.
//!
//! A failed charge is retried with backoff (1 h, 2 h, 4 h); after
//! [`PAST_DUE_AFTER`](farthing_service::subscriptions::PAST_DUE_AFTER) failed tries the
//! subscription is `past_due`, after [`CANCEL_AFTER`](farthing_service::subscriptions::CANCEL_AFTER)
//! it is canceled. Pause stops charging until resume; cancel ends it now or at the end of the
//! paid period. The operations are in [`farthing_service::subscriptions`].

use crate::extract::IdPath;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use farthing_products::ids::SubscriptionId;
use serde::Deserialize;

use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::extract::Caller;
use crate::extract::IdempotencyKey;
use crate::extract::Key;
use crate::extract::{json_response, reply};
use crate::routes::positive_amount;
use farthing_service::assets::by_code;
use farthing_service::charges::merchant_exists;
use farthing_service::state::to_json;
use farthing_service::state::SharedState;
use farthing_service::subscriptions::SubscriptionView;
use farthing_service::subscriptions::{self, plan_merchant, plan_terms, subscriber};
use farthing_service::subscriptions::{BillingInterval, NewPlan, PlanView, Source, Terms};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePlan {
    pub name: String,
    #[schema(pattern = r"^[0-9]{1,39}(\.[0-9]{1,18})?$", example = "0.99")]
    pub amount: String,
    #[schema(pattern = r"^[A-Z0-9_]{1,15}$", example = "USD")]
    pub asset: String,
    pub interval: BillingInterval,
    /// Free days before the first charge (0 to 365).
    #[serde(default)]
    pub trial_days: u32,
}

#[utoipa::path(post, path = "/v1/plans", operation_id = "plans.create", tag = "subscriptions", request_body = CreatePlan, params(("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry")), responses((status = 201, description = "the plan (a merchant key)", body = PlanView), crate::error::WriteErrors))]
pub async fn create_plan(
    State(state): State<SharedState>,
    Key(principal): Key,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(request, raw): ApiJson<CreatePlan>,
) -> Result<Response, ApiError> {
    let merchant = plan_merchant(&principal)?;
    farthing_service::merchants::check_name(&request.name)?;
    let asset = by_code(&state, &request.asset, "asset")?;
    let plan = NewPlan {
        merchant,
        name: request.name,
        amount: positive_amount(&request.amount, &asset, "amount")?,
        asset,
        interval: request.interval,
        trial_days: request.trial_days,
    };
    Ok(reply(
        subscriptions::create_plan(&state, key, &raw, plan).await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Subscribe {
    /// The plan (`plan_…`); or, for a pledge, `merchant`, `amount`, `asset` and `interval`.
    #[serde(default)]
    pub plan: Option<String>,
    #[serde(default)]
    pub merchant: Option<String>,
    #[serde(default)]
    #[schema(pattern = r"^[0-9]{1,39}(\.[0-9]{1,18})?$", example = "3.00")]
    pub amount: Option<String>,
    #[serde(default)]
    pub asset: Option<String>,
    #[serde(default)]
    pub interval: Option<BillingInterval>,
    /// `wallet` (default) or `tab`.
    #[serde(default)]
    pub source: Option<String>,
}

#[utoipa::path(post, path = "/v1/subscriptions", operation_id = "subscriptions.create", tag = "subscriptions", request_body = Subscribe, params(("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry: subscribed once")), responses((status = 201, description = "the subscription (customer token only): the first period charged now, or a trial", body = SubscriptionView), crate::error::WriteErrors))]
pub async fn subscribe(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(request, raw): ApiJson<Subscribe>,
) -> Result<Response, ApiError> {
    let customer = subscriber(&caller)?;
    let terms = match &request.plan {
        Some(plan) => {
            if request.merchant.is_some() || request.amount.is_some() {
                return Err(ApiError::invalid(
                    "plan",
                    "plan_or_pledge",
                    "give a plan, or a pledge's merchant and amount, not both",
                ));
            }
            plan_terms(&state, crate::extract::parse_id(plan, "plan")?)?
        }
        None => pledge_terms(&state, &request)?,
    };
    let source = match request.source.as_deref() {
        None | Some("wallet") => Source::Wallet,
        Some("tab") => Source::Tab,
        Some(_) => {
            return Err(ApiError::invalid(
                "source",
                "invalid_source",
                "source must be wallet or tab",
            ))
        }
    };
    let subscribed = subscriptions::subscribe(&state, customer, key, &raw, terms, source).await?;
    Ok(reply(subscribed))
}

/// A pledge's terms from the request: each of `merchant`, `asset`, `amount` and `interval` is
/// required.
fn pledge_terms(state: &SharedState, request: &Subscribe) -> Result<Terms, ApiError> {
    let required =
        |param: &str| ApiError::invalid(param, "required", format!("a pledge needs {param}"));
    let merchant = merchant_exists(
        state,
        request
            .merchant
            .as_deref()
            .ok_or_else(|| required("merchant"))?,
        "merchant",
    )?;
    let asset = by_code(
        state,
        request.asset.as_deref().ok_or_else(|| required("asset"))?,
        "asset",
    )?;
    let amount = positive_amount(
        request
            .amount
            .as_deref()
            .ok_or_else(|| required("amount"))?,
        &asset,
        "amount",
    )?;
    let interval = request.interval.ok_or_else(|| required("interval"))?;
    Ok(Terms::pledge(merchant, asset, amount, interval))
}

#[utoipa::path(get, path = "/v1/subscriptions/{id}", operation_id = "subscriptions.get", tag = "subscriptions", params(("id" = String, Path, description = "sub_… id")), responses((status = 200, description = "the subscription", body = SubscriptionView), crate::error::ReadErrors))]
pub async fn get(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    IdPath(id): IdPath<SubscriptionId>,
) -> Result<axum::Json<SubscriptionView>, ApiError> {
    Ok(axum::Json(subscriptions::get(&state, &caller, id)?))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelSubscription {
    /// End when the paid period ends (default) rather than now.
    #[serde(default = "yes")]
    pub at_period_end: bool,
}

fn yes() -> bool {
    true
}

fn ok(subscription: SubscriptionView) -> Result<Response, ApiError> {
    Ok(json_response(StatusCode::OK, to_json(&subscription)?))
}

#[utoipa::path(post, path = "/v1/subscriptions/{id}/pause", operation_id = "subscriptions.pause", tag = "subscriptions", params(("id" = String, Path, description = "sub_… id")), responses((status = 200, description = "paused: nothing is charged until it resumes", body = SubscriptionView), crate::error::WriteErrors))]
pub async fn pause(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    IdPath(id): IdPath<SubscriptionId>,
) -> Result<Response, ApiError> {
    ok(subscriptions::pause(&state, &caller, id).await?)
}

#[utoipa::path(post, path = "/v1/subscriptions/{id}/resume", operation_id = "subscriptions.resume", tag = "subscriptions", params(("id" = String, Path, description = "sub_… id")), responses((status = 200, description = "resumed: the next period is charged when due (at once if it already is)", body = SubscriptionView), crate::error::WriteErrors))]
pub async fn resume(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    IdPath(id): IdPath<SubscriptionId>,
) -> Result<Response, ApiError> {
    ok(subscriptions::resume(&state, &caller, id).await?)
}

#[utoipa::path(post, path = "/v1/subscriptions/{id}/cancel", operation_id = "subscriptions.cancel", tag = "subscriptions", request_body = CancelSubscription, params(("id" = String, Path, description = "sub_… id")), responses((status = 200, description = "canceled now, or at the end of the paid period", body = SubscriptionView), crate::error::WriteErrors))]
pub async fn cancel(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    IdPath(id): IdPath<SubscriptionId>,
    ApiJson(request, _): ApiJson<CancelSubscription>,
) -> Result<Response, ApiError> {
    ok(subscriptions::cancel(&state, &caller, id, request.at_period_end).await?)
}
