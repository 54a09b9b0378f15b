//! The paywall's records: offers (a merchant's declared price for a resource), entitlements
//! (what a purchase granted), the views counted against them, and the keys that sign
//! entitlement tokens.
//!
//! Offers are written once (a price change is a new offer; archiving sets `archived_ns`) in a
//! store transaction. An entitlement rides in its purchase charge's journal note, so it is
//! durable exactly when the money is; it is live only while that charge's chain is in the
//! ledger (a refused chain's note still applies its records). Views are counted in a table of
//! their own, never in the journaled record, so a journal note re-applied after a crash can
//! never rewind them.
//!
//! Signing keys hold their private half (the ed25519 seed) in the store: `metadata.redb` is
//! created readable by its owner only (see `Store::open`).

use farthing_ledger::Amount;
use farthing_products::entitlement::Access;
use farthing_products::ids::{ChargeId, CustomerId, EntitlementId, MerchantId, OfferId};
use serde::{Deserialize, Serialize};

use crate::db::{IndexTable, RecordTable};
use crate::records::minor;

pub const OFFERS: RecordTable = RecordTable::new("offers");
/// (merchant, offer)
pub const OFFERS_BY_MERCHANT: IndexTable = IndexTable::new("offers_by_merchant");
/// (`resource_key(merchant, resource)`, offer)
pub const OFFERS_BY_RESOURCE: IndexTable = IndexTable::new("offers_by_resource");
pub const ENTITLEMENTS: RecordTable = RecordTable::new("entitlements");
/// (`holder_key(merchant, pseudonym, resource)`, entitlement)
pub const ENTITLEMENTS_BY_HOLDER: IndexTable = IndexTable::new("entitlements_by_holder");
/// Entitlement id → [`ViewCount`].
pub const ENTITLEMENT_VIEWS: RecordTable = RecordTable::new("entitlement_views");
/// Key number → [`SigningKeyRecord`].
pub const SIGNING_KEYS: RecordTable = RecordTable::new("signing_keys");
/// [`PSEUDONYM_SECRET_ID`] → [`PseudonymSecret`].
pub const PSEUDONYM_SECRETS: RecordTable = RecordTable::new("pseudonym_secrets");
/// The one row of [`PSEUDONYM_SECRETS`].
pub const PSEUDONYM_SECRET_ID: u128 = 1;

/// A merchant's price for a resource, as declared over the API: the browser never names it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct OfferRecord {
    pub id: OfferId,
    pub merchant: MerchantId,
    pub resource: String,
    pub asset: u32,
    #[serde(with = "minor")]
    pub amount: Amount,
    pub description: String,
    pub access: Access,
    pub created_ns: u64,
    /// Set once when archived: no purchase from then on.
    pub archived_ns: Option<u64>,
}

/// What one purchase granted a customer.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct EntitlementRecord {
    pub id: EntitlementId,
    pub merchant: MerchantId,
    pub customer: CustomerId,
    /// The customer as this merchant sees it (tokens' `sub`).
    pub pseudonym: u128,
    pub resource: String,
    pub offer: OfferId,
    /// The charge that paid for it (attempt 0 of its chain).
    pub charge: ChargeId,
    pub access: Access,
    pub created_ns: u64,
    /// When time ends it (`duration`); `None` otherwise.
    pub expires_ns: Option<u64>,
}

/// Views counted against a `views` entitlement.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct ViewCount {
    pub used: u32,
}

/// A key that signs (current) or signed (retired) entitlement tokens.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SigningKeyRecord {
    /// Keys are numbered from 1 in the order made; the highest is the current one.
    pub number: u64,
    pub kid: String,
    /// The ed25519 seed (the private key), base64url.
    pub seed: String,
    pub created_ns: u64,
    /// When a newer key replaced it.
    pub retired_ns: Option<u64>,
    /// Until when its public key stays published (every token it signed has expired by then).
    pub published_until_ns: Option<u64>,
}

/// The secret of per-merchant customer pseudonyms; made once, never rotated (a rotation would
/// rename every reader for every publisher).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PseudonymSecret {
    /// 32 bytes, base64url.
    pub secret: String,
}

/// The index key of a merchant's offers for `resource`.
pub fn resource_key(merchant: MerchantId, resource: &str) -> u128 {
    crate::util::derived_id(merchant.0, resource, "offer_resource", 0)
}

/// The index key of a holder's entitlements to `resource`.
pub fn holder_key(merchant: MerchantId, pseudonym: u128, resource: &str) -> u128 {
    // The pseudonym is fixed-width, so no two (pseudonym, resource) pairs spell the same text.
    let holder = format!("{pseudonym:032x}:{resource}");
    crate::util::derived_id(merchant.0, &holder, "entitlement_holder", 0)
}
