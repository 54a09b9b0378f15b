//! Cursor-paginated lists of product objects (customers, charges, holds, subscriptions,
//! campaigns, tabs, events), with one query shape for all of them: `limit`, `starting_after`
//! (a cursor: an object id), and the filters `customer`, `merchant`, `status`, `resource` and
//! the creation time (`created_gte`, `created_lt`).
//!
//! A page walks its table in id order from the cursor, keeps what the caller may see (the same
//! visibility rule as the object's GET) and what matches the filters, and stops at `limit`
//! objects or after [`SCAN_PER_PAGE_MAX`] records, whichever comes first; `next_cursor` says
//! where the next page starts (the last record looked at, which a filter may have left out),
//! so a client pages through any table in bounded steps without gaps or repeats.

use farthing_products::ids::{decode_id, encode_id, IdKind};
use farthing_products::ids::{CustomerId, MerchantId};
use farthing_store::db::RecordTable;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::ServiceError;
use crate::state::{Principal, SharedState};

/// The most records one page looks at.
pub const SCAN_PER_PAGE_MAX: usize = 10_000;
/// Records read from the store at a time.
const SCAN_STEP: usize = 256;

/// What a list asks for, parsed: ids decoded, times in nanoseconds.
#[derive(Debug, Default)]
pub struct ListQuery {
    pub limit: usize,
    pub starting_after: Option<u128>,
    pub customer: Option<CustomerId>,
    pub merchant: Option<MerchantId>,
    pub status: Option<String>,
    pub resource: Option<String>,
    pub created_gte_ns: Option<u64>,
    pub created_lt_ns: Option<u64>,
}

impl ListQuery {
    /// Decodes an id given as filter or cursor `param`; a malformed one is a 400 naming it.
    pub fn id(kind: IdKind, param: &str, text: Option<&str>) -> Result<Option<u128>, ServiceError> {
        text.map(|t| {
            decode_id(kind, t).ok_or_else(|| {
                ServiceError::invalid(
                    param,
                    "invalid_id",
                    format!("{param} must be a {}… id", kind.prefix()),
                )
            })
        })
        .transpose()
    }
}

/// A page of objects as the API shows them.
#[derive(Debug, Serialize)]
pub struct Page {
    pub object: &'static str,
    pub data: Vec<serde_json::Value>,
    pub has_more: bool,
    /// Where the next page starts (`starting_after`); `None` on the last page.
    pub next_cursor: Option<String>,
}

/// What a list filters an object on.
struct Facts {
    /// May the caller see it (the object's own visibility rule)?
    visible: bool,
    merchant: MerchantId,
    customer: Option<CustomerId>,
    created_ns: u64,
}

/// The statuses each list can filter on, as the objects show them.
pub const CHARGE_STATUSES: &[&str] = &["requires_confirmation", "succeeded", "failed"];
pub const HOLD_STATUSES: &[&str] = &["held", "captured", "released", "expired", "failed"];
pub const SUBSCRIPTION_STATUSES: &[&str] =
    &["trialing", "active", "past_due", "paused", "canceled"];
pub const CAMPAIGN_STATUSES: &[&str] = &["active", "succeeded", "failed"];
pub const TAB_STATUSES: &[&str] = &["open", "frozen"];

/// One page of `table`: `facts` says who may see a record and what it is filtered on, `view`
/// renders it; `statuses` are the values `status` may take (empty: no status filter), and
/// `resource` whether the objects have a resource to filter on.
#[allow(clippy::too_many_arguments)]
async fn page<R: DeserializeOwned, V: Serialize>(
    state: &SharedState,
    table: RecordTable,
    kind: IdKind,
    query: &ListQuery,
    statuses: &[&str],
    resource: bool,
    facts: impl Fn(&R) -> Result<Facts, ServiceError>,
    view: impl Fn(&R) -> Result<V, ServiceError>,
) -> Result<Page, ServiceError> {
    if let Some(status) = &query.status {
        if !statuses.contains(&status.as_str()) {
            let allowed = if statuses.is_empty() {
                "this list has no status filter".to_string()
            } else {
                format!("status must be one of: {}", statuses.join(", "))
            };
            return Err(ServiceError::invalid("status", "invalid_status", allowed));
        }
    }
    if query.resource.is_some() && !resource {
        return Err(ServiceError::invalid(
            "resource",
            "invalid_filter",
            "this list has no resource filter",
        ));
    }
    // Every answered write is in the store before the scan starts.
    state.products.journal.settle_all().await?;
    let mut data = Vec::new();
    let mut cursor = query.starting_after;
    let mut looked = 0usize;
    loop {
        let step = SCAN_STEP.min(SCAN_PER_PAGE_MAX - looked);
        let (records, more) = state.store.scan::<R>(table, cursor, step)?;
        for (id, record) in records {
            looked += 1;
            cursor = Some(id);
            let f = facts(&record)?;
            let chosen = f.visible
                && query.merchant.is_none_or(|m| m == f.merchant)
                && query.customer.is_none_or(|c| Some(c) == f.customer)
                && query.created_gte_ns.is_none_or(|t| f.created_ns >= t)
                && query.created_lt_ns.is_none_or(|t| f.created_ns < t);
            if !chosen {
                continue;
            }
            let shown = serde_json::to_value(view(&record)?)
                .map_err(|e| ServiceError::internal(format!("encoding a list: {e}")))?;
            let status_ok = query
                .status
                .as_deref()
                .is_none_or(|s| shown["status"].as_str() == Some(s));
            let resource_ok = query
                .resource
                .as_deref()
                .is_none_or(|r| shown["resource_id"].as_str() == Some(r));
            if status_ok && resource_ok {
                data.push(shown);
                if data.len() == query.limit {
                    let has_more = more
                        || looked < SCAN_PER_PAGE_MAX && {
                            // Only more records in the table, not necessarily more matches.
                            !state.store.scan::<R>(table, cursor, 1)?.0.is_empty()
                        };
                    return Ok(finish(data, has_more, cursor, kind));
                }
            }
        }
        if !more {
            return Ok(finish(data, false, cursor, kind));
        }
        if looked >= SCAN_PER_PAGE_MAX {
            return Ok(finish(data, true, cursor, kind));
        }
    }
}

fn finish(
    data: Vec<serde_json::Value>,
    has_more: bool,
    cursor: Option<u128>,
    kind: IdKind,
) -> Page {
    Page {
        object: "list",
        data,
        has_more,
        next_cursor: cursor.filter(|_| has_more).map(|c| encode_id(kind, c)),
    }
}

/// The customers the caller may see: the operator all, a merchant those it created, a customer
/// token itself.
pub async fn customers(
    state: &SharedState,
    caller: &Principal,
    query: &ListQuery,
) -> Result<Page, ServiceError> {
    use farthing_store::records::{CustomerRecord, CUSTOMERS};
    page(
        state,
        CUSTOMERS,
        IdKind::Customer,
        query,
        &[],
        false,
        |c: &CustomerRecord| {
            Ok(Facts {
                visible: caller.can_see_object(MerchantId(c.creator), Some(c.id)),
                merchant: MerchantId(c.creator),
                customer: Some(c.id),
                created_ns: c.created_ns,
            })
        },
        |c| crate::customers::customer_view(state, c, None),
    )
    .await
}

/// The charges (and tips) the caller may see: its customer's, its merchant's or a payee's.
pub async fn charges(
    state: &SharedState,
    caller: &Principal,
    query: &ListQuery,
) -> Result<Page, ServiceError> {
    use farthing_store::records::{ChargeRecord, CHARGES};
    page(
        state,
        CHARGES,
        IdKind::Charge,
        query,
        CHARGE_STATUSES,
        true,
        |c: &ChargeRecord| {
            let payee = !caller.is_customer_token()
                && c.payees.iter().any(|p| caller.can_see(p.merchant.0));
            Ok(Facts {
                visible: caller.can_see_object(c.merchant, Some(c.customer)) || payee,
                merchant: c.merchant,
                customer: Some(c.customer),
                created_ns: c.created_ns,
            })
        },
        |c| crate::charges::charge_view(state, c),
    )
    .await
}

/// The escrow holds the caller may see: its customer's, its worker's.
pub async fn holds(
    state: &SharedState,
    caller: &Principal,
    query: &ListQuery,
) -> Result<Page, ServiceError> {
    use farthing_store::records::{HoldRecord, HOLDS};
    page(
        state,
        HOLDS,
        IdKind::Hold,
        query,
        HOLD_STATUSES,
        false,
        |h: &HoldRecord| {
            Ok(Facts {
                visible: caller.can_see_object(h.merchant, Some(h.customer)),
                merchant: h.merchant,
                customer: Some(h.customer),
                created_ns: h.created_ns,
            })
        },
        |h| crate::holds::view(state, h),
    )
    .await
}

/// The subscriptions the caller may see: its customer's, its merchant's.
pub async fn subscriptions(
    state: &SharedState,
    caller: &Principal,
    query: &ListQuery,
) -> Result<Page, ServiceError> {
    use farthing_store::records::{SubscriptionRecord, SUBSCRIPTIONS};
    page(
        state,
        SUBSCRIPTIONS,
        IdKind::Subscription,
        query,
        SUBSCRIPTION_STATUSES,
        false,
        |s: &SubscriptionRecord| {
            Ok(Facts {
                visible: caller.can_see_object(s.merchant, Some(s.customer)),
                merchant: s.merchant,
                customer: Some(s.customer),
                created_ns: s.created_ns,
            })
        },
        |s| crate::subscriptions::view(state, s),
    )
    .await
}

/// Campaigns: public objects (anyone may read one by id), so every caller lists them all.
pub async fn campaigns(state: &SharedState, query: &ListQuery) -> Result<Page, ServiceError> {
    use farthing_store::records::{CampaignRecord, CAMPAIGNS};
    if query.customer.is_some() {
        return Err(ServiceError::invalid(
            "customer",
            "invalid_filter",
            "campaigns have no customer to filter on",
        ));
    }
    page(
        state,
        CAMPAIGNS,
        IdKind::Campaign,
        query,
        CAMPAIGN_STATUSES,
        false,
        |c: &CampaignRecord| {
            Ok(Facts {
                visible: true,
                merchant: c.merchant,
                customer: None,
                created_ns: c.created_ns,
            })
        },
        |c| crate::campaigns::view(state, c),
    )
    .await
}

/// The tabs the caller may see: its customer's, those of customers its merchant created.
pub async fn tabs(
    state: &SharedState,
    caller: &Principal,
    query: &ListQuery,
) -> Result<Page, ServiceError> {
    use farthing_store::records::{CustomerRecord, TabRecord, CUSTOMERS, TABS};
    page(
        state,
        TABS,
        IdKind::Tab,
        query,
        TAB_STATUSES,
        false,
        |t: &TabRecord| {
            let creator = state
                .store
                .record::<CustomerRecord>(CUSTOMERS, t.customer.0)?
                .map_or(0, |c| c.creator);
            Ok(Facts {
                visible: caller.can_see_object(MerchantId(creator), Some(t.customer)),
                merchant: MerchantId(creator),
                customer: Some(t.customer),
                created_ns: t.created_ns,
            })
        },
        |t| crate::tabs::tab_view(state, t),
    )
    .await
}

/// The webhook events the caller may see: the operator all, a merchant its own.
pub async fn events(
    state: &SharedState,
    caller: &Principal,
    query: &ListQuery,
) -> Result<Page, ServiceError> {
    use farthing_store::outbox::{EventRecord, EVENTS};
    if query.customer.is_some() {
        return Err(ServiceError::invalid(
            "customer",
            "invalid_filter",
            "events have no customer to filter on",
        ));
    }
    page(
        state,
        EVENTS,
        IdKind::Event,
        query,
        &[],
        false,
        |e: &EventRecord| {
            Ok(Facts {
                visible: caller.is_operator() || e.merchant.is_some_and(|m| caller.can_see(m.0)),
                merchant: e.merchant.unwrap_or(MerchantId(0)),
                customer: None,
                created_ns: e.created_ns,
            })
        },
        |e| Ok(crate::webhooks::event_view(e)),
    )
    .await
}

/// The statuses of transfers: a hold's, or `posted`.
pub const TRANSFER_STATUSES: &[&str] = &["posted", "pending", "voided", "expired"];

/// The ledger transfers the caller may see (one of its accounts on either side; the operator
/// all), oldest first, in the same bounded pages. Transfers have no customer and no resource.
pub fn transfers(
    state: &SharedState,
    caller: &Principal,
    query: &ListQuery,
) -> Result<Page, ServiceError> {
    for (param, set) in [
        ("customer", query.customer.is_some()),
        ("resource", query.resource.is_some()),
    ] {
        if set {
            return Err(ServiceError::invalid(
                param,
                "invalid_filter",
                format!("transfers have no {param} to filter on"),
            ));
        }
    }
    if let Some(status) = &query.status {
        if !TRANSFER_STATUSES.contains(&status.as_str()) {
            return Err(ServiceError::invalid(
                "status",
                "invalid_status",
                format!("status must be one of: {}", TRANSFER_STATUSES.join(", ")),
            ));
        }
    }
    let mut data = Vec::new();
    let mut cursor = query.starting_after.map(farthing_ledger::TransferId);
    let mut looked = 0usize;
    loop {
        let step = SCAN_STEP.min(SCAN_PER_PAGE_MAX - looked);
        let (batch, more) = state
            .engine
            .read(|l| l.transfers_after(cursor, step))
            .map_err(|_| {
                ServiceError::invalid(
                    "starting_after",
                    "invalid_id",
                    "starting_after names no transfer",
                )
            })?;
        let batch_len = batch.len();
        for (i, t) in batch.into_iter().enumerate() {
            looked += 1;
            cursor = Some(t.id);
            let owners = state.owners_of(&[t.debit_account_id.0, t.credit_account_id.0])?;
            let visible =
                caller.is_operator() || owners.iter().flatten().any(|o| caller.can_see(*o));
            let merchant_ok = query
                .merchant
                .is_none_or(|m| owners.iter().flatten().any(|o| *o == m.0));
            let created = t.timestamp.0;
            let time_ok = query.created_gte_ns.is_none_or(|g| created >= g)
                && query.created_lt_ns.is_none_or(|l| created < l);
            if !(visible && merchant_ok && time_ok) {
                continue;
            }
            let Some(asset) = state.engine.read(|l| l.asset_by_id(t.asset)) else {
                continue;
            };
            let shown = crate::transfers::view(&asset, &t);
            if query.status.as_deref().is_some_and(|s| shown.status != s) {
                continue;
            }
            data.push(
                serde_json::to_value(shown)
                    .map_err(|e| ServiceError::internal(format!("encoding a list: {e}")))?,
            );
            if data.len() == query.limit {
                let has_more = more || i + 1 < batch_len;
                return Ok(finish(
                    data,
                    has_more,
                    cursor.map(|c| c.0),
                    IdKind::Transfer,
                ));
            }
        }
        if !more {
            return Ok(finish(data, false, cursor.map(|c| c.0), IdKind::Transfer));
        }
        if looked >= SCAN_PER_PAGE_MAX {
            return Ok(finish(data, true, cursor.map(|c| c.0), IdKind::Transfer));
        }
    }
}
