//! The plain-HTTP accept loop: axum's router on hyper connections, with what `axum::serve`
//! cannot set: a deadline for reading each request head (`header_read_timeout`, so a client
//! that trickles its headers in — slowloris — cannot hold a connection open forever) and
//! `TCP_NODELAY` on every connection (a response must leave as soon as it is written, whatever
//! is in flight; small writes behind an unacknowledged one would wait for a delayed ACK).

use std::future::Future;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;

/// How long a failed `accept` (out of file descriptors, say) waits before the next try.
const ACCEPT_RETRY_MS: u64 = 50;

/// Sets the deadline for a client to send a request's head, on HTTP/1 connections.
pub fn limit_header_reads(builder: &mut Builder<TokioExecutor>, header_read_timeout: Duration) {
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
}

/// Serves `app` on `listener` until `shutdown` completes, then stops accepting and gives the
/// open connections [`crate::SHUTDOWN_GRACE_MS`] to finish what they are answering.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    limit_header_reads(&mut builder, header_read_timeout);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(ACCEPT_RETRY_MS)).await;
                    continue;
                }
            },
            () = shutdown.as_mut() => break,
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY on a connection");
        }
        let service = TowerToHyperService::new(app.clone());
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::trace!(error = %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let grace = Duration::from_millis(crate::SHUTDOWN_GRACE_MS);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the shutdown grace period; closing them");
    }
}
