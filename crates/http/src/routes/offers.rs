//! Offers, the paywall's declared prices: `POST /v1/offers`, `GET /v1/offers`,
//! `GET /v1/offers/{id}`, `POST /v1/offers/{id}/archive`, and buying one,
//! `POST /v1/offers/{id}/purchase` (with the customer's own token). The rules are
//! [`farthing_service::offers`] and [`farthing_service::entitlements`].

use crate::extract::IdPath;
use axum::extract::{RawQuery, State};
use axum::response::Response;
use farthing_products::entitlement::Access;
use farthing_products::ids::OfferId;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::extract::{reply, ApiJson, Caller, IdempotencyKey, Key, PageKey, RawBody};
use crate::routes::{parse_query, positive_amount, PageQuery};
use farthing_service::assets::by_code;
use farthing_service::entitlements::{self, PurchaseView};
use farthing_service::offers::{self, NewOffer, OfferQuery, OfferView};
use farthing_service::state::SharedState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOffer {
    /// For the operator: the merchant (`mer_…`). Merchant keys may omit it (their own).
    #[schema(pattern = r"^mer_[a-z2-7]{26}$")]
    pub merchant: Option<String>,
    /// The merchant's name for what is sold (an article's slug, a file, a button).
    #[schema(example = "article-1", min_length = 1, max_length = 200)]
    pub resource: String,
    #[schema(pattern = r"^[0-9]{1,39}(\.[0-9]{1,18})?$", example = "0.01")]
    pub amount: String,
    #[schema(pattern = r"^[A-Z0-9_]{1,15}$", example = "USD")]
    pub asset: String,
    /// What is sold, shown to the reader and on the charge.
    #[serde(default)]
    #[schema(max_length = 500)]
    pub description: String,
    /// What a purchase grants: `{"kind": "forever"}`, `{"kind": "duration", "seconds": N}`
    /// or `{"kind": "views", "count": N}`.
    pub access: Access,
}

#[utoipa::path(post, path = "/v1/offers", operation_id = "offers.create", tag = "paywall", request_body = CreateOffer, responses((status = 201, description = "the offer, immutable from now on", body = OfferView), crate::error::WriteErrors))]
pub async fn create(
    State(state): State<SharedState>,
    Key(principal): Key,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(request, raw): ApiJson<CreateOffer>,
) -> Result<Response, ApiError> {
    principal.require_write()?;
    let asset = by_code(&state, &request.asset, "asset")?;
    let amount = positive_amount(&request.amount, &asset, "amount")?;
    let new = NewOffer {
        merchant: request.merchant,
        resource: request.resource,
        amount,
        asset,
        description: request.description,
        access: request.access,
    };
    Ok(reply(
        offers::create(&state, &principal, key, &raw, new).await?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    merchant: Option<String>,
    resource: Option<String>,
    limit: Option<usize>,
    starting_after: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct OfferList {
    pub object: &'static str,
    pub data: Vec<OfferView>,
    pub has_more: bool,
}

#[utoipa::path(get, path = "/v1/offers", operation_id = "offers.list", tag = "paywall", params(("merchant" = Option<String>, Query, description = "for the operator: the merchant (mer_…)"), ("resource" = Option<String>, Query, description = "only the offers for this resource"), ("limit" = Option<usize>, Query, description = "1 to 100 (default 10)"), ("starting_after" = Option<String>, Query, description = "the last ofr_… id of the previous page"), ("Origin" = Option<String>, Header, description = "with a publishable key: one of its declared origins")), responses((status = 200, description = "the merchant's offers, oldest first; a publishable key sees the active ones", body = OfferList), crate::error::ReadErrors, (status = 403, description = "a publishable key from an undeclared origin", body = crate::error::ErrorBody)))]
pub async fn list(
    State(state): State<SharedState>,
    PageKey(principal): PageKey,
    RawQuery(query): RawQuery,
) -> Result<axum::Json<OfferList>, ApiError> {
    let query: ListQuery = parse_query(query.as_deref())?;
    let limit = PageQuery {
        limit: query.limit,
        starting_after: None,
    }
    .limit(state.limits.page_limit_max)?;
    let query = OfferQuery {
        merchant: query.merchant,
        resource: query.resource,
        limit,
        starting_after: query.starting_after,
    };
    let (data, has_more) = offers::list(&state, &principal, &query)?;
    Ok(axum::Json(OfferList {
        object: "list",
        data,
        has_more,
    }))
}

#[utoipa::path(get, path = "/v1/offers/{id}", operation_id = "offers.get", tag = "paywall", params(("id" = String, Path, description = "ofr_… id"), ("Origin" = Option<String>, Header, description = "with a publishable key: one of its declared origins")), responses((status = 200, description = "the offer", body = OfferView), crate::error::ReadErrors, (status = 403, description = "a publishable key from an undeclared origin", body = crate::error::ErrorBody)))]
pub async fn get(
    State(state): State<SharedState>,
    PageKey(principal): PageKey,
    IdPath(id): IdPath<OfferId>,
) -> Result<axum::Json<OfferView>, ApiError> {
    let offer = offers::visible_offer(&state, &principal, id)?;
    Ok(axum::Json(offers::view(&state, &offer)?))
}

#[utoipa::path(post, path = "/v1/offers/{id}/archive", operation_id = "offers.archive", tag = "paywall", params(("id" = String, Path, description = "ofr_… id")), responses((status = 200, description = "the archived offer: no purchase from now on", body = OfferView), crate::error::WriteErrors))]
pub async fn archive(
    State(state): State<SharedState>,
    Key(principal): Key,
    IdPath(id): IdPath<OfferId>,
) -> Result<axum::Json<OfferView>, ApiError> {
    Ok(axum::Json(offers::archive(&state, &principal, id).await?))
}

/// A purchase names nothing but the offer: the price is the offer's. Any field (an `amount`)
/// is refused.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Purchase {}

#[utoipa::path(post, path = "/v1/offers/{id}/purchase", operation_id = "offers.purchase", tag = "paywall", request_body(content = Purchase, description = "empty, or `{}`: the request names no amount"), params(("id" = String, Path, description = "ofr_… id")), responses((status = 201, description = "charged the offer's amount: the grant and its token", body = PurchaseView), (status = 200, description = "the customer holds a live grant already: it, with a fresh token; nothing charged", body = PurchaseView), crate::error::WriteErrors))]
pub async fn purchase(
    State(state): State<SharedState>,
    Caller(caller): Caller,
    IdempotencyKey(key): IdempotencyKey,
    IdPath(id): IdPath<OfferId>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    if !body.iter().all(u8::is_ascii_whitespace) {
        let Purchase {} = crate::extract::parse_json_body(&body)?;
    }
    Ok(reply(
        entitlements::purchase(&state, &caller, id, key).await?,
    ))
}
