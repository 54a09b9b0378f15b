use super::*;
use proptest::prelude::*;

fn sandbox() -> SandboxProcessor {
    SandboxProcessor::default()
}

const KEY: TokenKey = TokenKey::new([7; 32]);
const CUSTOMER: u128 = 42;

/// Tokenizes `card` for [`CUSTOMER`] under [`KEY`].
fn tokenize(card: &str) -> Result<PaymentMethod, TokenizeError> {
    sandbox().tokenize(card, &KEY, CUSTOMER)
}

fn charge_request(key: &str, payment_method: &str, amount: u128) -> ProcessorCharge {
    ProcessorCharge {
        idempotency_key: key.to_string(),
        payment_method: payment_method.to_string(),
        amount: Amount(amount),
        asset_scale: 2,
        description: "top-up".to_string(),
    }
}

/// Tokenizes `card` and charges 10.00 at scale 2 with it.
fn charge_card(card: &str) -> ProcessorOutcome {
    let method = tokenize(card).unwrap();
    sandbox().charge(&charge_request("key-1", &method.token, 1000))
}

fn check_declined(card: &str, expected: DeclineReason) {
    match charge_card(card) {
        ProcessorOutcome::Failed { reason, message } => {
            assert_eq!(reason, expected, "{card}");
            assert!(!message.is_empty());
        }
        other => panic!("{card}: expected {expected:?}, got {other:?}"),
    }
}

#[test]
fn every_test_card_passes_luhn() {
    for card in [
        test_cards::SUCCEEDS,
        test_cards::DECLINED,
        test_cards::INSUFFICIENT_FUNDS,
        test_cards::SUSPECTED_FRAUD,
        test_cards::PROCESSING_ERROR,
        test_cards::DISPUTED_FRAUDULENT,
        test_cards::DISPUTED_PRODUCT_NOT_RECEIVED,
        "5555555555554444",
        "378282246310005",
        "6011111111111117",
    ] {
        assert!(luhn_valid(card), "{card}");
    }
    assert!(!luhn_valid("4242424242424241"));
    assert!(!luhn_valid(""));
    assert!(!luhn_valid("42424242x4242424"));
}

#[test]
fn test_cards_behave_like_stripes() {
    let succeeded = charge_card(test_cards::SUCCEEDS);
    assert_eq!(
        succeeded,
        ProcessorOutcome::Succeeded {
            processor_charge_id: SandboxProcessor::charge_id("key-1"),
            // 2.9% of 1000 cents = 29, + 30.
            fee: Amount(59),
        }
    );
    check_declined(test_cards::DECLINED, DeclineReason::CardDeclined);
    check_declined(
        test_cards::INSUFFICIENT_FUNDS,
        DeclineReason::InsufficientFunds,
    );
    check_declined(test_cards::SUSPECTED_FRAUD, DeclineReason::SuspectedFraud);
    check_declined(
        test_cards::PROCESSING_ERROR,
        DeclineReason::ProcessorUnavailable,
    );
    // Any other Luhn-valid number succeeds.
    assert!(matches!(
        charge_card("5555555555554444"),
        ProcessorOutcome::Succeeded { .. }
    ));
}

#[test]
fn disputed_cards_succeed_then_are_disputed() {
    for (card, reason) in [
        (test_cards::DISPUTED_FRAUDULENT, DisputeReason::Fraudulent),
        (
            test_cards::DISPUTED_PRODUCT_NOT_RECEIVED,
            DisputeReason::ProductNotReceived,
        ),
    ] {
        let method = tokenize(card).unwrap();
        let request = charge_request("k", &method.token, 500);
        assert!(matches!(
            sandbox().charge(&request),
            ProcessorOutcome::Succeeded { .. }
        ));
        assert_eq!(
            sandbox().dispute(&request),
            Some(ProcessorDispute {
                reason,
                amount: Amount(500)
            })
        );
    }
    let method = tokenize(test_cards::SUCCEEDS).unwrap();
    assert_eq!(
        sandbox().dispute(&charge_request("k", &method.token, 500)),
        None
    );
}

#[test]
fn tokenize_refuses_bad_numbers_naming_card_number() {
    let check = |card: &str, expected: TokenizeError| {
        let error = tokenize(card).unwrap_err();
        assert_eq!(error, expected, "{card:?}");
        assert!(error.to_string().contains("card_number"));
        assert_eq!(error.decline_reason(), DeclineReason::InvalidPaymentMethod);
    };
    check("4242424242424241", TokenizeError::FailsLuhnCheck);
    check("", TokenizeError::Malformed);
    check("4242", TokenizeError::Malformed);
    check("42424242424242424242", TokenizeError::Malformed);
    check("4242-4242-4242-424x", TokenizeError::Malformed);
    check(&"4".repeat(10_000), TokenizeError::Malformed);
    check("４２４２４２４２４２４２４２４２", TokenizeError::Malformed);
}

#[test]
fn tokens_are_deterministic_and_never_contain_the_card_number() {
    let method = tokenize("4242 4242 4242 4242").unwrap();
    assert_eq!(
        method,
        tokenize(test_cards::SUCCEEDS).unwrap(),
        "spaces are ignored"
    );
    assert_eq!(
        method,
        tokenize("4242-4242-4242-4242").unwrap(),
        "dashes are ignored"
    );
    assert!(method.token.starts_with("pm_sandbox_succeeds_visa_4242_"));
    assert!(!method.token.contains(test_cards::SUCCEEDS));
    assert_eq!(method.brand, CardBrand::Visa);
    assert_eq!(method.last4, "4242");
    // Two different cards with the same last four get different tokens.
    let other = tokenize("4000000000024242").unwrap();
    assert_eq!(other.last4, "4242");
    assert_ne!(other.token, method.token);
}

/// Regression (issue 16, API completeness): the token was a hash of the card number alone, so
/// two customers with the same card got the same token, which told anyone who saw both that
/// they share a card. Now the fingerprint is keyed by the platform's secret and the customer.
#[test]
fn tokens_of_one_card_differ_between_customers_and_without_the_key() {
    let ada = sandbox().tokenize(test_cards::SUCCEEDS, &KEY, 1).unwrap();
    let bob = sandbox().tokenize(test_cards::SUCCEEDS, &KEY, 2).unwrap();
    assert_ne!(ada.token, bob.token);
    // What may be shown stays the same, and both charge as the card does.
    assert_eq!((&ada.brand, &ada.last4), (&bob.brand, &bob.last4));
    for token in [&ada.token, &bob.token] {
        assert!(matches!(
            sandbox().charge(&charge_request("k", token, 100)),
            ProcessorOutcome::Succeeded { .. }
        ));
    }
    // The same customer under another platform's key: another token again (a token cannot be
    // recomputed, or a guessed number tested, without the key).
    let elsewhere = sandbox()
        .tokenize(test_cards::SUCCEEDS, &TokenKey::new([8; 32]), 1)
        .unwrap();
    assert_ne!(elsewhere.token, ada.token);
    // The same customer and key: the same token, every time.
    assert_eq!(
        sandbox().tokenize(test_cards::SUCCEEDS, &KEY, 1).unwrap(),
        ada
    );
    assert_eq!(format!("{KEY:?}"), "TokenKey(..)");
}

#[test]
fn brands_come_from_the_prefix() {
    let brand = |card: &str| tokenize(card).unwrap().brand;
    assert_eq!(brand("4242424242424242"), CardBrand::Visa);
    assert_eq!(brand("5555555555554444"), CardBrand::Mastercard);
    assert_eq!(brand("2223003122003222"), CardBrand::Mastercard);
    assert_eq!(brand("378282246310005"), CardBrand::Amex);
    assert_eq!(brand("6011111111111117"), CardBrand::Discover);
    assert_eq!(brand("3056930009020004"), CardBrand::Unknown);
}

#[test]
fn charges_with_unknown_or_tampered_tokens_are_invalid_payment_methods() {
    let valid = tokenize(test_cards::SUCCEEDS).unwrap().token;
    for payment_method in [
        "",
        "pm_live_123",
        test_cards::SUCCEEDS,
        "pm_sandbox_",
        "pm_sandbox_succeeds_visa_4242",
        "pm_sandbox_teleport_visa_4242_0123456789ab",
        "pm_sandbox_succeeds_plastic_4242_0123456789ab",
        "pm_sandbox_succeeds_visa_42x2_0123456789ab",
        "pm_sandbox_succeeds_visa_4242_0123456789AB",
        &format!("{valid}0"),
        &format!("x{valid}"),
    ] {
        let outcome = sandbox().charge(&charge_request("k", payment_method, 100));
        assert!(
            matches!(
                outcome,
                ProcessorOutcome::Failed {
                    reason: DeclineReason::InvalidPaymentMethod,
                    ..
                }
            ),
            "{payment_method:?}: {outcome:?}"
        );
    }
}

#[test]
fn malformed_charges_fail_naming_the_field() {
    let token = tokenize(test_cards::SUCCEEDS).unwrap().token;
    let check = |request: ProcessorCharge, field: &str| match sandbox().charge(&request) {
        ProcessorOutcome::Failed {
            reason: DeclineReason::InvalidRequest,
            message,
        } => assert!(message.contains(field), "{message}"),
        other => panic!("{field}: {other:?}"),
    };
    check(charge_request("", &token, 100), "idempotency_key");
    check(
        charge_request(&"k".repeat(256), &token, 100),
        "idempotency_key",
    );
    check(charge_request("k", &token, 0), "amount");
    let mut bad_scale = charge_request("k", &token, 100);
    bad_scale.asset_scale = 19;
    check(bad_scale, "asset_scale");
    let mut long = charge_request("k", &token, 100);
    long.description = "d".repeat(DESCRIPTION_BYTES_MAX + 1);
    check(long, "description");
}

#[test]
fn retried_charges_return_the_same_id() {
    let token = tokenize(test_cards::SUCCEEDS).unwrap().token;
    let first = sandbox().charge(&charge_request("order-42", &token, 100));
    let retry = sandbox().charge(&charge_request("order-42", &token, 100));
    let other = sandbox().charge(&charge_request("order-43", &token, 100));
    assert_eq!(first, retry);
    assert_ne!(first, other);
}

#[test]
fn card_fee_scales_the_fixed_part_with_the_asset() {
    let fees = SandboxFees::default();
    let check = |amount: u128, scale: u8, expected: u128| {
        assert_eq!(
            fees.card_fee(Amount(amount), scale),
            Ok(Amount(expected)),
            "{amount} at scale {scale}"
        );
    };
    // $10.00 at scale 2: 29 + 30.
    check(1000, 2, 59);
    // $0.01 at scale 2: 2.9% of 1 = 0.029 -> 0, + 30: a one-cent charge costs 30 cents.
    check(1, 2, 30);
    // $0.17 at scale 2: 0.493 -> 0; $0.18: 0.522 -> 1 (half up).
    check(17, 2, 30);
    check(18, 2, 31);
    // $10 at scale 6 (micro-dollars): 290,000 + 300,000.
    check(10_000_000, 6, 590_000);
    // Scale 1 (dimes): 30 cents = 3 dimes.
    check(100, 1, 3 + 3);
    // Scale 0: 30 cents rounds up to 1 whole unit; 2.9% of 100 = 2.9 -> 3.
    check(100, 0, 3 + 1);
    check(0, 18, 30 * 10u128.pow(16));
    assert_eq!(
        fees.card_fee(Amount(1), 19),
        Err(CardFeeError::ScaleTooLarge { asset_scale: 19 })
    );
    // 2.9% of the largest amount still leaves room for the fixed part.
    assert!(fees.card_fee(Amount(u128::MAX), 18).is_ok());
    let half = SandboxFees {
        percent_bps: 5_000,
        fixed_cents: 0,
    };
    // 50% of 3 = 1.5 -> 2 (half up).
    assert_eq!(half.card_fee(Amount(3), 2), Ok(Amount(2)));
    assert_eq!(
        SandboxProcessor::new(SandboxFees {
            percent_bps: 10_001,
            fixed_cents: 0
        }),
        Err(CardFeeError::PercentBpsOutOfRange {
            percent_bps: 10_001
        })
    );
}

#[test]
fn card_fee_overflow_is_an_error_not_a_panic() {
    let fees = SandboxFees {
        percent_bps: 10_000,
        fixed_cents: u32::MAX,
    };
    assert_eq!(
        fees.card_fee(Amount(u128::MAX), 18),
        Err(CardFeeError::Overflow {
            amount: Amount(u128::MAX)
        })
    );
}

#[test]
fn refunds_are_deterministic_and_checked() {
    let request = ProcessorRefund {
        idempotency_key: "refund-1".to_string(),
        processor_charge_id: SandboxProcessor::charge_id("order-42"),
        amount: Amount(50),
        asset_scale: 2,
    };
    let first = sandbox().refund(&request);
    assert!(matches!(
        &first,
        ProcessorRefundOutcome::Succeeded { processor_refund_id } if processor_refund_id.starts_with("re_sandbox_")
    ));
    assert_eq!(first, sandbox().refund(&request));
    let foreign = ProcessorRefund {
        processor_charge_id: "ch_live_1".to_string(),
        ..request.clone()
    };
    assert!(matches!(
        sandbox().refund(&foreign),
        ProcessorRefundOutcome::Failed {
            reason: DeclineReason::InvalidRequest,
            ..
        }
    ));
    let zero = ProcessorRefund {
        amount: Amount::ZERO,
        ..request
    };
    assert!(matches!(
        sandbox().refund(&zero),
        ProcessorRefundOutcome::Failed {
            reason: DeclineReason::InvalidRequest,
            ..
        }
    ));
}

#[test]
fn codes_are_stable_snake_case() {
    for reason in [
        DeclineReason::CardDeclined,
        DeclineReason::InsufficientFunds,
        DeclineReason::SuspectedFraud,
        DeclineReason::InvalidPaymentMethod,
        DeclineReason::ProcessorUnavailable,
        DeclineReason::InvalidRequest,
    ] {
        assert_eq!(
            serde_json::to_string(&reason).unwrap(),
            format!("\"{}\"", reason.code())
        );
        assert_eq!(
            reason.is_retryable(),
            reason == DeclineReason::ProcessorUnavailable
        );
    }
    for failure in [
        PayoutFailure::NoAccount,
        PayoutFailure::AccountClosed,
        PayoutFailure::InsufficientFunds,
        PayoutFailure::DebitNotAuthorized,
        PayoutFailure::InvalidAccountNumber,
        PayoutFailure::InvalidRequest,
        PayoutFailure::RailUnavailable,
    ] {
        assert_eq!(
            serde_json::to_string(&failure).unwrap(),
            format!("\"{}\"", failure.code())
        );
    }
    for brand in CardBrand::ALL {
        assert_eq!(
            serde_json::to_string(&brand).unwrap(),
            format!("\"{}\"", brand.code())
        );
    }
    for reason in [DisputeReason::Fraudulent, DisputeReason::ProductNotReceived] {
        assert_eq!(
            serde_json::to_string(&reason).unwrap(),
            format!("\"{}\"", reason.code())
        );
    }
}

fn payout(key: &str, bank_account: &str) -> PayoutRequest {
    PayoutRequest {
        idempotency_key: key.to_string(),
        bank_account: bank_account.to_string(),
        amount: Amount(10_000),
        asset_scale: 2,
        description: "weekly payout".to_string(),
    }
}

#[test]
fn test_bank_accounts_behave_as_documented() {
    let rail = SandboxPayoutRail;
    assert_eq!(
        rail.send(&payout("p1", test_bank_accounts::SUCCEEDS)),
        PayoutOutcome::Sent {
            payout_id: SandboxPayoutRail::payout_id("p1")
        }
    );
    for (account, expected) in [
        (test_bank_accounts::NO_ACCOUNT, PayoutFailure::NoAccount),
        (
            test_bank_accounts::ACCOUNT_CLOSED,
            PayoutFailure::AccountClosed,
        ),
        (
            test_bank_accounts::INSUFFICIENT_FUNDS,
            PayoutFailure::InsufficientFunds,
        ),
        (
            test_bank_accounts::DEBIT_NOT_AUTHORIZED,
            PayoutFailure::DebitNotAuthorized,
        ),
        (
            test_bank_accounts::RAIL_UNAVAILABLE,
            PayoutFailure::RailUnavailable,
        ),
        ("12a456", PayoutFailure::InvalidAccountNumber),
        ("123", PayoutFailure::InvalidAccountNumber),
        ("123456789012345678", PayoutFailure::InvalidAccountNumber),
        ("", PayoutFailure::InvalidAccountNumber),
    ] {
        match rail.send(&payout("p1", account)) {
            PayoutOutcome::Failed { reason, .. } => assert_eq!(reason, expected, "{account}"),
            other => panic!("{account}: {other:?}"),
        }
    }
    assert!(matches!(
        rail.send(&payout("p1", "1234")),
        PayoutOutcome::Sent { .. }
    ));
    // In transit: in flight when sent (again and again: the same answer per key), sent when
    // its status is asked; a payout that failed fails when asked as well.
    let transit = payout("p2", test_bank_accounts::IN_TRANSIT);
    let in_flight = PayoutOutcome::InFlight {
        payout_id: SandboxPayoutRail::payout_id("p2"),
    };
    assert_eq!(rail.send(&transit), in_flight);
    assert_eq!(rail.send(&transit), in_flight);
    assert_eq!(
        rail.status(&transit, &SandboxPayoutRail::payout_id("p2")),
        PayoutOutcome::Sent {
            payout_id: SandboxPayoutRail::payout_id("p2")
        }
    );
    let closed = payout("p3", test_bank_accounts::ACCOUNT_CLOSED);
    assert_eq!(rail.status(&closed, "po_x"), rail.send(&closed));
    let mut zero = payout("p1", test_bank_accounts::SUCCEEDS);
    zero.amount = Amount::ZERO;
    assert!(matches!(
        rail.send(&zero),
        PayoutOutcome::Failed {
            reason: PayoutFailure::InvalidRequest,
            ..
        }
    ));
}

#[test]
fn payout_ids_are_deterministic_per_key() {
    let rail = SandboxPayoutRail;
    let first = rail.send(&payout("weekly-7", test_bank_accounts::SUCCEEDS));
    assert_eq!(
        first,
        rail.send(&payout("weekly-7", test_bank_accounts::SUCCEEDS))
    );
    assert_ne!(
        first,
        rail.send(&payout("weekly-8", test_bank_accounts::SUCCEEDS))
    );
    // Charge, refund and payout ids from the same key never coincide.
    assert_ne!(
        SandboxProcessor::charge_id("weekly-7")["ch_sandbox_".len()..],
        SandboxPayoutRail::payout_id("weekly-7")["po_sandbox_".len()..]
    );
}

#[test]
fn the_traits_are_object_safe() {
    let processor: Box<dyn PaymentProcessor> = Box::new(SandboxProcessor::default());
    let rail: Box<dyn PayoutRail> = Box::new(SandboxPayoutRail);
    assert_eq!(processor.fee(Amount(1000), 2), Ok(Amount(59)));
    assert!(matches!(
        rail.send(&payout("k", test_bank_accounts::SUCCEEDS)),
        PayoutOutcome::Sent { .. }
    ));
}

proptest! {
    #[test]
    fn any_input_gets_an_outcome_not_a_panic(
        key in ".{0,300}",
        payment_method in ".{0,120}",
        amount in any::<u128>(),
        scale in any::<u8>(),
    ) {
        let request = ProcessorCharge {
            idempotency_key: key.clone(),
            payment_method,
            amount: Amount(amount),
            asset_scale: scale,
            description: String::new(),
        };
        let first = sandbox().charge(&request);
        prop_assert_eq!(&first, &sandbox().charge(&request));
        let _ = sandbox().dispute(&request);
        let _ = SandboxPayoutRail.send(&PayoutRequest {
            idempotency_key: key,
            bank_account: request.payment_method.clone(),
            amount: Amount(amount),
            asset_scale: scale,
            description: String::new(),
        });
    }

    #[test]
    fn tokenize_accepts_exactly_the_luhn_valid_numbers(digits in "[0-9]{12,19}") {
        let result = tokenize(&digits);
        prop_assert_eq!(result.is_ok(), luhn_valid(&digits));
        if let Ok(method) = result {
            prop_assert!(SandboxToken::parse(&method.token).is_some());
            prop_assert!(!method.token.contains(&digits));
            prop_assert_eq!(&method.last4, &digits[digits.len() - 4..]);
        }
    }

    #[test]
    fn fixing_the_check_digit_makes_any_number_luhn_valid(body in "[0-9]{11,18}") {
        let valid = (0..10)
            .map(|d| format!("{body}{d}"))
            .filter(|n| luhn_valid(n))
            .count();
        prop_assert_eq!(valid, 1);
    }

    #[test]
    fn card_fee_is_percentage_plus_fixed(amount in any::<u64>(), scale in 2u8..=18) {
        let fees = SandboxFees::default();
        let fee = fees.card_fee(Amount(u128::from(amount)), scale).unwrap().0;
        let fixed = 30 * 10u128.pow(u32::from(scale - 2));
        let percent = (u128::from(amount) * 290 + 5_000) / 10_000;
        prop_assert_eq!(fee, percent + fixed);
    }
}
