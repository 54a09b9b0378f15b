//! Shared test fixtures: deterministic keys and channels.

use curve25519_dalek::constants::{ED25519_BASEPOINT_TABLE, EIGHT_TORSION};
use curve25519_dalek::scalar::{clamp_integer, Scalar};
use ed25519_dalek::{Signature, SigningKey};
use farthing_ledger::{Amount, AssetId, Timestamp};
use sha2::{Digest, Sha512};

use crate::{ChannelId, ChannelKind, ChannelTerms, CustomerKey, MerchantId};

/// The time every test pays at, well before [`EXPIRES`].
pub(crate) const NOW: Timestamp = Timestamp(1_000);
pub(crate) const EXPIRES: Timestamp = Timestamp(1_000_000);

pub(crate) struct Customer {
    pub signing: SigningKey,
    pub key: CustomerKey,
}

/// A customer whose key derives from `seed`.
pub(crate) fn customer(seed: u8) -> Customer {
    let signing = SigningKey::from_bytes(&[seed; 32]);
    let key = CustomerKey::from_bytes(signing.verifying_key().as_bytes()).unwrap();
    Customer { signing, key }
}

/// Channel `id` of customer 1 to merchant 5 in asset 1, expiring at [`EXPIRES`].
pub(crate) fn terms_with(id: u128, deposit: u128, kind: ChannelKind) -> ChannelTerms {
    ChannelTerms::new(
        ChannelId(id),
        customer(1).key,
        MerchantId(5),
        AssetId(1),
        Amount(deposit),
        EXPIRES,
        kind,
    )
    .unwrap()
}

pub(crate) fn vouchers_terms(id: u128, deposit: u128) -> ChannelTerms {
    terms_with(id, deposit, ChannelKind::Vouchers)
}

pub(crate) fn payword_terms(id: u128, deposit: u128, unit_price: u128) -> ChannelTerms {
    let unit_price = Amount(unit_price);
    terms_with(id, deposit, ChannelKind::PayWord { unit_price })
}

/// A signature of `message` by `key` whose `R` is `rB + T`, `T` a torsion point of order 8:
/// valid by the cofactored rule, refused by ed25519-dalek's cofactorless `verify`, and accepted
/// by its `verify_batch` only when the batch's coefficient for it is a multiple of 8. Only the
/// key's holder can make one.
pub(crate) fn torsioned_signature(key: &SigningKey, message: &[u8], nonce: u8) -> Signature {
    let expanded = Sha512::digest(key.to_bytes());
    let mut low = [0u8; 32];
    low.copy_from_slice(&expanded[..32]);
    let secret = Scalar::from_bytes_mod_order(clamp_integer(low));
    assert_eq!(
        (&secret * ED25519_BASEPOINT_TABLE).compress(),
        key.verifying_key().to_edwards().compress(),
        "the secret scalar is the key's"
    );
    let r = Scalar::from_bytes_mod_order([nonce; 32]);
    let big_r = (&r * ED25519_BASEPOINT_TABLE + EIGHT_TORSION[1]).compress();
    let mut hash = Sha512::new();
    hash.update(big_r.as_bytes());
    hash.update(key.verifying_key().as_bytes());
    hash.update(message);
    let k = Scalar::from_bytes_mod_order_wide(&hash.finalize().into());
    let s = r + k * secret;
    let mut bytes = [0u8; 64];
    bytes[..32].copy_from_slice(big_r.as_bytes());
    bytes[32..].copy_from_slice(s.as_bytes());
    Signature::from_bytes(&bytes)
}
