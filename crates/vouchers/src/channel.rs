//! A payment channel's identity and terms, and their canonical encoding.
//!
//! A channel is opened by a customer towards one merchant: a deposit in one asset is held in the
//! ledger until `expires`, and the customer pays over it with proofs of one kind, fixed when the
//! channel is opened ([`ChannelKind`]): PayWord hash-chain payments at a unit price, or cumulative
//! signed vouchers. Fixing the kind keeps "the best proof" well defined: a channel never has two
//! kinds of proof whose amounts would have to be added up.
//!
//! Everything that is signed or hashed names the channel by its [`ChannelDigest`], the SHA-256
//! of the terms' canonical encoding ([`ChannelTerms::encode`]). A proof is therefore bound to
//! the exact terms (merchant, asset, deposit, expiry, kind, price), not only to an id: a
//! voucher signed for one set of terms never verifies under another, even with the same id.
//!
//! The encoding, 126 bytes, all integers big-endian:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 16 | domain tag `farthing:channel` |
//! | 16 | 1 | format version, 1 |
//! | 17 | 16 | channel id |
//! | 33 | 32 | customer key (compressed Edwards point) |
//! | 65 | 16 | merchant id |
//! | 81 | 4 | asset id |
//! | 85 | 16 | deposit, minor units |
//! | 101 | 8 | expiry, ns since the Unix epoch |
//! | 109 | 1 | kind: 1 PayWord, 2 vouchers |
//! | 110 | 16 | PayWord unit price, minor units (0 for vouchers) |

use ed25519_dalek::VerifyingKey;
use farthing_ledger::{Amount, AssetId, Timestamp};
use sha2::{Digest, Sha256};

/// The version byte of every encoding in this crate. A change of any layout is a new version.
pub const FORMAT_VERSION: u8 = 1;

/// The domain tag of the terms' encoding.
pub(crate) const TERMS_TAG: &[u8; 16] = b"farthing:channel";

/// Length of [`ChannelTerms::encode`].
pub const TERMS_ENCODED_LEN: usize = 126;

/// A channel's id, unique forever (like every farthing id). 0 is reserved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelId(pub u128);

/// The merchant a channel pays. 0 is reserved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MerchantId(pub u128);

/// SHA-256 of a channel's canonical terms: how signed messages name the channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ChannelDigest(pub [u8; 32]);

/// A customer's registered ed25519 public key.
///
/// Invariant: a point on the curve that is not of small order. A small-order key is refused
/// because under it anyone can make a signature that verifies for every message (ed25519's
/// "weak keys"), which would let anyone spend the customer's deposit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CustomerKey(VerifyingKey);

/// Why 32 bytes are not a customer key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("is not the encoding of a point on the ed25519 curve")]
    NotAPoint,
    #[error("is a small-order (weak) ed25519 key, under which anyone can sign")]
    Weak,
}

impl KeyError {
    /// The field at fault, as an API names it.
    pub fn field(&self) -> &'static str {
        "public_key"
    }
}

impl CustomerKey {
    /// Checks and registers a public key given as its 32-byte compressed encoding.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<CustomerKey, KeyError> {
        let key = VerifyingKey::from_bytes(bytes).map_err(|_| KeyError::NotAPoint)?;
        if key.is_weak() {
            return Err(KeyError::Weak);
        }
        Ok(CustomerKey(key))
    }

    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    pub(crate) fn verifying_key(&self) -> &VerifyingKey {
        &self.0
    }
}

/// Which proofs a channel takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelKind {
    /// PayWord: each revealed position of a committed hash chain is worth `unit_price`.
    PayWord { unit_price: Amount },
    /// Cumulative amounts signed by the customer's key; only the highest counts.
    Vouchers,
}

impl ChannelKind {
    fn code(self) -> u8 {
        match self {
            ChannelKind::PayWord { .. } => 1,
            ChannelKind::Vouchers => 2,
        }
    }
}

/// A channel's terms. Fields are private: [`ChannelTerms::new`] checks them once, so every
/// verifier can rely on a positive deposit and a unit price within it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelTerms {
    id: ChannelId,
    customer_key: CustomerKey,
    merchant: MerchantId,
    asset: AssetId,
    deposit: Amount,
    expires: Timestamp,
    kind: ChannelKind,
}

/// Why a channel's terms are refused. Each names its field ([`TermsError::field`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TermsError {
    #[error("channel id 0 is reserved")]
    ZeroChannelId,
    #[error("merchant id 0 is reserved")]
    ZeroMerchant,
    #[error("asset id 0 is reserved")]
    ZeroAsset,
    #[error("the deposit must be positive")]
    ZeroDeposit,
    #[error("the unit price must be positive")]
    ZeroUnitPrice,
    #[error("the unit price {unit_price} is above the deposit {deposit}")]
    UnitPriceAboveDeposit { unit_price: Amount, deposit: Amount },
}

impl TermsError {
    /// The field at fault, as an API names it.
    pub fn field(&self) -> &'static str {
        match self {
            TermsError::ZeroChannelId => "channel",
            TermsError::ZeroMerchant => "merchant",
            TermsError::ZeroAsset => "asset",
            TermsError::ZeroDeposit => "deposit",
            TermsError::ZeroUnitPrice | TermsError::UnitPriceAboveDeposit { .. } => "unit_price",
        }
    }
}

impl ChannelTerms {
    pub fn new(
        id: ChannelId,
        customer_key: CustomerKey,
        merchant: MerchantId,
        asset: AssetId,
        deposit: Amount,
        expires: Timestamp,
        kind: ChannelKind,
    ) -> Result<ChannelTerms, TermsError> {
        if id.0 == 0 {
            return Err(TermsError::ZeroChannelId);
        }
        if merchant.0 == 0 {
            return Err(TermsError::ZeroMerchant);
        }
        if asset.0 == 0 {
            return Err(TermsError::ZeroAsset);
        }
        if deposit.is_zero() {
            return Err(TermsError::ZeroDeposit);
        }
        if let ChannelKind::PayWord { unit_price } = kind {
            if unit_price.is_zero() {
                return Err(TermsError::ZeroUnitPrice);
            }
            if unit_price > deposit {
                return Err(TermsError::UnitPriceAboveDeposit {
                    unit_price,
                    deposit,
                });
            }
        }
        Ok(ChannelTerms {
            id,
            customer_key,
            merchant,
            asset,
            deposit,
            expires,
            kind,
        })
    }

    pub fn id(&self) -> ChannelId {
        self.id
    }

    pub fn customer_key(&self) -> &CustomerKey {
        &self.customer_key
    }

    pub fn merchant(&self) -> MerchantId {
        self.merchant
    }

    pub fn asset(&self) -> AssetId {
        self.asset
    }

    pub fn deposit(&self) -> Amount {
        self.deposit
    }

    /// The first instant at which the channel takes no more payments.
    pub fn expires(&self) -> Timestamp {
        self.expires
    }

    pub fn kind(&self) -> ChannelKind {
        self.kind
    }

    /// The canonical encoding (the table in this module's documentation).
    pub fn encode(&self) -> [u8; TERMS_ENCODED_LEN] {
        let unit_price = match self.kind {
            ChannelKind::PayWord { unit_price } => unit_price,
            ChannelKind::Vouchers => Amount::ZERO,
        };
        let mut out = [0u8; TERMS_ENCODED_LEN];
        let mut at = Writer::new(&mut out);
        at.put(TERMS_TAG);
        at.put(&[FORMAT_VERSION]);
        at.put(&self.id.0.to_be_bytes());
        at.put(&self.customer_key.to_bytes());
        at.put(&self.merchant.0.to_be_bytes());
        at.put(&self.asset.0.to_be_bytes());
        at.put(&self.deposit.0.to_be_bytes());
        at.put(&self.expires.0.to_be_bytes());
        at.put(&[self.kind.code()]);
        at.put(&unit_price.0.to_be_bytes());
        at.finish();
        out
    }

    /// SHA-256 of [`ChannelTerms::encode`].
    pub fn digest(&self) -> ChannelDigest {
        ChannelDigest(Sha256::digest(self.encode()).into())
    }
}

/// Writes fields one after another into a fixed-size encoding; `finish` checks that the layout
/// filled it exactly (a layout mistake fails every test, not a customer's signature).
pub(crate) struct Writer<'a> {
    out: &'a mut [u8],
    at: usize,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(out: &'a mut [u8]) -> Writer<'a> {
        Writer { out, at: 0 }
    }

    pub(crate) fn put(&mut self, bytes: &[u8]) {
        self.out[self.at..self.at + bytes.len()].copy_from_slice(bytes);
        self.at += bytes.len();
    }

    pub(crate) fn finish(self) {
        assert_eq!(
            self.at,
            self.out.len(),
            "an encoding's layout is its length"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{customer, terms_with, vouchers_terms};

    #[test]
    fn terms_refusals_name_their_field() {
        let key = customer(1).key;
        let check =
            |id: u128, merchant: u128, asset: u32, deposit: u128, kind, want: TermsError| {
                let got = ChannelTerms::new(
                    ChannelId(id),
                    key,
                    MerchantId(merchant),
                    AssetId(asset),
                    Amount(deposit),
                    Timestamp(1),
                    kind,
                );
                assert_eq!(got, Err(want));
                want.field()
            };
        let price = |p: u128| ChannelKind::PayWord {
            unit_price: Amount(p),
        };
        let v = ChannelKind::Vouchers;
        assert_eq!(check(0, 1, 1, 10, v, TermsError::ZeroChannelId), "channel");
        assert_eq!(check(1, 0, 1, 10, v, TermsError::ZeroMerchant), "merchant");
        assert_eq!(check(1, 1, 0, 10, v, TermsError::ZeroAsset), "asset");
        assert_eq!(check(1, 1, 1, 0, v, TermsError::ZeroDeposit), "deposit");
        assert_eq!(
            check(1, 1, 1, 10, price(0), TermsError::ZeroUnitPrice),
            "unit_price"
        );
        let above = TermsError::UnitPriceAboveDeposit {
            unit_price: Amount(11),
            deposit: Amount(10),
        };
        assert_eq!(check(1, 1, 1, 10, price(11), above), "unit_price");
    }

    #[test]
    fn a_weak_key_is_refused() {
        // The identity point (y = 1) has order 1: every signature with R = sB verifies under it.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(CustomerKey::from_bytes(&identity), Err(KeyError::Weak));
        assert_eq!(KeyError::Weak.field(), "public_key");
    }

    #[test]
    fn bytes_off_the_curve_are_not_a_key() {
        // y = 2 has no x on ed25519 (2 is not (y²-1)/(dy²+1) of a square).
        let mut off = [0u8; 32];
        off[0] = 2;
        assert_eq!(CustomerKey::from_bytes(&off), Err(KeyError::NotAPoint));
    }

    /// The encoding is pinned: a change is a new format version, never a silent one (every
    /// signature a customer made would stop verifying).
    #[test]
    fn the_terms_encoding_is_pinned() {
        let terms = vouchers_terms(7, 1_000);
        let bytes = terms.encode();
        assert_eq!(&bytes[..16], b"farthing:channel");
        assert_eq!(bytes[16], FORMAT_VERSION);
        assert_eq!(&bytes[17..33], &7u128.to_be_bytes());
        assert_eq!(&bytes[33..65], &terms.customer_key().to_bytes());
        assert_eq!(&bytes[85..101], &1_000u128.to_be_bytes());
        assert_eq!(bytes[109], 2);
        assert_eq!(&bytes[110..126], &[0u8; 16]);
        let paid = terms_with(
            7,
            1_000,
            ChannelKind::PayWord {
                unit_price: Amount(3),
            },
        );
        assert_eq!(paid.encode()[109], 1);
        assert_eq!(&paid.encode()[110..126], &3u128.to_be_bytes());
    }

    #[test]
    fn every_term_changes_the_digest() {
        let base = vouchers_terms(7, 1_000);
        let other_key = customer(2).key;
        let variants = [
            ChannelTerms {
                id: ChannelId(8),
                ..base
            },
            ChannelTerms {
                customer_key: other_key,
                ..base
            },
            ChannelTerms {
                merchant: MerchantId(99),
                ..base
            },
            ChannelTerms {
                asset: AssetId(99),
                ..base
            },
            ChannelTerms {
                deposit: Amount(1_001),
                ..base
            },
            ChannelTerms {
                expires: Timestamp(base.expires.0 + 1),
                ..base
            },
            ChannelTerms {
                kind: ChannelKind::PayWord {
                    unit_price: Amount(1),
                },
                ..base
            },
        ];
        for variant in variants {
            assert_ne!(variant.digest(), base.digest(), "{variant:?}");
        }
    }
}
