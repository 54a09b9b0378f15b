//! Reads by id of the objects that are made as part of something else — plans, disputes,
//! top-ups, refunds, allowances — each under the visibility rule of what it belongs to. An
//! object the caller may not see reads as one that does not exist (404 naming `id`).

use farthing_products::ids::{
    AllowanceId, CustomerId, DisputeId, MerchantId, PlanId, RefundId, TopupId, TypedId,
};
use farthing_store::records::{
    AllowanceRecord, CustomerRecord, DisputeRecord, PlanRecord, RefundRecord, TopupRecord,
    ALLOWANCES, CUSTOMERS, DISPUTES, PLANS, REFUNDS, TOPUPS,
};
use serde::de::DeserializeOwned;

use crate::error::ServiceError;
use crate::state::{Principal, SharedState};

/// Record `id` of `table`, if `visible` lets the caller see it.
async fn visible<I: TypedId, R: DeserializeOwned>(
    state: &SharedState,
    table: farthing_store::db::RecordTable,
    id: I,
    visible: impl FnOnce(&R) -> Result<bool, ServiceError>,
) -> Result<R, ServiceError> {
    let missing = || ServiceError::not_found(Some("id"), I::NOUN);
    let id = id.raw();
    // A record answered moments ago may still be in the journal.
    state.products.journal.settle(id).await?;
    let record: R = state.store.record(table, id)?.ok_or_else(missing)?;
    if visible(&record)? {
        Ok(record)
    } else {
        Err(missing())
    }
}

/// The merchant that created `customer` (0: the operator), for rules that follow it.
fn creator_of(state: &SharedState, customer: CustomerId) -> Result<u128, ServiceError> {
    Ok(state
        .store
        .record::<CustomerRecord>(CUSTOMERS, customer.0)?
        .map_or(0, |c| c.creator))
}

/// A plan: its merchant and the operator see it, and customers (who subscribe to it by id).
pub async fn plan(
    state: &SharedState,
    caller: &Principal,
    id: PlanId,
) -> Result<crate::subscriptions::PlanView, ServiceError> {
    let p: PlanRecord = visible(state, PLANS, id, |p: &PlanRecord| {
        Ok(caller.is_customer_token() || caller.can_see(p.merchant.0))
    })
    .await?;
    crate::subscriptions::plan_view(state, &p)
}

/// A dispute: the operator, each merchant it debited, and its customer see it.
pub async fn dispute(
    state: &SharedState,
    caller: &Principal,
    id: DisputeId,
) -> Result<crate::disputes::DisputeView, ServiceError> {
    let d: DisputeRecord = visible(state, DISPUTES, id, |d: &DisputeRecord| {
        Ok(caller.can_see_object(MerchantId(0), Some(d.customer))
            || (!caller.is_customer_token() && d.merchants.iter().any(|(m, _)| caller.can_see(*m))))
    })
    .await?;
    crate::disputes::dispute_view(state, &d)
}

/// A top-up: its customer, the merchant that created the customer, and the operator see it.
pub async fn topup(
    state: &SharedState,
    caller: &Principal,
    id: TopupId,
) -> Result<crate::customers::TopupView, ServiceError> {
    let t: TopupRecord = visible(state, TOPUPS, id, |t: &TopupRecord| {
        Ok(caller.can_see_object(MerchantId(creator_of(state, t.customer)?), Some(t.customer)))
    })
    .await?;
    crate::customers::topup_view(state, &t)
}

/// A refund: whoever may see its charge.
pub async fn refund(
    state: &SharedState,
    caller: &Principal,
    id: RefundId,
) -> Result<crate::charges::RefundView, ServiceError> {
    let missing = || ServiceError::not_found(Some("id"), "refund");
    let r: RefundRecord = visible(state, REFUNDS, id, |_| Ok(true)).await?;
    let charge = crate::charges::load_charge(state, r.charge.0)
        .await?
        .ok_or_else(missing)?;
    let payee =
        !caller.is_customer_token() && charge.payees.iter().any(|p| caller.can_see(p.merchant.0));
    if !(caller.can_see_object(charge.merchant, Some(charge.customer)) || payee) {
        return Err(missing());
    }
    let asset = crate::assets::asset_by_id(state, charge.asset)?;
    Ok(crate::charges::refund_view(state, &r, asset.scale))
}

/// An allowance: its customer, the merchant it lets charge, and the operator see it.
pub async fn allowance(
    state: &SharedState,
    caller: &Principal,
    id: AllowanceId,
) -> Result<crate::customers::AllowanceView, ServiceError> {
    let a: AllowanceRecord = visible(state, ALLOWANCES, id, |a: &AllowanceRecord| {
        Ok(caller.can_see_object(a.merchant, Some(a.customer)))
    })
    .await?;
    crate::customers::allowance_view(state, &a)
}
