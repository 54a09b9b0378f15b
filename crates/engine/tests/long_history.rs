//! Long-history effects that a short crash run cannot reach: hundreds of log segments and
//! snapshots, a growing archive, the transfer index growing from nothing (rehashing many
//! times), remembered failures, and holds that fall due across restarts. The engine restarts
//! again and again on one directory; after every restart its state must equal a clean replay of
//! the whole retained log (archive and live segments) up to the sequence it was read at.

use std::path::Path;
use std::sync::Arc;

use farthing_engine::engine::retained_log_segments;
use farthing_engine::snapshot::parse_snapshot_name;
use farthing_engine::wal::{scan_segment, SegmentEnd};
use farthing_engine::{codec, Clock, Config, Engine, ManualClock};
use farthing_ledger::{
    rules, Account, AccountFlags, AccountId, Amount, Asset, AssetCode, AssetId, LedgerDump,
    MemoryLedger, Operation, PendingStatus, Transfer, TransferFlags, TransferId,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const USD: u32 = 1;
const BANK: u128 = 1;
const WALLETS: u128 = 32;
const FIRST_WALLET: u128 = 100;
const MERCHANT: u128 = 2;
const BATCHES_PER_SESSION: u64 = 40;

fn setup() -> Vec<Operation> {
    let account = |id: u128, flags| Account {
        id: AccountId(id),
        asset: AssetId(USD),
        code: 1,
        flags,
        overdraft_limit: Amount(0),
        user_data: 0,
    };
    let mut accounts = vec![
        account(BANK, AccountFlags::empty()),
        account(MERCHANT, AccountFlags::empty()),
    ];
    accounts.extend((0..WALLETS).map(|i| {
        account(
            FIRST_WALLET + i,
            AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS,
        )
    }));
    vec![
        Operation::CreateAssets(vec![Asset {
            id: AssetId(USD),
            code: AssetCode::new("USD").unwrap(),
            scale: 6,
        }]),
        Operation::CreateAccounts(accounts),
    ]
}

/// A batch of top-ups, spends that often overdraw (remembered failures), holds with short
/// timeouts, posts of earlier holds (some already expired), and retries of earlier ids (some
/// failed, some stored) that must answer as the first time did.
fn batch(rng: &mut StdRng, next_id: &mut u128) -> Operation {
    let mut transfers = Vec::new();
    for _ in 0..rng.gen_range(20..60) {
        let wallet = FIRST_WALLET + rng.gen_range(0..WALLETS);
        let kind = rng.gen_range(0..10);
        let transfer = match kind {
            0..=1 => Transfer::simple(0, BANK, wallet, rng.gen_range(1..400), USD),
            2..=5 => Transfer::simple(0, wallet, MERCHANT, rng.gen_range(1..200), USD),
            6..=7 => Transfer {
                flags: TransferFlags::PENDING,
                timeout_s: rng.gen_range(1..4),
                ..Transfer::simple(0, wallet, MERCHANT, rng.gen_range(1..50), USD)
            },
            8 if *next_id > 100 => Transfer {
                flags: TransferFlags::POST_PENDING,
                pending_id: TransferId(rng.gen_range(1..*next_id)),
                ..Transfer::simple(0, 0, 0, 0, 0)
            },
            _ if *next_id > 100 => {
                // An earlier id again, with other fields: the rules answer from what they
                // stored or remembered of it, after any number of snapshots and restarts.
                Transfer::simple(
                    rng.gen_range(1..*next_id),
                    wallet,
                    MERCHANT,
                    rng.gen_range(1..200),
                    USD,
                )
            }
            _ => Transfer::simple(0, BANK, wallet, 10, USD),
        };
        let id = if transfer.id.0 == 0 {
            let id = *next_id;
            *next_id += 1;
            id
        } else {
            transfer.id.0
        };
        transfers.push(Transfer {
            id: TransferId(id),
            ..transfer
        });
    }
    Operation::CreateTransfers(transfers)
}

/// A clean replay of the retained log, records 1 to `up_to` (`u64::MAX`: all), through the
/// pure rules.
fn replay(dir: &Path, up_to: u64) -> LedgerDump {
    let mut ledger = MemoryLedger::new(3);
    let mut next = 1;
    for (first, path) in retained_log_segments(dir).unwrap() {
        assert_eq!(first, next, "{} leaves a gap", path.display());
        let scan = scan_segment(&path, first, |header, payload, _| {
            next = header.sequence + 1;
            if header.sequence <= up_to {
                let op = codec::decode_operation(header.kind, payload).unwrap();
                rules::apply(&mut ledger, header.timestamp, &op).unwrap();
            }
            Ok(())
        })
        .unwrap();
        assert!(matches!(scan.end, SegmentEnd::Clean), "{}", path.display());
    }
    assert!(
        up_to == u64::MAX || next > up_to,
        "the log ends before {up_to}"
    );
    ledger.publish();
    LedgerDump::of(&ledger)
}

#[test]
fn hundreds_of_segments_and_restarts_replay_to_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000_000));
    let config = || Config {
        clock: clock.clone(),
        // A snapshot (and a new segment) every few batches.
        snapshot_log_bytes: 8 << 10,
        log_preallocate_bytes: 64 << 10,
        retain_log: true,
        // The index starts empty and grows (rehashing) as history grows.
        transfers_expected: 0,
        expiry_check_ms: 5,
        ..Config::new(dir.path())
    };
    let mut rng = StdRng::seed_from_u64(42);
    let mut next_id = 1u128;
    let restarts = 60;
    let engine = Engine::open(config()).unwrap();
    for op in setup() {
        engine.submit(op).unwrap();
    }
    drop(engine);
    let mut expired_across_restarts = 0;
    for restart in 0..restarts {
        // Time passes while the engine is down: some holds fall due before it opens.
        clock.advance(rng.gen_range(0..3_000_000_000));
        let engine = Engine::open(config()).unwrap();
        let recovery = engine.recovery().clone();
        if restart > 0 {
            assert!(
                recovery.snapshot.is_some(),
                "restart {restart} found no snapshot"
            );
            // Snapshots bound replay to (at most) the last session's batches, never the
            // whole history. (A snapshot is skipped while the previous one is still being
            // written, so the exact tail varies.)
            assert!(
                recovery.replayed_batches <= BATCHES_PER_SESSION + 1,
                "restart {restart} replayed {} batches: snapshots do not bound replay",
                recovery.replayed_batches
            );
        }
        let (state, sequence) = engine.read_at_sequence(LedgerDump::of);
        state.check_invariants().unwrap();
        let replayed = replay(dir.path(), sequence);
        if let Some(difference) = state.first_difference(&replayed) {
            panic!("restart {restart} at sequence {sequence}: recovered vs replayed: {difference}");
        }
        // Nothing pending is overdue when the first read is served.
        let now = clock.now().0;
        expired_across_restarts += state
            .transfers
            .iter()
            .filter(|t| t.hold_status == Some(PendingStatus::Expired))
            .count();
        assert!(state.transfers.iter().all(|t| {
            t.hold_status != Some(PendingStatus::Pending)
                || t.timeout_s == 0
                || t.timestamp.0 + u64::from(t.timeout_s) * 1_000_000_000 > now
        }));
        for _ in 0..BATCHES_PER_SESSION {
            engine.submit(batch(&mut rng, &mut next_id)).unwrap();
            clock.advance(rng.gen_range(0..400_000_000));
        }
        engine.shutdown();
    }

    let dump = replay(dir.path(), u64::MAX);
    dump.check_invariants().unwrap();
    let segments = retained_log_segments(dir.path()).unwrap();
    assert!(segments.len() >= 150, "only {} segments", segments.len());
    assert!(
        dump.transfers.len() > 1 << 15,
        "{} transfers",
        dump.transfers.len()
    );
    assert!(
        dump.failed_transfers.len() > 1_000,
        "{} failures",
        dump.failed_transfers.len()
    );
    assert!(
        expired_across_restarts > 0,
        "no hold expired across a restart"
    );
    // The archive holds records, not preallocated space: every finished segment ends at its
    // last record.
    for (first, path) in &segments[..segments.len() - 1] {
        let scan = scan_segment(path, *first, |_, _, _| Ok(())).unwrap();
        let len = std::fs::metadata(path).unwrap().len();
        assert_eq!(
            len,
            scan.valid_end,
            "{} keeps preallocated space",
            path.display()
        );
    }
    // Old snapshots are removed: one remains (two while a newer one is being renamed in).
    let snapshots = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| parse_snapshot_name(&e.file_name().to_string_lossy()).is_some())
        .count();
    assert!((1..=2).contains(&snapshots), "{snapshots} snapshots kept");
}
