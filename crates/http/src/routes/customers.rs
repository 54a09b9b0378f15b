//! Customers (end users) and what they own: their token, payment methods, prepaid wallets,
//! top-ups through the card processor, auto top-up, and the allowances they grant merchants.
//!
//! `POST /v1/customers` (operator or merchant) returns the customer's token once; the customer
//! uses it from a browser or app. Only the customer's own token can grant or revoke an
//! allowance or confirm a charge: a merchant key alone never moves a customer's money. The
//! operations are in [`farthing_service::customers`].

use crate::extract::IdPath;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use farthing_products::ids::AllowanceId;
use farthing_products::ids::CustomerId;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::extract::Caller;
use crate::extract::IdempotencyKey;
use crate::extract::Key;
use crate::extract::{json_response, reply};
use crate::routes::positive_amount;
use farthing_service::assets::by_code;
use farthing_service::charges::merchant_exists;
use farthing_service::customers::{self, own_customer, AllowancePeriod, AllowanceView};
use farthing_service::customers::{AutoTopup, NewAllowance, NewCustomer, NewTopup};
use farthing_service::customers::{CustomerView, Money, PaymentMethodView, TopupView, WalletView};
use farthing_service::state::to_json;
use farthing_service::state::SharedState;

use farthing_service::merchants::NAME_BYTES_MAX;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCustomer {
    #[serde(default)]
    pub name: String,
    /// Most the customer may spend in one calendar month (UTC) across all merchants.
    pub monthly_cap: Option<Money>,
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
            Some((asset.id, amount))
        }
        None => None,
    };
    let customer = NewCustomer {
        name: request.name,
        monthly_cap,
    };
    Ok(reply(
        customers::create(&state, &principal, key, &raw, customer).await?,
    ))
}

#[utoipa::path(get, path = "/v1/customers/{id}", operation_id = "customers.get", tag = "customers", params(("id" = String, Path, description = "cus_… id")), responses((status = 200, description = "the customer", body = CustomerView), crate::error::ReadErrors))]
pub async fn get(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    IdPath(id): IdPath<CustomerId>,
) -> Result<axum::Json<CustomerView>, ApiError> {
    Ok(axum::Json(customers::get(&state, &caller, id)?))
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

#[utoipa::path(post, path = "/v1/customers/{id}/payment_methods", operation_id = "customers.payment_methods.create", tag = "customers", request_body = AddPaymentMethod, params(("id" = String, Path, description = "cus_… id")), responses((status = 201, description = "the stored payment method (a token; the card number is not kept)", body = PaymentMethodView), crate::error::WriteErrors))]
pub async fn add_payment_method(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    IdPath(id): IdPath<CustomerId>,
    ApiJson(request, _): ApiJson<AddPaymentMethod>,
) -> Result<Response, ApiError> {
    let method: PaymentMethodView =
        customers::add_payment_method(&state, &caller, id, &request.card_number).await?;
    Ok(json_response(StatusCode::CREATED, to_json(&method)?))
}

#[utoipa::path(get, path = "/v1/customers/{id}/wallets/{asset}", operation_id = "customers.wallets.get", tag = "customers", params(("id" = String, Path, description = "cus_… id"), ("asset" = String, Path, description = "asset code")), responses((status = 200, description = "the customer's prepaid wallet in that asset", body = WalletView), crate::error::ReadErrors))]
pub async fn wallet(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    Path((id, asset)): Path<(String, String)>,
) -> Result<axum::Json<WalletView>, ApiError> {
    let id = crate::extract::parse_id(&id, "id")?;
    Ok(axum::Json(customers::wallet(&state, &caller, id, &asset)?))
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
    IdPath(id): IdPath<CustomerId>,
    ApiJson(request, raw): ApiJson<CreateTopup>,
) -> Result<Response, ApiError> {
    caller.require_write()?;
    // Charging the customer's card is the customer's decision alone.
    let customer = own_customer(&state, &caller, id)?;
    let asset = by_code(&state, &request.asset, "asset")?;
    let amount = positive_amount(&request.amount, &asset, "amount")?;
    let topup = NewTopup {
        asset,
        amount,
        payment_method: request.payment_method,
    };
    Ok(reply(
        customers::topup(&state, &caller, key, &raw, customer, topup).await?,
    ))
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
    IdPath(id): IdPath<CustomerId>,
    ApiJson(request, _): ApiJson<SetAutoTopup>,
) -> Result<Response, ApiError> {
    caller.require_write()?;
    let customer = own_customer(&state, &caller, id)?;
    let asset = by_code(&state, &request.asset, "asset")?;
    let settings = AutoTopup {
        asset: asset.id,
        threshold: positive_amount(&request.threshold, &asset, "threshold")?,
        amount: positive_amount(&request.amount, &asset, "amount")?,
        payment_method: request.payment_method,
        enabled: request.enabled,
    };
    let customer = customers::set_auto_topup(&state, &customer, settings).await?;
    Ok(json_response(StatusCode::OK, to_json(&customer)?))
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

#[utoipa::path(post, path = "/v1/customers/{id}/allowances", operation_id = "customers.allowances.create", tag = "customers", request_body = CreateAllowance, params(("id" = String, Path, description = "cus_… id"), ("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry")), responses((status = 201, description = "the allowance (customer token only)", body = AllowanceView), crate::error::WriteErrors))]
pub async fn create_allowance(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    IdempotencyKey(key): IdempotencyKey,
    IdPath(id): IdPath<CustomerId>,
    ApiJson(request, raw): ApiJson<CreateAllowance>,
) -> Result<Response, ApiError> {
    let customer = own_customer(&state, &caller, id)?;
    let merchant = merchant_exists(&state, &request.merchant, "merchant")?;
    let asset = by_code(&state, &request.asset, "asset")?;
    let allowance = NewAllowance {
        merchant,
        max_per_charge: positive_amount(&request.max_per_charge, &asset, "max_per_charge")?,
        max_per_period: positive_amount(&request.max_per_period, &asset, "max_per_period")?,
        asset,
        period: request.period,
    };
    Ok(reply(
        customers::create_allowance(&state, key, &raw, &customer, allowance).await?,
    ))
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
    IdPath(id): IdPath<CustomerId>,
) -> Result<axum::Json<AllowanceList>, ApiError> {
    Ok(axum::Json(AllowanceList {
        object: "list",
        data: customers::list_allowances(&state, &caller, id)?,
        has_more: false,
    }))
}

#[utoipa::path(post, path = "/v1/allowances/{id}/revoke", operation_id = "allowances.revoke", tag = "customers", params(("id" = String, Path, description = "alw_… id")), responses((status = 200, description = "the revoked allowance (customer token only); charges under it are refused from now on", body = AllowanceView), crate::error::WriteErrors))]
pub async fn revoke_allowance(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    IdPath(id): IdPath<AllowanceId>,
) -> Result<Response, ApiError> {
    let allowance = customers::revoke_allowance(&state, &caller, id).await?;
    Ok(json_response(StatusCode::OK, to_json(&allowance)?))
}
