//! The todos in SQL with sqlx, on SQLite or PostgreSQL: one set of queries (both take `$1`
//! placeholders and `RETURNING`) run on whichever pool the database URL made; only the
//! schema differs.

use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::{ConnectOptions, Connection};

/// Connections per pool: per nginx worker, or for the development server.
const MAX_CONNECTIONS: u32 = 4;

/// How long connecting and making the schema may take: a database that accepts connections
/// but never answers must not hold an nginx worker's init forever.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// SQLITE_BUSY, with any of its extended codes (`code & 0xff == 5`).
fn is_sqlite_busy(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(database) => database
            .code()
            .and_then(|code| code.parse::<i32>().ok())
            .is_some_and(|code| code & 0xff == 5),
        _ => false,
    }
}

/// A todo as stored and as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Todo {
    pub id: i64,
    pub title: String,
    pub done: bool,
}

/// The database cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database URL {0:?}: expected sqlite:PATH or postgres://...")]
    UnsupportedUrl(String),
    #[error("database: no answer within {} s", CONNECT_TIMEOUT.as_secs())]
    Timeout,
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
}

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of(url: &str) -> Result<Backend, StoreError> {
        match url.split_once(':').map(|(scheme, _)| scheme) {
            Some("sqlite") => Ok(Backend::Sqlite),
            Some("postgres" | "postgresql") => Ok(Backend::Postgres),
            _ => Err(StoreError::UnsupportedUrl(url.to_string())),
        }
    }
}

#[derive(Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same query code on whichever pool the store has (each arm is typed for its
/// database).
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $query:expr) => {
        match &$store.pool {
            Pool::Sqlite($pool) => $query,
            Pool::Postgres($pool) => $query,
        }
    };
}

/// The todos table, shared by every process that opens the same database (each nginx
/// worker has its own pool).
#[derive(Clone)]
pub struct Store {
    pool: Pool,
}

impl Store {
    /// Connects and creates the schema if it is not there yet, within [`CONNECT_TIMEOUT`].
    /// A SQLite file is created if missing.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        let backend = Backend::of(url)?;
        tokio::time::timeout(CONNECT_TIMEOUT, async {
            loop {
                match Store::open(backend, url).await {
                    // Workers opening a new SQLite file together: one switching it to WAL
                    // holds a lock that SQLite reports as busy at once, without waiting for
                    // its busy timeout. The file is usable a moment later.
                    Err(StoreError::Sql(error)) if is_sqlite_busy(&error) => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    result => return result,
                }
            }
        })
        .await
        .map_err(|_elapsed| StoreError::Timeout)?
    }

    async fn open(backend: Backend, url: &str) -> Result<Store, StoreError> {
        let pool = match backend {
            Backend::Sqlite => {
                let options = SqliteConnectOptions::from_str(url)?
                    .create_if_missing(true)
                    // Readers do not wait for a writer, nor a writer for readers; writers
                    // from several workers wait their turn.
                    .journal_mode(SqliteJournalMode::Wal)
                    .busy_timeout(Duration::from_secs(5));
                let pool = SqlitePoolOptions::new()
                    .max_connections(MAX_CONNECTIONS)
                    .connect_with(options)
                    .await?;
                sqlx::query(
                    "CREATE TABLE IF NOT EXISTS todos (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        title TEXT NOT NULL,
                        done BOOLEAN NOT NULL DEFAULT FALSE)",
                )
                .execute(&pool)
                .await?;
                Pool::Sqlite(pool)
            }
            Backend::Postgres => {
                let options = PgConnectOptions::from_str(url)?;
                // The schema over one connection, tried once: a database that is down fails
                // init at once, with its reason (a pool would retry until its acquire
                // timeout, 30 s, and report only that).
                let mut connection = options.connect().await?;
                // Workers starting together would race CREATE TABLE IF NOT EXISTS (a unique
                // violation in pg_type): one at a time, under a lock that ends with the
                // transaction.
                let mut tx = connection.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock(7468697320)")
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "CREATE TABLE IF NOT EXISTS todos (
                        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
                        title TEXT NOT NULL,
                        done BOOLEAN NOT NULL DEFAULT FALSE)",
                )
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                connection.close().await?;
                Pool::Postgres(
                    PgPoolOptions::new()
                        .max_connections(MAX_CONNECTIONS)
                        .connect_lazy_with(options),
                )
            }
        };
        Ok(Store { pool })
    }

    /// Every todo, oldest first.
    pub async fn list(&self) -> Result<Vec<Todo>, StoreError> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as("SELECT id, title, done FROM todos ORDER BY id")
                .fetch_all(pool)
                .await?
        }))
    }

    pub async fn create(&self, title: &str) -> Result<Todo, StoreError> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as("INSERT INTO todos (title) VALUES ($1) RETURNING id, title, done")
                .bind(title)
                .fetch_one(pool)
                .await?
        }))
    }

    pub async fn get(&self, id: i64) -> Result<Option<Todo>, StoreError> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as("SELECT id, title, done FROM todos WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Flips `done`; `None` if there is no such todo.
    pub async fn toggle(&self, id: i64) -> Result<Option<Todo>, StoreError> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as(
                "UPDATE todos SET done = NOT done WHERE id = $1 RETURNING id, title, done",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Whether there was such a todo.
    pub async fn delete(&self, id: i64) -> Result<bool, StoreError> {
        let deleted = on_pool!(self, |pool| {
            sqlx::query("DELETE FROM todos WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(deleted == 1)
    }

    /// Closes the pool's connections, waiting for those in use.
    pub async fn close(&self) {
        on_pool!(self, |pool| pool.close().await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_scheme_picks_the_backend() {
        assert_eq!(Backend::of("sqlite:/tmp/x.db").unwrap(), Backend::Sqlite);
        assert_eq!(Backend::of("sqlite::memory:").unwrap(), Backend::Sqlite);
        assert_eq!(Backend::of("postgres://u@h/db").unwrap(), Backend::Postgres);
        assert_eq!(
            Backend::of("postgresql://u@h/db").unwrap(),
            Backend::Postgres
        );
        for url in ["mysql://u@h/db", "/tmp/x.db", ""] {
            assert!(
                matches!(Backend::of(url), Err(StoreError::UnsupportedUrl(_))),
                "{url}"
            );
        }
    }

    #[tokio::test]
    async fn sqlite_keeps_the_todos_across_connections() {
        let dir = std::env::temp_dir().join(format!("axum-todos-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite:{}", dir.join("todos.sqlite3").display());

        let store = Store::connect(&url).await.unwrap();
        let first = store.create("first").await.unwrap();
        let second = store.create("second").await.unwrap();
        assert_eq!((first.title.as_str(), first.done), ("first", false));
        assert_eq!(
            store.toggle(first.id).await.unwrap().map(|t| t.done),
            Some(true)
        );
        assert!(store.delete(second.id).await.unwrap());
        assert!(!store.delete(second.id).await.unwrap());
        assert_eq!(store.get(second.id).await.unwrap(), None);
        assert_eq!(store.toggle(second.id).await.unwrap(), None);
        store.close().await;

        // Another pool, as another nginx worker: the schema is there, and the todo.
        let other = Store::connect(&url).await.unwrap();
        let done = Todo {
            done: true,
            ..first
        };
        assert_eq!(other.list().await.unwrap(), vec![done]);
        other.close().await;
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
