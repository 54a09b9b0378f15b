//! The test harness shared by the integration tests: a real `farthing serve` process on
//! loopback ([`Server`], with its transport-level `call` and `raw`), the one typed client
//! tests send requests through ([`client::Client`]), the one world builder they start from
//! ([`world::World`]), and a webhook receiver ([`receiver::Receiver`]).
//!
//! Each test binary uses part of it, so unused items are allowed here.
#![allow(dead_code)]

pub mod client;
pub mod receiver;
pub mod world;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

const START_TIMEOUT_S: u64 = 30;

/// Status, body and headers of a response.
pub type Reply = (u16, String, Vec<(String, String)>);

pub struct Server {
    pub child: Child,
    pub base: String,
    pub operator_key: Option<String>,
    /// What the server printed before it listened (recovery figures, the operator key).
    pub startup: Vec<String>,
    /// What the server writes to stderr, line by line, when started by
    /// [`Server::start_logging`] (otherwise stderr is the test's own).
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    pub fn start(data_dir: &Path, extra: &[&str]) -> Server {
        Server::spawn(data_dir, extra, None)
    }

    /// Like [`Server::start`], logging at `filter` (a `RUST_LOG` value) into [`Server::log`].
    pub fn start_logging(data_dir: &Path, extra: &[&str], filter: &str) -> Server {
        Server::spawn(data_dir, extra, Some(filter))
    }

    fn spawn(data_dir: &Path, extra: &[&str], log_filter: Option<&str>) -> Server {
        let child = Command::new(env!("CARGO_BIN_EXE_farthing"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env("RUST_LOG", log_filter.unwrap_or("warn"))
            .stdout(Stdio::piped())
            .stderr(match log_filter {
                Some(_) => Stdio::piped(),
                None => Stdio::inherit(),
            })
            .spawn()
            .expect("server starts");
        // Owned by `Server` at once, so that its Drop kills and reaps the child on any panic.
        let mut server = Server {
            child,
            base: String::new(),
            operator_key: None,
            startup: Vec::new(),
            log: Arc::default(),
        };
        if let Some(stderr) = server.child.stderr.take() {
            let log = Arc::clone(&server.log);
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    log.lock().unwrap().push(line);
                }
            });
        }
        let stdout = server.child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(START_TIMEOUT_S);
        loop {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("server printed its address");
            if let Some(key) = line.split_whitespace().find(|w| w.starts_with("fk_op_")) {
                server.operator_key = Some(key.to_string());
            }
            if let Some(address) = line.strip_prefix("farthing listening on ") {
                server.base = address.to_string();
                return server;
            }
            server.startup.push(line);
        }
    }

    /// Waits (bounded) until a line of [`Server::log`] satisfies `found`; returns it.
    pub fn wait_for_log(&self, what: &str, found: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(line) = self.log.lock().unwrap().iter().find(|l| found(l)) {
                return line.clone();
            }
            assert!(
                Instant::now() < deadline,
                "{what}: no such log line in 10 s; got {:#?}",
                self.log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "server exited with {status}");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "server did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let (status, text, _) = self.raw(method, path, key, body.map(|b| b.to_string()), headers);
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub fn raw(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<String>,
        headers: &[(&str, &str)],
    ) -> Reply {
        self.try_raw(method, path, key, body, headers)
            .unwrap_or_else(|error| panic!("{method} {path}: {error}"))
    }

    /// Like [`Server::call`], but a transport error (the server was killed) is `None`.
    pub fn try_call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Option<(u16, Value)> {
        let (status, text, _) = self
            .try_raw(method, path, key, body.map(|b| b.to_string()), headers)
            .ok()?;
        Some((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    pub fn try_raw(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<String>,
        headers: &[(&str, &str)],
    ) -> Result<Reply, String> {
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(20))
            .build();
        let mut request = agent.request(method, &format!("{}{path}", self.base));
        if let Some(key) = key {
            request = request.set("Authorization", &format!("Bearer {key}"));
        }
        for (name, value) in headers {
            request = request.set(name, value);
        }
        let result = match body {
            Some(body) => request
                .set("Content-Type", "application/json")
                .send_string(&body),
            None => request.call(),
        };
        let response = match result {
            Ok(response) => response,
            Err(ureq::Error::Status(_, response)) => response,
            Err(error) => return Err(error.to_string()),
        };
        let status = response.status();
        let headers = response
            .headers_names()
            .into_iter()
            .map(|n| {
                let v = response.header(&n).unwrap_or_default().to_string();
                (n, v)
            })
            .collect();
        Ok((status, response.into_string().unwrap_or_default(), headers))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `farthing serve` with these arguments, expecting it to fail to start: it must exit
/// unsuccessfully (within the start timeout) without announcing an address.
pub fn serve_fails(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_farthing"))
        .arg("serve")
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("farthing runs");
    let deadline = Instant::now() + Duration::from_secs(START_TIMEOUT_S);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "farthing serve {args:?} did not exit: {}",
                String::from_utf8_lossy(&output.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        !output.status.success() && !stdout.contains("listening on"),
        "farthing serve {args:?} started: {stdout}"
    );
    output
}
