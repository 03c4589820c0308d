//! Where an app keeps its state: a database every nginx worker (and every nginx host) shares,
//! instead of memory, which is each worker's own. Enable the SDK's `database` feature.
//!
//! One setting of the location names it, `gateway_app_param database VALUE;`:
//! - a file path: SQLite, in WAL mode with a busy timeout, for the workers of one host (a
//!   relative path is resolved against nginx's prefix, as nginx's own paths are);
//! - a `postgres://user:password@host:port/name` URL: PostgreSQL, for several hosts;
//! - nothing: SQLite in `NAME.sqlite3` under nginx's prefix (`nginx -p`), NAME being what the
//!   app passes to [`Database::open`]. The workers' user must be able to write that
//!   directory: with Debian's nginx (prefix `/usr/share/nginx`) name a file instead, say
//!   under `/var/lib/`.
//!
//! Each worker keeps a pool of connections, as many as the location's thread pool has threads
//! (`gateway_app_param database_connections N` to change it). Database calls block, so the
//! location should run on a thread pool (`gateway_thread_pool`), not on nginx's event loop;
//! the app logs a warning when it does not.
//!
//! Statements take `$1`, `$2`, ... placeholders on both backends, and rows come back as any
//! serde type whose fields are named as the columns:
//!
//! ```
//! use gateway::database::{Database, DatabaseError};
//! use gateway::{Config, Error, Json, Request, Router, get};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Visits { count: i64 }
//!
//! fn visit(_: &Request, db: &Database) -> Result<Json<Visits>, Error> {
//!     db.execute("UPDATE visits SET count = count + 1", &[])?;
//!     let visits = db.query_opt::<Visits>("SELECT count FROM visits", &[])?;
//!     Ok(Json(visits.unwrap_or(Visits { count: 0 })))
//! }
//!
//! fn app(config: &Config) -> Result<Router<Database>, DatabaseError> {
//!     let db = Database::open(config, "visits", |schema| {
//!         schema.execute_batch("CREATE TABLE IF NOT EXISTS visits (count BIGINT NOT NULL)")?;
//!         if schema.query_opt::<Visits>("SELECT count FROM visits", &[])?.is_none() {
//!             schema.execute("INSERT INTO visits (count) VALUES ($1)", &[&0])?;
//!         }
//!         Ok(())
//!     })?;
//!     Ok(Router::with_state(db).route("/", get(visit)))
//! }
//! # let dir = tempfile::tempdir().unwrap();
//! # let config = Config::default().with_prefix(dir.path());
//! # let client = gateway::testing::TestClient::new(app(&config).unwrap());
//! # assert_eq!(client.get("/").send().text(), r#"{"count":1}"#);
//! # assert_eq!(client.get("/").send().text(), r#"{"count":2}"#);
//! ```
//!
//! A database that cannot be reached answers 503, its reason in nginx's error log; the pool
//! connects again on the next request, so the app serves again as soon as it is back. A
//! PostgreSQL server down when a worker starts is no error either: the schema is set up on
//! the first request that finds it up.

mod error;
mod postgres;
mod sqlite;
mod value;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::de::DeserializeOwned;

pub use error::DatabaseError;
pub use value::{ToValue, Value};

use crate::config::{Config, ConfigError, RunsOn};
use crate::logging::Logger;

/// How long a request waits for a pooled connection (PostgreSQL's connect time included)
/// before the database counts as unavailable.
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(2);

/// Which database the setting named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

impl Backend {
    /// The column definition of an id the database assigns, ascending and never reused: for
    /// `CREATE TABLE`, the one thing apps usually write differently for each backend.
    pub fn serial_primary_key(self) -> &'static str {
        match self {
            Backend::Sqlite => "INTEGER PRIMARY KEY AUTOINCREMENT",
            Backend::Postgres => "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
        }
    }
}

/// The reason a pooled connection could not be made, as the driver says it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct ConnectError(String);

/// The schema setup an app passes to [`Database::open`].
type SchemaFn = dyn Fn(&mut Transaction<'_>) -> Result<(), DatabaseError> + Send + Sync;

/// An app's database: a pool of connections of one worker, cheap to clone. See the
/// [module documentation](self).
#[derive(Clone)]
pub struct Database {
    pool: Pool,
    label: Arc<str>,
    schema: Arc<Schema>,
}

#[derive(Clone)]
enum Pool {
    Sqlite(r2d2::Pool<sqlite::Manager>),
    Postgres(r2d2::Pool<postgres::Manager>),
}

/// The app's schema setup, run once per worker: at init, or on the first request that
/// reaches the database if it was down then.
struct Schema {
    setup: Box<SchemaFn>,
    /// What PostgreSQL's lock around the setup is named after.
    name: String,
    done: AtomicBool,
    running: Mutex<()>,
}

/// Where the `database` setting points.
enum Location {
    Sqlite(PathBuf),
    Postgres(Box<::postgres::Config>),
}

fn location(config: &Config, name: &str) -> Result<Location, ConfigError> {
    let invalid = |value: &str, reason: String| ConfigError::Invalid {
        name: "database".to_string(),
        value: value.to_string(),
        reason,
    };
    match config.get("database") {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => url
            .parse()
            .map(|settings| Location::Postgres(Box::new(settings)))
            // The URL may hold a password: the message shows only its scheme.
            .map_err(|e| invalid("postgres://...", error::chain(&e))),
        Some("") => Err(invalid("", "a file path or a postgres:// URL".to_string())),
        Some(path) => Ok(Location::Sqlite(config.resolve_path(path))),
        None => match config.prefix() {
            Some(prefix) => Ok(Location::Sqlite(prefix.join(format!("{name}.sqlite3")))),
            None => Err(ConfigError::Missing("database".to_string())),
        },
    }
}

/// Checks the `database` setting of a location, as an app's configuration check should
/// (see [`app!`](crate::app)): `nginx -t` then refuses a malformed PostgreSQL URL. Connects to
/// nothing.
pub fn check(config: &Config) -> Result<(), ConfigError> {
    location(config, "app")?;
    connections(config).map(drop)
}

/// How many connections a worker's pool holds: one per thread that may call the app.
fn connections(config: &Config) -> Result<u32, ConfigError> {
    match config.parse::<u32>("database_connections")? {
        Some(0) => Err(ConfigError::Invalid {
            name: "database_connections".to_string(),
            value: "0".to_string(),
            reason: "at least 1".to_string(),
        }),
        Some(count) => Ok(count),
        None => Ok(match config.runs_on() {
            Some(RunsOn::ThreadPool { threads }) => threads.max(1),
            _ => 1,
        }),
    }
}

fn pool<M: r2d2::ManageConnection>(manager: M, size: u32) -> r2d2::Pool<M> {
    r2d2::Pool::builder()
        .max_size(size)
        // Connections are made when needed: none are kept open to a server that is down.
        .min_idle(Some(0))
        .connection_timeout(CHECKOUT_TIMEOUT)
        // A failed connection attempt is reported with the request that waited for it.
        .error_handler(Box::new(r2d2::NopErrorHandler))
        .build_unchecked(manager)
}

impl Database {
    /// Opens the database the location's `database` setting names, for an app called `name`
    /// (the default SQLite file is `NAME.sqlite3` under nginx's prefix), and sets up its
    /// schema with `schema`, in a transaction that no other worker runs at the same time:
    /// `CREATE TABLE IF NOT EXISTS`, seed rows when a table is empty. Call it in the app's
    /// init; the schema setup runs again in every worker, so it must be idempotent.
    ///
    /// Fails for an unusable setting, a SQLite file that cannot be opened, or a schema that
    /// fails. A PostgreSQL server that cannot be reached is not a failure: the app starts,
    /// answers 503 while it is down, and sets the schema up once it is back.
    pub fn open<S>(config: &Config, name: &str, schema: S) -> Result<Database, DatabaseError>
    where
        S: Fn(&mut Transaction<'_>) -> Result<(), DatabaseError> + Send + Sync + 'static,
    {
        let logger = config.logger();
        if config.runs_on() == Some(RunsOn::EventLoop) {
            logger.warn(
                "database calls block, and this location runs on nginx's event loop, which \
                 they stall for every connection of the worker: add `gateway_thread_pool` to it",
            );
        }
        let size = connections(config)?;
        let schema = Arc::new(Schema {
            setup: Box::new(schema),
            name: name.to_string(),
            done: AtomicBool::new(false),
            running: Mutex::new(()),
        });
        let database = match location(config, name)? {
            Location::Sqlite(path) => {
                let label: Arc<str> = format!("SQLite database {}", path.display()).into();
                let first = sqlite::first(&path, &label);
                let database = Database {
                    pool: Pool::Sqlite(pool(sqlite::Manager { path }, size)),
                    label,
                    schema,
                };
                database.set_up_first(
                    first.and_then(|mut connection| {
                        database.set_up(&mut Link::Sqlite(&mut connection))
                    }),
                    &logger,
                )?;
                database
            }
            Location::Postgres(mut settings) => {
                if settings.get_connect_timeout().is_none() {
                    settings.connect_timeout(CHECKOUT_TIMEOUT);
                }
                if settings.get_application_name().is_none() {
                    settings.application_name(&format!("ngx-gateway {name}"));
                }
                let label: Arc<str> = postgres::label(&settings).into();
                let first = postgres::first(&settings, &label);
                let database = Database {
                    pool: Pool::Postgres(pool(postgres::Manager { config: *settings }, size)),
                    label,
                    schema,
                };
                database.set_up_first(
                    first.and_then(|mut client| database.set_up(&mut Link::Postgres(&mut client))),
                    &logger,
                )?;
                database
            }
        };
        let plural = if size == 1 { "" } else { "s" };
        logger.info(format_args!(
            "{}: up to {size} connection{plural} in this worker",
            database.label
        ));
        Ok(database)
    }

    /// What came of the schema setup at init: an unreachable database leaves it for the
    /// first request that reaches it.
    fn set_up_first(
        &self,
        outcome: Result<(), DatabaseError>,
        logger: &Logger,
    ) -> Result<(), DatabaseError> {
        match outcome {
            Err(error) if error.is_unavailable() => {
                logger.warn(format_args!(
                    "{error}; the app answers 503 until it can be reached"
                ));
                Ok(())
            }
            other => other,
        }
    }

    /// Runs the schema setup on `link`, unless it is done.
    fn set_up(&self, link: &mut Link<'_>) -> Result<(), DatabaseError> {
        if self.schema.done.load(Ordering::Acquire) {
            return Ok(());
        }
        // One setup at a time in this worker; other workers are kept out by the transaction.
        let _running = self.schema.running.lock();
        if self.schema.done.load(Ordering::Acquire) {
            return Ok(());
        }
        let lock_name = format!("ngx-gateway schema {}", self.schema.name);
        let postgres = matches!(link, Link::Postgres(_));
        link.transaction(&self.label, |transaction| {
            if postgres {
                // Concurrent CREATE TABLE IF NOT EXISTS can fail in PostgreSQL, and seeds must
                // go in once: the workers (and hosts) take turns. SQLite's transaction takes
                // the write lock at BEGIN, which does the same.
                transaction.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&lock_name])?;
            }
            (self.schema.setup)(transaction)
        })?;
        self.schema.done.store(true, Ordering::Release);
        Ok(())
    }

    /// Which backend the setting named.
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    fn unavailable(&self, error: r2d2::Error) -> DatabaseError {
        DatabaseError::Unavailable {
            database: self.label.to_string(),
            reason: error.to_string(),
        }
    }

    /// Runs `f` on a pooled connection, the schema set up first if it is not yet.
    fn with<R, E>(&self, f: impl FnOnce(&mut Link<'_>) -> Result<R, E>) -> Result<R, E>
    where
        E: From<DatabaseError>,
    {
        match &self.pool {
            Pool::Sqlite(pool) => {
                let mut connection = pool.get().map_err(|e| self.unavailable(e))?;
                let mut link = Link::Sqlite(&mut connection);
                self.set_up(&mut link)?;
                f(&mut link)
            }
            Pool::Postgres(pool) => {
                let mut client = pool.get().map_err(|e| self.unavailable(e))?;
                let mut link = Link::Postgres(&mut client);
                self.set_up(&mut link)?;
                f(&mut link)
            }
        }
    }

    /// Runs one statement (in a transaction of its own), with `params` for its `$1`, `$2`,
    /// ...; returns how many rows it changed.
    pub fn execute(&self, sql: &str, params: &[&dyn ToValue]) -> Result<u64, DatabaseError> {
        self.with(|link| link.statements().execute(&self.label, sql, params))
    }

    /// Runs statements separated by `;`, without parameters (a schema, say).
    pub fn execute_batch(&self, sql: &str) -> Result<(), DatabaseError> {
        self.with(|link| link.statements().batch(&self.label, sql))
    }

    /// Runs a query and reads every row as a `T`, matching columns to fields by name.
    pub fn query<T: DeserializeOwned>(
        &self,
        sql: &str,
        params: &[&dyn ToValue],
    ) -> Result<Vec<T>, DatabaseError> {
        let rows = self.with(|link| link.statements().query(&self.label, sql, params))?;
        value::deserialize(rows)
    }

    /// Runs a query and reads its first row, if any, as a `T`. Every row is fetched: end a
    /// query that may match several with `LIMIT 1`.
    pub fn query_opt<T: DeserializeOwned>(
        &self,
        sql: &str,
        params: &[&dyn ToValue],
    ) -> Result<Option<T>, DatabaseError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// Runs `f` in a transaction: committed if it returns `Ok`, rolled back if it returns
    /// `Err` or panics. On SQLite it holds the write lock from its start, so that two
    /// workers' transactions never deadlock: keep it short.
    pub fn transaction<R, E>(
        &self,
        f: impl FnOnce(&mut Transaction<'_>) -> Result<R, E>,
    ) -> Result<R, E>
    where
        E: From<DatabaseError>,
    {
        self.with(|link| link.transaction(&self.label, f))
    }
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Database").field(&self.label).finish()
    }
}

/// A connection: pooled, or the first one, made at init.
enum Link<'c> {
    Sqlite(&'c mut rusqlite::Connection),
    Postgres(&'c mut ::postgres::Client),
}

impl Link<'_> {
    /// Statements outside any transaction.
    fn statements(&mut self) -> Statements<'_> {
        match self {
            Link::Sqlite(connection) => Statements::Sqlite(connection),
            Link::Postgres(client) => Statements::Postgres(&mut **client),
        }
    }

    /// Runs `f` in a transaction on this connection.
    fn transaction<R, E>(
        &mut self,
        label: &str,
        f: impl FnOnce(&mut Transaction<'_>) -> Result<R, E>,
    ) -> Result<R, E>
    where
        E: From<DatabaseError>,
    {
        let inner = match self {
            Link::Sqlite(connection) => Inner::Sqlite(
                connection
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                    .map_err(|e| sqlite::error(label, e))?,
            ),
            Link::Postgres(client) => Inner::Postgres(
                client
                    .transaction()
                    .map_err(|e| postgres::error(label, &e))?,
            ),
        };
        let mut transaction = Transaction { inner, label };
        let value = f(&mut transaction)?;
        transaction.commit()?;
        Ok(value)
    }
}

/// Where statements run: a connection or a transaction.
enum Statements<'s> {
    Sqlite(&'s rusqlite::Connection),
    Postgres(&'s mut dyn postgres::Session),
}

impl Statements<'_> {
    fn execute(
        &mut self,
        label: &str,
        sql: &str,
        params: &[&dyn ToValue],
    ) -> Result<u64, DatabaseError> {
        let params = value::values(params);
        match self {
            Statements::Sqlite(connection) => sqlite::execute(connection, label, sql, &params),
            Statements::Postgres(session) => postgres::execute(*session, label, sql, &params),
        }
    }

    fn query(
        &mut self,
        label: &str,
        sql: &str,
        params: &[&dyn ToValue],
    ) -> Result<Vec<value::Row>, DatabaseError> {
        let params = value::values(params);
        match self {
            Statements::Sqlite(connection) => sqlite::query(connection, label, sql, &params),
            Statements::Postgres(session) => postgres::query(*session, label, sql, &params),
        }
    }

    fn batch(&mut self, label: &str, sql: &str) -> Result<(), DatabaseError> {
        match self {
            Statements::Sqlite(connection) => sqlite::batch(connection, label, sql),
            Statements::Postgres(session) => postgres::batch(*session, label, sql),
        }
    }
}

/// A transaction in progress, from [`Database::transaction`] or the schema setup of
/// [`Database::open`]: the same statements as [`Database`]'s, all committed together.
pub struct Transaction<'t> {
    inner: Inner<'t>,
    label: &'t str,
}

enum Inner<'t> {
    Sqlite(rusqlite::Transaction<'t>),
    Postgres(::postgres::Transaction<'t>),
}

impl Transaction<'_> {
    fn statements(&mut self) -> Statements<'_> {
        match &mut self.inner {
            Inner::Sqlite(transaction) => Statements::Sqlite(transaction),
            Inner::Postgres(transaction) => Statements::Postgres(transaction),
        }
    }

    fn commit(self) -> Result<(), DatabaseError> {
        match self.inner {
            Inner::Sqlite(transaction) => transaction
                .commit()
                .map_err(|e| sqlite::error(self.label, e)),
            Inner::Postgres(transaction) => transaction
                .commit()
                .map_err(|e| postgres::error(self.label, &e)),
        }
    }

    /// Which backend runs the transaction: for the statements that differ (a schema's
    /// auto-incremented key, say).
    pub fn backend(&self) -> Backend {
        match self.inner {
            Inner::Sqlite(_) => Backend::Sqlite,
            Inner::Postgres(_) => Backend::Postgres,
        }
    }

    /// As [`Database::execute`].
    pub fn execute(&mut self, sql: &str, params: &[&dyn ToValue]) -> Result<u64, DatabaseError> {
        let label = self.label;
        self.statements().execute(label, sql, params)
    }

    /// As [`Database::execute_batch`].
    pub fn execute_batch(&mut self, sql: &str) -> Result<(), DatabaseError> {
        let label = self.label;
        self.statements().batch(label, sql)
    }

    /// As [`Database::query`].
    pub fn query<T: DeserializeOwned>(
        &mut self,
        sql: &str,
        params: &[&dyn ToValue],
    ) -> Result<Vec<T>, DatabaseError> {
        let label = self.label;
        value::deserialize(self.statements().query(label, sql, params)?)
    }

    /// As [`Database::query_opt`].
    pub fn query_opt<T: DeserializeOwned>(
        &mut self,
        sql: &str,
        params: &[&dyn ToValue],
    ) -> Result<Option<T>, DatabaseError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }
}
