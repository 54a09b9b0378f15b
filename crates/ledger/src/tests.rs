//! Rule tests: hand-written scenarios through one `check` helper, and property tests that drive
//! [`MemoryLedger`] and the naive [`ReferenceLedger`] with the same random batches.

use proptest::prelude::*;

use crate::audit::LedgerDump;
use crate::memory::MemoryLedger;
use crate::reference::ReferenceLedger;
use crate::results::{BatchError, BatchResults, TransferResult as R};
use crate::rules::apply;
use crate::types::*;

const USD: u32 = 1;
const EUR: u32 = 2;

/// Accounts every scenario starts with: 1 bank (unconstrained), 2 wallet (never negative),
/// 3 merchant, 4 tab (overdraft 100), 5 capped (credits ≤ debits), 9 a EUR account.
fn base_ledger() -> (MemoryLedger, u64) {
    let mut ledger = MemoryLedger::new(7);
    let mut ts = 1_000;
    let assets = vec![
        Asset {
            id: AssetId(USD),
            code: AssetCode::new("USD").unwrap(),
            scale: 6,
        },
        Asset {
            id: AssetId(EUR),
            code: AssetCode::new("EUR").unwrap(),
            scale: 2,
        },
    ];
    run(&mut ledger, &mut ts, Operation::CreateAssets(assets));
    let account = |id: u128, asset: u32, flags: AccountFlags, overdraft_limit: u128| Account {
        id: AccountId(id),
        asset: AssetId(asset),
        code: 1,
        flags,
        overdraft_limit: Amount(overdraft_limit),
        user_data: 0,
    };
    let wallet = AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS;
    let accounts = vec![
        account(1, USD, AccountFlags::empty(), 0),
        account(2, USD, wallet, 0),
        account(3, USD, AccountFlags::empty(), 0),
        account(4, USD, wallet, 100),
        account(5, USD, AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS, 0),
        account(9, EUR, AccountFlags::empty(), 0),
    ];
    let results = run(&mut ledger, &mut ts, Operation::CreateAccounts(accounts));
    assert!(results.codes().iter().all(|&c| c == 0), "{results:?}");
    (ledger, ts)
}

fn run(ledger: &mut MemoryLedger, ts: &mut u64, op: Operation) -> BatchResults {
    *ts += 1_000;
    let results = apply(ledger, Timestamp(*ts), &op).expect("batch accepted");
    ledger.publish();
    results
}

/// A transfer written compactly: (id, debit, credit, amount, flags, pending_id).
type T = (u128, u128, u128, u128, TransferFlags, u128);

fn transfer((id, debit, credit, amount, flags, pending_id): T) -> Transfer {
    Transfer {
        pending_id: TransferId(pending_id),
        flags,
        ..Transfer::simple(id, debit, credit, amount, USD)
    }
}

/// Runs batches of transfers on the base ledger and checks each batch's results, then the
/// final balances (debits_pending, debits_posted, credits_pending, credits_posted) of the
/// listed accounts. Every check also verifies the invariants and the reference model.
fn check(batches: &[(&[T], &[R])], balances: &[(u128, [u128; 4])]) {
    let (mut ledger, mut ts) = base_ledger();
    let mut reference = ReferenceLedger::new();
    let mut ref_ts = 1_000;
    // Rebuild the same base in the reference model.
    for op in base_ops() {
        ref_ts += 1_000;
        reference.apply(Timestamp(ref_ts), &op).unwrap();
    }
    for (transfers, expected) in batches {
        let op = Operation::CreateTransfers(transfers.iter().copied().map(transfer).collect());
        let results = run(&mut ledger, &mut ts, op.clone());
        assert_eq!(
            results,
            BatchResults::Transfers(expected.to_vec()),
            "batch {transfers:?}"
        );
        ref_ts += 1_000;
        assert_eq!(reference.apply(Timestamp(ref_ts), &op).unwrap(), results);
    }
    for (id, [dp, dq, cp, cq]) in balances {
        let b = ledger.lookup_account(AccountId(*id)).unwrap().balances;
        assert_eq!(
            [
                b.debits_pending.0,
                b.debits_posted.0,
                b.credits_pending.0,
                b.credits_posted.0
            ],
            [*dp, *dq, *cp, *cq],
            "balances of account {id}"
        );
    }
    let dump = LedgerDump::of(&ledger);
    dump.check_invariants().unwrap();
    assert_eq!(dump, reference.dump());
}

fn base_ops() -> Vec<Operation> {
    let (ledger, _) = base_ledger();
    let accounts = ledger
        .visible_accounts()
        .map(|a| Account {
            id: a.id,
            asset: a.asset,
            code: a.code,
            flags: a.flags,
            overdraft_limit: a.overdraft_limit,
            user_data: a.user_data,
        })
        .collect();
    vec![
        Operation::CreateAssets(ledger.assets().to_vec()),
        Operation::CreateAccounts(accounts),
    ]
}

const NONE: TransferFlags = TransferFlags::empty();
const LINKED: TransferFlags = TransferFlags::LINKED;
const PENDING: TransferFlags = TransferFlags::PENDING;
const POST: TransferFlags = TransferFlags::POST_PENDING;
const VOID: TransferFlags = TransferFlags::VOID_PENDING;
const BALANCING: TransferFlags = TransferFlags::BALANCING;

#[test]
fn wallet_never_goes_negative() {
    check(
        &[
            (&[(10, 1, 2, 50, NONE, 0)], &[R::Ok]),
            (
                &[
                    (11, 2, 3, 30, NONE, 0),
                    (12, 2, 3, 21, NONE, 0),
                    (13, 2, 3, 20, NONE, 0),
                ],
                &[R::Ok, R::ExceedsCredits, R::Ok],
            ),
        ],
        &[(2, [0, 50, 0, 50]), (3, [0, 0, 0, 50])],
    );
}

#[test]
fn tab_may_run_up_to_its_overdraft_limit() {
    check(
        &[(
            &[
                (10, 4, 3, 60, NONE, 0),
                (11, 4, 3, 41, NONE, 0),
                (12, 4, 3, 40, NONE, 0),
            ],
            &[R::Ok, R::ExceedsLimit, R::Ok],
        )],
        &[(4, [0, 100, 0, 0])],
    );
}

#[test]
fn credits_must_not_exceed_debits() {
    check(
        &[(
            &[
                (10, 1, 5, 1, NONE, 0),
                (11, 5, 1, 5, NONE, 0),
                (12, 1, 5, 5, NONE, 0),
                (13, 1, 5, 1, NONE, 0),
            ],
            &[R::ExceedsDebits, R::Ok, R::Ok, R::ExceedsDebits],
        )],
        &[(5, [0, 5, 0, 5])],
    );
}

#[test]
fn balancing_moves_what_the_wallet_can_pay() {
    check(
        &[
            (&[(10, 1, 2, 25, NONE, 0)], &[R::Ok]),
            (
                &[(11, 2, 3, 100, BALANCING, 0), (12, 2, 3, 100, BALANCING, 0)],
                &[R::Ok, R::ExceedsCredits],
            ),
            // A retry with the original (larger) requested amount is the same transfer.
            (&[(11, 2, 3, 100, BALANCING, 0)], &[R::Exists]),
        ],
        &[(2, [0, 25, 0, 25]), (3, [0, 0, 0, 25])],
    );
}

#[test]
fn holds_post_partially_exactly_once() {
    check(
        &[
            (&[(10, 1, 2, 100, NONE, 0)], &[R::Ok]),
            (
                &[(11, 2, 3, 80, PENDING, 0), (12, 2, 3, 30, NONE, 0)],
                &[R::Ok, R::ExceedsCredits],
            ),
            (
                &[(13, 0, 0, 90, POST, 11), (14, 0, 0, 50, POST, 11)],
                &[R::ExceedsPendingAmount, R::Ok],
            ),
            (
                &[
                    (15, 0, 0, 0, POST, 11),
                    (16, 0, 0, 0, VOID, 11),
                    (17, 0, 0, 0, POST, 10),
                ],
                &[
                    R::PendingAlreadyPosted,
                    R::PendingAlreadyPosted,
                    R::PendingIdNotAHold,
                ],
            ),
        ],
        &[(2, [0, 50, 0, 100]), (3, [0, 0, 0, 50])],
    );
}

#[test]
fn void_releases_the_whole_hold() {
    check(
        &[
            (
                &[(10, 1, 2, 100, NONE, 0), (11, 2, 3, 80, PENDING, 0)],
                &[R::Ok, R::Ok],
            ),
            (
                &[
                    (12, 0, 0, 5, VOID, 11),
                    (13, 0, 0, 0, VOID, 11),
                    (14, 0, 0, 0, POST, 11),
                ],
                &[R::VoidAmountMustMatch, R::Ok, R::PendingAlreadyVoided],
            ),
            (
                &[(15, 0, 0, 0, POST, 99), (16, 3, 0, 0, POST, 11)],
                &[R::PendingNotFound, R::PendingHasDifferentDebitAccount],
            ),
        ],
        &[(2, [0, 0, 0, 100]), (3, [0, 0, 0, 0])],
    );
}

#[test]
fn linked_chain_is_all_or_nothing() {
    check(
        &[
            (&[(10, 1, 2, 10, NONE, 0)], &[R::Ok]),
            // The second leg fails, so the first is undone.
            (
                &[(11, 1, 3, 5, LINKED, 0), (12, 2, 3, 11, NONE, 0)],
                &[R::LinkedEventFailed, R::ExceedsCredits],
            ),
            // Retrying the failed chain returns the same answers; its ids are burned.
            (
                &[(11, 1, 3, 5, LINKED, 0), (12, 2, 3, 11, NONE, 0)],
                &[R::LinkedEventFailed, R::ExceedsCredits],
            ),
            (
                &[(13, 1, 3, 5, LINKED, 0), (14, 2, 3, 10, NONE, 0)],
                &[R::Ok, R::Ok],
            ),
            (
                &[(13, 1, 3, 5, LINKED, 0), (14, 2, 3, 10, NONE, 0)],
                &[R::Exists, R::Exists],
            ),
            // A chain left open at the end of the batch fails as a whole.
            (
                &[(15, 1, 3, 1, NONE, 0), (16, 1, 3, 1, LINKED, 0)],
                &[R::Ok, R::LinkedEventChainOpen],
            ),
        ],
        &[(2, [0, 10, 0, 10]), (3, [0, 0, 0, 16])],
    );
}

#[test]
fn ids_are_unique_forever() {
    check(
        &[
            (
                &[
                    (10, 1, 3, 7, NONE, 0),
                    (10, 1, 3, 7, NONE, 0),
                    (10, 1, 3, 8, NONE, 0),
                ],
                &[R::Ok, R::Exists, R::ExistsWithDifferentFields],
            ),
            (&[(11, 2, 3, 7, NONE, 0)], &[R::ExceedsCredits]),
            // Even after the wallet is funded, the failed id answers as it did.
            (
                &[
                    (12, 1, 2, 50, NONE, 0),
                    (11, 2, 3, 7, NONE, 0),
                    (11, 2, 3, 6, NONE, 0),
                ],
                &[R::Ok, R::ExceedsCredits, R::ExistsWithDifferentFields],
            ),
            (
                &[(0, 1, 3, 1, NONE, 0), (u128::MAX, 1, 3, 1, NONE, 0)],
                &[R::IdMustNotBeZero, R::IdMustNotBeIntMax],
            ),
        ],
        &[(3, [0, 0, 0, 7])],
    );
}

#[test]
fn malformed_transfers_are_refused_with_their_reason() {
    check(
        &[(
            &[
                (20, 1, 1, 5, NONE, 0),
                (21, 1, 3, 0, NONE, 0),
                (22, 1, 9, 5, NONE, 0),
                (23, 1, 77, 5, NONE, 0),
                (24, 77, 3, 5, NONE, 0),
                (25, 1, 3, 5, PENDING | POST, 10),
                (26, 1, 3, 5, NONE, 10),
                (27, 1, 3, 5, POST, 0),
                (28, 1, 3, 5, POST, 28),
                (29, 1, 3, 5, TransferFlags(1 << 9), 0),
                (30, 1, 3, u128::MAX, NONE, 0),
                (31, 1, 3, 2, NONE, 0),
            ],
            &[
                R::SameAccount,
                R::ZeroAmount,
                R::AssetMismatch,
                R::CreditAccountNotFound,
                R::DebitAccountNotFound,
                R::FlagsAreMutuallyExclusive,
                R::PendingIdMustBeZero,
                R::PendingIdRequired,
                R::PendingIdMustDifferFromId,
                R::FlagsUnknown,
                R::Ok,
                R::Overflow,
            ],
        )],
        &[(3, [0, 0, 0, u128::MAX])],
    );
}

#[test]
fn holds_expire_deterministically() {
    let (mut ledger, mut ts) = base_ledger();
    let hold = Transfer {
        timeout_s: 2,
        flags: PENDING,
        ..Transfer::simple(11, 1, 3, 40, USD)
    };
    run(&mut ledger, &mut ts, Operation::CreateTransfers(vec![hold]));
    let created = ledger.lookup_transfer(TransferId(11)).unwrap().timestamp.0;
    // One nanosecond before expiry the hold is live; at expiry an empty batch releases it.
    ts = created + 2_000_000_000 - 1_001;
    run(&mut ledger, &mut ts, Operation::CreateTransfers(vec![]));
    assert_eq!(
        ledger
            .lookup_account(AccountId(3))
            .unwrap()
            .balances
            .credits_pending,
        Amount(40)
    );
    run(&mut ledger, &mut ts, Operation::CreateTransfers(vec![]));
    assert_eq!(
        ledger
            .lookup_account(AccountId(3))
            .unwrap()
            .balances
            .credits_pending,
        Amount(0)
    );
    let post = Transfer {
        flags: POST,
        pending_id: TransferId(11),
        ..Transfer::simple(12, 0, 0, 0, 0)
    };
    let results = run(&mut ledger, &mut ts, Operation::CreateTransfers(vec![post]));
    assert_eq!(results, BatchResults::Transfers(vec![R::PendingExpired]));
    LedgerDump::of(&ledger).check_invariants().unwrap();
}

#[test]
fn readers_see_only_published_batches() {
    let (mut ledger, mut ts) = base_ledger();
    ts += 1_000;
    apply(
        &mut ledger,
        Timestamp(ts),
        &Operation::CreateTransfers(vec![Transfer::simple(10, 1, 3, 5, USD)]),
    )
    .unwrap();
    assert!(ledger.lookup_transfer(TransferId(10)).is_none());
    assert_eq!(
        ledger
            .lookup_account(AccountId(3))
            .unwrap()
            .balances
            .credits_posted,
        Amount(0)
    );
    assert!(ledger
        .account_transfers(AccountId(3), None, 10)
        .unwrap()
        .transfers
        .is_empty());
    ledger.publish();
    assert!(ledger.lookup_transfer(TransferId(10)).is_some());
    assert_eq!(
        ledger
            .lookup_account(AccountId(3))
            .unwrap()
            .balances
            .credits_posted,
        Amount(5)
    );
}

#[test]
fn history_pages_newest_first() {
    let (mut ledger, mut ts) = base_ledger();
    let transfers = (10..20)
        .map(|id| Transfer::simple(id, 1, 3, 1, USD))
        .collect();
    run(&mut ledger, &mut ts, Operation::CreateTransfers(transfers));
    let page = ledger.account_transfers(AccountId(3), None, 4).unwrap();
    let ids: Vec<u128> = page.transfers.iter().map(|t| t.id.0).collect();
    assert_eq!((ids, page.has_more), (vec![19, 18, 17, 16], true));
    let page = ledger
        .account_transfers(AccountId(3), Some(TransferId(16)), 10)
        .unwrap();
    let ids: Vec<u128> = page.transfers.iter().map(|t| t.id.0).collect();
    assert_eq!((ids, page.has_more), (vec![15, 14, 13, 12, 11, 10], false));
    assert!(ledger
        .account_transfers(AccountId(2), Some(TransferId(16)), 10)
        .is_err());
}

#[test]
fn batch_timestamps_must_increase() {
    let (mut ledger, ts) = base_ledger();
    let err = apply(
        &mut ledger,
        Timestamp(ts),
        &Operation::CreateTransfers(vec![]),
    )
    .unwrap_err();
    assert!(matches!(err, BatchError::TimestampNotIncreasing { .. }));
    let too_many = vec![Transfer::simple(1, 1, 3, 1, USD); BATCH_EVENTS_MAX + 1];
    let err = apply(
        &mut ledger,
        Timestamp(ts + 10),
        &Operation::CreateTransfers(too_many),
    )
    .unwrap_err();
    assert!(matches!(err, BatchError::TooManyEvents { .. }));
}

// ---- property tests against the reference model ----

fn arb_amount() -> impl Strategy<Value = u128> {
    prop_oneof![12 => 1u128..60, 1 => Just(0u128), 1 => Just(u128::MAX - 5), 1 => Just(u128::MAX / 2)]
}

/// Transfers shaped like real traffic: mostly plain payments, holds (ids 1..40) and their
/// posts and voids, balancing sweeps, some linked, and a little malformed junk.
fn arb_transfer() -> impl Strategy<Value = Transfer> {
    let account = prop_oneof![10 => 1u128..7, 1 => 0u128..9];
    let linked = prop_oneof![3 => Just(0u16), 1 => Just(1u16)];
    let kind = prop_oneof![8 => Just(0u8), 3 => Just(1), 2 => Just(2), 1 => Just(3), 1 => Just(4), 1 => Just(5)];
    (
        kind,
        41u128..400,
        1u128..41,
        account.clone(),
        account,
        arb_amount(),
        linked,
        0u32..3,
        prop_oneof![8 => Just(USD), 1 => Just(EUR), 1 => Just(0)],
        0u16..64,
    )
        .prop_map(
            |(kind, id, hold_id, debit, credit, amount, linked, timeout_s, asset, junk_flags)| {
                let plain = Transfer {
                    flags: TransferFlags(linked),
                    ..Transfer::simple(id, debit, credit, amount, asset)
                };
                match kind {
                    0 => plain,
                    1 => Transfer {
                        id: TransferId(hold_id),
                        timeout_s,
                        flags: TransferFlags(linked) | TransferFlags::PENDING,
                        ..plain
                    },
                    2 | 3 => {
                        let resolve = if kind == 2 {
                            TransferFlags::POST_PENDING
                        } else {
                            TransferFlags::VOID_PENDING
                        };
                        let (debit, credit, asset) = if id % 3 == 0 {
                            (debit, credit, asset)
                        } else {
                            (0, 0, 0)
                        };
                        Transfer {
                            debit_account_id: AccountId(debit),
                            credit_account_id: AccountId(credit),
                            asset: AssetId(asset),
                            amount: Amount(if id % 2 == 0 { 0 } else { amount / 2 }),
                            pending_id: TransferId(hold_id),
                            flags: TransferFlags(linked) | resolve,
                            ..plain
                        }
                    }
                    4 => Transfer {
                        flags: TransferFlags(linked) | TransferFlags::BALANCING,
                        ..plain
                    },
                    _ => Transfer {
                        flags: TransferFlags(junk_flags),
                        pending_id: TransferId(hold_id % 3),
                        timeout_s,
                        ..plain
                    },
                }
            },
        )
}

fn arb_account() -> impl Strategy<Value = Account> {
    (
        1u128..10,
        prop_oneof![4 => Just(USD), 1 => Just(EUR), 1 => Just(3)],
        prop_oneof![4 => 0u16..8, 1 => 0u16..32],
        prop_oneof![3 => Just(0u128), 1 => 1u128..60],
    )
        .prop_map(|(id, asset, flags, overdraft_limit)| Account {
            id: AccountId(id),
            asset: AssetId(asset),
            code: 1,
            flags: AccountFlags(flags),
            overdraft_limit: Amount(overdraft_limit),
            user_data: 0,
        })
}

fn arb_batch() -> impl Strategy<Value = (u64, Operation)> {
    // Gaps up to three seconds let one-to-two-second holds expire between batches.
    let gap = prop_oneof![4 => 1u64..1_000, 1 => 1_000_000_000u64..3_000_000_000];
    let op = prop_oneof![
        1 => proptest::collection::vec(arb_account(), 0..4).prop_map(Operation::CreateAccounts),
        8 => proptest::collection::vec(arb_transfer(), 0..16).prop_map(Operation::CreateTransfers),
    ];
    (gap, op)
}

/// Accounts every property case starts with: 1 bank, 2 and 3 wallets, 4 a tab with overdraft
/// 50, 5 credits-capped, 6 EUR. Bank 1 funds the wallets so that payments can succeed.
fn seeded_accounts() -> Vec<Operation> {
    let account = |id: u128, asset: u32, flags: AccountFlags, overdraft_limit: u128| Account {
        id: AccountId(id),
        asset: AssetId(asset),
        code: 1,
        flags,
        overdraft_limit: Amount(overdraft_limit),
        user_data: 0,
    };
    let wallet = AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS;
    vec![
        Operation::CreateAccounts(vec![
            account(1, USD, AccountFlags::empty(), 0),
            account(2, USD, wallet, 0),
            account(3, USD, wallet, 0),
            account(4, USD, wallet, 50),
            account(5, USD, AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS, 0),
            account(6, EUR, AccountFlags::empty(), 0),
        ]),
        Operation::CreateTransfers(vec![
            Transfer::simple(1000, 1, 2, 200, USD),
            Transfer::simple(1001, 1, 3, 100, USD),
        ]),
    ]
}

fn seeded_assets() -> Operation {
    Operation::CreateAssets(vec![
        Asset {
            id: AssetId(USD),
            code: AssetCode::new("USD").unwrap(),
            scale: 6,
        },
        Asset {
            id: AssetId(EUR),
            code: AssetCode::new("EUR").unwrap(),
            scale: 2,
        },
    ])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// The fast ledger and the naive model agree on every result and every byte of state,
    /// the invariants hold after every batch, and replaying gives the same state hash.
    #[test]
    fn memory_ledger_matches_reference_model(batches in proptest::collection::vec(arb_batch(), 1..25), seed in any::<u64>()) {
        let mut ledger = MemoryLedger::new(seed);
        let mut reference = ReferenceLedger::new();
        let mut ts;
        let mut log = Vec::new();
        let setup: Vec<(u64, Operation)> = std::iter::once(seeded_assets()).chain(seeded_accounts()).map(|op| (1, op)).collect();
        for (gap, op) in setup.iter().chain(batches.iter()) {
            ts = ledger.working_timestamp().0 + gap;
            let fast = apply(&mut ledger, Timestamp(ts), op).unwrap();
            let slow = reference.apply(Timestamp(ts), op).unwrap();
            prop_assert_eq!(&fast, &slow);
            ledger.publish();
            let dump = LedgerDump::of(&ledger);
            prop_assert_eq!(&dump, &reference.dump());
            if let Err(violation) = dump.check_invariants() {
                prop_assert!(false, "{}", violation);
            }
            log.push((ts, op.clone()));
        }
        let mut replayed = MemoryLedger::new(seed.wrapping_add(1));
        for (ts, op) in &log {
            apply(&mut replayed, Timestamp(*ts), op).unwrap();
        }
        replayed.publish();
        prop_assert_eq!(LedgerDump::of(&replayed).state_hash(), LedgerDump::of(&ledger).state_hash());
    }
}

#[test]
fn first_difference_names_the_earliest_differing_object() {
    use crate::audit::DumpDifference;
    let (mut left, mut left_ts) = base_ledger();
    let (mut right, mut right_ts) = base_ledger();
    let same = Operation::CreateTransfers(vec![Transfer::simple(10, 1, 3, 5, USD)]);
    run(&mut left, &mut left_ts, same.clone());
    run(&mut right, &mut right_ts, same);
    assert_eq!(
        LedgerDump::of(&left).first_difference(&LedgerDump::of(&right)),
        None
    );

    // One more transfer on the left: the balances of account 1 differ first (accounts come
    // before transfers), then, with accounts equal, the transfer itself.
    run(
        &mut left,
        &mut left_ts,
        Operation::CreateTransfers(vec![Transfer::simple(11, 1, 3, 7, USD)]),
    );
    let (l, r) = (LedgerDump::of(&left), LedgerDump::of(&right));
    match l.first_difference(&r) {
        Some(DumpDifference::Account { id, left, right }) => {
            assert_eq!(id, AccountId(1));
            assert_eq!(left.unwrap().balances.debits_posted, Amount(12));
            assert_eq!(right.unwrap().balances.debits_posted, Amount(5));
        }
        other => panic!("expected account 1 to differ first, got {other:?}"),
    }
    let mut r_same_accounts = r.clone();
    r_same_accounts.accounts = l.accounts.clone();
    match l.first_difference(&r_same_accounts) {
        Some(DumpDifference::Transfer { id, left, right }) => {
            assert_eq!(id, TransferId(11));
            assert!(left.is_some() && right.is_none());
        }
        other => panic!("expected transfer 11 on the left only, got {other:?}"),
    }
    let shown = l.first_difference(&r_same_accounts).unwrap().to_string();
    assert!(shown.starts_with("transfer 0xb: TransferView"), "{shown}");
    assert!(shown.ends_with("vs absent"), "{shown}");
}

#[test]
fn wide_amounts_sum_past_128_bits_exactly() {
    let max = Amount(u128::MAX);
    let mut total = WideAmount::ZERO;
    total.add(max);
    assert_eq!(total.to_amount(), Some(max));
    total.add(max);
    assert_eq!(total.to_amount(), None);
    assert_eq!(
        total.to_decimal(6),
        "680564733841876926926749214863536.422910"
    );
    assert_eq!(
        total.to_decimal(0),
        "680564733841876926926749214863536422910"
    );
    let (difference, negative) = WideAmount::from(Amount(5)).abs_diff(total);
    assert!(negative);
    assert_eq!(
        difference.to_decimal(0),
        "680564733841876926926749214863536422905"
    );
    let (zero, negative) = total.abs_diff(total);
    assert_eq!((zero, negative), (WideAmount::ZERO, false));
    assert_eq!(WideAmount::from(Amount(7)).to_decimal(2), "0.07");
}
