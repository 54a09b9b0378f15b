//! Webhook endpoints: registering ([`create`]), reading, changing and deleting them, rotating
//! their signing secrets ([`rotate_secret`]), their delivery log ([`attempts`], [`delivery`])
//! and redelivering an event ([`redeliver`]); and reading an event ([`event`]).
//!
//! A merchant key manages the merchant's endpoints, which get the merchant's events; the
//! operator's endpoints get every event. The signing secret is shown once, when the endpoint is
//! created or its secret rotated; after a rotation the previous secret keeps signing (every
//! delivery carries both signatures) for `previous_secret_valid_seconds`.

use farthing_products::ids::MerchantId;
use farthing_products::ids::WebhookEndpointId;
use farthing_products::ids::{decode_id, encode_id, IdKind};
use farthing_store::outbox::{
    AttemptRecord, DeliveryRecord, DeliveryStatus, EndpointRecord, EventKind, EventRecord,
    SecretRecord, ENDPOINTS,
};
use farthing_store::util::random_id;
use farthing_store::util::rfc3339;
use farthing_store::{Changes, RecordWrite};
use serde::Serialize;

use crate::delivery::check_url;
use crate::error::ServiceError;
use crate::state::{to_json, Principal, Reply, SharedState};

/// Endpoints one owner may have.
const ENDPOINTS_PER_OWNER_MAX: usize = 16;
const DESCRIPTION_BYTES_MAX: usize = 500;
/// How long a rotated-out secret keeps signing unless asked otherwise: a day.
const PREVIOUS_SECRET_VALID_DEFAULT_S: u64 = 86_400;
const PREVIOUS_SECRET_VALID_MAX_S: u64 = 7 * 86_400;

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
        id: encode_id(IdKind::WebhookEndpoint, e.id.0),
        object: "webhook_endpoint",
        url: e.url.clone(),
        events: if e.events.is_empty() {
            vec!["*".into()]
        } else {
            e.events.iter().map(|k| k.name().to_string()).collect()
        },
        description: e.description.clone(),
        merchant: e.owner.map(|m| encode_id(IdKind::Merchant, m.0)),
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
fn parse_events(events: Option<Vec<String>>) -> Result<Vec<EventKind>, ServiceError> {
    let Some(names) = events else {
        return Ok(Vec::new());
    };
    if names.is_empty() {
        return Err(ServiceError::invalid(
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
            ServiceError::invalid(
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

fn check_description(description: &Option<String>) -> Result<(), ServiceError> {
    if description
        .as_ref()
        .is_some_and(|d| d.len() > DESCRIPTION_BYTES_MAX)
    {
        return Err(ServiceError::invalid(
            "description",
            "too_long",
            format!("description must be at most {DESCRIPTION_BYTES_MAX} bytes"),
        ));
    }
    Ok(())
}

async fn checked_url(state: &SharedState, url: &str) -> Result<(), ServiceError> {
    check_url(url, &state.products.webhook_addresses)
        .await
        .map_err(|(code, message)| ServiceError::invalid("url", code, message))
}

/// Who may manage endpoints: merchant keys (their own) and the operator (its own, and every
/// merchant's).
fn owner_of_caller(principal: &Principal) -> Result<Option<MerchantId>, ServiceError> {
    principal.require_write()?;
    match principal.merchant() {
        Some(merchant) => Ok(Some(merchant)),
        None if principal.is_operator() => Ok(None),
        None => Err(ServiceError::forbidden(
            "webhook endpoints are managed with a merchant or operator key",
        )),
    }
}

fn endpoint_missing() -> ServiceError {
    ServiceError::not_found(Some("id"), "webhook endpoint")
}

/// A live endpoint the caller may see (`we_…` id), or 404.
fn load_endpoint(
    state: &SharedState,
    principal: &Principal,
    id: WebhookEndpointId,
) -> Result<EndpointRecord, ServiceError> {
    let id = id.0;
    state
        .store
        .endpoint(id)?
        .filter(|e| !e.deleted && principal.can_see(e.owner.map_or(0, |m| m.0)))
        .ok_or_else(endpoint_missing)
}

/// Applies `change` to the endpoint in one transaction; a vanished endpoint is 404.
fn update(
    state: &SharedState,
    id: u128,
    change: impl FnOnce(&mut EndpointRecord) -> Result<(), ServiceError>,
) -> Result<EndpointRecord, ServiceError> {
    state
        .store
        .update_endpoint(id, change)??
        .ok_or_else(endpoint_missing)
}

/// A new endpoint, as asked for: event type names (`None` or `["*"]`: all).
#[derive(Debug)]
pub struct NewEndpoint {
    pub url: String,
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
}

/// Registers an endpoint of the caller (a merchant's, or the operator's), with a new signing
/// secret, at most once per Idempotency-Key.
pub async fn create(
    state: &SharedState,
    principal: &Principal,
    key: Option<String>,
    request: &[u8],
    new: NewEndpoint,
) -> Result<Reply, ServiceError> {
    let owner = owner_of_caller(principal)?;
    checked_url(state, &new.url).await?;
    let events = parse_events(new.events)?;
    check_description(&new.description)?;
    let existing = state
        .store
        .endpoints()?
        .iter()
        .filter(|e| !e.deleted && e.owner == owner)
        .count();
    if existing >= ENDPOINTS_PER_OWNER_MAX {
        return Err(ServiceError::refused(
            "too_many_endpoints",
            format!("at most {ENDPOINTS_PER_OWNER_MAX} webhook endpoints each; delete one first"),
        ));
    }
    let now = state.products.clock.now();
    let tenant = principal.tenant();
    state
        .idempotent(tenant, key, "webhook_endpoints", request, || async move {
            let secret = farthing_store::outbox::new_secret();
            let record = EndpointRecord {
                id: WebhookEndpointId(random_id()),
                owner,
                url: new.url,
                events,
                description: new.description,
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
                201_u16,
                body,
                Changes {
                    records: vec![RecordWrite::put(ENDPOINTS, record.id, &record)?],
                    ..Changes::default()
                },
            ))
        })
        .await
}

/// The endpoints the caller may see (the operator sees all).
pub fn list(state: &SharedState, principal: &Principal) -> Result<Vec<EndpointView>, ServiceError> {
    let now = state.products.clock.now();
    Ok(state
        .store
        .endpoints()?
        .iter()
        .filter(|e| !e.deleted && principal.can_see(e.owner.map_or(0, |m| m.0)))
        .map(|e| endpoint_view(e, now, None))
        .collect())
}

/// An endpoint the caller may see (without its secret), or 404.
pub fn get(
    state: &SharedState,
    principal: &Principal,
    id: WebhookEndpointId,
) -> Result<EndpointView, ServiceError> {
    let endpoint = load_endpoint(state, principal, id)?;
    Ok(endpoint_view(&endpoint, state.products.clock.now(), None))
}

/// What a change to an endpoint sets; `None` leaves a field as it is. `enabled: Some(true)`
/// re-enables a disabled endpoint, `Some(false)` disables it.
#[derive(Debug, Default)]
pub struct EndpointChange {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
}

/// Changes an endpoint of the caller; returns it changed.
pub async fn change(
    state: &SharedState,
    principal: &Principal,
    id: WebhookEndpointId,
    change: EndpointChange,
) -> Result<EndpointView, ServiceError> {
    owner_of_caller(principal)?;
    let endpoint = load_endpoint(state, principal, id)?;
    if let Some(url) = &change.url {
        checked_url(state, url).await?;
    }
    let events = change.events.map(|e| parse_events(Some(e))).transpose()?;
    check_description(&change.description)?;
    let updated = update(state, endpoint.id.0, |e| {
        if e.deleted {
            return Err(endpoint_missing());
        }
        if let Some(url) = change.url {
            e.url = url;
        }
        if let Some(events) = events {
            e.events = events;
        }
        if change.description.is_some() {
            e.description = change.description;
        }
        match change.enabled {
            Some(true) => {
                e.disabled = None;
                e.failing_since_ns = None;
            }
            Some(false) => e.disabled = Some("disabled through the API".into()),
            None => {}
        }
        Ok(())
    })?;
    Ok(endpoint_view(&updated, state.products.clock.now(), None))
}

/// Deletes an endpoint of the caller (it gets nothing more; pending deliveries are skipped);
/// returns it deleted.
pub fn delete(
    state: &SharedState,
    principal: &Principal,
    id: WebhookEndpointId,
) -> Result<EndpointView, ServiceError> {
    owner_of_caller(principal)?;
    let endpoint = load_endpoint(state, principal, id)?;
    let updated = update(state, endpoint.id.0, |e| {
        e.deleted = true;
        Ok(())
    })?;
    Ok(endpoint_view(&updated, state.products.clock.now(), None))
}

/// Gives an endpoint of the caller a new signing secret; the previous one keeps signing for
/// `previous_secret_valid_seconds` (default a day, at most a week), older ones end now.
pub async fn rotate_secret(
    state: &SharedState,
    principal: &Principal,
    key: Option<String>,
    request: &[u8],
    id: WebhookEndpointId,
    previous_secret_valid_seconds: Option<u64>,
) -> Result<Reply, ServiceError> {
    owner_of_caller(principal)?;
    let endpoint = load_endpoint(state, principal, id)?;
    let valid_s = previous_secret_valid_seconds.unwrap_or(PREVIOUS_SECRET_VALID_DEFAULT_S);
    if valid_s > PREVIOUS_SECRET_VALID_MAX_S {
        return Err(ServiceError::invalid(
            "previous_secret_valid_seconds",
            "out_of_range",
            format!("previous_secret_valid_seconds must be 0 to {PREVIOUS_SECRET_VALID_MAX_S}"),
        ));
    }
    let guard = state.products.lock(endpoint.id.0).await;
    // The rotation and its Idempotency-Key record commit together: a retried rotation replays
    // the secret it made instead of rotating again (which would end the old secret at once).
    let path = format!("webhook_endpoints/{id}/rotate_secret");
    let answer = state
        .idempotent(principal.tenant(), key, &path, request, || async move {
            let mut e = state
                .store
                .endpoint(endpoint.id.0)?
                .filter(|e| !e.deleted)
                .ok_or_else(endpoint_missing)?;
            let now = state.products.clock.now();
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
                200_u16,
                body,
                Changes {
                    records: vec![RecordWrite::put(ENDPOINTS, e.id, &e)?],
                    ..Changes::default()
                },
            ))
        })
        .await;
    drop(guard);
    answer
}

/// A page of an endpoint's delivery log, newest first, before the attempt `before`; and
/// whether more follow.
pub fn attempts(
    state: &SharedState,
    principal: &Principal,
    id: WebhookEndpointId,
    before: Option<u128>,
    limit: usize,
) -> Result<(Vec<AttemptView>, bool), ServiceError> {
    let endpoint = load_endpoint(state, principal, id)?;
    let (attempts, has_more) = state.store.attempts(endpoint.id.0, before, limit)?;
    Ok((
        attempts
            .iter()
            .map(|(id, a)| attempt_view(*id, a))
            .collect(),
        has_more,
    ))
}

/// Where the delivery of `event` (an `evt_…` id) to an endpoint of the caller stands.
pub fn delivery(
    state: &SharedState,
    principal: &Principal,
    id: WebhookEndpointId,
    event: &str,
) -> Result<DeliveryView, ServiceError> {
    let endpoint = load_endpoint(state, principal, id)?;
    let missing = || ServiceError::not_found(Some("event"), "delivery");
    let event = decode_id(IdKind::Event, event).ok_or_else(missing)?;
    let delivery = state
        .store
        .delivery(endpoint.id.0, event)?
        .ok_or_else(missing)?;
    Ok(delivery_view(&delivery))
}

/// Queues the delivery of `event` (an `evt_…` id) to an endpoint of the caller again, due at
/// once with its original `webhook-id` and a fresh retry schedule; at most once per
/// Idempotency-Key.
pub async fn redeliver(
    state: &SharedState,
    principal: &Principal,
    key: Option<String>,
    request: &[u8],
    id: WebhookEndpointId,
    event: String,
) -> Result<Reply, ServiceError> {
    let path = format!("webhook_endpoints/{id}/redeliver");
    state
        .idempotent(principal.tenant(), key, &path, request, || async move {
            let body = queue_again(state, principal, id, &event).await?;
            Ok((202_u16, body, Changes::default()))
        })
        .await
}

/// Queues an event's delivery to an endpoint again, due at once; returns the answer's body.
async fn queue_again(
    state: &SharedState,
    principal: &Principal,
    id: WebhookEndpointId,
    event: &str,
) -> Result<String, ServiceError> {
    owner_of_caller(principal)?;
    let endpoint = load_endpoint(state, principal, id)?;
    if let Some(reason) = &endpoint.disabled {
        return Err(ServiceError::refused(
            "endpoint_disabled",
            format!("the endpoint is disabled ({reason}); enable it first"),
        ));
    }
    let not_found = || ServiceError::not_found(Some("event"), "event");
    let event_id = decode_id(IdKind::Event, event).ok_or_else(not_found)?;
    let event = state
        .store
        .event(event_id)?
        .filter(|e| endpoint.owner.is_none() || e.merchant == endpoint.owner)
        .ok_or_else(not_found)?;
    let now = state.products.clock.now();
    let previous = state.store.delivery(endpoint.id.0, event.id)?;
    let delivery = DeliveryRecord {
        endpoint: endpoint.id.0,
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
        .map_err(|e| ServiceError::internal(format!("store task failed: {e}")))??;
    state.store.outbox_ready.notify_one();
    to_json(&delivery_view(&delivery))
}

/// An event the caller may see (the operator sees every event, a merchant its own), as its
/// deliveries carry it; or 404.
pub fn event(
    state: &SharedState,
    principal: &Principal,
    id: u128,
) -> Result<EventView, ServiceError> {
    let event: EventRecord = state
        .store
        .event(id)?
        .filter(|e| principal.is_operator() || e.merchant.is_some_and(|m| principal.can_see(m.0)))
        .ok_or_else(|| ServiceError::not_found(Some("id"), "event"))?;
    Ok(event_view(&event))
}

/// An event as the API shows it.
pub fn event_view(event: &EventRecord) -> EventView {
    EventView {
        id: encode_id(IdKind::Event, event.id),
        object: "event",
        kind: event.kind.name().to_string(),
        created: rfc3339(event.created_ns),
        merchant: event.merchant.map(|m| encode_id(IdKind::Merchant, m.0)),
        data: event.data.clone(),
    }
}
