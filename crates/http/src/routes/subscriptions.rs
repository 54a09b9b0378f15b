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
//! it is canceled. Pause stops
//! charging until resume; cancel ends it now or at the end of the paid period.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use farthing_ledger::Amount;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::extract::json_response;
use crate::extract::ApiJson;
use crate::extract::Caller;
use crate::extract::IdempotencyKey;
use crate::extract::Key;
use crate::routes::positive_amount;
use farthing_products::ids::{decode_id, encode_id, IdKind};
use farthing_products::money::format_amount;
use farthing_service::assets::{asset_by_id, by_code};
use farthing_service::charges::merchant_exists;
use farthing_service::state::to_json;
use farthing_service::state::Principal;
use farthing_service::state::SharedState;
use farthing_service::subscriptions::{advance, charge_period, save, view, SubscriptionView};
use farthing_store::records::{
    BillingInterval, PlanRecord, SubscriptionRecord, PLANS, SUBSCRIPTIONS,
};
use farthing_store::util::derived_id;
use farthing_store::util::random_id;
use farthing_store::util::sha256;
use farthing_store::{Changes, RecordWrite, Scope};

const TRIAL_DAYS_MAX: u32 = 365;

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

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PlanView {
    pub id: String,
    pub object: &'static str,
    pub merchant: String,
    pub name: String,
    pub amount: String,
    pub asset: String,
    pub interval: BillingInterval,
    pub trial_days: u32,
}

fn plan_view(state: &SharedState, p: &PlanRecord) -> Result<PlanView, ApiError> {
    let asset = asset_by_id(state, p.asset)?;
    Ok(PlanView {
        id: encode_id(IdKind::Plan, p.id),
        object: "plan",
        merchant: encode_id(IdKind::Merchant, p.merchant),
        name: p.name.clone(),
        amount: format_amount(Amount(p.amount), asset.scale),
        asset: asset.code.to_string(),
        interval: p.interval,
        trial_days: p.trial_days,
    })
}

#[utoipa::path(post, path = "/v1/plans", operation_id = "plans.create", tag = "subscriptions", request_body = CreatePlan, params(("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry")), responses((status = 201, description = "the plan (a merchant key)", body = PlanView), crate::error::WriteErrors))]
pub async fn create_plan(
    State(state): State<SharedState>,
    Key(principal): Key,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(request, raw): ApiJson<CreatePlan>,
) -> Result<Response, ApiError> {
    principal.require_write()?;
    let merchant = principal
        .merchant()
        .ok_or_else(|| ApiError::forbidden("a plan is created with the merchant's key"))?;
    crate::routes::check_name(&request.name)?;
    let asset = by_code(&state, &request.asset, "asset")?;
    let amount = positive_amount(&request.amount, &asset, "amount")?;
    if request.trial_days > TRIAL_DAYS_MAX {
        return Err(ApiError::invalid(
            "trial_days",
            "invalid_trial",
            format!("trial_days must be 0 to {TRIAL_DAYS_MAX}"),
        ));
    }
    let state2 = state.clone();
    state
        .idempotent(principal.tenant(), key, "plans", &raw, || async move {
            let plan = PlanRecord {
                id: random_id(),
                merchant,
                name: request.name,
                asset: asset.id.0,
                amount: amount.0,
                interval: request.interval,
                trial_days: request.trial_days,
                created_ns: state2.products.clock.now(),
            };
            let body = to_json(&plan_view(&state2, &plan)?)?;
            Ok((
                StatusCode::CREATED,
                body,
                Changes {
                    records: vec![RecordWrite::put(PLANS, plan.id, &plan)?],
                    ..Changes::default()
                },
            ))
        })
        .await
        .map(crate::extract::reply)
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

#[utoipa::path(post, path = "/v1/subscriptions", operation_id = "subscriptions.create", tag = "subscriptions", request_body = Subscribe, params(("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry: subscribed once")), responses((status = 201, description = "the subscription (customer token only): the first period charged now, or a trial", body = SubscriptionView), (status = 200, description = "an idempotent retry", body = SubscriptionView), crate::error::WriteErrors))]
pub async fn subscribe(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(request, raw): ApiJson<Subscribe>,
) -> Result<Response, ApiError> {
    let customer = caller
        .customer()
        .filter(|_| caller.scope() == Scope::Customer)
        .ok_or_else(|| ApiError::forbidden("a subscription is made with the customer's token"))?;
    let (plan, merchant, asset, amount, billing, trial_days) = match &request.plan {
        Some(text) => {
            if request.merchant.is_some() || request.amount.is_some() {
                return Err(ApiError::invalid(
                    "plan",
                    "plan_or_pledge",
                    "give a plan, or a pledge's merchant and amount, not both",
                ));
            }
            let missing = || ApiError::not_found(Some("plan"), "plan");
            let id = decode_id(IdKind::Plan, text).ok_or_else(missing)?;
            let p: PlanRecord = state.store.record(PLANS, id)?.ok_or_else(missing)?;
            let asset = asset_by_id(&state, p.asset)?;
            (
                Some(p.id),
                p.merchant,
                asset,
                Amount(p.amount),
                p.interval,
                p.trial_days,
            )
        }
        None => {
            let required = |param: &str| {
                ApiError::invalid(param, "required", format!("a pledge needs {param}"))
            };
            let merchant = merchant_exists(
                &state,
                request
                    .merchant
                    .as_deref()
                    .ok_or_else(|| required("merchant"))?,
                "merchant",
            )?;
            let asset = by_code(
                &state,
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
            let billing = request.interval.ok_or_else(|| required("interval"))?;
            (None, merchant, asset, amount, billing, 0)
        }
    };
    let tab = match request.source.as_deref() {
        None | Some("wallet") => None,
        Some("tab") => {
            let t = farthing_service::tabs::tab_of(&state, customer, asset.id.0)?
                .ok_or_else(|| ApiError::not_found(Some("source"), "tab"))?;
            Some((t.id, t.limit))
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "source",
                "invalid_source",
                "source must be wallet or tab",
            ))
        }
    };
    let request_hash = sha256(&[b"subscriptions", &raw]);
    let id = match &key {
        Some(key) => derived_id(customer, key, "subscription", 0),
        None => random_id(),
    };
    let _guard = state.products.lock(id).await;
    if let Some(existing) = state
        .store
        .record::<SubscriptionRecord>(SUBSCRIPTIONS, id)?
    {
        if existing.request_hash != Some(request_hash) {
            return Err(ApiError::idempotency(
                "this Idempotency-Key was already used with different parameters",
            ));
        }
        return Ok(json_response(
            StatusCode::OK,
            to_json(&view(&state, &existing)?)?,
        ));
    }
    let now = state.products.clock.now();
    let anchor = now.saturating_add(u64::from(trial_days) * 86_400_000_000_000);
    let mut s = SubscriptionRecord {
        id,
        customer,
        merchant,
        plan,
        asset: asset.id.0,
        amount: amount.0,
        interval: billing,
        tab,
        status: if trial_days > 0 { "trialing" } else { "active" }.into(),
        cancel_at_period_end: false,
        anchor_ns: anchor,
        anchor_period: 0,
        next_period: 0,
        next_charge_ns: anchor,
        failed_attempts: 0,
        last_failure: None,
        charges: Vec::new(),
        created_ns: now,
        request_hash: Some(request_hash),
    };
    if trial_days == 0 {
        // The first period is paid up front; a refusal leaves a canceled subscription.
        match charge_period(&state, &s).await {
            Ok(charge) => advance(&mut s, charge)?,
            Err(error) => {
                s.status = "canceled".into();
                s.last_failure = Some(error.code.to_string());
                save(&state, &s).await?;
                return Err(error.into());
            }
        }
    }
    save(&state, &s).await?;
    Ok(json_response(
        StatusCode::CREATED,
        to_json(&view(&state, &s)?)?,
    ))
}

/// The subscription if the caller may see it: its customer, its merchant, the operator.
fn visible(
    state: &SharedState,
    caller: &Principal,
    id: &str,
) -> Result<SubscriptionRecord, ApiError> {
    let missing = || ApiError::not_found(Some("id"), "subscription");
    let id = decode_id(IdKind::Subscription, id).ok_or_else(missing)?;
    let s: SubscriptionRecord = state.store.record(SUBSCRIPTIONS, id)?.ok_or_else(missing)?;
    let ok = caller.can_see_object(s.merchant, Some(s.customer));
    ok.then_some(s).ok_or_else(missing)
}

#[utoipa::path(get, path = "/v1/subscriptions/{id}", operation_id = "subscriptions.get", tag = "subscriptions", params(("id" = String, Path, description = "sub_… id")), responses((status = 200, description = "the subscription", body = SubscriptionView), crate::error::ReadErrors))]
pub async fn get(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<SubscriptionView>, ApiError> {
    Ok(axum::Json(view(&state, &visible(&state, &caller, &id)?)?))
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

/// Changes a subscription's state under its lock (the customer, its merchant or the
/// operator), then writes it with its job.
async fn change(
    state: &SharedState,
    caller: &Principal,
    id: &str,
    apply: impl FnOnce(&mut SubscriptionRecord, u64) -> Result<(), ApiError>,
) -> Result<Response, ApiError> {
    caller.require_write()?;
    let s = visible(state, caller, id)?;
    let _guard = state.products.lock(s.id).await;
    let mut s: SubscriptionRecord = state
        .store
        .record(SUBSCRIPTIONS, s.id)?
        .ok_or_else(|| ApiError::not_found(Some("id"), "subscription"))?;
    if s.status == "canceled" {
        return Err(ApiError::refused(
            "subscription_canceled",
            "the subscription is canceled",
        ));
    }
    apply(&mut s, state.products.clock.now())?;
    save(state, &s).await?;
    Ok(json_response(StatusCode::OK, to_json(&view(state, &s)?)?))
}

#[utoipa::path(post, path = "/v1/subscriptions/{id}/pause", operation_id = "subscriptions.pause", tag = "subscriptions", params(("id" = String, Path, description = "sub_… id")), responses((status = 200, description = "paused: nothing is charged until it resumes", body = SubscriptionView), crate::error::WriteErrors))]
pub async fn pause(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    change(&state, &caller, &id, |s, _| {
        s.status = "paused".into();
        Ok(())
    })
    .await
}

#[utoipa::path(post, path = "/v1/subscriptions/{id}/resume", operation_id = "subscriptions.resume", tag = "subscriptions", params(("id" = String, Path, description = "sub_… id")), responses((status = 200, description = "resumed: the next period is charged when due (at once if it already is)", body = SubscriptionView), crate::error::WriteErrors))]
pub async fn resume(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    change(&state, &caller, &id, |s, now| {
        if s.status != "paused" {
            return Err(ApiError::refused(
                "subscription_not_paused",
                "only a paused subscription resumes",
            ));
        }
        s.status = if s.next_period == 0 && now < s.anchor_ns {
            "trialing"
        } else {
            "active"
        }
        .into();
        farthing_service::subscriptions::resume_at(s, now);
        Ok(())
    })
    .await
}

#[utoipa::path(post, path = "/v1/subscriptions/{id}/cancel", operation_id = "subscriptions.cancel", tag = "subscriptions", request_body = CancelSubscription, params(("id" = String, Path, description = "sub_… id")), responses((status = 200, description = "canceled now, or at the end of the paid period", body = SubscriptionView), crate::error::WriteErrors))]
pub async fn cancel(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    ApiJson(request, _): ApiJson<CancelSubscription>,
) -> Result<Response, ApiError> {
    change(&state, &caller, &id, |s, _| {
        if request.at_period_end {
            s.cancel_at_period_end = true;
        } else {
            s.status = "canceled".into();
        }
        Ok(())
    })
    .await
}
