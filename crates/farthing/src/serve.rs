//! `farthing serve`: opens the data directory (engine, metadata store, journal), builds the
//! service state, starts the background workers (scheduler, webhook delivery, idempotency
//! pruning) and serves the HTTP API (`farthing-http`) until SIGTERM or SIGINT.

use std::sync::Arc;

use farthing_engine::{Config as EngineConfig, Engine};
use farthing_service::state::AppState;
use farthing_store::Store;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::config::ServeConfig;

/// Runs the server until SIGTERM or SIGINT, then finishes in-flight requests, flushes the
/// engine and returns.
///
/// A start checks what can fail before it writes anything a user cannot repeat: the TLS files,
/// the listen address, then the data directory. Only then is the one-time operator key minted
/// and printed, so a failed start (a taken port, a missing certificate) never consumes it.
pub async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    let tls = match &config.tls {
        Some((cert, key)) => Some(farthing_http::load_tls(cert, key).await?),
        None => None,
    };
    let socket = farthing_http::bind(&config.listen).await?;
    let issuer = match &config.issuer {
        Some(issuer) => issuer.clone(),
        None => {
            let scheme = if tls.is_some() { "https" } else { "http" };
            format!("{scheme}://{}", socket.local_addr()?)
        }
    };
    // Before the engine opens: its threads take their metric handles when they start.
    let metrics = install_metrics()?;
    let engine = Arc::new(Engine::open(EngineConfig::new(&config.data_dir))?);
    let store =
        Arc::new(Store::open(&config.data_dir).map_err(|e| {
            anyhow::anyhow!("metadata store in {}: {e}", config.data_dir.display())
        })?);
    let journal = farthing_store::journal::Journal::start(
        &engine,
        Arc::clone(&store),
        farthing_store::records::JOURNAL_TABLES,
    )?;
    println!(
        "recovered: {} log batches replayed, {} journal notes re-applied",
        engine.recovery().replayed_batches,
        journal.replayed()
    );
    let mut products =
        farthing_service::submit::Products::new(Arc::clone(&store), journal, config.test_clock)?;
    products.webhook_addresses = config.webhook_addresses;
    let state = Arc::new(AppState::new(
        engine,
        store,
        config.admin_key.as_deref(),
        config.limits(),
        metrics,
        products,
    )?);
    state.signing.set_issuer(issuer);
    // Connections queue from here on; recovery is done, so none waits on it.
    let listener = socket
        .listen(farthing_http::LISTEN_BACKLOG)
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    if let Some(secret) = farthing_service::keys::mint_operator_key(&state)
        .await
        .map_err(|e| anyhow::anyhow!("storing the operator key: {}", e.message))?
    {
        println!("operator API key (shown once, store it now): {secret}");
    }
    tokio::spawn(farthing_service::scheduler::drive(Arc::downgrade(&state)));
    tokio::spawn(farthing_service::delivery::run(
        Arc::downgrade(&state),
        config.webhook_addresses,
    ));
    tokio::spawn(farthing_service::scheduler::prune_idempotency_records(
        Arc::clone(&state.store),
        config.idempotency_retention_hours,
    ));
    farthing_http::run(listener, tls, Arc::clone(&state)).await?;
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
