//! PayWord (Rivest and Shamir, 1996): payments as the preimages of a committed hash chain.
//!
//! The customer picks a secret 32-byte seed `w[n]` and hashes it down to the root:
//! `w[i-1] = step(channel, i, w[i])`, so `w[0]` is the root. It signs a [`PayWordCommitment`] to
//! the root, the chain's length `n` and the channel (whose digest covers the unit price). The
//! k-th payment reveals `w[k]`; it is worth `k × unit_price` in all, and the merchant checks it
//! against the last word it accepted, `w[j]`, by hashing `k - j` times. So one payment in order
//! costs one SHA-256, and only the customer, who knows the seed, can reveal a word no one has
//! seen yet.
//!
//! The step hash is SHA-256 of 55 bytes, one compression block:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 3 | `PW` and the format version (1) |
//! | 3 | 16 | channel id, big-endian |
//! | 19 | 4 | position `i` of the input word, big-endian |
//! | 23 | 32 | the input word `w[i]` |
//!
//! Naming the channel and the position in every step makes each step a different function:
//! a chain's words are worthless in another channel even if a client reuses a seed, and an
//! attacker inverting many chains at once gains nothing from their number.
//!
//! The commitment's signed message, 85 bytes:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 16 | domain tag `farthing:payword` |
//! | 16 | 1 | format version, 1 |
//! | 17 | 32 | channel digest ([`crate::ChannelTerms::digest`]) |
//! | 49 | 4 | chain length `n`, big-endian |
//! | 53 | 32 | root `w[0]` |

use ed25519_dalek::{Signature, Signer, SigningKey};
use farthing_ledger::{Amount, Timestamp};
use sha2::{Digest, Sha256};

use crate::channel::{ChannelId, ChannelKind, ChannelTerms, Writer, FORMAT_VERSION};
use crate::signature;

/// The longest chain a commitment may name. A client holds (or recomputes) its chain; 2^24
/// words are 512 MiB, and a channel needing more payments is a new channel.
pub const CHAIN_LENGTH_MAX: u32 = 1 << 24;

/// The most positions one payment may advance. Checking a jump of n positions costs n hashes,
/// and a forged payment is only found out after all of them: at ≥ 5 million hashes a second
/// this bounds the work one refused payment causes to about 200 µs.
pub const JUMP_POSITIONS_MAX: u32 = 1024;

const STEP_PREFIX: [u8; 3] = [b'P', b'W', FORMAT_VERSION];
const STEP_LEN: usize = 55;
const COMMITMENT_TAG: &[u8; 16] = b"farthing:payword";
/// Length of a commitment's signed message.
pub const COMMITMENT_MESSAGE_LEN: usize = 85;

/// One word of a PayWord chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PayWord(pub [u8; 32]);

/// `w[position - 1]` from `w[position]`: one SHA-256 of one block (see the module's table).
#[inline]
pub fn step(channel: ChannelId, position: u32, word: &PayWord) -> PayWord {
    let mut block = [0u8; STEP_LEN];
    block[..3].copy_from_slice(&STEP_PREFIX);
    block[3..19].copy_from_slice(&channel.0.to_be_bytes());
    block[19..23].copy_from_slice(&position.to_be_bytes());
    block[23..].copy_from_slice(&word.0);
    PayWord(Sha256::digest(block).into())
}

/// A whole chain, as a client (or a test) holds it: `words[i]` is `w[i]`, `words[0]` the root.
#[derive(Clone, Debug)]
pub struct PayWordChain {
    channel: ChannelId,
    words: Vec<PayWord>,
}

/// Why a chain or a commitment is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommitmentError {
    #[error("the chain length must be between 1 and {max}, not {length}")]
    Length { length: u32, max: u32 },
    #[error("the channel takes vouchers, not PayWord payments")]
    NotPayWordChannel,
    #[error("the commitment names channel {got:?}, not {expected:?}")]
    ForeignChannel { expected: ChannelId, got: ChannelId },
    #[error("{length} payments of {unit_price} exceed the deposit {deposit}")]
    AboveDeposit {
        length: u32,
        unit_price: Amount,
        deposit: Amount,
    },
    #[error("the signature is not the customer's over this commitment")]
    BadSignature,
}

impl CommitmentError {
    /// The field at fault, as an API names it.
    pub fn field(&self) -> &'static str {
        match self {
            CommitmentError::Length { .. } | CommitmentError::AboveDeposit { .. } => "length",
            CommitmentError::NotPayWordChannel | CommitmentError::ForeignChannel { .. } => {
                "channel"
            }
            CommitmentError::BadSignature => "signature",
        }
    }
}

impl PayWordChain {
    /// Hashes `seed` down `length` steps. Costs `length` hashes and `32 × (length + 1)` bytes.
    pub fn generate(
        channel: ChannelId,
        seed: PayWord,
        length: u32,
    ) -> Result<PayWordChain, CommitmentError> {
        check_length(length)?;
        let mut words = vec![seed; length as usize + 1];
        for position in (1..=length).rev() {
            let i = position as usize;
            words[i - 1] = step(channel, position, &words[i]);
        }
        Ok(PayWordChain { channel, words })
    }

    pub fn root(&self) -> PayWord {
        self.words[0]
    }

    pub fn len(&self) -> u32 {
        // At most CHAIN_LENGTH_MAX + 1 words, checked by `generate`.
        (self.words.len() - 1) as u32
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The payment revealing `w[position]`, if the chain is that long.
    pub fn payment(&self, position: u32) -> Option<PayWordPayment> {
        let word = *self.words.get(position as usize)?;
        Some(PayWordPayment { position, word })
    }

    /// The customer's signed commitment to this chain for `terms`.
    pub fn commit(&self, terms: &ChannelTerms, key: &SigningKey) -> PayWordCommitment {
        let mut commitment = PayWordCommitment {
            channel: self.channel,
            length: self.len(),
            root: self.root(),
            signature: Signature::from_bytes(&[0; 64]),
        };
        commitment.signature = key.sign(&commitment.message(terms));
        commitment
    }
}

fn check_length(length: u32) -> Result<(), CommitmentError> {
    if length == 0 || length > CHAIN_LENGTH_MAX {
        return Err(CommitmentError::Length {
            length,
            max: CHAIN_LENGTH_MAX,
        });
    }
    Ok(())
}

/// The customer's signed commitment to a chain: what the merchant needs to take its payments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PayWordCommitment {
    pub channel: ChannelId,
    pub length: u32,
    pub root: PayWord,
    pub signature: Signature,
}

impl PayWordCommitment {
    /// The signed message (the second table in this module's documentation).
    pub fn message(&self, terms: &ChannelTerms) -> [u8; COMMITMENT_MESSAGE_LEN] {
        let mut out = [0u8; COMMITMENT_MESSAGE_LEN];
        let mut at = Writer::new(&mut out);
        at.put(COMMITMENT_TAG);
        at.put(&[FORMAT_VERSION]);
        at.put(&terms.digest().0);
        at.put(&self.length.to_be_bytes());
        at.put(&self.root.0);
        at.finish();
        out
    }

    /// Checks the commitment against the channel's terms and starts a verifier at position 0.
    /// The length is checked against the deposit here, once, so no payment on the chain can be
    /// worth more than the deposit.
    pub fn verify(&self, terms: &ChannelTerms) -> Result<PayWordVerifier, CommitmentError> {
        let ChannelKind::PayWord { unit_price } = terms.kind() else {
            return Err(CommitmentError::NotPayWordChannel);
        };
        if self.channel != terms.id() {
            return Err(CommitmentError::ForeignChannel {
                expected: terms.id(),
                got: self.channel,
            });
        }
        check_length(self.length)?;
        let above = CommitmentError::AboveDeposit {
            length: self.length,
            unit_price,
            deposit: terms.deposit(),
        };
        let most = unit_price
            .0
            .checked_mul(u128::from(self.length))
            .ok_or(above)?;
        if most > terms.deposit().0 {
            return Err(above);
        }
        let key = terms.customer_key().verifying_key();
        if !signature::verify(key, &self.message(terms), &self.signature) {
            return Err(CommitmentError::BadSignature);
        }
        Ok(PayWordVerifier {
            channel: self.channel,
            unit_price,
            deposit: terms.deposit(),
            length: self.length,
            expires: terms.expires(),
            root: self.root,
            position: 0,
            last: self.root,
        })
    }
}

/// One payment: the word at `position`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PayWordPayment {
    pub position: u32,
    pub word: PayWord,
}

/// Why a payment is refused. Refusals change nothing: the verifier keeps its last payment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PaymentError {
    #[error("the channel expired at {expires:?}")]
    Expired { expires: Timestamp },
    #[error("position {position} was already accepted")]
    Replayed { position: u32 },
    #[error("position {position} is before the last accepted, {last}")]
    Older { position: u32, last: u32 },
    #[error("position {position} is past the chain's end, {length}")]
    PastChainEnd { position: u32, length: u32 },
    #[error("a jump of {jump} positions is more than {max}")]
    JumpTooLong { jump: u32, max: u32 },
    #[error("the word is not the chain's word at position {position}")]
    WrongWord { position: u32 },
}

impl PaymentError {
    /// The field at fault, as an API names it.
    pub fn field(&self) -> &'static str {
        match self {
            PaymentError::Expired { .. } => "channel",
            PaymentError::Replayed { .. }
            | PaymentError::Older { .. }
            | PaymentError::PastChainEnd { .. }
            | PaymentError::JumpTooLong { .. } => "position",
            PaymentError::WrongWord { .. } => "word",
        }
    }
}

/// What an accepted payment is worth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PayWordAccepted {
    pub position: u32,
    /// Everything the channel's payments are worth so far: `position × unit_price`.
    pub owed: Amount,
    /// What this payment added to `owed`.
    pub added: Amount,
}

/// The merchant's side of one chain: the last accepted position and its word.
///
/// Invariants (fields private, made only by [`PayWordCommitment::verify`]): `position ≤ length`,
/// `length × unit_price ≤ deposit`, and `last` is the chain's word at `position`.
#[derive(Clone, Debug)]
pub struct PayWordVerifier {
    channel: ChannelId,
    unit_price: Amount,
    deposit: Amount,
    length: u32,
    expires: Timestamp,
    root: PayWord,
    position: u32,
    last: PayWord,
}

impl PayWordVerifier {
    /// Takes the payment if it is a later word of the chain. A payment one position on costs one
    /// hash; a jump of n positions n hashes, at most [`JUMP_POSITIONS_MAX`].
    pub fn accept(
        &mut self,
        payment: &PayWordPayment,
        now: Timestamp,
    ) -> Result<PayWordAccepted, PaymentError> {
        let position = payment.position;
        if now >= self.expires {
            return Err(PaymentError::Expired {
                expires: self.expires,
            });
        }
        if position == self.position {
            return Err(PaymentError::Replayed { position });
        }
        if position < self.position {
            return Err(PaymentError::Older {
                position,
                last: self.position,
            });
        }
        if position > self.length {
            return Err(PaymentError::PastChainEnd {
                position,
                length: self.length,
            });
        }
        let jump = position - self.position;
        if jump > JUMP_POSITIONS_MAX {
            return Err(PaymentError::JumpTooLong {
                jump,
                max: JUMP_POSITIONS_MAX,
            });
        }
        let mut word = payment.word;
        for at in (self.position + 1..=position).rev() {
            word = step(self.channel, at, &word);
        }
        if word != self.last {
            return Err(PaymentError::WrongWord { position });
        }
        let before = self.owed();
        self.position = position;
        self.last = payment.word;
        let owed = self.owed();
        Ok(PayWordAccepted {
            position,
            owed,
            added: Amount(owed.0 - before.0),
        })
    }

    /// Checks a payment against the root rather than the last accepted word, changing nothing:
    /// how a proof is checked when it is redeemed by someone who did not watch the payments
    /// arrive. Costs `position` hashes (at most [`CHAIN_LENGTH_MAX`]); returns what it is worth.
    pub fn check_from_root(&self, payment: &PayWordPayment) -> Result<Amount, PaymentError> {
        let position = payment.position;
        if position == 0 {
            return Err(PaymentError::Replayed { position });
        }
        if position > self.length {
            return Err(PaymentError::PastChainEnd {
                position,
                length: self.length,
            });
        }
        let mut word = payment.word;
        for at in (1..=position).rev() {
            word = step(self.channel, at, &word);
        }
        if word != self.root {
            return Err(PaymentError::WrongWord { position });
        }
        Ok(self.worth(position))
    }

    /// The last accepted position (0 before any payment).
    pub fn position(&self) -> u32 {
        self.position
    }

    /// The last accepted payment, the best proof of this chain (`None` before any).
    pub fn best(&self) -> Option<PayWordPayment> {
        (self.position > 0).then_some(PayWordPayment {
            position: self.position,
            word: self.last,
        })
    }

    /// Everything the accepted payments are worth.
    pub fn owed(&self) -> Amount {
        self.worth(self.position)
    }

    fn worth(&self, position: u32) -> Amount {
        // `position ≤ length` and `length × unit_price ≤ deposit` (checked by `verify`), so this
        // neither overflows nor passes the deposit; the checks stay in release builds because
        // they are money and cost a comparison.
        let owed = self.unit_price.0.checked_mul(u128::from(position));
        let owed = owed.expect("length × unit_price was checked against the deposit");
        assert!(
            owed <= self.deposit.0,
            "a chain is never worth more than the deposit"
        );
        Amount(owed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{customer, payword_terms, NOW};

    /// A PayWord channel with `length` words at `unit_price`, deposit `deposit`, its chain and
    /// a fresh verifier.
    fn open(length: u32, unit_price: u128, deposit: u128) -> (PayWordChain, PayWordVerifier) {
        let terms = payword_terms(11, deposit, unit_price);
        let chain = PayWordChain::generate(terms.id(), PayWord([9; 32]), length).unwrap();
        let verifier = chain
            .commit(&terms, &customer(1).signing)
            .verify(&terms)
            .unwrap();
        (chain, verifier)
    }

    fn pay(chain: &PayWordChain, position: u32) -> PayWordPayment {
        chain.payment(position).unwrap()
    }

    #[test]
    fn payments_in_order_add_the_unit_price_each() {
        let (chain, mut verifier) = open(10, 3, 30);
        for k in 1..=10 {
            let accepted = verifier.accept(&pay(&chain, k), NOW).unwrap();
            assert_eq!(accepted.owed, Amount(3 * u128::from(k)));
            assert_eq!(accepted.added, Amount(3));
        }
        assert_eq!(verifier.owed(), Amount(30));
        assert_eq!(verifier.best(), Some(pay(&chain, 10)));
    }

    #[test]
    fn a_jump_pays_for_every_position_skipped() {
        let (chain, mut verifier) = open(10, 3, 30);
        let accepted = verifier.accept(&pay(&chain, 4), NOW).unwrap();
        assert_eq!((accepted.owed, accepted.added), (Amount(12), Amount(12)));
        let accepted = verifier.accept(&pay(&chain, 9), NOW).unwrap();
        assert_eq!((accepted.owed, accepted.added), (Amount(27), Amount(15)));
    }

    #[test]
    fn a_replayed_payment_is_refused() {
        let (chain, mut verifier) = open(10, 1, 10);
        verifier.accept(&pay(&chain, 3), NOW).unwrap();
        let refused = verifier.accept(&pay(&chain, 3), NOW);
        assert_eq!(refused, Err(PaymentError::Replayed { position: 3 }));
        assert_eq!(verifier.owed(), Amount(3));
    }

    #[test]
    fn an_older_payment_is_refused() {
        let (chain, mut verifier) = open(10, 1, 10);
        verifier.accept(&pay(&chain, 5), NOW).unwrap();
        let refused = verifier.accept(&pay(&chain, 2), NOW);
        assert_eq!(
            refused,
            Err(PaymentError::Older {
                position: 2,
                last: 5
            })
        );
        assert_eq!(refused.unwrap_err().field(), "position");
    }

    #[test]
    fn the_root_itself_is_no_payment() {
        let (chain, mut verifier) = open(10, 1, 10);
        let refused = verifier.accept(&pay(&chain, 0), NOW);
        assert_eq!(refused, Err(PaymentError::Replayed { position: 0 }));
    }

    #[test]
    fn a_position_past_the_chain_is_refused() {
        let (_, mut verifier) = open(10, 1, 10);
        let beyond = PayWordPayment {
            position: 11,
            word: PayWord([0; 32]),
        };
        let refused = verifier.accept(&beyond, NOW);
        assert_eq!(
            refused,
            Err(PaymentError::PastChainEnd {
                position: 11,
                length: 10
            })
        );
    }

    #[test]
    fn a_jump_past_the_bound_is_refused_before_hashing() {
        let (chain, mut verifier) = open(JUMP_POSITIONS_MAX + 5, 1, 1 << 20);
        let far = pay(&chain, JUMP_POSITIONS_MAX + 1);
        let refused = verifier.accept(&far, NOW);
        assert_eq!(
            refused,
            Err(PaymentError::JumpTooLong {
                jump: JUMP_POSITIONS_MAX + 1,
                max: JUMP_POSITIONS_MAX
            })
        );
        // Exactly the bound is fine, and from there the rest is in reach.
        verifier
            .accept(&pay(&chain, JUMP_POSITIONS_MAX), NOW)
            .unwrap();
        verifier.accept(&far, NOW).unwrap();
    }

    #[test]
    fn a_wrong_word_is_refused_and_changes_nothing() {
        let (chain, mut verifier) = open(10, 1, 10);
        verifier.accept(&pay(&chain, 2), NOW).unwrap();
        let mut forged = pay(&chain, 3);
        forged.word.0[0] ^= 1;
        let refused = verifier.accept(&forged, NOW);
        assert_eq!(refused, Err(PaymentError::WrongWord { position: 3 }));
        assert_eq!(refused.unwrap_err().field(), "word");
        assert_eq!(verifier.position(), 2);
        // The honest word at 3 still goes through after the refusal.
        verifier.accept(&pay(&chain, 3), NOW).unwrap();
    }

    #[test]
    fn a_word_of_the_same_seed_in_another_channel_is_refused() {
        let (_, mut verifier) = open(10, 1, 10);
        let other = PayWordChain::generate(ChannelId(12), PayWord([9; 32]), 10).unwrap();
        let refused = verifier.accept(&pay(&other, 1), NOW);
        assert_eq!(refused, Err(PaymentError::WrongWord { position: 1 }));
    }

    #[test]
    fn a_word_claimed_at_another_position_is_refused() {
        let (chain, mut verifier) = open(10, 1, 10);
        // w[2] is one hash above w[1], but the hash names position 2, so presenting w[2]'s
        // preimage relation at position 1 fails.
        let shifted = PayWordPayment {
            position: 1,
            word: pay(&chain, 2).word,
        };
        let refused = verifier.accept(&shifted, NOW);
        assert_eq!(refused, Err(PaymentError::WrongWord { position: 1 }));
    }

    #[test]
    fn an_expired_channel_takes_no_payment() {
        let (chain, mut verifier) = open(10, 1, 10);
        let expires = verifier.expires;
        let refused = verifier.accept(&pay(&chain, 1), expires);
        assert_eq!(refused, Err(PaymentError::Expired { expires }));
        assert_eq!(refused.unwrap_err().field(), "channel");
        verifier
            .accept(&pay(&chain, 1), Timestamp(expires.0 - 1))
            .unwrap();
    }

    #[test]
    fn check_from_root_agrees_with_accept_and_changes_nothing() {
        let (chain, verifier) = open(10, 3, 30);
        assert_eq!(verifier.check_from_root(&pay(&chain, 7)), Ok(Amount(21)));
        let mut forged = pay(&chain, 7);
        forged.word.0[31] ^= 0x80;
        assert_eq!(
            verifier.check_from_root(&forged),
            Err(PaymentError::WrongWord { position: 7 })
        );
        assert_eq!(verifier.position(), 0);
    }

    #[test]
    fn commitment_refusals() {
        let terms = payword_terms(11, 30, 3);
        let signing = &customer(1).signing;
        let chain = PayWordChain::generate(terms.id(), PayWord([9; 32]), 10).unwrap();
        let good = chain.commit(&terms, signing);
        assert!(good.verify(&terms).is_ok());

        let longer = PayWordChain::generate(terms.id(), PayWord([9; 32]), 11).unwrap();
        let refused = longer.commit(&terms, signing).verify(&terms);
        assert_eq!(
            refused.unwrap_err(),
            CommitmentError::AboveDeposit {
                length: 11,
                unit_price: Amount(3),
                deposit: Amount(30)
            }
        );

        let mut tampered = good;
        tampered.length = 9;
        assert_eq!(
            tampered.verify(&terms).unwrap_err(),
            CommitmentError::BadSignature
        );

        let mut moved = good;
        moved.channel = ChannelId(12);
        assert_eq!(
            moved.verify(&terms).unwrap_err(),
            CommitmentError::ForeignChannel {
                expected: ChannelId(11),
                got: ChannelId(12)
            }
        );

        let by_someone_else = chain.commit(&terms, &customer(2).signing);
        assert_eq!(
            by_someone_else.verify(&terms).unwrap_err(),
            CommitmentError::BadSignature
        );

        let vouchers = crate::testing::vouchers_terms(11, 30);
        assert_eq!(
            good.verify(&vouchers).unwrap_err(),
            CommitmentError::NotPayWordChannel
        );

        // Signed for other terms with the same id (a higher price): not valid for these.
        let pricier = payword_terms(11, 30, 1);
        assert_eq!(
            chain.commit(&pricier, signing).verify(&terms).unwrap_err(),
            CommitmentError::BadSignature
        );
    }

    #[test]
    fn a_length_that_would_overflow_the_price_is_refused() {
        let terms = payword_terms(11, u128::MAX, u128::MAX / 2);
        let chain = PayWordChain::generate(terms.id(), PayWord([9; 32]), 3).unwrap();
        let refused = chain.commit(&terms, &customer(1).signing).verify(&terms);
        assert!(matches!(
            refused,
            Err(CommitmentError::AboveDeposit { length: 3, .. })
        ));
    }

    #[test]
    fn chain_lengths_are_bounded() {
        let too_long = CommitmentError::Length {
            length: CHAIN_LENGTH_MAX + 1,
            max: CHAIN_LENGTH_MAX,
        };
        let generated = PayWordChain::generate(ChannelId(1), PayWord([0; 32]), 0);
        assert!(matches!(
            generated,
            Err(CommitmentError::Length { length: 0, .. })
        ));
        let generated =
            PayWordChain::generate(ChannelId(1), PayWord([0; 32]), CHAIN_LENGTH_MAX + 1);
        assert_eq!(generated.unwrap_err(), too_long);
        assert_eq!(too_long.field(), "length");
    }

    /// The step hash is pinned to its documented layout: SHA-256 of the 55 bytes.
    #[test]
    fn the_step_hash_is_pinned() {
        let word = PayWord([0xab; 32]);
        let mut block = Vec::new();
        block.extend_from_slice(b"PW\x01");
        block.extend_from_slice(&7u128.to_be_bytes());
        block.extend_from_slice(&5u32.to_be_bytes());
        block.extend_from_slice(&word.0);
        assert_eq!(block.len(), 55);
        let expected: [u8; 32] = Sha256::digest(&block).into();
        assert_eq!(step(ChannelId(7), 5, &word), PayWord(expected));
    }
}
