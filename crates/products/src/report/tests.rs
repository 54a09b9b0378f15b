use super::*;
use crate::processor::SandboxFees;
use proptest::prelude::*;

fn payment(amount: u128, platform_fee: u128, kind: PaymentKind) -> PaymentRecord {
    PaymentRecord {
        amount: Amount(amount),
        platform_fee: Amount(platform_fee),
        kind,
    }
}

fn processor_charge(amount_charged: u128, fee: u128) -> ProcessorFeeRecord {
    ProcessorFeeRecord {
        amount_charged: Amount(amount_charged),
        fee: Amount(fee),
    }
}

fn reversal(amount: u128, platform_fee_returned: u128, kind: ReversalKind) -> ReversalRecord {
    ReversalRecord {
        amount: Amount(amount),
        platform_fee_returned: Amount(platform_fee_returned),
        kind,
    }
}

fn sandbox_card_fee(amount: Amount, scale: u8) -> Result<Amount, CardFeeError> {
    SandboxFees::default().card_fee(amount, scale)
}

#[test]
fn a_hundred_one_cent_payments_from_one_top_up() {
    // 100 payments of $0.01 at scale 2, funded by one $1.00 top-up.
    let payments = (0..100).map(|_| payment(1, 0, PaymentKind::Wallet));
    let top_up = [processor_charge(100, 33)];
    let report = build_fee_report(payments, [], top_up, 2, sandbox_card_fee).unwrap();
    assert_eq!(report.payments, 100);
    assert_eq!(report.gross, Amount(100));
    assert_eq!(report.average_payment, Some(Amount(1)));
    // Each one-cent card charge would cost 30 cents (2.9% of 1 rounds to 0).
    assert_eq!(report.processor_fees_if_each_card, Amount(3000));
    assert_eq!(report.processor_fees_paid, Amount(33));
    assert_eq!(
        report.saving,
        SignedAmount::difference(Amount(3000), Amount(33))
    );
    assert_eq!(report.saving.format(2), "29.67");
    // 2967 / 3000 = 0.989.
    assert_eq!(report.saving_ratio.unwrap().to_string(), "0.9890");
    assert_eq!(
        report.by_kind.get(&PaymentKind::Wallet),
        Some(&KindTotals {
            payments: 100,
            gross: Amount(100),
            platform_fees: Amount(0)
        })
    );
}

#[test]
fn a_negative_saving_is_reported_with_its_sign() {
    let report = build_fee_report(
        [payment(10_000, 100, PaymentKind::Tab)],
        [],
        [processor_charge(5_000, 175), processor_charge(5_000, 175)],
        2,
        sandbox_card_fee,
    )
    .unwrap();
    // One $100 card charge: 290 + 30 = 320; two $50 ones cost 350.
    assert_eq!(report.processor_fees_if_each_card, Amount(320));
    assert!(report.saving.is_negative());
    assert_eq!(report.saving.format(2), "-0.30");
    // -30 / 320 = -0.09375 -> -0.0938 (half even: 937.5 -> 938).
    assert_eq!(report.saving_ratio.unwrap().to_string(), "-0.0938");
}

#[test]
fn the_averages_round_half_even() {
    let report = |amounts: &[u128]| {
        build_fee_report(
            amounts.iter().map(|a| payment(*a, 0, PaymentKind::Voucher)),
            [],
            [],
            0,
            sandbox_card_fee,
        )
        .unwrap()
        .average_payment
    };
    assert_eq!(report(&[1, 2]), Some(Amount(2))); // 1.5 -> 2
    assert_eq!(report(&[2, 3]), Some(Amount(2))); // 2.5 -> 2
    assert_eq!(report(&[1, 1, 2]), Some(Amount(1))); // 1.33 -> 1
    assert_eq!(report(&[]), None);
}

#[test]
fn an_empty_report_has_no_ratio() {
    let report = build_fee_report([], [], [], 6, sandbox_card_fee).unwrap();
    assert_eq!(report.saving_ratio, None);
    assert_eq!(report.saving.format(6), "0.000000");
    assert!(!report.saving.is_negative());
}

#[test]
fn bad_scales_and_overflows_are_typed_errors() {
    assert_eq!(
        build_fee_report([], [], [], 19, sandbox_card_fee),
        Err(ReportError::ScaleTooLarge { asset_scale: 19 })
    );
    let huge = [
        payment(u128::MAX, 0, PaymentKind::Wallet),
        payment(1, 0, PaymentKind::Wallet),
    ];
    assert_eq!(
        build_fee_report(huge, [], [], 2, |_, _| Ok(Amount::ZERO)),
        Err(ReportError::Overflow { field: "gross" })
    );
    let paid = [processor_charge(1, u128::MAX), processor_charge(1, 1)];
    assert_eq!(
        build_fee_report([], [], paid, 2, sandbox_card_fee),
        Err(ReportError::Overflow {
            field: "processor_fees_paid"
        })
    );
    let failing_fee = |_, _| Err(CardFeeError::ScaleTooLarge { asset_scale: 2 });
    assert!(matches!(
        build_fee_report([payment(1, 0, PaymentKind::Tab)], [], [], 2, failing_fee),
        Err(ReportError::CardFee(_))
    ));
    // A saving ratio too large to represent: paid u128::MAX against a card fee of 1.
    let report = build_fee_report(
        [payment(1, 0, PaymentKind::Tab)],
        [],
        [processor_charge(1, u128::MAX)],
        2,
        |_, _| Ok(Amount(1)),
    );
    assert_eq!(
        report,
        Err(ReportError::Overflow {
            field: "saving_ratio"
        })
    );
}

#[test]
fn amounts_format_padded_to_the_scale() {
    assert_eq!(Amount(2500).to_decimal(6), "0.002500");
    assert_eq!(Amount(0).to_decimal(2), "0.00");
    assert_eq!(Amount(123).to_decimal(0), "123");
    assert_eq!(Amount(123_456).to_decimal(2), "1234.56");
    assert_eq!(
        Amount(u128::MAX).to_decimal(18),
        "340282366920938463463.374607431768211455"
    );
}

#[test]
fn csv_has_a_header_and_one_exact_row_per_report() {
    let report = build_fee_report(
        [
            payment(1, 0, PaymentKind::Wallet),
            payment(3, 1, PaymentKind::Tab),
        ],
        [],
        [processor_charge(100, 33)],
        2,
        sandbox_card_fee,
    )
    .unwrap();
    let csv = to_csv([("acme, inc", &report), ("=cmd()", &report)]);
    let lines: Vec<&str> = csv.split("\r\n").collect();
    assert_eq!(lines.len(), 4, "{csv:?}");
    assert_eq!(lines[0], CSV_COLUMNS.join(","));
    assert_eq!(
        lines[1],
        "\"acme, inc\",2,2,0.04,0.02,0.01,1,1.00,0.33,0.60,0.27,0.4500,wallet=1;tab=1,0,0.00,0.00,0,0.00,0.00,0.01"
    );
    assert!(lines[2].starts_with("'=cmd(),"));
    assert_eq!(lines[3], "");
    assert_eq!(
        lines[1].split(',').count(),
        CSV_COLUMNS.len() + 1,
        "the quoted comma"
    );
}

// Issue 16: captures and contributions were left out of the report, so its platform fees
// disagreed with the ledger's platform revenue.
#[test]
fn escrow_captures_and_campaign_contributions_are_payments_of_their_own_kinds() {
    let report = build_fee_report(
        [
            payment(100, 10, PaymentKind::Wallet),
            payment(50, 5, PaymentKind::Escrow),
            payment(200, 20, PaymentKind::Campaign),
            payment(300, 30, PaymentKind::Campaign),
        ],
        [],
        [],
        2,
        sandbox_card_fee,
    )
    .unwrap();
    assert_eq!((report.payments, report.gross), (4, Amount(650)));
    assert_eq!(report.platform_fees, Amount(65));
    assert_eq!(
        report.by_kind.get(&PaymentKind::Escrow),
        Some(&KindTotals {
            payments: 1,
            gross: Amount(50),
            platform_fees: Amount(5)
        })
    );
    assert_eq!(
        report.by_kind.get(&PaymentKind::Campaign),
        Some(&KindTotals {
            payments: 2,
            gross: Amount(500),
            platform_fees: Amount(50)
        })
    );
    // The older kinds keep their place at the front of the summary.
    assert_eq!(kinds_summary(&report), "wallet=1;escrow=1;campaign=2");
    assert_eq!(PaymentKind::Escrow.code(), "escrow");
    assert_eq!(PaymentKind::Campaign.code(), "campaign");
    // Nothing was given back: the net is what was taken.
    assert_eq!(report.net_platform_fees.format(2), "0.65");
}

// Issue 16: refunds had no line of their own, and the fees they gave back were not netted.
#[test]
fn refunds_and_chargebacks_have_lines_of_their_own_and_net_the_platform_fees() {
    // The issue's scenario at scale 2: a 1.00 charge with a 0.10 fee, half refunded; a 0.50
    // capture and a 2.00 contribution at 10%; and a chargeback of 0.30 taking 0.03 of fees.
    let report = build_fee_report(
        [
            payment(100, 10, PaymentKind::Wallet),
            payment(50, 5, PaymentKind::Escrow),
            payment(200, 20, PaymentKind::Campaign),
        ],
        [
            reversal(50, 5, ReversalKind::Refund),
            reversal(30, 3, ReversalKind::Chargeback),
        ],
        [],
        2,
        sandbox_card_fee,
    )
    .unwrap();
    assert_eq!(
        (
            report.refunds,
            report.refunded,
            report.refunded_platform_fees
        ),
        (1, Amount(50), Amount(5))
    );
    assert_eq!(
        (
            report.chargebacks,
            report.charged_back,
            report.charged_back_platform_fees
        ),
        (1, Amount(30), Amount(3))
    );
    // Taken 0.35, given back 0.08. Reversals are no payments: the payment figures stand.
    assert_eq!(report.platform_fees, Amount(35));
    assert_eq!(report.net_platform_fees.format(2), "0.27");
    assert_eq!((report.payments, report.gross), (3, Amount(350)));
    let csv = to_csv([("platform", &report)]);
    let row = csv.split("\r\n").nth(1).unwrap();
    assert!(
        row.ends_with(",wallet=1;escrow=1;campaign=1,1,0.50,0.05,1,0.30,0.03,0.27"),
        "{row}"
    );
}

#[test]
fn fees_given_back_for_earlier_payments_make_a_negative_net() {
    // A period with no payments, only the refund of an earlier one.
    let report = build_fee_report(
        [],
        [reversal(100, 10, ReversalKind::Refund)],
        [],
        2,
        sandbox_card_fee,
    )
    .unwrap();
    assert!(report.net_platform_fees.is_negative());
    assert_eq!(report.net_platform_fees.format(2), "-0.10");
    assert_eq!(report.average_payment, None);
    let overflowing = [
        reversal(u128::MAX, 0, ReversalKind::Refund),
        reversal(1, 0, ReversalKind::Refund),
    ];
    assert_eq!(
        build_fee_report([], overflowing, [], 2, sandbox_card_fee),
        Err(ReportError::Overflow { field: "refunded" })
    );
}

#[test]
fn csv_fields_are_quoted_when_needed() {
    assert_eq!(csv_text_field("plain"), "plain");
    assert_eq!(csv_text_field("say \"hi\", ok"), "\"say \"\"hi\"\", ok\"");
    assert_eq!(csv_text_field("two\nlines"), "\"two\nlines\"");
    assert_eq!(csv_text_field("-1+1"), "'-1+1");
    assert_eq!(csv_text_field(""), "");
}

fn arb_kind() -> impl Strategy<Value = PaymentKind> {
    prop::sample::select(vec![
        PaymentKind::Wallet,
        PaymentKind::Tab,
        PaymentKind::Voucher,
        PaymentKind::Escrow,
        PaymentKind::Campaign,
    ])
}

fn arb_reversal_kind() -> impl Strategy<Value = ReversalKind> {
    prop::sample::select(vec![ReversalKind::Refund, ReversalKind::Chargeback])
}

proptest! {
    #[test]
    fn report_totals_match_the_records(
        payments in prop::collection::vec((0u128..1_000_000_000, 0u128..1_000_000, arb_kind()), 0..50),
        charges in prop::collection::vec((0u128..1_000_000_000, 0u128..100_000_000), 0..10),
        reversals in prop::collection::vec((0u128..1_000_000_000, 0u128..1_000_000, arb_reversal_kind()), 0..20),
        scale in 0u8..=18,
    ) {
        let records: Vec<PaymentRecord> = payments.iter().map(|(a, f, k)| payment(*a, *f, *k)).collect();
        let processor: Vec<ProcessorFeeRecord> = charges.iter().map(|(a, f)| processor_charge(*a, *f)).collect();
        let given_back: Vec<ReversalRecord> = reversals.iter().map(|(a, f, k)| reversal(*a, *f, *k)).collect();
        let report = build_fee_report(records.clone(), given_back.clone(), processor.clone(), scale, sandbox_card_fee).unwrap();
        // Each reversal is on its kind's line, and the net is taken minus given back.
        let line = |kind: ReversalKind| given_back.iter().filter(move |r| r.kind == kind);
        let refunds = line(ReversalKind::Refund);
        prop_assert_eq!(report.refunds, refunds.clone().count() as u64);
        prop_assert_eq!(report.refunded.0, refunds.clone().map(|r| r.amount.0).sum::<u128>());
        prop_assert_eq!(report.refunded_platform_fees.0, refunds.map(|r| r.platform_fee_returned.0).sum::<u128>());
        let chargebacks = line(ReversalKind::Chargeback);
        prop_assert_eq!(report.chargebacks, chargebacks.clone().count() as u64);
        prop_assert_eq!(report.charged_back.0, chargebacks.map(|r| r.amount.0).sum::<u128>());
        let taken: u128 = records.iter().map(|r| r.platform_fee.0).sum();
        let returned: u128 = given_back.iter().map(|r| r.platform_fee_returned.0).sum();
        prop_assert_eq!(report.platform_fees.0, taken);
        prop_assert_eq!(report.net_platform_fees, SignedAmount::difference(Amount(taken), Amount(returned)));
        let by_kind_fees: u128 = report.by_kind.values().map(|k| k.platform_fees.0).sum();
        prop_assert_eq!(by_kind_fees, taken);
        let gross: u128 = records.iter().map(|r| r.amount.0).sum();
        let if_each: u128 = records.iter().map(|r| sandbox_card_fee(r.amount, scale).unwrap().0).sum();
        let paid: u128 = processor.iter().map(|r| r.fee.0).sum();
        prop_assert_eq!(report.gross.0, gross);
        prop_assert_eq!(report.payments, records.len() as u64);
        prop_assert_eq!(report.processor_fees_if_each_card.0, if_each);
        prop_assert_eq!(report.processor_fees_paid.0, paid);
        // saving + paid == if_each, with the sign.
        let saving = report.saving;
        if saving.is_negative() {
            prop_assert_eq!(paid - saving.magnitude().0, if_each);
        } else {
            prop_assert_eq!(paid + saving.magnitude().0, if_each);
        }
        let by_kind: u128 = report.by_kind.values().map(|k| k.gross.0).sum();
        prop_assert_eq!(by_kind, gross);
        let by_kind_count: u64 = report.by_kind.values().map(|k| k.payments).sum();
        prop_assert_eq!(by_kind_count, report.payments);
        if let Some(average) = report.average_payment {
            let count = records.len() as u128;
            // Within half a unit of the exact average.
            prop_assert!(average.0 * count * 2 + count >= gross * 2);
            prop_assert!(average.0 * count * 2 <= gross * 2 + count);
        }
        let csv = to_csv([("r", &report)]);
        prop_assert_eq!(csv.matches("\r\n").count(), 2);
    }

    #[test]
    fn signed_differences_round_trip(a in any::<u128>(), b in any::<u128>()) {
        let d = SignedAmount::difference(Amount(a), Amount(b));
        prop_assert_eq!(d.is_negative(), a < b);
        let back = if d.is_negative() { a + d.magnitude().0 } else { a - d.magnitude().0 };
        prop_assert_eq!(back, b);
    }
}
