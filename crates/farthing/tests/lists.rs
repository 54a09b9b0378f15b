//! Lists and reads by id over HTTP against a real `farthing serve`: cursor pages without gaps
//! or repeats, every filter, what each caller may see, and bad parameters named.

mod common;

use std::collections::HashSet;

use common::world::World;
use common::Server;
use serde_json::{json, Value};

/// USD; the author and the publisher; Ada and Bob, both the author's customers.
fn world(server: &Server) -> World {
    World::builder(server)
        .asset("USD", 6)
        .merchant("Author")
        .merchant("Publisher")
        .customer("Ada")
        .customer("Bob")
        .build()
}

/// Every object of a list, page by page (`limit` each): the ids in order, checking that no
/// page is larger than asked and that the cursor moves.
fn all_pages(server: &Server, key: &str, path: &str, limit: usize) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = match &cursor {
            Some(c) => format!("{path}{sep}limit={limit}&starting_after={c}"),
            None => format!("{path}{sep}limit={limit}"),
        };
        let page = server.with_key(key).get_ok(&url);
        let data = page["data"].as_array().unwrap();
        assert!(data.len() <= limit, "{page}");
        out.extend(data.iter().cloned());
        if page["has_more"] != true {
            assert!(page["next_cursor"].is_null(), "{page}");
            return out;
        }
        let next = page["next_cursor"].as_str().unwrap().to_string();
        assert_ne!(Some(&next), cursor.as_ref(), "the cursor moves");
        cursor = Some(next);
    }
    panic!("{path}: more than 1000 pages");
}

fn ids(objects: &[Value]) -> Vec<String> {
    objects
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_string())
        .collect()
}

fn count(server: &Server, key: &str, path: &str) -> usize {
    all_pages(server, key, path, 100).len()
}

#[test]
fn lists_page_without_gaps_filter_and_show_each_caller_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let w = world(&server);
    let (op, author, publisher) = (
        w.op.as_str(),
        w.merchant("Author").key.as_str(),
        w.merchant("Publisher").key.as_str(),
    );
    let (ada, bob) = (w.customer("Ada"), w.customer("Bob"));
    let (status, ada_topup) = w.top_up(&server, "Ada", "4242424242424242", "10");
    assert_eq!(status, 201);
    let (status, bob_topup) = w.top_up(&server, "Bob", "4242424242424242", "10");
    assert_eq!(status, 201);
    let pay = |token: &str, merchant: &str, resource: String| {
        server.with_key(token).post_expect(
            "/v1/charges",
            json!({"merchant": merchant, "amount": "0.01", "asset": "USD", "resource_id": resource}),
            201,
        )
    };
    let mut made = Vec::new();
    for i in 0..25 {
        made.push(pay(
            &ada.token,
            &w.merchant("Author").id,
            format!("art-{}", i % 3),
        ));
    }
    for i in 0..5 {
        made.push(pay(
            &bob.token,
            &w.merchant("Publisher").id,
            format!("pod-{i}"),
        ));
    }

    // Pages: every charge once, in id order, whatever the page size.
    let mut expected = ids(&made);
    expected.sort_by_key(|id| {
        farthing_products::ids::decode_id(farthing_products::ids::IdKind::Charge, id)
    });
    for limit in [1, 7, 30, 100] {
        let got = ids(&all_pages(&server, op, "/v1/charges", limit));
        assert_eq!(got.len(), 30, "limit {limit}");
        assert_eq!(got.iter().collect::<HashSet<_>>().len(), 30, "no repeats");
        assert_eq!(got, expected, "limit {limit}: id order, no gaps");
    }

    // Filters.
    let author_id = &w.merchant("Author").id;
    let publisher_id = &w.merchant("Publisher").id;
    assert_eq!(
        count(&server, op, &format!("/v1/charges?merchant={publisher_id}")),
        5
    );
    assert_eq!(
        count(&server, op, &format!("/v1/charges?customer={}", ada.id)),
        25
    );
    assert_eq!(count(&server, op, "/v1/charges?resource=art-0"), 9);
    assert_eq!(count(&server, op, "/v1/charges?status=succeeded"), 30);
    assert_eq!(count(&server, op, "/v1/charges?status=failed"), 0);
    assert_eq!(
        count(&server, op, "/v1/charges?created_gte=4102444800"),
        0,
        "2100"
    );
    assert_eq!(count(&server, op, "/v1/charges?created_lt=4102444800"), 30);
    assert_eq!(
        count(&server, op, "/v1/charges?created_lt=946684800"),
        0,
        "2000"
    );
    assert_eq!(
        count(
            &server,
            op,
            &format!("/v1/charges?merchant={author_id}&resource=art-1&status=succeeded")
        ),
        8
    );

    // Each caller sees its own: the merchant its charges, a customer's token its customer's.
    assert_eq!(count(&server, publisher, "/v1/charges"), 5);
    assert_eq!(count(&server, author, "/v1/charges"), 25);
    assert_eq!(count(&server, &ada.token, "/v1/charges"), 25);
    assert_eq!(count(&server, &bob.token, "/v1/charges"), 5);
    assert_eq!(
        count(
            &server,
            &bob.token,
            &format!("/v1/charges?customer={}", ada.id)
        ),
        0
    );
    assert_eq!(count(&server, author, "/v1/customers"), 2);
    assert_eq!(count(&server, publisher, "/v1/customers"), 0);
    let own = all_pages(&server, &ada.token, "/v1/customers", 10);
    assert_eq!(ids(&own), std::slice::from_ref(&ada.id));
    assert_eq!(count(&server, op, "/v1/customers"), 2);

    // Bad parameters are named.
    for (query, param) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("starting_after=nope", "starting_after"),
        (
            "starting_after=cus_aaaaaaaaaaaaaaaaaaaaaaaaaa",
            "starting_after",
        ),
        ("customer=ch_x", "customer"),
        ("merchant=x", "merchant"),
        ("status=shipped", "status"),
        ("created_gte=soon", "created_gte"),
        ("colour=red", "colour"),
    ] {
        let (status, e) = server.with_key(op).get(&format!("/v1/charges?{query}"));
        assert_eq!(
            (status, e["error"]["param"].as_str()),
            (400, Some(param)),
            "{query}: {e}"
        );
    }
    let (status, e) = server.with_key(op).get("/v1/customers?status=active");
    assert_eq!(
        (status, e["error"]["param"].as_str()),
        (400, Some("status"))
    );
    let (status, _) = server.anonymous().get("/v1/charges");
    assert_eq!(status, 401);

    // Reads by id: a top-up, a refund, an allowance, a plan, a dispute.
    let topup_path = format!("/v1/topups/{}", ada_topup["id"].as_str().unwrap());
    assert_eq!(
        server.with_key(&ada.token).get_ok(&topup_path)["id"],
        ada_topup["id"]
    );
    assert_eq!(
        server.with_key(author).get_ok(&topup_path)["id"],
        ada_topup["id"]
    );
    assert_eq!(server.with_key(&bob.token).get(&topup_path).0, 404);
    assert_eq!(server.with_key(publisher).get(&topup_path).0, 404);
    let refund = server.with_key(author).post_expect(
        &format!("/v1/charges/{}/refunds", made[0]["id"].as_str().unwrap()),
        json!({}),
        201,
    );
    let refund_path = format!("/v1/refunds/{}", refund["id"].as_str().unwrap());
    assert_eq!(server.with_key(&ada.token).get_ok(&refund_path), refund);
    assert_eq!(server.with_key(publisher).get(&refund_path).0, 404);
    let allowance = server.with_key(&ada.token).post_expect(
        &format!("/v1/customers/{}/allowances", ada.id),
        json!({"merchant": author_id, "asset": "USD", "max_per_charge": "1", "max_per_period": "5", "period": "day"}),
        201,
    );
    let allowance_path = format!("/v1/allowances/{}", allowance["id"].as_str().unwrap());
    assert_eq!(server.with_key(author).get_ok(&allowance_path), allowance);
    assert_eq!(server.with_key(&bob.token).get(&allowance_path).0, 404);
    let plan = server.with_key(author).post_expect(
        "/v1/plans",
        json!({"name": "Newsletter", "amount": "1", "asset": "USD", "interval": "month"}),
        201,
    );
    let plan_path = format!("/v1/plans/{}", plan["id"].as_str().unwrap());
    assert_eq!(server.with_key(&ada.token).get_ok(&plan_path), plan);
    assert_eq!(server.with_key(publisher).get(&plan_path).0, 404);
    let dispute =
        server
            .with_key(op)
            .post_expect("/v1/disputes", json!({"topup": bob_topup["id"]}), 201);
    let dispute_path = format!("/v1/disputes/{}", dispute["id"].as_str().unwrap());
    assert_eq!(server.with_key(op).get_ok(&dispute_path), dispute);
    assert_eq!(server.with_key(&bob.token).get_ok(&dispute_path), dispute);
    assert_eq!(server.with_key(&ada.token).get(&dispute_path).0, 404);
    assert_eq!(
        server.with_key(author).get(&dispute_path).0,
        404,
        "not debited"
    );
    assert_eq!(server.with_key(publisher).get_ok(&dispute_path), dispute);
    for path in [
        "/v1/topups/x",
        "/v1/refunds/re_x",
        "/v1/plans/plan_x",
        "/v1/disputes/dp_x",
        "/v1/allowances/al_x",
    ] {
        assert_eq!(server.with_key(op).get(path).0, 404, "{path}");
    }

    // The other lists: a subscription, a hold, a campaign, a tab, events.
    server
        .with_key(&ada.token)
        .post_expect("/v1/subscriptions", json!({"plan": plan["id"]}), 201);
    assert_eq!(
        count(&server, &ada.token, "/v1/subscriptions?status=active"),
        1
    );
    assert_eq!(count(&server, &bob.token, "/v1/subscriptions"), 0);
    assert_eq!(count(&server, publisher, "/v1/subscriptions"), 0);
    server.with_key(&ada.token).post_expect(
        "/v1/holds",
        json!({"merchant": author_id, "amount": "1", "asset": "USD", "description": "logo",
               "expires_in_seconds": 3600, "on_expiry": "release"}),
        201,
    );
    assert_eq!(count(&server, author, "/v1/holds?status=held"), 1);
    assert_eq!(count(&server, author, "/v1/holds?status=captured"), 0);
    assert_eq!(count(&server, &bob.token, "/v1/holds"), 0);
    server.with_key(author).post_expect(
        "/v1/campaigns",
        json!({"name": "Album", "goal": "5", "asset": "USD", "ends_in_seconds": 3600, "mode": "keep_what_you_raise"}),
        201,
    );
    assert_eq!(
        count(&server, &bob.token, "/v1/campaigns?status=active"),
        1,
        "public"
    );
    assert_eq!(
        count(
            &server,
            op,
            &format!("/v1/campaigns?merchant={publisher_id}")
        ),
        0
    );
    let card = w.card(&server, "Bob", "4242424242424242");
    server.with_key(&bob.token).post_expect(
        &format!("/v1/customers/{}/tabs", bob.id),
        json!({"asset": "USD", "limit": "3", "settlement_threshold": "2", "period": "month", "payment_method": card}),
        201,
    );
    assert_eq!(count(&server, &bob.token, "/v1/tabs?status=open"), 1);
    assert_eq!(count(&server, &ada.token, "/v1/tabs"), 0);
    assert_eq!(
        count(&server, author, "/v1/tabs"),
        1,
        "the customer's creator"
    );
    for event in all_pages(&server, author, "/v1/events", 50) {
        assert_eq!(
            event["merchant"].as_str(),
            Some(author_id.as_str()),
            "{event}"
        );
    }
    assert_eq!(server.with_key(&ada.token).get("/v1/events").0, 200);

    // Ledger transfers: the merchant's own accounts, oldest first; the operator's include the
    // products' own transfers (top-ups, charges, ...).
    let account = |flags: Value| {
        server.with_key(author).post_expect(
            "/v1/accounts",
            json!({"asset": "USD", "flags": flags}),
            201,
        )["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (bank, till) = (account(json!({})), account(json!({})));
    let mut moved = Vec::new();
    for amount in ["0.01", "0.02", "0.03"] {
        moved.push(server.with_key(author).post_expect(
            "/v1/transfers",
            json!({"debit_account": bank, "credit_account": till, "amount": amount, "asset": "USD"}),
            201,
        ));
    }
    let listed = all_pages(&server, author, "/v1/transfers", 2);
    assert_eq!(ids(&listed), ids(&moved), "oldest first, each once");
    assert_eq!(count(&server, author, "/v1/transfers?status=posted"), 3);
    assert_eq!(count(&server, author, "/v1/transfers?status=pending"), 0);
    assert_eq!(count(&server, publisher, "/v1/transfers"), 0);
    assert_eq!(
        count(&server, op, &format!("/v1/transfers?merchant={author_id}")),
        3
    );
    assert!(
        count(&server, op, "/v1/transfers") > 3,
        "the products' transfers too"
    );
    let some = &moved[1]["id"];
    let (_, one) = server.with_key(op).get(&format!(
        "/v1/transfers/{}",
        listed[1]["id"].as_str().unwrap()
    ));
    assert_eq!(&one["id"], some);
    for (query, param) in [
        ("customer=".to_string() + &ada.id, "customer"),
        ("resource=x".to_string(), "resource"),
        ("status=held".to_string(), "status"),
        (
            "starting_after=tr_aaaaaaaaaaaaaaaaaaaaaaaaaa".to_string(),
            "starting_after",
        ),
    ] {
        let (status, e) = server
            .with_key(author)
            .get(&format!("/v1/transfers?{query}"));
        assert_eq!(
            (status, e["error"]["param"].as_str()),
            (400, Some(param)),
            "{query}: {e}"
        );
    }
    assert_eq!(server.with_key(&ada.token).get("/v1/transfers").0, 403);
    server.stop();
}
