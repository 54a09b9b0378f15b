//! Entitlements: buying an offer ([`purchase`]), the signed token that proves it, checking a
//! token ([`verify`], which counts a view of a `views` grant), and asking whether a customer
//! holds a live grant ([`check`]).
//!
//! A purchase is a normal charge ([`charges::charge_declared`]: the customer's token consents,
//! the merchant's fee plan splits it, the resource is the charge's `resource_id`) of the
//! offer's declared amount; the request names no amount. The entitlement record rides in the
//! charge's journal note, so it is durable exactly when the money is, and counts only while
//! the charge's chain is in the ledger. Purchases of one (merchant, customer, resource) are
//! serialized, and one that finds a live grant charges nothing and returns it with a fresh
//! token. With an Idempotency-Key the charge's id derives from the key: a retry after a crash
//! finds the grant its first attempt booked.
//!
//! Tokens name the customer by its per-merchant pseudonym (`psn_…`), never its id.

use farthing_products::entitlement::{self, Access, Claims, Expected, TokenRefusal};
use farthing_products::ids::CustomerId;
use farthing_products::ids::OfferId;
use farthing_products::ids::{decode_id, encode_id, IdKind};
use farthing_products::ids::{ChargeId, EntitlementId};
use farthing_products::rules::charge::ChargeStatus;
use farthing_store::paywall::{
    holder_key, EntitlementRecord, OfferRecord, ViewCount, ENTITLEMENTS, ENTITLEMENTS_BY_HOLDER,
    ENTITLEMENT_VIEWS, OFFERS,
};
use farthing_store::util::{derived_id, random_id, rfc3339, time_ordered_id};
use farthing_store::{Changes, RecordWrite};
use serde::Serialize;

use crate::assets::asset_by_id;
use crate::charges::{self, DeclaredCharge};
use crate::error::ServiceError;
use crate::offers::check_resource;
use crate::state::{to_json, Principal, Reply, SharedState};

const NS_PER_S: u64 = 1_000_000_000;
/// The most entitlements of one holder to one resource a lookup reads (one per purchase; a
/// `views` grant used up and bought again adds one each time).
const HOLDER_ENTITLEMENTS_MAX: usize = 10_000;
/// Entitlements read per index page.
const PAGE: usize = 100;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EntitlementView {
    pub id: String,
    pub object: &'static str,
    pub merchant: String,
    /// The customer as this merchant sees it (`psn_…`, the tokens' `sub`).
    pub subject: String,
    pub resource: String,
    pub offer: String,
    /// The charge that paid for it.
    pub charge: String,
    pub access: Access,
    /// When time ends it (`duration`), or none.
    pub expires: Option<String>,
    /// Views left (`views`), or none.
    pub views_remaining: Option<u32>,
    /// Whether it grants access now.
    pub live: bool,
    pub created: String,
}

/// What a purchase answers: the grant, a token for it, and whether this call charged.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PurchaseView {
    pub object: &'static str,
    /// Whether this purchase charged the customer (false: it held a live grant already).
    pub charged: bool,
    /// The charge this purchase made, when it charged.
    pub charge: Option<charges::ChargeView>,
    pub entitlement: EntitlementView,
    /// The entitlement token: an EdDSA-signed JWT (compact JWS) for the merchant's server.
    pub token: String,
    pub token_expires: String,
}

/// What `POST /v1/entitlements/verify` answers for a good token.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VerificationView {
    pub object: &'static str,
    pub valid: bool,
    pub entitlement: String,
    pub subject: String,
    pub merchant: String,
    pub resource: String,
    pub access: Access,
    pub token_expires: String,
    /// Views left after this one (`views`), or none.
    pub views_remaining: Option<u32>,
}

/// What `GET /v1/entitlements` answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EntitlementCheck {
    pub object: &'static str,
    pub resource: String,
    pub subject: String,
    /// Whether the customer holds a live grant to the resource.
    pub entitled: bool,
    /// The live grant, when there is one.
    pub entitlement: Option<EntitlementView>,
}

fn seconds(ns: u64) -> u64 {
    ns / NS_PER_S
}

fn views_used(state: &SharedState, id: u128) -> Result<u32, ServiceError> {
    Ok(state
        .store
        .record::<ViewCount>(ENTITLEMENT_VIEWS, id)?
        .map_or(0, |v| v.used))
}

fn remaining(access: Access, used: u32) -> Option<u32> {
    access.views().map(|count| count.saturating_sub(used))
}

/// Whether `e`'s charge is booked and the grant live at `now` (`views_used` counted).
async fn is_live(
    state: &SharedState,
    e: &EntitlementRecord,
    views_used: u32,
    now: u64,
) -> Result<bool, ServiceError> {
    let in_terms = entitlement::is_live(
        e.access,
        e.expires_ns.map(seconds),
        views_used,
        seconds(now),
    );
    if !in_terms {
        return Ok(false);
    }
    let Some(charge) = charges::load_charge(state, e.charge.0).await? else {
        return Ok(false);
    };
    Ok(charges::charge_state(state, &charge) == ChargeStatus::Succeeded)
}

pub async fn view(
    state: &SharedState,
    e: &EntitlementRecord,
    now: u64,
) -> Result<EntitlementView, ServiceError> {
    let used = views_used(state, e.id.0)?;
    Ok(EntitlementView {
        id: encode_id(IdKind::Entitlement, e.id.0),
        object: "entitlement",
        merchant: encode_id(IdKind::Merchant, e.merchant.0),
        subject: encode_id(IdKind::Pseudonym, e.pseudonym),
        resource: e.resource.clone(),
        offer: encode_id(IdKind::Offer, e.offer.0),
        charge: encode_id(IdKind::Charge, e.charge.0),
        access: e.access,
        expires: e.expires_ns.map(rfc3339),
        views_remaining: remaining(e.access, used),
        live: is_live(state, e, used, now).await?,
        created: rfc3339(e.created_ns),
    })
}

/// The newest live grant of `holder` at `now`, once every answered journal note is applied.
async fn live_grant(
    state: &SharedState,
    holder: u128,
    now: u64,
) -> Result<Option<EntitlementRecord>, ServiceError> {
    state.products.journal.settle_all().await?;
    let mut after = None;
    let mut newest: Option<EntitlementRecord> = None;
    for _ in 0..HOLDER_ENTITLEMENTS_MAX / PAGE {
        let (ids, more) = state
            .store
            .indexed(ENTITLEMENTS_BY_HOLDER, holder, after, PAGE)?;
        for id in &ids {
            let Some(e) = state.store.record::<EntitlementRecord>(ENTITLEMENTS, *id)? else {
                continue;
            };
            let used = views_used(state, e.id.0)?;
            let newer = newest.as_ref().is_none_or(|n| e.created_ns > n.created_ns);
            if newer && is_live(state, &e, used, now).await? {
                newest = Some(e);
            }
        }
        if !more {
            break;
        }
        after = ids.last().copied();
    }
    Ok(newest)
}

/// A fresh token for `e`, issued at `now`: (token, its expiry in ns).
fn token_for(state: &SharedState, e: &EntitlementRecord, now: u64) -> (String, u64) {
    let iat = seconds(now);
    let exp = entitlement::token_expiry(iat, e.expires_ns.map(seconds));
    let claims = Claims {
        iss: state.signing.issuer().to_string(),
        sub: encode_id(IdKind::Pseudonym, e.pseudonym),
        aud: encode_id(IdKind::Merchant, e.merchant.0),
        resource: e.resource.clone(),
        access: e.access,
        exp,
        iat,
        jti: encode_id(IdKind::Entitlement, random_id()).replacen("ent_", "tok_", 1),
        entitlement: encode_id(IdKind::Entitlement, e.id.0),
    };
    (state.signing.sign(&claims), exp.saturating_mul(NS_PER_S))
}

/// Buys offer `offer_id` with the customer's own token: charges the offer's declared amount
/// and grants what it offers (201), or, when the customer holds a live grant to the resource
/// already, returns it with a fresh token and charges nothing (200).
pub async fn purchase(
    state: &SharedState,
    caller: &Principal,
    offer_id: OfferId,
    key: Option<String>,
) -> Result<Reply, ServiceError> {
    let customer = caller.own_customer("a purchase is made")?;
    let missing = || ServiceError::not_found(Some("id"), "offer");
    let id = offer_id.0;
    let offer: OfferRecord = state.store.record(OFFERS, id)?.ok_or_else(missing)?;
    if offer.archived_ns.is_some() {
        return Err(ServiceError::refused(
            "offer_archived",
            "this offer is archived; the merchant offers the resource under a newer offer",
        )
        .with_param("id"));
    }
    let pseudonym = state.signing.pseudonym(offer.merchant, customer);
    let holder = holder_key(offer.merchant, pseudonym, &offer.resource);
    // One purchase per holder and resource at a time: two tabs buying the same article
    // charge once.
    let _guard = state.products.lock(holder).await;
    let now = state.products.clock.now();
    let charge_id = match &key {
        Some(key) => derived_id(customer.0, key, "purchase", 0),
        None => time_ordered_id(now),
    };
    if let Some(existing) = live_grant(state, holder, now).await? {
        // The grant this key's own first attempt booked (a retry after a crash) is its answer.
        let status = if existing.charge == ChargeId(charge_id) {
            201
        } else {
            200
        };
        return granted(state, &existing, status, None, now).await;
    }
    let asset = asset_by_id(state, offer.asset)?;
    let grant = EntitlementRecord {
        id: EntitlementId(derived_id(charge_id, "entitlement", "entitlement", 0)),
        merchant: offer.merchant,
        customer,
        pseudonym,
        resource: offer.resource.clone(),
        offer: offer.id,
        charge: ChargeId(charge_id),
        access: offer.access,
        created_ns: now,
        expires_ns: offer
            .access
            .expires_s(seconds(now))
            .map(|s| s.saturating_mul(NS_PER_S)),
    };
    let writes = vec![
        RecordWrite::put(ENTITLEMENTS, grant.id, &grant)?,
        RecordWrite::Index {
            index: ENTITLEMENTS_BY_HOLDER,
            parent: holder,
            id: grant.id.0,
        },
    ];
    let declared = DeclaredCharge {
        id: charge_id,
        merchant: offer.merchant,
        asset,
        amount: offer.amount,
        description: offer.description.clone(),
        resource_id: offer.resource.clone(),
    };
    let charge = charges::charge_declared(state, caller, declared, writes).await?;
    granted(state, &grant, 201, Some(charge), now).await
}

async fn granted(
    state: &SharedState,
    e: &EntitlementRecord,
    status: u16,
    charge: Option<charges::ChargeView>,
    now: u64,
) -> Result<Reply, ServiceError> {
    let (token, expires) = token_for(state, e, now);
    let view = PurchaseView {
        object: "purchase",
        charged: charge.is_some(),
        charge,
        entitlement: view(state, e, now).await?,
        token,
        token_expires: rfc3339(expires),
    };
    Ok(Reply {
        status,
        body: to_json(&view)?,
    })
}

/// A token refused, naming why.
fn refused(refusal: TokenRefusal) -> ServiceError {
    ServiceError::refused(refusal.code(), refusal.to_string()).with_param(refusal.param())
}

/// Checks `token` for the caller's merchant (any key of it, its publishable key included):
/// signature by a published key, expiry, audience, and `resource` when named. For a `views`
/// grant each call counts one view, exactly once, and a grant with none left is refused.
pub async fn verify(
    state: &SharedState,
    principal: &Principal,
    token: &str,
    resource: Option<&str>,
) -> Result<VerificationView, ServiceError> {
    let merchant = principal.merchant().ok_or_else(|| {
        ServiceError::forbidden("tokens are verified with a key of the merchant they are for")
    })?;
    if let Some(resource) = resource {
        check_resource(resource, "resource")?;
    }
    let now = state.products.clock.now();
    let audience = encode_id(IdKind::Merchant, merchant.0);
    let expected = Expected {
        audience: &audience,
        resource,
        now_s: seconds(now),
    };
    let claims = entitlement::verify(token, |kid| state.signing.public_key(kid, now), &expected)
        .map_err(refused)?;
    let id = decode_id(IdKind::Entitlement, &claims.entitlement)
        .ok_or_else(|| refused(TokenRefusal::Malformed))?;
    state.products.journal.settle(id).await?;
    let e: EntitlementRecord = state
        .store
        .record::<EntitlementRecord>(ENTITLEMENTS, id)?
        .filter(|e| e.merchant == merchant)
        .ok_or_else(|| refused(TokenRefusal::Malformed))?;
    let views_remaining = match e.access {
        Access::Views { count } => Some(count_view(state, &e, count).await?),
        Access::Forever | Access::Duration { .. } => {
            if !is_live(state, &e, 0, now).await? {
                return Err(no_longer_live());
            }
            None
        }
    };
    Ok(VerificationView {
        object: "entitlement_verification",
        valid: true,
        entitlement: claims.entitlement,
        subject: claims.sub,
        merchant: claims.aud,
        resource: claims.resource,
        access: claims.access,
        token_expires: rfc3339(claims.exp.saturating_mul(NS_PER_S)),
        views_remaining,
    })
}

fn no_longer_live() -> ServiceError {
    ServiceError::refused(
        "entitlement_not_live",
        "the grant behind this token no longer gives access",
    )
    .with_param("token")
}

/// Counts one view of `e` (of `count`) durably, under the grant's lock so concurrent calls
/// each take their own; returns the views left. None left: `no_views_left`.
async fn count_view(
    state: &SharedState,
    e: &EntitlementRecord,
    count: u32,
) -> Result<u32, ServiceError> {
    let _guard = state.products.lock(e.id.0).await;
    let used = views_used(state, e.id.0)?;
    if used >= count {
        return Err(ServiceError::refused(
            "no_views_left",
            format!("all {count} views of this grant are used"),
        )
        .with_param("token"));
    }
    let now = state.products.clock.now();
    if !is_live(state, e, used, now).await? {
        return Err(no_longer_live());
    }
    let counted = ViewCount { used: used + 1 };
    state
        .commit(Changes {
            records: vec![RecordWrite::put(ENTITLEMENT_VIEWS, e.id, &counted)?],
            ..Changes::default()
        })
        .await?;
    Ok(count - counted.used)
}

/// Whether `customer` (a `cus_…` id, or the `psn_…` pseudonym the merchant's tokens carry)
/// holds a live grant to `resource` from the caller's merchant (the operator names one).
pub async fn check(
    state: &SharedState,
    principal: &Principal,
    merchant: Option<&str>,
    customer: &str,
    resource: &str,
) -> Result<EntitlementCheck, ServiceError> {
    let merchant = crate::offers::acting_merchant(state, principal, merchant)?;
    check_resource(resource, "resource")?;
    let pseudonym = if let Some(id) = decode_id(IdKind::Customer, customer) {
        state.signing.pseudonym(merchant, CustomerId(id))
    } else if let Some(pseudonym) = decode_id(IdKind::Pseudonym, customer) {
        pseudonym
    } else {
        return Err(ServiceError::invalid(
            "customer",
            "invalid_id",
            "customer must be a cus_… id or the psn_… pseudonym of a token's sub",
        ));
    };
    let now = state.products.clock.now();
    let grant = live_grant(state, holder_key(merchant, pseudonym, resource), now).await?;
    let entitlement = match &grant {
        Some(e) => Some(view(state, e, now).await?),
        None => None,
    };
    Ok(EntitlementCheck {
        object: "entitlement_check",
        resource: resource.to_string(),
        subject: encode_id(IdKind::Pseudonym, pseudonym),
        entitled: entitlement.is_some(),
        entitlement,
    })
}
