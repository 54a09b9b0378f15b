//! Webhook endpoints and events: `/v1/webhook_endpoints` (register, list, read, change,
//! delete, rotate the secret, the delivery log, redeliver) and `GET /v1/events/{id}`.
//!
//! A merchant key manages the merchant's endpoints, which get the merchant's events; the
//! operator's endpoints get every event. The signing secret is shown once, when the endpoint is
//! created or its secret rotated; after a rotation the previous secret keeps signing (every
//! delivery carries both signatures) for `previous_secret_valid_seconds`.

use crate::extract::IdPath;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use farthing_products::ids::WebhookEndpointId;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::extract::IdempotencyKey;
use crate::extract::Key;
use crate::routes::{parse_query, PageQuery};
use farthing_products::ids::{decode_id, IdKind};
use farthing_service::state::SharedState;
use farthing_service::webhooks::{
    AttemptView, DeliveryView, EndpointChange, EndpointView, EventView, NewEndpoint,
};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEndpoint {
    /// Where deliveries are POSTed (`http` or `https`; a public address unless the operator
    /// allows others).
    pub url: String,
    /// Event types to deliver (e.g. `charge.succeeded`); omitted or `["*"]`: all.
    #[serde(default)]
    pub events: Option<Vec<String>>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateEndpoint {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub events: Option<Vec<String>>,
    #[serde(default)]
    pub description: Option<String>,
    /// `true` re-enables a disabled endpoint; `false` disables it.
    #[serde(default)]
    pub enabled: Option<bool>,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    /// How long the previous secret keeps signing (0 to 604,800; default 86,400).
    #[serde(default)]
    pub previous_secret_valid_seconds: Option<u64>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Redeliver {
    /// The event (`evt_…`) to deliver again, with its original `webhook-id`.
    pub event: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EndpointList {
    pub object: &'static str,
    pub data: Vec<EndpointView>,
    pub has_more: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AttemptList {
    pub object: &'static str,
    pub data: Vec<AttemptView>,
    pub has_more: bool,
}

#[utoipa::path(post, path = "/v1/webhook_endpoints", operation_id = "webhook_endpoints.create", tag = "webhooks", request_body = CreateEndpoint, params(("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry: the first response is stored and replayed")), responses((status = 201, description = "the endpoint, with its signing secret (shown only here)", body = EndpointView), crate::error::WriteErrors))]
pub async fn create(
    State(state): State<SharedState>,
    Key(principal): Key,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(request, raw): ApiJson<CreateEndpoint>,
) -> Result<Response, ApiError> {
    let new = NewEndpoint {
        url: request.url,
        events: request.events,
        description: request.description,
    };
    let reply = farthing_service::webhooks::create(&state, &principal, key, &raw, new).await?;
    Ok(crate::extract::reply(reply))
}

#[utoipa::path(get, path = "/v1/webhook_endpoints", operation_id = "webhook_endpoints.list", tag = "webhooks", responses((status = 200, description = "the caller's endpoints (the operator sees all)", body = EndpointList), crate::error::ReadErrors))]
pub async fn list(
    State(state): State<SharedState>,
    Key(principal): Key,
) -> Result<axum::Json<EndpointList>, ApiError> {
    Ok(axum::Json(EndpointList {
        object: "list",
        data: farthing_service::webhooks::list(&state, &principal)?,
        has_more: false,
    }))
}

#[utoipa::path(get, path = "/v1/webhook_endpoints/{id}", operation_id = "webhook_endpoints.get", tag = "webhooks", params(("id" = String, Path, description = "we_… id")), responses((status = 200, description = "the endpoint (without its secret)", body = EndpointView), crate::error::ReadErrors))]
pub async fn get(
    State(state): State<SharedState>,
    Key(principal): Key,
    IdPath(id): IdPath<WebhookEndpointId>,
) -> Result<axum::Json<EndpointView>, ApiError> {
    Ok(axum::Json(farthing_service::webhooks::get(
        &state, &principal, id,
    )?))
}

#[utoipa::path(post, path = "/v1/webhook_endpoints/{id}", operation_id = "webhook_endpoints.update", tag = "webhooks", request_body = UpdateEndpoint, params(("id" = String, Path, description = "we_… id")), responses((status = 200, description = "the changed endpoint", body = EndpointView), crate::error::WriteErrors))]
pub async fn change(
    State(state): State<SharedState>,
    Key(principal): Key,
    IdPath(id): IdPath<WebhookEndpointId>,
    ApiJson(request, _raw): ApiJson<UpdateEndpoint>,
) -> Result<axum::Json<EndpointView>, ApiError> {
    let change = EndpointChange {
        url: request.url,
        events: request.events,
        description: request.description,
        enabled: request.enabled,
    };
    Ok(axum::Json(
        farthing_service::webhooks::change(&state, &principal, id, change).await?,
    ))
}

#[utoipa::path(delete, path = "/v1/webhook_endpoints/{id}", operation_id = "webhook_endpoints.delete", tag = "webhooks", params(("id" = String, Path, description = "we_… id")), responses((status = 200, description = "the deleted endpoint (it gets nothing more; pending deliveries are skipped)", body = EndpointView), crate::error::WriteErrors))]
pub async fn delete(
    State(state): State<SharedState>,
    Key(principal): Key,
    IdPath(id): IdPath<WebhookEndpointId>,
) -> Result<axum::Json<EndpointView>, ApiError> {
    Ok(axum::Json(farthing_service::webhooks::delete(
        &state, &principal, id,
    )?))
}

#[utoipa::path(post, path = "/v1/webhook_endpoints/{id}/rotate_secret", operation_id = "webhook_endpoints.rotate_secret", tag = "webhooks", request_body = RotateSecret, params(("id" = String, Path, description = "we_… id"), ("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry: rotated once, the same new secret replayed")), responses((status = 200, description = "the endpoint with its new secret (shown only here); the previous one keeps signing until `previous_secret_expires`", body = EndpointView), crate::error::WriteErrors))]
pub async fn rotate_secret(
    State(state): State<SharedState>,
    Key(principal): Key,
    IdempotencyKey(key): IdempotencyKey,
    IdPath(id): IdPath<WebhookEndpointId>,
    ApiJson(request, raw): ApiJson<RotateSecret>,
) -> Result<Response, ApiError> {
    let reply = farthing_service::webhooks::rotate_secret(
        &state,
        &principal,
        key,
        &raw,
        id,
        request.previous_secret_valid_seconds,
    )
    .await?;
    Ok(crate::extract::reply(reply))
}

#[utoipa::path(get, path = "/v1/webhook_endpoints/{id}/attempts", operation_id = "webhook_endpoints.attempts.list", tag = "webhooks", params(("id" = String, Path, description = "we_… id"), ("limit" = Option<usize>, Query, description = "1 to 100 (default 10)"), ("starting_after" = Option<String>, Query, description = "a whatt_… id: the page after it (older attempts)")), responses((status = 200, description = "the endpoint's delivery log, newest first", body = AttemptList), crate::error::ReadErrors))]
pub async fn attempts(
    State(state): State<SharedState>,
    Key(principal): Key,
    IdPath(id): IdPath<WebhookEndpointId>,
    RawQuery(query): RawQuery,
) -> Result<axum::Json<AttemptList>, ApiError> {
    let page: PageQuery = parse_query(query.as_deref())?;
    let limit = page.limit(100)?;
    let before = page
        .starting_after
        .as_deref()
        .map(|s| {
            decode_id(IdKind::WebhookAttempt, s).ok_or_else(|| {
                ApiError::invalid(
                    "starting_after",
                    "invalid_cursor",
                    "starting_after must be a whatt_… id",
                )
            })
        })
        .transpose()?;
    let (data, has_more) =
        farthing_service::webhooks::attempts(&state, &principal, id, before, limit)?;
    Ok(axum::Json(AttemptList {
        object: "list",
        data,
        has_more,
    }))
}

#[utoipa::path(get, path = "/v1/webhook_endpoints/{id}/deliveries/{event}", operation_id = "webhook_endpoints.deliveries.get", tag = "webhooks", params(("id" = String, Path, description = "we_… id"), ("event" = String, Path, description = "evt_… id")), responses((status = 200, description = "where the event's delivery to this endpoint stands", body = DeliveryView), crate::error::ReadErrors))]
pub async fn delivery(
    State(state): State<SharedState>,
    Key(principal): Key,
    Path((id, event)): Path<(String, String)>,
) -> Result<axum::Json<DeliveryView>, ApiError> {
    let id = crate::extract::parse_id(&id, "id")?;
    Ok(axum::Json(farthing_service::webhooks::delivery(
        &state, &principal, id, &event,
    )?))
}

#[utoipa::path(post, path = "/v1/webhook_endpoints/{id}/redeliver", operation_id = "webhook_endpoints.redeliver", tag = "webhooks", request_body = Redeliver, params(("id" = String, Path, description = "we_… id"), ("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry: queued once")), responses((status = 202, description = "the delivery, queued again at once with its original webhook-id and a fresh retry schedule", body = DeliveryView), crate::error::WriteErrors))]
pub async fn redeliver(
    State(state): State<SharedState>,
    Key(principal): Key,
    IdempotencyKey(key): IdempotencyKey,
    IdPath(id): IdPath<WebhookEndpointId>,
    ApiJson(request, raw): ApiJson<Redeliver>,
) -> Result<Response, ApiError> {
    let reply =
        farthing_service::webhooks::redeliver(&state, &principal, key, &raw, id, request.event)
            .await?;
    Ok(crate::extract::reply(reply))
}

#[utoipa::path(get, path = "/v1/events/{id}", operation_id = "events.get", tag = "webhooks", params(("id" = String, Path, description = "evt_… id")), responses((status = 200, description = "the event, as its deliveries carry it", body = EventView), crate::error::ReadErrors))]
pub async fn event(
    State(state): State<SharedState>,
    Key(principal): Key,
    Path(id): Path<String>,
) -> Result<axum::Json<EventView>, ApiError> {
    let id =
        decode_id(IdKind::Event, &id).ok_or_else(|| ApiError::not_found(Some("id"), "event"))?;
    Ok(axum::Json(farthing_service::webhooks::event(
        &state, &principal, id,
    )?))
}
