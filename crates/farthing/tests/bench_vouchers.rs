//! `farthing bench vouchers` end to end: a functional test. It checks that the report is whole
//! and every proof was accepted, never how fast anything was.

use std::process::{Command, Output};

use serde_json::Value;

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_farthing"))
        .args(["bench", "vouchers"])
        .args(args)
        .output()
        .expect("farthing bench vouchers runs")
}

#[test]
fn the_json_report_is_whole() {
    let output = bench(&[
        "--seconds",
        "0.05",
        "--chain-length",
        "500",
        "--channels",
        "16",
        "--vouchers-per-channel",
        "2",
        "--batch-size",
        "8",
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "bench failed: {stderr}");
    let report: Value = serde_json::from_slice(&output.stdout).expect("one JSON object");
    assert_eq!(report["payword_chain_length"], 500, "{report}");
    assert_eq!(report["channels"], 16, "{report}");
    assert_eq!(report["voucher_batch_size"], 8, "{report}");
    assert_eq!(report["payword_target_per_second"], 5_000_000.0, "{report}");
    assert!(report["sha_ni"].is_boolean(), "{report}");
    for rate in [
        "payword_payments_per_second",
        "voucher_single_per_second",
        "voucher_batch_per_second",
    ] {
        assert!(report[rate].as_f64() > Some(0.0), "{rate}: {report}");
    }
    // Whole rounds: every payment and voucher timed was accepted, or the bench would fail.
    assert!(report["payword_payments"].as_u64() > Some(0), "{report}");
    assert_eq!(
        report["voucher_single"].as_u64().unwrap() % 16,
        0,
        "{report}"
    );
    assert_eq!(
        report["voucher_batched"].as_u64().unwrap() % 16,
        0,
        "{report}"
    );
}

#[test]
fn the_table_names_each_figure() {
    let output = bench(&[
        "--seconds",
        "0.05",
        "--chain-length",
        "100",
        "--channels",
        "4",
        "--batch-size",
        "4",
    ]);
    assert!(output.status.success());
    let table = String::from_utf8_lossy(&output.stdout);
    for label in [
        "PayWord payments/s",
        "signed vouchers/s, single",
        "signed vouchers/s, batch of 4",
    ] {
        assert!(table.contains(label), "{label} missing from:\n{table}");
    }
}

#[test]
fn a_batch_larger_than_the_channels_is_refused() {
    let output = bench(&["--channels", "4", "--batch-size", "8"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--batch-size"), "{stderr}");
}

#[test]
fn help_documents_the_flags() {
    let output = bench(&["--help"]);
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--seconds",
        "--json",
        "--batch-size",
        "--chain-length",
        "--channels",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}
