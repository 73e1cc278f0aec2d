//! `tessera serve`: open the database, load the verify index, serve HTTP, follow the
//! change feed and flush usage in the background; on SIGINT/SIGTERM stop accepting,
//! drain requests, flush usage and exit. While no administrator exists it arms the
//! one-time setup code of the first run and shows it on stderr.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tessera_app::background::{self, Intervals};
use tessera_server::HttpOptions;
use tokio::sync::watch;

use crate::commands::open_or_create_app;
use crate::config::Config;

pub async fn run(config: Config) -> Result<()> {
    let app = open_or_create_app(&config).await?;
    app.load()
        .await
        .context("cannot load tokens into the verify index")?;
    let listener = config.listen.bind().await?;
    let address = listener.local_addr()?;
    if config.listen.is_bare_port() {
        tracing::info!(
            "--listen {} is a bare port: listening on the loopback address {address} only \
             (use --listen 0.0.0.0:{} for every interface)",
            config.listen,
            address.port()
        );
    }
    tracing::info!(
        tokens = app.indexed_tokens(),
        database = %tessera_store::redact_url(&config.database_url()),
        "tessera listening on http://{address}"
    );
    tracing::info!("admin console: http://{}/admin", browsable(address));
    match app.route_rules_outside_catalog().await {
        Ok(problems) => {
            for problem in problems {
                tracing::warn!("{problem}");
            }
        }
        Err(error) => tracing::warn!(%error, "could not check the forward-auth rules"),
    }
    tracing::info!(
        config = %config
            .source
            .as_ref()
            .map_or_else(|| "none (defaults)".to_owned(), |path| path.display().to_string()),
        forward_auth_rules = config.forward_auth.rules.len(),
        forward_auth_default = ?config.forward_auth.default,
        "configuration"
    );
    first_run(&app, &config, address).await;
    let (stop, stopped) = watch::channel(false);
    let intervals = Intervals {
        follow: Duration::from_millis(config.change_poll_milliseconds),
        flush: Duration::from_secs(config.usage_flush_seconds),
        ..Intervals::default()
    };
    let worker = tokio::spawn(background::run(Arc::clone(&app), intervals, stopped));
    let options = HttpOptions {
        body_limit: config.body_limit_bytes,
        secure_cookies: config.secure_cookies,
        trusted_proxies: config.trusted_proxies.clone(),
    };
    let router = tessera_server::router(Arc::clone(&app), options);
    let open_files = tessera_server::raise_open_files_limit();
    let connections = config.connection_options();
    tracing::debug!(?connections, ?open_files, "connection limits");
    tessera_server::serve_with(listener, router, connections, shutdown_signal()).await?;
    tracing::info!("shutting down: flushing usage");
    let _ = stop.send(true);
    worker.await.context("the background worker failed")?;
    tracing::info!("stopped");
    Ok(())
}

/// Arms the first-run setup code while no administrator exists and shows it to the
/// operator on stderr, plainly (`eprintln!`, not the log, so structured logs never
/// carry it). Without a code the server still runs: `tessera admin create` works.
async fn first_run(app: &tessera_app::Tessera, config: &Config, address: SocketAddr) {
    let file = config
        .data_dir
        .join(tessera_app::first_run::SETUP_CODE_FILE);
    match app.auth().prepare_first_run(&file).await {
        Ok(Some(code)) => eprintln!("{}", first_run_notice(&code, &file, address, config)),
        Ok(None) => {}
        Err(error) => {
            tracing::warn!(%error, "no setup code is armed: first-run registration is off");
            eprintln!(
                "\nNo setup code could be armed ({error}); create the first administrator with\n  {}\n",
                admin_create_command(config)
            );
        }
    }
}

/// The block `serve` prints while no administrator exists.
fn first_run_notice(code: &str, file: &Path, address: SocketAddr, config: &Config) -> String {
    let mut notice = format!(
        "\n\
         No administrator exists yet. To create the first one, open\n  \
         http://{}/admin\n\
         and enter this one-time setup code (also in {}):\n  \
         {code}\n\
         or create one from the command line:\n  \
         {}\n",
        browsable(address),
        file.display(),
        admin_create_command(config),
    );
    if config.database_url.is_some() {
        notice.push_str("  (with the same --database-url as this server)\n");
    }
    if config.database_url().starts_with("postgres") {
        notice.push_str(
            "Each node of a PostgreSQL cluster arms its own code; the first administrator of a\n\
             cluster is best made with `tessera admin create`.\n",
        );
    }
    notice
}

/// The address to type into a browser: a wildcard listen address becomes the
/// loopback one.
fn browsable(address: SocketAddr) -> String {
    match address {
        SocketAddr::V4(v4) if v4.ip().is_unspecified() => format!("127.0.0.1:{}", v4.port()),
        SocketAddr::V6(v6) if v6.ip().is_unspecified() => format!("localhost:{}", v6.port()),
        other => other.to_string(),
    }
}

/// `tessera admin create` for this server's data dir, ready to paste.
fn admin_create_command(config: &Config) -> String {
    format!(
        "tessera --data-dir {} admin create --email admin@example.com --password-stdin",
        shell_quoted(&config.data_dir.display().to_string())
    )
}

/// `text` as one shell word.
fn shell_quoted(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_./-+:=@,".contains(&b));
    if plain {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_addresses_are_shown_as_loopback() {
        let shown = |a: &str| browsable(a.parse().unwrap());
        assert_eq!(shown("0.0.0.0:8080"), "127.0.0.1:8080");
        assert_eq!(shown("[::]:9000"), "localhost:9000");
        assert_eq!(shown("192.0.2.1:80"), "192.0.2.1:80");
        assert_eq!(shown("[::1]:80"), "[::1]:80");
    }

    #[test]
    fn paths_are_quoted_for_the_shell() {
        assert_eq!(shell_quoted("./tessera-data"), "./tessera-data");
        assert_eq!(shell_quoted("/srv/my data"), "'/srv/my data'");
        assert_eq!(shell_quoted("it's"), "'it'\\''s'");
    }
}
