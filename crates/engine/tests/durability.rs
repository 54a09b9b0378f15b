//! The engine against a real filesystem: restart, lock, snapshots, hold expiry, disk full, and
//! the exhaustive torn-tail / bit-flip sweep over the last log records.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use farthing_engine::{Config, Engine, ManualClock, OpenError, SubmitError};
use farthing_ledger::{
    Account, AccountFlags, AccountId, Amount, Asset, AssetCode, AssetId, BatchResults, LedgerDump,
    Operation, PendingStatus, Transfer, TransferFlags, TransferId, TransferResult,
};

const USD: u32 = 1;

fn setup_ops(accounts: u128) -> Vec<Operation> {
    let asset = Asset {
        id: AssetId(USD),
        code: AssetCode::new("USD").unwrap(),
        scale: 6,
    };
    let accounts = (1..=accounts)
        .map(|id| Account {
            id: AccountId(id),
            asset: AssetId(USD),
            code: 1,
            // Odd accounts are wallets that may never go negative.
            flags: if id % 2 == 1 {
                AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS
            } else {
                AccountFlags::empty()
            },
            overdraft_limit: Amount(0),
            user_data: 0,
        })
        .collect();
    vec![
        Operation::CreateAssets(vec![asset]),
        Operation::CreateAccounts(accounts),
    ]
}

fn transfers(first_id: u128, count: u128) -> Operation {
    Operation::CreateTransfers(
        (first_id..first_id + count)
            .map(|id| Transfer::simple(id, 2 + (id % 4) * 2, 1 + (id % 5), 1 + id % 7, USD))
            .collect(),
    )
}

fn open(dir: &Path) -> Engine {
    Engine::open(Config::new(dir)).expect("engine opens")
}

fn dump(engine: &Engine) -> LedgerDump {
    engine.read(LedgerDump::of)
}

#[test]
fn acknowledged_batches_survive_restart_with_history() {
    let dir = tempfile::tempdir().unwrap();
    let before = {
        let engine = open(dir.path());
        for op in setup_ops(10) {
            engine.submit(op).unwrap();
        }
        for batch in 0..20 {
            let outcome = engine.submit(transfers(1 + batch * 50, 50)).unwrap();
            assert_eq!(outcome.results.len(), 50);
        }
        dump(&engine)
    };
    before.check_invariants().unwrap();
    let engine = open(dir.path());
    assert_eq!(engine.recovery().replayed_batches, 22);
    assert_eq!(engine.recovery().replayed_transfers, 1000);
    assert_eq!(dump(&engine), before);
    let page = engine.account_transfers(AccountId(2), None, 3).unwrap();
    assert_eq!(page.transfers.len(), 3);
    assert!(page.has_more);
    assert!(page.transfers[0].timestamp > page.transfers[1].timestamp);
}

#[test]
fn second_process_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _engine = open(dir.path());
    match Engine::open(Config::new(dir.path())) {
        Err(OpenError::Locked { path }) => assert_eq!(path, dir.path()),
        Err(other) => panic!("expected Locked, got {other}"),
        Ok(_) => panic!("a second engine opened a locked directory"),
    }
}

/// A lock let go a moment after the open asks (a closed engine's descriptor still held by a
/// child the process was starting, until its exec closed it) is waited for, not refused: the
/// cause of a crash-suite flake, where a parallel test's worker spawn held a copy.
#[test]
fn a_lock_released_a_moment_later_is_waited_for() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    let copy = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.path().join("LOCK"))
        .unwrap();
    copy.try_lock().unwrap();
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        drop(copy);
    });
    let started = Instant::now();
    let engine = Engine::open(Config::new(dir.path())).expect("the lock was let go in time");
    assert!(started.elapsed() >= Duration::from_millis(250));
    releaser.join().unwrap();
    drop(engine);
}

#[test]
fn snapshots_bound_replay_and_restore_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        snapshot_log_bytes: 64 << 10,
        ..Config::new(dir.path())
    };
    let before = {
        let engine = Engine::open(config.clone()).unwrap();
        for op in setup_ops(10) {
            engine.submit(op).unwrap();
        }
        for batch in 0..40 {
            engine.submit(transfers(1 + batch * 100, 100)).unwrap();
        }
        let hold = Transfer {
            flags: TransferFlags::PENDING,
            ..Transfer::simple(90_001, 2, 4, 5, USD)
        };
        engine
            .submit(Operation::CreateTransfers(vec![hold]))
            .unwrap();
        // Shutdown waits for the background snapshot; reopening below must load it.
        engine.shutdown_and_dump()
    };
    let engine = Engine::open(config).unwrap();
    let (snapshot_path, sequence) = engine
        .recovery()
        .snapshot
        .clone()
        .expect("a snapshot was loaded");
    assert!(snapshot_path.exists());
    assert!(engine.recovery().replayed_batches < 43 - sequence + 1);
    assert_eq!(dump(&engine), before);
    dump(&engine).check_invariants().unwrap();
    // Old segments were removed once the snapshot covered them.
    let segments = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("wal-")
        })
        .count();
    assert!(segments <= 2, "{segments} segments left");
}

#[test]
fn notes_are_durable_with_their_batch_delivered_in_order_and_kept_past_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        snapshot_log_bytes: 64 << 10,
        ..Config::new(dir.path())
    };
    let mut sequences = Vec::new();
    {
        let engine = Engine::open(config.clone()).unwrap();
        let notes = engine.subscribe_notes();
        engine.retain_notes_after(0);
        for op in setup_ops(10) {
            engine.submit(op).unwrap();
        }
        for batch in 0..40u128 {
            // Batch 7 is refused by the ledger (account 99 does not exist); its note is logged
            // all the same, since the record is.
            let op = if batch == 7 {
                Operation::CreateTransfers(vec![Transfer::simple(50_000, 99, 2, 1, USD)])
            } else {
                transfers(1 + batch * 100, 100)
            };
            let note = format!("note {batch}").into_bytes();
            let outcome = engine.submit_noted(op, note.clone()).unwrap();
            let outcome = outcome.recv().unwrap().unwrap();
            // The subscriber has the note by the time the batch is answered.
            let delivered = notes.try_recv().expect("note delivered before the answer");
            assert_eq!(delivered.sequence, outcome.sequence);
            assert_eq!(delivered.timestamp, outcome.timestamp);
            assert_eq!(delivered.bytes, note);
            sequences.push(outcome.sequence);
        }
        // A batch without a note sends nothing.
        engine.submit(transfers(10_001, 1)).unwrap();
        assert!(notes.try_recv().is_err());
        let too_large = vec![0u8; farthing_engine::wal::NOTE_BYTES_MAX + 1];
        assert!(matches!(
            engine.submit_noted(transfers(10_002, 1), too_large),
            Err(SubmitError::NoteTooLarge { .. })
        ));
        engine.shutdown();
    }
    let engine = Engine::open(config).unwrap();
    assert!(
        engine.recovery().snapshot.is_some(),
        "the log was long enough for a snapshot"
    );
    // The floor (0) kept every segment: every note is still in the log, in order.
    let mut read = Vec::new();
    engine
        .read_notes(0, |note| {
            read.push((note.sequence, note.bytes));
            Ok(())
        })
        .unwrap();
    let expected: Vec<(u64, Vec<u8>)> = sequences
        .iter()
        .enumerate()
        .map(|(i, s)| (*s, format!("note {i}").into_bytes()))
        .collect();
    assert_eq!(read, expected);
    // Reading after a sequence returns only the later notes.
    let after = sequences[29];
    let mut later = Vec::new();
    engine
        .read_notes(after, |note| {
            later.push(note.sequence);
            Ok(())
        })
        .unwrap();
    assert_eq!(later, sequences[30..].to_vec());
    // An error from the reader stops the read and names it.
    let stopped = engine.read_notes(0, |_| Err("reader refused".into()));
    assert!(stopped.unwrap_err().to_string().contains("reader refused"));
}

trait ShutdownAndDump {
    fn shutdown_and_dump(self) -> LedgerDump;
}

impl ShutdownAndDump for Engine {
    fn shutdown_and_dump(self) -> LedgerDump {
        let dump = dump(&self);
        self.shutdown();
        dump
    }
}

#[test]
fn holds_expire_on_time_without_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000_000));
    let config = Config {
        clock: clock.clone(),
        expiry_check_ms: 5,
        ..Config::new(dir.path())
    };
    let engine = Engine::open(config).unwrap();
    for op in setup_ops(4) {
        engine.submit(op).unwrap();
    }
    let hold = Transfer {
        flags: TransferFlags::PENDING,
        timeout_s: 2,
        ..Transfer::simple(7, 2, 4, 30, USD)
    };
    engine
        .submit(Operation::CreateTransfers(vec![hold]))
        .unwrap();
    let pending = || {
        engine
            .lookup_account(AccountId(4))
            .unwrap()
            .balances
            .credits_pending
    };
    assert_eq!(pending(), Amount(30));
    clock.advance(3_000_000_000);
    let deadline = Instant::now() + Duration::from_secs(10);
    while pending() != Amount(0) {
        assert!(Instant::now() < deadline, "hold did not expire");
        std::thread::sleep(Duration::from_millis(5));
    }
    let post = Transfer {
        flags: TransferFlags::POST_PENDING,
        pending_id: TransferId(7),
        ..Transfer::simple(8, 0, 0, 0, 0)
    };
    let outcome = engine
        .submit(Operation::CreateTransfers(vec![post]))
        .unwrap();
    assert_eq!(
        outcome.results,
        BatchResults::Transfers(vec![TransferResult::PendingExpired])
    );
}

/// What a reader sees right after recovery when holds fell due while the engine was down:
/// they are already expired. `Engine::open` logs their expiry and waits until it is durable
/// before it returns, so no read is ever served with an overdue hold still pending; the idle
/// tick (disabled here) plays no part.
#[test]
fn holds_due_while_closed_are_expired_before_open_returns() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000_000));
    let config = || Config {
        clock: clock.clone(),
        expiry_check_ms: 3_600_000,
        ..Config::new(dir.path())
    };
    let engine = Engine::open(config()).unwrap();
    for op in setup_ops(4) {
        engine.submit(op).unwrap();
    }
    let hold = |id, timeout_s| Transfer {
        flags: TransferFlags::PENDING,
        timeout_s,
        ..Transfer::simple(id, 2, 4, 30, USD)
    };
    let outcome = engine
        .submit(Operation::CreateTransfers(vec![hold(7, 2), hold(8, 60)]))
        .unwrap();
    engine.shutdown();
    let status = |engine: &Engine, id| engine.lookup_transfer(TransferId(id)).unwrap().hold_status;

    // Not yet due: open writes nothing.
    let engine = Engine::open(config()).unwrap();
    assert_eq!(engine.read_at_sequence(|_| ()).1, outcome.sequence);
    assert_eq!(status(&engine, 7), Some(PendingStatus::Pending));
    engine.shutdown();

    // Three seconds later hold 7 is overdue, hold 8 is not.
    clock.advance(3_000_000_000);
    let engine = Engine::open(config()).unwrap();
    let (credits_pending, sequence) = engine.read_at_sequence(|l| {
        l.lookup_account(AccountId(4))
            .unwrap()
            .balances
            .credits_pending
    });
    assert_eq!(sequence, outcome.sequence + 1, "one expiry record");
    assert_eq!(credits_pending, Amount(30));
    assert_eq!(status(&engine, 7), Some(PendingStatus::Expired));
    assert_eq!(status(&engine, 8), Some(PendingStatus::Pending));
    engine.shutdown();

    // The expiry is in the log: a restart replays it, and writes nothing more.
    let engine = Engine::open(config()).unwrap();
    assert_eq!(engine.recovery().last_sequence, outcome.sequence + 1);
    assert_eq!(engine.read_at_sequence(|_| ()).1, outcome.sequence + 1);
    assert_eq!(status(&engine, 7), Some(PendingStatus::Expired));
}

/// A real full disk: a small tmpfs. Needs root (mount); skipped with a message otherwise.
#[test]
fn disk_full_halts_without_acknowledging() {
    let dir = tempfile::tempdir().unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(dir.path())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("SKIPPED disk_full_halts_without_acknowledging: cannot mount tmpfs (needs root)");
        return;
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(dir.path());
    let config = Config {
        log_preallocate_bytes: 64 << 10,
        ..Config::new(dir.path())
    };
    let mut acknowledged = Vec::new();
    let halted = {
        let engine = Engine::open(config.clone()).unwrap();
        for op in setup_ops(10) {
            engine.submit(op).unwrap();
        }
        let mut halted = None;
        for batch in 0..200u128 {
            match engine.submit(transfers(1 + batch * 100, 100)) {
                Ok(outcome) => acknowledged.push((batch, outcome)),
                Err(error) => {
                    halted = Some(error);
                    break;
                }
            }
        }
        // Once halted, nothing more is acknowledged.
        assert!(matches!(
            engine.submit(transfers(1_000_000, 1)),
            Err(SubmitError::Halted { .. })
        ));
        assert!(
            engine.halt_reason().unwrap().contains("No space left"),
            "{:?}",
            engine.halt_reason()
        );
        halted
    };
    assert!(
        matches!(halted, Some(SubmitError::Halted { .. })),
        "disk never filled: {halted:?}"
    );
    assert!(!acknowledged.is_empty());
    // Free some room so the engine can reopen, then check every acknowledged transfer.
    let engine = Engine::open(Config {
        log_preallocate_bytes: 0,
        ..config
    })
    .unwrap();
    for (batch, _) in &acknowledged {
        for id in [1 + batch * 100, 100 + batch * 100] {
            assert!(
                engine.lookup_transfer(TransferId(id)).is_some(),
                "acknowledged transfer {id} lost"
            );
        }
    }
    dump(&engine).check_invariants().unwrap();
}

/// Copies `bytes` as the only log segment of a fresh directory and opens an engine on it.
fn open_with_segment(name: &str, bytes: &[u8]) -> (tempfile::TempDir, Result<Engine, OpenError>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(name), bytes).unwrap();
    let config = Config {
        log_preallocate_bytes: 4 << 10,
        ..Config::new(dir.path())
    };
    let engine = Engine::open(config);
    (dir, engine)
}

#[test]
fn tail_sweep_truncates_only_the_damaged_last_record_or_refuses() {
    // Build a log: setup, then three small transfer batches.
    let source = tempfile::tempdir().unwrap();
    let config = Config {
        log_preallocate_bytes: 4 << 10,
        ..Config::new(source.path())
    };
    {
        let engine = Engine::open(config).unwrap();
        for op in setup_ops(6) {
            engine.submit(op).unwrap();
        }
        for batch in 0..3 {
            // Notes are part of the checksummed payload: the sweep damages them too.
            let note = format!("receipt {batch}").into_bytes();
            let reply = engine
                .submit_noted(transfers(1 + batch * 2, 2), note)
                .unwrap();
            reply.recv().unwrap().unwrap();
        }
    }
    let name = farthing_engine::wal::segment_name(1);
    let pristine = std::fs::read(source.path().join(&name)).unwrap();
    // Record boundaries, from the record headers.
    let mut boundaries = vec![0usize];
    let scan = farthing_engine::wal::scan_segment(&source.path().join(&name), 1, |header, _, _| {
        let last = *boundaries.last().unwrap();
        boundaries.push(last + farthing_engine::wal::HEADER_BYTES + header.payload_len as usize);
        Ok(())
    })
    .unwrap();
    assert_eq!(scan.records, 5);
    let n = boundaries.len() - 1;
    let (second_last, last, end) = (boundaries[n - 2], boundaries[n - 1], boundaries[n]);
    let state_at = |records: usize| {
        let (_dir, engine) = open_with_segment(&name, &pristine[..boundaries[records]]);
        let engine = engine.unwrap();
        assert_eq!(engine.recovery().last_sequence, records as u64);
        dump(&engine)
    };
    let (before_second_last, before_last, full) = (state_at(n - 2), state_at(n - 1), state_at(n));
    assert_ne!(before_last, full);

    // Every truncation point inside the last two records: exactly the broken record goes.
    for cut in second_last..end {
        let (_dir, engine) = open_with_segment(&name, &pristine[..cut]);
        let engine = engine.unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        let expected = if cut < last {
            &before_second_last
        } else {
            &before_last
        };
        assert_eq!(&dump(&engine), expected, "cut at {cut}");
        let truncated = engine.recovery().truncated.is_some();
        assert_eq!(truncated, cut != second_last && cut != last, "cut at {cut}");
    }

    // Every single-bit flip: in the last record it is a torn tail (truncated); earlier, a
    // valid record follows, so the engine must refuse and name the file and offset.
    let mut refused = 0;
    for byte in second_last..end {
        for bit in 0..8 {
            let mut bytes = pristine.clone();
            bytes[byte] ^= 1 << bit;
            let (_dir, engine) = open_with_segment(&name, &bytes);
            match engine {
                Ok(engine) => {
                    assert!(
                        byte >= last,
                        "flip at {byte}.{bit} in a non-tail record was accepted"
                    );
                    assert_eq!(dump(&engine), before_last, "flip at {byte}.{bit}");
                    assert!(engine.recovery().truncated.is_some());
                }
                Err(error) => {
                    assert!(
                        byte < last,
                        "flip at {byte}.{bit} in the tail record refused: {error}"
                    );
                    let message = error.to_string();
                    assert!(
                        message.contains(&name) && message.contains("offset"),
                        "{message}"
                    );
                    refused += 1;
                }
            }
        }
    }
    assert_eq!(refused, (last - second_last) * 8);
}

#[test]
fn corrupt_snapshot_refuses_to_start_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        snapshot_log_bytes: 1,
        ..Config::new(dir.path())
    };
    {
        let engine = Engine::open(config.clone()).unwrap();
        for op in setup_ops(4) {
            engine.submit(op).unwrap();
        }
        engine.submit(transfers(1, 10)).unwrap();
    }
    let snapshot = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "snap"))
        .max()
        .expect("a snapshot exists");
    let mut bytes = std::fs::read(&snapshot).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(&snapshot, bytes).unwrap();
    let error = Engine::open(config)
        .err()
        .expect("corrupt snapshot refused");
    assert!(
        error.to_string().contains(&snapshot.display().to_string()),
        "{error}"
    );
}
