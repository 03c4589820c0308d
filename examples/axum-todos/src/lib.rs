//! A todo list as a JSON API, written as any axum app is: extractors, `State`, `Json`,
//! tower-http layers (request tracing, gzip), sqlx on SQLite or PostgreSQL. The same
//! [`app`] Router runs in two places:
//!
//! - inside nginx, in-process, through [`gateway::tower_app!`] (this library is a cdylib):
//!
//!   ```nginx
//!   location /axum/ {
//!       gateway_app /path/to/libaxum_todos.so;
//!       gateway_app_param database "postgres://todos@127.0.0.1/todos";   # optional
//!   }
//!   ```
//!
//! - on its own for development: `cargo run -p axum-todos -- 127.0.0.1:3000 [DATABASE]`
//!   (src/main.rs, `axum::serve`).
//!
//! The database is the `database` URL: `postgres://...`, or `sqlite:PATH` (created if
//! missing; a relative PATH is under nginx's prefix, as nginx's own paths are); by default
//! `axum-todos.sqlite3` under nginx's prefix, or in the system's temporary directory for the
//! development server ([`default_database`]). The schema is created when the app starts (each nginx worker
//! connects on its own, and all of them see the same todos).
//!
//! - `GET /todos`: every todo, `[{"id": 1, "title": "...", "done": false}, ...]`;
//! - `POST /todos` with `{"title": "..."}`: 201 with the new todo and its `Location`;
//! - `GET /todos/{id}`: one todo; `POST /todos/{id}/toggle`: flips `done`, answers the todo;
//! - `DELETE /todos/{id}`: 204.
//!
//! An unknown id is a 404 and an empty title a 400, as `{"error": "..."}`; a body that is not
//! such JSON gets axum's own rejection (415 or 422).

mod routes;
mod store;

use axum::routing::{get, post};
use axum::Router;
use tower_http::compression::CompressionLayer;
use tower_http::trace::TraceLayer;

pub use store::{Backend, Store, StoreError, Todo};

/// The Router, over a connected store.
pub fn app(store: Store) -> Router {
    Router::new()
        .route("/todos", get(routes::list).post(routes::create))
        .route("/todos/{id}", get(routes::show).delete(routes::delete))
        .route("/todos/{id}/toggle", post(routes::toggle))
        .layer(CompressionLayer::new().gzip(true))
        .layer(TraceLayer::new_for_http())
        .with_state(store)
}

/// SQLite in the system's temporary directory, for the development server.
pub fn default_database() -> String {
    sqlite_url(&std::env::temp_dir().join("axum-todos.sqlite3"))
}

fn sqlite_url(path: &std::path::Path) -> String {
    format!("sqlite:{}", path.display())
}

/// nginx checks the URL's kind at `nginx -t`, before any worker tries to connect.
fn check(config: &gateway::Config) -> Result<(), gateway::ConfigError> {
    match config.get("database") {
        Some(url) => Backend::of(url)
            .map(drop)
            .map_err(|error| gateway::ConfigError::Invalid {
                name: "database".into(),
                value: url.into(),
                reason: error.to_string(),
            }),
        None => Ok(()),
    }
}

/// Runs in each nginx worker, inside the app's tokio runtime: connects and creates the schema
/// before the first request.
fn make(config: &gateway::Config) -> Result<Router, StoreError> {
    let url = match config.get("database") {
        Some(url) => match url.strip_prefix("sqlite:") {
            Some(path) => sqlite_url(&config.resolve_path(path)),
            None => url.to_string(),
        },
        None => sqlite_url(&config.resolve_path("axum-todos.sqlite3")),
    };
    let store = tokio::runtime::Handle::current().block_on(Store::connect(&url))?;
    Ok(app(store))
}

gateway::tower_app!(init = make, check = check);
