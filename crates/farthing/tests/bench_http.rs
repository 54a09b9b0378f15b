//! `farthing bench --http` end to end: it spawns `farthing serve`, drives it over loopback and
//! prints one JSON report. A functional test: it checks that the report is whole and no request
//! failed, never how fast anything was.

use std::process::Command;

use serde_json::Value;

fn check(scenario: &str, extra: &[&str]) -> Value {
    let dir = tempfile::tempdir().expect("temporary directory");
    let output = Command::new(env!("CARGO_BIN_EXE_farthing"))
        .args(["bench", "--http", "--scenario", scenario])
        .args(["--requests", "200", "--connections", "4", "--json"])
        .args(["--warmup-seconds", "0.2", "--http-accounts", "20", "--dir"])
        .arg(dir.path())
        .args(extra)
        .env("RUST_LOG", "warn")
        .output()
        .expect("farthing bench runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "bench failed: {stderr}");
    let report: Value = serde_json::from_slice(&output.stdout).expect("one JSON object");
    assert_eq!(report["errors"], 0, "{report}");
    assert_eq!(report["failed_transfers"], 0, "{report}");
    assert_eq!(report["requests"], 200, "{report}");
    assert_eq!(report["stopped_by"], "requests", "{report}");
    assert_eq!(report["scenario"], scenario);
    assert_eq!(report["connections"], 4);
    assert_eq!(report["server"], "spawned");
    assert!(
        report["transfers_per_second"].as_f64() > Some(0.0),
        "{report}"
    );
    assert!(
        report["requests_per_second"].as_f64() > Some(0.0),
        "{report}"
    );
    let latency = &report["latency_ms"];
    for q in ["p50", "p99", "p999"] {
        assert!(latency[q].as_f64() > Some(0.0), "{report}");
        assert!(latency[q].as_f64() <= latency["max"].as_f64(), "{report}");
    }
    // The spawned server's data directory is removed once it has stopped.
    let left: Vec<_> = std::fs::read_dir(dir.path()).expect("dir").collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    report
}

#[test]
fn single_transfers_report_a_rate_and_no_errors() {
    let report = check("single", &[]);
    assert_eq!(report["transfers"], 200);
}

#[test]
fn batches_report_a_rate_and_no_errors() {
    let report = check("batch", &["--batch-size", "50"]);
    assert_eq!(report["transfers"], 200 * 50);
    assert_eq!(report["transfers_per_request"], 50);
}

#[test]
fn binary_batches_report_a_rate_and_no_errors() {
    let report = check("binary", &["--batch-size", "100"]);
    assert_eq!(report["transfers"], 200 * 100);
}

#[test]
fn charges_report_a_rate_and_no_errors() {
    let report = check("charges", &[]);
    assert_eq!(report["transfers"], 200, "one charge per request");
}
