//! Webhooks over HTTP against a real `farthing serve`: real deliveries to a loopback receiver,
//! signatures checked with the official Standard Webhooks library, retries moved by the test
//! clock, the delivery log, redelivery, rotation, disabling, the SSRF guard, and a SIGKILL
//! between commit and delivery.

mod common;

use common::receiver::{verify_with_standard_webhooks, Delivery, Receiver};
use common::world::World;
use common::Server;
use serde_json::{json, Value};

/// USD; the creator, with a key and a 10% fee plan; and Ada, the creator's customer.
fn world(server: &Server) -> World {
    World::builder(server)
        .asset("USD", 6)
        .merchant("Creator")
        .fee_plan(
            "Creator",
            json!({"asset": "USD", "percent_bps": 1000, "rounding": "half_even"}),
        )
        .customer("Ada")
        .build()
}

fn endpoint(server: &Server, key: &str, url: &str, events: Value) -> (String, String) {
    let e = server.with_key(key).post_expect(
        "/v1/webhook_endpoints",
        json!({"url": url, "events": events, "description": "test"}),
        201,
    );
    assert!(e["secret"].as_str().unwrap().starts_with("whsec_"), "{e}");
    (
        e["id"].as_str().unwrap().to_string(),
        e["secret"].as_str().unwrap().to_string(),
    )
}

fn types(deliveries: &[Delivery]) -> Vec<String> {
    deliveries
        .iter()
        .map(|d| d.json()["type"].as_str().unwrap_or("").to_string())
        .collect()
}

fn has(deliveries: &[Delivery], kind: &str) -> bool {
    types(deliveries).iter().any(|t| t == kind)
}

/// Every event type, each delivered (signed, verified by the official library) to the
/// endpoints that asked for it and to no other; a charge the ledger refuses sends nothing.
#[test]
fn every_product_event_is_delivered_signed_to_the_endpoints_that_want_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &["--test-clock", "--webhook-allow-addresses", "loopback"],
    );
    let w = world(&server);
    let receiver = Receiver::start();
    let (_, merchant_secret) = endpoint(
        &server,
        &w.merchant("Creator").key,
        &format!("{}/merchant", receiver.url),
        json!(["*"]),
    );
    let (_, op_secret) = endpoint(
        &server,
        &w.op,
        &format!("{}/operator", receiver.url),
        json!([
            "topup.succeeded",
            "topup.failed",
            "tab.settled",
            "tab.settlement_failed"
        ]),
    );

    // Top-ups: operator events (a customer's card, no merchant).
    let good = w.card(&server, "Ada", "4242424242424242");
    assert_eq!(w.top_up_with(&server, "Ada", &good, "20").0, 201);
    let declined = w.card(&server, "Ada", "4000000000000002");
    assert_eq!(w.top_up_with(&server, "Ada", &declined, "5").0, 402);
    let op = receiver.wait("/operator", "top-ups", |d| {
        has(d, "topup.succeeded") && has(d, "topup.failed")
    });
    let succeeded = op
        .iter()
        .find(|d| d.json()["type"] == "topup.succeeded")
        .unwrap()
        .json();
    assert_eq!(succeeded["data"]["amount"], "20.000000");
    assert_eq!(succeeded["data"]["status"], "succeeded");

    // A charge and its refund; a charge over the wallet sends nothing.
    let charge = server.with_key(&w.customer("Ada").token).post_expect(
        "/v1/charges",
        json!({"merchant": w.merchant("Creator").id, "amount": "2", "asset": "USD", "description": "article"}),
        201,
    );
    let (status, _) = server.with_key(&w.customer("Ada").token).post(
        "/v1/charges",
        json!({"merchant": w.merchant("Creator").id, "amount": "1000", "asset": "USD"}),
    );
    assert_eq!(status, 422);
    server.with_key(&w.merchant("Creator").key).post_expect(
        &format!("/v1/charges/{}/refunds", charge["id"].as_str().unwrap()),
        json!({"amount": "0.5"}),
        201,
    );
    let m = receiver.wait("/merchant", "charge events", |d| has(d, "charge.refunded"));
    let charges: Vec<Value> = m
        .iter()
        .map(Delivery::json)
        .filter(|e| e["type"] == "charge.succeeded")
        .collect();
    assert_eq!(charges.len(), 1, "only the committed charge: {charges:?}");
    assert_eq!(charges[0]["data"]["id"], charge["id"]);
    assert_eq!(charges[0]["data"]["description"], "article");
    assert_eq!(charges[0]["data"]["platform_fee"], "0.200000");

    // Escrow holds: captured in part, released; another expires.
    let hold = |expiry: &str| {
        server.with_key(&w.customer("Ada").token).post_expect(
            "/v1/holds",
            json!({"merchant": w.merchant("Creator").id, "amount": "3",
            "asset": "USD", "expires_in_seconds": 3600, "on_expiry": expiry}),
            201,
        )
    };
    let a = hold("release");
    let a_id = a["id"].as_str().unwrap();
    server.with_key(&w.customer("Ada").token).post_expect(
        &format!("/v1/holds/{a_id}/capture"),
        json!({"amount": "1"}),
        200,
    );
    server.with_key(&w.merchant("Creator").key).expect(
        "POST",
        &format!("/v1/holds/{a_id}/release"),
        None,
        200,
    );
    hold("release");
    hold("capture");

    // Campaigns: one reaches its goal, one does not.
    let campaign = |goal: &str| {
        server.with_key(&w.merchant("Creator").key).post_expect(
            "/v1/campaigns",
            json!({"name": "Album",
            "goal": goal, "asset": "USD", "ends_in_seconds": 3600, "mode": "all_or_nothing"}),
            201,
        )
    };
    let (hit, miss) = (campaign("1"), campaign("100"));
    for c in [&hit, &miss] {
        server.with_key(&w.customer("Ada").token).post_expect(
            &format!("/v1/campaigns/{}/contributions", c["id"].as_str().unwrap()),
            json!({"amount": "1"}),
            201,
        );
    }

    // A subscription paid from a wallet that then runs dry: renewed, then past due.
    let plan = server.with_key(&w.merchant("Creator").key).post_expect(
        "/v1/plans",
        json!({"name": "Letter", "amount": "1", "asset": "USD", "interval": "day"}),
        201,
    );
    let sub = server.with_key(&w.customer("Ada").token).post_expect(
        "/v1/subscriptions",
        json!({"plan": plan["id"]}),
        201,
    );

    // Payouts: one to a failing account, one paid.
    let settings = |account: &str| {
        server.with_key(&w.merchant("Creator").key).post_expect(
            &format!("/v1/merchants/{}/payout_settings", w.merchant("Creator").id),
            json!({"asset": "USD", "bank_account": account}),
            200,
        );
    };
    settings("000111111116");
    let failed = server.with_key(&w.merchant("Creator").key).post_expect(
        &format!("/v1/merchants/{}/payouts", w.merchant("Creator").id),
        json!({"amount": "0.1"}),
        201,
    );
    assert_eq!(failed["status"], "failed");
    settings("000123456789");
    server.with_key(&w.merchant("Creator").key).post_expect(
        &format!("/v1/merchants/{}/payouts", w.merchant("Creator").id),
        json!({"amount": "0.1"}),
        201,
    );

    // Tabs: a settlement declined, then paid.
    let tab = server.with_key(&w.customer("Ada").token).post_expect(
        &format!("/v1/customers/{}/tabs", w.customer("Ada").id),
        json!({"asset": "USD", "limit": "3", "settlement_threshold": "1", "period": "month",
            "payment_method": declined}),
        201,
    );
    let tab_charge = server.with_key(&w.customer("Ada").token).post_expect(
        "/v1/charges",
        json!({"merchant": w.merchant("Creator").id, "amount": "1", "asset": "USD", "source": "tab"}),
        201,
    );
    assert_eq!(tab_charge["status"], "succeeded");
    receiver.wait("/operator", "a declined settlement", |d| {
        has(d, "tab.settlement_failed")
    });
    server.with_key(&w.customer("Ada").token).post_expect(
        &format!("/v1/tabs/{}/payment_method", tab["id"].as_str().unwrap()),
        json!({"payment_method": good}),
        200,
    );
    receiver.wait("/operator", "a paid settlement", |d| has(d, "tab.settled"));

    // Empty the wallet so the next period fails, then move time: the hold expires, the
    // campaigns end, the subscription renews once (paid) and then goes past due.
    let left = server.with_key(&w.customer("Ada").token).get_ok(&format!(
        "/v1/customers/{}/wallets/USD",
        w.customer("Ada").id
    ));
    let left = left["available"].as_str().unwrap().to_string();
    server.with_key(&w.customer("Ada").token).post_expect(
        "/v1/charges",
        json!({"merchant": w.merchant("Creator").id, "amount": left, "asset": "USD"}),
        201,
    );
    assert_eq!(w.top_up_with(&server, "Ada", &good, "1").0, 201);
    // The hold expires and the campaigns end within the first day; the expired hold and the
    // failed campaign give money back, so the subscription renews until that is spent, then a
    // period fails, is retried an hour later, and fails again: past due.
    for _ in 0..12 {
        w.advance(&server, 86_400);
        w.advance(&server, 3_600 + 60);
        if has(&receiver.to("/merchant"), "subscription.past_due") {
            break;
        }
    }
    let all = [
        "charge.succeeded",
        "charge.refunded",
        "payout.paid",
        "payout.failed",
        "hold.captured",
        "hold.released",
        "hold.expired",
        "subscription.renewed",
        "subscription.past_due",
        "campaign.succeeded",
        "campaign.failed",
    ];
    let m = receiver.wait("/merchant", "every merchant event", |d| {
        all.iter().all(|k| has(d, k))
    });
    let got = types(&m);
    assert!(
        !got.iter()
            .any(|t| t.starts_with("topup.") || t.starts_with("tab.")),
        "{got:?}"
    );
    // Both expiries are announced as such: one released 3, one captured 3 (less the fee).
    let mut expired: Vec<(String, String)> = m
        .iter()
        .map(Delivery::json)
        .filter(|e| e["type"] == "hold.expired")
        .map(|e| {
            let d = &e["data"];
            (
                d["captured"].as_str().unwrap().into(),
                d["released"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    expired.sort();
    assert_eq!(
        expired,
        vec![
            ("0.000000".into(), "3.000000".into()),
            ("3.000000".into(), "0.000000".into())
        ]
    );
    let sub_events: Vec<Value> = m
        .iter()
        .map(Delivery::json)
        .filter(|e| e["type"].as_str().unwrap().starts_with("subscription."))
        .collect();
    assert!(
        sub_events.iter().all(|e| e["data"]["id"] == sub["id"]),
        "{sub_events:?}"
    );
    let op = receiver.to("/operator");
    let op_types = types(&op);
    assert!(
        op_types
            .iter()
            .all(|t| t.starts_with("topup.") || t.starts_with("tab.")),
        "{op_types:?}"
    );

    // Every delivery: the three headers, a JSON body with type/timestamp/data, and a signature
    // the official library accepts; ids are unique per event.
    for d in m.iter().chain(&op) {
        assert!(d.header("webhook-id").starts_with("evt_"), "{d:?}");
        assert_eq!(d.header("content-type"), "application/json");
        let body = d.json();
        assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
        assert!(body["data"].is_object());
    }
    verify_with_standard_webhooks(&m, &merchant_secret);
    verify_with_standard_webhooks(&op, &op_secret);
    let mut ids: Vec<&str> = m.iter().map(|d| d.header("webhook-id")).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), m.len(), "no event delivered twice here");
    // The event reads back by id, for its merchant.
    let event = server
        .with_key(&w.merchant("Creator").key)
        .get_ok(&format!("/v1/events/{}", m[0].header("webhook-id")));
    assert_eq!(event["type"], m[0].json()["type"]);
    server.stop();
}

/// Failed attempts retry on the schedule (moved by the test clock), the log shows each, a
/// manual redelivery keeps the webhook-id, rotation signs with both secrets, 410 disables the
/// endpoint, and a day of failures disables another.
#[test]
fn retries_the_delivery_log_redelivery_rotation_and_disabling() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &["--test-clock", "--webhook-allow-addresses", "loopback"],
    );
    let w = world(&server);
    let receiver = Receiver::start();
    let (id, secret) = endpoint(
        &server,
        &w.merchant("Creator").key,
        &format!("{}/flaky", receiver.url),
        json!(["charge.succeeded"]),
    );
    let pm = w.card(&server, "Ada", "4242424242424242");
    let (status, t) = w.top_up_with(&server, "Ada", &pm, "10");
    assert_eq!(status, 201, "{t}");
    let charge = |n: u32| {
        server.with_key(&w.customer("Ada").token).post_expect(
            "/v1/charges",
            json!({"merchant": w.merchant("Creator").id,
            "amount": "0.01", "asset": "USD", "description": format!("item {n}")}),
            201,
        )
    };

    // Two failures, then success: 3 attempts, one webhook-id.
    receiver
        .answers
        .lock()
        .unwrap()
        .insert("/flaky".into(), vec![500, 503]);
    charge(1);
    receiver.wait("/flaky", "first attempt", |d| !d.is_empty());
    // The second attempt is due ~5 s after the first, the third ~30 s after the second (±20%);
    // each is scheduled from the clock when its attempt started, so one step of 40 s each.
    w.advance(&server, 40);
    receiver.wait("/flaky", "the second attempt", |d| d.len() >= 2);
    w.advance(&server, 40);
    let got = receiver.wait("/flaky", "the third attempt", |d| d.len() >= 3);
    assert!(got
        .iter()
        .all(|d| d.header("webhook-id") == got[0].header("webhook-id")));
    let event = got[0].header("webhook-id").to_string();
    // The receiver saw the request before the server recorded its answer: wait for the log.
    let log = server.with_key(&w.merchant("Creator").key).poll_until(
        &format!("/v1/webhook_endpoints/{id}/attempts?limit=10"),
        "the three attempts in the log",
        |log| log["data"].as_array().is_some_and(|a| a.len() == 3),
    );
    let outcomes: Vec<(&str, Option<u64>)> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["outcome"].as_str().unwrap(), a["status_code"].as_u64()))
        .collect();
    assert_eq!(
        outcomes,
        vec![
            ("succeeded", Some(200)),
            ("failed", Some(503)),
            ("failed", Some(500))
        ]
    );
    let delivery = server
        .with_key(&w.merchant("Creator").key)
        .get_ok(&format!("/v1/webhook_endpoints/{id}/deliveries/{event}"));
    assert_eq!(
        (delivery["status"].as_str(), delivery["attempts"].as_u64()),
        (Some("succeeded"), Some(3))
    );

    // Manual redelivery: the same event, the same webhook-id, once more.
    let (status, _) = server.with_key(&w.merchant("Creator").key).post(
        &format!("/v1/webhook_endpoints/{id}/redeliver"),
        json!({"event": event}),
    );
    assert_eq!(status, 202);
    let got = receiver.wait("/flaky", "the redelivery", |d| d.len() >= 4);
    assert_eq!(got[3].header("webhook-id"), event);
    assert_eq!(got[3].body, got[0].body, "the same bytes");

    // Rotation: the next delivery carries two signatures; either secret verifies it.
    let rotated = server.with_key(&w.merchant("Creator").key).post_expect(
        &format!("/v1/webhook_endpoints/{id}/rotate_secret"),
        json!({"previous_secret_valid_seconds": 3600}),
        200,
    );
    let new_secret = rotated["secret"].as_str().unwrap().to_string();
    assert_ne!(new_secret, secret);
    // A retried rotation (same Idempotency-Key) replays the secret it made, rotating once.
    let rotate_keyed = || {
        server
            .with_key(&w.merchant("Creator").key)
            .idempotency_key("rot-1")
            .post(
                &format!("/v1/webhook_endpoints/{id}/rotate_secret"),
                json!({"previous_secret_valid_seconds": 3600}),
            )
    };
    let (first, second) = (rotate_keyed(), rotate_keyed());
    assert_eq!((first.0, second.0), (200, 200));
    assert_eq!(first.1["secret"], second.1["secret"]);
    let (secret, new_secret) = (new_secret, first.1["secret"].as_str().unwrap().to_string());
    charge(2);
    let got = receiver.wait("/flaky", "a delivery after rotation", |d| d.len() >= 5);
    assert_eq!(got[4].header("webhook-signature").split(' ').count(), 2);
    verify_with_standard_webhooks(&got[4..5], &secret);
    verify_with_standard_webhooks(&got[4..5], &new_secret);
    // An hour later only the new secret signs.
    w.advance(&server, 3601);
    charge(3);
    let got = receiver.wait("/flaky", "a delivery after the old secret expired", |d| {
        d.len() >= 6
    });
    assert_eq!(got[5].header("webhook-signature").split(' ').count(), 1);
    verify_with_standard_webhooks(&got[5..6], &new_secret);

    // 410 Gone disables the endpoint at once; nothing more is sent until it is enabled.
    receiver
        .answers
        .lock()
        .unwrap()
        .insert("/flaky".into(), vec![410]);
    charge(4);
    receiver.wait("/flaky", "the 410", |d| d.len() >= 7);
    let e = server.with_key(&w.merchant("Creator").key).poll_until(
        &format!("/v1/webhook_endpoints/{id}"),
        "the endpoint disabled by the 410",
        |e| e["status"] == "disabled",
    );
    assert!(
        e["disabled_reason"].as_str().unwrap().contains("410"),
        "{e}"
    );
    let fifth = charge(5);
    // Reading the charge waits for its journal note, which carries its event: it was applied
    // (and skipped the disabled endpoint) before the endpoint is enabled again.
    server
        .with_key(&w.customer("Ada").token)
        .get_ok(&format!("/v1/charges/{}", fifth["id"].as_str().unwrap()));
    let (status, refused) = server.with_key(&w.merchant("Creator").key).post(
        &format!("/v1/webhook_endpoints/{id}/redeliver"),
        json!({"event": event}),
    );
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (422, Some("endpoint_disabled"))
    );
    server.with_key(&w.merchant("Creator").key).post_expect(
        &format!("/v1/webhook_endpoints/{id}"),
        json!({"enabled": true}),
        200,
    );
    charge(6);
    let got = receiver.wait("/flaky", "a delivery after re-enabling", |d| d.len() >= 8);
    assert_eq!(
        got[7].json()["data"]["description"],
        "item 6",
        "charge 5 was skipped"
    );

    // An endpoint that fails everything for a day is disabled, its delivery marked failed.
    let (dead, _) = endpoint(
        &server,
        &w.merchant("Creator").key,
        &format!("{}/dead", receiver.url),
        json!(["*"]),
    );
    receiver
        .answers
        .lock()
        .unwrap()
        .insert("/dead".into(), vec![500; 100]);
    charge(7);
    receiver.wait("/dead", "the first failure", |d| !d.is_empty());
    // Each step of 13 h passes the next retry's due time (at most 10 h + 20%): one attempt per
    // step. The third fails more than 24 h after the first: the endpoint is disabled.
    w.advance(&server, 13 * 3600);
    receiver.wait("/dead", "the second failure", |d| d.len() >= 2);
    w.advance(&server, 13 * 3600);
    receiver.wait("/dead", "the third failure", |d| d.len() >= 3);
    let e = server.with_key(&w.merchant("Creator").key).poll_until(
        &format!("/v1/webhook_endpoints/{dead}"),
        "the endpoint disabled after a day of failures",
        |e| e["status"] == "disabled",
    );
    assert!(
        e["disabled_reason"].as_str().unwrap().contains("24 hours"),
        "{e}"
    );
    // Disabled: the next retry is skipped, not sent.
    w.advance(&server, 13 * 3600);
    charge(8);
    receiver.wait("/flaky", "a later charge elsewhere", |d| {
        d.iter()
            .any(|x| x.json()["data"]["description"] == "item 8")
    });
    assert_eq!(receiver.to("/dead").len(), 3, "nothing sent once disabled");
    server.stop();
}

/// Without the operator's permission, endpoints on loopback, private or link-local addresses
/// are refused (literals and names alike), and bad input names its field.
#[test]
fn the_ssrf_guard_refuses_internal_addresses_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let w = world(&server);
    for url in [
        "http://127.0.0.1:9/hook",
        "http://localhost:9/hook",
        "http://[::1]/hook",
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::ffff:127.0.0.1]/",
    ] {
        let (status, e) = server
            .with_key(&w.merchant("Creator").key)
            .post("/v1/webhook_endpoints", json!({"url": url}));
        assert_eq!(
            (
                status,
                e["error"]["param"].as_str(),
                e["error"]["code"].as_str()
            ),
            (400, Some("url"), Some("url_forbidden_address")),
            "{url}: {e}"
        );
    }
    for (body, param) in [
        (json!({"url": "ftp://example.com/"}), "url"),
        (
            json!({"url": "https://example.com/", "events": ["charge.exploded"]}),
            "events[0]",
        ),
        (
            json!({"url": "https://example.com/", "events": []}),
            "events",
        ),
        (
            json!({"url": "https://example.com/", "colour": "red"}),
            "colour",
        ),
    ] {
        let (status, e) = server
            .with_key(&w.merchant("Creator").key)
            .post("/v1/webhook_endpoints", body);
        assert_eq!(
            (status, e["error"]["param"].as_str()),
            (400, Some(param)),
            "{e}"
        );
    }
    // A customer token cannot register endpoints; another merchant cannot see this one.
    let (status, _) = server.with_key(&w.customer("Ada").token).post(
        "/v1/webhook_endpoints",
        json!({"url": "https://example.com/"}),
    );
    assert_eq!(status, 403);
    server.stop();
}

/// SIGKILL while deliveries are in flight: after a restart every event of every answered
/// charge arrives (duplicates allowed, with the same webhook-id), and no event arrives for a
/// charge that did not happen.
#[test]
fn events_committed_before_a_sigkill_are_all_delivered_after_the_restart() {
    const CHARGES: usize = 40;
    let dir = tempfile::tempdir().unwrap();
    let args = ["--webhook-allow-addresses", "loopback"];
    let mut server = Server::start(dir.path(), &args);
    let w = world(&server);
    let receiver = Receiver::start();
    let (_, secret) = endpoint(
        &server,
        &w.merchant("Creator").key,
        &format!("{}/crash", receiver.url),
        json!(["charge.succeeded"]),
    );
    let pm = w.card(&server, "Ada", "4242424242424242");
    let (status, t) = w.top_up_with(&server, "Ada", &pm, "10");
    assert_eq!(status, 201, "{t}");
    // The receiver takes requests but answers none: nothing is acknowledged before the kill.
    receiver
        .hold
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let mut answered = Vec::new();
    for i in 0..CHARGES {
        let c = server.with_key(&w.customer("Ada").token).post_expect(
            "/v1/charges",
            json!({"merchant": w.merchant("Creator").id,
            "amount": "0.01", "asset": "USD", "description": format!("crash {i}")}),
            201,
        );
        answered.push(c["id"].as_str().unwrap().to_string());
    }
    // SAFETY: kill(2) on our own child's pid (reaped below).
    unsafe { libc::kill(server.child.id() as i32, libc::SIGKILL) };
    server.child.wait().unwrap();
    drop(server);
    let before: Vec<Delivery> = receiver.to("/crash");
    receiver
        .hold
        .store(false, std::sync::atomic::Ordering::SeqCst);

    let server = Server::start(dir.path(), &args);
    let got = receiver.wait("/crash", "every answered charge's event", |d| {
        answered
            .iter()
            .all(|id| d.iter().any(|x| x.json()["data"]["id"] == id.as_str()))
    });
    // Same event, same webhook-id and the same bytes, however often it came.
    let mut by_charge: std::collections::HashMap<String, (String, String)> = Default::default();
    for d in &got {
        let charge = d.json()["data"]["id"].as_str().unwrap().to_string();
        assert!(
            answered.contains(&charge),
            "an event for a charge never made: {charge}"
        );
        let seen = by_charge
            .entry(charge)
            .or_insert((d.header("webhook-id").to_string(), d.body.clone()));
        assert_eq!(
            (seen.0.as_str(), seen.1.as_str()),
            (d.header("webhook-id"), d.body.as_str())
        );
    }
    assert_eq!(by_charge.len(), CHARGES);
    verify_with_standard_webhooks(&got, &secret);
    eprintln!(
        "{} deliveries before the kill, {} in all for {CHARGES} events",
        before.len(),
        got.len()
    );
    server.stop();
}
