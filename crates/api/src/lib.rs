//! `farthing serve`: the HTTP API over the embedded engine.
//!
//! [`serve`] opens the [`farthing_engine::Engine`] and the metadata [`store::Store`] in the
//! data directory, bootstraps an operator key, and serves the v1 routes ([`routes`]) with
//! API-key auth and tenant isolation ([`app::Principal`]), exact decimal amounts ([`money`]),
//! prefixed ids ([`ids`]), Stripe-style errors ([`error::ApiError`]) and idempotency.

pub mod app;
pub mod config;
pub mod error;
pub mod ids;
pub mod journal;
pub mod money;
pub mod openapi;
pub mod products;
pub mod routes;
pub mod store;
pub mod strict;
pub mod webhooks;
pub mod wire;

use foldhash::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{delete, get, post};
use axum::serve::ListenerExt;
use axum::Router;
use farthing_engine::{Config as EngineConfig, Engine};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::app::{AppState, SharedState};
use crate::config::ServeConfig;
use crate::store::{Changes, Scope, Store};

/// Every route of the API.
pub fn router(state: SharedState) -> Router {
    use routes::{
        accounts, assets, campaigns, charges, customers, disputes, health, holds, keys, ledger,
        merchants, payouts, reports, subscriptions, tabs, transfers, webhooks,
    };
    let body_limit = state.limits.request_body_bytes_max;
    let timeout = Duration::from_millis(state.limits.request_timeout_ms);
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/v1/openapi.json", get(openapi::document))
        .route("/v1/merchants", post(merchants::create))
        .route("/v1/merchants/{id}", get(merchants::get))
        .route("/v1/api_keys", post(keys::create).get(keys::list))
        .route("/v1/api_keys/{id}", delete(keys::revoke))
        .route("/v1/assets", post(assets::create).get(assets::list))
        .route("/v1/accounts", post(accounts::create).get(accounts::list))
        .route("/v1/accounts/{id}", get(accounts::get))
        .route("/v1/accounts/{id}/transfers", get(transfers::history))
        .route("/v1/transfers", post(transfers::create))
        .route("/v1/transfers/batch", post(transfers::batch))
        .route("/v1/transfers/{id}", get(transfers::get))
        .route("/v1/transfers/{id}/post", post(transfers::post_hold))
        .route("/v1/transfers/{id}/void", post(transfers::void_hold))
        .route("/v1/customers", post(customers::create))
        .route("/v1/customers/{id}", get(customers::get))
        .route(
            "/v1/customers/{id}/payment_methods",
            post(customers::add_payment_method),
        )
        .route("/v1/customers/{id}/wallets/{asset}", get(customers::wallet))
        .route("/v1/customers/{id}/topups", post(customers::topup))
        .route(
            "/v1/customers/{id}/auto_topup",
            post(customers::set_auto_topup),
        )
        .route(
            "/v1/customers/{id}/allowances",
            post(customers::create_allowance).get(customers::list_allowances),
        )
        .route(
            "/v1/allowances/{id}/revoke",
            post(customers::revoke_allowance),
        )
        .route("/v1/merchants/{id}/fee_plan", post(charges::set_fee_plan))
        .route(
            "/v1/merchants/{id}/payout_settings",
            post(payouts::set_settings),
        )
        .route("/v1/merchants/{id}/balance", get(payouts::balance))
        .route(
            "/v1/merchants/{id}/payouts",
            post(payouts::create).get(payouts::list),
        )
        .route("/v1/charges", post(charges::create))
        .route("/v1/charges/{id}", get(charges::get))
        .route("/v1/charges/{id}/confirm", post(charges::confirm))
        .route("/v1/charges/{id}/refunds", post(charges::refund))
        .route("/v1/tips", post(charges::tip))
        .route("/v1/holds", post(holds::create))
        .route("/v1/plans", post(subscriptions::create_plan))
        .route("/v1/subscriptions", post(subscriptions::subscribe))
        .route("/v1/subscriptions/{id}", get(subscriptions::get))
        .route("/v1/subscriptions/{id}/pause", post(subscriptions::pause))
        .route("/v1/subscriptions/{id}/resume", post(subscriptions::resume))
        .route("/v1/subscriptions/{id}/cancel", post(subscriptions::cancel))
        .route("/v1/campaigns", post(campaigns::create))
        .route("/v1/campaigns/{id}", get(campaigns::get))
        .route(
            "/v1/campaigns/{id}/contributions",
            post(campaigns::contribute),
        )
        .route(
            "/v1/campaigns/{id}/contributions/{contribution}",
            get(campaigns::get_contribution),
        )
        .route("/v1/holds/{id}", get(holds::get))
        .route("/v1/holds/{id}/capture", post(holds::capture))
        .route("/v1/holds/{id}/release", post(holds::release))
        .route("/v1/reports/fees", get(reports::fees))
        .route("/v1/customers/{id}/tabs", post(tabs::create))
        .route("/v1/tabs/{id}", get(tabs::get))
        .route(
            "/v1/tabs/{id}/payment_method",
            post(tabs::set_payment_method),
        )
        .route("/v1/test_clock/advance", post(tabs::advance_clock))
        .route("/v1/disputes", post(disputes::create))
        .route("/v1/ledger/summary", get(ledger::summary))
        .route(
            "/v1/webhook_endpoints",
            post(webhooks::create).get(webhooks::list),
        )
        .route(
            "/v1/webhook_endpoints/{id}",
            get(webhooks::get)
                .post(webhooks::change)
                .delete(webhooks::delete),
        )
        .route(
            "/v1/webhook_endpoints/{id}/rotate_secret",
            post(webhooks::rotate_secret),
        )
        .route(
            "/v1/webhook_endpoints/{id}/attempts",
            get(webhooks::attempts),
        )
        .route(
            "/v1/webhook_endpoints/{id}/deliveries/{event}",
            get(webhooks::delivery),
        )
        .route(
            "/v1/webhook_endpoints/{id}/redeliver",
            post(webhooks::redeliver),
        )
        .route("/v1/events/{id}", get(webhooks::event))
        .fallback(|| async { error::ApiError::not_found(None, "route") })
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(middleware::from_fn(observe))
        .with_state(state)
}

/// Request ids and per-route metrics for every request.
/// The request counter and latency histogram of one (route, method, status), registered once:
/// building metric keys from label strings on every request cost more than the rest of the
/// middleware.
type RouteMetrics = (metrics::Counter, metrics::Histogram);

#[allow(clippy::type_complexity)]
static ROUTE_METRICS: std::sync::LazyLock<
    parking_lot::RwLock<HashMap<String, HashMap<(axum::http::Method, u16), RouteMetrics>>>,
> = std::sync::LazyLock::new(Default::default);

fn route_metrics(route: &str, method: &axum::http::Method, status: u16) -> RouteMetrics {
    if let Some(m) = ROUTE_METRICS
        .read()
        .get(route)
        .and_then(|by| by.get(&(method.clone(), status)))
    {
        return m.clone();
    }
    let m = (
        metrics::counter!("farthing_http_requests_total", "route" => route.to_string(), "method" => method.as_str().to_string(), "status" => status.to_string()),
        metrics::histogram!("farthing_http_request_duration_seconds", "route" => route.to_string(), "method" => method.as_str().to_string()),
    );
    ROUTE_METRICS
        .write()
        .entry(route.to_string())
        .or_default()
        .insert((method.clone(), status), m.clone());
    m
}

async fn observe(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let method = request.method().clone();
    let request_id = request
        .headers()
        .get("request-id")
        .filter(|v| v.len() <= 200 && v.to_str().is_ok())
        .cloned()
        .unwrap_or_else(new_request_id);
    let mut response = next.run(request).await;
    let (requests, latency) = route_metrics(
        route.as_ref().map_or("unmatched", |p| p.as_str()),
        &method,
        response.status().as_u16(),
    );
    requests.increment(1);
    latency.record(started.elapsed().as_secs_f64());
    response.headers_mut().insert("request-id", request_id);
    response
}

/// `req_` and 32 random hex digits, built without the formatting machinery (every request
/// without its own id gets one).
fn new_request_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = *b"req_00000000000000000000000000000000";
    let random = rand::random::<u128>();
    for (i, digit) in text[4..].iter_mut().enumerate() {
        *digit = HEX[((random >> (124 - 4 * i)) & 0xf) as usize];
    }
    HeaderValue::from_bytes(&text).unwrap_or_else(|_| HeaderValue::from_static("req_unknown"))
}

fn install_metrics() -> anyhow::Result<PrometheusHandle> {
    // From 10 µs: the engine's stages (queue wait, apply, log wait) are often shorter than
    // 100 µs.
    let latency_buckets = [
        0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
        0.05, 0.1, 0.25, 1.0, 5.0,
    ];
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("seconds".into()), &latency_buckets)?
        .set_buckets_for_metric(
            Matcher::Full("farthing_engine_commit_events".into()),
            &[1.0, 8.0, 64.0, 512.0, 4096.0, 8190.0, 32760.0],
        )?;
    Ok(builder.install_recorder()?)
}

/// Runs the server until SIGTERM or SIGINT, then finishes in-flight requests, flushes the
/// engine and returns.
pub async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    // Before the engine opens: its threads take their metric handles when they start.
    let metrics = install_metrics()?;
    let engine = Arc::new(Engine::open(EngineConfig::new(&config.data_dir))?);
    let store = Arc::new(Store::open(&config.data_dir)?);
    let journal = journal::Journal::start(
        &engine,
        Arc::clone(&store),
        products::records::JOURNAL_TABLES,
    )?;
    println!(
        "recovered: {} log batches replayed, {} journal notes re-applied",
        engine.recovery().replayed_batches,
        journal.replayed()
    );
    let mut products = products::Products::new(Arc::clone(&store), journal, config.test_clock)?;
    products.webhook_addresses = config.webhook_addresses;
    let state = Arc::new(AppState::new(
        engine,
        store,
        config.admin_key.as_deref(),
        config.limits(),
        metrics,
        products,
    )?);
    if !state.has_operator_key() {
        let (record, secret) = routes::keys::issue_key(Scope::Operator, None);
        state
            .commit(Changes {
                api_key: Some(record.clone()),
                ..Changes::default()
            })
            .await
            .map_err(|e| anyhow::anyhow!("storing the operator key: {}", e.message))?;
        state.remember_key(record);
        println!("operator API key (shown once, store it now): {secret}");
    }
    tokio::spawn(products::scheduler::drive(Arc::downgrade(&state)));
    tokio::spawn(webhooks::delivery::run(
        Arc::downgrade(&state),
        config.webhook_addresses,
    ));
    tokio::spawn(prune_idempotency_records(
        Arc::clone(&state.store),
        config.idempotency_retention_hours,
    ));
    let app = router(Arc::clone(&state));
    match &config.tls {
        None => {
            let listener = tokio::net::TcpListener::bind(&config.listen).await?;
            announce("http", listener.local_addr()?)?;
            // No Nagle delay: a response must leave as soon as it is written, whatever is in
            // flight (small writes behind an unacknowledged one would wait for a delayed ACK).
            let listener = listener.tap_io(|stream| {
                if let Err(error) = stream.set_nodelay(true) {
                    tracing::debug!(%error, "cannot set TCP_NODELAY on a connection");
                }
            });
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown_signal())
                .await?;
        }
        Some((cert, key)) => {
            // One process-wide crypto provider; a second install attempt is harmless.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "TLS certificate {} / key {}: {e}",
                        cert.display(),
                        key.display()
                    )
                })?;
            let listener = std::net::TcpListener::bind(&config.listen)?;
            listener.set_nonblocking(true)?;
            announce("https", listener.local_addr()?)?;
            let handle = axum_server::Handle::new();
            let stopper = handle.clone();
            tokio::spawn(async move {
                shutdown_signal().await;
                stopper.graceful_shutdown(Some(Duration::from_millis(SHUTDOWN_GRACE_MS)));
            });
            axum_server::from_tcp_rustls(listener, tls)?
                .handle(handle)
                .serve(app.into_make_service())
                .await?;
        }
    }
    tracing::info!("stopped accepting; flushing the ledger");
    // The router (and its clones of the state) are gone; dropping the last reference stops
    // the engine after every queued batch is durable.
    match Arc::try_unwrap(state) {
        Ok(state) => drop(state),
        Err(_) => {
            tracing::warn!("state still shared at shutdown; the engine stops when it is dropped")
        }
    }
    println!("farthing stopped");
    Ok(())
}

/// How often stored idempotency responses past their retention are deleted, and how many one
/// write transaction deletes.
const IDEMPOTENCY_PRUNE_INTERVAL_S: u64 = 600;
const IDEMPOTENCY_PRUNE_BATCH: usize = 10_000;

/// Deletes stored Idempotency-Key responses older than the retention, forever (the task ends
/// with the runtime). It holds only the store, so shutdown can still drop the engine.
async fn prune_idempotency_records(store: Arc<Store>, retention_hours: u64) {
    let mut tick = tokio::time::interval(Duration::from_secs(IDEMPOTENCY_PRUNE_INTERVAL_S));
    loop {
        tick.tick().await;
        let retention_ns = retention_hours.saturating_mul(3_600_000_000_000);
        let cutoff = app::now_ns().saturating_sub(retention_ns);
        loop {
            let store = Arc::clone(&store);
            let pruned = tokio::task::spawn_blocking(move || {
                store.prune_idempotency(cutoff, IDEMPOTENCY_PRUNE_BATCH)
            })
            .await;
            match pruned {
                Ok(Ok(n)) if n == IDEMPOTENCY_PRUNE_BATCH => continue,
                Ok(Ok(n)) => {
                    if n > 0 {
                        tracing::info!(pruned = n, "expired idempotency records deleted");
                    }
                    break;
                }
                Ok(Err(error)) => {
                    tracing::warn!(%error, "pruning idempotency records failed; retrying later");
                    break;
                }
                Err(error) => {
                    tracing::warn!(%error, "pruning task failed; retrying later");
                    break;
                }
            }
        }
    }
}

/// How long in-flight requests may take to finish after SIGTERM over TLS.
const SHUTDOWN_GRACE_MS: u64 = 30_000;

/// Prints the address line that scripts and tests wait for.
fn announce(scheme: &str, address: std::net::SocketAddr) -> anyhow::Result<()> {
    use std::io::Write;
    println!("farthing listening on {scheme}://{address}");
    std::io::stdout().flush()?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
