//! Plans, subscriptions and pledges: creating a plan ([`create_plan`]), subscribing
//! ([`subscribe`]: the first period charged up front, or a trial), pausing, resuming and
//! canceling; charging a period (`charge_period`, one charge through [`crate::charges`], its id
//! derived from the subscription and the period) and the renewal job (`renew`): the next
//! period, a retry with backoff, `past_due` after [`PAST_DUE_AFTER`] failed tries, `canceled`
//! after [`CANCEL_AFTER`] or at the end of the paid period. The subscription is written with
//! its next job, and the job's events with it.

use farthing_ledger::{Amount, Asset, Timestamp};
use farthing_products::ids::ChargeId;
use farthing_products::ids::PlanId;
use farthing_products::ids::SubscriptionId;
use farthing_products::ids::{CustomerId, MerchantId};
use farthing_products::schedule::{add_interval, Backoff, Interval};
use serde::Serialize;

use crate::assets::asset_by_id;
use crate::charges::{execute, priced};
use crate::error::ServiceError;
use crate::state::{to_json, Principal, Reply, SharedState};
use farthing_products::ids::{encode_id, IdKind};
use farthing_products::money::format_amount;
use farthing_store::outbox::{event_write, EventKind};
pub use farthing_store::records::{BillingInterval, SubscriptionStatus};
use farthing_store::records::{
    ChargeKind, ChargeRecord, JobKind, PlanRecord, SubscriptionRecord, JOBS, PLANS, SUBSCRIPTIONS,
};
use farthing_store::util::rfc3339;
use farthing_store::util::{derived_id, random_id, sha256};
use farthing_store::{Changes, RecordWrite};

/// Failed tries after which a subscription is past due.
pub const PAST_DUE_AFTER: u32 = 2;
/// Failed tries after which it is canceled.
pub const CANCEL_AFTER: u32 = 4;
/// The longest free trial a plan may give.
const TRIAL_DAYS_MAX: u32 = 365;

fn retry_backoff() -> Result<Backoff, ServiceError> {
    Backoff::new(3600, 2, 86_400, CANCEL_AFTER)
        .map_err(|e| ServiceError::internal(format!("backoff: {e}")))
}

fn interval(i: BillingInterval) -> Interval {
    match i {
        BillingInterval::Day => Interval::Day,
        BillingInterval::Week => Interval::Week,
        BillingInterval::Month => Interval::Month,
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SubscriptionView {
    pub id: String,
    pub object: &'static str,
    pub customer: String,
    pub merchant: String,
    /// `None` for a pledge.
    pub plan: Option<String>,
    pub amount: String,
    pub asset: String,
    pub interval: BillingInterval,
    pub status: SubscriptionStatus,
    pub cancel_at_period_end: bool,
    /// When the next period is charged (or retried).
    pub next_charge_at: String,
    pub failed_attempts: u32,
    pub last_failure: Option<String>,
    /// The period charges (`ch_…`), in order.
    pub charges: Vec<String>,
    pub created: String,
}

pub fn view(state: &SharedState, s: &SubscriptionRecord) -> Result<SubscriptionView, ServiceError> {
    let asset = asset_by_id(state, s.asset)?;
    Ok(SubscriptionView {
        id: encode_id(IdKind::Subscription, s.id.0),
        object: "subscription",
        customer: encode_id(IdKind::Customer, s.customer.0),
        merchant: encode_id(IdKind::Merchant, s.merchant.0),
        plan: s.plan.map(|p| encode_id(IdKind::Plan, p.0)),
        amount: format_amount(s.amount, asset.scale),
        asset: asset.code.to_string(),
        interval: s.interval,
        status: s.status,
        cancel_at_period_end: s.cancel_at_period_end,
        next_charge_at: rfc3339(s.next_charge_ns),
        failed_attempts: s.failed_attempts,
        last_failure: s.last_failure.clone(),
        charges: s
            .charges
            .iter()
            .map(|c| encode_id(IdKind::Charge, c.0))
            .collect(),
        created: rfc3339(s.created_ns),
    })
}

/// The record and its renewal job, written together.
fn writes(s: &SubscriptionRecord) -> Result<Vec<RecordWrite>, ServiceError> {
    let job = JobKind::SubscriptionRenewal { subscription: s.id };
    let mut writes = vec![RecordWrite::put(SUBSCRIPTIONS, s.id, s)?];
    if s.status.is_stopped() {
        writes.push(RecordWrite::Delete {
            table: JOBS,
            id: crate::scheduler::job_id(job),
        });
    } else {
        writes.push(crate::scheduler::job_write(job, s.next_charge_ns)?);
    }
    Ok(writes)
}

pub async fn save(state: &SharedState, s: &SubscriptionRecord) -> Result<(), ServiceError> {
    Ok(state.products.records.write(writes(s)?).await?)
}

/// Charges period `s.next_period` (its id derives from the subscription and the period; the
/// attempt from the failed tries, since the ledger answers a retried id with its first
/// answer). Returns the charge id.
pub async fn charge_period(
    state: &SharedState,
    s: &SubscriptionRecord,
) -> Result<u128, ServiceError> {
    if let Some((tab, _)) = s.tab {
        let record = crate::tabs::tab_of(state, s.customer, s.asset)?;
        if record.is_none_or(|t| t.id != tab || t.frozen) {
            return Err(ServiceError::refused(
                "tab_frozen",
                "the customer's tab is frozen (or closed)",
            ));
        }
    }
    let asset = asset_by_id(state, s.asset)?;
    let (platform_fee, merchant_net, payees, rounding) =
        priced(state, s.merchant, &asset, s.amount, &[])?;
    let id = derived_id(s.id.0, "period", "subscription", u64::from(s.next_period));
    let charge = ChargeRecord {
        id: ChargeId(id),
        kind: ChargeKind::Charge,
        merchant: s.merchant,
        customer: s.customer,
        asset: s.asset,
        amount: s.amount,
        platform_fee,
        merchant_net,
        payees,
        rounding,
        description: format!(
            "subscription {} period {}",
            encode_id(IdKind::Subscription, s.id.0),
            s.next_period
        ),
        resource_id: None,
        message: None,
        allowance: None,
        requires_confirmation: false,
        created_ns: state.products.clock.now(),
        refunds: Vec::new(),
        request_hash: None,
        tab: s.tab,
        disputed: Amount::ZERO,
        attempt: u64::from(s.failed_attempts),
    };
    execute(state, &charge).await?;
    Ok(id)
}

/// After a paid period: the next one.
pub fn advance(s: &mut SubscriptionRecord, charge: u128) -> Result<(), ServiceError> {
    s.charges.push(ChargeId(charge));
    s.next_period += 1;
    s.failed_attempts = 0;
    s.last_failure = None;
    s.status = SubscriptionStatus::Active;
    let since_anchor = s.next_period.saturating_sub(s.anchor_period);
    s.next_charge_ns = add_interval(Timestamp(s.anchor_ns), interval(s.interval), since_anchor)
        .map_err(|e| ServiceError::internal(format!("period: {e}")))?
        .0;
    Ok(())
}

/// Resuming a paused subscription at `now`: if its next period should have started while it
/// was paused, that period starts now instead and the schedule is re-anchored there, so the
/// periods that went by while paused are never billed. Resuming before the next period starts
/// changes nothing.
pub fn resume_at(s: &mut SubscriptionRecord, now: u64) {
    if s.next_charge_ns < now {
        s.anchor_ns = now;
        s.anchor_period = s.next_period;
        s.next_charge_ns = now;
    }
}

/// The renewal job: charges the next period (or retries it), ends a subscription canceled at
/// its period's end, and writes the subscription with its next job.
pub async fn renew(state: &SharedState, id: u128) -> Result<(), ServiceError> {
    let _guard = state.products.lock(id).await;
    let Some(mut s) = state
        .store
        .record::<SubscriptionRecord>(SUBSCRIPTIONS, id)?
    else {
        return Ok(());
    };
    if s.status.is_stopped() {
        return save(state, &s).await;
    }
    let before = s.status;
    if s.cancel_at_period_end {
        s.status = SubscriptionStatus::Canceled;
        return save_noting(state, &s, before, false).await;
    }
    let mut renewed = false;
    match charge_period(state, &s).await {
        Ok(charge) => {
            advance(&mut s, charge)?;
            renewed = true;
        }
        Err(error) if error.kind.is_server_fault() => return Err(error),
        Err(error) => {
            s.failed_attempts += 1;
            s.last_failure = Some(error.code.to_string());
            match retry_backoff()?.delay(s.failed_attempts) {
                Some(delay) if s.failed_attempts < CANCEL_AFTER => {
                    if s.failed_attempts >= PAST_DUE_AFTER {
                        s.status = SubscriptionStatus::PastDue;
                    }
                    s.next_charge_ns = state
                        .products
                        .clock
                        .now()
                        .saturating_add(delay.as_nanos() as u64);
                }
                _ => s.status = SubscriptionStatus::Canceled,
            }
        }
    }
    save_noting(state, &s, before, renewed).await
}

/// Saves what the renewal job did, with its events in the same transaction:
/// `subscription.renewed` for a paid period, `subscription.past_due` and
/// `subscription.canceled` when the status becomes so.
async fn save_noting(
    state: &SharedState,
    s: &SubscriptionRecord,
    before: SubscriptionStatus,
    renewed: bool,
) -> Result<(), ServiceError> {
    let kind = if renewed {
        Some(EventKind::SubscriptionRenewed)
    } else if s.status != before {
        match s.status {
            SubscriptionStatus::PastDue => Some(EventKind::SubscriptionPastDue),
            SubscriptionStatus::Canceled => Some(EventKind::SubscriptionCanceled),
            _ => None,
        }
    } else {
        None
    };
    let mut records = writes(s)?;
    if let Some(kind) = kind {
        records.extend(event_write(
            &state.store,
            kind,
            Some(s.merchant),
            state.products.clock.now(),
            || view(state, s),
        )?);
    }
    Ok(state.products.records.write(records).await?)
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

pub fn plan_view(state: &SharedState, p: &PlanRecord) -> Result<PlanView, ServiceError> {
    let asset = asset_by_id(state, p.asset)?;
    Ok(PlanView {
        id: encode_id(IdKind::Plan, p.id.0),
        object: "plan",
        merchant: encode_id(IdKind::Merchant, p.merchant.0),
        name: p.name.clone(),
        amount: format_amount(p.amount, asset.scale),
        asset: asset.code.to_string(),
        interval: p.interval,
        trial_days: p.trial_days,
    })
}

/// The merchant a plan is created for: the caller's, which must be a merchant key that writes.
pub fn plan_merchant(principal: &Principal) -> Result<MerchantId, ServiceError> {
    principal.require_write()?;
    principal
        .merchant()
        .ok_or_else(|| ServiceError::forbidden("a plan is created with the merchant's key"))
}

/// A plan to create: `amount` of `asset` every `interval`, after `trial_days` free days.
pub struct NewPlan {
    /// From [`plan_merchant`].
    pub merchant: MerchantId,
    pub name: String,
    pub asset: Asset,
    pub amount: Amount,
    pub interval: BillingInterval,
    pub trial_days: u32,
}

/// Creates a plan: 201 with the plan, stored under the merchant's Idempotency-Key `key`.
pub async fn create_plan(
    state: &SharedState,
    key: Option<String>,
    request: &[u8],
    plan: NewPlan,
) -> Result<Reply, ServiceError> {
    if plan.trial_days > TRIAL_DAYS_MAX {
        return Err(ServiceError::invalid(
            "trial_days",
            "invalid_trial",
            format!("trial_days must be 0 to {TRIAL_DAYS_MAX}"),
        ));
    }
    state
        .idempotent(plan.merchant.0, key, "plans", request, || async move {
            let plan = PlanRecord {
                id: PlanId(random_id()),
                merchant: plan.merchant,
                name: plan.name,
                asset: plan.asset.id.0,
                amount: plan.amount,
                interval: plan.interval,
                trial_days: plan.trial_days,
                created_ns: state.products.clock.now(),
            };
            let body = to_json(&plan_view(state, &plan)?)?;
            Ok((
                201u16,
                body,
                Changes {
                    records: vec![RecordWrite::put(PLANS, plan.id, &plan)?],
                    ..Changes::default()
                },
            ))
        })
        .await
}

/// The customer who subscribes: only the customer's own token does (consent is the customer's).
pub fn subscriber(principal: &Principal) -> Result<CustomerId, ServiceError> {
    principal.own_customer("a subscription is made")
}

/// What a subscription charges: a plan's terms, or a pledge's (no plan, no trial).
pub struct Terms {
    pub plan: Option<PlanId>,
    pub merchant: MerchantId,
    pub asset: Asset,
    pub amount: Amount,
    pub interval: BillingInterval,
    pub trial_days: u32,
}

impl Terms {
    /// A pledge: a customer-chosen `amount` to `merchant` every `interval`.
    pub fn pledge(
        merchant: MerchantId,
        asset: Asset,
        amount: Amount,
        interval: BillingInterval,
    ) -> Terms {
        Terms {
            plan: None,
            merchant,
            asset,
            amount,
            interval,
            trial_days: 0,
        }
    }
}

/// The terms of plan `id` (`plan_…`), or 404 naming `plan`.
pub fn plan_terms(state: &SharedState, id: PlanId) -> Result<Terms, ServiceError> {
    let missing = || ServiceError::not_found(Some("plan"), "plan");
    let id = id.0;
    let p: PlanRecord = state.store.record(PLANS, id)?.ok_or_else(missing)?;
    Ok(Terms {
        plan: Some(p.id),
        merchant: p.merchant,
        asset: asset_by_id(state, p.asset)?,
        amount: p.amount,
        interval: p.interval,
        trial_days: p.trial_days,
    })
}

/// Where a subscription's periods are paid from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The customer's prepaid wallet.
    Wallet,
    /// The customer's tab in the asset (it must have one).
    Tab,
}

/// Subscribes `customer` (from [`subscriber`]) on `terms`: the first period is charged now (a
/// refusal leaves a canceled subscription and answers the refusal), or a trial starts. 201
/// with the subscription; a retry with the same Idempotency-Key `key` and the same `request`
/// gets it again with 200.
pub async fn subscribe(
    state: &SharedState,
    customer: CustomerId,
    key: Option<String>,
    request: &[u8],
    terms: Terms,
    source: Source,
) -> Result<Reply, ServiceError> {
    let tab = match source {
        Source::Wallet => None,
        Source::Tab => {
            let t = crate::tabs::tab_of(state, customer, terms.asset.id.0)?
                .ok_or_else(|| ServiceError::not_found(Some("source"), "tab"))?;
            Some((t.id, t.limit.0))
        }
    };
    let request_hash = sha256(&[b"subscriptions", request]);
    let id = match &key {
        Some(key) => derived_id(customer.0, key, "subscription", 0),
        None => random_id(),
    };
    let _guard = state.products.lock(id).await;
    if let Some(existing) = state
        .store
        .record::<SubscriptionRecord>(SUBSCRIPTIONS, id)?
    {
        crate::idempotency::same_request(existing.request_hash, Some(request_hash))?;
        return Ok(Reply {
            status: 201,
            body: to_json(&view(state, &existing)?)?,
        });
    }
    let now = state.products.clock.now();
    let anchor = now.saturating_add(u64::from(terms.trial_days) * 86_400_000_000_000);
    let mut s = SubscriptionRecord {
        id: SubscriptionId(id),
        customer,
        merchant: terms.merchant,
        plan: terms.plan,
        asset: terms.asset.id.0,
        amount: terms.amount,
        interval: terms.interval,
        tab,
        status: if terms.trial_days > 0 {
            SubscriptionStatus::Trialing
        } else {
            SubscriptionStatus::Active
        },
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
    if terms.trial_days == 0 {
        // The first period is paid up front; a refusal leaves a canceled subscription.
        match charge_period(state, &s).await {
            Ok(charge) => advance(&mut s, charge)?,
            Err(error) => {
                s.status = SubscriptionStatus::Canceled;
                s.last_failure = Some(error.code.to_string());
                save(state, &s).await?;
                return Err(error);
            }
        }
    }
    save(state, &s).await?;
    Ok(Reply {
        status: 201,
        body: to_json(&view(state, &s)?)?,
    })
}

/// The subscription `id` if the caller may see it: its customer, its merchant, the operator.
fn visible(
    state: &SharedState,
    caller: &Principal,
    id: SubscriptionId,
) -> Result<SubscriptionRecord, ServiceError> {
    let missing = || ServiceError::not_found(Some("id"), "subscription");
    let id = id.0;
    let s: SubscriptionRecord = state.store.record(SUBSCRIPTIONS, id)?.ok_or_else(missing)?;
    let ok = caller.can_see_object(s.merchant, Some(s.customer));
    ok.then_some(s).ok_or_else(missing)
}

/// The subscription `id`, if the caller may see it.
pub fn get(
    state: &SharedState,
    caller: &Principal,
    id: SubscriptionId,
) -> Result<SubscriptionView, ServiceError> {
    view(state, &visible(state, caller, id)?)
}

/// Changes subscription `id`'s state under its lock (the customer, its merchant or the
/// operator), then writes it with its job. A canceled subscription changes no more.
async fn change(
    state: &SharedState,
    caller: &Principal,
    id: SubscriptionId,
    apply: impl FnOnce(&mut SubscriptionRecord, u64) -> Result<(), ServiceError>,
) -> Result<SubscriptionView, ServiceError> {
    caller.require_write()?;
    let s = visible(state, caller, id)?;
    let _guard = state.products.lock(s.id.0).await;
    let mut s: SubscriptionRecord = state
        .store
        .record(SUBSCRIPTIONS, s.id)?
        .ok_or_else(|| ServiceError::not_found(Some("id"), "subscription"))?;
    if s.status == SubscriptionStatus::Canceled {
        return Err(ServiceError::refused(
            "subscription_canceled",
            "the subscription is canceled",
        ));
    }
    apply(&mut s, state.products.clock.now())?;
    save(state, &s).await?;
    view(state, &s)
}

/// Pauses subscription `id`: nothing is charged until it resumes.
pub async fn pause(
    state: &SharedState,
    caller: &Principal,
    id: SubscriptionId,
) -> Result<SubscriptionView, ServiceError> {
    change(state, caller, id, |s, _| {
        s.status = SubscriptionStatus::Paused;
        Ok(())
    })
    .await
}

/// Resumes paused subscription `id` (see [`resume_at`]): the next period is charged when due,
/// at once if it already is.
pub async fn resume(
    state: &SharedState,
    caller: &Principal,
    id: SubscriptionId,
) -> Result<SubscriptionView, ServiceError> {
    change(state, caller, id, |s, now| {
        if s.status != SubscriptionStatus::Paused {
            return Err(ServiceError::refused(
                "subscription_not_paused",
                "only a paused subscription resumes",
            ));
        }
        s.status = if s.next_period == 0 && now < s.anchor_ns {
            SubscriptionStatus::Trialing
        } else {
            SubscriptionStatus::Active
        };
        resume_at(s, now);
        Ok(())
    })
    .await
}

/// Cancels subscription `id`: at the end of the paid period, or now.
pub async fn cancel(
    state: &SharedState,
    caller: &Principal,
    id: SubscriptionId,
    at_period_end: bool,
) -> Result<SubscriptionView, ServiceError> {
    change(state, caller, id, |s, _| {
        if at_period_end {
            s.cancel_at_period_end = true;
        } else {
            s.status = SubscriptionStatus::Canceled;
        }
        Ok(())
    })
    .await
}
