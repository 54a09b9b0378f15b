//! Crash tests: run the engine in a child process (`farthing crash-worker`) under a load of
//! linked transfers, SIGKILL it at a random moment, recover, and check that everything
//! acknowledged survived exactly (see `farthing::crash::check`). Repeats on the same data
//! directory, so recovery of recovered data is tested too.
//!
//! `FARTHING_CRASH_KILLS` sets the number of kills (default 50).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use farthing::crash::{check, parse_ack, Ack};
use rand::{Rng, SeedableRng};

const WORKER_START_TIMEOUT_S: u64 = 60;

#[test]
fn sigkill_at_random_moments_loses_nothing_acknowledged() {
    let kills: u64 = std::env::var("FARTHING_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let seed: u64 = std::env::var("FARTHING_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20261121);
    eprintln!("crash test: {kills} kills, seed {seed} (FARTHING_CRASH_SEED to repeat)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut acks: Vec<Ack> = Vec::new();
    for run in 1..=kills {
        let mut child = Command::new(env!("CARGO_BIN_EXE_farthing"))
            .args([
                "crash-worker",
                "--seed",
                &seed.to_string(),
                "--run",
                &run.to_string(),
                "--dir",
            ])
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("worker starts");
        let stdout = child.stdout.take().unwrap();
        let (lines_tx, lines_rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let ready = lines_rx.recv_timeout(Duration::from_secs(WORKER_START_TIMEOUT_S));
        assert_eq!(
            ready.as_deref(),
            Ok("ready"),
            "run {run}: worker did not start"
        );
        // Kill anywhere from immediately to well into steady load.
        let delay = Duration::from_millis(rng.gen_range(0..300));
        let deadline = Instant::now() + delay;
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        child.kill().expect("SIGKILL");
        let status = child.wait().unwrap();
        assert!(
            !status.success(),
            "run {run}: worker exited by itself: {status}"
        );
        reader.join().unwrap();
        // Every line printed before the kill is an acknowledgement the client received.
        let before = acks.len();
        acks.extend(lines_rx.try_iter().filter_map(|line| parse_ack(run, &line)));
        let report = check(dir.path(), seed, &acks)
            .unwrap_or_else(|e| panic!("run {run} (killed after {delay:?}): {e:#}"));
        eprintln!(
            "run {run}: killed after {delay:?}, {} new acks, {} log records, {} transfers, state {}",
            acks.len() - before,
            report.log_records,
            report.transfers,
            &report.state_hash[..16]
        );
    }
    assert!(
        acks.len() > kills as usize,
        "the workload barely ran: {} acks",
        acks.len()
    );
}
