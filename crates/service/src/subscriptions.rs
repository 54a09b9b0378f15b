//! Subscriptions and pledges: charging a period (`charge_period`, one charge through
//! [`crate::charges`], its id derived from the subscription and the period) and the
//! renewal job (`renew`): the next period, a retry with backoff, `past_due` after
//! [`PAST_DUE_AFTER`] failed tries, `canceled` after [`CANCEL_AFTER`] or at the end of the paid
//! period. The subscription is written with its next job, and the job's events with it.

use farthing_ledger::{Amount, Timestamp};
use farthing_products::schedule::{add_interval, Backoff, Interval};
use serde::Serialize;

use crate::assets::asset_by_id;
use crate::charges::{execute, priced};
use crate::error::ServiceError;
use crate::state::SharedState;
use farthing_products::ids::{encode_id, IdKind};
use farthing_products::money::format_amount;
use farthing_store::outbox::{event_write, EventKind};
use farthing_store::records::{
    BillingInterval, ChargeKind, ChargeRecord, JobKind, SubscriptionRecord, JOBS, SUBSCRIPTIONS,
};
use farthing_store::util::derived_id;
use farthing_store::util::rfc3339;
use farthing_store::RecordWrite;

/// Failed tries after which a subscription is past due.
pub const PAST_DUE_AFTER: u32 = 2;
/// Failed tries after which it is canceled.
pub const CANCEL_AFTER: u32 = 4;

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
    /// `trialing`, `active`, `past_due`, `paused` or `canceled`.
    pub status: String,
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
        id: encode_id(IdKind::Subscription, s.id),
        object: "subscription",
        customer: encode_id(IdKind::Customer, s.customer),
        merchant: encode_id(IdKind::Merchant, s.merchant),
        plan: s.plan.map(|p| encode_id(IdKind::Plan, p)),
        amount: format_amount(Amount(s.amount), asset.scale),
        asset: asset.code.to_string(),
        interval: s.interval,
        status: s.status.clone(),
        cancel_at_period_end: s.cancel_at_period_end,
        next_charge_at: rfc3339(s.next_charge_ns),
        failed_attempts: s.failed_attempts,
        last_failure: s.last_failure.clone(),
        charges: s
            .charges
            .iter()
            .map(|c| encode_id(IdKind::Charge, *c))
            .collect(),
        created: rfc3339(s.created_ns),
    })
}

/// The record and its renewal job, written together.
fn writes(s: &SubscriptionRecord) -> Result<Vec<RecordWrite>, ServiceError> {
    let job = JobKind::SubscriptionRenewal { subscription: s.id };
    let mut writes = vec![RecordWrite::put(SUBSCRIPTIONS, s.id, s)?];
    if s.status == "canceled" || s.status == "paused" {
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
        priced(state, s.merchant, &asset, Amount(s.amount), &[])?;
    let id = derived_id(s.id, "period", "subscription", u64::from(s.next_period));
    let charge = ChargeRecord {
        id,
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
            encode_id(IdKind::Subscription, s.id),
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
        disputed: 0,
        attempt: u64::from(s.failed_attempts),
    };
    execute(state, &charge).await?;
    Ok(id)
}

/// After a paid period: the next one.
pub fn advance(s: &mut SubscriptionRecord, charge: u128) -> Result<(), ServiceError> {
    s.charges.push(charge);
    s.next_period += 1;
    s.failed_attempts = 0;
    s.last_failure = None;
    s.status = "active".into();
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
    if s.status == "canceled" || s.status == "paused" {
        return save(state, &s).await;
    }
    let before = s.status.clone();
    if s.cancel_at_period_end {
        s.status = "canceled".into();
        return save_noting(state, &s, &before, false).await;
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
                        s.status = "past_due".into();
                    }
                    s.next_charge_ns = state
                        .products
                        .clock
                        .now()
                        .saturating_add(delay.as_nanos() as u64);
                }
                _ => s.status = "canceled".into(),
            }
        }
    }
    save_noting(state, &s, &before, renewed).await
}

/// Saves what the renewal job did, with its events in the same transaction:
/// `subscription.renewed` for a paid period, `subscription.past_due` and
/// `subscription.canceled` when the status becomes so.
async fn save_noting(
    state: &SharedState,
    s: &SubscriptionRecord,
    before: &str,
    renewed: bool,
) -> Result<(), ServiceError> {
    let kind = if renewed {
        Some(EventKind::SubscriptionRenewed)
    } else if s.status != before {
        match s.status.as_str() {
            "past_due" => Some(EventKind::SubscriptionPastDue),
            "canceled" => Some(EventKind::SubscriptionCanceled),
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
