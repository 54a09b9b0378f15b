//! Customers' money: wallet top-ups through the card processor (`run_topup`), automatic
//! top-ups after a charge ([`maybe_auto_topup`]), and the allowances charges consent by.

use farthing_ledger::{Amount, Asset, AssetId};
use farthing_products::processor::{ProcessorCharge, ProcessorOutcome};
use serde::Serialize;

use crate::assets::asset_by_id;
use crate::error::ServiceError;
use crate::state::Principal;
use crate::state::SharedState;
use crate::submit::{available, LedgerAccount};
use farthing_products::accounts::{chain_id, CODE_TOPUP};
use farthing_products::ids::decode_id;
use farthing_products::ids::{encode_id, IdKind};
use farthing_products::money::format_amount;
use farthing_store::outbox::{event_write, EventKind};
use farthing_store::records::{
    AllowanceRecord, CustomerRecord, TopupRecord, CUSTOMERS, TOPUPS, TOPUPS_ALL, TOPUPS_BY_CUSTOMER,
};
use farthing_store::util::derived_id;
use farthing_store::util::rfc3339;
use farthing_store::{Changes, RecordWrite};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TopupView {
    pub id: String,
    pub object: &'static str,
    pub customer: String,
    pub amount: String,
    pub asset: String,
    /// What the card processor kept: what this money cost to bring in.
    pub processor_fee: String,
    /// `succeeded` or `failed`.
    pub status: String,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    pub automatic: bool,
    pub created: String,
}

pub fn topup_view(state: &SharedState, t: &TopupRecord) -> Result<TopupView, ServiceError> {
    let asset = asset_by_id(state, t.asset)?;
    Ok(TopupView {
        id: encode_id(IdKind::Topup, t.id),
        object: "topup",
        customer: encode_id(IdKind::Customer, t.customer),
        amount: format_amount(Amount(t.amount), asset.scale),
        asset: asset.code.to_string(),
        processor_fee: format_amount(Amount(t.processor_fee), asset.scale),
        status: t.status.clone(),
        failure_code: t.failure_code.clone(),
        failure_message: t.failure_message.clone(),
        automatic: t.automatic,
        created: rfc3339(t.created_ns),
    })
}

/// Charges the card and, if it succeeds, books the top-up and the processor's fee as one
/// chain: the wallet gets the whole amount, and the fee is the platform's expense.
pub async fn run_topup(
    state: &SharedState,
    customer: &CustomerRecord,
    asset: &Asset,
    amount: Amount,
    payment_method: &str,
    id: u128,
    automatic: bool,
) -> Result<TopupRecord, ServiceError> {
    let outcome = state.products.processor.charge(&ProcessorCharge {
        idempotency_key: format!("topup_{id:032x}"),
        payment_method: payment_method.to_string(),
        amount,
        asset_scale: asset.scale,
        description: "farthing wallet top-up".into(),
    });
    let mut record = TopupRecord {
        id,
        customer: customer.id,
        asset: asset.id.0,
        amount: amount.0,
        processor_fee: 0,
        payment_method: payment_method.to_string(),
        status: "failed".into(),
        processor_charge_id: None,
        failure_code: None,
        failure_message: None,
        automatic,
        created_ns: state.products.clock.now(),
    };
    match outcome {
        ProcessorOutcome::Succeeded {
            processor_charge_id,
            fee,
        } => {
            let wallet = LedgerAccount::Wallet {
                customer: customer.id,
            };
            record.status = "succeeded".into();
            record.processor_fee = fee.0;
            record.processor_charge_id = Some(processor_charge_id);
            let event = event_write(
                &state.store,
                EventKind::TopupSucceeded,
                None,
                record.created_ns,
                || topup_view(state, &record),
            )?;
            state
                .products
                .book_card_charge(
                    &state.engine,
                    wallet,
                    (amount, fee),
                    CODE_TOPUP,
                    (chain_id(id, "topup", 0), asset.id, id),
                    event,
                )
                .await?;
        }
        ProcessorOutcome::Failed { reason, message } => {
            record.failure_code = Some(reason.code().to_string());
            record.failure_message = Some(message);
        }
    }
    Ok(record)
}

/// The store writes of a finished top-up: its record, its index entries, and for a declined
/// one its `topup.failed` event (a succeeded one's event rode with its chain).
pub fn topup_writes(
    state: &SharedState,
    record: &TopupRecord,
) -> Result<Vec<RecordWrite>, ServiceError> {
    let failed = (record.status == "failed")
        .then(|| {
            event_write(
                &state.store,
                EventKind::TopupFailed,
                None,
                record.created_ns,
                || topup_view(state, record),
            )
        })
        .transpose()?
        .flatten();
    Ok([
        RecordWrite::put(TOPUPS, record.id, record)?,
        RecordWrite::Index {
            index: TOPUPS_BY_CUSTOMER,
            parent: record.customer,
            id: record.id,
        },
        RecordWrite::Index {
            index: TOPUPS_ALL,
            parent: 0,
            id: record.id,
        },
    ]
    .into_iter()
    .chain(failed)
    .collect())
}

/// After a wallet charge: if the wallet fell below the customer's auto top-up threshold, top it
/// up, at most once per UTC day (the top-up's id is derived from the day, so concurrent
/// triggers and retries name one top-up). A decline turns auto top-up off and says why.
pub async fn maybe_auto_topup(state: SharedState, customer_id: u128, asset: AssetId) {
    let result = async {
        let Some(customer) = state
            .store
            .record::<CustomerRecord>(CUSTOMERS, customer_id)?
        else {
            return Ok::<(), ServiceError>(());
        };
        let Some(auto) = customer.auto_topup.clone() else {
            return Ok(());
        };
        if !auto.enabled || auto.asset != asset.0 {
            return Ok(());
        }
        let wallet = LedgerAccount::Wallet {
            customer: customer_id,
        }
        .id(asset);
        if available(&state.engine, wallet).0 >= auto.threshold {
            return Ok(());
        }
        let day = state.products.clock.now() / 86_400_000_000_000;
        let id = derived_id(customer_id, &day.to_string(), "auto_topup", 0);
        if state.store.record::<TopupRecord>(TOPUPS, id)?.is_some() {
            return Ok(());
        }
        let _guard = state.products.lock(id).await;
        if state.store.record::<TopupRecord>(TOPUPS, id)?.is_some() {
            return Ok(());
        }
        let asset = asset_by_id(&state, asset.0)?;
        let record = run_topup(
            &state,
            &customer,
            &asset,
            Amount(auto.amount),
            &auto.payment_method,
            id,
            true,
        )
        .await?;
        let mut writes = topup_writes(&state, &record)?;
        if record.status != "succeeded" {
            let _customer_guard = state.products.lock(customer_id).await;
            if let Some(mut fresh) = state
                .store
                .record::<CustomerRecord>(CUSTOMERS, customer_id)?
            {
                if let Some(a) = fresh.auto_topup.as_mut() {
                    a.enabled = false;
                    a.disabled_reason = Some(format!(
                        "top-up {} declined: {}",
                        encode_id(IdKind::Topup, id),
                        record.failure_code.as_deref().unwrap_or("card_declined")
                    ));
                }
                writes.push(RecordWrite::put(CUSTOMERS, customer_id, &fresh)?);
            }
            state
                .commit(Changes {
                    records: writes,
                    ..Changes::default()
                })
                .await?;
            state.products.cache.forget_customer(customer_id);
            return Ok(());
        }
        state
            .commit(Changes {
                records: writes,
                ..Changes::default()
            })
            .await
    }
    .await;
    if let Err(error) = result {
        tracing::warn!(error = %error.message, "auto top-up failed");
    }
}

/// The customer's allowances, revoked ones included.
pub fn allowances_of(
    state: &SharedState,
    customer: u128,
) -> Result<std::sync::Arc<Vec<AllowanceRecord>>, ServiceError> {
    state.products.cache.allowances(&state.store, customer)
}

/// The customer `id` if the caller may see it: the operator (or a global read-only key), the
/// merchant that created it, or the customer itself; otherwise 404.
pub fn visible_customer(
    state: &SharedState,
    caller: &Principal,
    id: &str,
    param: &str,
) -> Result<CustomerRecord, ServiceError> {
    let missing = || ServiceError::not_found(Some(param), "customer");
    let id = decode_id(IdKind::Customer, id).ok_or_else(missing)?;
    let customer: CustomerRecord = state.store.record(CUSTOMERS, id)?.ok_or_else(missing)?;
    let visible = caller.can_see_object(customer.creator, Some(id));
    if !visible {
        return Err(missing());
    }
    Ok(customer)
}

/// The payment method must be one the customer stored; otherwise 404 naming it.
pub fn require_payment_method(customer: &CustomerRecord, token: &str) -> Result<(), ServiceError> {
    if !customer.payment_methods.iter().any(|p| p.token == token) {
        return Err(ServiceError::not_found(
            Some("payment_method"),
            "payment method",
        ));
    }
    Ok(())
}
