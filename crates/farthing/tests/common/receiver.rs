//! A webhook receiver on loopback for the server under test to deliver to, and the check of
//! each delivery's signature with the official Standard Webhooks library.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// One request a [`Receiver`] got.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub path: String,
    /// Header names in lower case.
    pub headers: std::collections::HashMap<String, String>,
    pub body: String,
}

impl Delivery {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// A webhook receiver on a loopback port: records every request and answers each with the
/// next status queued for its path (200 when none is), or holds the answer while `hold` is set.
pub struct Receiver {
    pub url: String,
    pub got: std::sync::Arc<std::sync::Mutex<Vec<Delivery>>>,
    /// Statuses to answer, per path, in order.
    pub answers: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Vec<u16>>>>,
    /// While true, requests are recorded but not answered (the connection is held open).
    pub hold: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Receiver {
    pub fn start() -> Receiver {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("receiver binds");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let receiver = Receiver {
            url,
            got: Default::default(),
            answers: Default::default(),
            hold: Default::default(),
        };
        let (got, answers, hold) = (
            receiver.got.clone(),
            receiver.answers.clone(),
            receiver.hold.clone(),
        );
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let (got, answers, hold) = (got.clone(), answers.clone(), hold.clone());
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
                    let mut data = Vec::new();
                    let mut buf = [0u8; 8192];
                    let (head_end, length) = loop {
                        let Ok(n) = stream.read(&mut buf) else { return };
                        if n == 0 {
                            return;
                        }
                        data.extend_from_slice(&buf[..n]);
                        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&data[..end]).to_lowercase();
                            let length = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            break (end + 4, length);
                        }
                    };
                    while data.len() < head_end + length {
                        let Ok(n) = stream.read(&mut buf) else { return };
                        if n == 0 {
                            return;
                        }
                        data.extend_from_slice(&buf[..n]);
                    }
                    let head = String::from_utf8_lossy(&data[..head_end]).to_string();
                    let mut lines = head.lines();
                    let path = lines
                        .next()
                        .and_then(|l| l.split_whitespace().nth(1))
                        .unwrap_or("")
                        .to_string();
                    let headers = lines
                        .filter_map(|l| l.split_once(':'))
                        .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string()))
                        .collect();
                    let body =
                        String::from_utf8_lossy(&data[head_end..head_end + length]).to_string();
                    got.lock().unwrap().push(Delivery {
                        path: path.clone(),
                        headers,
                        body,
                    });
                    // Held: keep the connection open, unanswered, until released (bounded).
                    let deadline = Instant::now() + Duration::from_secs(60);
                    while hold.load(Ordering::SeqCst) && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    let status = {
                        let mut answers = answers.lock().unwrap();
                        let queue = answers.entry(path).or_default();
                        if queue.is_empty() {
                            200
                        } else {
                            queue.remove(0)
                        }
                    };
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                    );
                });
            }
        });
        receiver
    }

    /// Deliveries to `path` so far.
    pub fn to(&self, path: &str) -> Vec<Delivery> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|d| d.path == path)
            .cloned()
            .collect()
    }

    /// Waits (bounded) until `done` holds for the deliveries to `path`; returns them.
    pub fn wait(
        &self,
        path: &str,
        what: &str,
        done: impl Fn(&[Delivery]) -> bool,
    ) -> Vec<Delivery> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = self.to(path);
            if done(&got) {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not delivered to {path} in 30 s; got {:#?}",
                got.iter().map(|d| d.body.clone()).collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The Python with the tools the tests use: that of the virtual environment `scripts/test` (or
/// `scripts/python-tools`) made, else `python3` from the PATH.
fn python() -> std::path::PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv-test/bin/python3");
    if venv.exists() {
        venv
    } else {
        "python3".into()
    }
}

/// Checks every delivery's signature with the official Standard Webhooks library (PyPI
/// `standardwebhooks`, through `crates/products/tests/verify_standard_webhooks.py`): each must
/// verify with `secret`.
pub fn verify_with_standard_webhooks(deliveries: &[Delivery], secret: &str) {
    use std::io::Write;
    let cases: Vec<Value> = deliveries
        .iter()
        .map(|d| {
            serde_json::json!({"secret": secret, "id": d.header("webhook-id"),
                "timestamp": d.header("webhook-timestamp").parse::<u64>().unwrap_or(0),
                "body": d.body, "signature": d.header("webhook-signature"), "valid": true})
        })
        .collect();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../products/tests/verify_standard_webhooks.py"
    );
    let mut child = Command::new(python())
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
        .write_all(serde_json::to_string(&cases).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "standardwebhooks refused a delivery: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("ok {}", deliveries.len())
    );
}
