//! Signatures made by `farthing_products::webhooks` verify with the official Standard Webhooks
//! library (the `standardwebhooks` package from PyPI, installed by `scripts/test`), and
//! tampered ones do not: our own verifier is not the only judge.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use farthing_products::webhooks::{signature_header, WebhookSecret, SECRET_BYTES};
use serde_json::{json, Value};

fn case(
    secret: &WebhookSecret,
    id: &str,
    ts: u64,
    body: &str,
    signature: &str,
    valid: bool,
) -> Value {
    json!({"secret": secret.to_text(), "id": id, "timestamp": ts, "body": body,
           "signature": signature, "valid": valid})
}

#[test]
fn the_official_library_verifies_our_signatures_and_refuses_tampered_ones() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let old = WebhookSecret::from_bytes(&[0x5a; SECRET_BYTES]).unwrap();
    let new = WebhookSecret::from_bytes(&(0..SECRET_BYTES as u8).collect::<Vec<_>>()).unwrap();
    let other = WebhookSecret::from_bytes(&[0x11; 24]).unwrap();
    let bodies = [
        r#"{"type":"charge.succeeded","data":{"amount":"0.000001","asset":"USD"}}"#,
        r#"{"type":"tip","data":{"message":"Merci ☕ — 3€ \"quoted\"\n"}}"#,
        "{}",
    ];
    let mut cases = Vec::new();
    for (i, body) in bodies.iter().enumerate() {
        let id = format!("msg_{i:04}");
        let one = signature_header(std::slice::from_ref(&new), &id, now, body.as_bytes());
        cases.push(case(&new, &id, now, body, &one, true));
        // Rotation: both secrets sign; a receiver holding either one accepts.
        let both = signature_header(&[new.clone(), old.clone()], &id, now, body.as_bytes());
        cases.push(case(&old, &id, now, body, &both, true));
        cases.push(case(&new, &id, now, body, &both, true));
        // Tampered body, another id, another secret: refused.
        cases.push(case(&new, &id, now, &format!("{body} "), &one, false));
        cases.push(case(&new, "msg_other", now, body, &one, false));
        cases.push(case(&other, &id, now, body, &both, false));
    }
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/verify_standard_webhooks.py"
    );
    // The virtual environment `scripts/test` (or `scripts/python-tools`) made, else the PATH's.
    let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/../../.venv-test/bin/python3");
    let python = if std::path::Path::new(venv).exists() {
        venv
    } else {
        "python3"
    };
    let mut child = Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs (scripts/python-tools installs what this test needs)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(Value::Array(cases.clone()).to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the standardwebhooks check failed (is the package installed? scripts/python-tools \
         installs it):\n{stdout}\n{stderr}"
    );
    assert_eq!(stdout.trim(), format!("ok {}", cases.len()));
}
