//! Cumulative signed vouchers: the customer signs "channel C has paid A in all, voucher N".
//!
//! Each voucher carries the channel's whole total so far, so only the highest matters: the
//! merchant keeps the best one and redeems it. The verifier takes a voucher only if both its
//! amount and its nonce are above the best one's (so the accepted vouchers are one strictly
//! increasing sequence and a voucher is never taken twice), the amount is within the deposit,
//! and the customer's key signed it for exactly this channel's terms.
//!
//! The signed message, 73 bytes:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 16 | domain tag `farthing:voucher` |
//! | 16 | 1 | format version, 1 |
//! | 17 | 32 | channel digest ([`crate::ChannelTerms::digest`]) |
//! | 49 | 16 | cumulative amount, minor units, big-endian |
//! | 65 | 8 | nonce, big-endian |
//!
//! Verification has two steps so that many vouchers (of many channels) can share one batch
//! verification: [`VoucherVerifier::check`] makes the cheap checks and builds the message;
//! [`CheckedVoucher::verify`] or [`verify_batch`] checks signatures; [`VoucherVerifier::commit`]
//! takes a verified voucher (checking the order again, since others may have been committed in
//! between). [`VoucherVerifier::accept`] is the three in a row. Single and batch verification
//! accept exactly the same signatures (see [`crate::signature`]).

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use farthing_ledger::{Amount, Timestamp};

use crate::channel::{ChannelDigest, ChannelId, ChannelKind, ChannelTerms, Writer, FORMAT_VERSION};
use crate::signature;

const VOUCHER_TAG: &[u8; 16] = b"farthing:voucher";
/// Length of a voucher's signed message.
pub const VOUCHER_MESSAGE_LEN: usize = 73;
/// The most vouchers one batch verification takes; [`verify_batch`] splits longer inputs. The
/// gain of batching flattens long before this, and a batch's scratch memory grows with it.
pub const BATCH_VOUCHERS_MAX: usize = 1024;

/// A customer's signed statement of a channel's cumulative payment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Voucher {
    pub channel: ChannelId,
    pub cumulative: Amount,
    pub nonce: u64,
    pub signature: Signature,
}

impl Voucher {
    /// The customer's voucher for `terms` (what a client does; the merchant never signs).
    pub fn sign(terms: &ChannelTerms, cumulative: Amount, nonce: u64, key: &SigningKey) -> Voucher {
        let message = message(&terms.digest(), cumulative, nonce);
        Voucher {
            channel: terms.id(),
            cumulative,
            nonce,
            signature: key.sign(&message),
        }
    }
}

/// The signed message of a voucher (the table in this module's documentation).
pub fn message(
    channel: &ChannelDigest,
    cumulative: Amount,
    nonce: u64,
) -> [u8; VOUCHER_MESSAGE_LEN] {
    let mut out = [0u8; VOUCHER_MESSAGE_LEN];
    let mut at = Writer::new(&mut out);
    at.put(VOUCHER_TAG);
    at.put(&[FORMAT_VERSION]);
    at.put(&channel.0);
    at.put(&cumulative.0.to_be_bytes());
    at.put(&nonce.to_be_bytes());
    at.finish();
    out
}

/// Why a voucher is refused. Refusals change nothing: the verifier keeps its best voucher.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VoucherError {
    #[error("the channel takes PayWord payments, not vouchers")]
    NotVoucherChannel,
    #[error("the channel expired at {expires:?}")]
    Expired { expires: Timestamp },
    #[error("the voucher is for channel {got:?}, not {expected:?}")]
    ForeignChannel { expected: ChannelId, got: ChannelId },
    #[error("voucher {nonce} was already accepted")]
    Replayed { nonce: u64 },
    #[error("the amount {cumulative} is not above the best accepted, {best}")]
    NotIncreasing { cumulative: Amount, best: Amount },
    #[error("the nonce {nonce} is not above the best accepted voucher's, {best}")]
    NonceNotIncreasing { nonce: u64, best: u64 },
    #[error("the amount {cumulative} is above the deposit {deposit}")]
    AboveDeposit { cumulative: Amount, deposit: Amount },
    #[error("the signature is not the customer's over this voucher")]
    BadSignature,
}

impl VoucherError {
    /// The field at fault, as an API names it.
    pub fn field(&self) -> &'static str {
        match self {
            VoucherError::NotVoucherChannel
            | VoucherError::Expired { .. }
            | VoucherError::ForeignChannel { .. } => "channel",
            VoucherError::Replayed { .. } | VoucherError::NonceNotIncreasing { .. } => "nonce",
            VoucherError::NotIncreasing { .. } | VoucherError::AboveDeposit { .. } => "amount",
            VoucherError::BadSignature => "signature",
        }
    }
}

/// What an accepted voucher is worth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VoucherAccepted {
    /// Everything the channel has paid: the voucher's cumulative amount.
    pub owed: Amount,
    /// What this voucher added over the previous best.
    pub added: Amount,
}

/// The merchant's side of a vouchers channel: the best voucher accepted so far.
///
/// Invariant (fields private, made by [`VoucherVerifier::new`]): `best`, if any, was verified
/// under `key` for `digest`, and its amount is within `deposit`.
#[derive(Clone, Debug)]
pub struct VoucherVerifier {
    channel: ChannelId,
    digest: ChannelDigest,
    key: VerifyingKey,
    deposit: Amount,
    expires: Timestamp,
    best: Option<Voucher>,
}

/// A voucher that passed a verifier's cheap checks, with its message built, waiting for its
/// signature to be checked.
#[derive(Clone, Debug)]
pub struct CheckedVoucher {
    digest: ChannelDigest,
    key: VerifyingKey,
    message: [u8; VOUCHER_MESSAGE_LEN],
    voucher: Voucher,
}

/// A voucher whose signature verified. Made only by [`CheckedVoucher::verify`] and
/// [`verify_batch`], so [`VoucherVerifier::commit`] cannot take an unverified voucher.
#[derive(Clone, Debug)]
pub struct VerifiedVoucher {
    digest: ChannelDigest,
    voucher: Voucher,
}

impl VerifiedVoucher {
    pub fn voucher(&self) -> &Voucher {
        &self.voucher
    }
}

impl VoucherVerifier {
    pub fn new(terms: &ChannelTerms) -> Result<VoucherVerifier, VoucherError> {
        if !matches!(terms.kind(), ChannelKind::Vouchers) {
            return Err(VoucherError::NotVoucherChannel);
        }
        Ok(VoucherVerifier {
            channel: terms.id(),
            digest: terms.digest(),
            key: *terms.customer_key().verifying_key(),
            deposit: terms.deposit(),
            expires: terms.expires(),
            best: None,
        })
    }

    /// Checks a voucher and, if its signature verifies, makes it the best.
    pub fn accept(
        &mut self,
        voucher: &Voucher,
        now: Timestamp,
    ) -> Result<VoucherAccepted, VoucherError> {
        let verified = self.check(voucher, now)?.verify()?;
        self.commit(verified)
    }

    /// The cheap checks, before any signature work: the channel, expiry, order and deposit.
    pub fn check(&self, voucher: &Voucher, now: Timestamp) -> Result<CheckedVoucher, VoucherError> {
        if voucher.channel != self.channel {
            return Err(VoucherError::ForeignChannel {
                expected: self.channel,
                got: voucher.channel,
            });
        }
        if now >= self.expires {
            return Err(VoucherError::Expired {
                expires: self.expires,
            });
        }
        self.check_order(voucher)?;
        Ok(CheckedVoucher {
            digest: self.digest,
            key: self.key,
            message: message(&self.digest, voucher.cumulative, voucher.nonce),
            voucher: *voucher,
        })
    }

    /// Makes a verified voucher the best, if it still is above the best (another may have been
    /// committed since it was checked) and was verified for this channel.
    pub fn commit(&mut self, verified: VerifiedVoucher) -> Result<VoucherAccepted, VoucherError> {
        if verified.digest != self.digest {
            return Err(VoucherError::ForeignChannel {
                expected: self.channel,
                got: verified.voucher.channel,
            });
        }
        self.check_order(&verified.voucher)?;
        let before = self.owed();
        self.best = Some(verified.voucher);
        let owed = verified.voucher.cumulative;
        Ok(VoucherAccepted {
            owed,
            added: Amount(owed.0 - before.0),
        })
    }

    fn check_order(&self, voucher: &Voucher) -> Result<(), VoucherError> {
        if let Some(best) = &self.best {
            if voucher.cumulative == best.cumulative && voucher.nonce == best.nonce {
                return Err(VoucherError::Replayed {
                    nonce: voucher.nonce,
                });
            }
        }
        let best = self.owed();
        if voucher.cumulative <= best {
            return Err(VoucherError::NotIncreasing {
                cumulative: voucher.cumulative,
                best,
            });
        }
        if let Some(best) = &self.best {
            if voucher.nonce <= best.nonce {
                return Err(VoucherError::NonceNotIncreasing {
                    nonce: voucher.nonce,
                    best: best.nonce,
                });
            }
        }
        if voucher.cumulative > self.deposit {
            return Err(VoucherError::AboveDeposit {
                cumulative: voucher.cumulative,
                deposit: self.deposit,
            });
        }
        Ok(())
    }

    /// The best voucher accepted, the channel's proof to redeem (`None` before any).
    pub fn best(&self) -> Option<&Voucher> {
        self.best.as_ref()
    }

    /// What the channel has paid: the best voucher's amount, or zero.
    pub fn owed(&self) -> Amount {
        self.best.map_or(Amount::ZERO, |best| best.cumulative)
    }
}

impl CheckedVoucher {
    pub fn voucher(&self) -> &Voucher {
        &self.voucher
    }

    /// Verifies the signature alone.
    pub fn verify(self) -> Result<VerifiedVoucher, VoucherError> {
        if !signature::verify(&self.key, &self.message, &self.voucher.signature) {
            return Err(VoucherError::BadSignature);
        }
        Ok(self.verified())
    }

    fn verified(self) -> VerifiedVoucher {
        VerifiedVoucher {
            digest: self.digest,
            voucher: self.voucher,
        }
    }
}

/// Verifies many vouchers' signatures, in batches of at most [`BATCH_VOUCHERS_MAX`]: one
/// multi-scalar multiplication per batch when all are good; when a batch fails, each of its
/// vouchers is verified alone to find the bad ones. The answers are in the input's order, and
/// are the same as [`CheckedVoucher::verify`]'s for each.
pub fn verify_batch(checked: Vec<CheckedVoucher>) -> Vec<Result<VerifiedVoucher, VoucherError>> {
    let mut results = Vec::with_capacity(checked.len());
    for batch in checked.chunks(BATCH_VOUCHERS_MAX) {
        let keys: Vec<VerifyingKey> = batch.iter().map(|c| c.key).collect();
        let messages: Vec<&[u8]> = batch.iter().map(|c| &c.message[..]).collect();
        let signatures: Vec<Signature> = batch.iter().map(|c| c.voucher.signature).collect();
        if signature::verify_batch(&keys, &messages, &signatures) {
            results.extend(batch.iter().map(|c| Ok(c.clone().verified())));
        } else {
            results.extend(batch.iter().map(|c| c.clone().verify()));
        }
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{customer, payword_terms, vouchers_terms, NOW};

    const DEPOSIT: u128 = 1_000;

    fn open() -> (ChannelTerms, VoucherVerifier) {
        let terms = vouchers_terms(21, DEPOSIT);
        let verifier = VoucherVerifier::new(&terms).unwrap();
        (terms, verifier)
    }

    fn voucher(terms: &ChannelTerms, cumulative: u128, nonce: u64) -> Voucher {
        Voucher::sign(terms, Amount(cumulative), nonce, &customer(1).signing)
    }

    #[test]
    fn higher_vouchers_replace_the_best() {
        let (terms, mut verifier) = open();
        let accepted = verifier.accept(&voucher(&terms, 10, 1), NOW).unwrap();
        assert_eq!((accepted.owed, accepted.added), (Amount(10), Amount(10)));
        let accepted = verifier.accept(&voucher(&terms, 25, 2), NOW).unwrap();
        assert_eq!((accepted.owed, accepted.added), (Amount(25), Amount(15)));
        assert_eq!(verifier.best(), Some(&voucher(&terms, 25, 2)));
        // A skipped nonce is fine: only the order matters.
        verifier.accept(&voucher(&terms, 26, 9), NOW).unwrap();
        // The whole deposit is a valid voucher.
        verifier.accept(&voucher(&terms, DEPOSIT, 10), NOW).unwrap();
        assert_eq!(verifier.owed(), Amount(DEPOSIT));
    }

    /// Each refusal, with the state before and the field it names.
    #[test]
    fn refusals() {
        let (terms, _) = open();
        let signed = |cumulative, nonce| voucher(&terms, cumulative, nonce);
        let check = |best: Option<Voucher>, voucher: Voucher, want: VoucherError, field| {
            let (_, mut verifier) = open();
            if let Some(best) = best {
                verifier.accept(&best, NOW).unwrap();
            }
            let owed = verifier.owed();
            assert_eq!(verifier.accept(&voucher, NOW), Err(want));
            assert_eq!(want.field(), field);
            assert_eq!(verifier.owed(), owed, "a refusal changes nothing");
        };
        let best = Some(signed(50, 5));
        check(
            best,
            signed(50, 5),
            VoucherError::Replayed { nonce: 5 },
            "nonce",
        );
        let lower = VoucherError::NotIncreasing {
            cumulative: Amount(40),
            best: Amount(50),
        };
        check(best, signed(40, 6), lower, "amount");
        let same = VoucherError::NotIncreasing {
            cumulative: Amount(50),
            best: Amount(50),
        };
        check(best, signed(50, 6), same, "amount");
        let zero = VoucherError::NotIncreasing {
            cumulative: Amount(0),
            best: Amount(0),
        };
        check(None, signed(0, 1), zero, "amount");
        let nonce = VoucherError::NonceNotIncreasing { nonce: 5, best: 5 };
        check(best, signed(60, 5), nonce, "nonce");
        let nonce = VoucherError::NonceNotIncreasing { nonce: 4, best: 5 };
        check(best, signed(60, 4), nonce, "nonce");
        let above = VoucherError::AboveDeposit {
            cumulative: Amount(DEPOSIT + 1),
            deposit: Amount(DEPOSIT),
        };
        check(best, signed(DEPOSIT + 1, 6), above, "amount");

        let mut tampered = signed(60, 6);
        tampered.cumulative = Amount(61);
        check(best, tampered, VoucherError::BadSignature, "signature");
        let mut renumbered = signed(60, 6);
        renumbered.nonce = 7;
        check(best, renumbered, VoucherError::BadSignature, "signature");
        let by_someone_else = Voucher::sign(&terms, Amount(60), 6, &customer(2).signing);
        check(
            best,
            by_someone_else,
            VoucherError::BadSignature,
            "signature",
        );
    }

    #[test]
    fn a_voucher_of_another_channel_is_refused() {
        let (_, mut verifier) = open();
        let other = vouchers_terms(22, DEPOSIT);
        let refused = verifier.accept(&voucher(&other, 10, 1), NOW);
        assert_eq!(
            refused,
            Err(VoucherError::ForeignChannel {
                expected: ChannelId(21),
                got: ChannelId(22)
            })
        );
        assert_eq!(refused.unwrap_err().field(), "channel");
    }

    #[test]
    fn a_voucher_signed_for_other_terms_under_the_same_id_is_refused() {
        let (_, mut verifier) = open();
        // Same channel id, a larger deposit: the digest differs, so the signature does not
        // cover these terms.
        let other = vouchers_terms(21, DEPOSIT * 2);
        let refused = verifier.accept(&voucher(&other, 10, 1), NOW);
        assert_eq!(refused, Err(VoucherError::BadSignature));
    }

    #[test]
    fn an_expired_channel_takes_no_voucher() {
        let (terms, mut verifier) = open();
        let expires = terms.expires();
        let refused = verifier.accept(&voucher(&terms, 10, 1), expires);
        assert_eq!(refused, Err(VoucherError::Expired { expires }));
        let before = Timestamp(expires.0 - 1);
        verifier.accept(&voucher(&terms, 10, 1), before).unwrap();
    }

    #[test]
    fn a_payword_channel_has_no_voucher_verifier() {
        let terms = payword_terms(21, DEPOSIT, 1);
        let refused = VoucherVerifier::new(&terms).unwrap_err();
        assert_eq!(refused, VoucherError::NotVoucherChannel);
    }

    #[test]
    fn commit_rechecks_the_order() {
        let (terms, mut verifier) = open();
        let low = verifier.check(&voucher(&terms, 10, 1), NOW).unwrap();
        let high = verifier.check(&voucher(&terms, 20, 2), NOW).unwrap();
        verifier.commit(high.verify().unwrap()).unwrap();
        let refused = verifier.commit(low.verify().unwrap());
        assert_eq!(
            refused,
            Err(VoucherError::NotIncreasing {
                cumulative: Amount(10),
                best: Amount(20)
            })
        );
        assert_eq!(verifier.owed(), Amount(20));
    }

    #[test]
    fn commit_refuses_a_voucher_verified_for_another_channel() {
        let (_, mut verifier) = open();
        let other_terms = vouchers_terms(22, DEPOSIT);
        let other = VoucherVerifier::new(&other_terms).unwrap();
        let verified = other
            .check(&voucher(&other_terms, 10, 1), NOW)
            .unwrap()
            .verify()
            .unwrap();
        let refused = verifier.commit(verified);
        assert_eq!(
            refused,
            Err(VoucherError::ForeignChannel {
                expected: ChannelId(21),
                got: ChannelId(22)
            })
        );
    }

    #[test]
    fn batch_verification_finds_the_bad_voucher_among_good_ones() {
        let channels: Vec<ChannelTerms> = (1..=8).map(|id| vouchers_terms(id, DEPOSIT)).collect();
        let verifiers: Vec<VoucherVerifier> = channels
            .iter()
            .map(|t| VoucherVerifier::new(t).unwrap())
            .collect();
        let mut checked = Vec::new();
        for (i, (terms, verifier)) in channels.iter().zip(&verifiers).enumerate() {
            let mut v = voucher(terms, 10 + i as u128, 1);
            if i == 5 {
                v.signature = voucher(terms, 99, 1).signature;
            }
            checked.push(verifier.check(&v, NOW).unwrap());
        }
        let results = verify_batch(checked);
        for (i, result) in results.iter().enumerate() {
            assert_eq!(result.is_ok(), i != 5, "voucher {i}: {result:?}");
        }
        assert_eq!(
            results[5].as_ref().unwrap_err(),
            &VoucherError::BadSignature
        );
    }

    #[test]
    fn batches_longer_than_the_bound_are_split() {
        let terms = vouchers_terms(31, u128::MAX);
        let verifier = VoucherVerifier::new(&terms).unwrap();
        let signing = &customer(1).signing;
        let n = BATCH_VOUCHERS_MAX + 3;
        let checked: Vec<CheckedVoucher> = (1..=n as u64)
            .map(|k| {
                let v = Voucher::sign(&terms, Amount(u128::from(k)), k, signing);
                verifier.check(&v, NOW).unwrap()
            })
            .collect();
        let results = verify_batch(checked);
        assert_eq!(results.len(), n);
        assert!(results.iter().all(Result::is_ok));
        let last = results[n - 1].as_ref().unwrap().voucher();
        assert_eq!(last.nonce, n as u64);
    }

    /// A voucher whose signature carries a torsion component (only the customer can make one)
    /// is accepted alone and in every batch alike: ed25519-dalek's batch would take it one time
    /// in eight and its single `verify` never, which would let a customer get a voucher accepted
    /// that fails when the merchant redeems it.
    #[test]
    fn a_torsioned_voucher_is_accepted_alike_alone_and_in_batches() {
        let (terms, _) = open();
        let signing = &customer(1).signing;
        let honest_terms = vouchers_terms(22, DEPOSIT);
        for k in 1..=24u8 {
            let cumulative = Amount(u128::from(k));
            let nonce = u64::from(k);
            let signed = message(&terms.digest(), cumulative, nonce);
            let voucher = Voucher {
                channel: terms.id(),
                cumulative,
                nonce,
                signature: crate::testing::torsioned_signature(signing, &signed, k),
            };
            let (_, mut alone) = open();
            assert!(alone.accept(&voucher, NOW).is_ok(), "alone, k = {k}");

            let (_, batched) = open();
            let honest = VoucherVerifier::new(&honest_terms).unwrap();
            let results = verify_batch(vec![
                batched.check(&voucher, NOW).unwrap(),
                honest
                    .check(
                        &Voucher::sign(&honest_terms, cumulative, nonce, signing),
                        NOW,
                    )
                    .unwrap(),
            ]);
            assert!(results.iter().all(Result::is_ok), "batched, k = {k}");
        }
    }

    /// The message is pinned to its documented layout.
    #[test]
    fn the_voucher_message_is_pinned() {
        let terms = vouchers_terms(21, DEPOSIT);
        let bytes = message(&terms.digest(), Amount(0x0102), 0x0304);
        assert_eq!(&bytes[..16], b"farthing:voucher");
        assert_eq!(bytes[16], FORMAT_VERSION);
        assert_eq!(&bytes[17..49], &terms.digest().0);
        assert_eq!(&bytes[49..65], &0x0102u128.to_be_bytes());
        assert_eq!(&bytes[65..73], &0x0304u64.to_be_bytes());
    }
}
