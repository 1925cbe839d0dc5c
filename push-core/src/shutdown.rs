//! Waiting for the signal to stop.
//!
//! Service managers stop daemons with SIGTERM and people with Ctrl-C
//! (SIGINT); both start the same graceful shutdown.

use tokio::signal::unix::{SignalKind, signal};

/// Completes when SIGTERM or SIGINT arrives.
pub async fn signal_received() {
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = terminate.recv() => tracing::info!("SIGTERM received, shutting down"),
                _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received, shutting down"),
            }
        }
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C will stop the daemon");
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("SIGINT received, shutting down");
        }
    }
}
