//! Post-pay tabs (the carrier-billing model): opening one ([`open`]), what it owes and its
//! settlements ([`TabView`]), changing its card, what a settlement looks like in its events,
//! and which tab a customer has. Settling itself is time-driven work
//! ([`crate::scheduler::settle_tab`]). The test clock that drives that work in tests
//! ([`advance_test_clock`]) is here too.

use farthing_ledger::{Amount, Asset};
use farthing_products::ids::TabId;
use farthing_products::ids::{CustomerId, MerchantId};
use serde::Serialize;

use crate::assets::asset_by_id;
use crate::customers::{require_payment_method, visible_customer};
use crate::error::{Reason, ServiceError};
use crate::scheduler::{first_period_end, job_write, settle_tab, tab_owed};
use crate::state::{Principal, SharedState};
use farthing_products::ids::{encode_id, IdKind};
use farthing_products::money::format_amount;
use farthing_products::rules::tab::{
    self as rule, SettlementTrigger, TabFrozen, ThresholdAboveLimit,
};
pub use farthing_store::records::TabPeriod;
use farthing_store::records::{
    CustomerRecord, JobKind, SettlementRecord, SettlementStatus, TabRecord, CUSTOMERS, SETTLEMENTS,
    SETTLEMENTS_BY_TAB, TABS, TABS_BY_CUSTOMER,
};
use farthing_store::util::{random_id, rfc3339};
use farthing_store::{Changes, RecordWrite};

/// The most one call may move the test clock.
const ADVANCE_SECONDS_MAX: u64 = 10 * 365 * 86_400;

/// The object lock that serializes test clock moves (0 is never an object's id).
const TEST_CLOCK_LOCK: u128 = 0;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SettlementView {
    pub id: String,
    pub amount: String,
    pub processor_fee: String,
    pub status: SettlementStatus,
    pub failure_code: Option<String>,
    pub trigger: SettlementTrigger,
    pub created: String,
}

pub fn settlement_view(r: &SettlementRecord, scale: u8) -> SettlementView {
    SettlementView {
        id: encode_id(IdKind::Settlement, r.id.0),
        amount: format_amount(r.amount, scale),
        processor_fee: format_amount(r.processor_fee, scale),
        status: r.status,
        failure_code: r.failure_code.clone(),
        trigger: r.trigger,
        created: rfc3339(r.created_ns),
    }
}

/// What a `tab.settled` or `tab.settlement_failed` event carries: the settlement, with its tab,
/// customer and asset.
pub fn settlement_event(
    tab: &TabRecord,
    record: &SettlementRecord,
    asset: &Asset,
) -> serde_json::Value {
    let mut data = serde_json::to_value(settlement_view(record, asset.scale)).unwrap_or_default();
    if let Some(map) = data.as_object_mut() {
        map.insert("object".into(), "tab_settlement".into());
        map.insert("tab".into(), encode_id(IdKind::Tab, tab.id.0).into());
        map.insert(
            "customer".into(),
            encode_id(IdKind::Customer, tab.customer.0).into(),
        );
        map.insert("asset".into(), asset.code.to_string().into());
    }
    data
}

impl From<ThresholdAboveLimit> for ServiceError {
    fn from(refusal: ThresholdAboveLimit) -> ServiceError {
        ServiceError::invalid("settlement_threshold", refusal.code(), refusal.to_string())
    }
}

impl From<TabFrozen> for ServiceError {
    fn from(refusal: TabFrozen) -> ServiceError {
        ServiceError::refusal(Reason::TabFrozen(refusal), refusal.to_string()).with_param("source")
    }
}

/// The customer's open tab in `asset`, if it has one.
pub fn tab_of(
    state: &SharedState,
    customer: CustomerId,
    asset: u32,
) -> Result<Option<TabRecord>, ServiceError> {
    let (ids, _) = state
        .store
        .indexed(TABS_BY_CUSTOMER, customer.0, None, 100)?;
    for id in ids {
        if let Some(tab) = state.store.record::<TabRecord>(TABS, id)? {
            if tab.asset == asset {
                return Ok(Some(tab));
            }
        }
    }
    Ok(None)
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

pub fn tab_view(state: &SharedState, tab: &TabRecord) -> Result<TabView, ServiceError> {
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
        id: encode_id(IdKind::Tab, tab.id.0),
        object: "tab",
        customer: encode_id(IdKind::Customer, tab.customer.0),
        asset: asset.code.to_string(),
        limit: format_amount(tab.limit, s),
        settlement_threshold: format_amount(tab.threshold, s),
        period: tab.period,
        owed: format_amount(tab_owed(state, tab), s),
        status: if tab.frozen { "frozen" } else { "open" },
        frozen_reason: tab.frozen_reason.clone(),
        settlements: settlements.iter().map(|r| settlement_view(r, s)).collect(),
        created: rfc3339(tab.created_ns),
    })
}

/// A tab to open: it may owe up to `limit` of `asset`, and is settled to `payment_method` when
/// it owes `threshold` and at the end of every `period`.
pub struct NewTab {
    pub asset: Asset,
    pub limit: Amount,
    pub threshold: Amount,
    pub period: TabPeriod,
    pub payment_method: String,
}

/// Opens a tab for `customer` (from [`crate::customers::own_customer`]): one per asset.
pub async fn open(
    state: &SharedState,
    customer: &CustomerRecord,
    new: NewTab,
) -> Result<TabView, ServiceError> {
    rule::check_terms(new.limit, new.threshold)?;
    require_payment_method(customer, &new.payment_method)?;
    let _guard = state.products.lock(customer.id.0).await;
    if tab_of(state, customer.id, new.asset.id.0)?.is_some() {
        return Err(ServiceError::refused(
            "tab_exists",
            "the customer already has a tab in this asset",
        )
        .with_param("asset"));
    }
    let now = state.products.clock.now();
    let tab = TabRecord {
        id: TabId(random_id()),
        customer: customer.id,
        asset: new.asset.id.0,
        limit: new.limit,
        threshold: new.threshold,
        period: new.period,
        payment_method: new.payment_method,
        frozen: false,
        frozen_reason: None,
        failed_attempts: 0,
        settled: 0,
        created_ns: now,
    };
    state
        .products
        .ensure_accounts(&state.engine, &[tab.account()], new.asset.id)
        .await?;
    state
        .commit(Changes {
            records: vec![
                RecordWrite::put(TABS, tab.id, &tab)?,
                RecordWrite::Index {
                    index: TABS_BY_CUSTOMER,
                    parent: customer.id.0,
                    id: tab.id.0,
                },
                job_write(
                    JobKind::TabPeriodEnd { tab: tab.id },
                    first_period_end(tab.period, now)?,
                )?,
            ],
            ..Changes::default()
        })
        .await?;
    tab_view(state, &tab)
}

/// The tab `id` if the caller may see it: its customer, the customer's creator, the operator.
pub fn visible_tab(
    state: &SharedState,
    caller: &Principal,
    id: TabId,
) -> Result<TabRecord, ServiceError> {
    let missing = || ServiceError::not_found(Some("id"), "tab");
    let id = id.0;
    let tab: TabRecord = state.store.record(TABS, id)?.ok_or_else(missing)?;
    let customer: CustomerRecord = state
        .store
        .record(CUSTOMERS, tab.customer.0)?
        .ok_or_else(missing)?;
    let visible = caller.can_see_object(MerchantId(customer.creator), Some(tab.customer));
    if !visible {
        return Err(missing());
    }
    Ok(tab)
}

/// The tab `id`, what it owes and its settlements, if the caller may see it.
pub fn get(state: &SharedState, caller: &Principal, id: TabId) -> Result<TabView, ServiceError> {
    tab_view(state, &visible_tab(state, caller, id)?)
}

/// Changes the card tab `id` is settled to (its customer's token only); a frozen tab is
/// settled again at once with the new card.
pub async fn set_payment_method(
    state: &SharedState,
    caller: &Principal,
    id: TabId,
    payment_method: String,
) -> Result<TabView, ServiceError> {
    let missing = || ServiceError::not_found(Some("id"), "tab");
    let tab = visible_tab(state, caller, id)?;
    caller.require_customer(tab.customer)?;
    let customer = visible_customer(state, caller, tab.customer, "id")?;
    require_payment_method(&customer, &payment_method)?;
    let frozen = {
        let _guard = state.products.lock(tab.id.0).await;
        let mut tab: TabRecord = state.store.record(TABS, tab.id)?.ok_or_else(missing)?;
        tab.payment_method = payment_method;
        state
            .commit(Changes {
                records: vec![RecordWrite::put(TABS, tab.id, &tab)?],
                ..Changes::default()
            })
            .await?;
        tab.frozen
    };
    if frozen {
        settle_tab(state, tab.id.0, SettlementTrigger::PaymentMethodUpdated).await?;
    }
    let tab: TabRecord = state.store.record(TABS, tab.id)?.ok_or_else(missing)?;
    tab_view(state, &tab)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ClockView {
    pub object: &'static str,
    pub now: String,
    /// Jobs that ran because they became due.
    pub jobs_run: usize,
}

/// The test clock is the operator's, and exists only with `farthing serve --test-clock`.
fn require_test_clock(state: &SharedState, principal: &Principal) -> Result<(), ServiceError> {
    principal.require_operator()?;
    if !state.products.clock.settable {
        return Err(ServiceError::not_found(
            None,
            "test clock (start with --test-clock)",
        ));
    }
    Ok(())
}

/// The products' clock now (`jobs_run` is 0).
pub fn test_clock(state: &SharedState, principal: &Principal) -> Result<ClockView, ServiceError> {
    require_test_clock(state, principal)?;
    Ok(ClockView {
        object: "test_clock",
        now: rfc3339(state.products.clock.now()),
        jobs_run: 0,
    })
}

/// Moves the products' clock forward by `seconds` (durably) and runs the work now due.
pub async fn advance_test_clock(
    state: &SharedState,
    principal: &Principal,
    seconds: u64,
) -> Result<ClockView, ServiceError> {
    require_test_clock(state, principal)?;
    if seconds > ADVANCE_SECONDS_MAX {
        return Err(ServiceError::invalid(
            "seconds",
            "out_of_range",
            format!("seconds must be at most {ADVANCE_SECONDS_MAX}"),
        ));
    }
    {
        // One advance at a time, so the stored offset is the latest; durable before answering.
        let _advancing = state.products.lock(TEST_CLOCK_LOCK).await;
        state.products.clock.advance(seconds);
        state
            .store
            .set_test_clock_offset(state.products.clock.offset_ns())?;
    }
    // Retries of webhook deliveries may be due now.
    state.store.outbox_ready.notify_one();
    let jobs_run = crate::scheduler::run_due(state).await?;
    Ok(ClockView {
        object: "test_clock",
        now: rfc3339(state.products.clock.now()),
        jobs_run,
    })
}
