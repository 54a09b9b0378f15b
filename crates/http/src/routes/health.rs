//! `/healthz` (the process answers), `/readyz` (the engine accepts writes), `/metrics`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;

use farthing_service::ledger::{metrics_text, readiness};
use farthing_service::state::SharedState;

#[utoipa::path(get, path = "/healthz", operation_id = "healthz.get", tag = "operations", security(()), responses((status = 200, description = "the process is up", body = String, content_type = "text/plain")))]
pub async fn healthz() -> &'static str {
    "ok"
}

#[utoipa::path(get, path = "/readyz", operation_id = "readyz.get", tag = "operations", security(()), responses((status = 200, description = "the engine accepts writes", body = String, content_type = "text/plain"), (status = 503, description = "the engine halted", body = String, content_type = "text/plain")))]
pub async fn readyz(State(state): State<SharedState>) -> impl IntoResponse {
    match readiness(&state) {
        Ok(()) => (StatusCode::OK, "ready".to_string()),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}"),
        ),
    }
}

#[utoipa::path(get, path = "/metrics", operation_id = "metrics.get", tag = "operations", security(()), responses((status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain")))]
pub async fn metrics(State(state): State<SharedState>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        metrics_text(&state),
    )
}
