//! Crash tests: run the engine in a child process (`farthing crash-worker`) under a load of
//! linked transfers, SIGKILL it at a random moment, recover, and check that everything
//! acknowledged survived exactly (see `farthing::crash::Checker`). Repeats on the same data
//! directory, so recovery of recovered data is tested too.
//!
//! `FARTHING_CRASH_KILLS` sets the number of kills (default 50) and `FARTHING_CRASH_SEED` the
//! seed. A failed run keeps its folder and names it; `farthing crash-check` re-checks it.
//! The long mode is `farthing crash-test --kills 1000` (README, "Crash testing").

use std::sync::Arc;
use std::time::{Duration, Instant};

use farthing::crash::{self, Ack, Checker, KillOptions};
use farthing_engine::{Config, Engine, ManualClock};
use farthing_ledger::PendingStatus;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn sigkill_at_random_moments_loses_nothing_acknowledged() {
    let kills = env_u64("FARTHING_CRASH_KILLS", 50);
    let seed = env_u64("FARTHING_CRASH_SEED", 20261121);
    eprintln!("crash test: {kills} kills, seed {seed} (FARTHING_CRASH_SEED to repeat)");
    let folder = tempfile::tempdir().unwrap();
    let options = KillOptions {
        binary: env!("CARGO_BIN_EXE_farthing").into(),
        dir: folder.path().to_owned(),
        seed,
        kills,
        kill_after_max_ms: 300,
        worker_start_timeout_s: 60,
    };
    let result = crash::run_kills(&options, |k| {
        eprintln!(
            "run {}: killed after {:?}, {} new acks, {} log records (state at {}), {} transfers, state {}, checked in {:?}",
            k.run,
            k.killed_after,
            k.new_acks,
            k.check.log_records,
            k.check.state_sequence,
            k.check.transfers,
            &k.check.state_hash[..16],
            k.check_time,
        );
    });
    if let Err(error) = result {
        // Keep the folder for `farthing crash-check` and for a regression fixture.
        let kept = folder.keep();
        panic!("{error:#}\n(kept {})", kept.display());
    }
}

/// Regression: the check once read the recovered state, then the checking engine's idle tick
/// logged a hold expiry, and the check compared the state with a replay of the whole log,
/// expiry included (about one kill in 400 failed so). This makes that expiry happen right
/// after the read, every time, and the check must pass: it compares at the sequence the state
/// was read at, and accepts after it only the engine's own (empty) expiry records.
#[test]
fn an_expiry_logged_after_the_checker_reads_is_compared_like_with_like() {
    let seed = 7;
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000_000));
    let config = || Config {
        clock: clock.clone(),
        expiry_check_ms: 2,
        ..crash::engine_config(dir.path())
    };
    let engine = Engine::open(config()).unwrap();
    for op in crash::setup_operations() {
        engine.submit(op).unwrap();
    }
    // Run the workload until a one-second hold is pending.
    let mut acks = Vec::new();
    for batch in 0..1_000 {
        let outcome = engine
            .submit(crash::generate_batch(seed, 1, 0, batch))
            .unwrap();
        acks.push(Ack {
            run: 1,
            client: 0,
            batch,
            sequence: outcome.sequence,
            timestamp: outcome.timestamp.0,
            codes: outcome.results.codes(),
        });
        let pending_with_timeout = engine.read(|l| {
            l.visible_transfers()
                .any(|t| t.hold_status == Some(PendingStatus::Pending) && t.timeout_s > 0)
        });
        if pending_with_timeout {
            break;
        }
    }
    engine.shutdown();
    let checking = Engine::open(config()).unwrap();
    let report = Checker::new(seed)
        .check_engine(checking, dir.path(), &acks, |engine| {
            // Past every timeout: the idle tick logs the expiry; wait until it is durable.
            clock.advance(10_000_000_000);
            let (_, read_at) = engine.read_at_sequence(|_| ());
            let deadline = Instant::now() + Duration::from_secs(10);
            while engine.read_at_sequence(|_| ()).1 == read_at {
                assert!(Instant::now() < deadline, "no expiry record was logged");
                std::thread::sleep(Duration::from_millis(2));
            }
        })
        .unwrap();
    assert_eq!(report.log_records, report.state_sequence + 1);
    // A second check of the same directory, from scratch, compares after the expiry.
    let again = crash::check(dir.path(), seed, &acks).unwrap();
    assert_eq!(again.state_sequence, report.log_records);
}

/// A changed record in an already-checked prefix of the log is found by the next check, which
/// does not apply old records again.
#[test]
fn a_checker_notices_a_log_prefix_that_changed() {
    let seed = 11;
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(crash::engine_config(dir.path())).unwrap();
    for op in crash::setup_operations() {
        engine.submit(op).unwrap();
    }
    for batch in 0..20 {
        engine
            .submit(crash::generate_batch(seed, 1, 0, batch))
            .unwrap();
    }
    engine.shutdown();
    let mut checker = Checker::new(seed);
    checker.check(dir.path(), &[]).unwrap();
    // Rewrite the log with other (valid) batches at the same sequences.
    let other = tempfile::tempdir().unwrap();
    let engine = Engine::open(crash::engine_config(other.path())).unwrap();
    for op in crash::setup_operations() {
        engine.submit(op).unwrap();
    }
    for batch in 0..20 {
        engine
            .submit(crash::generate_batch(seed, 2, 0, batch))
            .unwrap();
    }
    engine.shutdown();
    let error = format!("{:#}", checker.check(other.path(), &[]).unwrap_err());
    assert!(error.contains("changed since it was checked"), "{error}");
}

#[test]
fn a_saved_acknowledgement_reads_back() {
    let ack = Ack {
        run: 3,
        client: 1,
        batch: 17,
        sequence: 120,
        timestamp: 99,
        codes: vec![0, 4, 0],
    };
    assert_eq!(crash::parse_saved_ack(&ack.saved_line()), Some(ack));
}

/// The long mode and the re-check of a kept folder, as a user runs them.
#[test]
fn crash_test_and_crash_check_commands() {
    let folder = tempfile::tempdir().unwrap();
    let farthing = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_farthing"))
            .args(args)
            .output()
            .unwrap()
    };
    let dir = folder.path().to_str().unwrap();
    let run = farthing(&["crash-test", "--kills", "3", "--seed", "5", "--dir", dir]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        stdout.contains("crash test passed: 3 kills, seed 5"),
        "{stdout}"
    );
    let saved = crash::read_saved_acks(&crash::acks_path(folder.path())).unwrap();
    assert!(!saved.is_empty());

    let check = farthing(&["crash-check", "--dir", dir, "--seed", "5"]);
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(
        stdout.contains(&format!("{} acknowledged batches", saved.len())),
        "{stdout}"
    );

    // Checked against another seed, the logged batches are not what that workload submits.
    let wrong = farthing(&["crash-check", "--dir", dir, "--seed", "6"]);
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(!wrong.status.success());
    assert!(
        stderr.contains("differs from what was submitted"),
        "{stderr}"
    );
}
