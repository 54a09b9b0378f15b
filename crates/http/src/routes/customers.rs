//! Customers (end users) and what they own: their token, payment methods, prepaid wallets,
//! top-ups through the card processor, auto top-up, and the allowances they grant merchants.
//!
//! `POST /v1/customers` (operator or merchant) returns the customer's token once; the customer
//! uses it from a browser or app. Only the customer's own token can grant or revoke an
//! allowance or confirm a charge: a merchant key alone never moves a customer's money.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use farthing_ledger::Amount;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::extract::Caller;
use crate::extract::IdempotencyKey;
use crate::extract::Key;
use crate::routes::positive_amount;
use farthing_products::ids::{decode_id, encode_id, IdKind};
use farthing_products::money::format_amount;
use farthing_service::assets::{asset_by_id, by_code};
use farthing_service::customers::{allowances_of, run_topup, topup_view, topup_writes, TopupView};
use farthing_service::customers::{require_payment_method, visible_customer};
use farthing_service::state::to_json;
use farthing_service::state::SharedState;
use farthing_service::submit::{available, LedgerAccount};
use farthing_store::records::{
    AllowancePeriod, AllowanceRecord, AutoTopupRecord, CustomerRecord, MonthlyCap,
    PaymentMethodRecord, ALLOWANCES, ALLOWANCES_BY_CUSTOMER, CUSTOMERS, CUSTOMERS_BY_CREATOR,
};
use farthing_store::util::derived_id;
use farthing_store::util::now_ns;
use farthing_store::util::random_id;
use farthing_store::util::rfc3339;
use farthing_store::{Changes, RecordWrite, Scope};

const NAME_BYTES_MAX: usize = 200;
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

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCustomer {
    #[serde(default)]
    pub name: String,
    /// Most the customer may spend in one calendar month (UTC) across all merchants.
    pub monthly_cap: Option<Money>,
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
) -> Result<CustomerView, ApiError> {
    let monthly_cap = match &c.monthly_cap {
        Some(cap) => {
            let asset = asset_by_id(state, cap.asset)?;
            Some(Money {
                amount: format_amount(Amount(cap.amount), asset.scale),
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
                threshold: format_amount(Amount(a.threshold), asset.scale),
                amount: format_amount(Amount(a.amount), asset.scale),
                payment_method: a.payment_method.clone(),
                enabled: a.enabled,
                disabled_reason: a.disabled_reason.clone(),
            })
        }
        None => None,
    };
    Ok(CustomerView {
        id: encode_id(IdKind::Customer, c.id),
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

#[utoipa::path(post, path = "/v1/customers", operation_id = "customers.create", tag = "customers", request_body = CreateCustomer, params(("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry: the first response is stored and replayed")), responses((status = 201, description = "the customer, with its token (shown once)", body = CustomerView), crate::error::WriteErrors))]
pub async fn create(
    State(state): State<SharedState>,
    Key(principal): Key,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(request, raw): ApiJson<CreateCustomer>,
) -> Result<Response, ApiError> {
    principal.require_write()?;
    if request.name.len() > NAME_BYTES_MAX {
        return Err(ApiError::invalid(
            "name",
            "invalid_name",
            "name must be at most 200 bytes",
        ));
    }
    let monthly_cap = match &request.monthly_cap {
        Some(cap) => {
            let asset = by_code(&state, &cap.asset, "monthly_cap.asset")?;
            let amount = positive_amount(&cap.amount, &asset, "monthly_cap.amount")?;
            Some(MonthlyCap {
                asset: asset.id.0,
                amount: amount.0,
            })
        }
        None => None,
    };
    let state2 = state.clone();
    let creator = principal.tenant();
    state
        .idempotent(principal.tenant(), key, "customers", &raw, || async move {
            let record = CustomerRecord {
                id: random_id(),
                name: request.name,
                creator,
                created_ns: now_ns(),
                monthly_cap,
                payment_methods: Vec::new(),
                auto_topup: None,
            };
            let (token, secret) =
                farthing_service::keys::issue_token(Scope::Customer, None, Some(record.id));
            state2.remember_key(token.clone());
            let body = to_json(&customer_view(&state2, &record, Some(secret))?)?;
            Ok((
                StatusCode::CREATED,
                body,
                Changes {
                    api_key: Some(token),
                    records: vec![
                        RecordWrite::put(CUSTOMERS, record.id, &record)?,
                        RecordWrite::Index {
                            index: CUSTOMERS_BY_CREATOR,
                            parent: creator,
                            id: record.id,
                        },
                    ],
                    ..Changes::default()
                },
            ))
        })
        .await
        .map(crate::extract::reply)
}

#[utoipa::path(get, path = "/v1/customers/{id}", operation_id = "customers.get", tag = "customers", params(("id" = String, Path, description = "cus_… id")), responses((status = 200, description = "the customer", body = CustomerView), crate::error::ReadErrors))]
pub async fn get(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<CustomerView>, ApiError> {
    let customer = visible_customer(&state, &caller, &id, "id")?;
    Ok(axum::Json(customer_view(&state, &customer, None)?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddPaymentMethod {
    /// A card number. The sandbox processor's test cards: 4242424242424242 succeeds,
    /// 4000000000000002 is declined, 4000000000009995 has insufficient funds,
    /// 4100000000000019 is blocked as suspected fraud.
    #[schema(example = "4242424242424242")]
    pub card_number: String,
}

/// Writes a customer record back (changed payment methods or auto top-up).
async fn save_customer(state: &SharedState, customer: &CustomerRecord) -> Result<(), ApiError> {
    let saved = state
        .commit(Changes {
            records: vec![RecordWrite::put(CUSTOMERS, customer.id, customer)?],
            ..Changes::default()
        })
        .await;
    state.products.cache.forget_customer(customer.id);
    Ok(saved?)
}

#[utoipa::path(post, path = "/v1/customers/{id}/payment_methods", operation_id = "customers.payment_methods.create", tag = "customers", request_body = AddPaymentMethod, params(("id" = String, Path, description = "cus_… id")), responses((status = 201, description = "the stored payment method (a token; the card number is not kept)", body = PaymentMethodView), crate::error::WriteErrors))]
pub async fn add_payment_method(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    ApiJson(request, _): ApiJson<AddPaymentMethod>,
) -> Result<Response, ApiError> {
    caller.require_write()?;
    let customer = visible_customer(&state, &caller, &id, "id")?;
    let _guard = state.products.lock(customer.id).await;
    // Read again under the lock: another request may have added a method meanwhile.
    let mut customer = visible_customer(&state, &caller, &id, "id")?;
    let method = state
        .products
        .sandbox
        .tokenize(&request.card_number)
        .map_err(|e| ApiError::invalid("card_number", "invalid_card_number", e.to_string()))?;
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
            return Err(ApiError::invalid(
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
        save_customer(&state, &customer).await?;
    }
    Ok(crate::extract::json_response(
        StatusCode::CREATED,
        to_json(&view)?,
    ))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WalletView {
    pub object: &'static str,
    pub customer: String,
    pub asset: String,
    /// What the customer can spend now.
    pub available: String,
}

#[utoipa::path(get, path = "/v1/customers/{id}/wallets/{asset}", operation_id = "customers.wallets.get", tag = "customers", params(("id" = String, Path, description = "cus_… id"), ("asset" = String, Path, description = "asset code")), responses((status = 200, description = "the customer's prepaid wallet in that asset", body = WalletView), crate::error::ReadErrors))]
pub async fn wallet(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    Path((id, asset)): Path<(String, String)>,
) -> Result<axum::Json<WalletView>, ApiError> {
    let customer = visible_customer(&state, &caller, &id, "id")?;
    let asset = by_code(&state, &asset, "asset")?;
    let balance = available(
        &state.engine,
        LedgerAccount::Wallet {
            customer: customer.id,
        }
        .id(asset.id),
    );
    Ok(axum::Json(WalletView {
        object: "wallet",
        customer: encode_id(IdKind::Customer, customer.id),
        asset: asset.code.to_string(),
        available: format_amount(balance, asset.scale),
    }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTopup {
    #[schema(pattern = r"^[0-9]{1,39}(\.[0-9]{1,18})?$", example = "10.00")]
    pub amount: String,
    #[schema(pattern = r"^[A-Z0-9_]{1,15}$", example = "USD")]
    pub asset: String,
    /// A token from `POST /v1/customers/{id}/payment_methods`.
    pub payment_method: String,
}

#[utoipa::path(post, path = "/v1/customers/{id}/topups", operation_id = "customers.topups.create", tag = "customers", request_body = CreateTopup, params(("id" = String, Path, description = "cus_… id"), ("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry: the card is charged once")), responses((status = 201, description = "the top-up; the wallet is credited", body = TopupView), crate::error::CardErrors, crate::error::WriteErrors))]
pub async fn topup(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    IdempotencyKey(key): IdempotencyKey,
    Path(id): Path<String>,
    ApiJson(request, raw): ApiJson<CreateTopup>,
) -> Result<Response, ApiError> {
    caller.require_write()?;
    let customer = visible_customer(&state, &caller, &id, "id")?;
    // Charging the customer's card is the customer's decision alone.
    caller.require_customer(customer.id)?;
    let asset = by_code(&state, &request.asset, "asset")?;
    let amount = positive_amount(&request.amount, &asset, "amount")?;
    require_payment_method(&customer, &request.payment_method)?;
    let topup_id = match &key {
        Some(key) => derived_id(caller.tenant() ^ customer.id, key, "topup", 0),
        None => random_id(),
    };
    let state2 = state.clone();
    let tenant = caller.customer().unwrap_or(caller.tenant());
    state
        .idempotent(tenant, key, "topups", &raw, || async move {
            let record = run_topup(
                &state2,
                &customer,
                &asset,
                amount,
                &request.payment_method,
                topup_id,
                false,
            )
            .await?;
            if record.status != "succeeded" {
                // Declines are kept too (for the customer's history), then answered with 402.
                state2
                    .commit(Changes {
                        records: topup_writes(&state2, &record)?,
                        ..Changes::default()
                    })
                    .await?;
                return Err(farthing_service::ServiceError::card_declined(
                    record.failure_code.as_deref().unwrap_or("card_declined"),
                    record.failure_message.clone().unwrap_or_default(),
                ));
            }
            let body = to_json(&topup_view(&state2, &record)?)?;
            Ok((
                StatusCode::CREATED,
                body,
                Changes {
                    records: topup_writes(&state2, &record)?,
                    ..Changes::default()
                },
            ))
        })
        .await
        .map(crate::extract::reply)
        .map_err(ApiError::from)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetAutoTopup {
    #[schema(pattern = r"^[A-Z0-9_]{1,15}$", example = "USD")]
    pub asset: String,
    /// Top up when the wallet falls below this.
    #[schema(pattern = r"^[0-9]{1,39}(\.[0-9]{1,18})?$", example = "1.00")]
    pub threshold: String,
    /// How much to top up.
    #[schema(pattern = r"^[0-9]{1,39}(\.[0-9]{1,18})?$", example = "10.00")]
    pub amount: String,
    pub payment_method: String,
    pub enabled: bool,
}

#[utoipa::path(post, path = "/v1/customers/{id}/auto_topup", operation_id = "customers.auto_topup.set", tag = "customers", request_body = SetAutoTopup, params(("id" = String, Path, description = "cus_… id")), responses((status = 200, description = "the customer with its auto top-up", body = CustomerView), crate::error::WriteErrors))]
pub async fn set_auto_topup(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    ApiJson(request, _): ApiJson<SetAutoTopup>,
) -> Result<Response, ApiError> {
    caller.require_write()?;
    let customer = visible_customer(&state, &caller, &id, "id")?;
    caller.require_customer(customer.id)?;
    let _guard = state.products.lock(customer.id).await;
    let mut customer = visible_customer(&state, &caller, &id, "id")?;
    let asset = by_code(&state, &request.asset, "asset")?;
    let threshold = positive_amount(&request.threshold, &asset, "threshold")?;
    let amount = positive_amount(&request.amount, &asset, "amount")?;
    require_payment_method(&customer, &request.payment_method)?;
    customer.auto_topup = Some(AutoTopupRecord {
        asset: asset.id.0,
        threshold: threshold.0,
        amount: amount.0,
        payment_method: request.payment_method,
        enabled: request.enabled,
        disabled_reason: None,
    });
    save_customer(&state, &customer).await?;
    Ok(crate::extract::json_response(
        StatusCode::OK,
        to_json(&customer_view(&state, &customer, None)?)?,
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAllowance {
    /// The merchant (`mer_…`) allowed to charge without asking each time.
    pub merchant: String,
    #[schema(pattern = r"^[A-Z0-9_]{1,15}$", example = "USD")]
    pub asset: String,
    /// The most one charge may be.
    #[schema(pattern = r"^[0-9]{1,39}(\.[0-9]{1,18})?$", example = "0.50")]
    pub max_per_charge: String,
    /// The most all charges of one period may add up to.
    #[schema(pattern = r"^[0-9]{1,39}(\.[0-9]{1,18})?$", example = "5.00")]
    pub max_per_period: String,
    pub period: AllowancePeriod,
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

pub fn allowance_view(state: &SharedState, a: &AllowanceRecord) -> Result<AllowanceView, ApiError> {
    let asset = asset_by_id(state, a.asset)?;
    Ok(AllowanceView {
        id: encode_id(IdKind::Allowance, a.id),
        object: "allowance",
        customer: encode_id(IdKind::Customer, a.customer),
        merchant: encode_id(IdKind::Merchant, a.merchant),
        asset: asset.code.to_string(),
        max_per_charge: format_amount(Amount(a.max_per_charge), asset.scale),
        max_per_period: format_amount(Amount(a.max_per_period), asset.scale),
        period: a.period,
        status: if a.revoked_ns.is_some() {
            "revoked"
        } else {
            "active"
        },
        created: rfc3339(a.created_ns),
    })
}

#[utoipa::path(post, path = "/v1/customers/{id}/allowances", operation_id = "customers.allowances.create", tag = "customers", request_body = CreateAllowance, params(("id" = String, Path, description = "cus_… id"), ("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry")), responses((status = 201, description = "the allowance (customer token only)", body = AllowanceView), crate::error::WriteErrors))]
pub async fn create_allowance(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    IdempotencyKey(key): IdempotencyKey,
    Path(id): Path<String>,
    ApiJson(request, raw): ApiJson<CreateAllowance>,
) -> Result<Response, ApiError> {
    let customer = visible_customer(&state, &caller, &id, "id")?;
    caller.require_customer(customer.id)?;
    let merchant = decode_id(IdKind::Merchant, &request.merchant)
        .filter(|m| matches!(state.store.merchant(*m), Ok(Some(_))))
        .ok_or_else(|| ApiError::not_found(Some("merchant"), "merchant"))?;
    let asset = by_code(&state, &request.asset, "asset")?;
    let max_per_charge = positive_amount(&request.max_per_charge, &asset, "max_per_charge")?;
    let max_per_period = positive_amount(&request.max_per_period, &asset, "max_per_period")?;
    if max_per_charge > max_per_period {
        return Err(ApiError::invalid(
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
        return Err(ApiError::invalid(
            "merchant",
            "too_many_allowances",
            format!("a customer holds at most {ALLOWANCES_MAX} allowances"),
        ));
    }
    let state2 = state.clone();
    let response = state
        .idempotent(customer.id, key, "allowances", &raw, || async move {
            let record = AllowanceRecord {
                id: random_id(),
                customer: customer.id,
                merchant,
                asset: asset.id.0,
                max_per_charge: max_per_charge.0,
                max_per_period: max_per_period.0,
                period: request.period,
                created_ns: now_ns(),
                revoked_ns: None,
            };
            let body = to_json(&allowance_view(&state2, &record)?)?;
            Ok((
                StatusCode::CREATED,
                body,
                Changes {
                    records: vec![
                        RecordWrite::put(ALLOWANCES, record.id, &record)?,
                        RecordWrite::Index {
                            index: ALLOWANCES_BY_CUSTOMER,
                            parent: customer.id,
                            id: record.id,
                        },
                    ],
                    ..Changes::default()
                },
            ))
        })
        .await
        .map(crate::extract::reply);
    state.products.cache.forget_allowances(customer.id);
    response
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AllowanceList {
    pub object: &'static str,
    pub data: Vec<AllowanceView>,
    pub has_more: bool,
}

#[utoipa::path(get, path = "/v1/customers/{id}/allowances", operation_id = "customers.allowances.list", tag = "customers", params(("id" = String, Path, description = "cus_… id")), responses((status = 200, description = "the customer's allowances", body = AllowanceList), crate::error::ReadErrors))]
pub async fn list_allowances(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<AllowanceList>, ApiError> {
    let customer = match visible_customer(&state, &caller, &id, "id") {
        Ok(c) => c,
        // A merchant the customer granted an allowance may list its own allowances.
        Err(e) => {
            let merchant = caller.merchant().ok_or(e.clone())?;
            let cid = decode_id(IdKind::Customer, &id).ok_or(e.clone())?;
            if !allowances_of(&state, cid)?
                .iter()
                .any(|a| a.merchant == merchant)
            {
                return Err(e.into());
            }
            state
                .store
                .record::<CustomerRecord>(CUSTOMERS, cid)?
                .ok_or(e)?
        }
    };
    let data = allowances_of(&state, customer.id)?
        .iter()
        .filter(|a| {
            caller.scope() == Scope::Customer
                || caller.can_see(a.merchant)
                || caller.can_see(customer.creator)
        })
        .map(|a| allowance_view(&state, a))
        .collect::<Result<_, _>>()?;
    Ok(axum::Json(AllowanceList {
        object: "list",
        data,
        has_more: false,
    }))
}

#[utoipa::path(post, path = "/v1/allowances/{id}/revoke", operation_id = "allowances.revoke", tag = "customers", params(("id" = String, Path, description = "alw_… id")), responses((status = 200, description = "the revoked allowance (customer token only); charges under it are refused from now on", body = AllowanceView), crate::error::WriteErrors))]
pub async fn revoke_allowance(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let missing = || ApiError::not_found(Some("id"), "allowance");
    let id = decode_id(IdKind::Allowance, &id).ok_or_else(missing)?;
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
    Ok(crate::extract::json_response(
        StatusCode::OK,
        to_json(&allowance_view(&state, &allowance)?)?,
    ))
}
