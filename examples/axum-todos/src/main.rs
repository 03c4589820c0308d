//! The development server: the same Router as in nginx, under `axum::serve`.
//!
//! `axum-todos [ADDRESS [DATABASE]]`: listens on ADDRESS (default 127.0.0.1:3000), keeps the
//! todos in DATABASE (a `postgres://` or `sqlite:` URL; default: see
//! `axum_todos::default_database`). Logs each request (tower-http's TraceLayer) on stderr;
//! stops on Ctrl-C or SIGTERM once the requests in flight are answered.

use std::error::Error;
use std::io::IsTerminal;
use std::process::ExitCode;

use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt;
use tracing_subscriber::prelude::*;

#[tokio::main]
async fn main() -> ExitCode {
    match serve().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("axum-todos: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn serve() -> Result<(), Box<dyn Error>> {
    // TraceLayer's lines about each request are at DEBUG; sqlx's about each query stay out.
    tracing_subscriber::registry()
        .with(
            fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal()),
        )
        .with(
            Targets::new()
                .with_target("tower_http", Level::DEBUG)
                .with_default(Level::INFO),
        )
        .init();
    let mut args = std::env::args().skip(1);
    let address = args.next().unwrap_or_else(|| "127.0.0.1:3000".into());
    let database = args.next().unwrap_or_else(axum_todos::default_database);

    let store = axum_todos::Store::connect(&database).await?;
    let listener = TcpListener::bind(&address).await?;
    let mut terminate = signal(SignalKind::terminate())?;
    tracing::info!("axum-todos: listening on {}", listener.local_addr()?);
    axum::serve(listener, axum_todos::app(store.clone()))
        .with_graceful_shutdown(async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
        })
        .await?;
    store.close().await;
    Ok(())
}
