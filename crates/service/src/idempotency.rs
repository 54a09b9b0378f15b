//! Idempotency-Keys: one rule for every POST.
//!
//! A request with an `Idempotency-Key` runs at most once per (caller, key): its first
//! successful answer (status, media type and body) is stored durably *before* it is sent, and
//! every retry gets exactly that answer back, status included. The same key with another
//! request — other parameters, or another endpoint — is a 409 `idempotency_error`, and a
//! concurrent duplicate waits for the first and then gets its answer.
//!
//! - **The fingerprint** is the HTTP layer's: a hash of the method, the path with its query,
//!   the media type and the body, so it covers the endpoint and the whole request (a batch's
//!   whole list, not its first transfer).
//! - **The namespace** is the caller's: a merchant's keys share one (as in Stripe), the
//!   operator has one, and each customer token has its own, so a customer can never replay a
//!   merchant's answer.
//! - **What is stored:** only answers that took effect (2xx). A refused request (4xx, 5xx)
//!   stores nothing; retrying it with the same key runs it again.
//! - **Atomicity.** An operation that writes only the metadata store stores the answer in the
//!   same transaction as its changes ([`AppState::idempotent`]). An operation that moves money
//!   derives its ledger ids from the key, so a crash after the ledger commit and before the
//!   answer is stored cannot book twice: the retry finds its transfers (`exists`) and answers
//!   as the first request would have (201), and that answer is then stored.
//!
//! [`AppState::once`] is the entry point the HTTP layer wraps every POST in; the operation runs
//! inside the key's scope (a task-local), which is how [`AppState::idempotent`] finds it.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use base64::Engine as _;
use farthing_store::util::now_ns;
use farthing_store::IdempotencyRecord;

use crate::error::ServiceError;
use crate::state::{AppState, Principal, Reply};

tokio::task_local! {
    static SCOPE: Arc<KeyScope>;
}

/// The key a request runs under: where its answer is stored and the request's fingerprint.
pub(crate) struct KeyScope {
    record_key: String,
    request_hash: [u8; 32],
    /// Whether the operation stored the answer itself (with its own changes).
    recorded: AtomicBool,
}

impl KeyScope {
    /// The record of a successful answer `status`/`body` given in this scope.
    pub(crate) fn record(&self, status: u16, body: &str) -> (String, IdempotencyRecord) {
        (
            self.record_key.clone(),
            IdempotencyRecord {
                request_hash: self.request_hash,
                status,
                body: body.to_string(),
                created_ns: now_ns(),
                content_type: None,
                fingerprint_version: FINGERPRINT_VERSION,
            },
        )
    }

    pub(crate) fn mark_recorded(&self) {
        self.recorded.store(true, Ordering::Release);
    }
}

/// The scope of the Idempotency-Key the current request runs under, if any.
pub(crate) fn current_scope() -> Option<Arc<KeyScope>> {
    SCOPE.try_with(Arc::clone).ok()
}

/// An answer as sent: status, media type (`None`: `application/json`) and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

/// What [`AppState::once`] did: replayed the stored answer, or ran the request.
pub enum Once<T> {
    Replayed(Answer),
    Ran(T),
}

const JSON: &str = "application/json";
/// The fingerprint [`request_fingerprint`] makes (see `IdempotencyRecord::fingerprint_version`).
const FINGERPRINT_VERSION: u8 = 1;

impl Answer {
    fn into_record(self, request_hash: [u8; 32]) -> IdempotencyRecord {
        let content_type = self.content_type.filter(|t| !t.starts_with(JSON));
        let (content_type, body) = match (content_type, String::from_utf8(self.body)) {
            (None, Ok(text)) => (None, text),
            (content_type, body) => {
                let bytes = body
                    .map(String::into_bytes)
                    .unwrap_or_else(|e| e.into_bytes());
                let content_type =
                    content_type.unwrap_or_else(|| "application/octet-stream".into());
                let body = base64::engine::general_purpose::STANDARD.encode(bytes);
                (Some(content_type), body)
            }
        };
        IdempotencyRecord {
            request_hash,
            status: self.status,
            body,
            created_ns: now_ns(),
            content_type,
            fingerprint_version: FINGERPRINT_VERSION,
        }
    }

    fn from_record(record: IdempotencyRecord) -> Result<Answer, ServiceError> {
        let body = match &record.content_type {
            None => record.body.into_bytes(),
            Some(_) => base64::engine::general_purpose::STANDARD
                .decode(record.body.as_bytes())
                .map_err(|e| ServiceError::internal(format!("stored answer: {e}")))?,
        };
        Ok(Answer {
            status: record.status,
            content_type: record.content_type,
            body,
        })
    }
}

impl From<Reply> for Answer {
    fn from(reply: Reply) -> Answer {
        Answer {
            status: reply.status,
            content_type: None,
            body: reply.body.into_bytes(),
        }
    }
}

/// A request's fingerprint: its method, target (path and query), media type and body. Any
/// difference makes the same key a 409.
pub fn request_fingerprint(
    method: &str,
    target: &str,
    content_type: &str,
    body: &[u8],
) -> [u8; 32] {
    farthing_store::util::sha256(&[
        method.as_bytes(),
        target.as_bytes(),
        content_type.as_bytes(),
        body,
    ])
}

/// The store key of a caller's Idempotency-Key. A merchant's keys (and the operator's) share
/// the tenant's namespace; a customer token has its customer's.
pub fn record_key(principal: &Principal, key: &str) -> String {
    match principal
        .customer()
        .filter(|_| principal.is_customer_token())
    {
        Some(customer) => format!("c{:032x}:{key}", customer.0),
        None => tenant_record_key(principal.tenant(), key),
    }
}

pub(crate) fn tenant_record_key(tenant: u128, key: &str) -> String {
    format!("{tenant:032x}:{key}")
}

/// The check a product record makes when a retry finds it (an operation that moves money keeps
/// the fingerprint of the request that made it in its record: see the module docs, "No second
/// store for money"): `stored` is the record's, `request` the retry's. It only matters when the
/// answer itself was not stored (a crash between the ledger commit and storing it).
pub fn same_request(
    stored: Option<[u8; 32]>,
    request: Option<[u8; 32]>,
) -> Result<(), ServiceError> {
    if stored == request {
        Ok(())
    } else {
        Err(reused())
    }
}

fn reused() -> ServiceError {
    ServiceError::idempotency(
        "this Idempotency-Key was already used for a different request (other parameters or \
         another endpoint)",
    )
}

impl AppState {
    /// Runs `run` at most once for `principal`'s Idempotency-Key `key`; `request_hash` is the
    /// request's fingerprint (see the module docs). `run` gives its result and the answer to
    /// store (`None`, or a non-2xx answer, stores nothing). A retry of the same request gets
    /// the stored answer; the key with another request is a 409.
    pub async fn once<T, F, Fut>(
        &self,
        principal: &Principal,
        key: &str,
        request_hash: [u8; 32],
        run: F,
    ) -> Result<Once<T>, ServiceError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = (T, Option<Answer>)>,
    {
        let record_key = record_key(principal, key);
        let lock = self.key_lock(&record_key);
        let guard = lock.lock().await;
        let result = async {
            // A record of an earlier release is checked by the operation that wrote it (see
            // `AppState::idempotent`), which knows how its fingerprint was made.
            let previous = self
                .store
                .idempotency(&record_key)?
                .filter(|p| p.fingerprint_version == FINGERPRINT_VERSION);
            if let Some(previous) = previous {
                if previous.request_hash != request_hash {
                    return Err(reused());
                }
                return Ok(Once::Replayed(Answer::from_record(previous)?));
            }
            let scope = Arc::new(KeyScope {
                record_key: record_key.clone(),
                request_hash,
                recorded: AtomicBool::new(false),
            });
            let (value, answer) = SCOPE.scope(Arc::clone(&scope), run()).await;
            let answer = answer.filter(|a| (200..300).contains(&a.status));
            if let Some(answer) = answer {
                if !scope.recorded.load(Ordering::Acquire) {
                    self.products
                        .records
                        .write_idempotency(record_key.clone(), answer.into_record(request_hash))
                        .await?;
                }
            }
            Ok(Once::Ran(value))
        }
        .await;
        drop(guard);
        self.forget_key_lock(&record_key, lock);
        result
    }

    /// Runs a request that writes only the metadata store: `run` gives the answer and the
    /// changes, committed in ONE transaction with the answer's idempotency record when the
    /// request runs under a key (see [`AppState::once`]). `tenant`, `key`, `endpoint` and
    /// `request` find and check a record an earlier release stored for this key (its
    /// fingerprint was the endpoint's name and the body, in the tenant's namespace): a retry
    /// that release answered gets its answer, another request a 409.
    pub async fn idempotent<F, Fut, S, E>(
        &self,
        tenant: u128,
        key: Option<String>,
        endpoint: &str,
        request: &[u8],
        run: F,
    ) -> Result<Reply, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(S, String, farthing_store::Changes), E>>,
        S: Into<u16>,
        E: From<ServiceError>,
    {
        if let Some(key) = key.filter(|_| current_scope().is_some()) {
            let earlier = self
                .store
                .idempotency(&tenant_record_key(tenant, &key))
                .map_err(ServiceError::from)?
                .filter(|r| r.fingerprint_version == 0);
            if let Some(earlier) = earlier {
                let hash = farthing_store::util::sha256(&[endpoint.as_bytes(), request]);
                if earlier.request_hash != hash {
                    return Err(reused().into());
                }
                return Ok(Reply {
                    status: earlier.status,
                    body: earlier.body,
                });
            }
        }
        self.run_recorded(run).await
    }

    /// Runs `run` and commits its changes, with the answer's idempotency record when there is
    /// a key's scope and the answer is a success.
    async fn run_recorded<F, Fut, S, E>(&self, run: F) -> Result<Reply, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(S, String, farthing_store::Changes), E>>,
        S: Into<u16>,
        E: From<ServiceError>,
    {
        let (status, body, mut changes) = run().await?;
        let status: u16 = status.into();
        let scope = current_scope().filter(|_| (200..300).contains(&status));
        if let Some(scope) = &scope {
            changes.idempotency = Some(scope.record(status, &body));
        }
        self.commit(changes).await?;
        if let Some(scope) = scope {
            scope.mark_recorded();
        }
        Ok(Reply { status, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binary_answer_survives_its_record() {
        let answer = Answer {
            status: 201,
            content_type: Some("application/octet-stream".into()),
            body: vec![0, 159, 146, 150, 255],
        };
        let record = answer.clone().into_record([1; 32]);
        assert_eq!(Answer::from_record(record).unwrap(), answer);
    }

    #[test]
    fn a_json_answer_is_stored_as_text() {
        let answer = Answer {
            status: 200,
            content_type: Some("application/json".into()),
            body: br#"{"id":"x"}"#.to_vec(),
        };
        let record = answer.into_record([1; 32]);
        assert_eq!(record.body, r#"{"id":"x"}"#);
        assert_eq!(record.content_type, None);
        let back = Answer::from_record(record).unwrap();
        assert_eq!(back.body, br#"{"id":"x"}"#);
    }
}
