//! A seeded end-to-end simulation over HTTP: 2,000 customers (half on prepaid wallets, half
//! on post-pay tabs) and 200 merchants with random fee plans, a month of charges with the
//! products' clock moved a day at a time, so tabs settle at thresholds and at the month's end.
//! At the end the books must agree three ways: the ledger balances, customers' spend equals
//! what merchants, the platform and the rounding account received, and the fee report says what
//! the ledger says.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};

use common::Server;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

const SEED: u64 = 20_261_121;
const CUSTOMERS: usize = 2_000;
const MERCHANTS: usize = 200;
const DAYS: u64 = 30;
const CHARGES_PER_DAY: usize = 400;
const THREADS: usize = 8;
/// Charges are 1 to this many millionths of a dollar.
const CHARGE_MICROS_MAX: u64 = 50_000;

fn micros(text: &str) -> i128 {
    let negative = text.starts_with('-');
    let text = text.trim_start_matches('-');
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let value =
        whole.parse::<i128>().unwrap() * 1_000_000 + format!("{frac:0<6}").parse::<i128>().unwrap();
    if negative {
        -value
    } else {
        value
    }
}

fn amount(micros: u64) -> String {
    format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

struct Customer {
    token: String,
    tab: Option<String>,
}

#[test]
fn a_month_of_activity_keeps_the_books_in_agreement() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &["--test-clock", "--rate-limit-per-second", "1000000"],
    );
    let op = server.operator_key.clone().unwrap();
    server
        .with_key(&op)
        .post_expect("/v1/assets", json!({"code": "USD", "scale": 6}), 201);
    let mut rng = StdRng::seed_from_u64(SEED);
    let roundings = ["down", "up", "half_up", "half_even"];
    let merchants: Vec<String> = (0..MERCHANTS)
        .map(|i| {
            let m = server.with_key(&op).post_expect(
                "/v1/merchants",
                json!({"name": format!("m{i}")}),
                201,
            );
            let id = m["id"].as_str().unwrap().to_string();
            let plan = json!({"asset": "USD", "percent_bps": rng.gen_range(0..=1500), "fixed": amount(rng.gen_range(0..=200)),
                              "rounding": roundings[rng.gen_range(0..roundings.len())]});
            server.with_key(&op).post_expect(&format!("/v1/merchants/{id}/fee_plan"), plan, 200);
            id
        })
        .collect();

    // Customers, set up from several threads: a card, then a 10.00 top-up or a tab.
    let topped_up = AtomicU64::new(0);
    let customers: Vec<Customer> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (server, op, topped_up) = (&server, &op, &topped_up);
                scope.spawn(move || {
                    (t..CUSTOMERS)
                        .step_by(THREADS)
                        .map(|i| {
                            let c = server.with_key(op).post_expect(
                                "/v1/customers",
                                json!({}),
                                201,
                            );
                            let id = c["id"].as_str().unwrap().to_string();
                            let token = c["token"].as_str().unwrap().to_string();
                            let pm = server.with_key(&token).post_expect(
                                &format!("/v1/customers/{id}/payment_methods"),
                                json!({"card_number": "4242424242424242"}),
                                201,
                            )["token"].clone();
                            let tab = if i % 2 == 0 {
                                server.with_key(&token).post_expect(
                                    &format!("/v1/customers/{id}/topups"),
                                    json!({"amount": "10", "asset": "USD", "payment_method": pm}),
                                    201,
                                );
                                topped_up.fetch_add(10_000_000, Ordering::Relaxed);
                                None
                            } else {
                                let tab = server.with_key(&token).post_expect(
                                    &format!("/v1/customers/{id}/tabs"),
                                    json!({"asset": "USD", "limit": "20", "settlement_threshold": "0.5", "period": "month", "payment_method": pm}),
                                    201,
                                );
                                Some(tab["id"].as_str().unwrap().to_string())
                            };
                            Customer { token, tab }
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });

    // A month: each day, random customers buy from random merchants; a tenth share the
    // revenue with a second merchant.
    let mut spent = 0u64;
    let mut charges = 0u64;
    for _day in 0..DAYS {
        let plan: Vec<(usize, usize, Option<usize>, u64)> = (0..CHARGES_PER_DAY)
            .map(|_| {
                let partner = rng.gen_bool(0.1).then(|| rng.gen_range(0..MERCHANTS));
                (
                    rng.gen_range(0..CUSTOMERS),
                    rng.gen_range(0..MERCHANTS),
                    partner,
                    rng.gen_range(1..=CHARGE_MICROS_MAX),
                )
            })
            .collect();
        let results: Vec<(u16, u64)> = std::thread::scope(|scope| {
            let handles: Vec<_> = plan
                .chunks(CHARGES_PER_DAY / THREADS)
                .map(|chunk| {
                    let (server, customers, merchants) = (&server, &customers, &merchants);
                    scope.spawn(move || {
                        chunk
                            .iter()
                            .map(|(c, m, partner, micros)| {
                                let customer = &customers[*c];
                                let mut body = json!({"merchant": merchants[*m], "amount": amount(*micros), "asset": "USD",
                                                      "source": if customer.tab.is_some() { "tab" } else { "wallet" }});
                                if let Some(p) = partner.filter(|p| p != m) {
                                    body["shares"] = json!([{"merchant": merchants[*m], "bps": 7000}, {"merchant": merchants[p], "bps": 3000}]);
                                }
                                let (status, answer) = server.with_key(&customer.token).post(
                                    "/v1/charges",
                                    body,
                                );
                                assert!(status == 201 || status == 422, "{answer}");
                                (status, *micros)
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        for (status, micros) in results {
            if status == 201 {
                spent += micros;
                charges += 1;
            }
        }
        server
            .with_key(&op)
            .post_expect("/v1/test_clock/advance", json!({"seconds": 86_400}), 200);
    }
    // Past the month's end: every tab's period-end settlement has run.
    server.with_key(&op).post_expect(
        "/v1/test_clock/advance",
        json!({"seconds": 32 * 86_400}),
        200,
    );
    assert!(
        charges > (DAYS * CHARGES_PER_DAY as u64) * 9 / 10,
        "almost every charge fits: {charges}"
    );

    // 1. The ledger balances: every transfer has both sides.
    let summary = server.with_key(&op).get_ok("/v1/ledger/summary");
    let usd = &summary["assets"][0];
    assert_eq!(usd["balanced"], true, "{usd}");
    let net = |code: u64| -> i128 {
        usd["by_code"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["code"] == code)
            .map_or(0, |c| micros(c["net_posted"].as_str().unwrap()))
    };
    // 2. Customers' spend equals what merchants, the platform and the rounding account got.
    let settled: i128 = customers
        .iter()
        .filter_map(|c| c.tab.as_ref())
        .map(|tab| {
            let t = server.with_key(&op).get_ok(&format!("/v1/tabs/{tab}"));
            assert_eq!(
                (t["owed"].as_str(), t["status"].as_str()),
                (Some("0.000000"), Some("open")),
                "every tab settled: {t}"
            );
            t["settlements"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|s| s["status"] == "succeeded")
                .map(|s| micros(s["amount"].as_str().unwrap()))
                .sum::<i128>()
        })
        .sum();
    let topped_up = topped_up.load(Ordering::Relaxed) as i128;
    let wallets = net(100);
    let tabs = net(101);
    let received = net(200) + net(300) + net(301);
    assert_eq!(
        topped_up - wallets + settled - tabs,
        spent as i128,
        "what customers paid in, less what they still hold, is what they spent"
    );
    assert_eq!(
        received, spent as i128,
        "merchants + platform fees + rounding received exactly the customers' spend"
    );
    // 3. The fee report says what the ledger says.
    let report = server.with_key(&op).get_ok("/v1/reports/fees?asset=USD");
    assert_eq!(report["payments"].as_u64(), Some(charges));
    assert_eq!(
        micros(report["gross_volume"].as_str().unwrap()),
        spent as i128
    );
    assert_eq!(
        micros(report["platform_fees"].as_str().unwrap()),
        net(300),
        "platform fees = the revenue account"
    );
    assert_eq!(
        -micros(report["processor_fees_paid"].as_str().unwrap()),
        net(303),
        "processor fees = the fees account"
    );
    let merchant_gross: i128 = merchants
        .iter()
        .map(|m| {
            micros(
                server
                    .with_key(&op)
                    .get_ok(&format!("/v1/reports/fees?asset=USD&merchant={m}"))["gross_volume"]
                    .as_str()
                    .unwrap(),
            )
        })
        .sum();
    assert_eq!(
        merchant_gross, spent as i128,
        "the merchants' reports add up to the platform's"
    );
    assert!(
        micros(report["saving"].as_str().unwrap()) > 0,
        "batching saved card fees: {report}"
    );
    server.stop();
}
