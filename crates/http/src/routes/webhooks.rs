//! Webhook endpoints and events: `/v1/webhook_endpoints` (register, list, read, change,
//! delete, rotate the secret, the delivery log, redeliver) and `GET /v1/events/{id}`.
//!
//! A merchant key manages the merchant's endpoints, which get the merchant's events; the
//! operator's endpoints get every event. The signing secret is shown once, when the endpoint is
//! created or its secret rotated; after a rotation the previous secret keeps signing (every
//! delivery carries both signatures) for `previous_secret_valid_seconds`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::extract::IdempotencyKey;
use crate::extract::Key;
use farthing_products::ids::{decode_id, encode_id, IdKind};
use farthing_service::delivery::check_url;
use farthing_service::state::to_json;
use farthing_service::state::Principal;
use farthing_service::state::SharedState;
use farthing_store::outbox::{
    AttemptRecord, DeliveryRecord, DeliveryStatus, EndpointRecord, EventKind, EventRecord,
    SecretRecord, ENDPOINTS,
};
use farthing_store::util::random_id;
use farthing_store::util::rfc3339;
use farthing_store::{Changes, RecordWrite};

/// Endpoints one owner may have.
const ENDPOINTS_PER_OWNER_MAX: usize = 16;
const DESCRIPTION_BYTES_MAX: usize = 500;
/// How long a rotated-out secret keeps signing unless asked otherwise: a day.
const PREVIOUS_SECRET_VALID_DEFAULT_S: u64 = 86_400;
const PREVIOUS_SECRET_VALID_MAX_S: u64 = 7 * 86_400;

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
pub struct EndpointView {
    pub id: String,
    pub object: &'static str,
    pub url: String,
    /// Event types delivered; `["*"]`: all.
    pub events: Vec<String>,
    pub description: Option<String>,
    /// The merchant (`mer_…`), or `null` for an operator endpoint (gets every event).
    pub merchant: Option<String>,
    /// `enabled` or `disabled`.
    pub status: &'static str,
    pub disabled_reason: Option<String>,
    /// Since when every delivery attempt failed, if the last one did.
    pub failing_since: Option<String>,
    /// The signing secret (`whsec_…`): only in the answer that creates or rotates it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// When the previous secret stops signing, during a rotation.
    pub previous_secret_expires: Option<String>,
    pub created: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EndpointList {
    pub object: &'static str,
    pub data: Vec<EndpointView>,
    pub has_more: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryView {
    pub object: &'static str,
    pub endpoint: String,
    /// The event, also the deliveries' `webhook-id`.
    pub event: String,
    pub event_type: String,
    /// `pending`, `succeeded`, `failed` (the schedule ran out) or `skipped` (the endpoint was
    /// disabled or deleted first).
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub next_attempt: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AttemptView {
    pub id: String,
    pub object: &'static str,
    pub event: String,
    pub event_type: String,
    /// 1 for the delivery's first attempt.
    pub attempt: u32,
    pub created: String,
    /// The receiver's HTTP status, if it answered.
    pub status_code: Option<u16>,
    /// `succeeded` or `failed`.
    pub outcome: &'static str,
    pub error: Option<String>,
    /// The start of the receiver's answer.
    pub response: String,
    pub duration_ms: u64,
    /// Made for a manual redelivery.
    pub manual: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AttemptList {
    pub object: &'static str,
    pub data: Vec<AttemptView>,
    pub has_more: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventView {
    pub id: String,
    pub object: &'static str,
    #[serde(rename = "type")]
    pub kind: String,
    pub created: String,
    pub merchant: Option<String>,
    /// The object the event is about, as the API shows it.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

fn endpoint_view(e: &EndpointRecord, now: u64, secret: Option<String>) -> EndpointView {
    EndpointView {
        id: encode_id(IdKind::WebhookEndpoint, e.id),
        object: "webhook_endpoint",
        url: e.url.clone(),
        events: if e.events.is_empty() {
            vec!["*".into()]
        } else {
            e.events.iter().map(|k| k.name().to_string()).collect()
        },
        description: e.description.clone(),
        merchant: e.owner.map(|m| encode_id(IdKind::Merchant, m)),
        status: if e.disabled.is_some() {
            "disabled"
        } else {
            "enabled"
        },
        disabled_reason: e.disabled.clone(),
        failing_since: e.failing_since_ns.map(rfc3339),
        secret,
        previous_secret_expires: e
            .secrets
            .iter()
            .filter_map(|s| s.expires_ns)
            .filter(|x| *x > now)
            .max()
            .map(rfc3339),
        created: rfc3339(e.created_ns),
    }
}

fn delivery_view(d: &DeliveryRecord) -> DeliveryView {
    DeliveryView {
        object: "webhook_delivery",
        endpoint: encode_id(IdKind::WebhookEndpoint, d.endpoint),
        event: encode_id(IdKind::Event, d.event),
        event_type: d.kind.name().to_string(),
        status: d.status,
        attempts: d.attempts,
        next_attempt: d.next_attempt_ns.map(rfc3339),
    }
}

fn attempt_view(id: u128, a: &AttemptRecord) -> AttemptView {
    AttemptView {
        id: encode_id(IdKind::WebhookAttempt, id),
        object: "webhook_attempt",
        event: encode_id(IdKind::Event, a.event),
        event_type: a.kind.name().to_string(),
        attempt: a.attempt,
        created: rfc3339(a.at_ns),
        status_code: a.status_code,
        outcome: if a.error.is_none() {
            "succeeded"
        } else {
            "failed"
        },
        error: a.error.clone(),
        response: a.response.clone(),
        duration_ms: a.duration_ms,
        manual: a.manual,
    }
}

/// The event types a request lists (`None` or `["*"]`: all, stored as empty).
fn parse_events(events: Option<Vec<String>>) -> Result<Vec<EventKind>, ApiError> {
    let Some(names) = events else {
        return Ok(Vec::new());
    };
    if names.is_empty() {
        return Err(ApiError::invalid(
            "events",
            "invalid_events",
            "events must list at least one event type, or [\"*\"] for all",
        ));
    }
    if names.iter().any(|n| n == "*") {
        return Ok(Vec::new());
    }
    let mut kinds = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let kind = EventKind::parse(name).ok_or_else(|| {
            let known: Vec<&str> = EventKind::ALL.iter().map(|k| k.name()).collect();
            ApiError::invalid(
                &format!("events[{i}]"),
                "unknown_event_type",
                format!("unknown event type {name:?}; known: {}", known.join(", ")),
            )
        })?;
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    Ok(kinds)
}

fn check_description(description: &Option<String>) -> Result<(), ApiError> {
    if description
        .as_ref()
        .is_some_and(|d| d.len() > DESCRIPTION_BYTES_MAX)
    {
        return Err(ApiError::invalid(
            "description",
            "too_long",
            format!("description must be at most {DESCRIPTION_BYTES_MAX} bytes"),
        ));
    }
    Ok(())
}

async fn checked_url(state: &SharedState, url: &str) -> Result<(), ApiError> {
    check_url(url, &state.products.webhook_addresses)
        .await
        .map_err(|(code, message)| ApiError::invalid("url", code, message))
}

/// Who may manage endpoints: merchant keys (their own) and the operator (its own, and every
/// merchant's).
fn owner_of_caller(principal: &Principal) -> Result<Option<u128>, ApiError> {
    principal.require_write()?;
    match principal.merchant() {
        Some(merchant) => Ok(Some(merchant)),
        None if principal.is_operator() => Ok(None),
        None => Err(ApiError::forbidden(
            "webhook endpoints are managed with a merchant or operator key",
        )),
    }
}

fn load_endpoint(
    state: &SharedState,
    principal: &Principal,
    id: &str,
) -> Result<EndpointRecord, ApiError> {
    let id = decode_id(IdKind::WebhookEndpoint, id)
        .ok_or_else(|| ApiError::not_found(Some("id"), "webhook endpoint"))?;
    state
        .store
        .endpoint(id)?
        .filter(|e| !e.deleted && principal.can_see(e.owner.unwrap_or(0)))
        .ok_or_else(|| ApiError::not_found(Some("id"), "webhook endpoint"))
}

/// Applies `change` to the endpoint in one transaction; a vanished endpoint is 404.
fn update(
    state: &SharedState,
    id: u128,
    change: impl FnOnce(&mut EndpointRecord) -> Result<(), ApiError>,
) -> Result<EndpointRecord, ApiError> {
    state
        .store
        .update_endpoint(id, change)??
        .ok_or_else(|| ApiError::not_found(Some("id"), "webhook endpoint"))
}

#[utoipa::path(post, path = "/v1/webhook_endpoints", operation_id = "webhook_endpoints.create", tag = "webhooks", request_body = CreateEndpoint, params(("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry: the first response is stored and replayed")), responses((status = 201, description = "the endpoint, with its signing secret (shown only here)", body = EndpointView), crate::error::WriteErrors))]
pub async fn create(
    State(state): State<SharedState>,
    Key(principal): Key,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(request, raw): ApiJson<CreateEndpoint>,
) -> Result<Response, ApiError> {
    let owner = owner_of_caller(&principal)?;
    checked_url(&state, &request.url).await?;
    let events = parse_events(request.events)?;
    check_description(&request.description)?;
    let existing = state
        .store
        .endpoints()?
        .iter()
        .filter(|e| !e.deleted && e.owner == owner)
        .count();
    if existing >= ENDPOINTS_PER_OWNER_MAX {
        return Err(ApiError::refused(
            "too_many_endpoints",
            format!("at most {ENDPOINTS_PER_OWNER_MAX} webhook endpoints each; delete one first"),
        ));
    }
    let now = state.products.clock.now();
    let tenant = principal.tenant();
    state
        .idempotent(tenant, key, "webhook_endpoints", &raw, || async move {
            let secret = farthing_store::outbox::new_secret();
            let record = EndpointRecord {
                id: random_id(),
                owner,
                url: request.url,
                events,
                description: request.description,
                secrets: vec![SecretRecord {
                    secret: secret.clone(),
                    created_ns: now,
                    expires_ns: None,
                }],
                disabled: None,
                failing_since_ns: None,
                created_ns: now,
                deleted: false,
            };
            let body = to_json(&endpoint_view(&record, now, Some(secret)))?;
            Ok((
                StatusCode::CREATED,
                body,
                Changes {
                    records: vec![RecordWrite::put(ENDPOINTS, record.id, &record)?],
                    ..Changes::default()
                },
            ))
        })
        .await
        .map(crate::extract::reply)
}

#[utoipa::path(get, path = "/v1/webhook_endpoints", operation_id = "webhook_endpoints.list", tag = "webhooks", responses((status = 200, description = "the caller's endpoints (the operator sees all)", body = EndpointList), crate::error::ReadErrors))]
pub async fn list(
    State(state): State<SharedState>,
    Key(principal): Key,
) -> Result<axum::Json<EndpointList>, ApiError> {
    let now = state.products.clock.now();
    let data = state
        .store
        .endpoints()?
        .iter()
        .filter(|e| !e.deleted && principal.can_see(e.owner.unwrap_or(0)))
        .map(|e| endpoint_view(e, now, None))
        .collect();
    Ok(axum::Json(EndpointList {
        object: "list",
        data,
        has_more: false,
    }))
}

#[utoipa::path(get, path = "/v1/webhook_endpoints/{id}", operation_id = "webhook_endpoints.get", tag = "webhooks", params(("id" = String, Path, description = "we_… id")), responses((status = 200, description = "the endpoint (without its secret)", body = EndpointView), crate::error::ReadErrors))]
pub async fn get(
    State(state): State<SharedState>,
    Key(principal): Key,
    Path(id): Path<String>,
) -> Result<axum::Json<EndpointView>, ApiError> {
    let endpoint = load_endpoint(&state, &principal, &id)?;
    Ok(axum::Json(endpoint_view(
        &endpoint,
        state.products.clock.now(),
        None,
    )))
}

#[utoipa::path(post, path = "/v1/webhook_endpoints/{id}", operation_id = "webhook_endpoints.update", tag = "webhooks", request_body = UpdateEndpoint, params(("id" = String, Path, description = "we_… id")), responses((status = 200, description = "the changed endpoint", body = EndpointView), crate::error::WriteErrors))]
pub async fn change(
    State(state): State<SharedState>,
    Key(principal): Key,
    Path(id): Path<String>,
    ApiJson(request, _raw): ApiJson<UpdateEndpoint>,
) -> Result<axum::Json<EndpointView>, ApiError> {
    owner_of_caller(&principal)?;
    let endpoint = load_endpoint(&state, &principal, &id)?;
    if let Some(url) = &request.url {
        checked_url(&state, url).await?;
    }
    let events = request.events.map(|e| parse_events(Some(e))).transpose()?;
    check_description(&request.description)?;
    let updated = update(&state, endpoint.id, |e| {
        if e.deleted {
            return Err(ApiError::not_found(Some("id"), "webhook endpoint"));
        }
        if let Some(url) = request.url {
            e.url = url;
        }
        if let Some(events) = events {
            e.events = events;
        }
        if request.description.is_some() {
            e.description = request.description;
        }
        match request.enabled {
            Some(true) => {
                e.disabled = None;
                e.failing_since_ns = None;
            }
            Some(false) => e.disabled = Some("disabled through the API".into()),
            None => {}
        }
        Ok(())
    })?;
    Ok(axum::Json(endpoint_view(
        &updated,
        state.products.clock.now(),
        None,
    )))
}

#[utoipa::path(delete, path = "/v1/webhook_endpoints/{id}", operation_id = "webhook_endpoints.delete", tag = "webhooks", params(("id" = String, Path, description = "we_… id")), responses((status = 200, description = "the deleted endpoint (it gets nothing more; pending deliveries are skipped)", body = EndpointView), crate::error::WriteErrors))]
pub async fn delete(
    State(state): State<SharedState>,
    Key(principal): Key,
    Path(id): Path<String>,
) -> Result<axum::Json<EndpointView>, ApiError> {
    owner_of_caller(&principal)?;
    let endpoint = load_endpoint(&state, &principal, &id)?;
    let updated = update(&state, endpoint.id, |e| {
        e.deleted = true;
        Ok(())
    })?;
    Ok(axum::Json(endpoint_view(
        &updated,
        state.products.clock.now(),
        None,
    )))
}

#[utoipa::path(post, path = "/v1/webhook_endpoints/{id}/rotate_secret", operation_id = "webhook_endpoints.rotate_secret", tag = "webhooks", request_body = RotateSecret, params(("id" = String, Path, description = "we_… id"), ("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry: rotated once, the same new secret replayed")), responses((status = 200, description = "the endpoint with its new secret (shown only here); the previous one keeps signing until `previous_secret_expires`", body = EndpointView), crate::error::WriteErrors))]
pub async fn rotate_secret(
    State(state): State<SharedState>,
    Key(principal): Key,
    IdempotencyKey(key): IdempotencyKey,
    Path(id): Path<String>,
    ApiJson(request, raw): ApiJson<RotateSecret>,
) -> Result<Response, ApiError> {
    owner_of_caller(&principal)?;
    let endpoint = load_endpoint(&state, &principal, &id)?;
    let valid_s = request
        .previous_secret_valid_seconds
        .unwrap_or(PREVIOUS_SECRET_VALID_DEFAULT_S);
    if valid_s > PREVIOUS_SECRET_VALID_MAX_S {
        return Err(ApiError::invalid(
            "previous_secret_valid_seconds",
            "out_of_range",
            format!("previous_secret_valid_seconds must be 0 to {PREVIOUS_SECRET_VALID_MAX_S}"),
        ));
    }
    let guard = state.products.lock(endpoint.id).await;
    // The rotation and its Idempotency-Key record commit together: a retried rotation replays
    // the secret it made instead of rotating again (which would end the old secret at once).
    let state2 = state.clone();
    let path = format!("webhook_endpoints/{id}/rotate_secret");
    let answer = state
        .idempotent(principal.tenant(), key, &path, &raw, || async move {
            let mut e = state2
                .store
                .endpoint(endpoint.id)?
                .filter(|e| !e.deleted)
                .ok_or_else(|| ApiError::not_found(Some("id"), "webhook endpoint"))?;
            let now = state2.products.clock.now();
            let secret = farthing_store::outbox::new_secret();
            // Only the secret being replaced stays valid for a while; older ones end now.
            for old in &mut e.secrets {
                let until = match old.expires_ns {
                    None => now.saturating_add(valid_s * 1_000_000_000),
                    Some(expires) => expires.min(now),
                };
                old.expires_ns = Some(until);
            }
            e.secrets.retain(|s| s.expires_ns.is_some_and(|x| x > now));
            e.secrets.insert(
                0,
                SecretRecord {
                    secret: secret.clone(),
                    created_ns: now,
                    expires_ns: None,
                },
            );
            let body = to_json(&endpoint_view(&e, now, Some(secret)))?;
            Ok((
                StatusCode::OK,
                body,
                Changes {
                    records: vec![RecordWrite::put(ENDPOINTS, e.id, &e)?],
                    ..Changes::default()
                },
            ))
        })
        .await
        .map(crate::extract::reply);
    drop(guard);
    answer
}

#[utoipa::path(get, path = "/v1/webhook_endpoints/{id}/attempts", operation_id = "webhook_endpoints.attempts.list", tag = "webhooks", params(("id" = String, Path, description = "we_… id"), ("limit" = Option<usize>, Query, description = "1 to 100 (default 10)"), ("starting_after" = Option<String>, Query, description = "a whatt_… id: the page after it (older attempts)")), responses((status = 200, description = "the endpoint's delivery log, newest first", body = AttemptList), crate::error::ReadErrors))]
pub async fn attempts(
    State(state): State<SharedState>,
    Key(principal): Key,
    Path(id): Path<String>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Result<axum::Json<AttemptList>, ApiError> {
    let page: crate::routes::PageQuery = crate::routes::parse_query(query.as_deref())?;
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
    let endpoint = load_endpoint(&state, &principal, &id)?;
    let (attempts, has_more) = state.store.attempts(endpoint.id, before, limit)?;
    Ok(axum::Json(AttemptList {
        object: "list",
        data: attempts
            .iter()
            .map(|(id, a)| attempt_view(*id, a))
            .collect(),
        has_more,
    }))
}

#[utoipa::path(get, path = "/v1/webhook_endpoints/{id}/deliveries/{event}", operation_id = "webhook_endpoints.deliveries.get", tag = "webhooks", params(("id" = String, Path, description = "we_… id"), ("event" = String, Path, description = "evt_… id")), responses((status = 200, description = "where the event's delivery to this endpoint stands", body = DeliveryView), crate::error::ReadErrors))]
pub async fn delivery(
    State(state): State<SharedState>,
    Key(principal): Key,
    Path((id, event)): Path<(String, String)>,
) -> Result<axum::Json<DeliveryView>, ApiError> {
    let endpoint = load_endpoint(&state, &principal, &id)?;
    let event = decode_id(IdKind::Event, &event)
        .ok_or_else(|| ApiError::not_found(Some("event"), "delivery"))?;
    let delivery = state
        .store
        .delivery(endpoint.id, event)?
        .ok_or_else(|| ApiError::not_found(Some("event"), "delivery"))?;
    Ok(axum::Json(delivery_view(&delivery)))
}

#[utoipa::path(post, path = "/v1/webhook_endpoints/{id}/redeliver", operation_id = "webhook_endpoints.redeliver", tag = "webhooks", request_body = Redeliver, params(("id" = String, Path, description = "we_… id"), ("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry: queued once")), responses((status = 202, description = "the delivery, queued again at once with its original webhook-id and a fresh retry schedule", body = DeliveryView), crate::error::WriteErrors))]
pub async fn redeliver(
    State(state): State<SharedState>,
    Key(principal): Key,
    IdempotencyKey(key): IdempotencyKey,
    Path(id): Path<String>,
    ApiJson(request, raw): ApiJson<Redeliver>,
) -> Result<Response, ApiError> {
    let path = format!("webhook_endpoints/{id}/redeliver");
    let state2 = state.clone();
    state
        .idempotent(principal.tenant(), key, &path, &raw, || async move {
            let body = queue_again(&state2, &principal, &id, request).await?;
            Ok((StatusCode::ACCEPTED, body, Changes::default()))
        })
        .await
        .map(crate::extract::reply)
}

/// Queues an event's delivery to an endpoint again, due at once; returns the answer's body.
async fn queue_again(
    state: &SharedState,
    principal: &Principal,
    id: &str,
    request: Redeliver,
) -> Result<String, ApiError> {
    owner_of_caller(principal)?;
    let endpoint = load_endpoint(state, principal, id)?;
    if let Some(reason) = &endpoint.disabled {
        return Err(ApiError::refused(
            "endpoint_disabled",
            format!("the endpoint is disabled ({reason}); enable it first"),
        ));
    }
    let not_found = || ApiError::not_found(Some("event"), "event");
    let event_id = decode_id(IdKind::Event, &request.event).ok_or_else(not_found)?;
    let event = state
        .store
        .event(event_id)?
        .filter(|e| endpoint.owner.is_none() || e.merchant == endpoint.owner)
        .ok_or_else(not_found)?;
    let now = state.products.clock.now();
    let previous = state.store.delivery(endpoint.id, event.id)?;
    let delivery = DeliveryRecord {
        endpoint: endpoint.id,
        event: event.id,
        kind: event.kind,
        status: DeliveryStatus::Pending,
        attempts: previous.as_ref().map_or(0, |d| d.attempts),
        failed_in_schedule: 0,
        next_attempt_ns: Some(now),
        created_ns: previous.as_ref().map_or(now, |d| d.created_ns),
    };
    let store = std::sync::Arc::clone(&state.store);
    let queued = delivery.clone();
    tokio::task::spawn_blocking(move || store.requeue_delivery(&queued))
        .await
        .map_err(|e| ApiError::internal(format!("store task failed: {e}")))??;
    state.store.outbox_ready.notify_one();
    Ok(to_json(&delivery_view(&delivery))?)
}

#[utoipa::path(get, path = "/v1/events/{id}", operation_id = "events.get", tag = "webhooks", params(("id" = String, Path, description = "evt_… id")), responses((status = 200, description = "the event, as its deliveries carry it", body = EventView), crate::error::ReadErrors))]
pub async fn event(
    State(state): State<SharedState>,
    Key(principal): Key,
    Path(id): Path<String>,
) -> Result<axum::Json<EventView>, ApiError> {
    let not_found = || ApiError::not_found(Some("id"), "event");
    let id = decode_id(IdKind::Event, &id).ok_or_else(not_found)?;
    let event: EventRecord = state
        .store
        .event(id)?
        .filter(|e| principal.is_operator() || e.merchant.is_some_and(|m| principal.can_see(m)))
        .ok_or_else(not_found)?;
    Ok(axum::Json(EventView {
        id: encode_id(IdKind::Event, event.id),
        object: "event",
        kind: event.kind.name().to_string(),
        created: rfc3339(event.created_ns),
        merchant: event.merchant.map(|m| encode_id(IdKind::Merchant, m)),
        data: event.data,
    }))
}
