//! Customers (end users) and what they own: creating one with its token, payment methods,
//! prepaid wallets, wallet top-ups through the card processor ([`run_topup`]), automatic
//! top-ups after a charge ([`maybe_auto_topup`]), and the allowances charges consent by.
//!
//! Only the customer's own token tops up its wallet, sets its auto top-up, or grants and
//! revokes an allowance ([`own_customer`]): a merchant key alone never moves a customer's money.

use farthing_ledger::{Amount, Asset, AssetId};
use farthing_products::ids::AllowanceId;
use farthing_products::ids::TopupId;
use farthing_products::ids::{CustomerId, MerchantId};
use farthing_products::processor::{ProcessorCharge, ProcessorOutcome};
use serde::{Deserialize, Serialize};

use crate::assets::{asset_by_id, by_code};
use crate::error::ServiceError;
use crate::state::Principal;
use crate::state::SharedState;
use crate::state::{to_json, Reply};
use crate::submit::{available, LedgerAccount};
use farthing_products::accounts::{chain_id, CODE_TOPUP};
use farthing_products::ids::{encode_id, IdKind};
use farthing_products::money::format_amount;
use farthing_store::outbox::{event_write, EventKind};
pub use farthing_store::records::AllowancePeriod;
use farthing_store::records::{
    AllowanceRecord, AutoTopupRecord, CustomerRecord, MonthlyCap, PaymentMethodRecord, TopupRecord,
    TopupStatus, ALLOWANCES, ALLOWANCES_BY_CUSTOMER, CUSTOMERS, CUSTOMERS_BY_CREATOR, TOPUPS,
    TOPUPS_ALL, TOPUPS_BY_CUSTOMER,
};
use farthing_store::util::derived_id;
use farthing_store::util::rfc3339;
use farthing_store::util::{now_ns, random_id};
use farthing_store::{Changes, RecordWrite, Scope};

/// Payment methods one customer may store.
const PAYMENT_METHODS_MAX: usize = 10;
/// Allowances one customer may hold (active or revoked).
const ALLOWANCES_MAX: usize = 1000;

/// An amount in an asset, as exact decimal text.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Money {
    #[schema(pattern = r"^[0-9]{1,39}(\.[0-9]{1,18})?$", example = "5.00")]
    pub amount: String,
    #[schema(pattern = r"^[A-Z0-9_]{1,15}$", example = "USD")]
    pub asset: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PaymentMethodView {
    pub token: String,
    pub brand: String,
    pub last4: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AutoTopupView {
    pub asset: String,
    pub threshold: String,
    pub amount: String,
    pub payment_method: String,
    pub enabled: bool,
    /// Why it was turned off (a declined top-up).
    pub disabled_reason: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CustomerView {
    pub id: String,
    pub object: &'static str,
    pub name: String,
    pub created: String,
    pub monthly_cap: Option<Money>,
    pub payment_methods: Vec<PaymentMethodView>,
    pub auto_topup: Option<AutoTopupView>,
    /// The customer's token (`fk_cu_…`), only in the response that created it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

pub fn customer_view(
    state: &SharedState,
    c: &CustomerRecord,
    token: Option<String>,
) -> Result<CustomerView, ServiceError> {
    let monthly_cap = match &c.monthly_cap {
        Some(cap) => {
            let asset = asset_by_id(state, cap.asset)?;
            Some(Money {
                amount: format_amount(cap.amount, asset.scale),
                asset: asset.code.to_string(),
            })
        }
        None => None,
    };
    let auto_topup = match &c.auto_topup {
        Some(a) => {
            let asset = asset_by_id(state, a.asset)?;
            Some(AutoTopupView {
                asset: asset.code.to_string(),
                threshold: format_amount(a.threshold, asset.scale),
                amount: format_amount(a.amount, asset.scale),
                payment_method: a.payment_method.clone(),
                enabled: a.enabled,
                disabled_reason: a.disabled_reason.clone(),
            })
        }
        None => None,
    };
    Ok(CustomerView {
        id: encode_id(IdKind::Customer, c.id.0),
        object: "customer",
        name: c.name.clone(),
        created: rfc3339(c.created_ns),
        monthly_cap,
        payment_methods: c
            .payment_methods
            .iter()
            .map(|p| PaymentMethodView {
                token: p.token.clone(),
                brand: p.brand.clone(),
                last4: p.last4.clone(),
            })
            .collect(),
        auto_topup,
        token,
    })
}

/// A customer to create: its name (checked by the caller's parser) and the most it may spend
/// in one calendar month (UTC) across all merchants.
pub struct NewCustomer {
    pub name: String,
    pub monthly_cap: Option<(AssetId, Amount)>,
}

/// Creates a customer of the caller's tenant, with its token; the answer (201, the customer
/// with its token, shown once) is stored under the Idempotency-Key `key`.
pub async fn create(
    state: &SharedState,
    principal: &Principal,
    key: Option<String>,
    request: &[u8],
    customer: NewCustomer,
) -> Result<Reply, ServiceError> {
    let creator = principal.tenant();
    state
        .idempotent(creator, key, "customers", request, || async move {
            let record = CustomerRecord {
                id: CustomerId(random_id()),
                name: customer.name,
                creator,
                created_ns: now_ns(),
                monthly_cap: customer.monthly_cap.map(|(asset, amount)| MonthlyCap {
                    asset: asset.0,
                    amount,
                }),
                payment_methods: Vec::new(),
                auto_topup: None,
            };
            let (token, secret) = crate::keys::issue_token(Scope::Customer, None, Some(record.id));
            state.remember_key(token.clone());
            let body = to_json(&customer_view(state, &record, Some(secret))?)?;
            Ok((
                201u16,
                body,
                Changes {
                    api_key: Some(token),
                    records: vec![
                        RecordWrite::put(CUSTOMERS, record.id, &record)?,
                        RecordWrite::Index {
                            index: CUSTOMERS_BY_CREATOR,
                            parent: creator,
                            id: record.id.0,
                        },
                    ],
                    ..Changes::default()
                },
            ))
        })
        .await
}

/// The customer `id`, if the caller may see it.
pub fn get(
    state: &SharedState,
    caller: &Principal,
    id: CustomerId,
) -> Result<CustomerView, ServiceError> {
    customer_view(state, &visible_customer(state, caller, id, "id")?, None)
}

/// The customer `id` for an operation only its own token may do (consent is the customer's):
/// 404 if the caller may not see it, 403 if it is not the customer's token.
pub fn own_customer(
    state: &SharedState,
    caller: &Principal,
    id: CustomerId,
) -> Result<CustomerRecord, ServiceError> {
    let customer = visible_customer(state, caller, id, "id")?;
    caller.require_customer(customer.id)?;
    Ok(customer)
}

/// The customer's record as stored now: read again under its lock before changing it, since
/// another request may have changed it meanwhile.
fn reload(state: &SharedState, id: u128) -> Result<CustomerRecord, ServiceError> {
    state
        .store
        .record(CUSTOMERS, id)?
        .ok_or_else(|| ServiceError::not_found(Some("id"), "customer"))
}

/// Writes a customer record back (changed payment methods or auto top-up).
async fn save_customer(state: &SharedState, customer: &CustomerRecord) -> Result<(), ServiceError> {
    let saved = state
        .commit(Changes {
            records: vec![RecordWrite::put(CUSTOMERS, customer.id, customer)?],
            ..Changes::default()
        })
        .await;
    state.products.cache.forget_customer(customer.id.0);
    saved
}

/// Stores a card as a payment method of customer `id` (its token; the number is not kept).
/// The token is the customer's own (keyed by the platform's secret and the customer: another
/// customer with the same card gets another token), so adding a card already stored finds it
/// and changes nothing.
pub async fn add_payment_method(
    state: &SharedState,
    caller: &Principal,
    id: CustomerId,
    card_number: &str,
) -> Result<PaymentMethodView, ServiceError> {
    caller.require_write()?;
    let customer = visible_customer(state, caller, id, "id")?;
    let _guard = state.products.lock(customer.id.0).await;
    let mut customer = reload(state, customer.id.0)?;
    let method = state
        .products
        .sandbox
        .tokenize(card_number, &state.products.token_key, customer.id.0)
        .map_err(|e| ServiceError::invalid("card_number", "invalid_card_number", e.to_string()))?;
    let view = PaymentMethodView {
        token: method.token.clone(),
        brand: format!("{:?}", method.brand).to_lowercase(),
        last4: method.last4.clone(),
    };
    if !customer
        .payment_methods
        .iter()
        .any(|p| p.token == method.token)
    {
        if customer.payment_methods.len() >= PAYMENT_METHODS_MAX {
            return Err(ServiceError::invalid(
                "card_number",
                "too_many_payment_methods",
                format!("a customer stores at most {PAYMENT_METHODS_MAX} payment methods"),
            ));
        }
        customer.payment_methods.push(PaymentMethodRecord {
            token: view.token.clone(),
            brand: view.brand.clone(),
            last4: view.last4.clone(),
        });
        save_customer(state, &customer).await?;
    }
    Ok(view)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WalletView {
    pub object: &'static str,
    pub customer: String,
    pub asset: String,
    /// What the customer can spend now.
    pub available: String,
}

/// Customer `id`'s prepaid wallet in the asset with code `asset`.
pub fn wallet(
    state: &SharedState,
    caller: &Principal,
    id: CustomerId,
    asset: &str,
) -> Result<WalletView, ServiceError> {
    let customer = visible_customer(state, caller, id, "id")?;
    let asset = by_code(state, asset, "asset")?;
    let balance = available(
        &state.engine,
        LedgerAccount::Wallet {
            customer: customer.id,
        }
        .id(asset.id),
    );
    Ok(WalletView {
        object: "wallet",
        customer: encode_id(IdKind::Customer, customer.id.0),
        asset: asset.code.to_string(),
        available: format_amount(balance, asset.scale),
    })
}

/// A wallet top-up the customer asked for: `amount` of `asset`, charged to `payment_method`.
pub struct NewTopup {
    pub asset: Asset,
    pub amount: Amount,
    pub payment_method: String,
}

/// Tops up the wallet of `customer` (from [`own_customer`]) by charging its card once per
/// Idempotency-Key: 201 with the top-up; a decline is kept (for the customer's history) and
/// answered as `card_declined`.
pub async fn topup(
    state: &SharedState,
    caller: &Principal,
    key: Option<String>,
    request: &[u8],
    customer: CustomerRecord,
    topup: NewTopup,
) -> Result<Reply, ServiceError> {
    require_payment_method(&customer, &topup.payment_method)?;
    let topup_id = match &key {
        Some(key) => derived_id(caller.tenant() ^ customer.id.0, key, "topup", 0),
        None => random_id(),
    };
    let tenant = caller.key_namespace();
    state
        .idempotent(tenant, key, "topups", request, || async move {
            let record = run_topup(
                state,
                &customer,
                &topup.asset,
                topup.amount,
                &topup.payment_method,
                topup_id,
                false,
            )
            .await?;
            if record.status != TopupStatus::Succeeded {
                // Declines are kept too (for the customer's history), then answered with 402.
                state
                    .commit(Changes {
                        records: topup_writes(state, &record)?,
                        ..Changes::default()
                    })
                    .await?;
                return Err(ServiceError::card_declined(
                    record.failure_code.as_deref().unwrap_or("card_declined"),
                    record.failure_message.clone().unwrap_or_default(),
                ));
            }
            let body = to_json(&topup_view(state, &record)?)?;
            Ok((
                201u16,
                body,
                Changes {
                    records: topup_writes(state, &record)?,
                    ..Changes::default()
                },
            ))
        })
        .await
}

/// A customer's auto top-up: below `threshold` of `asset`, top up `amount` from
/// `payment_method`.
pub struct AutoTopup {
    pub asset: AssetId,
    pub threshold: Amount,
    pub amount: Amount,
    pub payment_method: String,
    pub enabled: bool,
}

/// Sets the auto top-up of `customer` (from [`own_customer`]); answers the customer.
pub async fn set_auto_topup(
    state: &SharedState,
    customer: &CustomerRecord,
    settings: AutoTopup,
) -> Result<CustomerView, ServiceError> {
    let _guard = state.products.lock(customer.id.0).await;
    let mut customer = reload(state, customer.id.0)?;
    require_payment_method(&customer, &settings.payment_method)?;
    customer.auto_topup = Some(AutoTopupRecord {
        asset: settings.asset.0,
        threshold: settings.threshold,
        amount: settings.amount,
        payment_method: settings.payment_method,
        enabled: settings.enabled,
        disabled_reason: None,
    });
    save_customer(state, &customer).await?;
    customer_view(state, &customer, None)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TopupView {
    pub id: String,
    pub object: &'static str,
    pub customer: String,
    pub amount: String,
    pub asset: String,
    /// What the card processor kept: what this money cost to bring in.
    pub processor_fee: String,
    pub status: TopupStatus,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    pub automatic: bool,
    pub created: String,
}

pub fn topup_view(state: &SharedState, t: &TopupRecord) -> Result<TopupView, ServiceError> {
    let asset = asset_by_id(state, t.asset)?;
    Ok(TopupView {
        id: encode_id(IdKind::Topup, t.id.0),
        object: "topup",
        customer: encode_id(IdKind::Customer, t.customer.0),
        amount: format_amount(t.amount, asset.scale),
        asset: asset.code.to_string(),
        processor_fee: format_amount(t.processor_fee, asset.scale),
        status: t.status,
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
        id: TopupId(id),
        customer: customer.id,
        asset: asset.id.0,
        amount,
        processor_fee: Amount::ZERO,
        payment_method: payment_method.to_string(),
        status: TopupStatus::Failed,
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
            record.status = TopupStatus::Succeeded;
            record.processor_fee = fee;
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
    let failed = (record.status == TopupStatus::Failed)
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
            parent: record.customer.0,
            id: record.id.0,
        },
        RecordWrite::Index {
            index: TOPUPS_ALL,
            parent: 0,
            id: record.id.0,
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
            customer: CustomerId(customer_id),
        }
        .id(asset);
        if available(&state.engine, wallet) >= auto.threshold {
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
            auto.amount,
            &auto.payment_method,
            id,
            true,
        )
        .await?;
        let mut writes = topup_writes(&state, &record)?;
        if record.status != TopupStatus::Succeeded {
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
    customer: CustomerId,
) -> Result<std::sync::Arc<Vec<AllowanceRecord>>, ServiceError> {
    state.products.cache.allowances(&state.store, customer)
}

/// The customer `id` if the caller may see it: the operator (or a global read-only key), the
/// merchant that created it, or the customer itself; otherwise 404.
pub fn visible_customer(
    state: &SharedState,
    caller: &Principal,
    id: CustomerId,
    param: &str,
) -> Result<CustomerRecord, ServiceError> {
    let missing = || ServiceError::not_found(Some(param), "customer");
    let id = id.0;
    let customer: CustomerRecord = state.store.record(CUSTOMERS, id)?.ok_or_else(missing)?;
    let visible = caller.can_see_object(MerchantId(customer.creator), Some(CustomerId(id)));
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

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AllowanceView {
    pub id: String,
    pub object: &'static str,
    pub customer: String,
    pub merchant: String,
    pub asset: String,
    pub max_per_charge: String,
    pub max_per_period: String,
    pub period: AllowancePeriod,
    /// `active` or `revoked`.
    pub status: &'static str,
    pub created: String,
}

pub fn allowance_view(
    state: &SharedState,
    a: &AllowanceRecord,
) -> Result<AllowanceView, ServiceError> {
    let asset = asset_by_id(state, a.asset)?;
    Ok(AllowanceView {
        id: encode_id(IdKind::Allowance, a.id.0),
        object: "allowance",
        customer: encode_id(IdKind::Customer, a.customer.0),
        merchant: encode_id(IdKind::Merchant, a.merchant.0),
        asset: asset.code.to_string(),
        max_per_charge: format_amount(a.max_per_charge, asset.scale),
        max_per_period: format_amount(a.max_per_period, asset.scale),
        period: a.period,
        status: if a.revoked_ns.is_some() {
            "revoked"
        } else {
            "active"
        },
        created: rfc3339(a.created_ns),
    })
}

/// An allowance the customer grants: `merchant` may charge up to `max_per_charge` at a time
/// and `max_per_period` per `period` without asking each time.
pub struct NewAllowance {
    pub merchant: MerchantId,
    pub asset: Asset,
    pub max_per_charge: Amount,
    pub max_per_period: Amount,
    pub period: AllowancePeriod,
}

/// Grants an allowance of `customer` (from [`own_customer`]): 201 with the allowance, stored
/// under the Idempotency-Key `key`.
pub async fn create_allowance(
    state: &SharedState,
    key: Option<String>,
    request: &[u8],
    customer: &CustomerRecord,
    allowance: NewAllowance,
) -> Result<Reply, ServiceError> {
    if allowance.max_per_charge > allowance.max_per_period {
        return Err(ServiceError::invalid(
            "max_per_charge",
            "max_per_charge_above_period",
            "max_per_charge must not exceed max_per_period",
        ));
    }
    let (existing, _) =
        state
            .store
            .indexed(ALLOWANCES_BY_CUSTOMER, customer.id, None, ALLOWANCES_MAX)?;
    if existing.len() >= ALLOWANCES_MAX {
        return Err(ServiceError::invalid(
            "merchant",
            "too_many_allowances",
            format!("a customer holds at most {ALLOWANCES_MAX} allowances"),
        ));
    }
    let customer = customer.id;
    let reply = state
        .idempotent(customer.0, key, "allowances", request, || async move {
            let record = AllowanceRecord {
                id: AllowanceId(random_id()),
                customer,
                merchant: allowance.merchant,
                asset: allowance.asset.id.0,
                max_per_charge: allowance.max_per_charge,
                max_per_period: allowance.max_per_period,
                period: allowance.period,
                created_ns: now_ns(),
                revoked_ns: None,
            };
            let body = to_json(&allowance_view(state, &record)?)?;
            Ok((
                201u16,
                body,
                Changes {
                    records: vec![
                        RecordWrite::put(ALLOWANCES, record.id, &record)?,
                        RecordWrite::Index {
                            index: ALLOWANCES_BY_CUSTOMER,
                            parent: customer.0,
                            id: record.id.0,
                        },
                    ],
                    ..Changes::default()
                },
            ))
        })
        .await;
    state.products.cache.forget_allowances(customer);
    reply
}

/// Customer `id`'s allowances the caller may see: all of them for the customer and whoever
/// may see the customer; a merchant the customer granted an allowance sees its own.
pub fn list_allowances(
    state: &SharedState,
    caller: &Principal,
    id: CustomerId,
) -> Result<Vec<AllowanceView>, ServiceError> {
    let customer = match visible_customer(state, caller, id, "id") {
        Ok(c) => c,
        // A merchant the customer granted an allowance may list its own allowances.
        Err(e) => {
            let merchant = caller.merchant().ok_or(e.clone())?;
            if !allowances_of(state, id)?
                .iter()
                .any(|a| a.merchant == merchant)
            {
                return Err(e);
            }
            state
                .store
                .record::<CustomerRecord>(CUSTOMERS, id.0)?
                .ok_or(e)?
        }
    };
    allowances_of(state, customer.id)?
        .iter()
        .filter(|a| {
            caller.scope() == Scope::Customer
                || caller.can_see(a.merchant.0)
                || caller.can_see(customer.creator)
        })
        .map(|a| allowance_view(state, a))
        .collect()
}

/// Revokes allowance `id` (its customer's token only): charges under it are refused from now
/// on. Revoking a revoked allowance changes nothing.
pub async fn revoke_allowance(
    state: &SharedState,
    caller: &Principal,
    id: AllowanceId,
) -> Result<AllowanceView, ServiceError> {
    let missing = || ServiceError::not_found(Some("id"), "allowance");
    let id = id.0;
    let _guard = state.products.lock(id).await;
    let mut allowance: AllowanceRecord = state.store.record(ALLOWANCES, id)?.ok_or_else(missing)?;
    if caller.customer() != Some(allowance.customer) {
        return Err(missing());
    }
    if allowance.revoked_ns.is_none() {
        allowance.revoked_ns = Some(now_ns());
        let saved = state
            .commit(Changes {
                records: vec![RecordWrite::put(ALLOWANCES, id, &allowance)?],
                ..Changes::default()
            })
            .await;
        state.products.cache.forget_allowances(allowance.customer);
        saved?;
    }
    allowance_view(state, &allowance)
}
