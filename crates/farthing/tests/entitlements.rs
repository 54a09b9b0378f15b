//! The paywall's server side over HTTP against a real `farthing serve`: offers (declared
//! prices), purchases with the customer's token (charged exactly the declared amount, once),
//! entitlement tokens checked the way a publisher's server does it — with a standard JWT
//! library against `/.well-known/jwks.json` — and by `POST /v1/entitlements/verify` (forged,
//! expired, wrong-audience and other-resource tokens refused; views counted once each), key
//! rotation, and publishable keys (declared origins only; refused by every other endpoint).

mod common;

use common::receiver::Receiver;
use common::world::World;
use common::Server;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{json, Value};

/// USD at scale 6; the publisher "News" with a 10% fee plan and "Other", another merchant;
/// Ada, a reader with 1.00 in her wallet.
fn world(server: &Server) -> World {
    let w = World::builder(server)
        .asset("USD", 6)
        .merchant("News")
        .merchant("Other")
        .fee_plan(
            "News",
            json!({"asset": "USD", "percent_bps": 1000, "rounding": "half_even"}),
        )
        .customer("Ada")
        .build();
    let (status, t) = w.top_up(server, "Ada", "4242424242424242", "1");
    assert_eq!(status, 201, "{t}");
    w
}

/// Declares an offer of `merchant` for `resource`; returns its id.
fn offer(server: &Server, w: &World, merchant: &str, resource: &str, access: Value) -> String {
    let o = server.with_key(&w.merchant(merchant).key).post_expect(
        "/v1/offers",
        json!({"resource": resource, "amount": "0.01", "asset": "USD", "description": format!("{resource}, to read"), "access": access}),
        201,
    );
    assert_eq!(
        (o["amount"].as_str(), o["status"].as_str()),
        (Some("0.010000"), Some("active"))
    );
    o["id"].as_str().unwrap().to_string()
}

/// Ada buys offer `id`: status and answer.
fn buy(server: &Server, w: &World, id: &str) -> (u16, Value) {
    server
        .with_key(&w.customer("Ada").token)
        .post(&format!("/v1/offers/{id}/purchase"), json!({}))
}

/// `POST /v1/entitlements/verify` with `key`: status and the error code ("" for none).
fn verify(server: &Server, key: &str, token: &str, resource: &str) -> (u16, String) {
    let (status, answer) = server.with_key(key).post(
        "/v1/entitlements/verify",
        json!({"token": token, "resource": resource}),
    );
    let code = answer["error"]["code"].as_str().unwrap_or("").to_string();
    (status, code)
}

/// The JWK Set the server publishes.
fn jwks(server: &Server) -> JwkSet {
    let (status, body, headers) = server.raw("GET", "/.well-known/jwks.json", None, None, &[]);
    assert_eq!(status, 200, "{body}");
    let cache = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("cache-control"));
    assert!(
        cache.is_some_and(|(_, v)| v.starts_with("public")),
        "{headers:?}"
    );
    serde_json::from_str(&body).unwrap()
}

/// What a publisher's server does: checks the token with a standard JWT library (EdDSA only),
/// with the key the token's `kid` names in the published set, for its own merchant id.
fn standard_check(server: &Server, token: &str, audience: &str) -> Result<Value, String> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
    let kid = header.kid.ok_or("no kid")?;
    let set = jwks(server);
    let jwk = set.find(&kid).ok_or("kid not published")?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[server.base.as_str()]);
    validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .map(|data| data.claims)
        .map_err(|e| e.to_string())
}

/// The claims of a token, unchecked (to re-sign them as a forger would).
fn claims_of(token: &str) -> Value {
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.insecure_disable_signature_validation();
    validation.validate_aud = false;
    validation.validate_exp = false;
    let key = DecodingKey::from_secret(b"");
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .unwrap()
        .claims
}

/// `claims` signed by a key the server never made, under the server's own `kid`.
fn forge(claims: &Value, kid: &str) -> String {
    // PKCS#8 v1 of an Ed25519 private key: a fixed prefix, then the 32-byte seed.
    let mut der = hex_bytes("302e020100300506032b657004220420");
    der.extend([42u8; 32]);
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.to_string());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(&der)).unwrap()
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

#[test]
fn a_purchase_charges_the_declared_amount_once_and_its_token_verifies_with_a_standard_library() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &["--test-clock", "--webhook-allow-addresses", "loopback"],
    );
    let w = world(&server);
    let news = w.merchant("News");
    let receiver = Receiver::start();
    server.with_key(&news.key).post_expect(
        "/v1/webhook_endpoints",
        json!({"url": format!("{}/news", receiver.url), "events": ["charge.succeeded"]}),
        201,
    );
    let ada = w.customer("Ada");
    let article_1 = offer(&server, &w, "News", "article-1", json!({"kind": "forever"}));
    let article_2 = offer(&server, &w, "News", "article-2", json!({"kind": "forever"}));

    // The request names no price: an amount in the body is refused, and nothing is charged.
    let (status, e) = server.with_key(&ada.token).post(
        &format!("/v1/offers/{article_1}/purchase"),
        json!({"amount": "0.000001"}),
    );
    assert_eq!(
        (status, e["error"]["param"].as_str()),
        (400, Some("amount")),
        "{e}"
    );
    // Nor can a merchant key buy for a reader.
    let (status, _) = server
        .with_key(&news.key)
        .post(&format!("/v1/offers/{article_1}/purchase"), json!({}));
    assert_eq!(status, 403);
    assert_eq!(w.wallet(&server, "Ada"), "1.000000");

    // Bought: charged exactly the declared 0.01 as a normal charge (fee plan applied).
    let (status, bought) = buy(&server, &w, &article_1);
    assert_eq!(status, 201, "{bought}");
    assert_eq!(bought["charged"], true);
    let charge = &bought["charge"];
    assert_eq!(
        (
            charge["amount"].as_str(),
            charge["platform_fee"].as_str(),
            charge["resource_id"].as_str(),
            charge["status"].as_str()
        ),
        (
            Some("0.010000"),
            Some("0.001000"),
            Some("article-1"),
            Some("succeeded")
        )
    );
    assert_eq!(w.wallet(&server, "Ada"), "0.990000");
    // The merchant hears of it as of any charge: a charge.succeeded webhook.
    let delivered = receiver.wait("/news", "the purchase's charge.succeeded", |d| {
        !d.is_empty()
    });
    let event = delivered[0].json();
    assert_eq!(
        (
            event["type"].as_str(),
            &event["data"]["id"],
            event["data"]["amount"].as_str()
        ),
        (Some("charge.succeeded"), &charge["id"], Some("0.010000")),
        "{event}"
    );
    let grant = &bought["entitlement"];
    assert_eq!(
        (grant["live"].as_bool(), grant["resource"].as_str()),
        (Some(true), Some("article-1"))
    );

    // The publisher's server checks the token with a standard JWT library.
    let token = bought["token"].as_str().unwrap();
    let claims = standard_check(&server, token, &news.id).expect("the token verifies");
    assert_eq!(claims["resource"], "article-1");
    assert_eq!(claims["access"], json!({"kind": "forever"}));
    let subject = claims["sub"].as_str().unwrap().to_string();
    assert!(
        subject.starts_with("psn_") && subject != ada.id,
        "{subject}"
    );
    assert_eq!(subject, grant["subject"].as_str().unwrap());
    // For another merchant the same token is not valid.
    assert!(standard_check(&server, token, &w.merchant("Other").id).is_err());

    // Buying again charges nothing: the same grant, a fresh token.
    let (status, again) = buy(&server, &w, &article_1);
    assert_eq!(
        (status, again["charged"].as_bool()),
        (200, Some(false)),
        "{again}"
    );
    assert_eq!(again["entitlement"]["id"], grant["id"]);
    assert_ne!(again["token"], bought["token"]);
    assert!(standard_check(&server, again["token"].as_str().unwrap(), &news.id).is_ok());
    assert_eq!(w.wallet(&server, "Ada"), "0.990000");

    // Under one Idempotency-Key a purchase is answered once, whatever the retries.
    let keyed = server.with_key(&ada.token).idempotency_key("buy-article-2");
    let path = format!("/v1/offers/{article_2}/purchase");
    let (s1, b1, _) = keyed.raw("POST", &path, Some("{}".into()));
    let (s2, b2, h2) = keyed.raw("POST", &path, Some("{}".into()));
    assert_eq!((s1, s2), (201, 201), "{b1}");
    assert_eq!(b1, b2, "replayed as first sent");
    assert!(h2
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("idempotent-replayed") && v == "true"));
    assert_eq!(w.wallet(&server, "Ada"), "0.980000");
    let token_2: Value = serde_json::from_str(&b1).unwrap();
    let token_2 = token_2["token"].as_str().unwrap().to_string();

    // farthing's own check: good for article 1; a token for article 1 does not open article 2.
    assert_eq!(
        verify(&server, &news.key, token, "article-1"),
        (200, String::new())
    );
    assert_eq!(
        verify(&server, &news.key, token, "article-2"),
        (422, "token_wrong_resource".into())
    );
    assert_eq!(
        verify(&server, &news.key, &token_2, "article-2"),
        (200, String::new())
    );
    // Another merchant's key: not its token.
    assert_eq!(
        verify(&server, &w.merchant("Other").key, token, "article-1"),
        (422, "token_wrong_audience".into())
    );
    // Forged: the same claims (a longer life, even) re-signed with another key under the real kid.
    let mut forged_claims = claims_of(token);
    forged_claims["exp"] = json!(forged_claims["exp"].as_u64().unwrap() + 365 * 86_400);
    let forged = forge(&forged_claims, &kid_of(token));
    assert_eq!(
        verify(&server, &news.key, &forged, "article-1"),
        (422, "token_signature_invalid".into())
    );
    assert!(
        standard_check(&server, &forged, &news.id).is_err(),
        "a standard library refuses it too"
    );
    // A token edited to name article 2 fails its signature.
    let parts: Vec<&str> = token.split('.').collect();
    let mut edited = claims_of(token);
    edited["resource"] = json!("article-2");
    let edited_payload = forge(&edited, "x");
    let edited_payload = edited_payload.split('.').nth(1).unwrap();
    let tampered = format!("{}.{edited_payload}.{}", parts[0], parts[2]);
    assert_eq!(
        verify(&server, &news.key, &tampered, "article-2"),
        (422, "token_signature_invalid".into())
    );
    assert_eq!(
        verify(&server, &news.key, "not.a.token", "article-1"),
        (422, "token_malformed".into())
    );

    // Publishers that prefer to ask: by the customer's id or by the token's subject.
    let ask = |customer: &str, resource: &str, key: &str| {
        server.with_key(key).get_ok(&format!(
            "/v1/entitlements?customer={customer}&resource={resource}"
        ))
    };
    assert_eq!(ask(&ada.id, "article-1", &news.key)["entitled"], true);
    assert_eq!(ask(&subject, "article-1", &news.key)["entitled"], true);
    assert_eq!(ask(&ada.id, "article-3", &news.key)["entitled"], false);
    // Another merchant learns nothing: Ada holds nothing of it, and its pseudonym is another.
    let other = ask(&ada.id, "article-1", &w.merchant("Other").key);
    assert_eq!(other["entitled"], false);
    assert_ne!(other["subject"].as_str(), Some(subject.as_str()));

    // A day and a bit later the token has expired; the grant (forever) has not: buying again
    // charges nothing and gives a fresh token.
    w.advance(&server, 86_400 + 60);
    assert_eq!(
        verify(&server, &news.key, token, "article-1"),
        (422, "token_expired".into())
    );
    let (status, fresh) = buy(&server, &w, &article_1);
    assert_eq!(
        (status, fresh["charged"].as_bool()),
        (200, Some(false)),
        "{fresh}"
    );
    assert_eq!(
        verify(
            &server,
            &news.key,
            fresh["token"].as_str().unwrap(),
            "article-1"
        ),
        (200, String::new())
    );
    assert_eq!(w.wallet(&server, "Ada"), "0.980000");

    // An archived offer sells no more; what it sold stays.
    server.with_key(&news.key).expect(
        "POST",
        &format!("/v1/offers/{article_1}/archive"),
        None,
        200,
    );
    let (status, e) = buy(&server, &w, &article_1);
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (422, Some("offer_archived"))
    );
    assert_eq!(ask(&ada.id, "article-1", &news.key)["entitled"], true);
}

#[test]
fn views_and_durations_run_out_and_each_verification_counts_one_view() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--test-clock"]);
    let w = world(&server);
    let news = w.merchant("News");
    let three_views = offer(
        &server,
        &w,
        "News",
        "video-1",
        json!({"kind": "views", "count": 3}),
    );
    // Eight purchases at once (two tabs, a double click): one charges, the seven others find
    // its grant and charge nothing.
    let answers: Vec<(u16, Value)> = std::thread::scope(|scope| {
        let calls: Vec<_> = (0..8)
            .map(|_| scope.spawn(|| buy(&server, &w, &three_views)))
            .collect();
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    });
    let charged: Vec<&Value> = answers
        .iter()
        .filter(|(status, a)| *status == 201 && a["charged"] == true)
        .map(|(_, a)| a)
        .collect();
    let free = answers
        .iter()
        .filter(|(status, a)| *status == 200 && a["charged"] == false)
        .count();
    assert_eq!((charged.len(), free), (1, 7), "{answers:?}");
    let bought = charged[0].clone();
    assert!(answers
        .iter()
        .all(|(_, a)| a["entitlement"]["id"] == bought["entitlement"]["id"]));
    assert_eq!(w.wallet(&server, "Ada"), "0.990000");
    assert_eq!(bought["entitlement"]["views_remaining"], 3);
    let token = bought["token"].as_str().unwrap().to_string();

    // Eight verifications at once: exactly three count, the rest find none left.
    let outcomes: Vec<(u16, String)> = std::thread::scope(|scope| {
        let calls: Vec<_> = (0..8)
            .map(|_| scope.spawn(|| verify(&server, &news.key, &token, "video-1")))
            .collect();
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    });
    let ok = outcomes.iter().filter(|o| o.0 == 200).count();
    let none_left = outcomes.iter().filter(|o| o.1 == "no_views_left").count();
    assert_eq!((ok, none_left), (3, 5), "{outcomes:?}");
    let check = server.with_key(&news.key).get_ok(&format!(
        "/v1/entitlements?customer={}&resource=video-1",
        w.customer("Ada").id
    ));
    assert_eq!(check["entitled"], false, "{check}");

    // Used up: buying again charges again, with three new views.
    let (status, again) = buy(&server, &w, &three_views);
    assert_eq!(
        (status, again["charged"].as_bool()),
        (201, Some(true)),
        "{again}"
    );
    assert_eq!(again["entitlement"]["views_remaining"], 3);
    assert_eq!(w.wallet(&server, "Ada"), "0.980000");

    // An hour's access ends after an hour: then a purchase charges again.
    let hour = offer(
        &server,
        &w,
        "News",
        "live-1",
        json!({"kind": "duration", "seconds": 3600}),
    );
    let (status, _) = buy(&server, &w, &hour);
    assert_eq!(status, 201);
    w.advance(&server, 1800);
    let (status, within) = buy(&server, &w, &hour);
    assert_eq!((status, within["charged"].as_bool()), (200, Some(false)));
    let claims = claims_of(within["token"].as_str().unwrap());
    assert!(
        claims["exp"].as_u64() <= Some(claims["iat"].as_u64().unwrap() + 1800),
        "{claims}"
    );
    w.advance(&server, 1801);
    let (status, after) = buy(&server, &w, &hour);
    assert_eq!(
        (status, after["charged"].as_bool()),
        (201, Some(true)),
        "{after}"
    );
    assert_eq!(w.wallet(&server, "Ada"), "0.960000");

    // A purchase the wallet cannot pay is refused and grants nothing.
    let dear = server.with_key(&news.key).post_expect(
        "/v1/offers",
        json!({"resource": "box-set", "amount": "5", "asset": "USD", "access": {"kind": "forever"}}),
        201,
    );
    let (status, e) = buy(&server, &w, dear["id"].as_str().unwrap());
    assert_eq!(status, 422, "{e}");
    assert_eq!(w.wallet(&server, "Ada"), "0.960000");
    let check = server.with_key(&news.key).get_ok(&format!(
        "/v1/entitlements?customer={}&resource=box-set",
        w.customer("Ada").id
    ));
    assert_eq!(check["entitled"], false, "{check}");

    // Offers check what they grant.
    for (access, param) in [
        (json!({"kind": "views", "count": 0}), "access.count"),
        (json!({"kind": "duration", "seconds": 0}), "access.seconds"),
    ] {
        let (status, e) = server.with_key(&news.key).post(
            "/v1/offers",
            json!({"resource": "x", "amount": "0.01", "asset": "USD", "access": access}),
        );
        assert_eq!(
            (status, e["error"]["param"].as_str()),
            (400, Some(param)),
            "{e}"
        );
    }
}

#[test]
fn a_rotation_keeps_old_tokens_verifiable_and_signs_new_ones_with_the_new_key() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--test-clock"]);
    let w = world(&server);
    let news = w.merchant("News");
    let article = offer(&server, &w, "News", "article-1", json!({"kind": "forever"}));
    let (_, bought) = buy(&server, &w, &article);
    let old_token = bought["token"].as_str().unwrap().to_string();
    let old_kid = kid_of(&old_token);
    assert_eq!(jwks(&server).keys.len(), 1);

    // Only the operator rotates.
    let (status, _) = server
        .with_key(&news.key)
        .post_empty("/v1/signing_keys/rotate");
    assert_eq!(status, 403);
    let rotated = server
        .with_key(&w.op)
        .expect("POST", "/v1/signing_keys/rotate", None, 200);
    let new_kid = rotated["kid"].as_str().unwrap().to_string();
    assert_eq!(rotated["previous_kid"].as_str(), Some(old_kid.as_str()));
    assert_ne!(new_kid, old_kid);
    let kids: Vec<String> = jwks(&server)
        .keys
        .iter()
        .map(|k| k.common.key_id.clone().unwrap())
        .collect();
    assert_eq!(
        kids,
        [new_kid.clone(), old_kid.clone()],
        "the current key first"
    );

    // The old token still verifies, both ways; new tokens carry the new kid.
    assert!(standard_check(&server, &old_token, &news.id).is_ok());
    assert_eq!(
        verify(&server, &news.key, &old_token, "article-1"),
        (200, String::new())
    );
    let (_, again) = buy(&server, &w, &article);
    let new_token = again["token"].as_str().unwrap().to_string();
    assert_eq!(kid_of(&new_token), new_kid);
    assert!(standard_check(&server, &new_token, &news.id).is_ok());

    // The keys survive a restart.
    server.stop();
    let server = Server::start(dir.path(), &["--test-clock"]);
    assert_eq!(verify(&server, &news.key, &new_token, "article-1").0, 200);
    assert_eq!(jwks(&server).keys.len(), 2);

    // Once every token the old key signed has expired, it is no longer published.
    w.advance(&server, 86_400 + 301);
    let kids: Vec<String> = jwks(&server)
        .keys
        .iter()
        .map(|k| k.common.key_id.clone().unwrap())
        .collect();
    assert_eq!(kids, [new_kid]);
    assert_eq!(
        verify(&server, &news.key, &old_token, "article-1"),
        (422, "token_unknown_key".into())
    );
}

#[test]
fn a_publishable_key_reads_offers_from_its_declared_origins_only_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let w = world(&server);
    let news = w.merchant("News");
    let merchant = server.with_key(&news.key);

    // Made by the merchant with its origins; origins are checked and only for this scope.
    let k = merchant.post_expect(
        "/v1/api_keys",
        json!({"scope": "publishable", "origins": ["https://news.example", "http://localhost:3000/"]}),
        201,
    );
    let pk = k["secret"].as_str().unwrap().to_string();
    assert!(pk.starts_with("fk_pk_"), "{pk}");
    assert_eq!(
        k["origins"],
        json!(["https://news.example", "http://localhost:3000"])
    );
    for (body, param, code) in [
        (
            json!({"scope": "publishable"}),
            "origins",
            "origins_required",
        ),
        (
            json!({"scope": "publishable", "origins": ["https://news.example/paywall"]}),
            "origins.0",
            "invalid_origin",
        ),
        (
            json!({"scope": "publishable", "origins": ["ftp://news.example"]}),
            "origins.0",
            "invalid_origin",
        ),
        (
            json!({"scope": "merchant", "origins": ["https://news.example"]}),
            "origins",
            "origins_not_allowed",
        ),
    ] {
        let (status, e) = merchant.post("/v1/api_keys", body.clone());
        assert_eq!(
            (
                status,
                e["error"]["param"].as_str(),
                e["error"]["code"].as_str()
            ),
            (400, Some(param), Some(code)),
            "{body}: {e}"
        );
    }

    let article = offer(&server, &w, "News", "article-1", json!({"kind": "forever"}));
    let old = offer(&server, &w, "News", "article-1", json!({"kind": "forever"}));
    merchant.expect("POST", &format!("/v1/offers/{old}/archive"), None, 200);
    let elsewhere = offer(
        &server,
        &w,
        "Other",
        "article-1",
        json!({"kind": "forever"}),
    );
    let from = |origin: &str, method: &str, path: &str, body: Option<Value>| {
        let headers: Vec<(&str, &str)> = match origin {
            "" => vec![],
            origin => vec![("Origin", origin)],
        };
        server.call(method, path, Some(&pk), body, &headers)
    };

    // From a declared origin: the merchant's active offers for a resource, and an offer by id.
    let (status, list) = from(
        "https://news.example",
        "GET",
        "/v1/offers?resource=article-1",
        None,
    );
    assert_eq!(status, 200, "{list}");
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [article.as_str()], "active offers only");
    let (status, _) = from(
        "http://localhost:3000",
        "GET",
        &format!("/v1/offers/{article}"),
        None,
    );
    assert_eq!(status, 200);
    // Another merchant's offer is as missing as one that does not exist.
    let (status, _) = from(
        "https://news.example",
        "GET",
        &format!("/v1/offers/{elsewhere}"),
        None,
    );
    assert_eq!(status, 404);
    // The page checks a token with the key.
    let (_, bought) = buy(&server, &w, &article);
    let token = bought["token"].as_str().unwrap();
    let (status, checked) = from(
        "https://news.example",
        "POST",
        "/v1/entitlements/verify",
        Some(json!({"token": token, "resource": "article-1"})),
    );
    assert_eq!(
        (status, checked["valid"].as_bool()),
        (200, Some(true)),
        "{checked}"
    );

    // From an undeclared origin, or none: 403 naming the Origin.
    for origin in [
        "https://evil.example",
        "https://news.example.evil.example",
        "http://news.example",
        "",
    ] {
        let (status, e) = from(origin, "GET", "/v1/offers?resource=article-1", None);
        assert_eq!(
            (
                status,
                e["error"]["code"].as_str(),
                e["error"]["param"].as_str()
            ),
            (403, Some("origin_not_allowed"), Some("Origin")),
            "{origin}: {e}"
        );
    }

    // Every other endpoint of the API that takes a key refuses it, even for its own
    // merchant's objects. (Public reads, `security: [{}]` in the document, take no key.)
    let (_, document) = server.call("GET", "/v1/openapi.json", None, None, &[]);
    let allowed = [
        "GET /v1/offers",
        "GET /v1/offers/{id}",
        "POST /v1/entitlements/verify",
    ];
    let mut refused = 0;
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let method = method.to_uppercase();
            let route = format!("{method} {path}");
            if allowed.contains(&route.as_str()) || operation["security"] == json!([{}]) {
                continue;
            }
            let id = if path.starts_with("/v1/merchants/") {
                &news.id
            } else {
                &article
            };
            let concrete = path
                .replace("{id}", id)
                .replace("{asset}", "USD")
                .replace("{contribution}", "ctb_aaaaaaaaaaaaaaaaaaaaaaaaaa")
                .replace("{event}", "evt_aaaaaaaaaaaaaaaaaaaaaaaaaa");
            let body = (method == "POST").then(|| json!({}));
            let (status, e) = from("https://news.example", &method, &concrete, body);
            assert_eq!(status, 403, "{route}: {e}");
            refused += 1;
        }
    }
    assert!(refused >= 70, "{refused} endpoints checked");
}

/// The value of response header `name` (any case), if present.
fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[test]
fn cors_answers_declared_origins_only_and_only_on_the_page_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let w = world(&server);
    let news = w.merchant("News");
    let publishable = |merchant: &str, origin: &str| {
        let k = server.with_key(&w.merchant(merchant).key).post_expect(
            "/v1/api_keys",
            json!({"scope": "publishable", "origins": [origin]}),
            201,
        );
        (
            k["id"].as_str().unwrap().to_string(),
            k["secret"].as_str().unwrap().to_string(),
        )
    };
    let (news_pk_id, news_pk) = publishable("News", "https://news.example");
    let (_, _blog_pk) = publishable("Other", "https://blog.example");
    let article = offer(&server, &w, "News", "article-1", json!({"kind": "forever"}));
    let offer_path = format!("/v1/offers/{article}");
    let purchase_path = format!("{offer_path}/purchase");

    // A preflight carries no key: answered for a page endpoint and a declared origin only.
    let preflight = |path: &str, origin: &str, method: &str| {
        server.raw(
            "OPTIONS",
            path,
            None,
            None,
            &[
                ("Origin", origin),
                ("Access-Control-Request-Method", method),
                (
                    "Access-Control-Request-Headers",
                    "authorization, content-type",
                ),
            ],
        )
    };
    for (path, method) in [
        (offer_path.as_str(), "GET"),
        ("/v1/offers", "GET"),
        ("/v1/entitlements/verify", "POST"),
    ] {
        let (status, body, headers) = preflight(path, "https://news.example", method);
        assert_eq!(status, 204, "{path}: {body}");
        assert_eq!(
            header(&headers, "access-control-allow-origin"),
            Some("https://news.example")
        );
        assert!(
            header(&headers, "access-control-allow-methods").is_some_and(|m| m.contains(method)),
            "{headers:?}"
        );
        let allowed = header(&headers, "access-control-allow-headers").unwrap_or_default();
        assert!(allowed.contains("authorization"), "{headers:?}");
        assert_eq!(header(&headers, "access-control-allow-credentials"), None);
    }
    for (path, origin, method) in [
        // An origin no key declares.
        (offer_path.as_str(), "https://evil.example", "GET"),
        // A method the page endpoint does not take.
        (offer_path.as_str(), "https://news.example", "DELETE"),
        // Any endpoint besides the page ones, even from a declared origin.
        ("/v1/charges", "https://news.example", "POST"),
        ("/v1/api_keys", "https://news.example", "POST"),
        (purchase_path.as_str(), "https://news.example", "POST"),
    ] {
        let (status, body, headers) = preflight(path, origin, method);
        assert_eq!(status, 403, "{path} {origin} {method}: {body}");
        assert_eq!(
            header(&headers, "access-control-allow-origin"),
            None,
            "{path}"
        );
    }

    // The request itself: the answer is readable by the key's own declared origin.
    let (status, body, headers) = server.raw(
        "GET",
        &offer_path,
        Some(&news_pk),
        None,
        &[("Origin", "https://news.example")],
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        header(&headers, "access-control-allow-origin"),
        Some("https://news.example")
    );
    assert!(
        header(&headers, "vary").is_some_and(|v| v.to_ascii_lowercase().contains("origin")),
        "{headers:?}"
    );
    // Another key's declared origin passed the preflight, but this key is not declared there:
    // refused, and unreadable to that page.
    let (status, _, headers) = server.raw(
        "GET",
        &offer_path,
        Some(&news_pk),
        None,
        &[("Origin", "https://blog.example")],
    );
    assert_eq!(status, 403);
    assert_eq!(header(&headers, "access-control-allow-origin"), None);
    // A secret key never gets CORS headers, whatever the Origin: it does not belong in a page.
    let (status, _, headers) = server.raw(
        "GET",
        &offer_path,
        Some(&news.key),
        None,
        &[("Origin", "https://news.example")],
    );
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "access-control-allow-origin"), None);

    // Once the key is revoked, its origin is declared by no key: preflights are refused.
    server
        .with_key(&news.key)
        .expect("DELETE", &format!("/v1/api_keys/{news_pk_id}"), None, 200);
    let (status, _, _) = preflight(&offer_path, "https://news.example", "GET");
    assert_eq!(status, 403);
    let (status, _, _) = preflight(&offer_path, "https://blog.example", "GET");
    assert_eq!(status, 204, "the other key's origin is still declared");
}
