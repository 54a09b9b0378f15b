//! `/healthz` (the process answers), `/readyz` (the engine accepts writes), `/metrics`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;

use farthing_service::state::SharedState;

#[utoipa::path(get, path = "/healthz", operation_id = "healthz.get", tag = "operations", security(()), responses((status = 200, description = "the process is up", body = String, content_type = "text/plain")))]
pub async fn healthz() -> &'static str {
    "ok"
}

#[utoipa::path(get, path = "/readyz", operation_id = "readyz.get", tag = "operations", security(()), responses((status = 200, description = "the engine accepts writes", body = String, content_type = "text/plain"), (status = 503, description = "the engine halted", body = String, content_type = "text/plain")))]
pub async fn readyz(State(state): State<SharedState>) -> impl IntoResponse {
    match state.engine.halt_reason() {
        None => (StatusCode::OK, "ready".to_string()),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}"),
        ),
    }
}

#[utoipa::path(get, path = "/metrics", operation_id = "metrics.get", tag = "operations", security(()), responses((status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain")))]
pub async fn metrics(State(state): State<SharedState>) -> impl IntoResponse {
    let stats = state.engine.stats();
    metrics::gauge!("farthing_engine_queue_depth").set(stats.queue_depth as f64);
    metrics::gauge!("farthing_engine_commits_total").set(stats.commits as f64);
    metrics::gauge!("farthing_engine_events_total").set(stats.events as f64);
    metrics::gauge!("farthing_engine_fsync_seconds_total")
        .set(stats.fsync_nanos_total as f64 / 1e9);
    metrics::gauge!("farthing_engine_fsync_seconds_max").set(stats.fsync_nanos_max as f64 / 1e9);
    metrics::gauge!("farthing_engine_batches_per_commit")
        .set(stats.batches as f64 / stats.commits.max(1) as f64);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        state.metrics.render(),
    )
}
