//! `farthing bench --http`: load on `farthing serve` over loopback HTTP.
//!
//! Spawns `farthing serve` on a fresh data directory (or targets a running server with
//! `--target` and `--key`), creates a merchant, its API key and `--http-accounts` accounts
//! ([`Fixture`]), then keeps `--connections` HTTP/1.1 keep-alive connections busy, each with
//! one request in flight ([`drive`]): `POST /v1/transfers` with one transfer
//! ([`Scenario::Single`]) or `POST /v1/transfers/batch` with `--batch-size` transfers
//! ([`Scenario::Batch`]). A warm-up phase (`--warmup-seconds`) is left out of every figure; the
//! measured phase stops after `--requests` requests or `--seconds`, whichever comes first.
//! [`HttpBenchReport`] is what `--json` prints.
//!
//! Latency is per request: from just before the request is written until its whole response
//! has been read. The load is a closed loop: a slow response delays the next request of its
//! connection instead of queueing behind it, so the percentiles are those a client with this
//! many connections sees, not those of an open-loop arrival rate (coordinated omission).
//!
//! Requests are laid out as bytes before the clock starts and sent by a client of its own
//! ([`client`]), one task and one socket per connection, so the load generator, which shares
//! the machine's cores with a spawned server, takes as little of them as it can.

pub mod client;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::task::JoinSet;

use crate::bench::BenchArgs;
use client::{request_bytes, ClientError, Connection};

/// Most concurrent connections; each holds a socket and a task.
const CONNECTIONS_MAX: usize = 4096;
/// Most threads for the load generator's runtime.
const CLIENT_THREADS_MAX: usize = 64;
/// Most accounts the benchmark creates.
const HTTP_ACCOUNTS_MAX: u64 = 1_000_000;
/// Longest measured phase or warm-up.
const SECONDS_MAX: f64 = 86_400.0;
/// Connections that create the accounts concurrently (group commit merges their writes).
const SETUP_CONNECTIONS_MAX: usize = 16;
/// Customers created for `--scenario charges` (at most; --http-accounts if fewer).
const CHARGE_CUSTOMERS_MAX: u64 = 256;
/// What each of those customers' wallets is topped up with.
const CHARGE_WALLET_TOPUP: &str = "1000000";
/// Distinct single-transfer bodies, cycled through: enough that accounts vary between requests.
const SINGLE_BODIES: usize = 4096;
/// Distinct batch bodies, cycled through; each is about 130 bytes per transfer.
const BATCH_BODIES: usize = 8;
/// Room reserved per transfer when building a body, in bytes.
const TRANSFER_JSON_BYTES: usize = 160;
/// Transfer amounts are 1 to this many minor units of the asset.
const AMOUNT_MINOR_UNITS_MAX: u64 = 1000;
/// The asset the benchmark moves, created with [`ASSET_SCALE_NEW`] when missing.
const ASSET_CODE: &str = "USD";
const ASSET_SCALE_NEW: u8 = 6;
/// The largest scale an asset may have (amounts of 10^scale minor units still fit a `u64`).
const ASSET_SCALE_MAX: u8 = 18;
/// Operator keys start with this; the server accepts an admin key with it.
const OPERATOR_KEY_PREFIX: &str = "fk_op_";
/// The spawned server's per-key rate limit: high enough never to throttle the benchmark.
const SERVER_RATE_LIMIT_PER_SECOND: u32 = 1_000_000_000;
/// How long a spawned server may take to listen, and then to stop after SIGTERM (it flushes the
/// ledger first).
const SERVER_START_TIMEOUT_S: u64 = 30;
const SERVER_STOP_TIMEOUT_S: u64 = 60;
const SERVER_STOP_POLL_MS: u64 = 20;
/// A request without a complete response by then counts as failed, and its connection is
/// replaced.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response body read, in bytes (a batch of 8190 results is about 3.5 MB).
const RESPONSE_BYTES_MAX: usize = 64 << 20;
/// Times one connection is reopened after a transport failure before it gives up.
const RECONNECTS_MAX: u64 = 3;
/// Characters of a failed response kept for the report.
const ERROR_EXCERPT_CHARS_MAX: usize = 300;
/// Latency samples reserved per connection up front (more grow the vector).
const LATENCY_SAMPLES_RESERVED_MAX: u64 = 1 << 16;
const PROGRESS_TICK_MS: u64 = 200;

/// What `farthing bench --http` sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// One transfer per `POST /v1/transfers`.
    Single,
    /// `--batch-size` transfers per `POST /v1/transfers/batch`, as JSON.
    Batch,
    /// `--batch-size` transfers per `POST /v1/transfers/batch` in the compact binary encoding
    /// (`farthing_http::wire`), the project's own high-volume client.
    Binary,
    /// One wallet charge per `POST /v1/charges` with a 2.5% fee plan and a 70/30 revenue
    /// share, by a merchant key under the customers' allowances (needs an operator key).
    Charges,
}

impl Scenario {
    fn path(self) -> &'static str {
        match self {
            Scenario::Single => "/v1/transfers",
            Scenario::Batch | Scenario::Binary => "/v1/transfers/batch",
            Scenario::Charges => "/v1/charges",
        }
    }

    fn status_ok(self) -> StatusCode {
        match self {
            Scenario::Single | Scenario::Charges => StatusCode::CREATED,
            Scenario::Batch | Scenario::Binary => StatusCode::OK,
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Scenario::Single | Scenario::Batch | Scenario::Charges => "application/json",
            Scenario::Binary => farthing_http::wire::CONTENT_TYPE,
        }
    }
}

/// Why a request of the benchmark failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpBenchError {
    #[error("--target must be http://HOST:PORT, got `{0}`")]
    TargetInvalid(String),
    #[error("--target {0} is not on loopback: the benchmark only drives a server on this machine")]
    TargetNotLoopback(String),
    #[error("the API key is not a valid HTTP header value")]
    KeyInvalid,
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{method} {path} answered {status}: {body}")]
    Status {
        method: Method,
        path: &'static str,
        status: StatusCode,
        body: String,
    },
    #[error("a batch of {sent} answered {results} results, {failed} of them errors: {excerpt}")]
    BatchRejected {
        sent: u64,
        results: u64,
        failed: u64,
        excerpt: String,
    },
    #[error("{what}: unexpected response: {body}")]
    Unexpected { what: &'static str, body: String },
}

impl HttpBenchError {
    /// Whether the connection can no longer be trusted to carry the next request.
    fn breaks_connection(&self) -> bool {
        matches!(self, HttpBenchError::Client(_))
    }

    /// Transfers of a request of `sent` that this failure left uncreated.
    fn transfers_failed(&self, sent: u64) -> u64 {
        match self {
            HttpBenchError::BatchRejected {
                results, failed, ..
            } if *results == sent => *failed,
            _ => sent,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct HttpLatencyMs {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

/// What `farthing bench --http --json` prints. Every figure but `errors`, `failed_transfers`
/// and `reconnects` covers the measured phase only.
#[derive(Debug, Serialize)]
pub struct HttpBenchReport {
    pub scenario: Scenario,
    pub connections: usize,
    pub client_threads: usize,
    pub transfers_per_request: u64,
    pub accounts: u64,
    /// `spawned` (this run started the server) or `target` (`--target`).
    pub server: &'static str,
    pub url: String,
    /// Load before the measured phase, left out of every figure.
    pub warmup_seconds: f64,
    pub warmup_requests: u64,
    pub seconds: f64,
    /// Measured requests, failed ones included.
    pub requests: u64,
    /// Transfers created by measured requests that fully succeeded.
    pub transfers: u64,
    /// `requests` (`--requests` reached) or `time` (`--seconds` reached, or every connection
    /// gave up).
    pub stopped_by: &'static str,
    pub transfers_per_second: f64,
    pub requests_per_second: f64,
    pub latency_ms: HttpLatencyMs,
    /// Requests, warm-up included, that did not fully succeed: transport failures, timeouts,
    /// unexpected statuses, batches with a rejected transfer.
    pub errors: u64,
    /// Transfers those requests did not create.
    pub failed_transfers: u64,
    pub first_error: Option<String>,
    pub reconnects: u64,
    /// CPU time over wall time during the measured phase (1.0 = one core busy).
    pub client_cpu_cores: Option<f64>,
    pub server_cpu_cores: Option<f64>,
    /// CPU the rest of the machine used meanwhile (builds, other benchmarks): with a spawned
    /// server, anything well above 0 means the figures are not the machine's.
    pub other_cpu_cores: Option<f64>,
    pub server_peak_rss_bytes: Option<u64>,
    pub machine: String,
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    validate(args)?;
    let spawned = match args.target {
        Some(_) => None,
        None => Some(SpawnedServer::start(args)?),
    };
    let (endpoint, key, server_pid) = match (&spawned, &args.target, &args.key) {
        (Some(server), _, _) => (
            server.endpoint.clone(),
            server.key.clone(),
            Some(server.process.child.id()),
        ),
        (None, Some(target), Some(key)) => (Endpoint::parse(target)?, key.clone(), None),
        (None, _, _) => bail!("--target needs --key (or FARTHING_BENCH_KEY)"),
    };
    let runtime = client_runtime(args.client_threads).context("starting the load runtime")?;
    let measured = runtime.block_on(measure(args, &endpoint, &key, server_pid));
    // Closes every connection: the server's graceful shutdown waits for open ones.
    drop(runtime);
    let server_peak_rss_bytes = server_pid.and_then(peak_rss_bytes);
    let stopped = match spawned {
        Some(server) => server.stop(args.keep),
        None => Ok(()),
    };
    let mut report = measured?;
    stopped?;
    report.server_peak_rss_bytes = server_peak_rss_bytes;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_table(&report);
    }
    ensure!(
        report.errors == 0,
        "{} requests failed ({} transfers not created); first: {}",
        report.errors,
        report.failed_transfers,
        report.first_error.as_deref().unwrap_or("?")
    );
    Ok(())
}

fn validate(args: &BenchArgs) -> anyhow::Result<()> {
    ensure!(
        (1..=CONNECTIONS_MAX).contains(&args.connections),
        "--connections must be 1..={CONNECTIONS_MAX}"
    );
    ensure!(
        (1..=CLIENT_THREADS_MAX).contains(&args.client_threads),
        "--client-threads must be 1..={CLIENT_THREADS_MAX}"
    );
    ensure!(
        (2..=HTTP_ACCOUNTS_MAX).contains(&args.http_accounts),
        "--http-accounts must be 2..={HTTP_ACCOUNTS_MAX}"
    );
    ensure!(
        args.seconds > 0.0 && args.seconds <= SECONDS_MAX,
        "--seconds must be more than 0 and at most {SECONDS_MAX}"
    );
    ensure!(
        args.warmup_seconds >= 0.0 && args.warmup_seconds <= SECONDS_MAX,
        "--warmup-seconds must be 0 to {SECONDS_MAX}"
    );
    ensure!(args.requests != Some(0), "--requests must be at least 1");
    if args.scenario != Scenario::Single {
        ensure!(
            (1..=farthing_ledger::BATCH_EVENTS_MAX).contains(&args.batch_size),
            "--batch-size must be 1..={}",
            farthing_ledger::BATCH_EVENTS_MAX
        );
    }
    Ok(())
}

fn client_runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
}

/// Where the server listens, and the `Host` header naming it.
#[derive(Debug, Clone)]
struct Endpoint {
    addr: SocketAddr,
    url: String,
    host: HeaderValue,
}

impl Endpoint {
    fn parse(url: &str) -> Result<Endpoint, HttpBenchError> {
        let invalid = || HttpBenchError::TargetInvalid(url.to_string());
        let authority = url
            .strip_prefix("http://")
            .ok_or_else(invalid)?
            .trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') {
            return Err(invalid());
        }
        let addr = authority
            .to_socket_addrs()
            .map_err(|_| invalid())?
            .next()
            .ok_or_else(invalid)?;
        if !addr.ip().is_loopback() {
            return Err(HttpBenchError::TargetNotLoopback(url.to_string()));
        }
        let host = HeaderValue::from_str(authority).map_err(|_| invalid())?;
        Ok(Endpoint {
            addr,
            url: format!("http://{authority}"),
            host,
        })
    }
}

/// The headers every request carries, checked once (a key with a line break in it would
/// smuggle headers into the request).
#[derive(Debug, Clone)]
struct RequestTemplate {
    host: String,
    authorization: String,
    content_type: &'static str,
}

impl RequestTemplate {
    fn new(endpoint: &Endpoint, key: &str) -> Result<RequestTemplate, HttpBenchError> {
        let authorization = format!("Bearer {key}");
        // Visible ASCII only, as `HeaderValue::from_str` checks.
        HeaderValue::from_str(&authorization).map_err(|_| HttpBenchError::KeyInvalid)?;
        let host = endpoint
            .host
            .to_str()
            .map_err(|_| HttpBenchError::TargetInvalid(endpoint.url.clone()))?;
        Ok(RequestTemplate {
            host: host.to_string(),
            authorization,
            content_type: "application/json",
        })
    }

    /// The same headers with another content type.
    fn with_content_type(&self, content_type: &'static str) -> RequestTemplate {
        RequestTemplate {
            content_type,
            ..self.clone()
        }
    }

    /// The whole request, ready to be written.
    fn build(&self, method: &Method, path: &str, body: &[u8]) -> Bytes {
        let headers = [
            ("host", self.host.as_str()),
            ("authorization", self.authorization.as_str()),
            ("content-type", self.content_type),
        ];
        request_bytes(method, path, &headers, body)
    }
}

/// A setup call: `expected` status and a JSON answer, or an error quoting the answer.
async fn call(
    connection: &mut Connection,
    template: &RequestTemplate,
    method: Method,
    path: &'static str,
    body: Option<Value>,
    expected: StatusCode,
) -> Result<Value, HttpBenchError> {
    let body = body.map_or_else(Vec::new, |b| b.to_string().into_bytes());
    let request = template.build(&method, path, &body);
    let answer = connection
        .exchange(&request, RESPONSE_BYTES_MAX, REQUEST_TIMEOUT)
        .await?;
    if answer.status != expected {
        return Err(HttpBenchError::Status {
            method,
            path,
            status: answer.status,
            body: excerpt(answer.body),
        });
    }
    serde_json::from_slice(answer.body).map_err(|_| HttpBenchError::Unexpected {
        what: path,
        body: excerpt(answer.body),
    })
}

fn excerpt(body: &[u8]) -> String {
    String::from_utf8_lossy(body)
        .chars()
        .take(ERROR_EXCERPT_CHARS_MAX)
        .collect()
}

/// The string field `field` of a JSON answer to `what`.
fn field(answer: &Value, field: &str, what: &'static str) -> Result<String, HttpBenchError> {
    answer[field]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| HttpBenchError::Unexpected {
            what,
            body: excerpt(answer.to_string().as_bytes()),
        })
}

/// What the load needs on the server: a merchant key to send transfers with, the asset's scale
/// and the merchant's accounts.
struct Fixture {
    template: RequestTemplate,
    scale: u8,
    accounts: Vec<String>,
    /// For `charges`: customers that granted the merchant an allowance and hold a wallet, and
    /// the merchant and its revenue-share partner.
    customers: Vec<String>,
    merchants: Option<(String, String)>,
}

impl Fixture {
    async fn prepare(
        endpoint: &Endpoint,
        key: &str,
        accounts: u64,
        scenario: Scenario,
    ) -> Result<Fixture, HttpBenchError> {
        let mut connection = Connection::open(endpoint.addr).await?;
        let given = RequestTemplate::new(endpoint, key)?;
        let operator = key.starts_with(OPERATOR_KEY_PREFIX);
        let assets = call(
            &mut connection,
            &given,
            Method::GET,
            "/v1/assets",
            None,
            StatusCode::OK,
        )
        .await?;
        let scale = match asset_scale(&assets)? {
            Some(scale) => scale,
            None if operator => {
                let asset = json!({"code": ASSET_CODE, "scale": ASSET_SCALE_NEW});
                call(
                    &mut connection,
                    &given,
                    Method::POST,
                    "/v1/assets",
                    Some(asset),
                    StatusCode::CREATED,
                )
                .await?;
                ASSET_SCALE_NEW
            }
            None => {
                return Err(HttpBenchError::Unexpected {
                    what: "/v1/assets",
                    body: format!("no {ASSET_CODE} asset, and a merchant key cannot create one"),
                })
            }
        };
        // Transfers are sent as a merchant, the way the API is meant to be used: tenant checks
        // and all.
        let mut merchant_id = None;
        let template = if operator {
            let merchant = call(
                &mut connection,
                &given,
                Method::POST,
                "/v1/merchants",
                Some(json!({"name": "bench"})),
                StatusCode::CREATED,
            )
            .await?;
            let merchant = field(&merchant, "id", "/v1/merchants")?;
            merchant_id = Some(merchant.clone());
            let issued = call(
                &mut connection,
                &given,
                Method::POST,
                "/v1/api_keys",
                Some(json!({"scope": "merchant", "merchant": merchant})),
                StatusCode::CREATED,
            )
            .await?;
            RequestTemplate::new(endpoint, &field(&issued, "secret", "/v1/api_keys")?)?
        } else {
            given.clone()
        };
        if scenario == Scenario::Charges {
            let merchant = merchant_id.ok_or_else(|| HttpBenchError::Unexpected {
                what: "--scenario charges",
                body: "needs an operator key (to set the merchant's fee plan)".into(),
            })?;
            let partner = call(
                &mut connection,
                &given,
                Method::POST,
                "/v1/merchants",
                Some(json!({"name": "bench partner"})),
                StatusCode::CREATED,
            )
            .await?;
            let partner = field(&partner, "id", "/v1/merchants")?;
            let plan = json!({"asset": ASSET_CODE, "percent_bps": 250, "fixed": "0", "rounding": "half_even"});
            let path: &'static str =
                Box::leak(format!("/v1/merchants/{merchant}/fee_plan").into_boxed_str());
            call(
                &mut connection,
                &given,
                Method::POST,
                path,
                Some(plan),
                StatusCode::OK,
            )
            .await?;
            let customers = create_customers(
                endpoint,
                &template,
                &merchant,
                accounts.min(CHARGE_CUSTOMERS_MAX),
            )
            .await?;
            return Ok(Fixture {
                template,
                scale,
                accounts: Vec::new(),
                customers,
                merchants: Some((merchant, partner)),
            });
        }
        let accounts = create_accounts(endpoint.addr, &template, accounts).await?;
        Ok(Fixture {
            template,
            scale,
            accounts,
            customers: Vec::new(),
            merchants: None,
        })
    }
}

/// Customers for `--scenario charges`, each with a card, a large top-up and an allowance for
/// the merchant (a few connections at once).
async fn create_customers(
    endpoint: &Endpoint,
    template: &RequestTemplate,
    merchant: &str,
    count: u64,
) -> Result<Vec<String>, HttpBenchError> {
    let workers = (SETUP_CONNECTIONS_MAX as u64).min(count).max(1);
    let mut tasks = JoinSet::new();
    for worker in 0..workers {
        let share = count / workers + u64::from(worker < count % workers);
        let template = template.clone();
        let endpoint = endpoint.clone();
        let merchant = merchant.to_string();
        tasks.spawn(async move {
            let mut connection = Connection::open(endpoint.addr).await?;
            let mut ids = Vec::new();
            for _ in 0..share {
                let c = call(&mut connection, &template, Method::POST, "/v1/customers", Some(json!({"name": "bench"})), StatusCode::CREATED)
                    .await?;
                let id = field(&c, "id", "/v1/customers")?;
                let token = RequestTemplate::new(&endpoint, &field(&c, "token", "/v1/customers")?)?;
                let leak = |p: String| -> &'static str { Box::leak(p.into_boxed_str()) };
                let pm = call(&mut connection, &token, Method::POST, leak(format!("/v1/customers/{id}/payment_methods")),
                        Some(json!({"card_number": "4242424242424242"})), StatusCode::CREATED)
                    .await?;
                let pm = field(&pm, "token", "payment_methods")?;
                call(&mut connection, &token, Method::POST, leak(format!("/v1/customers/{id}/topups")),
                        Some(json!({"amount": CHARGE_WALLET_TOPUP, "asset": ASSET_CODE, "payment_method": pm})), StatusCode::CREATED)
                    .await?;
                call(&mut connection, &token, Method::POST, leak(format!("/v1/customers/{id}/allowances")),
                        Some(json!({"merchant": merchant, "asset": ASSET_CODE, "max_per_charge": "1",
                                    "max_per_period": CHARGE_WALLET_TOPUP, "period": "month"})), StatusCode::CREATED)
                    .await?;
                ids.push(id);
            }
            Ok::<_, HttpBenchError>(ids)
        });
    }
    let mut customers = Vec::new();
    while let Some(done) = tasks.join_next().await {
        customers.extend(done.map_err(|e| HttpBenchError::Unexpected {
            what: "setup",
            body: e.to_string(),
        })??);
    }
    Ok(customers)
}

/// The scale of [`ASSET_CODE`] in a `GET /v1/assets` answer, if it exists.
fn asset_scale(list: &Value) -> Result<Option<u8>, HttpBenchError> {
    let unexpected = || HttpBenchError::Unexpected {
        what: "/v1/assets",
        body: excerpt(list.to_string().as_bytes()),
    };
    let assets = list["data"].as_array().ok_or_else(unexpected)?;
    let Some(asset) = assets.iter().find(|a| a["code"] == ASSET_CODE) else {
        return Ok(None);
    };
    let scale = asset["scale"]
        .as_u64()
        .and_then(|s| u8::try_from(s).ok())
        .filter(|s| *s <= ASSET_SCALE_MAX)
        .ok_or_else(unexpected)?;
    Ok(Some(scale))
}

/// Creates `count` unconstrained accounts over a few connections at once.
async fn create_accounts(
    addr: SocketAddr,
    template: &RequestTemplate,
    count: u64,
) -> Result<Vec<String>, HttpBenchError> {
    let workers = (SETUP_CONNECTIONS_MAX as u64).min(count);
    let mut tasks = JoinSet::new();
    for worker in 0..workers {
        let share = count / workers + u64::from(worker < count % workers);
        let template = template.clone();
        tasks.spawn(async move {
            let mut connection = Connection::open(addr).await?;
            let mut ids = Vec::new();
            for _ in 0..share {
                let account = call(
                    &mut connection,
                    &template,
                    Method::POST,
                    "/v1/accounts",
                    Some(json!({"asset": ASSET_CODE})),
                    StatusCode::CREATED,
                )
                .await?;
                ids.push(field(&account, "id", "/v1/accounts")?);
            }
            Ok::<_, HttpBenchError>(ids)
        });
    }
    let mut accounts = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let ids = joined.map_err(|e| HttpBenchError::Unexpected {
            what: "setup",
            body: e.to_string(),
        })??;
        accounts.extend(ids);
    }
    // Tasks finish in any order; sorted, the seed alone decides the workload.
    accounts.sort();
    Ok(accounts)
}

/// `minor` units of an asset with `scale` decimals, as the API writes amounts ("0.000123").
fn format_amount(minor: u64, scale: u8) -> String {
    if scale == 0 {
        return minor.to_string();
    }
    // scale <= ASSET_SCALE_MAX, so 10^scale fits a u64.
    let unit = 10u64.pow(u32::from(scale));
    format!(
        "{}.{:0width$}",
        minor / unit,
        minor % unit,
        width = usize::from(scale)
    )
}

fn push_transfer(out: &mut String, rng: &mut StdRng, accounts: &[String], scale: u8) {
    let debit = rng.gen_range(0..accounts.len());
    // Any account but the debited one: a shift of 1 to len - 1 around the list.
    let credit = (debit + rng.gen_range(1..accounts.len())) % accounts.len();
    let amount = format_amount(rng.gen_range(1..=AMOUNT_MINOR_UNITS_MAX), scale);
    for part in [
        r#"{"debit_account":""#,
        &accounts[debit],
        r#"","credit_account":""#,
        &accounts[credit],
        r#"","amount":""#,
        &amount,
        r#"","asset":""#,
        ASSET_CODE,
        r#""}"#,
    ] {
        out.push_str(part);
    }
}

/// The request bodies the load cycles through, all built before the clock starts.
fn build_bodies(scenario: Scenario, fixture: &Fixture, batch_size: usize, seed: u64) -> Vec<Bytes> {
    let mut rng = StdRng::seed_from_u64(seed);
    if scenario == Scenario::Binary {
        return build_binary_bodies(fixture, batch_size, &mut rng);
    }
    if scenario == Scenario::Charges {
        return build_charge_bodies(fixture, &mut rng);
    }
    let (bodies, per_body) = match scenario {
        Scenario::Single | Scenario::Charges => (SINGLE_BODIES, 1),
        Scenario::Batch | Scenario::Binary => (BATCH_BODIES, batch_size),
    };
    (0..bodies)
        .map(|_| {
            let mut body = String::with_capacity(per_body * TRANSFER_JSON_BYTES + 32);
            if scenario == Scenario::Batch {
                body.push_str(r#"{"transfers":["#);
            }
            for i in 0..per_body {
                if i > 0 {
                    body.push(',');
                }
                push_transfer(&mut body, &mut rng, &fixture.accounts, fixture.scale);
            }
            if scenario == Scenario::Batch {
                body.push_str("]}");
            }
            Bytes::from(body)
        })
        .collect()
}

/// Binary batch bodies (`farthing_http::wire`): the same random transfers, 64 bytes each.
fn build_binary_bodies(fixture: &Fixture, batch_size: usize, rng: &mut StdRng) -> Vec<Bytes> {
    use farthing_http::wire::{encode_request, Record};
    use farthing_products::ids::{decode_id, IdKind};
    let accounts: Vec<u128> = fixture
        .accounts
        .iter()
        .map(|a| decode_id(IdKind::Account, a).unwrap_or(0))
        .collect();
    (0..BATCH_BODIES)
        .map(|_| {
            let records: Vec<Record> = (0..batch_size)
                .map(|_| {
                    let debit = rng.gen_range(0..accounts.len());
                    let credit = (debit + rng.gen_range(1..accounts.len())) % accounts.len();
                    Record {
                        debit_account: accounts[debit],
                        credit_account: accounts[credit],
                        amount: u128::from(rng.gen_range(1..=AMOUNT_MINOR_UNITS_MAX)),
                        asset_index: 0,
                        code: 0,
                        flags: 0,
                        timeout_seconds: 0,
                        reserved_zero: true,
                    }
                })
                .collect();
            Bytes::from(encode_request(&[ASSET_CODE], &records))
        })
        .collect()
}

/// Charge bodies: a random customer, 1 to 1000 minor units, a 70/30 revenue share.
fn build_charge_bodies(fixture: &Fixture, rng: &mut StdRng) -> Vec<Bytes> {
    let Some((merchant, partner)) = &fixture.merchants else {
        return Vec::new();
    };
    (0..SINGLE_BODIES)
        .map(|_| {
            let customer = &fixture.customers[rng.gen_range(0..fixture.customers.len())];
            let amount = format_amount(rng.gen_range(1..=AMOUNT_MINOR_UNITS_MAX), fixture.scale);
            Bytes::from(
                json!({"customer": customer, "amount": amount, "asset": ASSET_CODE, "description": "bench",
                       "shares": [{"merchant": merchant, "bps": 7000}, {"merchant": partner, "bps": 3000}]})
                .to_string(),
            )
        })
        .collect()
}

/// What every connection of the load shares.
struct Load {
    addr: SocketAddr,
    /// Whole requests (head and body), cycled through.
    requests: Vec<Bytes>,
    scenario: Scenario,
    transfers_per_request: u64,
    warmup_end: Instant,
    deadline: Instant,
    requests_max: u64,
    /// Measured requests started so far, by all connections (a few past `requests_max`, one per
    /// connection that stopped on it).
    measured_started: AtomicU64,
}

impl Load {
    /// Transfers created by one answer; anything short of all of them is an error.
    fn check(&self, status: StatusCode, body: &[u8]) -> Result<u64, HttpBenchError> {
        if status != self.scenario.status_ok() {
            return Err(HttpBenchError::Status {
                method: Method::POST,
                path: self.scenario.path(),
                status,
                body: excerpt(body),
            });
        }
        match self.scenario {
            Scenario::Single | Scenario::Charges => return Ok(1),
            Scenario::Binary => return self.check_binary(body),
            Scenario::Batch => {}
        }
        // A JSON string cannot hold an unescaped quote, so these keys are found only as keys:
        // one `"index":` per result, and `"error":` only in the results that failed (transfer
        // objects have no such key). Scanning is far cheaper than parsing 3 MB of JSON.
        let results = memchr::memmem::find_iter(body, br#""index":"#).count() as u64;
        let mut errors = memchr::memmem::find_iter(body, br#""error":"#);
        let first_error = errors.next();
        let failed = u64::from(first_error.is_some()) + errors.count() as u64;
        if results != self.transfers_per_request || failed > 0 {
            let from = first_error.unwrap_or(0);
            return Err(HttpBenchError::BatchRejected {
                sent: self.transfers_per_request,
                results,
                failed,
                excerpt: excerpt(&body[from..]),
            });
        }
        Ok(self.transfers_per_request)
    }
}

impl Load {
    /// A binary answer: one result byte per transfer, all 0 (created).
    fn check_binary(&self, body: &[u8]) -> Result<u64, HttpBenchError> {
        let rejected = |results: u64, failed: u64, excerpt: String| HttpBenchError::BatchRejected {
            sent: self.transfers_per_request,
            results,
            failed,
            excerpt,
        };
        let response = farthing_http::wire::decode_response(body)
            .map_err(|e| rejected(0, self.transfers_per_request, e.to_string()))?;
        let results = response.results.len() as u64;
        let failed: Vec<u8> = response
            .results
            .iter()
            .copied()
            .filter(|c| *c != 0)
            .collect();
        if results != self.transfers_per_request || !failed.is_empty() {
            let first = failed
                .first()
                .map_or("", |c| farthing_http::wire::result_name(*c));
            return Err(rejected(results, failed.len() as u64, first.to_string()));
        }
        Ok(results)
    }
}

/// What one connection saw.
#[derive(Debug, Default)]
struct Tally {
    latencies_ns: Vec<u64>,
    warmup_requests: u64,
    measured_requests: u64,
    measured_transfers: u64,
    last_done: Option<Instant>,
    errors: u64,
    failed_transfers: u64,
    first_error: Option<String>,
    reconnects: u64,
}

impl Tally {
    fn fail(&mut self, error: &HttpBenchError, transfers_failed: u64) {
        self.errors += 1;
        self.failed_transfers += transfers_failed;
        if self.first_error.is_none() {
            self.first_error = Some(error.to_string());
        }
    }
}

/// One connection of the load: a request, its whole response, the next, until the request
/// budget or the deadline runs out.
async fn drive(load: Arc<Load>, index: usize, connections: usize) -> Tally {
    let per_connection = load.requests_max / connections as u64 + 1;
    let mut tally = Tally {
        latencies_ns: Vec::with_capacity(per_connection.min(LATENCY_SAMPLES_RESERVED_MAX) as usize),
        ..Tally::default()
    };
    let mut connection = match Connection::open(load.addr).await {
        Ok(connection) => connection,
        Err(error) => {
            tally.fail(&error.into(), 0);
            return tally;
        }
    };
    // Connections start at different bodies so that they do not all hit the same accounts.
    let mut next = index;
    loop {
        let started = Instant::now();
        if started >= load.deadline {
            break;
        }
        let measured = started >= load.warmup_end;
        if measured && load.measured_started.fetch_add(1, Ordering::Relaxed) >= load.requests_max {
            break;
        }
        let request = &load.requests[next % load.requests.len()];
        next = next.wrapping_add(1);
        let outcome = match connection
            .exchange(request, RESPONSE_BYTES_MAX, REQUEST_TIMEOUT)
            .await
        {
            Ok(response) => load.check(response.status, response.body),
            Err(error) => Err(error.into()),
        };
        let done = Instant::now();
        if measured {
            tally.measured_requests += 1;
            tally
                .latencies_ns
                .push(u64::try_from(done.duration_since(started).as_nanos()).unwrap_or(u64::MAX));
            tally.last_done = Some(done);
        } else {
            tally.warmup_requests += 1;
        }
        match outcome {
            Ok(created) if measured => tally.measured_transfers += created,
            Ok(_) => {}
            Err(error) => {
                tally.fail(&error, error.transfers_failed(load.transfers_per_request));
                if error.breaks_connection() {
                    if tally.reconnects >= RECONNECTS_MAX {
                        break;
                    }
                    tally.reconnects += 1;
                    match Connection::open(load.addr).await {
                        Ok(reopened) => connection = reopened,
                        Err(error) => {
                            tally.fail(&error.into(), 0);
                            break;
                        }
                    }
                }
            }
        }
    }
    tally
}

/// CPU time of the load generator, of the spawned server and of the whole machine at one
/// instant.
#[derive(Debug, Clone, Copy)]
struct CpuSample {
    at: Instant,
    client_s: Option<f64>,
    server_s: Option<f64>,
    machine_s: Option<f64>,
}

/// Cores kept busy during the measured phase.
#[derive(Debug, Clone, Copy, Default)]
struct CpuCores {
    client: Option<f64>,
    server: Option<f64>,
    machine: Option<f64>,
}

impl CpuSample {
    fn take(server_pid: Option<u32>) -> CpuSample {
        CpuSample {
            at: Instant::now(),
            client_s: cpu_seconds("/proc/self/stat"),
            server_s: server_pid.and_then(|pid| cpu_seconds(&format!("/proc/{pid}/stat"))),
            machine_s: machine_busy_seconds(),
        }
    }

    /// Cores kept busy between `self` and `end`.
    fn cores(&self, end: &CpuSample) -> CpuCores {
        let wall = end.at.duration_since(self.at).as_secs_f64();
        let per_wall = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if wall > 0.0 => Some((b - a) / wall),
            _ => None,
        };
        CpuCores {
            client: per_wall(self.client_s, end.client_s),
            server: per_wall(self.server_s, end.server_s),
            machine: per_wall(self.machine_s, end.machine_s),
        }
    }
}

fn clock_ticks_per_second() -> Option<f64> {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (ticks > 0).then_some(ticks as f64)
}

/// CPU seconds all cores of the machine spent busy (neither idle nor waiting for I/O), from
/// the `cpu` line of `/proc/stat`. Other work on the machine skews a benchmark that shares
/// it; this shows how much there was.
fn machine_busy_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks: Vec<u64> = stat
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    // user nice system idle iowait irq softirq steal (guest time is already within user).
    let busy: u64 = ticks.iter().take(8).sum::<u64>() - ticks.get(3)? - ticks.get(4)?;
    Some(busy as f64 / clock_ticks_per_second()?)
}

/// User plus system CPU seconds of a process, from its `/proc/PID/stat`.
fn cpu_seconds(stat_path: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(stat_path).ok()?;
    // Fields after the command name (which may hold spaces, so split at its closing
    // parenthesis): state is field 3 of proc(5), utime 14 and stime 15.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    Some((utime + stime) as f64 / clock_ticks_per_second()?)
}

/// Peak resident memory (VmHWM) of a process, in bytes.
fn peak_rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

async fn measure(
    args: &BenchArgs,
    endpoint: &Endpoint,
    key: &str,
    server_pid: Option<u32>,
) -> anyhow::Result<HttpBenchReport> {
    let fixture = Fixture::prepare(endpoint, key, args.http_accounts, args.scenario)
        .await
        .context("setting up the benchmark's asset, merchant, key and accounts")?;
    let transfers_per_request = match args.scenario {
        Scenario::Single | Scenario::Charges => 1,
        Scenario::Batch | Scenario::Binary => args.batch_size as u64,
    };
    let template = fixture
        .template
        .with_content_type(args.scenario.content_type());
    let requests = build_bodies(args.scenario, &fixture, args.batch_size, args.seed)
        .into_iter()
        .map(|body| template.build(&Method::POST, args.scenario.path(), &body))
        .collect();
    let started = Instant::now();
    let warmup_end = started + Duration::from_secs_f64(args.warmup_seconds);
    let load = Arc::new(Load {
        addr: endpoint.addr,
        requests,
        scenario: args.scenario,
        transfers_per_request,
        warmup_end,
        deadline: warmup_end + Duration::from_secs_f64(args.seconds),
        requests_max: args.requests.unwrap_or(u64::MAX),
        measured_started: AtomicU64::new(0),
    });
    let ticker = tokio::spawn(show_progress(Arc::clone(&load), args.requests));
    let start_sample = tokio::spawn(async move {
        tokio::time::sleep_until(warmup_end.into()).await;
        CpuSample::take(server_pid)
    });
    let mut connections = JoinSet::new();
    for index in 0..args.connections {
        connections.spawn(drive(Arc::clone(&load), index, args.connections));
    }
    let mut tallies = Vec::with_capacity(args.connections);
    while let Some(joined) = connections.join_next().await {
        tallies.push(joined.context("a load connection failed")?);
    }
    let end_sample = CpuSample::take(server_pid);
    ticker.abort();
    let cpu = if start_sample.is_finished() {
        start_sample.await?.cores(&end_sample)
    } else {
        start_sample.abort();
        CpuCores::default()
    };
    let measured = Measured { tallies, cpu };
    summarize(args, endpoint, &load, measured)
}

/// Shows a bar on a terminal: measured requests out of --requests, or seconds out of
/// --seconds.
async fn show_progress(load: Arc<Load>, requests: Option<u64>) {
    let (total, what) = match requests {
        Some(requests) => (requests, "requests"),
        None => (
            load.deadline
                .duration_since(load.warmup_end)
                .as_secs_f64()
                .ceil() as u64,
            "seconds",
        ),
    };
    let bar = crate::progress::bar(total, what);
    let mut tick = tokio::time::interval(Duration::from_millis(PROGRESS_TICK_MS));
    // The bar is cleared on drop, when the task is aborted at the end of the load.
    let _clear = ClearOnDrop(bar.clone());
    loop {
        tick.tick().await;
        let position = match requests {
            Some(_) => load.measured_started.load(Ordering::Relaxed),
            None => Instant::now()
                .saturating_duration_since(load.warmup_end)
                .as_secs(),
        };
        bar.set_position(position.min(total));
    }
}

struct ClearOnDrop(indicatif::ProgressBar);

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

struct Measured {
    tallies: Vec<Tally>,
    cpu: CpuCores,
}

fn summarize(
    args: &BenchArgs,
    endpoint: &Endpoint,
    load: &Load,
    measured: Measured,
) -> anyhow::Result<HttpBenchReport> {
    let tallies = &measured.tallies;
    let sum = |f: fn(&Tally) -> u64| tallies.iter().map(f).sum::<u64>();
    let errors = sum(|t| t.errors);
    let first_error = tallies.iter().find_map(|t| t.first_error.clone());
    let window = tallies
        .iter()
        .filter_map(|t| t.last_done)
        .max()
        .map(|last| {
            last.saturating_duration_since(load.warmup_end)
                .as_secs_f64()
        })
        .filter(|s| *s > 0.0);
    let Some(seconds) = window else {
        bail!(
            "no request completed after the warm-up ({errors} failed; first: {})",
            first_error.as_deref().unwrap_or("none")
        );
    };
    let mut latencies: Vec<u64> = tallies
        .iter()
        .flat_map(|t| t.latencies_ns.iter().copied())
        .collect();
    latencies.sort_unstable();
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q).round() as usize)
            .map_or(0.0, |ns| *ns as f64 / 1e6)
    };
    let requests = sum(|t| t.measured_requests);
    let transfers = sum(|t| t.measured_transfers);
    let stopped_by = if load.measured_started.load(Ordering::Relaxed) >= load.requests_max {
        "requests"
    } else {
        "time"
    };
    Ok(HttpBenchReport {
        scenario: args.scenario,
        connections: args.connections,
        client_threads: args.client_threads,
        transfers_per_request: load.transfers_per_request,
        accounts: args.http_accounts,
        server: if args.target.is_some() {
            "target"
        } else {
            "spawned"
        },
        url: endpoint.url.clone(),
        warmup_seconds: args.warmup_seconds,
        warmup_requests: sum(|t| t.warmup_requests),
        seconds,
        requests,
        transfers,
        stopped_by,
        transfers_per_second: transfers as f64 / seconds,
        requests_per_second: requests as f64 / seconds,
        latency_ms: HttpLatencyMs {
            p50: pick(0.5),
            p99: pick(0.99),
            p999: pick(0.999),
            max: pick(1.0),
        },
        errors,
        failed_transfers: sum(|t| t.failed_transfers),
        first_error,
        reconnects: sum(|t| t.reconnects),
        client_cpu_cores: measured.cpu.client,
        server_cpu_cores: measured.cpu.server,
        other_cpu_cores: match measured.cpu {
            CpuCores {
                client: Some(client),
                server: Some(server),
                machine: Some(machine),
            } => Some((machine - client - server).max(0.0)),
            _ => None,
        },
        server_peak_rss_bytes: None,
        machine: crate::bench::machine_description(),
    })
}

/// A child process killed and reaped on drop unless it was stopped cleanly.
struct ServerProcess {
    child: Child,
    stopped: bool,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if !self.stopped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `farthing serve` started by this run on a fresh data directory.
struct SpawnedServer {
    // Declared before `data` so that the process is gone before its directory is removed.
    process: ServerProcess,
    endpoint: Endpoint,
    key: String,
    data: tempfile::TempDir,
}

impl SpawnedServer {
    fn start(args: &BenchArgs) -> anyhow::Result<SpawnedServer> {
        std::fs::create_dir_all(&args.dir)
            .with_context(|| format!("creating {}", args.dir.display()))?;
        let data = tempfile::Builder::new()
            .prefix("farthing-bench-http-")
            .tempdir_in(&args.dir)?;
        let key = format!("{OPERATOR_KEY_PREFIX}bench_{:032x}", rand::random::<u128>());
        let exe = std::env::current_exe().context("finding the farthing binary")?;
        let mut command = Command::new(exe);
        command
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--rate-limit-per-second",
            ])
            .arg(SERVER_RATE_LIMIT_PER_SECOND.to_string())
            .arg("--data-dir")
            .arg(data.path())
            .env("FARTHING_ADMIN_KEY", &key)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        // Quiet unless asked otherwise: the server's info lines would mix with the report.
        if std::env::var_os("RUST_LOG").is_none() {
            command.env("RUST_LOG", "warn");
        }
        let mut process = ServerProcess {
            child: command.spawn().context("spawning farthing serve")?,
            stopped: false,
        };
        let stdout = process
            .child
            .stdout
            .take()
            .context("farthing serve has no stdout")?;
        let url = wait_for_listening(stdout)?;
        let endpoint = Endpoint::parse(&url)?;
        Ok(SpawnedServer {
            process,
            endpoint,
            key,
            data,
        })
    }

    /// SIGTERM, then waits for a clean exit (the server flushes the ledger first).
    fn stop(mut self, keep: bool) -> anyhow::Result<()> {
        let pid = libc::pid_t::try_from(self.process.child.id()).context("server pid")?;
        // SAFETY: kill(2) on our own child, not yet reaped, so the pid names no other process.
        let sent = unsafe { libc::kill(pid, libc::SIGTERM) };
        ensure!(
            sent == 0,
            "SIGTERM to farthing serve: {}",
            std::io::Error::last_os_error()
        );
        let deadline = Instant::now() + Duration::from_secs(SERVER_STOP_TIMEOUT_S);
        let status = loop {
            if let Some(status) = self.process.child.try_wait()? {
                break status;
            }
            ensure!(
                Instant::now() < deadline,
                "farthing serve did not stop within {SERVER_STOP_TIMEOUT_S} s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(SERVER_STOP_POLL_MS));
        };
        self.process.stopped = true;
        ensure!(
            status.success(),
            "farthing serve exited with {status} after SIGTERM"
        );
        if keep {
            let kept = self.data.keep();
            eprintln!("data kept in {}", kept.display());
        }
        Ok(())
    }
}

/// Reads the server's stdout until it says where it listens; keeps draining it afterwards so
/// that the server never blocks on a full pipe.
fn wait_for_listening(stdout: std::process::ChildStdout) -> anyhow::Result<String> {
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // Once the address is found nobody listens; the lines are dropped.
            let _ = lines_tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(SERVER_START_TIMEOUT_S);
    loop {
        let line = lines_rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .map_err(|e| match e {
                std::sync::mpsc::RecvTimeoutError::Timeout => anyhow::anyhow!(
                    "farthing serve did not listen within {SERVER_START_TIMEOUT_S} s"
                ),
                std::sync::mpsc::RecvTimeoutError::Disconnected => {
                    anyhow::anyhow!("farthing serve exited before listening")
                }
            })?;
        if let Some(url) = line.strip_prefix("farthing listening on ") {
            return Ok(url.trim().to_string());
        }
    }
}

fn print_table(r: &HttpBenchReport) {
    let what = match r.scenario {
        Scenario::Single => "single transfers (POST /v1/transfers)".to_string(),
        Scenario::Charges => "wallet charges with a fee split (POST /v1/charges)".to_string(),
        Scenario::Batch => format!(
            "batches of {} (POST /v1/transfers/batch, JSON)",
            r.transfers_per_request
        ),
        Scenario::Binary => format!(
            "batches of {} (POST /v1/transfers/batch, binary encoding)",
            r.transfers_per_request
        ),
    };
    println!(
        "farthing bench --http: {what}, {} connections, {} accounts, {} server at {}",
        r.connections, r.accounts, r.server, r.url
    );
    println!("  machine        {}", r.machine);
    println!(
        "  load generator {} thread{} on the same machine, closed loop (one request in flight per connection)",
        r.client_threads,
        if r.client_threads == 1 { "" } else { "s" }
    );
    println!(
        "  warm-up        first {:.1} s left out ({} requests)",
        r.warmup_seconds, r.warmup_requests
    );
    println!(
        "  measured       {} requests, {} transfers in {:.2} s (stopped by {})",
        r.requests, r.transfers, r.seconds, r.stopped_by
    );
    println!(
        "  throughput     {:>12.0} transfers/s  {:>10.0} requests/s",
        r.transfers_per_second, r.requests_per_second
    );
    let l = &r.latency_ms;
    println!(
        "  latency        p50 {:.3} ms   p99 {:.3} ms   p999 {:.3} ms   max {:.3} ms (per request)",
        l.p50, l.p99, l.p999, l.max
    );
    println!(
        "  errors         {} requests, {} transfers not created{}",
        r.errors,
        r.failed_transfers,
        r.first_error
            .as_ref()
            .map_or(String::new(), |e| format!("; first: {e}"))
    );
    let cores = |c: Option<f64>| c.map_or("?".to_string(), |c| format!("{c:.2}"));
    println!(
        "  CPU            server {} cores, load generator {} cores, other processes {} cores",
        cores(r.server_cpu_cores),
        cores(r.client_cpu_cores),
        cores(r.other_cpu_cores)
    );
    if let Some(rss) = r.server_peak_rss_bytes {
        println!(
            "  server RSS     {:.1} MiB peak",
            rss as f64 / (1 << 20) as f64
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_written_with_the_asset_scale() {
        let check =
            |minor, scale, expected: &str| assert_eq!(format_amount(minor, scale), expected);
        check(123, 6, "0.000123");
        check(1000, 6, "0.001000");
        check(1_234_567, 6, "1.234567");
        check(42, 0, "42");
        check(5, 2, "0.05");
    }

    #[test]
    fn target_must_be_plain_http_on_loopback() {
        assert!(Endpoint::parse("http://127.0.0.1:8080").is_ok());
        assert!(Endpoint::parse("http://127.0.0.1:8080/").is_ok());
        assert!(matches!(
            Endpoint::parse("https://127.0.0.1:8080"),
            Err(HttpBenchError::TargetInvalid(_))
        ));
        assert!(matches!(
            Endpoint::parse("http://127.0.0.1:8080/v1"),
            Err(HttpBenchError::TargetInvalid(_))
        ));
        assert!(matches!(
            Endpoint::parse("http://192.0.2.1:8080"),
            Err(HttpBenchError::TargetNotLoopback(_))
        ));
    }
}
