//! Entitlements and the keys behind their tokens: `GET /v1/entitlements` (does a customer hold
//! a live grant?), `POST /v1/entitlements/verify` (check a token, counting a view),
//! `GET /.well-known/jwks.json` (the public keys, no auth) and
//! `POST /v1/signing_keys/rotate` (operator). The rules are
//! [`farthing_service::entitlements`] and [`farthing_service::signing`].

use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::error::ApiError;
use crate::extract::{ApiJson, Key, PageKey};
use crate::routes::parse_query;
use farthing_service::entitlements::{self, EntitlementCheck, VerificationView};
use farthing_service::signing::{self, JwkSet, RotationView};
use farthing_service::state::SharedState;

/// How long clients may cache the JWK Set, in seconds: a rotated-in key signs at once, so a
/// verifier that meets an unknown `kid` fetches the set again rather than wait for this.
const JWKS_MAX_AGE_S: u64 = 300;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckQuery {
    customer: String,
    resource: String,
    merchant: Option<String>,
}

#[utoipa::path(get, path = "/v1/entitlements", operation_id = "entitlements.list", tag = "paywall", params(("customer" = String, Query, description = "the customer: a cus_… id, or the psn_… pseudonym a token's `sub` carries"), ("resource" = String, Query, description = "the resource"), ("merchant" = Option<String>, Query, description = "for the operator: the merchant (mer_…)")), responses((status = 200, description = "whether the customer holds a live grant to the resource from the merchant, and the grant", body = EntitlementCheck), crate::error::ReadErrors))]
pub async fn check(
    State(state): State<SharedState>,
    Key(principal): Key,
    RawQuery(query): RawQuery,
) -> Result<axum::Json<EntitlementCheck>, ApiError> {
    let query: CheckQuery = parse_query(query.as_deref())?;
    Ok(axum::Json(
        entitlements::check(
            &state,
            &principal,
            query.merchant.as_deref(),
            &query.customer,
            &query.resource,
        )
        .await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Verify {
    /// The entitlement token (a compact JWS).
    #[schema(max_length = 4096)]
    pub token: String,
    /// The resource the caller is about to show: a token for another one is refused.
    #[schema(example = "article-1")]
    pub resource: Option<String>,
}

#[utoipa::path(post, path = "/v1/entitlements/verify", operation_id = "entitlements.verify", tag = "paywall", request_body = Verify, params(("Origin" = Option<String>, Header, description = "with a publishable key: one of its declared origins")), responses((status = 200, description = "the token is good (a `views` grant counted one view)", body = VerificationView), (status = 422, description = "refused, `code` says why: token_malformed, token_algorithm, token_unknown_key, token_signature_invalid, token_expired, token_wrong_audience, token_wrong_resource, no_views_left, entitlement_not_live", body = crate::error::ErrorBody), crate::error::WriteErrors))]
pub async fn verify(
    State(state): State<SharedState>,
    PageKey(principal): PageKey,
    ApiJson(request, _): ApiJson<Verify>,
) -> Result<axum::Json<VerificationView>, ApiError> {
    Ok(axum::Json(
        entitlements::verify(
            &state,
            &principal,
            &request.token,
            request.resource.as_deref(),
        )
        .await?,
    ))
}

#[utoipa::path(get, path = "/.well-known/jwks.json", operation_id = "jwks.get", tag = "paywall", security(()), responses((status = 200, description = "the public keys that sign entitlement tokens (RFC 7517; OKP Ed25519, EdDSA), the current one first; a rotated-out key stays until every token it signed has expired", body = JwkSet)))]
pub async fn jwks(State(state): State<SharedState>) -> Response {
    let set = state.signing.jwks(state.products.clock.now());
    let cache = format!("public, max-age={JWKS_MAX_AGE_S}");
    ([(header::CACHE_CONTROL, cache)], axum::Json(set)).into_response()
}

#[utoipa::path(post, path = "/v1/signing_keys/rotate", operation_id = "signing_keys.rotate", tag = "paywall", responses((status = 200, description = "a new key signs from now on; the previous one stays published until its tokens have expired (operator only)", body = RotationView), crate::error::WriteErrors))]
pub async fn rotate(
    State(state): State<SharedState>,
    Key(principal): Key,
) -> Result<axum::Json<RotationView>, ApiError> {
    Ok(axum::Json(signing::rotate(&state, &principal).await?))
}
