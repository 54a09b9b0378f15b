//! The delivery worker: sends what the outbox holds, signed per Standard Webhooks, and records
//! every attempt.
//!
//! - **When**: a delivery is due at its `next_attempt` on the products' clock (so a test clock
//!   moves retries forward). The worker reads due rows, sends up to [`IN_FLIGHT_MAX`] at once,
//!   and sleeps until the next row is due or a commit queues new ones.
//! - **What**: `POST` of `{"type", "timestamp", "data"}` with `webhook-id` (the event's id, the
//!   same on every attempt and redelivery), `webhook-timestamp` (this attempt's wall-clock
//!   second: receivers check it against their own clock) and `webhook-signature` (one
//!   signature per secret still valid: two during a rotation).
//! - **Outcome**: a 2xx succeeds. Anything else (another status, a timeout, a refused
//!   connection) is retried on [`farthing_products::webhooks::delivery_backoff`] (8 attempts over
//!   about 22 hours, with jitter) and then marked failed. A 410 Gone disables the endpoint at
//!   once; so does failing continuously for [`DISABLE_AFTER_FAILING_S`].
//! - **SSRF guard**: every address a delivery would connect to is checked against the
//!   operator's [`AddressPolicy`] after DNS resolution (so a name that resolves to
//!   `169.254.169.254` is refused as surely as the literal), redirects are not followed and no
//!   proxy is used.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use farthing_products::webhooks::{
    delivery_backoff, signature_header, AddressClass, AddressPolicy, WebhookSecret,
};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::state::AppState;
use farthing_products::ids::{encode_id, IdKind};
use farthing_store::outbox::{
    AttemptRecord, DeliveryRecord, DeliveryStatus, EndpointRecord, EventRecord,
};
use farthing_store::util::now_ns;
use farthing_store::util::rfc3339;
use farthing_store::Store;

/// Deliveries sent at once.
pub const IN_FLIGHT_MAX: usize = 32;
/// How long a receiver has to answer.
pub const ATTEMPT_TIMEOUT_MS: u64 = 10_000;
/// An endpoint failing every attempt for this long is disabled.
pub const DISABLE_AFTER_FAILING_S: u64 = 86_400;
/// The start of a receiver's answer kept in the delivery log.
pub const RESPONSE_BYTES_KEPT: usize = 256;
/// The longest the worker sleeps without looking at the outbox (the test clock can move
/// without a commit).
const IDLE_POLL_MS: u64 = 1_000;

/// Resolves names for deliveries, keeping only the addresses the policy allows.
struct GuardedResolver {
    policy: AddressPolicy,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed = allowed_addresses(&policy, &resolved)
                .map_err(|class| -> Box<dyn std::error::Error + Send + Sync> {
                    format!("{host} resolves only to {} addresses, which deliveries may not reach (SSRF guard)", class.name()).into()
                })?;
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// The addresses among `resolved` that `policy` allows; none: the class of the first one.
fn allowed_addresses(
    policy: &AddressPolicy,
    resolved: &[SocketAddr],
) -> Result<Vec<SocketAddr>, AddressClass> {
    let mut refused = None;
    let allowed: Vec<SocketAddr> = resolved
        .iter()
        .filter(|a| match policy.check(a.ip()) {
            Ok(()) => true,
            Err(class) => {
                refused.get_or_insert(class);
                false
            }
        })
        .copied()
        .collect();
    if allowed.is_empty() {
        return Err(refused.unwrap_or(AddressClass::Reserved));
    }
    Ok(allowed)
}

/// Checks a webhook URL: `http` or `https`, a host, no credentials in it, and (when the host is
/// an address, or a name that resolves now) an address the policy allows. Returns the field
/// error's code and message.
pub async fn check_url(url: &str, policy: &AddressPolicy) -> Result<(), (&'static str, String)> {
    if url.len() > 2048 {
        return Err(("url_too_long", "url must be at most 2048 bytes".into()));
    }
    let parsed =
        reqwest::Url::parse(url).map_err(|e| ("invalid_url", format!("url is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(("invalid_url", "url must be http:// or https://".into()));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err((
            "invalid_url",
            "url must not carry credentials; verify deliveries by their signature".into(),
        ));
    }
    let forbidden = |class: AddressClass| {
        (
            "url_forbidden_address",
            format!(
                "url points at a {} address; deliveries go to public addresses only unless the \
                 operator allows {} ones (--webhook-allow-addresses)",
                class.name(),
                class.name()
            ),
        )
    };
    match parsed.host() {
        None => Err(("invalid_url", "url has no host".into())),
        Some(url::Host::Ipv4(ip)) => policy.check(IpAddr::V4(ip)).map_err(forbidden),
        Some(url::Host::Ipv6(ip)) => policy.check(IpAddr::V6(ip)).map_err(forbidden),
        Some(url::Host::Domain(name)) => {
            let port = parsed.port_or_known_default().unwrap_or(443);
            // A name that does not resolve now may later; every delivery checks again.
            match tokio::time::timeout(
                Duration::from_secs(2),
                tokio::net::lookup_host((name, port)),
            )
            .await
            {
                Ok(Ok(addrs)) => {
                    let addrs: Vec<SocketAddr> = addrs.collect();
                    allowed_addresses(policy, &addrs)
                        .map(|_| ())
                        .map_err(forbidden)
                }
                _ => Ok(()),
            }
        }
    }
}

fn client(policy: AddressPolicy) -> anyhow::Result<reqwest::Client> {
    // One process-wide crypto provider; a second install attempt is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Ok(reqwest::Client::builder()
        .dns_resolver(Arc::new(GuardedResolver { policy }))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_millis(ATTEMPT_TIMEOUT_MS))
        .connect_timeout(Duration::from_millis(ATTEMPT_TIMEOUT_MS))
        .user_agent(concat!("farthing-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

/// The body of an event's deliveries: the same bytes on every attempt.
pub fn payload(event: &EventRecord) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "type": event.kind.name(),
        "timestamp": rfc3339(event.created_ns),
        "data": event.data,
    }))
    .unwrap_or_default()
}

/// What one attempt got.
struct Sent {
    status_code: Option<u16>,
    error: Option<String>,
    response: String,
    duration_ms: u64,
}

async fn send(
    client: &reqwest::Client,
    policy: &AddressPolicy,
    endpoint: &EndpointRecord,
    event: &EventRecord,
    now: u64,
) -> Sent {
    let started = Instant::now();
    let failed = |error: String, status_code: Option<u16>, response: String| Sent {
        status_code,
        error: Some(error),
        response,
        duration_ms: started.elapsed().as_millis() as u64,
    };
    // Literal addresses never reach the resolver: check them here.
    if let Ok(url) = reqwest::Url::parse(&endpoint.url) {
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        if let Some(Err(class)) = literal.map(|ip| policy.check(ip)) {
            return failed(
                format!("{} address refused (SSRF guard)", class.name()),
                None,
                String::new(),
            );
        }
    }
    let secrets: Vec<WebhookSecret> = endpoint
        .signing_secrets(now)
        .iter()
        .filter_map(|s| WebhookSecret::parse(&s.secret).ok())
        .collect();
    let id = encode_id(IdKind::Event, event.id);
    let timestamp_s = now_ns() / 1_000_000_000;
    let body = payload(event);
    let signature = signature_header(&secrets, &id, timestamp_s, &body);
    let result = client
        .post(&endpoint.url)
        .header("content-type", "application/json")
        .header("webhook-id", &id)
        .header("webhook-timestamp", timestamp_s.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await;
    match result {
        Err(error) => failed(describe(&error), None, String::new()),
        Ok(response) => {
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            let mut end = text.len().min(RESPONSE_BYTES_KEPT);
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            let kept = text[..end].to_string();
            if status.is_success() {
                Sent {
                    status_code: Some(status.as_u16()),
                    error: None,
                    response: kept,
                    duration_ms: started.elapsed().as_millis() as u64,
                }
            } else {
                failed(
                    format!("the endpoint answered HTTP {}", status.as_u16()),
                    Some(status.as_u16()),
                    kept,
                )
            }
        }
    }
}

/// An error with its causes (reqwest's own message alone says little: "error sending request").
fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        format!("timed out after {ATTEMPT_TIMEOUT_MS} ms")
    } else {
        error.to_string()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Where a finished attempt leaves its delivery and endpoint.
fn settle(delivery: &mut DeliveryRecord, endpoint: &mut EndpointRecord, sent: &Sent, now: u64) {
    delivery.attempts += 1;
    if sent.error.is_none() {
        delivery.status = DeliveryStatus::Succeeded;
        delivery.next_attempt_ns = None;
        endpoint.failing_since_ns = None;
        return;
    }
    delivery.failed_in_schedule += 1;
    let since = *endpoint.failing_since_ns.get_or_insert(now);
    if sent.status_code == Some(410) {
        endpoint.disabled = Some("the endpoint answered 410 Gone".into());
    } else if now.saturating_sub(since) >= DISABLE_AFTER_FAILING_S * 1_000_000_000 {
        endpoint.disabled = Some(format!(
            "every delivery failed for {} hours (last: {})",
            DISABLE_AFTER_FAILING_S / 3600,
            sent.error.as_deref().unwrap_or("")
        ));
    }
    let seed = (delivery.event as u64) ^ (delivery.endpoint as u64);
    match delivery_backoff().delay_with_jitter(delivery.failed_in_schedule, seed) {
        Some(delay) if endpoint.disabled.is_none() => {
            delivery.next_attempt_ns = Some(now.saturating_add(delay.as_nanos() as u64));
        }
        Some(_) => {
            delivery.status = DeliveryStatus::Skipped;
            delivery.next_attempt_ns = None;
        }
        None => {
            delivery.status = DeliveryStatus::Failed;
            delivery.next_attempt_ns = None;
        }
    }
}

/// Makes one due delivery's attempt at `now` (the products' clock) and records it.
async fn attempt(
    store: &Store,
    client: &reqwest::Client,
    (policy, now): (AddressPolicy, u64),
    due_at: u64,
    endpoint_id: u128,
    event_id: u128,
) -> Result<(), String> {
    let (Some(mut delivery), Some(event)) = (
        store
            .delivery(endpoint_id, event_id)
            .map_err(|e| e.to_string())?,
        store.event(event_id).map_err(|e| e.to_string())?,
    ) else {
        return Err("a due delivery without its record or event".into());
    };
    let endpoint = store.endpoint(endpoint_id).map_err(|e| e.to_string())?;
    let Some(mut endpoint) = endpoint.filter(|e| !e.deleted && e.disabled.is_none()) else {
        delivery.status = DeliveryStatus::Skipped;
        delivery.next_attempt_ns = None;
        return store
            .skip_delivery(due_at, &delivery)
            .map_err(|e| e.to_string());
    };
    let manual = delivery.failed_in_schedule == 0 && delivery.attempts > 0;
    let sent = send(client, &policy, &endpoint, &event, now).await;
    // The endpoint may have changed while the request was out (rotated, disabled): settle
    // against its latest record.
    if let Ok(Some(latest)) = store.endpoint(endpoint_id) {
        endpoint = latest;
    }
    let health_before = (endpoint.failing_since_ns, endpoint.disabled.clone());
    settle(&mut delivery, &mut endpoint, &sent, now);
    if health_before.1.is_none() && endpoint.disabled.is_some() {
        tracing::warn!(
            endpoint = %farthing_store::outbox::endpoint_text(endpoint.id.0),
            reason = endpoint.disabled.as_deref().unwrap_or(""),
            "webhook endpoint disabled"
        );
    }
    let record = AttemptRecord {
        event: event.id,
        kind: event.kind,
        attempt: delivery.attempts,
        at_ns: now,
        status_code: sent.status_code,
        error: sent.error,
        response: sent.response,
        duration_ms: sent.duration_ms,
        manual,
    };
    let health = (endpoint.failing_since_ns, endpoint.disabled.clone());
    let changed = health != health_before;
    store
        .record_attempt(due_at, &delivery, &record, changed.then_some(health))
        .map_err(|e| e.to_string())
}

/// Delivers due webhooks until the server stops.
pub async fn run(state: Weak<AppState>, policy: AddressPolicy) {
    let client = match client(policy) {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "webhook delivery cannot start: no HTTP client");
            return;
        }
    };
    let mut in_flight: HashSet<(u128, u128)> = HashSet::new();
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let Some(live) = state.upgrade() else {
            return;
        };
        let now = live.products.clock.now();
        let room = IN_FLIGHT_MAX - in_flight.len();
        let (due, next) = match live.store.due_deliveries(now, room, &in_flight) {
            Ok(found) => found,
            Err(error) => {
                tracing::warn!(%error, "reading the webhook outbox failed; retrying");
                (Vec::new(), None)
            }
        };
        for (due_at, endpoint, event) in due {
            in_flight.insert((endpoint, event));
            // The store, not the state: an attempt in flight must not hold up a shutdown.
            let store = Arc::clone(&live.store);
            let client = client.clone();
            tasks.spawn(async move {
                let at = (policy, now);
                if let Err(error) = attempt(&store, &client, at, due_at, endpoint, event).await {
                    tracing::warn!(%error, "recording a webhook delivery failed; it stays due");
                }
                (endpoint, event)
            });
        }
        let wait_ms = next
            .map_or(IDLE_POLL_MS, |at| at.saturating_sub(now) / 1_000_000)
            .clamp(1, IDLE_POLL_MS);
        // Not the state itself while waiting: the server's shutdown needs the last reference.
        let store = Arc::clone(&live.store);
        drop(live);
        let ready = store.outbox_ready.notified();
        tokio::select! {
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                if let Ok(key) = done {
                    in_flight.remove(&key);
                } else {
                    // A panicked attempt: forget what was in flight; rows still due are found again.
                    in_flight.clear();
                }
            }
            _ = ready => {}
            _ = tokio::time::sleep(Duration::from_millis(wait_ms)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use farthing_products::ids::WebhookEndpointId;

    fn delivery() -> DeliveryRecord {
        DeliveryRecord {
            endpoint: 1,
            event: 2,
            kind: farthing_store::outbox::EventKind::ChargeSucceeded,
            status: DeliveryStatus::Pending,
            attempts: 0,
            failed_in_schedule: 0,
            next_attempt_ns: Some(0),
            created_ns: 0,
        }
    }

    fn endpoint() -> EndpointRecord {
        EndpointRecord {
            id: WebhookEndpointId(1),
            owner: None,
            url: "https://example.com/hook".into(),
            events: Vec::new(),
            description: None,
            secrets: Vec::new(),
            disabled: None,
            failing_since_ns: None,
            created_ns: 0,
            deleted: false,
        }
    }

    fn failure(status: Option<u16>) -> Sent {
        Sent {
            status_code: status,
            error: Some("failed".into()),
            response: String::new(),
            duration_ms: 1,
        }
    }

    const S: u64 = 1_000_000_000;

    #[test]
    fn failures_retry_on_the_schedule_then_fail() {
        let mut d = delivery();
        let mut e = endpoint();
        let mut now = 0;
        for k in 1..=7 {
            settle(&mut d, &mut e, &failure(Some(500)), now);
            assert_eq!(d.status, DeliveryStatus::Pending, "attempt {k}");
            let next = d.next_attempt_ns.unwrap();
            assert!(next > now);
            now = next;
            // Another endpoint-level success in between keeps it enabled.
            e.failing_since_ns = None;
        }
        settle(&mut d, &mut e, &failure(Some(500)), now);
        assert_eq!(d.status, DeliveryStatus::Failed);
        assert_eq!(d.attempts, 8);
        assert_eq!(d.next_attempt_ns, None);
        assert_eq!(e.disabled, None);
    }

    #[test]
    fn gone_disables_at_once_and_a_day_of_failures_disables() {
        let (mut d, mut e) = (delivery(), endpoint());
        settle(&mut d, &mut e, &failure(Some(410)), 5 * S);
        assert!(e.disabled.as_deref().unwrap().contains("410"));
        assert_eq!(d.status, DeliveryStatus::Skipped);

        let (mut d, mut e) = (delivery(), endpoint());
        settle(&mut d, &mut e, &failure(None), 0);
        assert_eq!(e.failing_since_ns, Some(0));
        assert!(e.disabled.is_none());
        settle(&mut d, &mut e, &failure(None), DISABLE_AFTER_FAILING_S * S);
        assert!(e.disabled.as_deref().unwrap().contains("24 hours"));

        let (mut d, mut e) = (delivery(), endpoint());
        settle(&mut d, &mut e, &failure(None), 0);
        let ok = Sent {
            status_code: Some(204),
            error: None,
            response: String::new(),
            duration_ms: 1,
        };
        settle(&mut d, &mut e, &ok, S);
        assert_eq!(d.status, DeliveryStatus::Succeeded);
        assert_eq!(
            e.failing_since_ns, None,
            "a success resets the endpoint's health"
        );
    }

    #[test]
    fn resolved_addresses_are_filtered_by_the_policy() {
        let strict = AddressPolicy::default();
        let loopback: SocketAddr = "127.0.0.1:80".parse().unwrap();
        let public: SocketAddr = "93.184.215.14:80".parse().unwrap();
        let metadata: SocketAddr = "169.254.169.254:80".parse().unwrap();
        assert_eq!(
            allowed_addresses(&strict, &[loopback, public]),
            Ok(vec![public])
        );
        assert_eq!(
            allowed_addresses(&strict, &[metadata]),
            Err(AddressClass::LinkLocal)
        );
        let tests = AddressPolicy::parse("loopback").unwrap();
        assert_eq!(allowed_addresses(&tests, &[loopback]), Ok(vec![loopback]));
    }

    #[tokio::test]
    async fn urls_are_checked_before_an_endpoint_is_registered() {
        let strict = AddressPolicy::default();
        for (url, code) in [
            ("ftp://example.com/", "invalid_url"),
            ("not a url", "invalid_url"),
            ("https://user:pw@example.com/", "invalid_url"),
            ("http://127.0.0.1:9/hook", "url_forbidden_address"),
            ("http://[::1]:9/hook", "url_forbidden_address"),
            ("http://10.0.0.7/hook", "url_forbidden_address"),
            (
                "http://169.254.169.254/latest/meta-data",
                "url_forbidden_address",
            ),
            ("http://[::ffff:127.0.0.1]/", "url_forbidden_address"),
            ("http://0.0.0.0:8080/", "url_forbidden_address"),
            ("http://localhost:9/hook", "url_forbidden_address"),
        ] {
            assert_eq!(
                check_url(url, &strict).await.map_err(|e| e.0),
                Err(code),
                "{url}"
            );
        }
        assert_eq!(
            check_url("https://93.184.215.14/hook", &strict).await,
            Ok(())
        );
        let tests = AddressPolicy::parse("loopback").unwrap();
        assert_eq!(check_url("http://127.0.0.1:9/hook", &tests).await, Ok(()));
        assert_eq!(
            check_url("http://10.0.0.7/hook", &tests)
                .await
                .map_err(|e| e.0),
            Err("url_forbidden_address")
        );
    }
}
