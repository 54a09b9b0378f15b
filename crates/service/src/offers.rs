//! Offers: a merchant's declared price for a resource (`article-1` for 0.01 USD, forever /
//! for a day / for 3 views), so the browser never decides what is charged or unlocked. An
//! offer is immutable once made: a price change is a new offer, and the old one is archived.
//!
//! Merchants (and the operator for a merchant) make, list, read and archive their offers; a
//! merchant's publishable key reads them ([`Principal::reads_public_of`]) for the paywall
//! snippet. Purchases are [`crate::entitlements`].

use farthing_ledger::{Amount, Asset};
use farthing_products::entitlement::Access;
use farthing_products::ids::MerchantId;
use farthing_products::ids::OfferId;
use farthing_products::ids::{decode_id, encode_id, IdKind};
use farthing_products::money::format_amount;
use farthing_store::paywall::{
    resource_key, OfferRecord, OFFERS, OFFERS_BY_MERCHANT, OFFERS_BY_RESOURCE,
};
use farthing_store::util::{rfc3339, time_ordered_id};
use farthing_store::{Changes, RecordWrite};
use serde::Serialize;

use crate::assets::asset_by_id;
use crate::error::ServiceError;
use crate::state::{to_json, Principal, Reply, SharedState};

/// The longest resource name, in bytes.
pub const RESOURCE_BYTES_MAX: usize = 200;
/// The longest description, in bytes.
pub const DESCRIPTION_BYTES_MAX: usize = 500;
/// The most offers one list scans before it answers `has_more` (publishable keys skip
/// archived offers, so a page may come back shorter than its limit).
const SCAN_OFFERS_MAX: usize = 1000;

/// An offer as asked for, its amount already parsed in its asset.
pub struct NewOffer {
    /// For the operator: the merchant (`mer_…`); merchant keys may omit it.
    pub merchant: Option<String>,
    pub resource: String,
    pub amount: Amount,
    pub asset: Asset,
    pub description: String,
    pub access: Access,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OfferView {
    pub id: String,
    pub object: &'static str,
    pub merchant: String,
    pub resource: String,
    pub amount: String,
    pub asset: String,
    pub description: String,
    pub access: Access,
    /// `active`, or `archived` (no purchase from then on).
    pub status: &'static str,
    pub created: String,
    pub archived: Option<String>,
}

pub fn view(state: &SharedState, offer: &OfferRecord) -> Result<OfferView, ServiceError> {
    let asset = asset_by_id(state, offer.asset)?;
    Ok(OfferView {
        id: encode_id(IdKind::Offer, offer.id.0),
        object: "offer",
        merchant: encode_id(IdKind::Merchant, offer.merchant.0),
        resource: offer.resource.clone(),
        amount: format_amount(offer.amount, asset.scale),
        asset: asset.code.to_string(),
        description: offer.description.clone(),
        access: offer.access,
        status: if offer.archived_ns.is_some() {
            "archived"
        } else {
            "active"
        },
        created: rfc3339(offer.created_ns),
        archived: offer.archived_ns.map(rfc3339),
    })
}

/// A resource name: 1 to [`RESOURCE_BYTES_MAX`] bytes without control characters.
pub fn check_resource(resource: &str, param: &str) -> Result<(), ServiceError> {
    if resource.is_empty()
        || resource.len() > RESOURCE_BYTES_MAX
        || resource.chars().any(char::is_control)
    {
        return Err(ServiceError::invalid(
            param,
            "invalid_resource",
            format!("{param} must be 1 to {RESOURCE_BYTES_MAX} bytes without control characters"),
        ));
    }
    Ok(())
}

/// The merchant a merchant-scoped call acts for: a merchant key's own (naming another is a
/// 404, as for any merchant it cannot see), or the one the operator names.
pub fn acting_merchant(
    state: &SharedState,
    principal: &Principal,
    named: Option<&str>,
) -> Result<MerchantId, ServiceError> {
    let merchant = match (named, principal.merchant()) {
        (Some(text), _) => MerchantId::decode(text)
            .ok_or_else(|| ServiceError::not_found(Some("merchant"), "merchant"))?,
        (None, Some(own)) => own,
        (None, None) => {
            return Err(ServiceError::invalid(
                "merchant",
                "merchant_required",
                "the operator names the merchant (mer_…)",
            ))
        }
    };
    if !principal.reads_public_of(merchant)
        || !state
            .products
            .cache
            .merchant_exists(&state.store, merchant)?
    {
        return Err(ServiceError::not_found(Some("merchant"), "merchant"));
    }
    Ok(merchant)
}

/// Makes an offer (201), at most once per Idempotency-Key.
pub async fn create(
    state: &SharedState,
    principal: &Principal,
    key: Option<String>,
    request: &[u8],
    new: NewOffer,
) -> Result<Reply, ServiceError> {
    principal.require_write()?;
    let merchant = acting_merchant(state, principal, new.merchant.as_deref())?;
    check_resource(&new.resource, "resource")?;
    if new.description.len() > DESCRIPTION_BYTES_MAX {
        return Err(ServiceError::invalid(
            "description",
            "description_too_long",
            format!("description must be at most {DESCRIPTION_BYTES_MAX} bytes"),
        ));
    }
    let access = new
        .access
        .validate()
        .map_err(|e| ServiceError::invalid(e.param(), "invalid_access", e.to_string()))?;
    state
        .idempotent(principal.tenant(), key, "offers", request, || async move {
            let now = state.products.clock.now();
            let offer = OfferRecord {
                id: OfferId(time_ordered_id(now)),
                merchant,
                resource: new.resource,
                asset: new.asset.id.0,
                amount: new.amount,
                description: new.description,
                access,
                created_ns: now,
                archived_ns: None,
            };
            let body = to_json(&view(state, &offer)?)?;
            let records = vec![
                RecordWrite::put(OFFERS, offer.id, &offer)?,
                RecordWrite::Index {
                    index: OFFERS_BY_MERCHANT,
                    parent: merchant.0,
                    id: offer.id.0,
                },
                RecordWrite::Index {
                    index: OFFERS_BY_RESOURCE,
                    parent: resource_key(merchant, &offer.resource),
                    id: offer.id.0,
                },
            ];
            Ok((
                201_u16,
                body,
                Changes {
                    records,
                    ..Changes::default()
                },
            ))
        })
        .await
}

/// The offer `id` if the caller may read it: its merchant's keys, the operator, the merchant's
/// publishable key. Anything else is a 404, as for a missing one.
pub fn visible_offer(
    state: &SharedState,
    principal: &Principal,
    id: OfferId,
) -> Result<OfferRecord, ServiceError> {
    let missing = || ServiceError::not_found(Some("id"), "offer");
    let id = id.0;
    let offer: OfferRecord = state.store.record(OFFERS, id)?.ok_or_else(missing)?;
    if !principal.reads_public_of(offer.merchant) {
        return Err(missing());
    }
    Ok(offer)
}

/// Archives an offer: no purchase from then on (entitlements it granted stay). Archiving an
/// archived offer changes nothing.
pub async fn archive(
    state: &SharedState,
    principal: &Principal,
    id: OfferId,
) -> Result<OfferView, ServiceError> {
    principal.require_write()?;
    let mut offer = visible_offer(state, principal, id)?;
    let _guard = state.products.lock(offer.id.0).await;
    offer = state
        .store
        .record(OFFERS, offer.id)?
        .ok_or_else(|| ServiceError::not_found(Some("id"), "offer"))?;
    if offer.archived_ns.is_none() {
        offer.archived_ns = Some(state.products.clock.now());
        state
            .commit(Changes {
                records: vec![RecordWrite::put(OFFERS, offer.id, &offer)?],
                ..Changes::default()
            })
            .await?;
    }
    view(state, &offer)
}

/// What a list of offers asks for.
pub struct OfferQuery {
    pub merchant: Option<String>,
    pub resource: Option<String>,
    pub limit: usize,
    pub starting_after: Option<String>,
}

/// A merchant's offers in creation order, or those for one resource; a publishable key sees
/// the active ones only. Returns the page and whether more follow.
pub fn list(
    state: &SharedState,
    principal: &Principal,
    query: &OfferQuery,
) -> Result<(Vec<OfferView>, bool), ServiceError> {
    let merchant = acting_merchant(state, principal, query.merchant.as_deref())?;
    let (index, parent) = match &query.resource {
        Some(resource) => {
            check_resource(resource, "resource")?;
            (OFFERS_BY_RESOURCE, resource_key(merchant, resource))
        }
        None => (OFFERS_BY_MERCHANT, merchant.0),
    };
    let mut after = match &query.starting_after {
        Some(text) => Some(decode_id(IdKind::Offer, text).ok_or_else(|| {
            ServiceError::invalid(
                "starting_after",
                "invalid_id",
                "starting_after must be an ofr_… id",
            )
        })?),
        None => None,
    };
    let mut data = Vec::new();
    let mut scanned = 0;
    loop {
        let (ids, more) = state.store.indexed(index, parent, after, query.limit)?;
        for id in &ids {
            let Some(offer) = state.store.record::<OfferRecord>(OFFERS, *id)? else {
                continue;
            };
            if principal.is_publishable() && offer.archived_ns.is_some() {
                continue;
            }
            data.push(view(state, &offer)?);
            if data.len() == query.limit {
                let more = more || ids.last() != Some(id);
                return Ok((data, more));
            }
        }
        scanned += ids.len();
        if !more || scanned >= SCAN_OFFERS_MAX {
            return Ok((data, more));
        }
        after = ids.last().copied();
    }
}
