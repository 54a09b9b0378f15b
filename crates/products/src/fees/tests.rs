use super::*;
use proptest::prelude::*;

const ALL_RULES: [RoundingRule; 4] = [
    RoundingRule::Down,
    RoundingRule::Up,
    RoundingRule::HalfUp,
    RoundingRule::HalfEven,
];

fn plan(percent_bps: u32, fixed: u128) -> FeePlan {
    FeePlan {
        percent_bps,
        fixed: Amount(fixed),
        minimum: None,
        maximum: None,
        rounding: RoundingRule::HalfUp,
    }
}

fn share(payee: &str, bps: u32) -> Share {
    Share {
        payee: payee.to_string(),
        bps,
    }
}

fn payee(name: &str) -> Destination {
    Destination::Payee(name.to_string())
}

/// Checks `a * b / c` under each rule in `ALL_RULES` order.
fn check_mul_div(a: u128, b: u128, c: u128, expected: [u128; 4]) {
    for (rule, expected) in ALL_RULES.into_iter().zip(expected) {
        assert_eq!(
            mul_div(a, b, c, rule),
            Ok(expected),
            "{a} * {b} / {c} {rule:?}"
        );
    }
}

#[test]
fn mul_div_rounds_by_the_named_rule() {
    //              down, up, half_up, half_even
    check_mul_div(10, 1, 4, [2, 3, 3, 2]); // 2.5
    check_mul_div(14, 1, 4, [3, 4, 4, 4]); // 3.5
    check_mul_div(9, 1, 4, [2, 3, 2, 2]); // 2.25
    check_mul_div(11, 1, 4, [2, 3, 3, 3]); // 2.75
    check_mul_div(12, 1, 4, [3, 3, 3, 3]); // exact
    check_mul_div(0, 5, 7, [0, 0, 0, 0]);
    check_mul_div(1, 1, u128::MAX, [0, 1, 0, 0]);
}

#[test]
fn mul_div_uses_the_full_256_bit_product() {
    // u128::MAX * u128::MAX / u128::MAX: the product overflows 128 bits, the quotient does not.
    check_mul_div(u128::MAX, u128::MAX, u128::MAX, [u128::MAX; 4]);
    // (2^128 - 1) * 10000 / 10000.
    check_mul_div(u128::MAX, 10_000, 10_000, [u128::MAX; 4]);
    // 2^127 * 3 / 2 fits; 2^127 * 4 / 2 = 2^128 does not.
    assert_eq!(mul_div(1 << 127, 3, 2, RoundingRule::Down), Ok(3 << 126));
    assert_eq!(
        mul_div(1 << 127, 4, 2, RoundingRule::Down),
        Err(ArithmeticError::Overflow)
    );
    // u128::MAX * 2 / 4 = (2^128 - 1) / 2 = 2^127 - 0.5.
    check_mul_div(
        u128::MAX,
        2,
        4,
        [(1 << 127) - 1, 1 << 127, 1 << 127, 1 << 127],
    );
}

#[test]
fn mul_div_reports_division_by_zero_and_rounding_overflow() {
    assert_eq!(
        mul_div(1, 1, 0, RoundingRule::Down),
        Err(ArithmeticError::DivisionByZero)
    );
    // (2^128 - 2) * (2^127 + 1) / 2^127 = u128::MAX + (2^127 - 2) / 2^127: the truncated
    // quotient fits, rounding it up does not.
    let (a, b, c) = (u128::MAX - 1, (1u128 << 127) + 1, 1u128 << 127);
    assert_eq!(mul_div(a, b, c, RoundingRule::Down), Ok(u128::MAX));
    assert_eq!(
        mul_div(a, b, c, RoundingRule::HalfUp),
        Err(ArithmeticError::Overflow)
    );
    assert_eq!(
        mul_div(a, b, c, RoundingRule::Up),
        Err(ArithmeticError::Overflow)
    );
}

#[test]
fn rounding_rules_have_stable_snake_case_codes() {
    for rule in ALL_RULES {
        let json = serde_json::to_string(&rule).unwrap();
        assert_eq!(json, format!("\"{}\"", rule.code()));
        assert_eq!(serde_json::from_str::<RoundingRule>(&json).unwrap(), rule);
    }
    for policy in [
        FeeRefundPolicy::Proportional,
        FeeRefundPolicy::MerchantBearsFees,
    ] {
        let json = serde_json::to_string(&policy).unwrap();
        assert_eq!(json, format!("\"{}\"", policy.code()));
    }
}

#[test]
fn fee_plan_validation_names_the_field() {
    let mut bad = plan(10_001, 0);
    assert_eq!(
        bad.validate(),
        Err(FeePlanError::PercentBpsOutOfRange {
            percent_bps: 10_001
        })
    );
    assert!(bad
        .validate()
        .unwrap_err()
        .to_string()
        .contains("percent_bps"));
    bad.percent_bps = 10_000;
    assert_eq!(bad.validate(), Ok(()));
    bad.minimum = Some(Amount(5));
    bad.maximum = Some(Amount(4));
    let err = bad.validate().unwrap_err();
    assert!(err.to_string().contains("minimum") && err.to_string().contains("maximum"));
    bad.maximum = Some(Amount(5));
    assert_eq!(bad.validate(), Ok(()));
}

#[test]
fn fee_is_percentage_plus_fixed_then_clamped_then_capped_at_gross() {
    // 2.5% of 1000 = 25, + 10 fixed.
    assert_eq!(plan(250, 10).fee(Amount(1000)), Ok(Amount(35)));
    // 2.5% of 1010 = 25.25 -> 25 (half up), + 10.
    assert_eq!(plan(250, 10).fee(Amount(1010)), Ok(Amount(35)));
    // 2.5% of 1020 = 25.5 -> 26 (half up).
    assert_eq!(plan(250, 0).fee(Amount(1020)), Ok(Amount(26)));
    let with_bounds = FeePlan {
        minimum: Some(Amount(50)),
        maximum: Some(Amount(100)),
        ..plan(250, 10)
    };
    assert_eq!(with_bounds.fee(Amount(1000)), Ok(Amount(50)));
    assert_eq!(with_bounds.fee(Amount(10_000)), Ok(Amount(100)));
    // The minimum is 50 but the payment is only 20: the fee takes all of it.
    assert_eq!(with_bounds.fee(Amount(20)), Ok(Amount(20)));
    // A fixed fee larger than u128 arithmetic allows still caps at the gross.
    assert_eq!(
        plan(10_000, u128::MAX).fee(Amount(u128::MAX)),
        Ok(Amount(u128::MAX))
    );
    assert_eq!(FeePlan::FREE.fee(Amount(123)), Ok(Amount::ZERO));
}

#[test]
fn share_validation_names_the_share_at_fault() {
    let check = |shares: &[Share], expected: Result<(), ShareError>| {
        assert_eq!(validate_shares(shares), expected, "{shares:?}");
    };
    check(&[], Ok(()));
    check(&[share("a", 10_000)], Ok(()));
    check(&[share("a", 7_000), share("b", 3_000)], Ok(()));
    check(
        &[share("a", 7_000), share("b", 2_999)],
        Err(ShareError::BpsSum { sum: 9_999 }),
    );
    check(
        &[share("a", 10_000), share("b", 0)],
        Err(ShareError::BpsOutOfRange { index: 1, bps: 0 }),
    );
    check(
        &[share("a", 10_001)],
        Err(ShareError::BpsOutOfRange {
            index: 0,
            bps: 10_001,
        }),
    );
    check(
        &[share("a", 5_000), share("a", 5_000)],
        Err(ShareError::DuplicatePayee {
            index: 1,
            payee: "a".into(),
        }),
    );
    check(
        &[share("", 10_000)],
        Err(ShareError::PayeeLength { index: 0 }),
    );
    check(
        &[share(&"x".repeat(PAYEE_BYTES_MAX + 1), 10_000)],
        Err(ShareError::PayeeLength { index: 0 }),
    );
    let seventeen: Vec<Share> = (0..17).map(|i| share(&format!("p{i}"), 1)).collect();
    check(&seventeen, Err(ShareError::TooMany { count: 17 }));
    // u32::MAX bps must be refused, not summed into an overflow.
    check(
        &[share("a", u32::MAX), share("b", 1)],
        Err(ShareError::BpsOutOfRange {
            index: 0,
            bps: u32::MAX,
        }),
    );
}

#[test]
fn split_without_shares_gives_the_merchant_the_net() {
    let split = split(Amount(1000), &plan(500, 0), &[]).unwrap();
    assert_eq!(split.platform_fee(), Amount(50));
    assert_eq!(split.merchant_net(), Some(Amount(950)));
    assert_eq!(split.rounding_remainder(), Amount::ZERO);
    assert_eq!(
        split.parts(),
        vec![
            (Destination::Platform, Amount(50)),
            (Destination::Merchant, Amount(950))
        ]
    );
}

#[test]
fn split_with_shares_floors_each_and_books_the_remainder() {
    // Net 101 split 70/30: 70.7 -> 70, 30.3 -> 30, remainder 1.
    let split = split(
        Amount(101),
        &FeePlan::FREE,
        &[share("author", 7_000), share("publisher", 3_000)],
    )
    .unwrap();
    assert_eq!(split.merchant_net(), None);
    assert_eq!(
        split.parts(),
        vec![
            (payee("author"), Amount(70)),
            (payee("publisher"), Amount(30)),
            (Destination::Rounding, Amount(1)),
        ]
    );
}

#[test]
fn split_where_the_fee_takes_everything_leaves_no_zero_parts() {
    let split = split(Amount(5), &plan(0, 30), &[share("a", 10_000)]).unwrap();
    assert_eq!(split.parts(), vec![(Destination::Platform, Amount(5))]);
    assert_eq!(split.net(), Amount::ZERO);
}

#[test]
fn split_refuses_bad_plans_and_shares() {
    assert!(matches!(
        split(Amount(1), &plan(20_000, 0), &[]),
        Err(FeeError::Plan(FeePlanError::PercentBpsOutOfRange { .. }))
    ));
    assert!(matches!(
        split(Amount(1), &FeePlan::FREE, &[share("a", 1)]),
        Err(FeeError::Shares(ShareError::BpsSum { sum: 1 }))
    ));
}

#[test]
fn from_parts_refuses_parts_that_do_not_add_up() {
    let unbalanced = Split::from_parts(
        Amount(100),
        Amount(10),
        NetDistribution::Merchant(Amount(89)),
    );
    assert_eq!(
        unbalanced,
        Err(FeeError::Unbalanced {
            gross: Amount(100),
            parts_total: Some(Amount(99))
        })
    );
    let overflowing = Split::from_parts(
        Amount(100),
        Amount(u128::MAX),
        NetDistribution::Merchant(Amount(1)),
    );
    assert!(matches!(
        overflowing,
        Err(FeeError::Unbalanced {
            parts_total: None,
            ..
        })
    ));
    let no_payees = Split::from_parts(
        Amount(0),
        Amount(0),
        NetDistribution::Payees {
            payees: vec![],
            rounding_remainder: Amount(0),
        },
    );
    assert!(matches!(no_payees, Err(FeeError::Shares(_))));
    let original = split(
        Amount(1001),
        &plan(290, 3),
        &[share("a", 3_333), share("b", 6_667)],
    )
    .unwrap();
    let rebuilt = Split::from_parts(
        original.gross(),
        original.platform_fee(),
        original.distribution().clone(),
    );
    assert_eq!(rebuilt, Ok(original));
}

#[test]
fn full_proportional_refund_reverses_every_part() {
    let split = split(
        Amount(1001),
        &plan(290, 3),
        &[share("a", 3_333), share("b", 6_667)],
    )
    .unwrap();
    let reversal = reverse(
        &split,
        Amount::ZERO,
        split.gross(),
        FeeRefundPolicy::Proportional,
    )
    .unwrap();
    assert_eq!(reversal.parts(), split.parts());
    assert_eq!(reversal.refund(), split.gross());
}

#[test]
fn partial_proportional_refund_is_pro_rata_floor_first() {
    // Gross 1000: fee 100, merchant 900. Refund 333: platform floor(33.3) = 33, merchant 300.
    let split = split(Amount(1000), &plan(1_000, 0), &[]).unwrap();
    let reversal = reverse(
        &split,
        Amount::ZERO,
        Amount(333),
        FeeRefundPolicy::Proportional,
    )
    .unwrap();
    assert_eq!(
        reversal.parts(),
        vec![
            (Destination::Platform, Amount(33)),
            (Destination::Merchant, Amount(300))
        ]
    );
    // The rest sweeps exactly what is left of each part.
    let rest = reverse(
        &split,
        Amount(333),
        Amount(667),
        FeeRefundPolicy::Proportional,
    )
    .unwrap();
    assert_eq!(
        rest.parts(),
        vec![
            (Destination::Platform, Amount(67)),
            (Destination::Merchant, Amount(600))
        ]
    );
}

#[test]
fn merchant_bears_fees_takes_the_whole_refund_from_the_payees() {
    let split = split(
        Amount(1000),
        &plan(1_000, 0),
        &[share("author", 7_000), share("publisher", 3_000)],
    )
    .unwrap();
    let reversal = reverse(
        &split,
        Amount::ZERO,
        Amount(1000),
        FeeRefundPolicy::MerchantBearsFees,
    )
    .unwrap();
    assert_eq!(
        reversal.parts(),
        vec![
            (payee("author"), Amount(700)),
            (payee("publisher"), Amount(300))
        ]
    );
    assert_eq!(reversal.amount_for(&Destination::Platform), Amount::ZERO);
}

#[test]
fn merchant_bears_fees_when_the_fee_took_everything() {
    // Regression guard: payees booked nothing, yet they (by share bps) bear the refund.
    let split = split(
        Amount(10),
        &plan(0, 30),
        &[share("a", 5_000), share("b", 5_000)],
    )
    .unwrap();
    let reversal = reverse(
        &split,
        Amount::ZERO,
        Amount(10),
        FeeRefundPolicy::MerchantBearsFees,
    )
    .unwrap();
    assert_eq!(
        reversal.parts(),
        vec![(payee("a"), Amount(5)), (payee("b"), Amount(5))]
    );
}

#[test]
fn refund_bounds_are_typed_errors() {
    let split = split(Amount(100), &plan(1_000, 0), &[]).unwrap();
    let policy = FeeRefundPolicy::Proportional;
    assert_eq!(
        reverse(&split, Amount::ZERO, Amount::ZERO, policy),
        Err(RefundError::ZeroRefund)
    );
    assert_eq!(
        reverse(&split, Amount(60), Amount(41), policy),
        Err(RefundError::ExceedsRemaining {
            refund: Amount(41),
            remaining: Amount(40)
        })
    );
    assert_eq!(
        reverse(&split, Amount(101), Amount(1), policy),
        Err(RefundError::AlreadyRefundedExceedsGross {
            already_refunded: Amount(101),
            gross: Amount(100)
        })
    );
    assert!(reverse(&split, Amount(99), Amount(1), policy).is_ok());
}

#[test]
fn nested_pro_rata_is_monotone_where_prefix_flooring_is_not() {
    // Regression guard: flooring cumulative prefix sums (an earlier idea) made the middle part
    // of weights (2, 1, 2) give back 1 at c = 2 and 0 at c = 3.
    let weights = [2u128, 1, 2];
    let mut previous = vec![0u128; 3];
    for c in 0..=5 {
        let takes = nested_pro_rata(&weights, c).unwrap();
        assert_eq!(takes.iter().sum::<u128>(), c);
        for (take, before) in takes.iter().zip(&previous) {
            assert!(take >= before, "c = {c}: {takes:?} after {previous:?}");
        }
        previous = takes;
    }
    assert_eq!(previous, weights.to_vec());
}

// ---- property tests ----

fn arb_gross() -> impl Strategy<Value = u128> {
    prop_oneof![
        0u128..=1_000,
        0u128..=10_000_000_000,
        any::<u128>(),
        (u128::MAX - 1_000)..=u128::MAX,
    ]
}

fn arb_amount_option() -> impl Strategy<Value = Option<u128>> {
    prop_oneof![
        Just(None),
        (0u128..=5_000).prop_map(Some),
        any::<u128>().prop_map(Some)
    ]
}

fn arb_rule() -> impl Strategy<Value = RoundingRule> {
    prop::sample::select(ALL_RULES.to_vec())
}

fn arb_plan() -> impl Strategy<Value = FeePlan> {
    (
        prop_oneof![0u32..=10_000, Just(0), Just(10_000)],
        prop_oneof![0u128..=1_000, any::<u128>()],
        arb_amount_option(),
        arb_amount_option(),
        arb_rule(),
    )
        .prop_map(|(percent_bps, fixed, minimum, maximum, rounding)| {
            let (minimum, maximum) = match (minimum, maximum) {
                (Some(lo), Some(hi)) if lo > hi => (Some(hi), Some(lo)),
                other => other,
            };
            FeePlan {
                percent_bps,
                fixed: Amount(fixed),
                minimum: minimum.map(Amount),
                maximum: maximum.map(Amount),
                rounding,
            }
        })
}

/// Up to 16 shares with positive bps summing to 10,000 (or none at all).
fn arb_shares() -> impl Strategy<Value = Vec<Share>> {
    prop_oneof![
        Just(vec![]),
        prop::collection::btree_set(1u32..10_000, 0..SHARES_MAX).prop_map(|cuts| {
            let mut bounds: Vec<u32> = vec![0];
            bounds.extend(cuts);
            bounds.push(10_000);
            bounds
                .windows(2)
                .enumerate()
                .map(|(i, w)| share(&format!("payee{i}"), w[1] - w[0]))
                .collect()
        }),
    ]
}

/// Cumulative refund points in `(0, gross]`, ending at `gross`, built from fractions.
fn refund_points(gross: u128, fractions: &[u64]) -> Vec<u128> {
    let mut points: Vec<u128> = fractions
        .iter()
        .map(|f| mul_div(gross, u128::from(*f), 1 << 64, RoundingRule::Down).unwrap())
        .filter(|c| *c > 0)
        .collect();
    points.push(gross);
    points.sort_unstable();
    points.dedup();
    points.retain(|c| *c > 0);
    points
}

fn sum(parts: &[(Destination, Amount)]) -> u128 {
    parts.iter().map(|(_, a)| a.0).sum()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn mul_div_is_exact(a in any::<u128>(), b in any::<u128>(), c in 1..=u128::MAX) {
        let (high, low) = widening_mul(a, b);
        match mul_div_rem(a, b, c) {
            Ok((q, r)) => {
                prop_assert!(r < c);
                // q * c + r == a * b, checked in 256 bits.
                let (qc_high, qc_low) = widening_mul(q, c);
                let (sum_low, carry) = qc_low.overflowing_add(r);
                prop_assert_eq!(sum_low, low);
                prop_assert_eq!(qc_high + u128::from(carry), high);
            }
            Err(ArithmeticError::Overflow) => prop_assert!(high >= c),
            Err(other) => prop_assert!(false, "unexpected {:?}", other),
        }
    }

    #[test]
    fn mul_div_matches_native_arithmetic_when_it_fits(
        a in any::<u64>(), b in any::<u64>(), c in 1..=u64::MAX, rule in arb_rule()
    ) {
        let (a, b, c) = (u128::from(a), u128::from(b), u128::from(c));
        let (q, r) = ((a * b) / c, (a * b) % c);
        let expected = match rule {
            RoundingRule::Down => q,
            RoundingRule::Up => q + u128::from(r > 0),
            RoundingRule::HalfUp => q + u128::from(2 * r >= c && r > 0),
            RoundingRule::HalfEven => q + u128::from(2 * r > c || (2 * r == c && q % 2 == 1)),
        };
        prop_assert_eq!(mul_div(a, b, c, rule), Ok(expected));
        // The wide path agrees with the fast path.
        let (high, low) = widening_mul(a, b);
        prop_assert_eq!(divide_wide(high, low, c), Ok((q, r)));
    }

    #[test]
    fn rounding_rules_are_ordered(a in any::<u128>(), b in any::<u128>(), c in 1..=u128::MAX) {
        if let Ok(down) = mul_div(a, b, c, RoundingRule::Down) {
            for rule in ALL_RULES {
                if let Ok(rounded) = mul_div(a, b, c, rule) {
                    prop_assert!(rounded == down || rounded == down + 1);
                }
            }
        }
    }

    #[test]
    fn split_parts_always_add_up_to_gross(
        gross in arb_gross(), plan in arb_plan(), shares in arb_shares()
    ) {
        let split = split(Amount(gross), &plan, &shares).unwrap();
        prop_assert_eq!(sum(&split.parts()), gross);
        prop_assert!(split.parts().iter().all(|(_, a)| !a.is_zero()));
        let fee = split.platform_fee().0;
        prop_assert!(fee <= gross);
        if let Some(maximum) = plan.maximum {
            prop_assert!(fee <= maximum.0);
        }
        if let Some(minimum) = plan.minimum {
            prop_assert!(fee >= minimum.0.min(gross));
        }
        let net = gross - fee;
        if shares.is_empty() {
            prop_assert_eq!(split.merchant_net(), Some(Amount(net)));
            prop_assert_eq!(split.rounding_remainder(), Amount::ZERO);
        } else {
            for (payee, share) in split.payees().iter().zip(&shares) {
                let exact = mul_div(net, u128::from(share.bps), 10_000, RoundingRule::Down).unwrap();
                prop_assert_eq!(payee.amount.0, exact);
            }
            // Each floor loses less than one unit.
            prop_assert!(split.rounding_remainder().0 < shares.len() as u128);
        }
    }

    #[test]
    fn partial_proportional_refunds_reverse_exactly_what_was_booked(
        gross in arb_gross(),
        plan in arb_plan(),
        shares in arb_shares(),
        fractions in prop::collection::vec(any::<u64>(), 0..8),
    ) {
        let split = split(Amount(gross), &plan, &shares).unwrap();
        let booked = split.booked_parts();
        let mut given_back = vec![0u128; booked.len()];
        let mut refunded = 0u128;
        for point in refund_points(gross, &fractions) {
            let refund = point - refunded;
            let reversal = reverse(&split, Amount(refunded), Amount(refund), FeeRefundPolicy::Proportional).unwrap();
            prop_assert_eq!(sum(&reversal.parts), refund);
            refunded = point;
            for ((total, (_, amount)), (_, booked)) in given_back.iter_mut().zip(&reversal.parts).zip(&booked) {
                *total += amount.0;
                // Never more than was booked, at any step.
                prop_assert!(*total <= booked.0);
            }
            // Path independence: the steps so far give back what one refund of their total does.
            let at_once = reverse(&split, Amount::ZERO, Amount(refunded), FeeRefundPolicy::Proportional).unwrap();
            let at_once: Vec<u128> = at_once.parts.iter().map(|(_, a)| a.0).collect();
            prop_assert_eq!(&given_back, &at_once);
        }
        // The full amount refunded reverses every part exactly.
        let booked: Vec<u128> = booked.iter().map(|(_, a)| a.0).collect();
        prop_assert_eq!(given_back, booked);
    }

    #[test]
    fn proportional_give_backs_stay_close_to_the_exact_share(
        gross in 1u128..=u128::MAX,
        plan in arb_plan(),
        shares in arb_shares(),
        fraction in any::<u64>(),
    ) {
        let split = split(Amount(gross), &plan, &shares).unwrap();
        let refunded = mul_div(gross, u128::from(fraction), 1 << 64, RoundingRule::Down).unwrap().max(1);
        let reversal = reverse(&split, Amount::ZERO, Amount(refunded), FeeRefundPolicy::Proportional).unwrap();
        let parts_count = reversal.parts.len() as u128;
        for ((_, given), (_, booked)) in reversal.parts.iter().zip(split.booked_parts()) {
            let exact_floor = mul_div(booked.0, refunded, gross, RoundingRule::Down).unwrap();
            prop_assert!(given.0 + parts_count > exact_floor, "{:?} vs {}", given, exact_floor);
            prop_assert!(given.0 <= exact_floor + parts_count, "{:?} vs {}", given, exact_floor);
        }
    }

    #[test]
    fn merchant_bears_fees_refunds_are_path_independent(
        gross in arb_gross(),
        plan in arb_plan(),
        shares in arb_shares(),
        fractions in prop::collection::vec(any::<u64>(), 0..8),
    ) {
        let split = split(Amount(gross), &plan, &shares).unwrap();
        let mut given_back = vec![0u128; split.booked_parts().len()];
        let mut refunded = 0u128;
        for point in refund_points(gross, &fractions) {
            let refund = point - refunded;
            let reversal = reverse(&split, Amount(refunded), Amount(refund), FeeRefundPolicy::MerchantBearsFees).unwrap();
            prop_assert_eq!(sum(&reversal.parts), refund);
            prop_assert_eq!(reversal.amount_for(&Destination::Platform), Amount::ZERO);
            prop_assert_eq!(reversal.amount_for(&Destination::Rounding), Amount::ZERO);
            refunded = point;
            for (total, (_, amount)) in given_back.iter_mut().zip(&reversal.parts) {
                *total += amount.0;
            }
            let at_once = reverse(&split, Amount::ZERO, Amount(refunded), FeeRefundPolicy::MerchantBearsFees).unwrap();
            let at_once: Vec<u128> = at_once.parts.iter().map(|(_, a)| a.0).collect();
            prop_assert_eq!(&given_back, &at_once);
        }
    }

    #[test]
    fn nested_pro_rata_is_monotone_exact_and_bounded(
        weights in prop::collection::vec(prop_oneof![0u128..=20, any::<u64>().prop_map(u128::from)], 1..18),
        c in any::<u64>(),
    ) {
        let total: u128 = weights.iter().sum();
        prop_assume!(total > 0);
        let c = u128::from(c) % (total + 1);
        let here = nested_pro_rata(&weights, c).unwrap();
        prop_assert_eq!(here.iter().sum::<u128>(), c);
        if c < total {
            let next = nested_pro_rata(&weights, c + 1).unwrap();
            for ((h, n), w) in here.iter().zip(&next).zip(&weights) {
                prop_assert!(h <= n);
                prop_assert!(n <= w);
            }
        }
        prop_assert_eq!(nested_pro_rata(&weights, total).unwrap(), weights);
    }
}
