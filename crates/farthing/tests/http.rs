//! Integration tests: a real `farthing serve` process driven over HTTP on loopback.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::world::World;
use common::Server;
use serde_json::{json, Value};

/// USD; merchants A and B, each with a key; and two accounts of A's: a bank, and a wallet
/// that cannot go below zero.
fn world(server: &Server) -> World {
    World::builder(server)
        .asset("USD", 6)
        .merchant("A")
        .merchant("B")
        .account("A", "bank", json!({}))
        .account(
            "A",
            "wallet",
            json!({"debits_must_not_exceed_credits": true}),
        )
        .build()
}

fn transfer(debit: &str, credit: &str, amount: &str) -> Value {
    json!({"debit_account": debit, "credit_account": credit, "amount": amount, "asset": "USD"})
}

#[test]
fn payments_holds_chains_and_history() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let w = world(&server);
    let (status, t) = server.with_key(&w.merchant("A").key).post(
        "/v1/transfers",
        transfer(w.account("bank"), w.account("wallet"), "1.000000"),
    );
    assert_eq!(status, 201, "{t}");
    assert_eq!(
        (t["amount"].as_str(), t["status"].as_str()),
        (Some("1.000000"), Some("posted"))
    );
    // A hold, captured in part: the rest goes back to the wallet.
    let (status, hold) = server.with_key(&w.merchant("A").key).post(
        "/v1/transfers",
        json!({"debit_account": w.account("wallet"), "credit_account": w.account("bank"), "amount": "0.5", "asset": "USD", "pending": true, "timeout_seconds": 600}),
    );
    assert_eq!(status, 201, "{hold}");
    let hold_id = hold["id"].as_str().unwrap();
    let (status, capture) = server.with_key(&w.merchant("A").key).post(
        &format!("/v1/transfers/{hold_id}/post"),
        json!({"amount": "0.2"}),
    );
    assert_eq!(status, 201, "{capture}");
    assert_eq!(capture["type"], "capture");
    let (status, again) = server
        .with_key(&w.merchant("A").key)
        .post(&format!("/v1/transfers/{hold_id}/void"), json!({}));
    assert_eq!(
        (status, again["error"]["code"].as_str()),
        (422, Some("pending_already_posted"))
    );
    assert_eq!(
        server
            .with_key(&w.merchant("A").key)
            .account_balance(w.account("wallet")),
        "0.800000"
    );
    // A linked chain whose second leg overdraws the wallet leaves no trace.
    let chain = json!([
        transfer(w.account("bank"), w.account("wallet"), "0.1"),
        transfer(w.account("wallet"), w.account("bank"), "5")
    ]);
    let (status, e) = server
        .with_key(&w.merchant("A").key)
        .post("/v1/transfers", chain);
    assert_eq!(
        (
            status,
            e["error"]["code"].as_str(),
            e["error"]["param"].as_str()
        ),
        (422, Some("exceeds_credits"), Some("1.amount"))
    );
    assert_eq!(
        server
            .with_key(&w.merchant("A").key)
            .account_balance(w.account("wallet")),
        "0.800000"
    );
    // History, newest first, paged with a cursor.
    for i in 0..5 {
        let (status, _) = server.with_key(&w.merchant("A").key).post(
            "/v1/transfers",
            transfer(
                w.account("wallet"),
                w.account("bank"),
                &format!("0.00000{}", i + 1),
            ),
        );
        assert_eq!(status, 201);
    }
    let (status, page) = server.with_key(&w.merchant("A").key).get(&format!(
        "/v1/accounts/{}/transfers?limit=3",
        w.account("wallet")
    ));
    assert_eq!(status, 200);
    let amounts: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["amount"].as_str().unwrap())
        .collect();
    assert_eq!(
        (amounts, page["has_more"].as_bool()),
        (vec!["0.000005", "0.000004", "0.000003"], Some(true))
    );
    let last = page["data"][2]["id"].as_str().unwrap();
    let (_, next) = server.with_key(&w.merchant("A").key).get(&format!(
        "/v1/accounts/{}/transfers?limit=10&starting_after={last}",
        w.account("wallet")
    ));
    assert_eq!(next["data"].as_array().unwrap().len(), 5);
    assert_eq!(next["has_more"], false);
    // Batch: one result per transfer.
    let batch = json!({"transfers": [transfer(w.account("bank"), w.account("wallet"), "0.01"), transfer(w.account("wallet"), w.account("bank"), "100"), transfer(w.account("bank"), w.account("wallet"), "0.1234567")]});
    let (status, result) = server
        .with_key(&w.merchant("A").key)
        .post("/v1/transfers/batch", batch);
    assert_eq!(status, 200, "{result}");
    let results = result["results"].as_array().unwrap();
    assert!(results[0]["transfer"].is_object());
    assert_eq!(results[1]["error"]["code"], "exceeds_credits");
    assert_eq!(results[2]["error"]["param"], "transfers.2.amount");
    // Accounts list for the merchant shows its two accounts.
    let (_, list) = server
        .with_key(&w.merchant("A").key)
        .get("/v1/accounts?limit=10");
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
    server.stop();
}

#[test]
fn bad_input_gets_4xx_with_param_and_applies_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--request-body-bytes-max", "65536"]);
    let w = world(&server);
    server.with_key(&w.merchant("A").key).post(
        "/v1/transfers",
        transfer(w.account("bank"), w.account("wallet"), "1"),
    );
    let cases: Vec<(String, u16, &str)> = vec![
        ("{not json".into(), 400, "body"),
        (json!({"debit_account": w.account("wallet"), "credit_account": w.account("bank"), "asset": "USD"}).to_string(), 400, "amount"),
        (json!({"debit_account": w.account("wallet"), "credit_account": w.account("bank"), "amount": "1", "asset": "USD", "extra": true}).to_string(), 400, "extra"),
        (json!({"debit_account": w.account("wallet"), "credit_account": w.account("bank"), "amount": 1, "asset": "USD"}).to_string(), 400, "amount"),
        (json!([transfer(w.account("bank"), w.account("wallet"), "1"), {"debit_account": w.account("wallet")}]).to_string(), 400, "1.credit_account"),
        (transfer(w.account("wallet"), w.account("bank"), "-1").to_string(), 400, "amount"),
        (transfer(w.account("wallet"), w.account("bank"), "0").to_string(), 400, "amount"),
        (transfer(w.account("wallet"), w.account("bank"), "0.0000001").to_string(), 400, "amount"),
        (transfer(w.account("wallet"), w.account("bank"), "1e3").to_string(), 400, "amount"),
        (transfer(w.account("wallet"), "acct_aaaaaaaaaaaaaaaaaaaaaaaaaa", "1").to_string(), 404, "credit_account"),
        (transfer("nope", w.account("bank"), "1").to_string(), 404, "debit_account"),
        (transfer(w.account("wallet"), w.account("wallet"), "0.1").to_string(), 400, "credit_account"),
        (json!({"debit_account": w.account("wallet"), "credit_account": w.account("bank"), "amount": "1", "asset": "XYZ"}).to_string(), 404, "asset"),
        (transfer(w.account("wallet"), w.account("bank"), "2").to_string(), 422, "amount"),
        (format!("{{\"pad\":\"{}\"}}", "x".repeat(70_000)), 413, "body"),
    ];
    for (body, expected_status, param) in cases {
        let (status, text, _) =
            server
                .with_key(&w.merchant("A").key)
                .raw("POST", "/v1/transfers", Some(body.clone()));
        let error: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        assert_eq!(
            status,
            expected_status,
            "{} -> {text}",
            &body[..body.len().min(120)]
        );
        assert_eq!(
            error["error"]["param"].as_str(),
            Some(param),
            "{} -> {text}",
            &body[..body.len().min(120)]
        );
        assert!(error["error"]["type"].is_string() && error["error"]["message"].is_string());
    }
    assert_eq!(
        server
            .with_key(&w.merchant("A").key)
            .account_balance(w.account("wallet")),
        "1.000000"
    );
    let (status, history) = server
        .with_key(&w.merchant("A").key)
        .get(&format!("/v1/accounts/{}/transfers", w.account("wallet")));
    assert_eq!(
        (status, history["data"].as_array().unwrap().len()),
        (200, 1)
    );
    let (status, e) = server.with_key(&w.merchant("A").key).get(&format!(
        "/v1/accounts/{}/transfers?limit=0",
        w.account("wallet")
    ));
    assert_eq!((status, e["error"]["param"].as_str()), (400, Some("limit")));
    // Authentication.
    assert_eq!(server.anonymous().get("/v1/assets").0, 401);
    assert_eq!(
        server.with_key("fk_mk_notarealkey").get("/v1/assets").0,
        401
    );
    server.stop();
}

#[test]
fn a_merchant_cannot_see_or_touch_another_merchants_objects() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let w = world(&server);
    let (_, t) = server.with_key(&w.merchant("A").key).post(
        "/v1/transfers",
        transfer(w.account("bank"), w.account("wallet"), "1"),
    );
    let (_, hold) = server.with_key(&w.merchant("A").key).post(
        "/v1/transfers",
        json!({"debit_account": w.account("wallet"), "credit_account": w.account("bank"), "amount": "0.5", "asset": "USD", "pending": true}),
    );
    let (t, hold) = (
        t["id"].as_str().unwrap().to_string(),
        hold["id"].as_str().unwrap().to_string(),
    );
    // The platform's metrics are not a merchant's to read.
    let (status, body, _) = server
        .with_key(&w.merchant("B").key)
        .raw("GET", "/metrics", None);
    assert_eq!(status, 403, "{body}");
    // Every endpoint that names merchant A's objects, called with merchant B's key.
    let sweep: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", format!("/v1/accounts/{}", w.account("wallet")), None),
        (
            "GET",
            format!("/v1/accounts/{}/transfers", w.account("wallet")),
            None,
        ),
        ("GET", format!("/v1/transfers/{t}"), None),
        ("GET", format!("/v1/merchants/{}", w.merchant("A").id), None),
        (
            "POST",
            format!("/v1/transfers/{hold}/post"),
            Some(json!({})),
        ),
        (
            "POST",
            format!("/v1/transfers/{hold}/void"),
            Some(json!({})),
        ),
        (
            "POST",
            "/v1/transfers".into(),
            Some(transfer(w.account("wallet"), w.account("bank"), "0.1")),
        ),
        (
            "POST",
            "/v1/transfers".into(),
            Some(json!([transfer(
                w.account("bank"),
                w.account("wallet"),
                "0.1"
            )])),
        ),
        (
            "POST",
            "/v1/transfers/batch".into(),
            Some(json!({"transfers": [transfer(w.account("wallet"), w.account("bank"), "0.1")]})),
        ),
        (
            "POST",
            "/v1/accounts".into(),
            Some(json!({"asset": "USD", "owner": w.merchant("A").id})),
        ),
        (
            "POST",
            "/v1/api_keys".into(),
            Some(json!({"scope": "merchant", "merchant": w.merchant("A").id})),
        ),
    ];
    for (method, path, body) in sweep {
        let (status, response) = server
            .with_key(&w.merchant("B").key)
            .send(method, &path, body);
        let batch_refused = path.ends_with("/batch")
            && response["results"][0]["error"]["code"] == "resource_missing";
        assert!(
            status == 404 || batch_refused,
            "{method} {path} with a foreign key: {status} {response}"
        );
        // The same request for an id that does not exist at all looks exactly alike.
        if status == 404 {
            assert_eq!(response["error"]["code"], "resource_missing");
        }
    }
    let (_, list) = server.with_key(&w.merchant("B").key).get("/v1/accounts");
    assert!(list["data"].as_array().unwrap().is_empty());
    let (_, keys) = server.with_key(&w.merchant("B").key).get("/v1/api_keys");
    assert!(keys["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|k| k["merchant"] != w.merchant("A").id.as_str()));
    // Nothing moved, and the operator still sees everything.
    assert_eq!(
        server.with_key(&w.op).account_balance(w.account("wallet")),
        "1.000000"
    );
    let (status, _) = server.with_key(&w.op).get(&format!("/v1/transfers/{t}"));
    assert_eq!(status, 200);
    // A revoked key stops working at once.
    let (_, k) = server
        .with_key(&w.merchant("A").key)
        .post("/v1/api_keys", json!({"scope": "read_only"}));
    let (ro_id, ro_secret) = (
        k["id"].as_str().unwrap().to_string(),
        k["secret"].as_str().unwrap().to_string(),
    );
    assert_eq!(
        server
            .with_key(&ro_secret)
            .get(&format!("/v1/accounts/{}", w.account("wallet")))
            .0,
        200
    );
    assert_eq!(
        server
            .with_key(&ro_secret)
            .post(
                "/v1/transfers",
                transfer(w.account("bank"), w.account("wallet"), "1")
            )
            .0,
        403
    );
    assert_eq!(
        server
            .with_key(&w.merchant("A").key)
            .delete(&format!("/v1/api_keys/{ro_id}"))
            .0,
        200
    );
    assert_eq!(
        server
            .with_key(&ro_secret)
            .get(&format!("/v1/accounts/{}", w.account("wallet")))
            .0,
        401
    );
    server.stop();
}

#[test]
fn idempotency_keys_replay_conflict_and_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let w = world(&server);
    let key = "charge-42";
    let body = transfer(w.account("bank"), w.account("wallet"), "0.25");
    let (status, first) = server
        .with_key(&w.merchant("A").key)
        .idempotency_key(key)
        .post("/v1/transfers", body.clone());
    assert_eq!(status, 201);
    let (status, replay) = server
        .with_key(&w.merchant("A").key)
        .idempotency_key(key)
        .post("/v1/transfers", body.clone());
    // The first answer, status included.
    assert_eq!((status, &replay), (201, &first));
    let (status, conflict) = server
        .with_key(&w.merchant("A").key)
        .idempotency_key(key)
        .post(
            "/v1/transfers",
            transfer(w.account("bank"), w.account("wallet"), "0.26"),
        );
    assert_eq!(
        (status, conflict["error"]["type"].as_str()),
        (409, Some("idempotency_error"))
    );
    // A refused request stores nothing: retried, it runs again (and is refused again).
    let overdraw = "overdraw-1";
    let (status, refused) = server
        .with_key(&w.merchant("A").key)
        .idempotency_key(overdraw)
        .post(
            "/v1/transfers",
            transfer(w.account("wallet"), w.account("bank"), "9"),
        );
    assert_eq!(status, 422);
    let (_, merchant) = server
        .with_key(&w.op)
        .idempotency_key("mer-c")
        .post("/v1/merchants", json!({"name": "C"}));
    // 16 concurrent duplicates move the money once.
    let concurrent = "burst";
    std::thread::scope(|scope| {
        for _ in 0..16 {
            scope.spawn(|| {
                let (status, _) = server
                    .with_key(&w.merchant("A").key)
                    .idempotency_key(concurrent)
                    .post(
                        "/v1/transfers",
                        transfer(w.account("bank"), w.account("wallet"), "0.01"),
                    );
                assert_eq!(status, 201, "every duplicate gets the first answer");
            });
        }
    });
    assert_eq!(
        server
            .with_key(&w.merchant("A").key)
            .account_balance(w.account("wallet")),
        "0.260000"
    );
    server.stop();
    // After a restart every key still answers exactly as before.
    let server = Server::start(dir.path(), &[]);
    assert!(
        server.operator_key.is_none(),
        "the operator key is printed only once"
    );
    let (status, after) = server
        .with_key(&w.merchant("A").key)
        .idempotency_key(key)
        .post("/v1/transfers", body);
    assert_eq!((status, &after), (201, &first));
    let (status, again) = server
        .with_key(&w.merchant("A").key)
        .idempotency_key(overdraw)
        .post(
            "/v1/transfers",
            transfer(w.account("wallet"), w.account("bank"), "9"),
        );
    assert_eq!((status, &again), (422, &refused));
    let (status, same_merchant) = server
        .with_key(&w.op)
        .idempotency_key("mer-c")
        .post("/v1/merchants", json!({"name": "C"}));
    assert_eq!((status, &same_merchant), (201, &merchant));
    assert_eq!(
        server
            .with_key(&w.merchant("A").key)
            .account_balance(w.account("wallet")),
        "0.260000"
    );
    // One namespace of keys per tenant: a key reused on another endpoint is a conflict, in
    // either direction, and runs nothing.
    let (status, e) = server
        .with_key(&w.merchant("A").key)
        .idempotency_key(key)
        .post("/v1/accounts", json!({"asset": "USD"}));
    assert_eq!(
        (status, e["error"]["type"].as_str()),
        (409, Some("idempotency_error")),
        "{e}"
    );
    let mer = "mer-c";
    let (status, e) = server.with_key(&w.op).idempotency_key(mer).post(
        "/v1/transfers",
        transfer(w.account("bank"), w.account("wallet"), "0.01"),
    );
    assert_eq!(
        (status, e["error"]["type"].as_str()),
        (409, Some("idempotency_error")),
        "{e}"
    );
    let (status, e) = server
        .with_key(&w.merchant("A").key)
        .idempotency_key(key)
        .post(
            "/v1/transfers",
            json!([
                transfer(w.account("bank"), w.account("wallet"), "0.25"),
                transfer(w.account("bank"), w.account("wallet"), "0.01")
            ]),
        );
    assert_eq!(
        (status, e["error"]["type"].as_str()),
        (409, Some("idempotency_error")),
        "{e}"
    );
    // A malformed key is refused before anything runs, naming the header.
    for bad in ["x".repeat(256), String::new()] {
        let (status, e) = server
            .with_key(&w.merchant("A").key)
            .idempotency_key(bad.as_str())
            .post(
                "/v1/transfers",
                transfer(w.account("bank"), w.account("wallet"), "0.01"),
            );
        assert_eq!(
            (
                status,
                e["error"]["code"].as_str(),
                e["error"]["param"].as_str()
            ),
            (
                400,
                Some("invalid_idempotency_key"),
                Some("Idempotency-Key")
            ),
            "{e}"
        );
    }
    assert_eq!(
        server
            .with_key(&w.merchant("A").key)
            .account_balance(w.account("wallet")),
        "0.260000"
    );
    // A key that captured a hold cannot then release it, nor capture another hold.
    let hold = |amount: &str| {
        let (status, h) = server.with_key(&w.merchant("A").key).post(
            "/v1/transfers",
            json!({"debit_account": w.account("wallet"), "credit_account": w.account("bank"), "amount": amount, "asset": "USD", "pending": true}),
        );
        assert_eq!(status, 201, "{h}");
        h["id"].as_str().unwrap().to_string()
    };
    let (h1, h2) = (hold("0.01"), hold("0.02"));
    let capture = "capture-1";
    let (status, _) = server
        .with_key(&w.merchant("A").key)
        .idempotency_key(capture)
        .post(&format!("/v1/transfers/{h1}/post"), json!({}));
    assert_eq!(status, 201);
    for path in [
        format!("/v1/transfers/{h1}/void"),
        format!("/v1/transfers/{h2}/post"),
    ] {
        let (status, e) = server
            .with_key(&w.merchant("A").key)
            .idempotency_key(capture)
            .post(&path, json!({}));
        assert_eq!(
            (status, e["error"]["type"].as_str()),
            (409, Some("idempotency_error")),
            "{path}: {e}"
        );
    }
    assert_eq!(
        server
            .with_key(&w.merchant("A").key)
            .account_balance(w.account("wallet")),
        "0.250000"
    );
    server.stop();
}

#[test]
fn graceful_shutdown_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let w = world(&server);
    server.with_key(&w.merchant("A").key).post(
        "/v1/transfers",
        transfer(w.account("bank"), w.account("wallet"), "1"),
    );
    let acknowledged = std::sync::Mutex::new(Vec::new());
    let pid = server.child.id() as i32;
    std::thread::scope(|scope| {
        for client in 0..8 {
            let (server, w, acknowledged) = (&server, &w, &acknowledged);
            scope.spawn(move || {
                for i in 0..200 {
                    let agent = ureq::AgentBuilder::new()
                        .timeout(Duration::from_secs(10))
                        .build();
                    let body =
                        transfer(w.account("bank"), w.account("wallet"), "0.000001").to_string();
                    let result = agent
                        .post(&format!("{}/v1/transfers", server.base))
                        .set("Authorization", &format!("Bearer {}", w.merchant("A").key))
                        .set("Idempotency-Key", &format!("c{client}-{i}"))
                        .send_string(&body);
                    match result {
                        Ok(response) => {
                            let t: Value =
                                serde_json::from_str(&response.into_string().unwrap()).unwrap();
                            acknowledged
                                .lock()
                                .unwrap()
                                .push(t["id"].as_str().unwrap().to_string());
                        }
                        Err(_) => return, // the server stopped accepting
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_millis(150));
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    });
    server.stop();
    let acknowledged = acknowledged.into_inner().unwrap();
    assert!(!acknowledged.is_empty());
    let server = Server::start(dir.path(), &[]);
    for id in &acknowledged {
        let (status, _) = server
            .with_key(&w.merchant("A").key)
            .get(&format!("/v1/transfers/{id}"));
        assert_eq!(status, 200, "acknowledged transfer {id} lost");
    }
    server.stop();
}

#[test]
fn health_metrics_request_ids_and_rate_limits() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--rate-limit-per-second", "5"]);
    let op = server.operator_key.clone().unwrap();
    assert_eq!(server.anonymous().raw("GET", "/healthz", None).0, 200);
    assert_eq!(server.anonymous().raw("GET", "/readyz", None).0, 200);
    let (_, _, headers) = server.raw(
        "GET",
        "/v1/assets",
        Some(&op),
        None,
        &[("Request-Id", "trace-me")],
    );
    assert!(headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("request-id") && v == "trace-me"));
    // Without one, each request gets its own: `req_` and 32 lower-case hex digits.
    let generated: Vec<String> = (0..2)
        .map(|_| {
            let (_, _, headers) = server.anonymous().raw("GET", "/healthz", None);
            let (_, id) = headers
                .into_iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("request-id"))
                .expect("a request id");
            id
        })
        .collect();
    for id in &generated {
        let hex = id.strip_prefix("req_").expect("req_ prefix");
        assert!(
            hex.len() == 32
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "{id}"
        );
    }
    assert_ne!(generated[0], generated[1]);
    let mut limited = None;
    for _ in 0..50 {
        let (status, _, headers) = server.with_key(&op).raw("GET", "/v1/assets", None);
        if status == 429 {
            limited = Some(headers);
            break;
        }
    }
    let headers = limited.expect("the rate limit applied");
    assert!(headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("retry-after")));
    // One write, so that the engine has committed something to measure.
    std::thread::sleep(Duration::from_millis(1100));
    let (status, _) = server
        .with_key(&op)
        .post("/v1/assets", json!({"code": "EUR", "scale": 2}));
    assert_eq!(status, 201);
    // The platform's metrics are the operator's: no key 401 (a merchant's key: 403, in
    // a_merchant_cannot_see_or_touch_another_merchants_objects).
    let (status, _, _) = server.anonymous().raw("GET", "/metrics", None);
    assert_eq!(status, 401);
    let (status, metrics, _) = server.with_key(&op).raw("GET", "/metrics", None);
    assert_eq!(status, 200);
    for name in [
        "farthing_http_requests_total",
        "farthing_http_request_duration_seconds_bucket",
        "farthing_engine_queue_depth",
        "farthing_engine_fsync_seconds_total",
        "farthing_engine_fsync_seconds_bucket",
        "farthing_engine_commit_events_bucket",
    ] {
        assert!(metrics.contains(name), "metrics lack {name}:\n{metrics}");
    }
    // A batch's durable latency, split into its stages, each measured for the batches so far.
    for stage in ["queue_wait", "apply", "log_wait", "fsync", "batch_durable"] {
        let name = format!("farthing_engine_{stage}_seconds_count ");
        let count: f64 = metrics
            .lines()
            .find_map(|line| line.strip_prefix(name.as_str()))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or_else(|| panic!("metrics lack {name}:\n{metrics}"));
        assert!(count >= 1.0, "{name}{count}");
    }
    server.stop();
}

/// Regression: requests left no trace in the log, and the log was coloured (ANSI escapes)
/// even when written to a file or a pipe.
#[test]
fn each_request_gets_an_access_log_line_without_secrets_or_colour() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_logging(dir.path(), &[], "info");
    let op = server.operator_key.clone().unwrap();
    let (status, _, _) = server.raw(
        "GET",
        "/v1/assets?limit=1&starting_after=hunter2",
        Some(&op),
        None,
        &[("Request-Id", "trace-access-log")],
    );
    let line = server.wait_for_log("the access line", |l| {
        l.contains(r#"request_id="trace-access-log""#)
    });
    for part in [
        "farthing_http::access",
        "method=GET",
        "path=/v1/assets ",
        &format!("status={status}"),
        "duration_us=",
    ] {
        assert!(line.contains(part), "{part} missing: {line}");
    }
    assert!(
        !line.contains("hunter2") && !line.contains(&op) && !line.contains("Bearer"),
        "{line}"
    );
    // A request without an id is logged under the id it was given.
    let (status, _, headers) = server.anonymous().raw("POST", "/v1/no_such_route", None);
    let (_, id) = headers
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("request-id"))
        .expect("a request id");
    let line = server.wait_for_log("the second access line", |l| {
        l.contains(&format!("request_id=\"{id}\""))
    });
    assert!(
        line.contains("method=POST")
            && line.contains("path=/v1/no_such_route ")
            && line.contains(&format!("status={status}")),
        "{line}"
    );
    let log = std::sync::Arc::clone(&server.log);
    server.stop();
    let log = log.lock().unwrap().join("\n");
    assert!(!log.contains('\x1b'), "colour codes in a piped log:\n{log}");
}

/// Regression: a start that failed on a taken port (or a missing TLS file) had already minted
/// and stored the one-time operator key, and the next start printed none.
#[test]
fn a_failed_start_keeps_the_operator_key_and_names_the_address() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let failed = common::serve_fails(&["--listen", &address, "--data-dir", data]);
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains(&format!("error: cannot listen on {address}: ")),
        "{stderr}"
    );
    assert!(!String::from_utf8_lossy(&failed.stdout).contains("fk_op_"));
    drop(taken);
    let missing = dir.path().join("missing.pem");
    let missing = missing.to_str().unwrap();
    let failed = common::serve_fails(&[
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data,
        "--tls-cert",
        missing,
        "--tls-key",
        missing,
    ]);
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains(missing), "{stderr}");
    assert!(!String::from_utf8_lossy(&failed.stdout).contains("fk_op_"));
    let server = Server::start(std::path::Path::new(data), &[]);
    let op = server
        .operator_key
        .clone()
        .expect("the first start that succeeds prints the operator key");
    assert_eq!(server.with_key(&op).get("/v1/assets").0, 200);
    server.stop();
}

/// Regression: an I/O error was printed twice ("…: Not a directory (os error 20): Not a
/// directory (os error 20)"): once in the error's message, once as its cause.
#[test]
fn a_start_error_names_its_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, "not a folder").unwrap();
    let data = file.join("data");
    let failed = common::serve_fails(&[
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains(data.to_str().unwrap()), "{stderr}");
    assert_eq!(stderr.matches("Not a directory").count(), 1, "{stderr}");
}

/// HTTPS with a real certificate (made by the `openssl` CLI) and a real client (`curl`), then
/// a graceful stop. Both tools are on the machine image; `scripts/test` installs curl if not.
#[test]
fn serves_https_with_a_certificate_and_stops_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(made.success());
    let data = dir.path().join("data");
    let server = Server::start(
        &data,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(
        server.base.starts_with("https://127.0.0.1:"),
        "{}",
        server.base
    );
    let op = server.operator_key.clone().unwrap();
    let curl = |path: &str, auth: bool| {
        let mut command = Command::new("curl");
        command
            .args(["-sS", "--max-time", "10", "--cacert"])
            .arg(&cert);
        if auth {
            command.args(["-H", &format!("Authorization: Bearer {op}")]);
        }
        let output = command
            .arg(format!("{}{path}", server.base))
            .output()
            .expect("curl runs");
        assert!(
            output.status.success(),
            "curl {path}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).to_string()
    };
    assert_eq!(curl("/healthz", false), "ok");
    assert_eq!(
        curl("/v1/assets", true),
        r#"{"object":"list","data":[],"has_more":false}"#
    );
    // Plain HTTP to the TLS port is not served.
    let plain = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "5",
            &server.base.replace("https://", "http://"),
        ])
        .output()
        .unwrap();
    assert!(!plain.status.success() || plain.stdout.is_empty());
    server.stop();
}

/// Sends raw bytes as `application/octet-stream`; returns the status and the body.
fn post_binary(
    server: &Server,
    key: &str,
    body: &[u8],
    idempotency_key: Option<&str>,
) -> (u16, Vec<u8>) {
    let mut request = ureq::post(&format!("{}/v1/transfers/batch", server.base))
        .set("Authorization", &format!("Bearer {key}"))
        .set("Content-Type", "application/octet-stream");
    if let Some(k) = idempotency_key {
        request = request.set("Idempotency-Key", k);
    }
    let response = match request.send_bytes(body) {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("binary batch: {e}"),
    };
    let status = response.status();
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut response.into_reader(), &mut bytes).unwrap();
    (status, bytes)
}

#[test]
fn binary_batches_check_every_record_and_replay_with_idempotency_keys() {
    use farthing_http::wire::{self, Record};
    use farthing_products::ids::{decode_id, encode_id, IdKind};

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let w = world(&server);
    let (status, foreign) = server
        .with_key(&w.merchant("B").key)
        .post("/v1/accounts", json!({"asset": "USD"}));
    assert_eq!(status, 201, "{foreign}");
    let id = |text: &str| decode_id(IdKind::Account, text).unwrap();
    let (bank, wallet, foreign) = (
        id(w.account("bank")),
        id(w.account("wallet")),
        id(foreign["id"].as_str().unwrap()),
    );
    let record = |debit: u128, credit: u128, amount: u128| Record {
        debit_account: debit,
        credit_account: credit,
        amount,
        asset_index: 0,
        code: 7,
        flags: 0,
        timeout_seconds: 0,
        reserved_zero: true,
    };
    let records = [
        record(bank, wallet, 2_500_000), // 2.5 USD in: created
        record(wallet, bank, 1_000_000), // 1 USD back: created
        record(wallet, bank, 5_000_000), // more than the wallet holds
        record(foreign, bank, 1),        // merchant B's account
        Record {
            asset_index: 1,
            ..record(bank, wallet, 1)
        }, // no such asset in the table
        record(bank, wallet, 0),         // zero
        Record {
            flags: 1,
            timeout_seconds: 60,
            ..record(wallet, bank, 500_000)
        }, // a hold
    ];
    let body = wire::encode_request(&["USD"], &records);
    let (status, answer) = post_binary(&server, &w.merchant("A").key, &body, Some("bin-1"));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    let response = wire::decode_response(&answer).unwrap();
    let names: Vec<&str> = response
        .results
        .iter()
        .map(|c| wire::result_name(*c))
        .collect();
    assert_eq!(
        names,
        [
            "ok",
            "ok",
            "exceeds_credits",
            "debit_account_not_found",
            "asset_index_unknown",
            "zero_amount",
            "ok"
        ]
    );
    assert_eq!(
        server
            .with_key(&w.merchant("A").key)
            .account_balance(w.account("wallet")),
        "1.500000"
    );
    // Each created record is a transfer with id first_id + i, visible over JSON.
    let (status, t) = server.with_key(&w.merchant("A").key).get(&format!(
        "/v1/transfers/{}",
        encode_id(IdKind::Transfer, response.id(6))
    ));
    assert_eq!(status, 200, "{t}");
    assert_eq!(
        (t["amount"].as_str(), t["status"].as_str()),
        (Some("0.500000"), Some("pending"))
    );

    // The same key again: the first answer, byte for byte; nothing moves twice.
    let (status, again) = post_binary(&server, &w.merchant("A").key, &body, Some("bin-1"));
    assert_eq!((status, &again), (200, &answer));
    assert_eq!(
        server
            .with_key(&w.merchant("A").key)
            .account_balance(w.account("wallet")),
        "1.500000"
    );
    // The same key with other records (even a prefix of the first list) is a conflict, and
    // runs nothing.
    for other in [
        wire::encode_request(&["USD"], &[record(bank, wallet, 7)]),
        wire::encode_request(&["USD"], &records[..1]),
    ] {
        let (status, conflict) = post_binary(&server, &w.merchant("A").key, &other, Some("bin-1"));
        let conflict: Value = serde_json::from_slice(&conflict).unwrap();
        assert_eq!(
            (status, conflict["error"]["type"].as_str()),
            (409, Some("idempotency_error")),
            "{conflict}"
        );
    }

    // Malformed bodies are refused whole with the field named; nothing is applied.
    let mut bad_asset = body.clone();
    bad_asset[12..15].copy_from_slice(b"EUR");
    for (bytes, status, param) in [
        (b"FTB1".to_vec(), 400, "body"),
        (body[..body.len() - 3].to_vec(), 400, "body"),
        (bad_asset, 404, "assets.0"),
    ] {
        let (s, answer) = post_binary(&server, &w.merchant("A").key, &bytes, None);
        let answer: Value = serde_json::from_slice(&answer).unwrap();
        assert_eq!(
            (s, answer["error"]["param"].as_str()),
            (status, Some(param)),
            "{answer}"
        );
    }
    // A read-only key cannot write.
    let (_, ro) = server
        .with_key(&w.op)
        .post("/v1/api_keys", json!({"scope": "read_only"}));
    let (s, _) = post_binary(&server, ro["secret"].as_str().unwrap(), &body, None);
    assert_eq!(s, 403);
    assert_eq!(
        server
            .with_key(&w.merchant("A").key)
            .account_balance(w.account("wallet")),
        "1.500000"
    );
    server.stop();
}

/// Regression: the ledger summary answered 500 for every asset once one asset's totals passed
/// 128 bits, which a merchant could cause with two maximal transfers between its own accounts.
#[test]
fn ledger_summary_survives_totals_past_128_bits() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let w = world(&server);
    let other = {
        let (status, a) = server
            .with_key(&w.merchant("A").key)
            .post("/v1/accounts", json!({"asset": "USD", "flags": {}}));
        assert_eq!(status, 201, "{a}");
        a["id"].as_str().unwrap().to_string()
    };
    let max = "340282366920938463463374607431768.211455";
    for (debit, credit) in [
        (w.account("bank"), other.as_str()),
        (other.as_str(), w.account("bank")),
    ] {
        let (status, t) = server
            .with_key(&w.merchant("A").key)
            .post("/v1/transfers", transfer(debit, credit, max));
        assert_eq!(status, 201, "{t}");
    }
    let (status, summary) = server.with_key(&w.op).get("/v1/ledger/summary");
    assert_eq!(status, 200, "{summary}");
    let usd = &summary["assets"][0];
    let twice = "680564733841876926926749214863536.422910";
    assert_eq!(
        (
            usd["debits_posted"].as_str(),
            usd["credits_posted"].as_str(),
            usd["balanced"].as_bool()
        ),
        (Some(twice), Some(twice), Some(true)),
        "{summary}"
    );
}

/// Regression: serde took a JSON array where an object was documented, field by field, so
/// `[["acct_A","acct_B","0.01","USD"]]` moved money and `[]` posted a whole hold.
#[test]
fn arrays_are_refused_where_objects_are_documented() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let w = world(&server);
    let (status, t) = server.with_key(&w.merchant("A").key).post(
        "/v1/transfers",
        transfer(w.account("bank"), w.account("wallet"), "1"),
    );
    assert_eq!(status, 201, "{t}");
    let by_position = json!([[w.account("bank"), w.account("wallet"), "0.01", "USD"]]);
    let (status, e) = server
        .with_key(&w.merchant("A").key)
        .post("/v1/transfers", by_position);
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (400, Some("invalid_json")),
        "{e}"
    );
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expected a JSON object"),
        "{e}"
    );
    assert_eq!(
        server
            .with_key(&w.merchant("A").key)
            .account_balance(w.account("wallet")),
        "1.000000"
    );

    let (status, hold) = server.with_key(&w.merchant("A").key).post(
        "/v1/transfers",
        json!({"debit_account": w.account("wallet"), "credit_account": w.account("bank"), "amount": "0.5", "asset": "USD", "pending": true}),
    );
    assert_eq!(status, 201, "{hold}");
    let post = format!("/v1/transfers/{}/post", hold["id"].as_str().unwrap());
    let (status, e) = server.with_key(&w.merchant("A").key).post(&post, json!([]));
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (400, Some("invalid_json")),
        "{e}"
    );
    let (_, held) = server
        .with_key(&w.merchant("A").key)
        .get(&format!("/v1/transfers/{}", hold["id"].as_str().unwrap()));
    assert_eq!(held["status"], "pending", "{held}");
    // A batch's transfers too, and trailing text after a valid body.
    let (status, e) = server.with_key(&w.merchant("A").key).post(
        "/v1/transfers/batch",
        json!({"transfers": [[w.account("bank"), w.account("wallet"), "0.01", "USD"]]}),
    );
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (400, Some("invalid_json")),
        "{e}"
    );
    let (status, _, _) = server.with_key(&w.merchant("A").key).raw(
        "POST",
        "/v1/transfers",
        Some(format!(
            "{} trailing",
            transfer(w.account("bank"), w.account("wallet"), "0.01")
        )),
    );
    assert_eq!(status, 400);
    assert_eq!(
        server
            .with_key(&w.merchant("A").key)
            .account_balance(w.account("wallet")),
        "1.000000"
    );
}

/// Sends `head` and then, after a pause, `body` on one connection; returns the response head
/// (status line and headers, lower-cased) and the socket.
fn send_in_two_parts(
    base: &str,
    head: &str,
    body: &str,
    pause: std::time::Duration,
) -> (String, std::net::TcpStream) {
    use std::io::{Read, Write};
    let address = base.trim_start_matches("http://");
    let mut socket = std::net::TcpStream::connect(address).unwrap();
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    socket.write_all(head.as_bytes()).unwrap();
    std::thread::sleep(pause);
    // The server may already have answered and closed; that is what is being tested.
    let _ = socket.write_all(body.as_bytes());
    let mut response = Vec::new();
    let mut buffer = [0u8; 4096];
    while !String::from_utf8_lossy(&response).contains("\r\n\r\n") {
        match socket.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => response.extend_from_slice(&buffer[..n]),
        }
    }
    (String::from_utf8_lossy(&response).to_lowercase(), socket)
}

/// Regression: after an early 401 the server dropped the connection without saying so, and a
/// client's next request on it failed with a broken pipe (was it applied?). An answer given
/// before the body was read now says `Connection: close`; one that read it keeps the
/// connection open.
#[test]
fn an_answer_before_the_body_was_read_closes_the_connection_explicitly() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let w = world(&server);
    let body = transfer(w.account("bank"), w.account("wallet"), "0.01").to_string();
    let head = |key: &str| {
        format!(
            "POST /v1/transfers HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
    };
    let pause = std::time::Duration::from_millis(100);
    let (refused, _) = send_in_two_parts(
        &server.base,
        &head("fk_nonsense_key_000000000000"),
        &body,
        pause,
    );
    assert!(refused.starts_with("http/1.1 401"), "{refused}");
    assert!(refused.contains("connection: close"), "{refused}");
    let (accepted, _) = send_in_two_parts(&server.base, &head(&w.merchant("A").key), &body, pause);
    assert!(accepted.starts_with("http/1.1 201"), "{accepted}");
    assert!(!accepted.contains("connection: close"), "{accepted}");
}

/// Regression: a body that stalled past `--request-timeout-ms` got 408 with an empty body; it
/// now carries the error object (and closes the connection, the body being unread).
#[test]
fn a_stalled_body_times_out_with_the_error_object() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--request-timeout-ms", "300"]);
    let w = world(&server);
    let head = format!(
        "POST /v1/transfers HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"amount\":",
        w.merchant("A").key
    );
    let (answer, mut socket) = send_in_two_parts(
        &server.base,
        &head,
        "",
        std::time::Duration::from_millis(10),
    );
    assert!(answer.starts_with("http/1.1 408"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut socket, &mut rest);
    let text = answer + &rest;
    assert!(text.contains("\"code\":\"request_timeout\""), "{text}");
}

/// Regression (slowloris): a client that never finished its request head held a connection
/// open forever. The head must now arrive within the request timeout, or the server closes the
/// connection; a client that sends its head in time is still answered.
#[test]
fn a_request_head_that_never_finishes_is_disconnected() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--request-timeout-ms", "300"]);
    let address = server.base.trim_start_matches("http://");
    let mut socket = std::net::TcpStream::connect(address).unwrap();
    // Bounded: a server that never closes fails the read after 10 s instead of hanging.
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    socket
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .unwrap();
    let started = std::time::Instant::now();
    let mut buffer = [0u8; 1024];
    let read = socket.read(&mut buffer);
    let waited = started.elapsed();
    assert!(
        matches!(read, Ok(0))
            || read
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "the server should close the connection, got {read:?}"
    );
    assert!(
        waited < std::time::Duration::from_secs(5),
        "closed only after {waited:?}"
    );
    // A head sent in time still gets its answer.
    let (answer, _) = send_in_two_parts(
        &server.base,
        "GET /healthz HTTP/1.1\r\nHost: x\r\n",
        "\r\n",
        std::time::Duration::from_millis(50),
    );
    assert!(answer.starts_with("http/1.1 200"), "{answer}");
}

/// A known path with a method it does not take is 405 with the error object and `Allow`;
/// a body over the limit is 413 with the error object.
#[test]
fn method_not_allowed_and_too_large_carry_the_error_object() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--request-body-bytes-max", "1024"]);
    let w = world(&server);
    let (status, body, headers) =
        server
            .with_key(&w.merchant("A").key)
            .raw("PUT", "/v1/transfers", None);
    assert_eq!(status, 405, "{body}");
    let e: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(e["error"]["code"], "method_not_allowed", "{e}");
    let allow = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("allow"))
        .map(|(_, value)| value.clone());
    assert_eq!(allow.as_deref(), Some("POST,GET,HEAD"), "{headers:?}");
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(4096));
    let (status, body, _) =
        server
            .with_key(&w.merchant("A").key)
            .raw("POST", "/v1/transfers", Some(big));
    assert_eq!(status, 413, "{body}");
    let e: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(e["error"]["code"], "body_too_large", "{e}");
}
