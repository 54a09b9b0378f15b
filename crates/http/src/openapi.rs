//! The OpenAPI 3.1 document, generated from the route annotations and schema derives, served at
//! `/v1/openapi.json`.
//!
//! # Operation ids
//!
//! Every operation has a unique, stable `operation_id` in `resource.action` style, set in its
//! `#[utoipa::path]` and derived from the path and method alone, so a client generator gets one
//! method name per operation and a new route's name is never a matter of taste:
//!
//! - The resource part is the path's literal segments, in order, without `/v1` and without the
//!   `{parameters}`: `/v1/customers/{id}/allowances` → `customers.allowances`. A well-known
//!   document (RFC 8615) is named by its file without `/.well-known` and the extension:
//!   `GET /.well-known/jwks.json` → `jwks.get`.
//! - When the last segment is a verb (an action on what precedes it: `capture`, `void`,
//!   `batch`, `rotate_secret`, ...) it is the action, and the id is the segments alone:
//!   `POST /v1/holds/{id}/capture` → `holds.capture`, `POST /v1/transfers/batch` →
//!   `transfers.batch`.
//! - Otherwise the method names the action, by what the path ends in:
//!   - a collection (a plural noun whose members have ids): `GET` → `list`, `POST` → `create`
//!     (`customers.allowances.create`, `accounts.transfers.list`);
//!   - one member (a `{parameter}`): `GET` → `get`, `POST` → `update`, `DELETE` → `delete`
//!     (`charges.get`, `webhook_endpoints.update`, `api_keys.delete`);
//!   - a singleton (a noun with no id: `fee_plan`, `balance`, `summary`, `healthz`): `GET` →
//!     `get`, `POST` → `set` (`merchants.fee_plan.set`, `ledger.summary.get`).
//!
//! An id is lowercase words joined by dots (`^[a-z_]+(\.[a-z_]+)+$`). Ids are part of the API:
//! client code is generated from them, so a published one does not change. The tests check
//! uniqueness, the format and this rule (the verbs and singletons are listed there).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{
    accounts, assets, campaigns, charges, customers, disputes, entitlements, health, holds, keys,
    ledger, lists, merchants, offers, payouts, reports, subscriptions, tabs, transfers, webhooks,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "farthing",
        version = "1",
        description = "Micropayments on an exact, crash-safe double-entry ledger. Amounts are exact decimal strings in the asset's scale; ids are prefixed strings; errors are `{\"error\":{\"type\",\"code\",\"message\",\"param\"}}`. Authenticate with `Authorization: Bearer fk_…`."
    ),
    paths(
        merchants::create, merchants::get,
        keys::create, keys::list, keys::revoke,
        assets::create, assets::list,
        accounts::create, accounts::get, accounts::list,
        transfers::create, transfers::batch, transfers::get, transfers::post_hold, transfers::void_hold, transfers::history,
        health::healthz, health::readyz, health::metrics,
        customers::create, customers::get, customers::add_payment_method, customers::wallet,
        customers::topup, customers::set_auto_topup, customers::create_allowance,
        customers::list_allowances, customers::revoke_allowance,
        charges::set_fee_plan, charges::create, charges::get, charges::confirm, charges::refund, charges::tip,
        payouts::set_settings, payouts::balance, payouts::create, payouts::list,
        reports::fees,
        tabs::create, tabs::get, tabs::set_payment_method, tabs::advance_clock, tabs::clock,
        disputes::create, ledger::summary,
        holds::create, holds::get, holds::capture, holds::release,
        campaigns::create, campaigns::get, campaigns::contribute, campaigns::get_contribution,
        subscriptions::create_plan, subscriptions::subscribe, subscriptions::get,
        subscriptions::pause, subscriptions::resume, subscriptions::cancel,
        webhooks::create, webhooks::list, webhooks::get, webhooks::change, webhooks::delete,
        webhooks::rotate_secret, webhooks::attempts, webhooks::delivery, webhooks::redeliver,
        webhooks::event,
        lists::customers, lists::charges, lists::holds, lists::subscriptions, lists::campaigns,
        lists::tabs, lists::events, lists::transfers, lists::plan, lists::dispute, lists::topup, lists::refund,
        lists::allowance,
        offers::create, offers::list, offers::get, offers::archive, offers::purchase,
        entitlements::check, entitlements::verify, entitlements::jwks, entitlements::rotate,
    ),
    components(schemas(crate::error::ErrorBody, crate::error::ErrorDetail)),
    modifiers(&BearerAuth, &IdempotencyKeyRule),
    security(("bearer" = []))
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("fk_…")
            .build();
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// Every POST takes an `Idempotency-Key` (the layer in [`crate::idempotency`] honours it on
/// every POST route), and every such header says what the server accepts
/// (`extract::idempotency_key`): 1 to 255 visible ASCII characters (spaces and tabs allowed,
/// as in any header value).
struct IdempotencyKeyRule;

const IDEMPOTENCY_KEY_DOC: &str = "Makes the request safe to retry: its first successful \
    answer (status and body) is stored and replayed to every retry with the same key, marked \
    `Idempotent-Replayed: true`; the key with another request (other parameters or another \
    endpoint) is 409 `idempotency_error`. A refused request stores nothing and may be retried.";

impl Modify for IdempotencyKeyRule {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        for operation in openapi
            .paths
            .paths
            .values_mut()
            .flat_map(|i| i.post.as_mut())
        {
            let parameters = operation.parameters.get_or_insert_with(Vec::new);
            if !parameters.iter().any(|p| p.name == "Idempotency-Key") {
                parameters.push(
                    utoipa::openapi::path::ParameterBuilder::new()
                        .name("Idempotency-Key")
                        .parameter_in(utoipa::openapi::path::ParameterIn::Header)
                        .required(utoipa::openapi::Required::False)
                        .description(Some(IDEMPOTENCY_KEY_DOC))
                        .build(),
                );
            }
        }
        let operations = openapi.paths.paths.values_mut().flat_map(|item| {
            [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
        });
        for operation in operations {
            let parameters = operation.parameters.iter_mut().flatten();
            for parameter in parameters.filter(|p| p.name == "Idempotency-Key") {
                let schema = ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(1))
                    .max_length(Some(crate::extract::IDEMPOTENCY_KEY_LEN_MAX))
                    .pattern(Some("^[\\t\\x20-\\x7e]+$"))
                    .build();
                parameter.schema = Some(schema.into());
            }
        }
    }
}

/// `GET /v1/openapi.json`.
pub async fn document() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Routes the server serves on purpose without documenting them: the document itself.
    const UNDOCUMENTED_ROUTES: &[&str] = &["GET /v1/openapi.json"];

    /// Last path segments that are verbs: the operation's action (see "Operation ids" above).
    const ACTION_SEGMENTS: &[&str] = &[
        "advance",
        "archive",
        "batch",
        "cancel",
        "capture",
        "confirm",
        "pause",
        "post",
        "purchase",
        "redeliver",
        "release",
        "resume",
        "revoke",
        "rotate",
        "rotate_secret",
        "verify",
        "void",
    ];

    /// Last path segments that name one thing without an id: `GET` reads it, `POST` sets it.
    const SINGLETON_SEGMENTS: &[&str] = &[
        "auto_topup",
        "balance",
        "fee_plan",
        "fees",
        "healthz",
        "jwks",
        "metrics",
        "payment_method",
        "payout_settings",
        "readyz",
        "summary",
        "test_clock",
    ];

    /// Every operation of the document: ("GET /v1/charges/{id}", the operation object).
    fn operations(json: &serde_json::Value) -> Vec<(String, &serde_json::Value)> {
        let paths = json["paths"].as_object().unwrap();
        let by_path = paths.iter().flat_map(|(path, item)| {
            let by_method = item.as_object().unwrap().iter();
            by_method.map(move |(method, op)| (format!("{} {path}", method.to_uppercase()), op))
        });
        by_path.collect()
    }

    /// The operation id the naming rule gives a route ("POST /v1/holds/{id}/capture").
    fn operation_id_by_rule(route: &str) -> String {
        let (method, path) = route.split_once(' ').unwrap();
        let segments: Vec<&str> = path
            .split('/')
            .filter(|s| !s.is_empty() && *s != "v1" && *s != ".well-known")
            .map(|s| s.trim_end_matches(".json"))
            .collect();
        let nouns = segments.iter().filter(|s| !s.starts_with('{')).copied();
        let mut id: Vec<&str> = nouns.collect();
        let last = *segments.last().unwrap();
        if ACTION_SEGMENTS.contains(&last) {
            assert_eq!(method, "POST", "{route}: an action is a POST");
            return id.join(".");
        }
        let action = match (method, last) {
            ("GET", _) if SINGLETON_SEGMENTS.contains(&last) => "get",
            ("POST", _) if SINGLETON_SEGMENTS.contains(&last) => "set",
            ("GET", parameter) if parameter.starts_with('{') => "get",
            ("POST", parameter) if parameter.starts_with('{') => "update",
            ("DELETE", parameter) if parameter.starts_with('{') => "delete",
            ("GET", _) => "list",
            ("POST", _) => "create",
            _ => panic!("{route}: no action for this method on a collection or singleton"),
        };
        id.push(action);
        id.join(".")
    }

    /// `^[a-z_]+(\.[a-z_]+)+$`: two or more lowercase words joined by dots.
    fn is_dotted(id: &str) -> bool {
        let word =
            |w: &str| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
        id.split('.').count() >= 2 && id.split('.').all(word)
    }

    /// The key's rule is in the document wherever the header is.
    #[test]
    fn idempotency_keys_say_what_is_accepted() {
        let json = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let mut seen = 0;
        for (_, operation) in operations(&json) {
            let parameters = operation["parameters"].as_array().into_iter().flatten();
            for p in parameters.filter(|p| p["name"] == "Idempotency-Key") {
                assert_eq!(p["schema"]["maxLength"], 255, "{p}");
                assert_eq!(p["schema"]["minLength"], 1, "{p}");
                seen += 1;
            }
        }
        assert!(seen >= 20, "{seen} operations take the key");
    }

    /// Statuses and triggers are enums in the document: a client sees every value they take.
    #[test]
    fn payout_and_settlement_triggers_are_listed_enums() {
        let json = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let schemas = &json["components"]["schemas"];
        assert_eq!(
            schemas["PayoutTrigger"]["enum"],
            serde_json::json!(["manual", "threshold", "schedule"])
        );
        assert_eq!(
            schemas["SettlementTrigger"]["enum"],
            serde_json::json!(["threshold", "period_end", "retry", "payment_method_updated"])
        );
    }

    /// Every route the router serves is in the document, with its methods, and nothing else:
    /// both sides are read from the code (the route table and the annotations), not a copy.
    #[test]
    fn the_document_covers_every_route() {
        let json = serde_json::to_value(ApiDoc::openapi()).unwrap();
        assert_eq!(json["openapi"], "3.1.0");
        let documented: BTreeSet<String> = operations(&json).into_iter().map(|(r, _)| r).collect();
        let table = crate::api_routes();
        let served: Vec<String> = table
            .served()
            .iter()
            .map(|(m, p)| format!("{m} {p}"))
            .collect();
        let mut api = BTreeSet::new();
        for route in &served {
            assert!(
                api.insert(route.clone()),
                "{route} is in the route table twice"
            );
        }
        for route in UNDOCUMENTED_ROUTES {
            assert!(api.remove(*route), "{route} is excluded but not served");
        }
        let undocumented: Vec<_> = api.difference(&documented).collect();
        assert!(
            undocumented.is_empty(),
            "served, not documented: {undocumented:?}"
        );
        let unserved: Vec<_> = documented.difference(&api).collect();
        assert!(unserved.is_empty(), "documented, not served: {unserved:?}");
        assert!(api.len() >= 69, "{} routes", api.len());
        // Every error response of every operation documents the `{"error": {...}}` body.
        let mut error_responses = 0;
        for (route, operation) in operations(&json) {
            for (status, response) in operation["responses"].as_object().unwrap() {
                // The operational endpoints (/readyz) answer in plain text by design.
                if status.as_str() < "400" || response["content"]["text/plain"].is_object() {
                    continue;
                }
                let schema = &response["content"]["application/json"]["schema"];
                let documented = schema["properties"]["error"].is_object()
                    || schema["$ref"] == "#/components/schemas/ErrorBody";
                assert!(documented, "{route} {status}: {response}");
                error_responses += 1;
            }
        }
        assert!(
            error_responses > 50,
            "{error_responses} error responses documented"
        );
    }

    /// Client generators name one method per operationId: each is unique and `resource.action`.
    #[test]
    fn operation_ids_are_unique_and_dotted() {
        let json = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let mut ids = BTreeSet::new();
        for (route, operation) in operations(&json) {
            let id = operation["operationId"].as_str();
            let id = id.unwrap_or_else(|| panic!("{route} has no operationId"));
            assert!(is_dotted(id), "{route}: {id} is not resource.action");
            assert!(ids.insert(id), "{route}: {id} is used twice");
        }
        for bad in [
            "list",
            "charges.",
            ".get",
            "Charges.get",
            "charges-get",
            "charges.get2",
        ] {
            assert!(!is_dotted(bad), "{bad}");
        }
    }

    /// Each operationId is the one the naming rule at the top of this file gives its route, so
    /// a new route's name follows from its path and method.
    #[test]
    fn operation_ids_follow_the_naming_rule() {
        let json = serde_json::to_value(ApiDoc::openapi()).unwrap();
        for (route, operation) in operations(&json) {
            let expected = operation_id_by_rule(&route);
            assert_eq!(operation["operationId"], expected.as_str(), "{route}");
        }
        let examples = [
            ("POST /v1/charges", "charges.create"),
            ("GET /v1/charges/{id}", "charges.get"),
            (
                "POST /v1/customers/{id}/allowances",
                "customers.allowances.create",
            ),
            ("POST /v1/transfers/batch", "transfers.batch"),
            ("POST /v1/holds/{id}/capture", "holds.capture"),
            ("GET /v1/ledger/summary", "ledger.summary.get"),
        ];
        for (route, id) in examples {
            assert_eq!(operation_id_by_rule(route), id, "{route}");
        }
    }
}
