//! Product scenarios over HTTP against a real `farthing serve`: customers and consent, wallets
//! and top-ups through the sandbox processor, charges with fee splits, tips, refunds, payouts,
//! the fee report, and 64 concurrent charges racing for a wallet's last cent.

mod common;

use common::world::World;
use common::Server;
use serde_json::{json, Value};

/// USD; the author and the publisher, each with a key; and Ada, the author's customer, with a
/// monthly cap of 20.
fn world(server: &Server) -> World {
    World::builder(server)
        .asset("USD", 6)
        .merchant("Author")
        .merchant("Publisher")
        .capped_customer("Ada", "20")
        .build()
}

#[test]
fn wallets_consent_charges_refunds_payouts_and_the_fee_report() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let w = world(&server);

    // Top-ups: a success records the processor's fee (2.9% + 30¢); declines say why, move nothing.
    let (status, t) = w.top_up(&server, "Ada", "4242424242424242", "10");
    assert_eq!(status, 201, "{t}");
    assert_eq!(t["processor_fee"], "0.590000");
    assert_eq!(w.wallet(&server, "Ada"), "10.000000");
    for (card, code) in [
        ("4000000000000002", "card_declined"),
        ("4000000000009995", "insufficient_funds"),
        ("4100000000000019", "suspected_fraud"),
    ] {
        let (status, e) = w.top_up(&server, "Ada", card, "5");
        assert_eq!(
            (
                status,
                e["error"]["type"].as_str(),
                e["error"]["code"].as_str()
            ),
            (402, Some("card_error"), Some(code))
        );
    }
    assert_eq!(w.wallet(&server, "Ada"), "10.000000");

    // Fee plan: 2.5% rounded half-even plus 0.0001 fixed.
    server.with_key(&w.op).post_expect(
        &format!("/v1/merchants/{}/fee_plan", w.merchant("Author").id),
        json!({"asset": "USD", "percent_bps": 250, "fixed": "0.0001", "rounding": "half_even"}),
        200,
    );

    // Without consent a merchant's charge only asks the customer; no money moves.
    let pending = server.with_key(&w.merchant("Author").key).post_expect(
        "/v1/charges",
        json!({"customer": w.customer("Ada").id, "amount": "0.10", "asset": "USD", "description": "article 1", "resource_id": "art-1"}),
        201,
    );
    assert_eq!(pending["status"], "requires_confirmation");
    assert_eq!(w.wallet(&server, "Ada"), "10.000000");
    // The merchant cannot confirm for the customer; the customer can.
    let confirm = format!("/v1/charges/{}/confirm", pending["id"].as_str().unwrap());
    let (status, _) = server
        .with_key(&w.merchant("Author").key)
        .post_empty(&confirm);
    assert_eq!(status, 404);
    let confirmed = server
        .with_key(&w.customer("Ada").token)
        .expect("POST", &confirm, None, 200);
    assert_eq!(confirmed["status"], "succeeded");
    // 0.10: fee 0.0025 + 0.0001 = 0.0026, merchant nets 0.0974.
    assert_eq!(
        (
            confirmed["platform_fee"].as_str(),
            confirmed["merchant_net"].as_str()
        ),
        (Some("0.002600"), Some("0.097400"))
    );
    assert_eq!(w.wallet(&server, "Ada"), "9.900000");

    // An allowance: at most 0.05 a charge and 0.12 a day.
    let allowance = server.with_key(&w.customer("Ada").token).post_expect(
        &format!("/v1/customers/{}/allowances", w.customer("Ada").id),
        json!({"merchant": w.merchant("Author").id, "asset": "USD", "max_per_charge": "0.05", "max_per_period": "0.12", "period": "day"}),
        201,
    );
    // Only the customer's own token grants allowances.
    let (status, _) = server.with_key(&w.merchant("Author").key).post(
        &format!("/v1/customers/{}/allowances", w.customer("Ada").id),
        json!({"merchant": w.merchant("Author").id, "asset": "USD", "max_per_charge": "1", "max_per_period": "1", "period": "day"}),
    );
    assert_eq!(status, 403);
    // Revenue shares: author 70%, publisher 30% of the net; flooring leaves a rounding remainder.
    let shared = server.with_key(&w.merchant("Author").key).post_expect(
        "/v1/charges",
        json!({"customer": w.customer("Ada").id, "amount": "0.000011", "asset": "USD", "description": "a paragraph",
                    "shares": [{"merchant": w.merchant("Author").id, "bps": 7000}, {"merchant": w.merchant("Publisher").id, "bps": 3000}]}),
        201,
    );
    assert_eq!(shared["status"], "succeeded");
    let parts: u128 = ["platform_fee", "rounding"]
        .iter()
        .map(|k| minor(&shared[k]))
        .sum::<u128>()
        + shared["payees"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| minor(&p["amount"]))
            .sum::<u128>();
    assert_eq!(
        parts, 11,
        "every part of the split adds up to the charge: {shared}"
    );
    // A share naming no merchant is 404 on that share, and charges nothing.
    let before = w.wallet(&server, "Ada");
    let (status, e) = server.with_key(&w.merchant("Author").key).post(
        "/v1/charges",
        json!({"customer": w.customer("Ada").id, "amount": "0.000011", "asset": "USD",
                    "shares": [{"merchant": w.merchant("Author").id, "bps": 7000},
                               {"merchant": "mer_aaaaaaaaaaaaaaaaaaaaaaaaaa", "bps": 3000}]}),
    );
    assert_eq!(
        (status, e["error"]["param"].as_str()),
        (404, Some("shares.1.merchant")),
        "{e}"
    );
    assert_eq!(w.wallet(&server, "Ada"), before);
    for amount in ["0.05", "0.05"] {
        let c = server.with_key(&w.merchant("Author").key).post_expect(
            "/v1/charges",
            json!({"customer": w.customer("Ada").id, "amount": amount, "asset": "USD"}),
            201,
        );
        assert_eq!(c["status"], "succeeded");
    }
    // Over the per-charge maximum, and over the day's budget: refused, nothing moves.
    let before = w.wallet(&server, "Ada");
    assert_eq!(
        server.with_key(&w.merchant("Author").key).error_code(
            "POST",
            "/v1/charges",
            json!({"customer": w.customer("Ada").id, "amount": "0.06", "asset": "USD"})
        ),
        (422, "allowance_exceeded".into())
    );
    assert_eq!(
        server.with_key(&w.merchant("Author").key).error_code(
            "POST",
            "/v1/charges",
            json!({"customer": w.customer("Ada").id, "amount": "0.03", "asset": "USD"})
        ),
        (422, "allowance_exceeded".into())
    );
    assert_eq!(w.wallet(&server, "Ada"), before);
    // Revoked: the merchant is back to asking.
    server.with_key(&w.customer("Ada").token).expect(
        "POST",
        &format!(
            "/v1/allowances/{}/revoke",
            allowance["id"].as_str().unwrap()
        ),
        None,
        200,
    );
    let asked = server.with_key(&w.merchant("Author").key).post_expect(
        "/v1/charges",
        json!({"customer": w.customer("Ada").id, "amount": "0.01", "asset": "USD"}),
        201,
    );
    assert_eq!(asked["status"], "requires_confirmation");

    // A tip, with a message, through the same fee plan.
    let tip = server.with_key(&w.customer("Ada").token).post_expect(
        "/v1/tips",
        json!({"merchant": w.merchant("Author").id, "amount": "1", "asset": "USD", "message": "thanks!"}),
        201,
    );
    assert_eq!(
        (
            tip["type"].as_str(),
            tip["message"].as_str(),
            tip["platform_fee"].as_str()
        ),
        (Some("tip"), Some("thanks!"), Some("0.025100"))
    );
    // The monthly cap (20) across all merchants: with money enough in the wallet, a 19 tip is
    // over what is left of the cap.
    let (status, _) = w.top_up(&server, "Ada", "4242424242424242", "15");
    assert_eq!(status, 201);
    assert_eq!(
        server.with_key(&w.customer("Ada").token).error_code(
            "POST",
            "/v1/tips",
            json!({"merchant": w.merchant("Publisher").id, "amount": "19", "asset": "USD"})
        ),
        (422, "monthly_cap_exceeded".into())
    );

    // Refunds: partial, then the rest; never more than was charged; fees reversed pro rata.
    let refunds = format!("/v1/charges/{}/refunds", confirmed["id"].as_str().unwrap());
    let r1 = server.with_key(&w.merchant("Author").key).post_expect(
        &refunds,
        json!({"amount": "0.04"}),
        201,
    );
    assert_eq!(r1["amount"], "0.040000");
    assert_eq!(
        server.with_key(&w.merchant("Author").key).error_code(
            "POST",
            &refunds,
            json!({"amount": "0.07"})
        ),
        (422, "refund_exceeds_charge".into())
    );
    server
        .with_key(&w.merchant("Author").key)
        .post_expect(&refunds, json!({}), 201);
    let refunded = server.with_key(&w.customer("Ada").token).get_ok(&format!(
        "/v1/charges/{}",
        confirmed["id"].as_str().unwrap()
    ));
    assert_eq!(refunded["amount_refunded"], "0.100000");
    let returned: u128 = refunded["refunds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| minor(&r["platform_fee_returned"]))
        .sum();
    assert_eq!(
        returned, 2600,
        "a full refund returns the whole platform fee"
    );
    assert_eq!(
        server.with_key(&w.merchant("Author").key).error_code(
            "POST",
            &refunds,
            json!({"amount": "0.000001"})
        ),
        (422, "refund_exceeds_charge".into())
    );

    // Payouts: a failing bank account returns the funds and says why; a good one pays.
    let earned = w.merchant_balance(&server, &w.merchant("Author").id);
    // Regression: threshold "0" is documented as "never by threshold" but was refused as
    // zero_amount; it is accepted and means no threshold.
    let settings = server.with_key(&w.merchant("Author").key).post_expect(
        &format!("/v1/merchants/{}/payout_settings", w.merchant("Author").id),
        json!({"asset": "USD", "bank_account": "000111111116", "threshold": "0"}),
        200,
    );
    assert!(
        settings["threshold"].is_null() || settings["threshold"] == "0.000000",
        "{settings}"
    );
    let failed = server.with_key(&w.merchant("Author").key).post_expect(
        &format!("/v1/merchants/{}/payouts", w.merchant("Author").id),
        json!({}),
        201,
    );
    assert_eq!(
        (failed["status"].as_str(), failed["failure_code"].as_str()),
        (Some("failed"), Some("no_account"))
    );
    assert_eq!(
        w.merchant_balance(&server, &w.merchant("Author").id),
        earned
    );
    server.with_key(&w.merchant("Author").key).post_expect(
        &format!("/v1/merchants/{}/payout_settings", w.merchant("Author").id),
        json!({"asset": "USD", "bank_account": "000123456789", "reserve_bps": 1000}),
        200,
    );
    let paid = server.with_key(&w.merchant("Author").key).post_expect(
        &format!("/v1/merchants/{}/payouts", w.merchant("Author").id),
        json!({}),
        201,
    );
    assert_eq!(paid["status"], "paid");
    assert_eq!(
        minor(&paid["amount"]),
        minor(&Value::String(earned.clone())) * 9 / 10,
        "10% reserve held back"
    );
    assert_eq!(
        w.merchant_balance(&server, &w.merchant("Author").id),
        "0.000000"
    );
    // Paid out: refunding the tip now finds the merchant's balance short.
    let tip_refunds = format!("/v1/charges/{}/refunds", tip["id"].as_str().unwrap());
    assert_eq!(
        server
            .with_key(&w.merchant("Author").key)
            .error_code("POST", &tip_refunds, json!({})),
        (422, "merchant_balance_insufficient".into())
    );

    // Tenant isolation: another merchant cannot see the charge or the customer.
    let other = server
        .with_key(&w.op)
        .post_expect("/v1/merchants", json!({"name": "Other"}), 201);
    let other_key = server.with_key(&w.op).post_expect(
        "/v1/api_keys",
        json!({"scope": "merchant", "merchant": other["id"]}),
        201,
    );
    let other_key = other_key["secret"].as_str().unwrap();
    for path in [
        format!("/v1/charges/{}", tip["id"].as_str().unwrap()),
        format!("/v1/customers/{}", w.customer("Ada").id),
    ] {
        let (status, _) = server.with_key(other_key).get(&path);
        assert_eq!(status, 404, "{path}");
    }
    assert_eq!(
        server.with_key(other_key).error_code(
            "POST",
            "/v1/charges",
            json!({"customer": w.customer("Ada").id, "amount": "0.01", "asset": "USD"})
        ),
        (404, "resource_missing".into())
    );
    // A customer token cannot use the operator/merchant endpoints.
    let (status, _) = server
        .with_key(&w.customer("Ada").token)
        .get("/v1/accounts");
    assert_eq!(status, 403);

    // The fee report agrees with what was booked: 4 charges and a tip succeeded.
    let report = server.with_key(&w.op).get_ok(&format!(
        "/v1/reports/fees?asset=USD&merchant={}",
        w.merchant("Author").id
    ));
    assert_eq!(report["payments"], 5, "{report}");
    assert_eq!(report["gross_volume"], "1.200011");
    let platform = server.with_key(&w.op).get_ok("/v1/reports/fees?asset=USD");
    assert_eq!(
        (
            platform["processor_charges"].as_u64(),
            platform["processor_fees_paid"].as_str()
        ),
        (Some(2), Some("1.325000"))
    );
    // As five card charges: 5 × 0.30 plus 2.9% of each, rounded half-up per charge:
    // 0.0029 (0.10) + 0 (0.000011) + 0.00145 × 2 (0.05 each) + 0.029 (1) = 1.5348.
    assert_eq!(platform["processor_fees_if_each_card"], "1.534800");
    let (status, csv, _) =
        server
            .with_key(&w.op)
            .raw("GET", "/v1/reports/fees?asset=USD&format=csv", None);
    assert_eq!(status, 200);
    assert!(
        csv.lines().count() == 2 && csv.contains("platform"),
        "{csv}"
    );
    server.stop();
}

/// A 10% fee plan (half-even rounding) for the author.
fn ten_percent_fee(server: &Server, w: &World) {
    server.with_key(&w.op).post_expect(
        &format!("/v1/merchants/{}/fee_plan", w.merchant("Author").id),
        json!({"asset": "USD", "percent_bps": 1000, "rounding": "half_even"}),
        200,
    );
}

/// Minor units of a decimal amount with 6 places.
fn minor(v: &Value) -> u128 {
    let text = v.as_str().unwrap_or("0");
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    whole.parse::<u128>().unwrap() * 1_000_000 + format!("{frac:0<6}").parse::<u128>().unwrap()
}

#[test]
fn sixty_four_concurrent_charges_race_for_the_last_cents_and_never_overdraw() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let w = world(&server);
    let (status, _) = w.top_up(&server, "Ada", "4242424242424242", "0.40");
    assert_eq!(status, 201);
    // 0.40 buys exactly 40 charges of 0.01; 64 race for them.
    let results: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..64)
            .map(|_| {
                scope.spawn(|| {
                    let (status, _) = server.with_key(&w.customer("Ada").token).post(
                        "/v1/charges",
                        json!({"merchant": w.merchant("Author").id, "amount": "0.01", "asset": "USD"}),
                    );
                    status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let succeeded = results.iter().filter(|s| **s == 201).count();
    let refused = results.iter().filter(|s| **s == 422).count();
    assert_eq!((succeeded, refused), (40, 24), "{results:?}");
    assert_eq!(w.wallet(&server, "Ada"), "0.000000");
    assert_eq!(
        w.merchant_balance(&server, &w.merchant("Author").id),
        "0.400000"
    );
    server.stop();
}

fn tab_charge(server: &Server, w: &World, amount: &str) -> (u16, String) {
    server.with_key(&w.customer("Ada").token).error_code(
        "POST",
        "/v1/charges",
        json!({"merchant": w.merchant("Author").id, "amount": amount, "asset": "USD", "source": "tab"}),
    )
}

#[test]
fn tabs_accrue_to_their_limit_settle_at_threshold_and_period_end_and_recover_from_declines() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--test-clock"]);
    let w = world(&server);
    // A tab settled by a card that will be declined, limit 3, threshold 2, monthly.
    let declining = w.card(&server, "Ada", "4000000000000002");
    let tab = server.with_key(&w.customer("Ada").token).post_expect(
        &format!("/v1/customers/{}/tabs", w.customer("Ada").id),
        json!({"asset": "USD", "limit": "3", "settlement_threshold": "2", "period": "month", "payment_method": declining}),
        201,
    );
    let tab_path = format!("/v1/tabs/{}", tab["id"].as_str().unwrap());
    // Only the customer opens a tab.
    let (status, _) = server.with_key(&w.merchant("Author").key).post(
        &format!("/v1/customers/{}/tabs", w.customer("Ada").id),
        json!({"asset": "USD", "limit": "3", "settlement_threshold": "2", "period": "month", "payment_method": declining}),
    );
    assert_eq!(status, 403);

    // Charges accrue on the tab: nothing is charged to a card yet.
    assert_eq!(tab_charge(&server, &w, "1.5").0, 201);
    let t = server.with_key(&w.customer("Ada").token).get_ok(&tab_path);
    assert_eq!(
        (t["owed"].as_str(), t["status"].as_str()),
        (Some("1.500000"), Some("open"))
    );
    // Over the limit: refused by the ledger, nothing accrues.
    assert_eq!(
        tab_charge(&server, &w, "1.6"),
        (422, "tab_limit_exceeded".into())
    );
    // Reaching the threshold triggers ONE settlement; its card is declined: the tab freezes.
    assert_eq!(tab_charge(&server, &w, "0.5").0, 201);
    let t =
        server
            .with_key(&w.customer("Ada").token)
            .poll_until(&tab_path, "the tab frozen", |t| t["status"] == "frozen");
    assert_eq!(t["owed"], "2.000000");
    assert_eq!(t["settlements"][0]["failure_code"], "card_declined");
    // Frozen: charges are refused until it is paid.
    assert_eq!(tab_charge(&server, &w, "0.01"), (422, "tab_frozen".into()));
    // An hour later the retry runs (same card, declined again): still frozen, two attempts.
    let clock = w.advance(&server, 3601);
    assert!(clock["jobs_run"].as_u64().unwrap() >= 1, "{clock}");
    let t = server.with_key(&w.customer("Ada").token).get_ok(&tab_path);
    assert_eq!(
        (
            t["status"].as_str(),
            t["settlements"].as_array().unwrap().len()
        ),
        (Some("frozen"), 2)
    );
    // A working card: settled at once, unfrozen, the processor fee recorded.
    let good = w.card(&server, "Ada", "4242424242424242");
    let t = server.with_key(&w.customer("Ada").token).post_expect(
        &format!("{tab_path}/payment_method"),
        json!({"payment_method": good}),
        200,
    );
    assert_eq!(
        (t["status"].as_str(), t["owed"].as_str()),
        (Some("open"), Some("0.000000"))
    );
    let paid = &t["settlements"][2];
    assert_eq!(
        (
            paid["status"].as_str(),
            paid["amount"].as_str(),
            paid["processor_fee"].as_str()
        ),
        (Some("succeeded"), Some("2.000000"), Some("0.358000"))
    );
    // The merchant was paid at charge time; the settlement only paid the tab back.
    assert_eq!(
        w.merchant_balance(&server, &w.merchant("Author").id),
        "2.000000"
    );
    // At the end of the month, what accrued since is settled as one charge.
    assert_eq!(tab_charge(&server, &w, "0.25").0, 201);
    w.advance(&server, 32 * 86_400);
    let t = server.with_key(&w.customer("Ada").token).get_ok(&tab_path);
    assert_eq!(t["owed"], "0.000000", "{t}");
    let last = t["settlements"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["trigger"].as_str(), last["amount"].as_str()),
        (Some("period_end"), Some("0.250000"))
    );
    // A daily payout schedule pays the merchant's earnings at the next day's start.
    server.with_key(&w.merchant("Author").key).post_expect(
        &format!("/v1/merchants/{}/payout_settings", w.merchant("Author").id),
        json!({"asset": "USD", "bank_account": "000123456789", "schedule": "daily"}),
        200,
    );
    assert_eq!(
        w.merchant_balance(&server, &w.merchant("Author").id),
        "2.250000"
    );
    w.advance(&server, 2 * 86_400);
    assert_eq!(
        w.merchant_balance(&server, &w.merchant("Author").id),
        "0.000000"
    );
    let payouts = server.with_key(&w.merchant("Author").key).get_ok(&format!(
        "/v1/merchants/{}/payouts",
        w.merchant("Author").id
    ));
    assert_eq!(payouts["data"][0]["trigger"], "schedule", "{payouts}");
    // A restart keeps the tab, its state and its schedule.
    server.stop();
    let server = Server::start(dir.path(), &["--test-clock"]);
    let t = server.with_key(&w.customer("Ada").token).get_ok(&tab_path);
    assert_eq!(
        (
            t["status"].as_str(),
            t["settlements"].as_array().unwrap().len()
        ),
        (Some("open"), 4)
    );
    server.stop();
}

#[test]
fn a_disputed_top_up_takes_the_unspent_wallet_then_debits_the_merchants_it_paid() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let w = world(&server);
    let (status, topup) = w.top_up(&server, "Ada", "4242424242424242", "10");
    assert_eq!(status, 201);
    ten_percent_fee(&server, &w);
    let charge = |merchant: &str, amount: &str| {
        server.with_key(&w.customer("Ada").token).post_expect(
            "/v1/charges",
            json!({"merchant": merchant, "amount": amount, "asset": "USD"}),
            201,
        )
    };
    let older = charge(&w.merchant("Author").id, "3"); // the author nets 2.7, the platform 0.3
    let newer = charge(&w.merchant("Publisher").id, "2"); // no fee plan: the publisher nets 2
                                                          // The author has already been paid out: its part of a chargeback becomes its debt.
    server.with_key(&w.merchant("Author").key).post_expect(
        &format!("/v1/merchants/{}/payout_settings", w.merchant("Author").id),
        json!({"asset": "USD", "bank_account": "000123456789"}),
        200,
    );
    server.with_key(&w.merchant("Author").key).post_expect(
        &format!("/v1/merchants/{}/payouts", w.merchant("Author").id),
        json!({}),
        201,
    );

    let dispute = server.with_key(&w.op).post_expect(
        "/v1/disputes",
        json!({"topup": topup["id"], "reason": "fraudulent"}),
        201,
    );
    // 5 was still in the wallet; the other 5 reverses the newest charge (2), then 3 of the older.
    assert_eq!(
        (dispute["amount"].as_str(), dispute["from_wallet"].as_str()),
        (Some("10.000000"), Some("5.000000"))
    );
    let reversed: Vec<(&str, &str)> = dispute["charges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].as_str().unwrap(), c["amount"].as_str().unwrap()))
        .collect();
    assert_eq!(
        reversed,
        [
            (newer["id"].as_str().unwrap(), "2.000000"),
            (older["id"].as_str().unwrap(), "3.000000")
        ]
    );
    let debited: Vec<(&str, &str)> = dispute["merchants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].as_str().unwrap(), c["amount"].as_str().unwrap()))
        .collect();
    assert_eq!(
        debited,
        [
            (w.merchant("Publisher").id.as_str(), "2.000000"),
            (w.merchant("Author").id.as_str(), "2.700000")
        ]
    );
    assert_eq!(w.wallet(&server, "Ada"), "0.000000");
    assert_eq!(
        w.merchant_balance(&server, &w.merchant("Publisher").id),
        "0.000000"
    );
    // Once only: the same top-up again answers with the same dispute.
    let (status, again) = server
        .with_key(&w.op)
        .post("/v1/disputes", json!({"topup": topup["id"]}));
    assert_eq!((status, &again["id"]), (200, &dispute["id"]));
    // A disputed charge cannot also be refunded.
    let refunds = format!("/v1/charges/{}/refunds", older["id"].as_str().unwrap());
    assert_eq!(
        server
            .with_key(&w.merchant("Author").key)
            .error_code("POST", &refunds, json!({})),
        (422, "refund_exceeds_charge".into())
    );
    // Only the operator (standing in for the processor) raises disputes.
    let (status, _) = server
        .with_key(&w.merchant("Author").key)
        .post("/v1/disputes", json!({"topup": topup["id"]}));
    assert_eq!(status, 403);
    server.stop();
}

/// Regression (issue 16, item 9): a merchant paid out before a chargeback debited it kept its
/// debt forever, and its next earnings were paid out in full. Now the balance shows the debt,
/// and the next payout pays it down first (earnings → debt account, in the payout's chain),
/// sending only what is left; the ledger's debt account agrees with the balance throughout.
#[test]
fn a_chargeback_debt_is_recovered_from_the_next_payout_before_anything_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let w = world(&server);
    ten_percent_fee(&server, &w);
    let author = w.merchant("Author");
    let balance_path = format!("/v1/merchants/{}/balance?asset=USD", author.id);
    let payouts = format!("/v1/merchants/{}/payouts", author.id);
    let balance = || {
        let b = server.with_key(&author.key).get_ok(&balance_path);
        (
            minor(&b["available"]),
            minor(&b["debt"]),
            minor(&b["payable"]),
        )
    };
    // What the ledger's merchant debt accounts (code 202) say is owed, summed.
    let ledger_debt = || {
        let summary = server.with_key(&w.op).get_ok("/v1/ledger/summary");
        assert_eq!(summary["assets"][0]["balanced"], true, "{summary}");
        let net = summary["assets"][0]["by_code"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["code"] == 202)
            .map_or("0".to_string(), |c| {
                c["net_posted"].as_str().unwrap().to_string()
            });
        minor(&json!(net.trim_start_matches('-')))
    };
    let charge = |amount: &str| {
        server.with_key(&w.customer("Ada").token).post_expect(
            "/v1/charges",
            json!({"merchant": author.id, "amount": amount, "asset": "USD"}),
            201,
        )
    };
    server.with_key(&author.key).post_expect(
        &format!("/v1/merchants/{}/payout_settings", author.id),
        json!({"asset": "USD", "bank_account": "000123456789"}),
        200,
    );

    // The author earns 2.7 (3 less the 10% fee) and is paid out.
    let (status, topup) = w.top_up(&server, "Ada", "4242424242424242", "10");
    assert_eq!(status, 201, "{topup}");
    charge("3");
    let first = server
        .with_key(&author.key)
        .post_expect(&payouts, json!({}), 201);
    assert_eq!(
        (first["amount"].as_str(), first["debt_recovered"].as_str()),
        (Some("2.700000"), Some("0.000000"))
    );
    assert_eq!(balance(), (0, 0, 0));

    // The top-up is charged back: 7 from the wallet, 3 from the charge; the author's 2.7 part
    // finds no earnings, so the author owes it.
    let dispute =
        server
            .with_key(&w.op)
            .post_expect("/v1/disputes", json!({"topup": topup["id"]}), 201);
    assert_eq!(dispute["merchants"][0]["amount"], "2.700000", "{dispute}");
    assert_eq!(balance(), (0, 2_700_000, 0));
    assert_eq!(ledger_debt(), 2_700_000);

    // New earnings of 1.8 do not cover the debt: nothing is paid out, nothing moves.
    let (status, topup) = w.top_up(&server, "Ada", "4242424242424242", "10");
    assert_eq!(status, 201, "{topup}");
    charge("2");
    assert_eq!(balance(), (1_800_000, 2_700_000, 0));
    let (status, refused) = server.with_key(&author.key).post(&payouts, json!({}));
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (422, Some("insufficient_balance")),
        "{refused}"
    );
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("debt of 2.700000"), "{message}");
    assert_eq!(balance(), (1_800_000, 2_700_000, 0));
    assert_eq!(ledger_debt(), 2_700_000);

    // Another 4.5 earned: 6.3 in all. The payout pays the 2.7 debt first and sends 3.6.
    charge("5");
    assert_eq!(balance(), (6_300_000, 2_700_000, 3_600_000));
    let second = server
        .with_key(&author.key)
        .post_expect(&payouts, json!({}), 201);
    assert_eq!(
        (
            second["status"].as_str(),
            second["amount"].as_str(),
            second["debt_recovered"].as_str()
        ),
        (Some("paid"), Some("3.600000"), Some("2.700000")),
        "{second}"
    );
    assert_eq!(balance(), (0, 0, 0));
    assert_eq!(ledger_debt(), 0);
    // Money is conserved: what left for the bank (payout clearing, code 304) is what the
    // author was paid, 2.7 + 3.6, not the 2.7 + 6.3 it was paid before the fix.
    let summary = server.with_key(&w.op).get_ok("/v1/ledger/summary");
    let clearing = summary["assets"][0]["by_code"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["code"] == 304)
        .unwrap()["net_posted"]
        .clone();
    assert_eq!(minor(&clearing), 6_300_000, "{summary}");
    server.stop();
}

/// Regression (issue 16, API completeness): a payment method's token was derived from the card
/// number alone, so two customers who added the same card got the same token, telling whoever
/// saw both that they share a card. Tokens are now per customer (keyed by the platform's
/// secret and the customer): another customer gets another token, while the same customer
/// adding the card again (a retry with its Idempotency-Key, or later, or after a restart) gets
/// the one it has, stored once.
#[test]
fn two_customers_with_the_same_card_get_unlinkable_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let w = World::builder(&server)
        .asset("USD", 6)
        .merchant("Shop")
        .customer("Ada")
        .customer("Bob")
        .build();
    let add = |server: &Server, name: &str, key: Option<&str>| {
        let c = w.customer(name);
        let pm = server.with_key(&c.token).idempotency_key(key).post_expect(
            &format!("/v1/customers/{}/payment_methods", c.id),
            json!({"card_number": "4242 4242 4242 4242"}),
            201,
        );
        (pm["token"].as_str().unwrap().to_string(), pm)
    };
    let (ada, shown) = add(&server, "Ada", Some("card-1"));
    let (bob, _) = add(&server, "Bob", Some("card-1"));
    assert_ne!(ada, bob, "the same card, two customers: two tokens");
    // Nothing in a token gives the number away; the brand and last four are shown as before.
    assert!(!ada.contains("4242424242424242"), "{ada}");
    assert_eq!(
        (shown["brand"].as_str(), shown["last4"].as_str()),
        (Some("visa"), Some("4242"))
    );
    // A retry with the same Idempotency-Key, and the card added again without one, find it.
    assert_eq!(add(&server, "Ada", Some("card-1")).0, ada);
    assert_eq!(add(&server, "Ada", None).0, ada);
    // The key behind the tokens survives a restart: the same customer, the same token.
    server.stop();
    let server = Server::start(dir.path(), &[]);
    assert_eq!(add(&server, "Ada", None).0, ada);
    assert_eq!(add(&server, "Bob", None).0, bob);
    let customer = server
        .with_key(&w.customer("Ada").token)
        .get_ok(&format!("/v1/customers/{}", w.customer("Ada").id));
    assert_eq!(
        customer["payment_methods"].as_array().unwrap().len(),
        1,
        "{customer}"
    );
    // Both tokens charge the card.
    for (name, token) in [("Ada", &ada), ("Bob", &bob)] {
        let (status, topup) = w.top_up_with(&server, name, token, "5");
        assert_eq!(status, 201, "{name}: {topup}");
    }
    server.stop();
}

#[test]
fn auto_top_up_refills_a_low_wallet_once_a_day_and_turns_off_on_a_decline() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--test-clock"]);
    let w = world(&server);
    let (status, _) = w.top_up(&server, "Ada", "4242424242424242", "1");
    assert_eq!(status, 201);
    let good = w.card(&server, "Ada", "4242424242424242");
    let auto = format!("/v1/customers/{}/auto_topup", w.customer("Ada").id);
    server.with_key(&w.customer("Ada").token).post_expect(
        &auto,
        json!({"asset": "USD", "threshold": "0.50", "amount": "5", "payment_method": good, "enabled": true}),
        200,
    );
    let pay = |amount: &str| {
        server.with_key(&w.customer("Ada").token).post_expect(
            "/v1/charges",
            json!({"merchant": w.merchant("Author").id, "amount": amount, "asset": "USD"}),
            201,
        );
    };
    let customer = server.with_key(&w.customer("Ada").token);
    let wallet_path = format!("/v1/customers/{}/wallets/USD", w.customer("Ada").id);
    let wait_wallet = |expected: &str| {
        customer.poll_until(&wallet_path, "the wallet topped up", |v| {
            v["available"] == expected
        });
    };
    // Below the threshold: one top-up of 5 follows in the background.
    pay("0.60");
    wait_wallet("5.400000");
    // Below it again the same day: no second top-up that day.
    pay("5.00");
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(w.wallet(&server, "Ada"), "0.400000");
    // The next day, the next charge below the threshold tops up again.
    w.advance(&server, 86_400);
    pay("0.10");
    wait_wallet("5.300000");
    // A declining card: the top-up fails, auto top-up turns itself off and says why.
    let declining = w.card(&server, "Ada", "4000000000000002");
    server.with_key(&w.customer("Ada").token).post_expect(
        &auto,
        json!({"asset": "USD", "threshold": "5.25", "amount": "5", "payment_method": declining, "enabled": true}),
        200,
    );
    w.advance(&server, 86_400);
    pay("0.10");
    let path = format!("/v1/customers/{}", w.customer("Ada").id);
    let c = customer.poll_until(&path, "auto top-up turned off after a decline", |c| {
        c["auto_topup"]["enabled"] == false
    });
    assert!(
        c["auto_topup"]["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("card_declined"),
        "{c}"
    );
    assert_eq!(w.wallet(&server, "Ada"), "5.200000");
    server.stop();
}

/// A charge's follow-up work (here: auto top-up) is a job written with the charge, durable when
/// the charge is: a SIGKILL the moment the charge is answered does not lose it. After the
/// restart the wallet is topped up, exactly once.
#[test]
fn a_charges_follow_up_survives_a_sigkill_right_after_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    let w = world(&server);
    let (status, _) = w.top_up(&server, "Ada", "4242424242424242", "1");
    assert_eq!(status, 201);
    let good = w.card(&server, "Ada", "4242424242424242");
    let token = w.customer("Ada").token.as_str();
    server.with_key(token).post_expect(
        &format!("/v1/customers/{}/auto_topup", w.customer("Ada").id),
        json!({"asset": "USD", "threshold": "0.50", "amount": "5", "payment_method": good, "enabled": true}),
        200,
    );
    server.with_key(token).post_expect(
        "/v1/charges",
        json!({"merchant": w.merchant("Author").id, "amount": "0.60", "asset": "USD"}),
        201,
    );
    // SAFETY: kill(2) on our own child's pid (reaped below).
    unsafe { libc::kill(server.child.id() as i32, libc::SIGKILL) };
    server.child.wait().unwrap();
    drop(server);
    let server = Server::start(dir.path(), &[]);
    let wallet = format!("/v1/customers/{}/wallets/USD", w.customer("Ada").id);
    server
        .with_key(token)
        .poll_until(&wallet, "the auto top-up after the restart", |v| {
            v["available"] == "5.400000"
        });
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(w.wallet(&server, "Ada"), "5.400000", "topped up once");
    server.stop();
}

#[test]
fn consent_and_retries_hold_under_review_cases() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let w = world(&server);
    // Only the customer's own token may charge the customer's card.
    let pm = w.card(&server, "Ada", "4242424242424242");
    let (status, _) = server.with_key(&w.merchant("Author").key).post(
        &format!("/v1/customers/{}/topups", w.customer("Ada").id),
        json!({"amount": "100", "asset": "USD", "payment_method": pm}),
    );
    assert_eq!(status, 403);
    let (status, _) = server.with_key(&w.merchant("Author").key).post(
        &format!("/v1/customers/{}/auto_topup", w.customer("Ada").id),
        json!({"asset": "USD", "threshold": "1", "amount": "100", "payment_method": pm, "enabled": true}),
    );
    assert_eq!(status, 403);
    // A charge confirmed while the wallet is short is refused; after a top-up, confirming
    // again books it (a new attempt, not the ledger's remembered refusal).
    let asked = server.with_key(&w.merchant("Author").key).post_expect(
        "/v1/charges",
        json!({"customer": w.customer("Ada").id, "amount": "1", "asset": "USD"}),
        201,
    );
    let confirm = format!("/v1/charges/{}/confirm", asked["id"].as_str().unwrap());
    assert_eq!(
        server
            .with_key(&w.customer("Ada").token)
            .error_code("POST", &confirm, json!({})),
        (422, "insufficient_funds".into())
    );
    let (status, _) = w.top_up(&server, "Ada", "4242424242424242", "5");
    assert_eq!(status, 201);
    let booked = server
        .with_key(&w.customer("Ada").token)
        .expect("POST", &confirm, None, 200);
    assert_eq!(booked["status"], "succeeded");
    assert_eq!(w.wallet(&server, "Ada"), "4.000000");
    // A refund retried with its Idempotency-Key refunds once; the key with another amount is 409.
    let refunds = format!("/v1/charges/{}/refunds", asked["id"].as_str().unwrap());
    let key = "refund-1";
    let (s1, r1) = server
        .with_key(&w.merchant("Author").key)
        .idempotency_key(key)
        .post(&refunds, json!({"amount": "0.25"}));
    let (s2, r2) = server
        .with_key(&w.merchant("Author").key)
        .idempotency_key(key)
        .post(&refunds, json!({"amount": "0.25"}));
    assert_eq!((s1, s2, &r1), (201, 201, &r2));
    let (s3, e) = server
        .with_key(&w.merchant("Author").key)
        .idempotency_key(key)
        .post(&refunds, json!({"amount": "0.30"}));
    assert_eq!(
        (s3, e["error"]["type"].as_str()),
        (409, Some("idempotency_error"))
    );
    assert_eq!(w.wallet(&server, "Ada"), "4.250000");
    // A payout retried with its key pays once.
    server.with_key(&w.merchant("Author").key).post_expect(
        &format!("/v1/merchants/{}/payout_settings", w.merchant("Author").id),
        json!({"asset": "USD", "bank_account": "000123456789"}),
        200,
    );
    let payouts = format!("/v1/merchants/{}/payouts", w.merchant("Author").id);
    let key = "payout-1";
    let (p1, a) = server
        .with_key(&w.merchant("Author").key)
        .idempotency_key(key)
        .post(&payouts, json!({"amount": "0.5"}));
    let (p2, b) = server
        .with_key(&w.merchant("Author").key)
        .idempotency_key(key)
        .post(&payouts, json!({"amount": "0.5"}));
    assert_eq!((p1, p2, &a["id"]), (201, 201, &b["id"]), "{a} {b}");
    assert_eq!(
        w.merchant_balance(&server, &w.merchant("Author").id),
        "0.250000"
    );
    server.stop();
}

/// A charge's receipt travels in the ledger's log with its money; the metadata store catches up
/// behind it. A SIGKILL while charges flow loses the store's latest commits: after a restart,
/// every charge that was answered is there with its receipt, a retry of any key (answered or
/// not) charges it at most once, and the books balance.
#[test]
fn charges_answered_before_a_sigkill_keep_their_receipts_and_charge_once() {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 60;
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    let w = world(&server);
    let (status, _) = w.top_up(&server, "Ada", "4242424242424242", "10.00");
    assert_eq!(status, 201);
    let body = |t: usize, i: usize| {
        json!({"merchant": w.merchant("Author").id, "amount": "0.01", "asset": "USD",
               "description": format!("item {t}-{i}"), "resource_id": format!("r{t}{i}")})
    };
    let key = |t: usize, i: usize| format!("crash-{t}-{i}");
    let answered = std::sync::Mutex::new(Vec::<(usize, usize, Value)>::new());
    let kill_after = THREADS * PER_THREAD / 3;
    let pid = server.child.id() as i32;
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let (server, answered, body, key) = (&server, &answered, &body, &key);
            let token = &w.customer("Ada").token;
            scope.spawn(move || {
                for i in 0..PER_THREAD {
                    let k = key(t, i);
                    let sent = server.with_key(token).idempotency_key(k.as_str()).try_send(
                        "POST",
                        "/v1/charges",
                        Some(body(t, i)),
                    );
                    let Some((status, charge)) = sent else {
                        return; // killed
                    };
                    assert_eq!(status, 201, "{charge}");
                    answered.lock().unwrap().push((t, i, charge));
                }
            });
        }
        // Kill while charges are in flight, bounded: the threads stop on their own.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while answered.lock().unwrap().len() < kill_after && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        // SAFETY: kill(2) on our own child's pid (reaped below).
        unsafe { libc::kill(pid, libc::SIGKILL) };
    });
    server.child.wait().unwrap();
    let answered = answered.into_inner().unwrap();
    assert!(answered.len() >= kill_after, "{} answered", answered.len());
    drop(server);

    let server = Server::start(dir.path(), &[]);
    let recovered = server
        .startup
        .iter()
        .find(|l| l.starts_with("recovered:"))
        .expect("recovery line");
    let notes: u64 = recovered
        .split(", ")
        .nth(1)
        .and_then(|p| p.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("note count");
    assert!(notes > 0, "the store lost nothing to re-apply: {recovered}");
    for (t, i, answer) in &answered {
        let id = answer["id"].as_str().unwrap();
        let charge = server
            .with_key(&w.customer("Ada").token)
            .get_ok(&format!("/v1/charges/{id}"));
        assert_eq!(charge["status"], "succeeded", "{charge}");
        assert_eq!(charge["description"], format!("item {t}-{i}"));
        assert_eq!(charge["amount"], "0.010000");
    }
    // Retry every key: an answered one replays its answer exactly (it was stored before it was
    // sent); the others are charged now (or rebuilt, if their chain committed before the
    // kill): each key charges exactly once.
    let mut retried = 0;
    for t in 0..THREADS {
        for i in 0..PER_THREAD {
            let k = key(t, i);
            let (status, charge) = server
                .with_key(&w.customer("Ada").token)
                .idempotency_key(k.as_str())
                .post("/v1/charges", body(t, i));
            assert_eq!(status, 201, "{charge}");
            assert_eq!(charge["status"], "succeeded", "{charge}");
            if let Some((_, _, answer)) = answered.iter().find(|(at, ai, _)| (*at, *ai) == (t, i)) {
                assert_eq!(&charge, answer, "the replay of an answered key");
            }
            retried += 1;
        }
    }
    // A key with another request is refused and charges nothing.
    let first = key(0, 0);
    let (status, e) = server
        .with_key(&w.customer("Ada").token)
        .idempotency_key(first.as_str())
        .post("/v1/charges", body(0, 1));
    assert_eq!(
        (status, e["error"]["type"].as_str()),
        (409, Some("idempotency_error")),
        "{e}"
    );
    let spent = retried as u128 * 10_000;
    assert_eq!(minor(&json!(w.wallet(&server, "Ada"))), 10_000_000 - spent);
    let summary = server.with_key(&w.op).get_ok("/v1/ledger/summary");
    assert_eq!(summary["assets"][0]["balanced"], true, "{summary}");
    server.stop();
}

/// A payout's reserve is a rolling one: held back for `reserve_days`, then returned to the
/// merchant's earnings once (the scheduler, moved by the test clock), and never for a payout
/// that failed (its return already gave the reserve back).
#[test]
fn a_payout_reserve_returns_to_the_earnings_after_its_days() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--test-clock"]);
    let w = world(&server);
    let (status, _) = w.top_up(&server, "Ada", "4242424242424242", "10");
    assert_eq!(status, 201);
    let (status, charge) = server.with_key(&w.customer("Ada").token).post(
        "/v1/charges",
        json!({"merchant": w.merchant("Author").id, "amount": "2", "asset": "USD"}),
    );
    assert_eq!(status, 201, "{charge}");
    let earned = minor(&json!(w.merchant_balance(&server, &w.merchant("Author").id)));
    assert!(earned > 0);
    let settings = format!("/v1/merchants/{}/payout_settings", w.merchant("Author").id);
    // Bad days are refused and name the field.
    for days in [0, 3651] {
        let (status, e) = server.with_key(&w.merchant("Author").key).post(
            &settings,
            json!({"asset": "USD", "bank_account": "000123456789", "reserve_bps": 1000, "reserve_days": days}),
        );
        assert_eq!(
            (status, e["error"]["param"].as_str()),
            (400, Some("reserve_days")),
            "{e}"
        );
    }
    // A failing bank account first: the payout fails and its reserve comes back at once.
    let s = server.with_key(&w.merchant("Author").key).post_expect(
        &settings,
        json!({"asset": "USD", "bank_account": "000111111116", "reserve_bps": 1000, "reserve_days": 2}),
        200,
    );
    assert_eq!(s["reserve_days"], 2);
    let payouts = format!("/v1/merchants/{}/payouts", w.merchant("Author").id);
    let failed = server
        .with_key(&w.merchant("Author").key)
        .post_expect(&payouts, json!({}), 201);
    assert_eq!(failed["status"], "failed");
    let balance_path = format!(
        "/v1/merchants/{}/balance?asset=USD",
        w.merchant("Author").id
    );
    let b = server.with_key(&w.op).get_ok(&balance_path);
    assert_eq!((minor(&b["available"]), minor(&b["reserved"])), (earned, 0));
    // Now a good account: 10% is held.
    server.with_key(&w.merchant("Author").key).post_expect(
        &settings,
        json!({"asset": "USD", "bank_account": "000123456789", "reserve_bps": 1000, "reserve_days": 2}),
        200,
    );
    let paid = server
        .with_key(&w.merchant("Author").key)
        .post_expect(&payouts, json!({}), 201);
    assert_eq!(paid["status"], "paid");
    let held = earned / 10;
    let b = server.with_key(&w.op).get_ok(&balance_path);
    assert_eq!((minor(&b["available"]), minor(&b["reserved"])), (0, held));
    // A day later it is still held.
    w.advance(&server, 86_400);
    let b = server.with_key(&w.op).get_ok(&balance_path);
    assert_eq!(minor(&b["reserved"]), held);
    // Past two days it returns to the earnings, once: the failed payout releases nothing.
    let clock = w.advance(&server, 86_401);
    assert!(clock["jobs_run"].as_u64().unwrap() >= 1, "{clock}");
    let b = server.with_key(&w.op).get_ok(&balance_path);
    assert_eq!((minor(&b["available"]), minor(&b["reserved"])), (held, 0));
    w.advance(&server, 86_400 * 30);
    let b = server.with_key(&w.op).get_ok(&balance_path);
    assert_eq!((minor(&b["available"]), minor(&b["reserved"])), (held, 0));
    let summary = server.with_key(&w.op).get_ok("/v1/ledger/summary");
    assert_eq!(summary["assets"][0]["balanced"], true, "{summary}");
    server.stop();
}

/// A payout's lifecycle: `pending` while the rail has not settled it, then `paid`, or `failed`
/// with its money (and reserve) back. The rail is asked again on a backoff (the test clock),
/// by a stored job: a transfer in transit is paid at the next ask, even across a SIGKILL; a
/// rail that stays unavailable fails the payout once the asks are used up.
#[test]
fn a_payout_stays_pending_until_the_rail_settles_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--test-clock"]);
    let w = world(&server);
    let author = w.merchant("Author");
    let (status, _) = w.top_up(&server, "Ada", "4242424242424242", "10");
    assert_eq!(status, 201);
    server.with_key(&w.customer("Ada").token).post_expect(
        "/v1/charges",
        json!({"merchant": author.id, "amount": "4", "asset": "USD"}),
        201,
    );
    let payouts = format!("/v1/merchants/{}/payouts", author.id);
    let available = |server: &Server| {
        let path = format!("/v1/merchants/{}/balance?asset=USD", author.id);
        minor(&server.with_key(&author.key).get_ok(&path)["available"])
    };
    let listed = |server: &Server, id: &Value| {
        let list = server.with_key(&author.key).get_ok(&payouts);
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| &p["id"] == id)
            .cloned()
            .unwrap()
    };
    let pay_out_to = |server: &Server, account: &str| {
        server.with_key(&author.key).post_expect(
            &format!("/v1/merchants/{}/payout_settings", author.id),
            json!({"asset": "USD", "bank_account": account, "reserve_bps": 1000}),
            200,
        );
        server
            .with_key(&author.key)
            .post_expect(&payouts, json!({"amount": "1"}), 201)
    };

    // In transit: pending, the money (1 and its 0.1 reserve) out of the earnings.
    let transit = pay_out_to(&server, "000888888883");
    assert_eq!(transit["status"], "pending", "{transit}");
    assert_eq!(available(&server), 2_900_000);
    w.advance(&server, 30);
    assert_eq!(listed(&server, &transit["id"])["status"], "pending");
    // A SIGKILL loses nothing: the stored job asks again after the restart, and the transfer
    // is paid at that ask, a minute on.
    let mut killed = server;
    killed.child.kill().unwrap();
    killed.child.wait().unwrap();
    drop(killed);
    let server = Server::start(dir.path(), &["--test-clock"]);
    assert_eq!(listed(&server, &transit["id"])["status"], "pending");
    w.advance(&server, 60);
    let paid = listed(&server, &transit["id"]);
    assert_eq!(
        (paid["status"].as_str(), paid["failure_code"].as_str()),
        (Some("paid"), None),
        "{paid}"
    );
    assert_eq!(available(&server), 2_900_000);

    // The rail unavailable: pending while it is asked again, a minute on, doubling to hourly;
    // once the asks are used up the payout fails and its money and reserve come back.
    let down = pay_out_to(&server, "000999999990");
    assert_eq!(down["status"], "pending", "{down}");
    assert_eq!(available(&server), 1_800_000);
    let mut asks = 1;
    while listed(&server, &down["id"])["status"] == "pending" {
        assert!(asks < 48, "still pending after {asks} asks");
        // An hour and a fifth covers any jittered delay.
        w.advance(&server, 4_320);
        asks += 1;
    }
    let failed = listed(&server, &down["id"]);
    assert_eq!(
        (failed["status"].as_str(), failed["failure_code"].as_str()),
        (Some("failed"), Some("rail_unavailable")),
        "{failed}"
    );
    assert_eq!(asks, 48, "the rail is asked 48 times in all");
    assert_eq!(available(&server), 2_900_000);
    let summary = server.with_key(&w.op).get_ok("/v1/ledger/summary");
    assert_eq!(summary["assets"][0]["balanced"], true, "{summary}");
    server.stop();
}

/// Escrow holds over HTTP: a task funded once and captured in milestones (the platform fee
/// taken at each capture), the rest released; a release by the worker; expiry that releases
/// or captures (the test clock); and every way to resolve a hold twice refused.
#[test]
fn escrow_holds_capture_in_milestones_release_and_expire_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--test-clock"]);
    let w = world(&server);
    let (status, _) = w.top_up(&server, "Ada", "4242424242424242", "10");
    assert_eq!(status, 201);
    ten_percent_fee(&server, &w);
    let token = w.customer("Ada").token.as_str();
    let hold = |body: Value, key: Option<&str>| {
        server
            .with_key(token)
            .idempotency_key(key)
            .post("/v1/holds", body)
    };
    let body = |amount: &str, expiry: &str| {
        json!({"merchant": w.merchant("Author").id, "amount": amount, "asset": "USD",
               "description": "logo design", "expires_in_seconds": 3600, "on_expiry": expiry})
    };
    let post = |path: &str, key: &str, body: Value, idem: Option<&str>| {
        server.with_key(key).idempotency_key(idem).post(path, body)
    };
    let code = |answer: &Value| answer["error"]["code"].as_str().unwrap_or("").to_string();

    // Funding holds the money in the wallet; a retry with the key is the same hold.
    let (status, a) = hold(body("6", "release"), Some("task-a"));
    assert_eq!(status, 201, "{a}");
    assert_eq!(
        (a["status"].as_str(), a["held"].as_str()),
        (Some("held"), Some("6.000000"))
    );
    assert_eq!(w.wallet(&server, "Ada"), "4.000000");
    assert_eq!(
        w.merchant_balance(&server, &w.merchant("Author").id),
        "0.000000"
    );
    let (status, again) = hold(body("6", "release"), Some("task-a"));
    assert_eq!((status, &again["id"]), (201, &a["id"]));
    let (status, reused) = hold(body("5", "release"), Some("task-a"));
    assert_eq!(
        (status, code(&reused)),
        (409, "idempotency_key_reused".into())
    );
    let id = a["id"].as_str().unwrap();
    let capture_path = format!("/v1/holds/{id}/capture");

    // Milestone 1: 2 captured, 10% to the platform, the rest stays held; a retry is a no-op.
    let (status, h) = post(&capture_path, token, json!({"amount": "2"}), Some("m1"));
    assert_eq!(status, 200, "{h}");
    assert_eq!(
        (h["held"].as_str(), h["captured"].as_str()),
        (Some("4.000000"), Some("2.000000"))
    );
    assert_eq!(h["captures"][0]["platform_fee"], "0.200000");
    assert_eq!(
        w.merchant_balance(&server, &w.merchant("Author").id),
        "1.800000"
    );
    let (status, h) = post(&capture_path, token, json!({"amount": "2"}), Some("m1"));
    assert_eq!((status, h["held"].as_str()), (200, Some("4.000000")));
    // Only the customer (or the operator) captures; never above what is held.
    let (status, _) = post(&capture_path, &w.merchant("Author").key, json!({}), None);
    assert_eq!(status, 403);
    let (status, e) = post(&capture_path, token, json!({"amount": "5"}), None);
    assert_eq!(
        (status, code(&e), e["error"]["param"].as_str()),
        (422, "amount_exceeds_hold".into(), Some("amount"))
    );
    // Milestone 2, the last: 1 captured, the other 3 go back to the wallet.
    let (status, h) = post(
        &capture_path,
        token,
        json!({"amount": "1", "final": true}),
        Some("m2"),
    );
    assert_eq!(status, 200, "{h}");
    assert_eq!(
        (
            h["status"].as_str(),
            h["held"].as_str(),
            h["captured"].as_str()
        ),
        (Some("captured"), Some("0.000000"), Some("3.000000"))
    );
    assert_eq!(w.wallet(&server, "Ada"), "7.000000");
    assert_eq!(
        w.merchant_balance(&server, &w.merchant("Author").id),
        "2.700000"
    );
    let (status, e) = post(&capture_path, token, json!({}), None);
    assert_eq!((status, code(&e)), (422, "hold_captured".into()));

    // The worker cancels: released, the money stays the customer's; nothing captures it later.
    let (_, b) = hold(body("2", "release"), None);
    let b_id = b["id"].as_str().unwrap();
    assert_eq!(w.wallet(&server, "Ada"), "5.000000");
    let (status, r) = post(
        &format!("/v1/holds/{b_id}/release"),
        &w.merchant("Author").key,
        json!({}),
        None,
    );
    assert_eq!(
        (status, r["status"].as_str()),
        (200, Some("released")),
        "{r}"
    );
    assert_eq!(w.wallet(&server, "Ada"), "7.000000");
    let (status, r) = post(
        &format!("/v1/holds/{b_id}/release"),
        &w.merchant("Author").key,
        json!({}),
        None,
    );
    assert_eq!(
        (status, r["status"].as_str()),
        (200, Some("released")),
        "a retry"
    );
    let (status, e) = post(&format!("/v1/holds/{b_id}/capture"), token, json!({}), None);
    assert_eq!((status, code(&e)), (422, "hold_released".into()));

    // Expiry (the test clock moves it): one hold releases, the other captures.
    let (_, c) = hold(body("1", "release"), None);
    let (_, d) = hold(body("1", "capture"), None);
    assert_eq!(w.wallet(&server, "Ada"), "5.000000");
    let clock = w.advance(&server, 3601);
    assert!(clock["jobs_run"].as_u64().unwrap() >= 2, "{clock}");
    let get = |id: &Value| {
        server
            .with_key(token)
            .get_ok(&format!("/v1/holds/{}", id.as_str().unwrap()))
    };
    assert_eq!(get(&c["id"])["status"], "expired");
    assert_eq!(get(&d["id"])["status"], "captured");
    assert_eq!(w.wallet(&server, "Ada"), "6.000000");
    assert_eq!(
        w.merchant_balance(&server, &w.merchant("Author").id),
        "3.600000"
    );
    let (status, e) = post(
        &format!("/v1/holds/{}/capture", c["id"].as_str().unwrap()),
        token,
        json!({}),
        None,
    );
    assert_eq!((status, code(&e)), (422, "hold_expired".into()));
    // The worker sees its holds; bad input names the field; a merchant key cannot fund one.
    server
        .with_key(&w.merchant("Author").key)
        .get_ok(&format!("/v1/holds/{id}"));
    let (status, e) = hold(body("100", "release"), Some("big"));
    assert_eq!(
        (status, code(&e), e["error"]["param"].as_str()),
        (422, "insufficient_funds".into(), Some("amount"))
    );
    // A refused funding is tried again by a retry with its key (refused again here: still
    // short), not replayed as a hold.
    let (status, e) = hold(body("100", "release"), Some("big"));
    assert_eq!((status, code(&e)), (422, "insufficient_funds".into()));
    let mut short = body("1", "release");
    short["expires_in_seconds"] = json!(10);
    let (status, e) = hold(short, None);
    assert_eq!(
        (status, e["error"]["param"].as_str()),
        (400, Some("expires_in_seconds"))
    );
    let (status, _) = server
        .with_key(&w.merchant("Author").key)
        .post("/v1/holds", body("1", "release"));
    assert_eq!(status, 403);
    let summary = server.with_key(&w.op).get_ok("/v1/ledger/summary");
    assert_eq!(summary["assets"][0]["balanced"], true, "{summary}");
    server.stop();
}

/// Crowdfunding over HTTP: an all-or-nothing campaign that reaches its goal is captured at the
/// deadline (fees taken then), one that does not is released; keep-what-you-raise pays at once.
/// Progress and each backer's proof are public; contributions after the deadline are refused.
#[test]
fn campaigns_capture_or_release_at_the_deadline_and_show_progress_publicly() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--test-clock"]);
    let w = world(&server);
    ten_percent_fee(&server, &w);
    let (status, _) = w.top_up(&server, "Ada", "4242424242424242", "10");
    assert_eq!(status, 201);
    // A second backer.
    let b = server.with_key(&w.merchant("Author").key).post_expect(
        "/v1/customers",
        json!({"name": "Bo"}),
        201,
    );
    let b_token = b["token"].as_str().unwrap().to_string();
    let b_id = b["id"].as_str().unwrap().to_string();
    let pm = server.with_key(&b_token).post_expect(
        &format!("/v1/customers/{b_id}/payment_methods"),
        json!({"card_number": "4242424242424242"}),
        201,
    );
    server.with_key(&b_token).post_expect(
        &format!("/v1/customers/{b_id}/topups"),
        json!({"amount": "10", "asset": "USD", "payment_method": pm["token"]}),
        201,
    );
    let b_wallet = || {
        server
            .with_key(&b_token)
            .get_ok(&format!("/v1/customers/{b_id}/wallets/USD"))["available"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let campaign = |goal: &str, mode: &str| {
        server.with_key(&w.merchant("Author").key).post_expect(
            "/v1/campaigns",
            json!({"name": "Album", "goal": goal, "asset": "USD", "ends_in_seconds": 3600, "mode": mode}),
            201,
        )
    };
    let public = |id: &Value| {
        let (status, v) = server
            .anonymous()
            .get(&format!("/v1/campaigns/{}", id.as_str().unwrap()));
        assert_eq!(status, 200, "{v}");
        v
    };
    let give = |campaign: &Value, token: &str, amount: &str, key: Option<&str>| {
        server.with_key(token).idempotency_key(key).post(
            &format!(
                "/v1/campaigns/{}/contributions",
                campaign["id"].as_str().unwrap()
            ),
            json!({"amount": amount}),
        )
    };

    let album = campaign("5", "all_or_nothing");
    let p = public(&album["id"]);
    assert_eq!(
        (
            p["status"].as_str(),
            p["raised"].as_str(),
            p["backers"].as_u64()
        ),
        (Some("active"), Some("0.000000"), Some(0))
    );
    let (status, a1) = give(&album, &w.customer("Ada").token, "2", Some("a1"));
    assert_eq!(
        (status, a1["status"].as_str(), a1["counted"].as_bool()),
        (201, Some("held"), Some(true)),
        "{a1}"
    );
    let (status, again) = give(&album, &w.customer("Ada").token, "2", Some("a1"));
    assert_eq!((status, &again["id"]), (201, &a1["id"]));
    assert_eq!(give(&album, &b_token, "2", None).0, 201);
    assert_eq!(give(&album, &w.customer("Ada").token, "1.5", None).0, 201);
    let p = public(&album["id"]);
    assert_eq!(
        (
            p["raised"].as_str(),
            p["backers"].as_u64(),
            p["goal_reached"].as_bool()
        ),
        (Some("5.500000"), Some(2), Some(true))
    );
    // Held, not yet the creator's.
    assert_eq!(w.wallet(&server, "Ada"), "6.500000");
    assert_eq!(
        w.merchant_balance(&server, &w.merchant("Author").id),
        "0.000000"
    );
    // A backer's proof, readable without a key.
    let proof = format!(
        "/v1/campaigns/{}/contributions/{}",
        album["id"].as_str().unwrap(),
        a1["id"].as_str().unwrap()
    );
    let (status, v) = server.anonymous().get(&proof);
    assert_eq!(
        (status, v["counted"].as_bool(), v["amount"].as_str()),
        (200, Some(true), Some("2.000000"))
    );

    let short = campaign("100", "all_or_nothing");
    assert_eq!(give(&short, &w.customer("Ada").token, "1", None).0, 201);
    let tips = campaign("100", "keep_what_you_raise");
    let (status, paid) = give(&tips, &b_token, "1", None);
    assert_eq!((status, paid["status"].as_str()), (201, Some("paid")));
    assert_eq!(
        w.merchant_balance(&server, &w.merchant("Author").id),
        "0.900000"
    );
    assert_eq!(w.wallet(&server, "Ada"), "5.500000");
    assert_eq!(b_wallet(), "7.000000");
    // Only a customer contributes; bad input names the field.
    let (status, _) = give(&album, &w.merchant("Author").key, "1", None);
    assert_eq!(status, 403);
    let (status, e) = server.with_key(&w.merchant("Author").key).post(
        "/v1/campaigns",
        json!({"name": "X", "goal": "1", "asset": "USD", "ends_in_seconds": 5, "mode": "all_or_nothing"}),
    );
    assert_eq!(
        (status, e["error"]["param"].as_str()),
        (400, Some("ends_in_seconds"))
    );

    // The deadline: the album is captured (10% fee), the short one released.
    let clock = w.advance(&server, 3601);
    assert!(clock["jobs_run"].as_u64().unwrap() >= 2, "{clock}");
    let p = public(&album["id"]);
    assert_eq!(
        (p["status"].as_str(), p["raised"].as_str()),
        (Some("succeeded"), Some("5.500000"))
    );
    let (_, v) = server.anonymous().get(&proof);
    assert_eq!(v["status"], "captured");
    assert_eq!(
        w.merchant_balance(&server, &w.merchant("Author").id),
        "5.850000"
    );
    assert_eq!(public(&short["id"])["status"], "failed");
    assert_eq!(
        w.wallet(&server, "Ada"),
        "6.500000",
        "the failed campaign's hold came back"
    );
    assert_eq!(
        public(&tips["id"])["status"],
        "failed",
        "goal missed, money kept"
    );
    let (status, e) = give(&album, &w.customer("Ada").token, "1", None);
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (422, Some("campaign_ended"))
    );
    let (status, _) = server.anonymous().get("/v1/campaigns/cmp_nothing");
    assert_eq!(status, 404);
    let summary = server.with_key(&w.op).get_ok("/v1/ledger/summary");
    assert_eq!(summary["assets"][0]["balanced"], true, "{summary}");
    server.stop();
}

/// Subscriptions and pledges over HTTP, with the test clock: a period charged up front and
/// then each month once, pause and resume, cancel at period end, a trial, and a pledge whose
/// failing charges retry with backoff, go past due, then cancel.
#[test]
fn subscriptions_renew_pause_cancel_and_retry_failed_periods_until_canceled() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--test-clock"]);
    let w = world(&server);
    ten_percent_fee(&server, &w);
    let (status, _) = w.top_up(&server, "Ada", "4242424242424242", "10");
    assert_eq!(status, 201);
    let token = w.customer("Ada").token.as_str();
    let sub = |id: &Value| {
        server
            .with_key(token)
            .get_ok(&format!("/v1/subscriptions/{}", id.as_str().unwrap()))
    };
    let act = |id: &Value, what: &str, body: Value| {
        server.with_key(token).post_expect(
            &format!("/v1/subscriptions/{}/{what}", id.as_str().unwrap()),
            body,
            200,
        )
    };
    let plan = server.with_key(&w.merchant("Author").key).post_expect(
        "/v1/plans",
        json!({"name": "Newsletter", "amount": "1", "asset": "USD", "interval": "month"}),
        201,
    );

    // Subscribing pays the first month; a retry with the key is the same subscription.
    let (status, s) = server
        .with_key(token)
        .idempotency_key("sub-1")
        .post("/v1/subscriptions", json!({"plan": plan["id"]}));
    assert_eq!((status, s["status"].as_str()), (201, Some("active")), "{s}");
    assert_eq!(s["charges"].as_array().unwrap().len(), 1);
    let (status, again) = server
        .with_key(token)
        .idempotency_key("sub-1")
        .post("/v1/subscriptions", json!({"plan": plan["id"]}));
    assert_eq!((status, &again), (201, &s));
    assert_eq!(w.wallet(&server, "Ada"), "9.000000");
    assert_eq!(
        w.merchant_balance(&server, &w.merchant("Author").id),
        "0.900000"
    );
    let first = s["charges"][0].as_str().unwrap();
    let receipt = server
        .with_key(token)
        .get_ok(&format!("/v1/charges/{first}"));
    assert_eq!(
        (receipt["status"].as_str(), receipt["platform_fee"].as_str()),
        (Some("succeeded"), Some("0.100000"))
    );
    // A month later: the second month, once.
    w.advance(&server, 31 * 86_400);
    w.advance(&server, 1);
    assert_eq!(sub(&s["id"])["charges"].as_array().unwrap().len(), 2);
    assert_eq!(w.wallet(&server, "Ada"), "8.000000");
    // Paused: nothing is charged; resumed: the due period is charged.
    assert_eq!(act(&s["id"], "pause", json!({}))["status"], "paused");
    w.advance(&server, 31 * 86_400);
    assert_eq!(w.wallet(&server, "Ada"), "8.000000");
    assert_eq!(act(&s["id"], "resume", json!({}))["status"], "active");
    w.advance(&server, 1);
    assert_eq!(w.wallet(&server, "Ada"), "7.000000");
    // Canceled at the period's end: no further charge.
    assert_eq!(
        act(&s["id"], "cancel", json!({}))["cancel_at_period_end"],
        true
    );
    w.advance(&server, 32 * 86_400);
    let ended = sub(&s["id"]);
    assert_eq!(
        (
            ended["status"].as_str(),
            ended["charges"].as_array().unwrap().len()
        ),
        (Some("canceled"), 3)
    );
    assert_eq!(w.wallet(&server, "Ada"), "7.000000");

    // A trial: nothing until it ends.
    let trial_plan = server.with_key(&w.merchant("Author").key).post_expect(
        "/v1/plans",
        json!({"name": "Pro", "amount": "0.5", "asset": "USD", "interval": "week", "trial_days": 3}),
        201,
    );
    let t = server.with_key(token).post_expect(
        "/v1/subscriptions",
        json!({"plan": trial_plan["id"]}),
        201,
    );
    assert_eq!(
        (t["status"].as_str(), t["charges"].as_array().unwrap().len()),
        (Some("trialing"), 0)
    );
    assert_eq!(w.wallet(&server, "Ada"), "7.000000");
    w.advance(&server, 3 * 86_400 + 1);
    assert_eq!(sub(&t["id"])["status"], "active");
    assert_eq!(w.wallet(&server, "Ada"), "6.500000");
    act(&t["id"], "cancel", json!({"at_period_end": false}));
    assert_eq!(sub(&t["id"])["status"], "canceled");

    // A pledge of 3 a week from a wallet of 6.5: two weeks paid, then it fails, retries
    // (1 h, 2 h, 4 h), goes past due, and is canceled after the fourth failure.
    let p = server.with_key(token).post_expect(
        "/v1/subscriptions",
        json!({"merchant": w.merchant("Author").id, "amount": "3", "asset": "USD", "interval": "week"}),
        201,
    );
    assert_eq!(p["plan"], Value::Null);
    w.advance(&server, 7 * 86_400);
    assert_eq!(w.wallet(&server, "Ada"), "0.500000");
    w.advance(&server, 7 * 86_400);
    let failing = sub(&p["id"]);
    assert_eq!(
        (
            failing["status"].as_str(),
            failing["failed_attempts"].as_u64()
        ),
        (Some("active"), Some(1))
    );
    assert_eq!(failing["last_failure"], "insufficient_funds");
    w.advance(&server, 3601);
    assert_eq!(sub(&p["id"])["status"], "past_due");
    w.advance(&server, 7201);
    w.advance(&server, 14_401);
    let canceled = sub(&p["id"]);
    assert_eq!(
        (
            canceled["status"].as_str(),
            canceled["failed_attempts"].as_u64()
        ),
        (Some("canceled"), Some(4))
    );
    assert_eq!(w.wallet(&server, "Ada"), "0.500000");

    // Only the customer subscribes; a plan and a pledge together, or half a pledge, are refused.
    let (status, _) = server
        .with_key(&w.merchant("Author").key)
        .post("/v1/subscriptions", json!({"plan": plan["id"]}));
    assert_eq!(status, 403);
    let (status, e) = server.with_key(token).post(
        "/v1/subscriptions",
        json!({"plan": plan["id"], "amount": "1"}),
    );
    assert_eq!((status, e["error"]["param"].as_str()), (400, Some("plan")));
    let (status, e) = server.with_key(token).post(
        "/v1/subscriptions",
        json!({"merchant": w.merchant("Author").id, "amount": "1", "asset": "USD"}),
    );
    assert_eq!(
        (status, e["error"]["param"].as_str()),
        (400, Some("interval"))
    );
    let summary = server.with_key(&w.op).get_ok("/v1/ledger/summary");
    assert_eq!(summary["assets"][0]["balanced"], true, "{summary}");
    server.stop();
}

/// Regression: resuming a paused subscription billed every period that went by while it was
/// paused (weekly, paused for 31 days: four back-dated charges). A resume starts a new period.
#[test]
fn resuming_a_subscription_starts_a_new_period_and_bills_no_paused_ones() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--test-clock"]);
    let w = world(&server);
    let (status, _) = w.top_up(&server, "Ada", "4242424242424242", "10");
    assert_eq!(status, 201);
    let token = w.customer("Ada").token.as_str();
    let plan = server.with_key(&w.merchant("Author").key).post_expect(
        "/v1/plans",
        json!({"name": "Weekly digest", "amount": "0.05", "asset": "USD", "interval": "week"}),
        201,
    );
    let s =
        server
            .with_key(token)
            .post_expect("/v1/subscriptions", json!({"plan": plan["id"]}), 201);
    let path = format!("/v1/subscriptions/{}", s["id"].as_str().unwrap());
    let charges = || {
        server.with_key(token).get_ok(&path)["charges"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(charges(), 1);
    server
        .with_key(token)
        .post_expect(&format!("{path}/pause"), json!({}), 200);
    w.advance(&server, 31 * 86_400);
    server
        .with_key(token)
        .post_expect(&format!("{path}/resume"), json!({}), 200);
    w.advance(&server, 1);
    assert_eq!(
        charges(),
        2,
        "one new period at the resume, none for the paused weeks"
    );
    assert_eq!(w.wallet(&server, "Ada"), "9.900000");
    // The next period is a week after the resume.
    w.advance(&server, 6 * 86_400);
    assert_eq!(charges(), 2);
    w.advance(&server, 86_400);
    assert_eq!(charges(), 3);
    assert_eq!(w.wallet(&server, "Ada"), "9.850000");
}

/// Regression: the test clock's offset was lost on restart, so the clock went back: a campaign
/// whose end job had run read `active` again and took a contribution that then stayed held
/// forever. The offset is now stored, and a campaign the end job closed takes no contribution
/// whatever the clock says.
#[test]
fn the_test_clock_survives_a_restart_and_an_ended_campaign_takes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--test-clock"]);
    let w = world(&server);
    let (status, _) = w.top_up(&server, "Ada", "4242424242424242", "10");
    assert_eq!(status, 201);
    let c = server.with_key(&w.merchant("Author").key).post_expect(
        "/v1/campaigns",
        json!({"name": "Album", "goal": "5", "asset": "USD", "ends_in_seconds": 3600, "mode": "all_or_nothing"}),
        201,
    );
    let path = format!("/v1/campaigns/{}", c["id"].as_str().unwrap());
    let advanced = w.advance(&server, 7200);
    let moved_to = advanced["now"].as_str().unwrap().to_string();
    assert_eq!(
        server.with_key(&w.merchant("Author").key).get_ok(&path)["status"],
        "failed"
    );
    server.stop();

    let server = Server::start(dir.path(), &["--test-clock"]);
    assert_eq!(
        server.with_key(&w.merchant("Author").key).get_ok(&path)["status"],
        "failed",
        "the clock went back on restart"
    );
    let after = server.with_key(&w.op).get_ok("/v1/test_clock");
    assert!(
        after["now"].as_str().unwrap() >= moved_to.as_str(),
        "{after} < {moved_to}"
    );
    let (status, e) = server
        .with_key(&w.customer("Ada").token)
        .post(&format!("{path}/contributions"), json!({"amount": "1"}));
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (422, Some("campaign_ended")),
        "{e}"
    );
    assert_eq!(w.wallet(&server, "Ada"), "10.000000");
}

/// Regression: a maximal top-up filled the processor's clearing account, after which every
/// other customer's top-up in that asset answered 500 (overflow); a maximal allowance made
/// every charge under it a 500. Product amounts are capped at a trillion units (400 naming the
/// field), and a ledger overflow in a product's own booking is a 422, never a 500.
#[test]
fn product_amounts_are_capped_so_one_customer_cannot_overflow_everyone() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let w = world(&server);
    let (status, e) = w.top_up(&server, "Ada", "4242424242424242", "1000000000000.000001");
    assert_eq!(
        (
            status,
            e["error"]["code"].as_str(),
            e["error"]["param"].as_str()
        ),
        (400, Some("amount_too_large"), Some("amount")),
        "{e}"
    );
    let (status, e) = server.with_key(&w.customer("Ada").token).post(
        &format!("/v1/customers/{}/allowances", w.customer("Ada").id),
        json!({"merchant": w.merchant("Author").id, "asset": "USD", "max_per_charge": "1",
                    "max_per_period": "340282366920938463463374607431768.211455", "period": "day"}),
    );
    assert_eq!(
        (
            status,
            e["error"]["code"].as_str(),
            e["error"]["param"].as_str()
        ),
        (400, Some("amount_too_large"), Some("max_per_period")),
        "{e}"
    );
    // The largest top-up is taken, and others' top-ups still work after it.
    let (status, t) = w.top_up(&server, "Ada", "4242424242424242", "1000000000000");
    assert_eq!(status, 201, "{t}");
    let other = server.with_key(&w.merchant("Author").key).post_expect(
        "/v1/customers",
        json!({"name": "Bo"}),
        201,
    );
    let pm = server
        .with_key(other["token"].as_str().unwrap())
        .post_expect(
            &format!(
                "/v1/customers/{}/payment_methods",
                other["id"].as_str().unwrap()
            ),
            json!({"card_number": "4242424242424242"}),
            201,
        );
    let (status, t) = server.with_key(other["token"].as_str().unwrap()).post(
        &format!("/v1/customers/{}/topups", other["id"].as_str().unwrap()),
        json!({"amount": "5", "asset": "USD", "payment_method": pm["token"]}),
    );
    assert_eq!(status, 201, "{t}");
}

// Issue 16: the fee report left out the platform fees of escrow captures and campaign
// contributions, and had no refund line, so it disagreed with the ledger's platform revenue.
/// The fee report counts every product's payments and platform fees, gives refunds and
/// chargebacks lines of their own, and its net platform fees are what the ledger's platform
/// revenue holds.
#[test]
fn the_fee_report_agrees_with_the_ledger_platform_revenue_for_every_product() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--test-clock"]);
    let w = World::builder(&server)
        .asset("USD", 6)
        .merchant("Author")
        .fee_plan(
            "Author",
            json!({"asset": "USD", "percent_bps": 1000, "rounding": "half_even"}),
        )
        .customer("Ada")
        .customer("Bo")
        .build();
    let author = w.merchant("Author");
    let ada = w.customer("Ada").token.as_str();
    assert_eq!(w.top_up(&server, "Ada", "4242424242424242", "10").0, 201);

    // A 1.00 charge (fee 0.10), 0.40 of it refunded (0.04 of the fee given back).
    let charge = server.with_key(ada).post_expect(
        "/v1/charges",
        json!({"merchant": author.id, "amount": "1", "asset": "USD"}),
        201,
    );
    assert_eq!(charge["platform_fee"], "0.100000", "{charge}");
    let refund = server.with_key(&author.key).post_expect(
        &format!("/v1/charges/{}/refunds", charge["id"].as_str().unwrap()),
        json!({"amount": "0.40"}),
        201,
    );
    assert_eq!(refund["platform_fee_returned"], "0.040000", "{refund}");

    // An escrow hold of 0.50, captured in full at 10%: 0.05.
    let hold = server.with_key(ada).post_expect(
        "/v1/holds",
        json!({"merchant": author.id, "amount": "0.50", "asset": "USD"}),
        201,
    );
    let captured = server.with_key(ada).post_expect(
        &format!("/v1/holds/{}/capture", hold["id"].as_str().unwrap()),
        json!({}),
        200,
    );
    assert_eq!(captured["captures"][0]["platform_fee"], "0.050000");

    // A keep-what-you-raise contribution of 2.00 (paid at once: 0.20), and an all-or-nothing
    // one of 1.00 captured at the deadline (0.10).
    let campaign = |mode: &str| {
        server.with_key(&author.key).post_expect(
            "/v1/campaigns",
            json!({"name": mode, "goal": "1", "asset": "USD", "ends_in_seconds": 3600, "mode": mode}),
            201,
        )
    };
    let give = |campaign: &Value, amount: &str| {
        server.with_key(ada).post_expect(
            &format!(
                "/v1/campaigns/{}/contributions",
                campaign["id"].as_str().unwrap()
            ),
            json!({"amount": amount}),
            201,
        )
    };
    assert_eq!(
        give(&campaign("keep_what_you_raise"), "2")["status"],
        "paid"
    );
    let all_or_nothing = campaign("all_or_nothing");
    assert_eq!(give(&all_or_nothing, "1")["status"], "held");
    w.advance(&server, 3601);
    let ended = server.anonymous().get_ok(&format!(
        "/v1/campaigns/{}",
        all_or_nothing["id"].as_str().unwrap()
    ));
    assert_eq!(ended["status"], "succeeded", "{ended}");

    // Bo spends a whole top-up on a 1.00 charge (fee 0.10); its chargeback reverses the charge
    // and the platform gives its fee back.
    let (status, bo_topup) = w.top_up(&server, "Bo", "4242424242424242", "1");
    assert_eq!(status, 201, "{bo_topup}");
    let (status, bo_charge) = server.with_key(&w.customer("Bo").token).post(
        "/v1/charges",
        json!({"merchant": author.id, "amount": "1", "asset": "USD"}),
    );
    assert_eq!(status, 201, "{bo_charge}");
    let dispute = server.with_key(&w.op).post_expect(
        "/v1/disputes",
        json!({"topup": bo_topup["id"], "reason": "fraudulent"}),
        201,
    );
    assert_eq!(dispute["charges"][0]["amount"], "1.000000", "{dispute}");

    // Taken: 0.10 + 0.05 + 0.20 + 0.10 + 0.10 = 0.55; given back 0.04 + 0.10; kept 0.41.
    let report = server.with_key(&w.op).get_ok("/v1/reports/fees?asset=USD");
    let figures = |r: &Value, keys: &[&str]| -> Vec<String> {
        keys.iter().map(|k| r[*k].to_string()).collect()
    };
    assert_eq!(
        figures(
            &report,
            &[
                "payments",
                "gross_volume",
                "platform_fees",
                "net_platform_fees"
            ]
        ),
        ["5", "\"5.500000\"", "\"0.550000\"", "\"0.410000\""],
        "{report}"
    );
    assert_eq!(
        figures(&report, &["refunds", "refunded", "refunded_platform_fees"]),
        ["1", "\"0.400000\"", "\"0.040000\""],
        "{report}"
    );
    assert_eq!(
        figures(
            &report,
            &["chargebacks", "charged_back", "charged_back_platform_fees"]
        ),
        ["1", "\"1.000000\"", "\"0.100000\""],
        "{report}"
    );
    assert_eq!(
        report["by_kind"],
        json!({
            "wallet": {"payments": 2, "gross_volume": "2.000000", "platform_fees": "0.200000"},
            "escrow": {"payments": 1, "gross_volume": "0.500000", "platform_fees": "0.050000"},
            "campaign": {"payments": 2, "gross_volume": "3.000000", "platform_fees": "0.300000"},
        }),
        "{report}"
    );

    // The ledger agrees: its platform revenue (account code 300) holds the net.
    let summary = server.with_key(&w.op).get_ok("/v1/ledger/summary");
    let revenue = summary["assets"][0]["by_code"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["code"] == 300)
        .map(|c| c["net_posted"].clone());
    assert_eq!(revenue, Some(json!("0.410000")), "{summary}");
    assert_eq!(report["ledger_platform_revenue_change"], "0.410000");

    // The author's own report: every payment and reversal was its own; no ledger figure.
    let mine = server
        .with_key(&author.key)
        .get_ok("/v1/reports/fees?asset=USD");
    assert_eq!(
        figures(
            &mine,
            &["payments", "refunds", "chargebacks", "net_platform_fees"]
        ),
        ["5", "1", "1", "\"0.410000\""],
        "{mine}"
    );
    assert!(mine["ledger_platform_revenue_change"].is_null(), "{mine}");

    // The CSV carries the same lines, in columns after the old ones.
    let (status, csv, _) =
        server
            .with_key(&w.op)
            .raw("GET", "/v1/reports/fees?asset=USD&format=csv", None);
    assert_eq!(status, 200);
    let row = csv.lines().nth(1).unwrap_or_default();
    assert!(
        row.ends_with(
            ",wallet=2;escrow=1;campaign=2,1,0.400000,0.040000,1,1.000000,0.100000,0.410000"
        ),
        "{csv}"
    );
    server.stop();
}
