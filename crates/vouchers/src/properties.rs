//! Property tests of the guarantees in the crate's documentation, each against a deliberately
//! naive model: a PayWord payment is checked by hashing all the way to the root, a voucher by
//! remembering which (amount, nonce) pairs the customer really signed.
//!
//! The customer is honest and the merchant's inbox is not: the proofs offered mix the
//! customer's own (in any order, repeated) with forgeries (random words, tampered amounts or
//! nonces, other keys, other channels).

use std::collections::HashSet;

use farthing_ledger::Amount;
use proptest::prelude::*;

use crate::payword::step;
use crate::testing::{customer, payword_terms, vouchers_terms, NOW};
use crate::voucher::verify_batch;
use crate::{
    ChannelId, PayWord, PayWordChain, PayWordPayment, PayWordVerifier, Settlement, Voucher,
    VoucherVerifier, JUMP_POSITIONS_MAX,
};

/// One offer to the PayWord verifier.
#[derive(Clone, Debug)]
enum Offer {
    /// The customer reveals its word at this position.
    Honest(u32),
    /// A random word claimed at this position.
    Forged(u32, [u8; 32]),
    /// The merchant redeems what it holds (the settlement's side).
    Redeem,
}

fn offer(length: u32) -> impl Strategy<Value = Offer> {
    prop_oneof![
        4 => (0..=length + 2).prop_map(Offer::Honest),
        2 => (0..=length + 2, any::<[u8; 32]>()).prop_map(|(p, w)| Offer::Forged(p, w)),
        1 => Just(Offer::Redeem),
    ]
}

/// The naive model: a payment is good if it hashes to the root from its position (no
/// incremental state), is after the last accepted, within the chain and the jump bound.
fn model_accepts(
    channel: ChannelId,
    root: PayWord,
    length: u32,
    last: u32,
    p: &PayWordPayment,
) -> bool {
    if p.position <= last || p.position > length || p.position - last > JUMP_POSITIONS_MAX {
        return false;
    }
    let mut word = p.word;
    for at in (1..=p.position).rev() {
        word = step(channel, at, &word);
    }
    word == root
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// PayWord: the verifier agrees with the naive model on every offer; no position is accepted
    /// twice; what the merchant is owed (and receives through settlement) is at least every
    /// accepted payment and at most the best word the customer revealed.
    #[test]
    fn payword_guarantees(
        length in 1u32..48,
        unit_price in 1u128..1_000,
        slack in 0u128..1_000,
        offers in proptest::collection::vec(offer(48), 0..60),
    ) {
        let deposit = unit_price * u128::from(length) + slack;
        let terms = payword_terms(41, deposit, unit_price);
        let chain = PayWordChain::generate(terms.id(), PayWord([7; 32]), length).unwrap();
        let mut verifier: PayWordVerifier =
            chain.commit(&terms, &customer(1).signing).verify(&terms).unwrap();
        let mut settlement = Settlement::open(terms.deposit());
        let mut received = Amount::ZERO;
        let mut accepted = HashSet::new();
        let mut last = 0u32;
        let mut best_revealed = 0u32;
        for offer in offers {
            let payment = match offer {
                Offer::Redeem => {
                    received = received.checked_add(settlement.redeem(verifier.owed()).unwrap()).unwrap();
                    continue;
                }
                Offer::Honest(position) => match chain.payment(position) {
                    Some(payment) => {
                        best_revealed = best_revealed.max(position);
                        payment
                    }
                    None => PayWordPayment { position, word: PayWord([0; 32]) },
                },
                Offer::Forged(position, word) => PayWordPayment { position, word: PayWord(word) },
            };
            let expected = model_accepts(terms.id(), chain.root(), length, last, &payment);
            let result = verifier.accept(&payment, NOW);
            prop_assert_eq!(result.is_ok(), expected, "{:?} -> {:?}", payment, result);
            if let Ok(ok) = result {
                prop_assert!(accepted.insert(payment.position), "accepted twice: {:?}", payment);
                prop_assert!(payment.position > last);
                prop_assert_eq!(ok.owed, Amount(unit_price * u128::from(payment.position)));
                last = payment.position;
            }
        }
        let owed = verifier.owed();
        prop_assert_eq!(owed, Amount(unit_price * u128::from(last)));
        // Never more than the best word the customer revealed.
        prop_assert!(owed.0 <= unit_price * u128::from(best_revealed));
        let closing = settlement.close(owed).unwrap();
        received = received.checked_add(closing.redeem).unwrap();
        // The merchant receives exactly its best accepted payment: not less than any accepted.
        prop_assert_eq!(received, owed);
        prop_assert_eq!(received.0 + closing.release.0, deposit);
    }
}

/// What the merchant's inbox holds for the vouchers channel.
#[derive(Clone, Debug)]
enum VoucherOffer {
    /// The customer's i-th voucher (of those it signed), offered as signed.
    Honest(usize),
    /// The i-th voucher with its amount raised by `by`, signature kept.
    Raised(usize, u128),
    /// The i-th voucher with another nonce, signature kept.
    Renumbered(usize, u64),
    /// A voucher for this channel signed by another key.
    OtherKey(u128, u64),
    /// A voucher the customer signed for another channel.
    OtherChannel(u128, u64),
    Redeem,
}

fn voucher_offer() -> impl Strategy<Value = VoucherOffer> {
    prop_oneof![
        6 => (0usize..64).prop_map(VoucherOffer::Honest),
        1 => (0usize..64, 1u128..100).prop_map(|(i, by)| VoucherOffer::Raised(i, by)),
        1 => (0usize..64, any::<u64>()).prop_map(|(i, n)| VoucherOffer::Renumbered(i, n)),
        1 => (1u128..2_000, any::<u64>()).prop_map(|(a, n)| VoucherOffer::OtherKey(a, n)),
        1 => (1u128..2_000, any::<u64>()).prop_map(|(a, n)| VoucherOffer::OtherChannel(a, n)),
        1 => Just(VoucherOffer::Redeem),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Vouchers: the verifier takes exactly the customer's vouchers that raise both the amount
    /// and the nonce, within the deposit; none twice; the merchant receives the best accepted
    /// and never more than the best the customer signed. Verifying in batches (of any size,
    /// with the order rechecked at commit) accepts exactly what verifying one by one does.
    #[test]
    fn voucher_guarantees(
        deposit in 1u128..1_500,
        signed in proptest::collection::vec((1u128..2_000, 0u64..50), 1..12),
        offers in proptest::collection::vec(voucher_offer(), 0..40),
        batch in 1usize..9,
    ) {
        let terms = vouchers_terms(51, deposit);
        let other_channel = vouchers_terms(52, deposit);
        let key = &customer(1).signing;
        let mut signed_by_customer = HashSet::new();
        let customer_vouchers: Vec<Voucher> = signed
            .iter()
            .map(|&(amount, nonce)| {
                signed_by_customer.insert((amount, nonce));
                Voucher::sign(&terms, Amount(amount), nonce, key)
            })
            .collect();
        let pick = |i: usize| customer_vouchers[i % customer_vouchers.len()];
        let inbox: Vec<Option<Voucher>> = offers
            .iter()
            .map(|offer| match *offer {
                VoucherOffer::Honest(i) => Some(pick(i)),
                VoucherOffer::Raised(i, by) => {
                    let mut v = pick(i);
                    v.cumulative = Amount(v.cumulative.0 + by);
                    Some(v)
                }
                VoucherOffer::Renumbered(i, nonce) => Some(Voucher { nonce, ..pick(i) }),
                VoucherOffer::OtherKey(amount, nonce) => {
                    Some(Voucher::sign(&terms, Amount(amount), nonce, &customer(2).signing))
                }
                VoucherOffer::OtherChannel(amount, nonce) => {
                    let mut v = Voucher::sign(&other_channel, Amount(amount), nonce, key);
                    // Relabelled for this channel: the signature covers the other's digest.
                    if amount % 2 == 0 {
                        v.channel = terms.id();
                    }
                    Some(v)
                }
                VoucherOffer::Redeem => None,
            })
            .collect();

        // One by one, against the model.
        let mut single = VoucherVerifier::new(&terms).unwrap();
        let mut settlement = Settlement::open(terms.deposit());
        let mut received = Amount::ZERO;
        let mut best: Option<(u128, u64)> = None;
        let mut accepted = HashSet::new();
        let mut single_accepted = Vec::new();
        for voucher in &inbox {
            let Some(voucher) = voucher else {
                received = received.checked_add(settlement.redeem(single.owed()).unwrap()).unwrap();
                continue;
            };
            let genuine = voucher.channel == terms.id()
                && signed_by_customer.contains(&(voucher.cumulative.0, voucher.nonce))
                && customer_vouchers.iter().any(|c| c == voucher);
            let raises = best.is_none_or(|(a, n)| voucher.cumulative.0 > a && voucher.nonce > n);
            let expected = genuine && raises && voucher.cumulative.0 <= deposit;
            let result = single.accept(voucher, NOW);
            prop_assert_eq!(result.is_ok(), expected, "{:?} -> {:?}", voucher, result);
            if result.is_ok() {
                let id = (voucher.cumulative.0, voucher.nonce);
                prop_assert!(accepted.insert(id), "accepted twice: {:?}", voucher);
                best = Some(id);
            }
            single_accepted.push(result.is_ok());
        }
        let owed = single.owed();
        prop_assert_eq!(owed.0, best.map_or(0, |(a, _)| a));
        let best_signed = signed.iter().map(|&(a, _)| a).max().unwrap_or(0);
        prop_assert!(owed.0 <= best_signed, "never more than the customer signed");
        let closing = settlement.close(owed).unwrap();
        received = received.checked_add(closing.redeem).unwrap();
        prop_assert_eq!(received, owed, "the merchant receives its best accepted voucher");
        prop_assert_eq!(received.0 + closing.release.0, deposit);

        // In batches: check a chunk against the state at its start, verify it as one batch,
        // commit in order. The same vouchers are accepted.
        let mut batched = VoucherVerifier::new(&terms).unwrap();
        let mut batched_accepted = Vec::new();
        let vouchers: Vec<Voucher> = inbox.iter().flatten().copied().collect();
        for chunk in vouchers.chunks(batch) {
            let mut checked = Vec::new();
            let mut early = Vec::new();
            for voucher in chunk {
                match batched.check(voucher, NOW) {
                    Ok(c) => {
                        checked.push(c);
                        early.push(false);
                    }
                    Err(_) => early.push(true),
                }
            }
            let mut verified = verify_batch(checked).into_iter();
            for refused_early in early {
                let ok = !refused_early
                    && match verified.next().unwrap() {
                        Ok(v) => batched.commit(v).is_ok(),
                        Err(_) => false,
                    };
                batched_accepted.push(ok);
            }
        }
        prop_assert_eq!(batched_accepted, single_accepted);
        prop_assert_eq!(batched.best(), single.best());
    }

    /// Settlement: whatever proofs are redeemed, in whatever order and however often, the
    /// merchant receives exactly the largest, redeeming the same proof again moves nothing, and
    /// closing releases the rest once.
    #[test]
    fn settlement_is_idempotent(
        deposit in 1u128..10_000,
        bests in proptest::collection::vec(0u128..10_000, 0..20),
        repeat in any::<bool>(),
    ) {
        let mut settlement = Settlement::open(Amount(deposit));
        let mut received = 0u128;
        let mut largest = 0u128;
        for best in bests {
            let best = best % (deposit + 1);
            let moved = settlement.redeem(Amount(best)).unwrap().0;
            received += moved;
            largest = largest.max(best);
            prop_assert_eq!(received, largest);
            if repeat {
                prop_assert_eq!(settlement.redeem(Amount(best)).unwrap(), Amount::ZERO);
            }
        }
        let closing = settlement.close(Amount(largest)).unwrap();
        prop_assert_eq!(closing.redeem, Amount::ZERO, "the best was already redeemed");
        prop_assert_eq!(received + closing.release.0, deposit);
        prop_assert!(settlement.close(Amount(largest)).is_err(), "closing happens once");
        prop_assert!(settlement.redeem(Amount(largest)).is_err());
    }
}
