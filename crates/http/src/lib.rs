//! farthing's HTTP API: the v1 routes ([`routes`]) over the service layer
//! (`farthing-service`), with API-key auth ([`extract::Key`], [`extract::Caller`]), bodies
//! whose errors name the field ([`extract::ApiJson`], [`strict`]), Stripe-style errors
//! ([`error::ApiError`], the one mapping from `ServiceError`), the OpenAPI document
//! ([`openapi`]), the binary batch encoding ([`wire`]) and the server loop ([`run`],
//! [`server`]). `farthing serve` (in the binary) wires it to the engine and the store.
//!
//! **Architecture Invariant:** this crate depends on the service, the pure product rules and
//! the ledger's types only, never on the store or the engine: a handler parses, calls the
//! service and renders (`tests/layers.rs` reads the manifest).

pub mod cors;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod openapi;
pub mod routes;
pub mod server;
pub mod strict;
pub mod unread_body;
pub mod wire;

use foldhash::HashMap;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::handler::Handler;
use axum::http::HeaderValue;
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{self, MethodRouter};
use axum::Router;

use farthing_service::state::SharedState;

/// Every route of the API: the route table ([`api_routes`]) behind the request limits and the
/// metrics middleware.
pub fn router(state: SharedState) -> Router {
    let body_limit = state.limits.request_body_bytes_max;
    let timeout = Duration::from_millis(state.limits.request_timeout_ms);
    api_routes()
        .router
        .fallback(|| async { error::ApiError::not_found(None, "route") })
        // A known path with another method: 405 with the error object (axum keeps the `Allow`
        // header it computes).
        .method_not_allowed_fallback(|| async {
            error::ApiError {
                status: axum::http::StatusCode::METHOD_NOT_ALLOWED,
                ..error::ApiError::invalid(
                    "method",
                    "method_not_allowed",
                    "this path does not take that method (see the Allow header)",
                )
            }
        })
        // Inside the body limit and the timeout, after routing: every POST route, and only routes.
        .route_layer(idempotency::IdempotencyLayer {
            state: state.clone(),
        })
        // Outside the Idempotency-Key layer: a preflight is answered before it.
        .route_layer(middleware::from_fn_with_state(state.clone(), cors::cors))
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(middleware::from_fn(observe))
        .with_state(state)
}

/// The route table: each (method, path) once, with its handler. The OpenAPI test reads the same
/// table, so the document is compared with what the server serves rather than with a copy.
pub(crate) fn api_routes() -> RouteTable {
    use routes::{
        accounts, assets, campaigns, charges, customers, disputes, entitlements, health, holds,
        keys, ledger, lists, merchants, offers, payouts, reports, subscriptions, tabs, transfers,
        webhooks,
    };
    RouteTable::default()
        .get("/healthz", health::healthz)
        .get("/readyz", health::readyz)
        .get("/metrics", health::metrics)
        .get("/v1/openapi.json", openapi::document)
        .post("/v1/merchants", merchants::create)
        .get("/v1/merchants/{id}", merchants::get)
        .post("/v1/api_keys", keys::create)
        .get("/v1/api_keys", keys::list)
        .delete("/v1/api_keys/{id}", keys::revoke)
        .post("/v1/assets", assets::create)
        .get("/v1/assets", assets::list)
        .post("/v1/accounts", accounts::create)
        .get("/v1/accounts", accounts::list)
        .get("/v1/accounts/{id}", accounts::get)
        .get("/v1/accounts/{id}/transfers", transfers::history)
        .post("/v1/transfers", transfers::create)
        .post("/v1/transfers/batch", transfers::batch)
        .get("/v1/transfers/{id}", transfers::get)
        .post("/v1/transfers/{id}/post", transfers::post_hold)
        .post("/v1/transfers/{id}/void", transfers::void_hold)
        .post("/v1/customers", customers::create)
        .get("/v1/customers/{id}", customers::get)
        .post(
            "/v1/customers/{id}/payment_methods",
            customers::add_payment_method,
        )
        .get("/v1/customers/{id}/wallets/{asset}", customers::wallet)
        .post("/v1/customers/{id}/topups", customers::topup)
        .post("/v1/customers/{id}/auto_topup", customers::set_auto_topup)
        .post("/v1/customers/{id}/allowances", customers::create_allowance)
        .get("/v1/customers/{id}/allowances", customers::list_allowances)
        .post("/v1/allowances/{id}/revoke", customers::revoke_allowance)
        .post("/v1/merchants/{id}/fee_plan", charges::set_fee_plan)
        .post("/v1/merchants/{id}/payout_settings", payouts::set_settings)
        .get("/v1/merchants/{id}/balance", payouts::balance)
        .post("/v1/merchants/{id}/payouts", payouts::create)
        .get("/v1/merchants/{id}/payouts", payouts::list)
        .post("/v1/charges", charges::create)
        .get("/v1/charges/{id}", charges::get)
        .post("/v1/charges/{id}/confirm", charges::confirm)
        .post("/v1/charges/{id}/refunds", charges::refund)
        .post("/v1/tips", charges::tip)
        .post("/v1/holds", holds::create)
        .post("/v1/plans", subscriptions::create_plan)
        .post("/v1/subscriptions", subscriptions::subscribe)
        .get("/v1/subscriptions/{id}", subscriptions::get)
        .post("/v1/subscriptions/{id}/pause", subscriptions::pause)
        .post("/v1/subscriptions/{id}/resume", subscriptions::resume)
        .post("/v1/subscriptions/{id}/cancel", subscriptions::cancel)
        .post("/v1/campaigns", campaigns::create)
        .get("/v1/campaigns/{id}", campaigns::get)
        .post("/v1/campaigns/{id}/contributions", campaigns::contribute)
        .get(
            "/v1/campaigns/{id}/contributions/{contribution}",
            campaigns::get_contribution,
        )
        .get("/v1/holds/{id}", holds::get)
        .post("/v1/holds/{id}/capture", holds::capture)
        .post("/v1/holds/{id}/release", holds::release)
        .get("/v1/reports/fees", reports::fees)
        .post("/v1/customers/{id}/tabs", tabs::create)
        .get("/v1/tabs/{id}", tabs::get)
        .post("/v1/tabs/{id}/payment_method", tabs::set_payment_method)
        .get("/v1/test_clock", tabs::clock)
        .post("/v1/test_clock/advance", tabs::advance_clock)
        .post("/v1/disputes", disputes::create)
        .get("/v1/ledger/summary", ledger::summary)
        .post("/v1/webhook_endpoints", webhooks::create)
        .get("/v1/webhook_endpoints", webhooks::list)
        .get("/v1/webhook_endpoints/{id}", webhooks::get)
        .post("/v1/webhook_endpoints/{id}", webhooks::change)
        .delete("/v1/webhook_endpoints/{id}", webhooks::delete)
        .post(
            "/v1/webhook_endpoints/{id}/rotate_secret",
            webhooks::rotate_secret,
        )
        .get("/v1/webhook_endpoints/{id}/attempts", webhooks::attempts)
        .get(
            "/v1/webhook_endpoints/{id}/deliveries/{event}",
            webhooks::delivery,
        )
        .post("/v1/webhook_endpoints/{id}/redeliver", webhooks::redeliver)
        .get("/v1/events/{id}", webhooks::event)
        .get("/v1/events", lists::events)
        .get("/v1/customers", lists::customers)
        .get("/v1/charges", lists::charges)
        .get("/v1/holds", lists::holds)
        .get("/v1/subscriptions", lists::subscriptions)
        .get("/v1/campaigns", lists::campaigns)
        .get("/v1/tabs", lists::tabs)
        .get("/v1/transfers", lists::transfers)
        .get("/v1/plans/{id}", lists::plan)
        .get("/v1/disputes/{id}", lists::dispute)
        .get("/v1/topups/{id}", lists::topup)
        .get("/v1/refunds/{id}", lists::refund)
        .get("/v1/allowances/{id}", lists::allowance)
        .post("/v1/offers", offers::create)
        .get("/v1/offers", offers::list)
        .get("/v1/offers/{id}", offers::get)
        .post("/v1/offers/{id}/archive", offers::archive)
        .post("/v1/offers/{id}/purchase", offers::purchase)
        .get("/v1/entitlements", entitlements::check)
        .post("/v1/entitlements/verify", entitlements::verify)
        .post("/v1/signing_keys/rotate", entitlements::rotate)
        .get("/.well-known/jwks.json", entitlements::jwks)
}

/// One route the server serves: its method and its path (`{name}` for a parameter, as in the
/// OpenAPI document).
pub(crate) type Route = (Method, &'static str);

/// A router under construction that also records the (method, path) of every route added to it
/// (axum's [`Router`] cannot list its routes). Routes sharing a path are merged by axum into one
/// method router, as `get(a).post(b)` would be.
#[derive(Default)]
pub(crate) struct RouteTable {
    router: Router<SharedState>,
    served: Vec<Route>,
}

impl RouteTable {
    fn get<H: Handler<T, SharedState>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.add(Method::GET, path, routing::get(handler))
    }

    fn post<H: Handler<T, SharedState>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.add(Method::POST, path, routing::post(handler))
    }

    fn delete<H: Handler<T, SharedState>, T: 'static>(
        self,
        path: &'static str,
        handler: H,
    ) -> Self {
        self.add(Method::DELETE, path, routing::delete(handler))
    }

    fn add(mut self, method: Method, path: &'static str, route: MethodRouter<SharedState>) -> Self {
        self.served.push((method, path));
        self.router = self.router.route(path, route);
        self
    }

    /// Every (method, path) in the table, in the order added.
    #[cfg(test)]
    pub(crate) fn served(&self) -> &[Route] {
        &self.served
    }
}

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

/// The access log's target: `RUST_LOG=farthing_http::access=off` silences it alone.
const ACCESS_LOG_TARGET: &str = "farthing_http::access";

/// The longest path an access log line repeats, in bytes; longer ones end in `…`.
const ACCESS_LOG_PATH_BYTES_MAX: usize = 256;

/// Request ids, per-route metrics and one access log line (at info) for every request.
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
    // The path only, copied only when the line is wanted: the query string may carry what
    // does not belong in a log, and headers (Authorization) never do.
    let path = tracing::enabled!(target: ACCESS_LOG_TARGET, tracing::Level::INFO)
        .then(|| logged_path(request.uri().path()));
    let (request, mark_unread_body) = unread_body::watch(request);
    let mut response = next.run(request).await;
    if response.status() == axum::http::StatusCode::REQUEST_TIMEOUT
        && http_body::Body::size_hint(response.body()).exact() == Some(0)
    {
        // The timeout layer answers with an empty body; every error carries the error object.
        response = axum::response::IntoResponse::into_response(error::ApiError {
            status: axum::http::StatusCode::REQUEST_TIMEOUT,
            ..error::ApiError::invalid(
                "body",
                "request_timeout",
                "the request was not received and answered within the request timeout",
            )
        });
    }
    mark_unread_body(&mut response);
    let status = response.status().as_u16();
    let (requests, latency) = route_metrics(
        route.as_ref().map_or("unmatched", |p| p.as_str()),
        &method,
        status,
    );
    let elapsed = started.elapsed();
    requests.increment(1);
    latency.record(elapsed.as_secs_f64());
    if let Some(path) = path {
        tracing::info!(
            target: ACCESS_LOG_TARGET,
            method = %method,
            path = %path,
            status,
            duration_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            // The client's own text (checked to be visible ASCII) or ours; quoted, so that a
            // client cannot write fields of its own into the line.
            request_id = request_id.to_str().unwrap_or_default(),
            "request"
        );
    }
    response.headers_mut().insert("request-id", request_id);
    response
}

/// `path`, cut to [`ACCESS_LOG_PATH_BYTES_MAX`] at a character boundary.
fn logged_path(path: &str) -> String {
    if path.len() <= ACCESS_LOG_PATH_BYTES_MAX {
        return path.to_owned();
    }
    let mut end = ACCESS_LOG_PATH_BYTES_MAX;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &path[..end])
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

/// Serves the API on `listener` (over TLS when `tls` is given) until SIGTERM or SIGINT, then
/// lets in-flight requests finish. Prints the address line scripts wait for once it accepts.
pub async fn run(
    listener: tokio::net::TcpListener,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
    state: SharedState,
) -> anyhow::Result<()> {
    // A client gets as long to send its request head as a handler gets to answer; one that
    // sends its headers slower than that (slowloris) is disconnected.
    let header_read_timeout = Duration::from_millis(state.limits.request_timeout_ms);
    let app = router(state);
    match tls {
        None => {
            let shutdown = shutdown_signal()?;
            announce("http", listener.local_addr()?)?;
            server::serve(listener, app, header_read_timeout, shutdown).await;
        }
        Some(tls) => {
            // Non-blocking, as axum-server needs it.
            let listener = listener.into_std()?;
            let shutdown = shutdown_signal()?;
            announce("https", listener.local_addr()?)?;
            let handle = axum_server::Handle::new();
            let stopper = handle.clone();
            tokio::spawn(async move {
                shutdown.await;
                stopper.graceful_shutdown(Some(Duration::from_millis(SHUTDOWN_GRACE_MS)));
            });
            let mut server = axum_server::from_tcp_rustls(listener, tls)?.handle(handle);
            server::limit_header_reads(server.http_builder(), header_read_timeout);
            server.serve(app.into_make_service()).await?;
        }
    }
    Ok(())
}

/// Reads the certificate chain and key, so that a missing or bad file fails the start before
/// anything is written.
pub async fn load_tls(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> anyhow::Result<axum_server::tls_rustls::RustlsConfig> {
    // One process-wide crypto provider; a second install attempt is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "TLS certificate {} / key {}: {e}",
                cert.display(),
                key.display()
            )
        })
}

/// Pending connections the kernel queues before the server accepts them (tokio's default).
pub const LISTEN_BACKLOG: u32 = 1024;

/// Takes the listen address without accepting connections yet: a taken port or a bad address
/// fails the start here, before the data directory is opened, and no client connects to a
/// server still recovering. [`tokio::net::TcpSocket::listen`] starts accepting.
pub async fn bind(listen: &str) -> anyhow::Result<tokio::net::TcpSocket> {
    let cannot = |error: std::io::Error| anyhow::anyhow!("cannot listen on {listen}: {error}");
    let mut last_error = None;
    for address in tokio::net::lookup_host(listen).await.map_err(cannot)? {
        match bind_address(address) {
            Ok(socket) => return Ok(socket),
            Err(error) => last_error = Some(error),
        }
    }
    Err(cannot(last_error.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::AddrNotAvailable,
            "the name resolves to no address",
        )
    })))
}

fn bind_address(address: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpSocket> {
    let socket = if address.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As std's and tokio's own `bind` do: a restart may take the port while connections of
    // the previous process linger in TIME_WAIT. A port another socket listens on stays refused.
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    Ok(socket)
}

/// How long in-flight requests may take to finish after SIGTERM over TLS.
pub const SHUTDOWN_GRACE_MS: u64 = 30_000;

/// Prints the address line that scripts and tests wait for.
fn announce(scheme: &str, address: std::net::SocketAddr) -> anyhow::Result<()> {
    use std::io::Write;
    println!("farthing listening on {scheme}://{address}");
    std::io::stdout().flush()?;
    Ok(())
}

/// SIGTERM or SIGINT, as a future. The handlers are installed when this is called, not when
/// the future is first polled: a signal that arrives between the address line and the first
/// poll must stop the server gracefully, not kill it (the default action).
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {},
            _ = interrupt.recv() => {},
        }
    })
}
