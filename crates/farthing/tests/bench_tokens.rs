//! `farthing bench tokens` end to end: a functional test. It checks that the report is whole
//! and every token signed was verified, never how fast anything was.

use std::process::{Command, Output};

use serde_json::Value;

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_farthing"))
        .args(["bench", "tokens"])
        .args(args)
        .output()
        .expect("farthing bench tokens runs")
}

#[test]
fn the_json_report_is_whole() {
    let output = bench(&["--seconds", "0.05", "--json"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "bench failed: {stderr}");
    let report: Value = serde_json::from_slice(&output.stdout).expect("one JSON object");
    assert_eq!(report["threads"], 1, "{report}");
    for count in ["tokens_signed", "tokens_verified"] {
        assert!(report[count].as_u64() > Some(0), "{count}: {report}");
    }
    for rate in ["tokens_signed_per_second", "tokens_verified_per_second"] {
        assert!(report[rate].as_f64() > Some(0.0), "{rate}: {report}");
    }
    // Three base64url parts of a real purchase's claims: a few hundred bytes.
    let bytes = report["token_bytes"].as_u64().unwrap();
    assert!((200..1000).contains(&bytes), "{report}");
    assert!(report["machine"].is_string(), "{report}");
}

#[test]
fn the_table_names_each_figure() {
    let output = bench(&["--seconds", "0.05"]);
    assert!(output.status.success());
    let table = String::from_utf8_lossy(&output.stdout);
    for label in ["signed", "verified", "bytes"] {
        assert!(table.contains(label), "{label} missing from:\n{table}");
    }
}

#[test]
fn a_duration_out_of_range_is_refused() {
    for seconds in [
        "--seconds=0",
        "--seconds=-1",
        "--seconds=3601",
        "--seconds=NaN",
    ] {
        let output = bench(&[seconds]);
        assert!(!output.status.success(), "--seconds {seconds}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("--seconds"), "{stderr}");
    }
}

#[test]
fn help_documents_the_flags() {
    let output = bench(&["--help"]);
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in ["--seconds", "--json"] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}
