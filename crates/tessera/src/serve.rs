//! `tessera serve`: open the database, load the verify index, serve HTTP, follow the
//! change feed and flush usage in the background; on SIGINT/SIGTERM stop accepting,
//! drain requests, flush usage and exit.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tessera_app::background::{self, Intervals};
use tessera_server::HttpOptions;
use tokio::sync::watch;

use crate::commands::open_app;
use crate::config::Config;

pub async fn run(config: Config) -> Result<()> {
    let app = open_app(&config).await?;
    app.load()
        .await
        .context("cannot load tokens into the verify index")?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let address = listener.local_addr()?;
    tracing::info!(
        tokens = app.indexed_tokens(),
        database = %tessera_store::redact_url(&config.database_url()),
        "tessera listening on http://{address}"
    );
    let (stop, stopped) = watch::channel(false);
    let intervals = Intervals {
        follow: Duration::from_millis(config.change_poll_milliseconds),
        flush: Duration::from_secs(config.usage_flush_seconds),
    };
    let worker = tokio::spawn(background::run(Arc::clone(&app), intervals, stopped));
    let options = HttpOptions {
        body_limit: config.body_limit_bytes,
        secure_cookies: config.secure_cookies,
    };
    let router = tessera_server::router(Arc::clone(&app), options);
    tessera_server::serve(listener, router, shutdown_signal()).await?;
    tracing::info!("shutting down: flushing usage");
    let _ = stop.send(true);
    worker.await.context("the background worker failed")?;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("SIGINT received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}
