//! The one typed client the integration tests send their requests through: who asks
//! ([`Server::with_key`], [`Server::anonymous`]), with which Idempotency-Key, and the checks
//! a test makes on the answer (its status, its error code, a state reached in the background).

use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Reply, Server};

/// How long [`Client::poll_until`] waits for a state reached in the background.
const POLL_TIMEOUT_MS: u64 = 30_000;
/// How long [`Client::poll_until`] sleeps between reads.
const POLL_INTERVAL_MS: u64 = 10;

/// Requests to one server as one caller. Cheap to make: build one per request or keep one.
#[derive(Clone, Copy)]
pub struct Client<'a> {
    server: &'a Server,
    key: Option<&'a str>,
    idempotency_key: Option<&'a str>,
}

impl Server {
    /// A client that sends `key` as its bearer token.
    pub fn with_key<'a>(&'a self, key: &'a str) -> Client<'a> {
        Client {
            server: self,
            key: Some(key),
            idempotency_key: None,
        }
    }

    /// A client that sends no key.
    pub fn anonymous(&self) -> Client<'_> {
        Client {
            server: self,
            key: None,
            idempotency_key: None,
        }
    }
}

impl<'a> Client<'a> {
    /// This client, sending `key` (when there is one) as the Idempotency-Key header.
    pub fn idempotency_key(self, key: impl Into<Option<&'a str>>) -> Client<'a> {
        Client {
            idempotency_key: key.into(),
            ..self
        }
    }

    /// Status and body (JSON, or the text as a JSON string when it is not JSON).
    pub fn send(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.server
            .call(method, path, self.key, body, &self.headers())
    }

    /// Like [`Client::send`], but a transport error (the server was killed) is `None`.
    pub fn try_send(&self, method: &str, path: &str, body: Option<Value>) -> Option<(u16, Value)> {
        self.server
            .try_call(method, path, self.key, body, &self.headers())
    }

    /// Status, text and headers of a request whose body is sent as it is.
    pub fn raw(&self, method: &str, path: &str, body: Option<String>) -> Reply {
        self.server
            .raw(method, path, self.key, body, &self.headers())
    }

    fn headers(&self) -> Vec<(&'a str, &'a str)> {
        self.idempotency_key
            .map(|k| ("Idempotency-Key", k))
            .into_iter()
            .collect()
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        self.send("GET", path, None)
    }

    pub fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send("POST", path, Some(body))
    }

    /// A POST without a body (no Content-Type either).
    pub fn post_empty(&self, path: &str) -> (u16, Value) {
        self.send("POST", path, None)
    }

    pub fn delete(&self, path: &str) -> (u16, Value) {
        self.send("DELETE", path, None)
    }

    /// Sends the request and checks its status; returns the body.
    pub fn expect(&self, method: &str, path: &str, body: Option<Value>, status: u16) -> Value {
        let (got, answer) = self.send(method, path, body);
        assert_eq!(got, status, "{method} {path}: {answer}");
        answer
    }

    /// A GET that must answer 200; returns the body.
    pub fn get_ok(&self, path: &str) -> Value {
        self.expect("GET", path, None, 200)
    }

    /// A POST that must answer `status`; returns the body.
    pub fn post_expect(&self, path: &str, body: Value, status: u16) -> Value {
        self.expect("POST", path, Some(body), status)
    }

    /// The status and the error's `code` ("" when the answer carries none).
    pub fn error_code(&self, method: &str, path: &str, body: Value) -> (u16, String) {
        let (status, answer) = self.send(method, path, Some(body));
        (
            status,
            answer["error"]["code"].as_str().unwrap_or("").to_string(),
        )
    }

    /// GETs `path` (each answer must be 200) until `done` holds for the answer; returns it.
    /// Bounded: fails the test after [`POLL_TIMEOUT_MS`], naming `what` and the last answer.
    pub fn poll_until(&self, path: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_millis(POLL_TIMEOUT_MS);
        loop {
            let answer = self.get_ok(path);
            if done(&answer) {
                return answer;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: {path} still answers {answer} after {POLL_TIMEOUT_MS} ms"
            );
            std::thread::sleep(Duration::from_millis(POLL_INTERVAL_MS));
        }
    }

    /// An account's posted balance, as the API writes it.
    pub fn account_balance(&self, account: &str) -> String {
        let a = self.get_ok(&format!("/v1/accounts/{account}"));
        a["balances"]["posted"].as_str().unwrap().to_string()
    }

    /// A merchant's available balance in `asset`, as the API writes it.
    pub fn merchant_balance(&self, merchant: &str, asset: &str) -> String {
        let b = self.get_ok(&format!("/v1/merchants/{merchant}/balance?asset={asset}"));
        b["available"].as_str().unwrap().to_string()
    }

    /// A customer's available wallet balance in `asset`, as the API writes it.
    pub fn wallet(&self, customer: &str, asset: &str) -> String {
        let v = self.get_ok(&format!("/v1/customers/{customer}/wallets/{asset}"));
        v["available"].as_str().unwrap().to_string()
    }

    /// Registers a card for `customer`; returns the payment method's token.
    pub fn add_card(&self, customer: &str, number: &str) -> String {
        let pm = self.post_expect(
            &format!("/v1/customers/{customer}/payment_methods"),
            serde_json::json!({"card_number": number}),
            201,
        );
        pm["token"].as_str().unwrap().to_string()
    }
}
