//! Post-pay tabs: what a tab's settlement looks like in its events, and which tab a customer
//! has. Settling itself is time-driven work (`products::scheduler::settle_tab`).

use farthing_ledger::Amount;
use serde::Serialize;

use crate::error::ServiceError;
use crate::state::SharedState;
use farthing_products::ids::{encode_id, IdKind};
use farthing_products::money::format_amount;
use farthing_store::records::{SettlementRecord, TabRecord, TABS, TABS_BY_CUSTOMER};
use farthing_store::util::rfc3339;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SettlementView {
    pub id: String,
    pub amount: String,
    pub processor_fee: String,
    /// `succeeded` or `failed`.
    pub status: String,
    pub failure_code: Option<String>,
    pub trigger: String,
    pub created: String,
}

pub fn settlement_view(r: &SettlementRecord, scale: u8) -> SettlementView {
    SettlementView {
        id: encode_id(IdKind::Settlement, r.id),
        amount: format_amount(Amount(r.amount), scale),
        processor_fee: format_amount(Amount(r.processor_fee), scale),
        status: r.status.clone(),
        failure_code: r.failure_code.clone(),
        trigger: r.trigger.clone(),
        created: rfc3339(r.created_ns),
    }
}

/// What a `tab.settled` or `tab.settlement_failed` event carries: the settlement, with its tab,
/// customer and asset.
pub fn settlement_event(
    tab: &TabRecord,
    record: &SettlementRecord,
    asset: &farthing_ledger::Asset,
) -> serde_json::Value {
    let mut data = serde_json::to_value(settlement_view(record, asset.scale)).unwrap_or_default();
    if let Some(map) = data.as_object_mut() {
        map.insert("object".into(), "tab_settlement".into());
        map.insert("tab".into(), encode_id(IdKind::Tab, tab.id).into());
        map.insert(
            "customer".into(),
            encode_id(IdKind::Customer, tab.customer).into(),
        );
        map.insert("asset".into(), asset.code.to_string().into());
    }
    data
}

/// The customer's open tab in `asset`, if it has one.
pub fn tab_of(
    state: &SharedState,
    customer: u128,
    asset: u32,
) -> Result<Option<TabRecord>, ServiceError> {
    let (ids, _) = state.store.indexed(TABS_BY_CUSTOMER, customer, None, 100)?;
    for id in ids {
        if let Some(tab) = state.store.record::<TabRecord>(TABS, id)? {
            if tab.asset == asset {
                return Ok(Some(tab));
            }
        }
    }
    Ok(None)
}
