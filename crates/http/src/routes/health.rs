//! `/healthz` (the process answers), `/readyz` (the engine accepts writes), `/metrics`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;

use farthing_service::ledger::{metrics_text, readiness};

use crate::error::ApiError;
use crate::extract::Key;
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

/// Prometheus metrics, for the operator: an operator key or a read-only key of no merchant
/// (Prometheus: `authorization: {credentials: fk_ro_…}` in the scrape config).
#[utoipa::path(get, path = "/metrics", operation_id = "metrics.get", tag = "operations", responses((status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain"), crate::error::ReadErrors, (status = 403, description = "not an operator's key", body = crate::error::ErrorBody)))]
pub async fn metrics(
    State(state): State<SharedState>,
    Key(principal): Key,
) -> Result<impl IntoResponse, ApiError> {
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        metrics_text(&state, &principal)?,
    ))
}
