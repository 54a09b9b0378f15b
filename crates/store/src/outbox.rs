//! Webhooks: events for every state change, a durable outbox, and delivery to the endpoints
//! merchants (and the operator) register.
//!
//! **Events are committed with what caused them.** An event caused by money moving is an
//! [`EventWrite`] in the journal note of the ledger batch that moves it (see
//! [`crate::journal`]), so it is durable exactly when the money is. It names the batch's first
//! transfer (`created_by`): the journal applies the event only if that transfer exists *and was
//! created by this very batch* (its ledger timestamp is the batch's), so a refused chain, or a
//! retry that finds its chain already booked, never invents a second event. Events with no
//! money behind them (a declined top-up, a subscription going past due) are written in the
//! same store transaction as the record that changes.
//!
//! **The outbox.** Applying an event (in any store transaction) stores it and, in the same
//! transaction, queues one delivery per matching endpoint ([`fan_out`]): a merchant's
//! endpoints get that merchant's events, the operator's get all, each filtered by its event
//! types. A queued delivery is a row in the due table keyed by when it is next due, so the
//! worker (`farthing_service::delivery`) finds due work with one range read, and a crash at any point leaves
//! either the row (delivered again: at least once, with the same `webhook-id`) or the
//! delivery's recorded outcome.

use farthing_products::ids::{MerchantId, WebhookEndpointId};
use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::db::{decode, encode, readable, Store};
use crate::error::StoreError;
use crate::util::sha256;
use farthing_products::ids::{encode_id, IdKind};

/// Endpoints by id (JSON [`EndpointRecord`]).
pub const ENDPOINTS: TableDefinition<u128, &[u8]> = TableDefinition::new("webhook_endpoints");
/// Events by id (JSON [`EventRecord`]); ids start with the creation time, so the table is in
/// time order and new events append.
pub const EVENTS: TableDefinition<u128, &[u8]> = TableDefinition::new("webhook_events");
/// (endpoint, event) → JSON [`DeliveryRecord`]: each endpoint's deliveries in event order.
pub const DELIVERIES: TableDefinition<(u128, u128), &[u8]> =
    TableDefinition::new("webhook_deliveries");
/// (due time ns, endpoint, event): the outbox, in the order deliveries are due.
pub const DUE: TableDefinition<(u64, u128, u128), ()> = TableDefinition::new("webhook_due");
/// (endpoint, attempt id) → JSON [`AttemptRecord`]: each endpoint's delivery log, oldest first.
pub const ATTEMPTS: TableDefinition<(u128, u128), &[u8]> = TableDefinition::new("webhook_attempts");

/// The types of event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum EventKind {
    #[serde(rename = "charge.succeeded")]
    ChargeSucceeded,
    #[serde(rename = "charge.refunded")]
    ChargeRefunded,
    #[serde(rename = "topup.succeeded")]
    TopupSucceeded,
    #[serde(rename = "topup.failed")]
    TopupFailed,
    #[serde(rename = "tab.settled")]
    TabSettled,
    #[serde(rename = "tab.settlement_failed")]
    TabSettlementFailed,
    #[serde(rename = "payout.paid")]
    PayoutPaid,
    #[serde(rename = "payout.failed")]
    PayoutFailed,
    #[serde(rename = "hold.captured")]
    HoldCaptured,
    #[serde(rename = "hold.released")]
    HoldReleased,
    #[serde(rename = "hold.expired")]
    HoldExpired,
    #[serde(rename = "subscription.renewed")]
    SubscriptionRenewed,
    #[serde(rename = "subscription.past_due")]
    SubscriptionPastDue,
    #[serde(rename = "subscription.canceled")]
    SubscriptionCanceled,
    #[serde(rename = "campaign.succeeded")]
    CampaignSucceeded,
    #[serde(rename = "campaign.failed")]
    CampaignFailed,
}

impl EventKind {
    pub const ALL: [EventKind; 16] = [
        EventKind::ChargeSucceeded,
        EventKind::ChargeRefunded,
        EventKind::TopupSucceeded,
        EventKind::TopupFailed,
        EventKind::TabSettled,
        EventKind::TabSettlementFailed,
        EventKind::PayoutPaid,
        EventKind::PayoutFailed,
        EventKind::HoldCaptured,
        EventKind::HoldReleased,
        EventKind::HoldExpired,
        EventKind::SubscriptionRenewed,
        EventKind::SubscriptionPastDue,
        EventKind::SubscriptionCanceled,
        EventKind::CampaignSucceeded,
        EventKind::CampaignFailed,
    ];

    /// The code a journal note carries.
    pub fn code(self) -> u8 {
        EventKind::ALL
            .iter()
            .position(|k| *k == self)
            .map_or(u8::MAX, |i| i as u8)
    }

    pub fn from_code(code: u8) -> Option<EventKind> {
        EventKind::ALL.get(code as usize).copied()
    }

    pub fn name(self) -> &'static str {
        match self {
            EventKind::ChargeSucceeded => "charge.succeeded",
            EventKind::ChargeRefunded => "charge.refunded",
            EventKind::TopupSucceeded => "topup.succeeded",
            EventKind::TopupFailed => "topup.failed",
            EventKind::TabSettled => "tab.settled",
            EventKind::TabSettlementFailed => "tab.settlement_failed",
            EventKind::PayoutPaid => "payout.paid",
            EventKind::PayoutFailed => "payout.failed",
            EventKind::HoldCaptured => "hold.captured",
            EventKind::HoldReleased => "hold.released",
            EventKind::HoldExpired => "hold.expired",
            EventKind::SubscriptionRenewed => "subscription.renewed",
            EventKind::SubscriptionPastDue => "subscription.past_due",
            EventKind::SubscriptionCanceled => "subscription.canceled",
            EventKind::CampaignSucceeded => "campaign.succeeded",
            EventKind::CampaignFailed => "campaign.failed",
        }
    }

    pub fn parse(name: &str) -> Option<EventKind> {
        EventKind::ALL.iter().copied().find(|k| k.name() == name)
    }
}

/// An event as stored.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EventRecord {
    pub id: u128,
    pub kind: EventKind,
    /// On the products' clock.
    pub created_ns: u64,
    /// The merchant the event concerns (`None`: only the operator's endpoints get it).
    pub merchant: Option<MerchantId>,
    /// The object as the API shows it.
    pub data: serde_json::Value,
}

/// An event to store (and fan out) when its write is applied.
#[derive(Clone, Debug)]
pub struct EventWrite {
    pub id: u128,
    pub kind: EventKind,
    pub merchant: Option<MerchantId>,
    /// In a journal note: the transfer the note's batch must have created (its first) for the
    /// event to be real. `None` for events written in a store transaction.
    pub created_by: Option<u128>,
    /// The [`EventRecord`], encoded.
    pub value: Vec<u8>,
}

/// Which (owner, event type) pairs some enabled endpoint wants: a cheap check that lets an
/// operation skip building an event nobody would receive.
pub struct Interest {
    /// (owner: `None` for the operator's, which want every merchant's events, types: empty
    /// for all).
    endpoints: Vec<(Option<MerchantId>, Vec<EventKind>)>,
}

impl Interest {
    fn wants(&self, kind: EventKind, merchant: Option<MerchantId>) -> bool {
        self.endpoints.iter().any(|(owner, kinds)| {
            (owner.is_none() || *owner == merchant) && (kinds.is_empty() || kinds.contains(&kind))
        })
    }
}

/// The cached [`Interest`] and the generation of the endpoints it was built from.
#[derive(Default)]
pub struct InterestCache {
    generation: u64,
    interest: Option<std::sync::Arc<Interest>>,
}

/// The write that records an event of `kind` about what `data` builds, created now — or
/// `None` when no enabled endpoint wants such an event (then `data` is not even built: a
/// charge with nobody listening pays nothing for webhooks). An event in a chain's note becomes
/// conditional on the chain when submitted (see [`EventWrite::created_by`]).
pub fn event_write<T: Serialize, E: From<StoreError>>(
    store: &Store,
    kind: EventKind,
    merchant: Option<MerchantId>,
    created_ns: u64,
    data: impl FnOnce() -> Result<T, E>,
) -> Result<Option<crate::db::RecordWrite>, E> {
    if !store
        .wants_event(kind, merchant)
        .map_err(StoreError::from)?
    {
        return Ok(None);
    }
    /// [`EventRecord`]'s encoding, written in one pass from borrowed data.
    #[derive(Serialize)]
    struct Encoded<'a, T> {
        id: u128,
        kind: EventKind,
        created_ns: u64,
        merchant: Option<MerchantId>,
        data: &'a T,
    }
    // Time first: ids sort by time and new events append to the table.
    let id = crate::util::time_ordered_id(created_ns);
    let value = serde_json::to_vec(&Encoded {
        id,
        kind,
        created_ns,
        merchant,
        data: &data()?,
    })
    .map_err(|e| StoreError::Encode(format!("event: {e}")))?;
    Ok(Some(crate::db::RecordWrite::Event(EventWrite {
        id,
        kind,
        merchant,
        created_by: None,
        value,
    })))
}

/// One secret of an endpoint; a rotated-out secret keeps signing until it expires.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SecretRecord {
    /// `whsec_…`.
    pub secret: String,
    pub created_ns: u64,
    /// On the products' clock; `None` for the current secret.
    pub expires_ns: Option<u64>,
}

/// A registered endpoint.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct EndpointRecord {
    pub id: WebhookEndpointId,
    /// The merchant it belongs to; `None`: the operator's (gets every event).
    pub owner: Option<MerchantId>,
    pub url: String,
    /// Event types it gets; empty: all.
    pub events: Vec<EventKind>,
    pub description: Option<String>,
    /// The current secret first.
    pub secrets: Vec<SecretRecord>,
    /// Why deliveries stopped (`None`: enabled).
    pub disabled: Option<String>,
    /// Since when every attempt failed (`None`: the last one succeeded).
    pub failing_since_ns: Option<u64>,
    pub created_ns: u64,
    /// Deleted endpoints are kept (their delivery log stays readable) but get nothing.
    pub deleted: bool,
}

impl EndpointRecord {
    pub fn wants(&self, event: &EventWrite) -> bool {
        !self.deleted
            && self.disabled.is_none()
            && (self.owner.is_none() || self.owner == event.merchant)
            && (self.events.is_empty() || self.events.contains(&event.kind))
    }

    /// The secrets that sign at `now`.
    pub fn signing_secrets(&self, now_ns: u64) -> Vec<&SecretRecord> {
        self.secrets
            .iter()
            .filter(|s| s.expires_ns.is_none_or(|e| e > now_ns))
            .collect()
    }
}

/// Where a delivery stands.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Queued: due at `next_attempt`.
    Pending,
    Succeeded,
    /// Every attempt of the schedule failed.
    Failed,
    /// Not sent: the endpoint was disabled or deleted first.
    Skipped,
}

/// One event's delivery to one endpoint.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub endpoint: u128,
    pub event: u128,
    pub kind: EventKind,
    pub status: DeliveryStatus,
    /// Attempts made (a manual redelivery starts the schedule again but keeps counting).
    pub attempts: u32,
    /// Attempts failed since the schedule (re)started.
    pub failed_in_schedule: u32,
    pub next_attempt_ns: Option<u64>,
    pub created_ns: u64,
}

/// One attempt, as the delivery log shows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AttemptRecord {
    pub event: u128,
    pub kind: EventKind,
    /// 1 for the first attempt of this delivery.
    pub attempt: u32,
    /// On the products' clock.
    pub at_ns: u64,
    /// The receiver's HTTP status, if it answered.
    pub status_code: Option<u16>,
    /// Why it failed (`None`: it succeeded).
    pub error: Option<String>,
    /// The start of the receiver's answer (at most [`delivery::RESPONSE_BYTES_KEPT`] bytes).
    pub response: String,
    pub duration_ms: u64,
    /// The manual redelivery that asked for it, or the schedule.
    pub manual: bool,
}

/// The id of an endpoint as shown, for error messages and logs.
pub fn endpoint_text(id: u128) -> String {
    encode_id(IdKind::WebhookEndpoint, id)
}

/// Stores `events` and queues their deliveries to every endpoint that wants them, in `txn`.
/// A delivery already recorded (the same event applied again after a crash) is left as it is.
/// Returns how many deliveries it queued.
pub fn fan_out(txn: &WriteTransaction, events: &[&EventWrite]) -> Result<usize, redb::Error> {
    if events.is_empty() {
        return Ok(0);
    }
    let mut table = txn.open_table(EVENTS)?;
    for event in events {
        table.insert(event.id, event.value.as_slice())?;
    }
    let endpoints: Vec<EndpointRecord> = {
        let table = txn.open_table(ENDPOINTS)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (_, value) = entry?;
            let endpoint: EndpointRecord = decode(value.value())?;
            if !endpoint.deleted && endpoint.disabled.is_none() {
                out.push(endpoint);
            }
        }
        out
    };
    if endpoints.is_empty() {
        return Ok(0);
    }
    let mut deliveries = txn.open_table(DELIVERIES)?;
    let mut due = txn.open_table(DUE)?;
    let mut queued = 0;
    for event in events {
        let created_ns = (event.id >> 64) as u64;
        for endpoint in endpoints.iter().filter(|e| e.wants(event)) {
            if deliveries.get((endpoint.id.0, event.id))?.is_some() {
                continue;
            }
            let record = DeliveryRecord {
                endpoint: endpoint.id.0,
                event: event.id,
                kind: event.kind,
                status: DeliveryStatus::Pending,
                attempts: 0,
                failed_in_schedule: 0,
                next_attempt_ns: Some(created_ns),
                created_ns,
            };
            deliveries.insert((endpoint.id.0, event.id), encode(&record)?.as_slice())?;
            due.insert((created_ns, endpoint.id.0, event.id), ())?;
            queued += 1;
        }
    }
    Ok(queued)
}

/// A row of the outbox: (due time ns, endpoint, event).
pub type DueRow = (u64, u128, u128);

/// A secret's random bytes, as `whsec_…`.
pub fn new_secret() -> String {
    let bytes: [u8; farthing_products::webhooks::SECRET_BYTES] = rand::random();
    farthing_products::webhooks::WebhookSecret::from_bytes(&bytes)
        .map(|s| s.to_text())
        .unwrap_or_default()
}

/// An attempt's id in the delivery log: its time in the high bits, so the log is in order.
pub fn attempt_id(at_ns: u64, endpoint: u128, event: u128, attempt: u32) -> u128 {
    let hash = sha256(&[
        &endpoint.to_le_bytes(),
        &event.to_le_bytes(),
        &attempt.to_le_bytes(),
    ]);
    let low = u64::from_le_bytes(hash[..8].try_into().unwrap_or([0; 8]));
    (u128::from(at_ns) << 64) | u128::from(low)
}

impl Store {
    /// Whether some enabled endpoint wants events of `kind` about `merchant`.
    pub fn wants_event(
        &self,
        kind: EventKind,
        merchant: Option<MerchantId>,
    ) -> Result<bool, redb::Error> {
        let generation = {
            let cache = self.webhook_interest.read();
            if let Some(interest) = &cache.interest {
                return Ok(interest.wants(kind, merchant));
            }
            cache.generation
        };
        let interest = std::sync::Arc::new(Interest {
            endpoints: self
                .endpoints()?
                .into_iter()
                .filter(|e| !e.deleted && e.disabled.is_none())
                .map(|e| (e.owner, e.events))
                .collect(),
        });
        let wants = interest.wants(kind, merchant);
        let mut cache = self.webhook_interest.write();
        // Endpoints changed while this was read: leave the rebuild to the next check.
        if cache.generation == generation {
            cache.interest = Some(interest);
        }
        Ok(wants)
    }

    /// Drops the cached [`Interest`] after the endpoints changed (the next check rebuilds it).
    pub fn forget_webhook_interest(&self) {
        let mut cache = self.webhook_interest.write();
        cache.generation += 1;
        cache.interest = None;
    }

    pub fn endpoint(&self, id: u128) -> Result<Option<EndpointRecord>, redb::Error> {
        self.record(ENDPOINTS, id)
    }

    pub fn endpoints(&self) -> Result<Vec<EndpointRecord>, redb::Error> {
        self.all_records(ENDPOINTS)
    }

    /// Changes endpoint `id` with `change` (read and written in one durable transaction, so
    /// concurrent changes never overwrite each other); `None` if there is no such endpoint.
    pub fn update_endpoint<E>(
        &self,
        id: u128,
        change: impl FnOnce(&mut EndpointRecord) -> Result<(), E>,
    ) -> Result<Result<Option<EndpointRecord>, E>, redb::Error> {
        let txn = self.database().begin_write()?;
        let updated = {
            let mut table = txn.open_table(ENDPOINTS)?;
            let current: Option<EndpointRecord> =
                table.get(id)?.map(|v| decode(v.value())).transpose()?;
            let Some(mut endpoint) = current else {
                return Ok(Ok(None));
            };
            if let Err(e) = change(&mut endpoint) {
                return Ok(Err(e));
            }
            table.insert(id, encode(&endpoint)?.as_slice())?;
            endpoint
        };
        txn.commit()?;
        self.forget_webhook_interest();
        Ok(Ok(Some(updated)))
    }

    pub fn event(&self, id: u128) -> Result<Option<EventRecord>, redb::Error> {
        self.record(EVENTS, id)
    }

    pub fn delivery(
        &self,
        endpoint: u128,
        event: u128,
    ) -> Result<Option<DeliveryRecord>, redb::Error> {
        let txn = self.database().begin_read()?;
        let Some(table) = readable(&txn, DELIVERIES)? else {
            return Ok(None);
        };
        table
            .get((endpoint, event))?
            .map(|v| decode(v.value()))
            .transpose()
    }

    /// Up to `limit` deliveries due at `now_ns`, oldest first, and when the next one after
    /// them is due.
    pub fn due_deliveries(
        &self,
        now_ns: u64,
        limit: usize,
        skip: &std::collections::HashSet<(u128, u128)>,
    ) -> Result<(Vec<DueRow>, Option<u64>), redb::Error> {
        let txn = self.database().begin_read()?;
        let Some(table) = readable(&txn, DUE)? else {
            return Ok((Vec::new(), None));
        };
        let mut due = Vec::new();
        for entry in table.iter()? {
            let (key, _) = entry?;
            let (at, endpoint, event) = key.value();
            if at > now_ns {
                return Ok((due, Some(at)));
            }
            if skip.contains(&(endpoint, event)) {
                continue;
            }
            if due.len() == limit {
                return Ok((due, Some(at)));
            }
            due.push((at, endpoint, event));
        }
        Ok((due, None))
    }

    /// Records an attempt's outcome in one durable transaction: the delivery's new state, its
    /// outbox row moved (or removed), the attempt in the log, and the endpoint's health
    /// (`failing_since_ns` and `disabled`, merged into its latest record).
    pub fn record_attempt(
        &self,
        due_at: u64,
        delivery: &DeliveryRecord,
        attempt: &AttemptRecord,
        health: Option<(Option<u64>, Option<String>)>,
    ) -> Result<(), redb::Error> {
        let endpoint_changed = health.is_some();
        let txn = self.database().begin_write()?;
        {
            let mut due = txn.open_table(DUE)?;
            due.remove((due_at, delivery.endpoint, delivery.event))?;
            if let (DeliveryStatus::Pending, Some(next)) =
                (delivery.status, delivery.next_attempt_ns)
            {
                due.insert((next, delivery.endpoint, delivery.event), ())?;
            }
            txn.open_table(DELIVERIES)?.insert(
                (delivery.endpoint, delivery.event),
                encode(delivery)?.as_slice(),
            )?;
            let id = attempt_id(
                attempt.at_ns,
                delivery.endpoint,
                delivery.event,
                attempt.attempt,
            );
            txn.open_table(ATTEMPTS)?
                .insert((delivery.endpoint, id), encode(attempt)?.as_slice())?;
            if let Some((failing_since_ns, disabled)) = health {
                let mut table = txn.open_table(ENDPOINTS)?;
                let current: Option<EndpointRecord> = table
                    .get(delivery.endpoint)?
                    .map(|v| decode(v.value()))
                    .transpose()?;
                if let Some(mut endpoint) = current {
                    endpoint.failing_since_ns = failing_since_ns;
                    if endpoint.disabled.is_none() {
                        endpoint.disabled = disabled;
                    }
                    table.insert(endpoint.id.0, encode(&endpoint)?.as_slice())?;
                }
            }
        }
        txn.commit()?;
        if endpoint_changed {
            self.forget_webhook_interest();
        }
        Ok(())
    }

    /// Marks a due delivery skipped (its endpoint is disabled or gone) and drops its row.
    pub fn skip_delivery(&self, due_at: u64, delivery: &DeliveryRecord) -> Result<(), redb::Error> {
        let txn = self.database().begin_write()?;
        {
            txn.open_table(DUE)?
                .remove((due_at, delivery.endpoint, delivery.event))?;
            txn.open_table(DELIVERIES)?.insert(
                (delivery.endpoint, delivery.event),
                encode(delivery)?.as_slice(),
            )?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Queues `delivery` (new or finished) again, due at once: a manual redelivery.
    pub fn requeue_delivery(&self, delivery: &DeliveryRecord) -> Result<(), redb::Error> {
        let txn = self.database().begin_write()?;
        {
            let mut deliveries = txn.open_table(DELIVERIES)?;
            let mut due = txn.open_table(DUE)?;
            if let Some(previous) = deliveries.get((delivery.endpoint, delivery.event))? {
                let previous: DeliveryRecord = decode(previous.value())?;
                if let (DeliveryStatus::Pending, Some(at)) =
                    (previous.status, previous.next_attempt_ns)
                {
                    due.remove((at, delivery.endpoint, delivery.event))?;
                }
            }
            deliveries.insert(
                (delivery.endpoint, delivery.event),
                encode(delivery)?.as_slice(),
            )?;
            if let Some(at) = delivery.next_attempt_ns {
                due.insert((at, delivery.endpoint, delivery.event), ())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// The delivery log of `endpoint`, newest first: up to `limit` attempts before
    /// `before` (an attempt id), and whether more follow.
    pub fn attempts(
        &self,
        endpoint: u128,
        before: Option<u128>,
        limit: usize,
    ) -> Result<(Vec<(u128, AttemptRecord)>, bool), redb::Error> {
        let txn = self.database().begin_read()?;
        let Some(table) = readable(&txn, ATTEMPTS)? else {
            return Ok((Vec::new(), false));
        };
        let end = before.unwrap_or(u128::MAX);
        let mut out = Vec::new();
        for entry in table.range((endpoint, 0)..(endpoint, end))?.rev() {
            let (key, value) = entry?;
            if out.len() == limit {
                return Ok((out, true));
            }
            out.push((key.value().1, decode(value.value())?));
        }
        Ok((out, false))
    }
}
