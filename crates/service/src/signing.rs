//! The keys that sign entitlement tokens: made on the first start, kept in the store
//! (`farthing_store::paywall::SIGNING_KEYS`), rotated by the operator
//! (`POST /v1/signing_keys/rotate`), and published as a JWK Set
//! (`GET /.well-known/jwks.json`). Also the secret of per-merchant customer pseudonyms.
//!
//! Rotation makes a new current key; the one it replaces stays published (and accepted by
//! `POST /v1/entitlements/verify`) until every token it signed has expired: tokens live at most
//! [`TOKEN_LIFETIME_S`], so until the rotation plus that plus [`ROTATION_MARGIN_S`].
//! Keys past that are dropped at the next rotation.

use farthing_products::ids::{CustomerId, MerchantId};
use std::sync::{Arc, OnceLock};

use data_encoding::BASE64URL_NOPAD;
use ed25519_dalek::{SigningKey, VerifyingKey};
use farthing_products::entitlement::{self, Claims, Jwk, TokenKey, TOKEN_LIFETIME_S};
use farthing_store::paywall::{
    PseudonymSecret, SigningKeyRecord, PSEUDONYM_SECRETS, PSEUDONYM_SECRET_ID, SIGNING_KEYS,
};
use farthing_store::util::rfc3339;
use farthing_store::{Changes, RecordWrite, Store};
use parking_lot::RwLock;
use serde::Serialize;

use crate::error::ServiceError;
use crate::state::{Principal, SharedState};

/// How much longer than a token's lifetime a retired key stays published, in seconds: a token
/// signed while the rotation commits is covered too.
pub const ROTATION_MARGIN_S: u64 = 300;

/// The issuer named when `farthing serve` was not told one (tests and tools that build the
/// state themselves).
pub const ISSUER_DEFAULT: &str = "farthing";

const NS_PER_S: u64 = 1_000_000_000;

/// A public key and how long it stays published (`None`: the current key).
struct Published {
    kid: String,
    key: VerifyingKey,
    until_ns: Option<u64>,
}

/// The signing keys in memory: the current one, and every one still published.
struct Keys {
    current: Arc<TokenKey>,
    published: Vec<Published>,
}

/// Signs and checks entitlement tokens; made once at start by [`Signer::open`].
pub struct Signer {
    keys: RwLock<Keys>,
    pseudonym_secret: [u8; 32],
    issuer: OnceLock<String>,
}

impl Signer {
    /// Loads the keys and the pseudonym secret, making them on the first start.
    pub fn open(store: &Store, now_ns: u64) -> Result<Signer, redb::Error> {
        let mut records: Vec<SigningKeyRecord> = store.all_records(SIGNING_KEYS)?;
        let mut writes = Vec::new();
        if records.is_empty() {
            let record = new_key(1, now_ns);
            writes.push(RecordWrite::put(SIGNING_KEYS, 1u128, &record)?);
            records.push(record);
        }
        let secret =
            match store.record::<PseudonymSecret>(PSEUDONYM_SECRETS, PSEUDONYM_SECRET_ID)? {
                Some(stored) => decode_32(&stored.secret)?,
                None => {
                    let secret: [u8; 32] = rand::random();
                    let stored = PseudonymSecret {
                        secret: BASE64URL_NOPAD.encode(&secret),
                    };
                    writes.push(RecordWrite::put(
                        PSEUDONYM_SECRETS,
                        PSEUDONYM_SECRET_ID,
                        &stored,
                    )?);
                    secret
                }
            };
        if !writes.is_empty() {
            store.apply(Changes {
                records: writes,
                ..Changes::default()
            })?;
        }
        Ok(Signer {
            keys: RwLock::new(keys_of(&records)?),
            pseudonym_secret: secret,
            issuer: OnceLock::new(),
        })
    }

    /// Sets the `iss` of every token (once; the instance's URL or a configured name).
    pub fn set_issuer(&self, issuer: String) {
        let _ = self.issuer.set(issuer);
    }

    pub fn issuer(&self) -> &str {
        self.issuer.get().map_or(ISSUER_DEFAULT, String::as_str)
    }

    /// The customer as `merchant` sees it.
    pub fn pseudonym(&self, merchant: MerchantId, customer: CustomerId) -> u128 {
        entitlement::pseudonym(&self.pseudonym_secret, merchant, customer)
    }

    /// `claims` signed with the current key.
    pub fn sign(&self, claims: &Claims) -> String {
        let key = Arc::clone(&self.keys.read().current);
        entitlement::sign(claims, &key)
    }

    /// The public key `kid` names, if it is published at `now_ns`.
    pub fn public_key(&self, kid: &str, now_ns: u64) -> Option<VerifyingKey> {
        let keys = self.keys.read();
        keys.published
            .iter()
            .find(|p| p.kid == kid && p.until_ns.is_none_or(|until| now_ns < until))
            .map(|p| p.key)
    }

    /// The keys published at `now_ns`, the current one first.
    pub fn jwks(&self, now_ns: u64) -> JwkSet {
        let keys = self.keys.read();
        let mut published: Vec<&Published> = keys
            .published
            .iter()
            .filter(|p| p.until_ns.is_none_or(|until| now_ns < until))
            .collect();
        published.sort_by_key(|p| p.until_ns.map_or(0, |until| u64::MAX - until));
        JwkSet {
            keys: published
                .iter()
                .map(|p| entitlement::jwk(&p.kid, &p.key))
                .collect(),
        }
    }

    /// The current key's id.
    pub fn current_kid(&self) -> String {
        self.keys.read().current.kid.clone()
    }
}

/// A new key record numbered `number`, from a fresh random seed.
fn new_key(number: u64, now_ns: u64) -> SigningKeyRecord {
    let seed: [u8; 32] = rand::random();
    let public = SigningKey::from_bytes(&seed).verifying_key();
    SigningKeyRecord {
        number,
        kid: entitlement::key_id(&public),
        seed: BASE64URL_NOPAD.encode(&seed),
        created_ns: now_ns,
        retired_ns: None,
        published_until_ns: None,
    }
}

fn decode_32(text: &str) -> Result<[u8; 32], redb::Error> {
    BASE64URL_NOPAD
        .decode(text.as_bytes())
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes.as_slice()).ok())
        .ok_or_else(|| redb::Error::Corrupted("a stored signing secret is not 32 bytes".into()))
}

/// The keys in memory from their records: the highest number signs.
fn keys_of(records: &[SigningKeyRecord]) -> Result<Keys, redb::Error> {
    let newest = records
        .iter()
        .max_by_key(|r| r.number)
        .ok_or_else(|| redb::Error::Corrupted("no signing key".into()))?;
    let mut published = Vec::with_capacity(records.len());
    for record in records {
        let key = TokenKey::from_seed(record.kid.clone(), &decode_32(&record.seed)?);
        published.push(Published {
            kid: record.kid.clone(),
            key: key.verifying_key(),
            until_ns: if record.number == newest.number {
                None
            } else {
                record.published_until_ns
            },
        });
    }
    let current = TokenKey::from_seed(newest.kid.clone(), &decode_32(&newest.seed)?);
    Ok(Keys {
        current: Arc::new(current),
        published,
    })
}

/// `GET /.well-known/jwks.json`: the public keys (RFC 7517).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
}

/// What a rotation answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RotationView {
    pub object: &'static str,
    /// The key that signs from now on.
    pub kid: String,
    pub created: String,
    /// The key it replaced, still published until `previous_published_until`.
    pub previous_kid: String,
    pub previous_published_until: String,
}

/// Makes a new current signing key (operator only). The previous key stays published until
/// every token it signed has expired; keys whose time is over are deleted.
pub async fn rotate(
    state: &SharedState,
    principal: &Principal,
) -> Result<RotationView, ServiceError> {
    principal.require_operator()?;
    // One rotation at a time: each reads the records, then writes the next number.
    let _guard = state.products.lock(ROTATION_LOCK).await;
    let now = state.products.clock.now();
    let mut records: Vec<SigningKeyRecord> = state.store.all_records(SIGNING_KEYS)?;
    let newest = records.iter().map(|r| r.number).max().unwrap_or(0);
    let until = now.saturating_add((TOKEN_LIFETIME_S + ROTATION_MARGIN_S) * NS_PER_S);
    let mut writes = Vec::new();
    let mut previous = None;
    records.retain_mut(|record| {
        if record.number == newest {
            record.retired_ns = Some(now);
            record.published_until_ns = Some(until);
            previous = Some(record.kid.clone());
            return true;
        }
        let over = record.published_until_ns.is_some_and(|u| u <= now);
        if over {
            writes.push(RecordWrite::Delete {
                table: SIGNING_KEYS,
                id: u128::from(record.number),
            });
        }
        !over
    });
    for record in records.iter().filter(|r| r.number == newest) {
        writes.push(RecordWrite::put(
            SIGNING_KEYS,
            u128::from(record.number),
            record,
        )?);
    }
    let record = new_key(newest + 1, now);
    writes.push(RecordWrite::put(
        SIGNING_KEYS,
        u128::from(record.number),
        &record,
    )?);
    records.push(record.clone());
    let keys = keys_of(&records)?;
    state
        .commit(Changes {
            records: writes,
            ..Changes::default()
        })
        .await?;
    *state.signing.keys.write() = keys;
    Ok(RotationView {
        object: "signing_key_rotation",
        kid: record.kid,
        created: rfc3339(now),
        previous_kid: previous.unwrap_or_default(),
        previous_published_until: rfc3339(until),
    })
}

/// The lock rotations take ([`crate::submit::Products::lock`] is keyed by object id).
const ROTATION_LOCK: u128 = u128::from_le_bytes(*b"signing-rotation");
