//! Idempotency-Keys over HTTP against a real `farthing serve`: every POST replays its first
//! answer, status and body, marked `Idempotent-Replayed: true`, and does its work once; a key
//! is bound to its whole request and its endpoint; each caller has its own keys; a refused
//! request stores nothing.

mod common;

use common::world::World;
use common::{Reply, Server};
use serde_json::{json, Value};

/// USD; the author and the publisher; Ada, the author's customer (monthly cap 20); and two
/// ledger accounts of the author's for plain transfers.
fn world(server: &Server) -> World {
    World::builder(server)
        .asset("USD", 6)
        .merchant("Author")
        .merchant("Publisher")
        .account("Author", "bank", json!({}))
        .account(
            "Author",
            "till",
            json!({"debits_must_not_exceed_credits": true}),
        )
        .capped_customer("Ada", "20")
        .build()
}

fn replayed(reply: &Reply) -> bool {
    reply
        .2
        .iter()
        .any(|(name, value)| name.eq_ignore_ascii_case("idempotent-replayed") && value == "true")
}

/// Sends `body` to `path` twice as `caller` under `key`: the retry must answer exactly as the
/// first request did, status included, marked as a replay. Returns the first answer.
fn twice(server: &Server, caller: &str, key: &str, path: &str, body: Value) -> (u16, Value) {
    let client = server.with_key(caller).idempotency_key(key);
    let first = client.raw("POST", path, Some(body.to_string()));
    let retry = client.raw("POST", path, Some(body.to_string()));
    assert!(
        (200..300).contains(&first.0),
        "POST {path}: {} {}",
        first.0,
        first.1
    );
    assert_eq!(
        (retry.0, &retry.1),
        (first.0, &first.1),
        "POST {path}: the retry answers as the first request did"
    );
    assert!(
        !replayed(&first),
        "POST {path}: the first answer is not a replay"
    );
    assert!(
        replayed(&retry),
        "POST {path}: the retry is marked as a replay"
    );
    (first.0, serde_json::from_str(&first.1).unwrap())
}

fn id(v: &Value) -> &str {
    v["id"].as_str().unwrap_or_else(|| panic!("no id in {v}"))
}

fn transfer(debit: &str, credit: &str, amount: &str) -> Value {
    json!({"debit_account": debit, "credit_account": credit, "amount": amount, "asset": "USD"})
}

/// Issue 16, item 1: a batch's key is bound to its whole list, and a key to its endpoint.
#[test]
fn a_key_is_bound_to_the_whole_request_and_its_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let w = world(&server);
    let author = w.merchant("Author").key.as_str();
    let (bank, till) = (w.account("bank"), w.account("till"));
    let one = json!({"transfers": [transfer(bank, till, "0.01")]});
    let (status, _) = twice(&server, author, "k1", "/v1/transfers/batch", one);
    assert_eq!(status, 200);
    // The same key with a longer list: refused, and the second transfer is not applied.
    let two = json!({"transfers": [transfer(bank, till, "0.01"), transfer(bank, till, "0.02")]});
    let (status, e) = server
        .with_key(author)
        .idempotency_key("k1")
        .post("/v1/transfers/batch", two);
    assert_eq!(
        (status, e["error"]["type"].as_str()),
        (409, Some("idempotency_error")),
        "{e}"
    );
    assert_eq!(server.with_key(author).account_balance(till), "0.010000");
    // A key used for one transfer, then for a batch holding that same transfer: refused.
    let single = transfer(bank, till, "0.05");
    let (status, _) = twice(&server, author, "k2", "/v1/transfers", single.clone());
    assert_eq!(status, 201);
    let (status, e) = server
        .with_key(author)
        .idempotency_key("k2")
        .post("/v1/transfers/batch", json!({"transfers": [single]}));
    assert_eq!(
        (status, e["error"]["type"].as_str()),
        (409, Some("idempotency_error")),
        "{e}"
    );
    // The media type's parameters are not part of the request: a retry that adds a charset
    // is the same request.
    let retry = ureq::post(&format!("{}/v1/transfers", server.base))
        .set("Authorization", &format!("Bearer {author}"))
        .set("Idempotency-Key", "k2")
        .set("Content-Type", "application/json; charset=utf-8")
        .send_string(&transfer(bank, till, "0.05").to_string())
        .unwrap();
    assert_eq!(
        (retry.status(), retry.header("idempotent-replayed")),
        (201, Some("true"))
    );
    // ... and the other way round, and onto an endpoint that writes no money.
    let (status, e) = server
        .with_key(author)
        .idempotency_key("k1")
        .post("/v1/accounts", json!({"asset": "USD"}));
    assert_eq!(
        (status, e["error"]["type"].as_str()),
        (409, Some("idempotency_error"))
    );
    assert_eq!(server.with_key(author).account_balance(till), "0.060000");
    server.stop();
}

/// Issue 16, items 2 and 3: every POST honours the key — the retry answers as the first did,
/// status included, and the work is done once.
#[test]
fn every_post_replays_its_first_answer_and_does_its_work_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &["--test-clock", "--webhook-allow-addresses", "loopback"],
    );
    let w = world(&server);
    let op = w.op.as_str();
    let author = w.merchant("Author").key.as_str();
    let ada = w.customer("Ada");
    let token = ada.token.as_str();
    let customer = format!("/v1/customers/{}", ada.id);
    let author_path = format!("/v1/merchants/{}", w.merchant("Author").id);

    // Wallet: a card, a top-up, auto top-up.
    let (status, card) = twice(
        &server,
        token,
        "card",
        &format!("{customer}/payment_methods"),
        json!({"card_number": "4242424242424242"}),
    );
    assert_eq!(status, 201);
    let card = card["token"].as_str().unwrap().to_string();
    let (status, topup) = twice(
        &server,
        token,
        "topup",
        &format!("{customer}/topups"),
        json!({"amount": "10", "asset": "USD", "payment_method": card}),
    );
    assert_eq!(status, 201);
    assert_eq!(w.wallet(&server, "Ada"), "10.000000", "topped up once");
    twice(
        &server,
        token,
        "auto",
        &format!("{customer}/auto_topup"),
        json!({"asset": "USD", "threshold": "0.50", "amount": "5", "payment_method": card, "enabled": true}),
    );

    // The merchant's settings.
    twice(
        &server,
        op,
        "fees",
        &format!("{author_path}/fee_plan"),
        json!({"asset": "USD", "percent_bps": 1000, "rounding": "half_even"}),
    );
    twice(
        &server,
        op,
        "payouts",
        &format!("{author_path}/payout_settings"),
        json!({"asset": "USD", "bank_account": "000123456789"}),
    );

    // Allowances: granted and revoked once each.
    let (status, allowance) = twice(
        &server,
        token,
        "allow",
        &format!("{customer}/allowances"),
        json!({"merchant": w.merchant("Author").id, "asset": "USD", "max_per_charge": "1", "max_per_period": "5", "period": "day"}),
    );
    assert_eq!(status, 201);
    let (status, _) = twice(
        &server,
        token,
        "revoke",
        &format!("/v1/allowances/{}/revoke", id(&allowance)),
        json!({}),
    );
    assert_eq!(status, 200);

    // Charges: asked by the merchant (no allowance now), confirmed once by the customer.
    let (status, asked) = twice(
        &server,
        author,
        "charge",
        "/v1/charges",
        json!({"customer": ada.id, "amount": "1", "asset": "USD"}),
    );
    assert_eq!(
        (status, asked["status"].as_str()),
        (201, Some("requires_confirmation"))
    );
    let (status, confirmed) = twice(
        &server,
        token,
        "confirm",
        &format!("/v1/charges/{}/confirm", id(&asked)),
        json!({}),
    );
    assert_eq!(
        (status, confirmed["status"].as_str()),
        (200, Some("succeeded"))
    );
    assert_eq!(w.wallet(&server, "Ada"), "9.000000", "charged once");
    let (status, _) = twice(
        &server,
        author,
        "refund",
        &format!("/v1/charges/{}/refunds", id(&asked)),
        json!({"amount": "0.5"}),
    );
    assert_eq!(status, 201);
    assert_eq!(w.wallet(&server, "Ada"), "9.500000", "refunded once");
    let (status, _) = twice(
        &server,
        token,
        "tip",
        "/v1/tips",
        json!({"merchant": w.merchant("Author").id, "amount": "0.5", "asset": "USD"}),
    );
    assert_eq!(status, 201);
    assert_eq!(w.wallet(&server, "Ada"), "9.000000", "tipped once");

    // Escrow: funded once, captured once.
    let (status, hold) = twice(
        &server,
        token,
        "hold",
        "/v1/holds",
        json!({"merchant": w.merchant("Author").id, "amount": "2", "asset": "USD",
               "description": "logo", "expires_in_seconds": 3600, "on_expiry": "release"}),
    );
    assert_eq!(status, 201);
    assert_eq!(w.wallet(&server, "Ada"), "7.000000", "held once");
    twice(
        &server,
        token,
        "capture",
        &format!("/v1/holds/{}/capture", id(&hold)),
        json!({"amount": "1"}),
    );
    twice(
        &server,
        author,
        "release",
        &format!("/v1/holds/{}/release", id(&hold)),
        json!({}),
    );
    assert_eq!(
        w.wallet(&server, "Ada"),
        "8.000000",
        "captured and released once"
    );

    // A tab, opened once, its card changed.
    let (status, tab) = twice(
        &server,
        token,
        "tab",
        &format!("{customer}/tabs"),
        json!({"asset": "USD", "limit": "3", "settlement_threshold": "2", "period": "month", "payment_method": card}),
    );
    assert_eq!(status, 201);
    twice(
        &server,
        token,
        "tab-card",
        &format!("/v1/tabs/{}/payment_method", id(&tab)),
        json!({"payment_method": card}),
    );

    // Subscriptions: subscribed, paused, resumed and canceled once each.
    let (status, plan) = twice(
        &server,
        author,
        "plan",
        "/v1/plans",
        json!({"name": "Newsletter", "amount": "1", "asset": "USD", "interval": "month"}),
    );
    assert_eq!(status, 201);
    let (status, sub) = twice(
        &server,
        token,
        "subscribe",
        "/v1/subscriptions",
        json!({"plan": id(&plan)}),
    );
    assert_eq!(status, 201);
    assert_eq!(
        w.wallet(&server, "Ada"),
        "7.000000",
        "the first month paid once"
    );
    let sub_path = format!("/v1/subscriptions/{}", id(&sub));
    for action in ["pause", "resume", "cancel"] {
        let (status, s) = twice(
            &server,
            token,
            action,
            &format!("{sub_path}/{action}"),
            json!({}),
        );
        assert_eq!(status, 200, "{action}: {s}");
    }
    assert_eq!(
        w.wallet(&server, "Ada"),
        "7.000000",
        "resumed without a charge"
    );

    // A campaign and a contribution.
    let (status, campaign) = twice(
        &server,
        author,
        "campaign",
        "/v1/campaigns",
        json!({"name": "Album", "goal": "5", "asset": "USD", "ends_in_seconds": 3600, "mode": "keep_what_you_raise"}),
    );
    assert_eq!(status, 201);
    let (status, _) = twice(
        &server,
        token,
        "give",
        &format!("/v1/campaigns/{}/contributions", id(&campaign)),
        json!({"amount": "1"}),
    );
    assert_eq!(status, 201);
    assert_eq!(w.wallet(&server, "Ada"), "6.000000", "contributed once");

    // Plain transfers, and a webhook endpoint made and changed.
    let (status, _) = twice(
        &server,
        author,
        "move",
        "/v1/transfers",
        transfer(w.account("bank"), w.account("till"), "0.25"),
    );
    assert_eq!(status, 201);
    assert_eq!(
        server.with_key(author).account_balance(w.account("till")),
        "0.250000"
    );
    let (status, endpoint) = twice(
        &server,
        author,
        "hook",
        "/v1/webhook_endpoints",
        json!({"url": "http://127.0.0.1:9/hook"}),
    );
    assert_eq!(status, 201);
    twice(
        &server,
        author,
        "hook-change",
        &format!("/v1/webhook_endpoints/{}", id(&endpoint)),
        json!({"description": "changed"}),
    );

    // A dispute: one per key; another top-up under the same key is a conflict.
    let (status, dispute) = twice(
        &server,
        op,
        "dispute",
        "/v1/disputes",
        json!({"topup": id(&topup)}),
    );
    assert_eq!(status, 201, "{dispute}");
    let (_, other) = w.top_up_with(&server, "Ada", &card, "1");
    let (status, e) = server
        .with_key(op)
        .idempotency_key("dispute")
        .post("/v1/disputes", json!({"topup": id(&other)}));
    assert_eq!(
        (status, e["error"]["type"].as_str()),
        (409, Some("idempotency_error"))
    );

    // The test clock moves once.
    let seconds = |v: &Value| {
        let now = v["now"].as_str().unwrap();
        time::OffsetDateTime::parse(now, &time::format_description::well_known::Rfc3339)
            .unwrap()
            .unix_timestamp()
    };
    let before = seconds(&server.with_key(op).get_ok("/v1/test_clock"));
    twice(
        &server,
        op,
        "tick",
        "/v1/test_clock/advance",
        json!({"seconds": 86_400}),
    );
    let after = seconds(&server.with_key(op).get_ok("/v1/test_clock"));
    assert!(
        (86_400..2 * 86_400).contains(&(after - before)),
        "moved by {} s",
        after - before
    );
    server.stop();
}

/// A customer token has keys of its own: the merchant's key never answers for the customer.
#[test]
fn each_caller_has_its_own_keys_and_a_refused_request_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let w = world(&server);
    let ada = w.customer("Ada");
    let (status, _) = w.top_up(&server, "Ada", "4242424242424242", "5");
    assert_eq!(status, 201);
    let card = w.card(&server, "Ada", "4242424242424242");
    let body = json!({"merchant": w.merchant("Author").id, "amount": "1", "asset": "USD"});
    let (status, by_customer) = server
        .with_key(&ada.token)
        .idempotency_key("same")
        .post("/v1/tips", body.clone());
    assert_eq!(status, 201, "{by_customer}");
    // The same key and the same request from the merchant: not the customer's answer.
    let (status, e) = server
        .with_key(&w.merchant("Author").key)
        .idempotency_key("same")
        .post("/v1/tips", body);
    assert_eq!(status, 403, "{e}");
    // ... and the same key for the merchant's own request runs it.
    let (status, mine) = server
        .with_key(&w.merchant("Author").key)
        .idempotency_key("same")
        .post("/v1/accounts", json!({"asset": "USD"}));
    assert_eq!(status, 201, "{mine}");

    // A declined top-up stores nothing: the retry runs again, and the key stays free.
    let declined = w.card(&server, "Ada", "4000000000000002");
    let topups = format!("/v1/customers/{}/topups", ada.id);
    for _ in 0..2 {
        let (status, e) = server
            .with_key(&ada.token)
            .idempotency_key("declined")
            .post(
                &topups,
                json!({"amount": "1", "asset": "USD", "payment_method": declined}),
            );
        assert_eq!(
            (status, e["error"]["code"].as_str()),
            (402, Some("card_declined"))
        );
    }
    let (status, _) = server
        .with_key(&ada.token)
        .idempotency_key("declined")
        .post(
            &topups,
            json!({"amount": "1", "asset": "USD", "payment_method": card}),
        );
    assert_eq!(status, 201);
    assert_eq!(w.wallet(&server, "Ada"), "5.000000");
    server.stop();
}
