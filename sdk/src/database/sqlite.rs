//! SQLite, through rusqlite: one file that every worker opens, in WAL mode so that readers
//! and the one writer do not wait for each other, with a busy timeout so that writers from
//! several workers queue instead of failing.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ErrorCode, Statement};

use super::value::{blob, real, Row, Value};
use super::{ConnectError, DatabaseError};

/// How long a statement waits for another connection's write lock before the database counts
/// as unavailable.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens connections to the file for the pool.
pub(crate) struct Manager {
    pub path: PathBuf,
}

impl r2d2::ManageConnection for Manager {
    type Connection = Connection;
    type Error = ConnectError;

    fn connect(&self) -> Result<Connection, ConnectError> {
        open(&self.path).map_err(|error| ConnectError(error.to_string()))
    }

    fn is_valid(&self, connection: &mut Connection) -> Result<(), ConnectError> {
        connection
            .execute_batch("")
            .map_err(|error| ConnectError(error.to_string()))
    }

    fn has_broken(&self, _: &mut Connection) -> bool {
        false
    }
}

/// A connection to `path`, set up as every connection of the app must be.
fn open(path: &Path) -> rusqlite::Result<Connection> {
    let connection = Connection::open(path)?;
    connection.busy_timeout(BUSY_TIMEOUT)?;
    use_wal(&connection)?;
    connection.pragma_update(None, "foreign_keys", true)?;
    Ok(connection)
}

/// Switches the file to WAL, kept in the file: once one connection set it, every later one
/// finds it. Workers opening a new file together race for the switch, and SQLite reports the
/// loser busy at once, without its busy handler, so the switch is retried here within the
/// busy timeout.
fn use_wal(connection: &Connection) -> rusqlite::Result<()> {
    let started = Instant::now();
    loop {
        match connection.pragma_update(None, "journal_mode", "wal") {
            Err(error)
                if error.sqlite_error_code() == Some(ErrorCode::DatabaseBusy)
                    && started.elapsed() < BUSY_TIMEOUT =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            outcome => return outcome,
        }
    }
}

/// The first connection, at init: an error here is the setting's fault (no such directory,
/// no permission), reported as [`DatabaseError::Open`] instead of a pool time-out.
pub(crate) fn first(path: &Path, database: &str) -> Result<Connection, DatabaseError> {
    open(path).map_err(|error| match self::error(database, error) {
        DatabaseError::Query(reason) => DatabaseError::Open {
            database: database.to_string(),
            reason,
        },
        other => other,
    })
}

/// What a rusqlite error means for the app.
pub(crate) fn error(database: &str, error: rusqlite::Error) -> DatabaseError {
    let reason = error.to_string();
    match error.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => DatabaseError::Unavailable {
            database: database.to_string(),
            reason,
        },
        Some(ErrorCode::ConstraintViolation) => DatabaseError::Constraint(reason),
        Some(
            ErrorCode::CannotOpen
            | ErrorCode::NotADatabase
            | ErrorCode::PermissionDenied
            | ErrorCode::ReadOnly,
        ) => DatabaseError::Open {
            database: database.to_string(),
            reason,
        },
        _ => DatabaseError::Query(reason),
    }
}

pub(crate) fn execute(
    connection: &Connection,
    database: &str,
    sql: &str,
    params: &[Value],
) -> Result<u64, DatabaseError> {
    let mut statement = connection
        .prepare_cached(sql)
        .map_err(|e| error(database, e))?;
    bind(&mut statement, params).map_err(|e| e.into_database(database))?;
    let changed = statement.raw_execute().map_err(|e| error(database, e))?;
    Ok(changed as u64)
}

pub(crate) fn query(
    connection: &Connection,
    database: &str,
    sql: &str,
    params: &[Value],
) -> Result<Vec<Row>, DatabaseError> {
    let mut statement = connection
        .prepare_cached(sql)
        .map_err(|e| error(database, e))?;
    bind(&mut statement, params).map_err(|e| e.into_database(database))?;
    let names: Vec<String> = statement.column_names().map(str::to_string).collect();
    let mut rows = statement.raw_query();
    let mut read = Vec::new();
    while let Some(row) = rows.next().map_err(|e| error(database, e))? {
        let mut columns = Row::new();
        for (index, name) in names.iter().enumerate() {
            let value = row.get_ref(index).map_err(|e| error(database, e))?;
            columns.insert(name.clone(), cell(name, value)?);
        }
        read.push(columns);
    }
    Ok(read)
}

pub(crate) fn batch(
    connection: &Connection,
    database: &str,
    sql: &str,
) -> Result<(), DatabaseError> {
    connection
        .execute_batch(sql)
        .map_err(|e| error(database, e))
}

fn cell(name: &str, value: ValueRef<'_>) -> Result<serde_json::Value, DatabaseError> {
    Ok(match value {
        ValueRef::Null => serde_json::Value::Null,
        ValueRef::Integer(integer) => integer.into(),
        ValueRef::Real(float) => real(float),
        ValueRef::Text(text) => String::from_utf8(text.to_vec())
            .map_err(|_| {
                DatabaseError::Query(format!("column {name} holds text that is not UTF-8"))
            })?
            .into(),
        ValueRef::Blob(bytes) => blob(bytes),
    })
}

/// Why binding failed: a placeholder problem, or SQLite's own error.
enum BindError {
    Parameters(String),
    Sqlite(rusqlite::Error),
}

impl BindError {
    fn into_database(self, database: &str) -> DatabaseError {
        match self {
            BindError::Parameters(message) => DatabaseError::Parameters(message),
            BindError::Sqlite(e) => error(database, e),
        }
    }
}

/// Binds `params` to the statement's `$1`, `$2`, ... placeholders, PostgreSQL's style, which
/// SQLite reads as named parameters: so the same SQL runs on both.
fn bind(statement: &mut Statement<'_>, params: &[Value]) -> Result<(), BindError> {
    let count = statement.parameter_count();
    for index in 1..=count {
        let name = statement.parameter_name(index).unwrap_or("?").to_string();
        let number = name
            .strip_prefix('$')
            .and_then(|number| number.parse::<usize>().ok())
            .filter(|number| (1..=params.len()).contains(number))
            .ok_or_else(|| {
                BindError::Parameters(format!(
                    "placeholder {name} is not one of $1 to ${}",
                    params.len()
                ))
            })?;
        statement
            .raw_bind_parameter(index, &params[number - 1])
            .map_err(BindError::Sqlite)?;
    }
    if count != params.len() {
        return Err(BindError::Parameters(format!(
            "the statement has {count} placeholders, {} parameters were given",
            params.len()
        )));
    }
    Ok(())
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Integer(integer) => ValueRef::Integer(*integer),
            Value::Real(float) => ValueRef::Real(*float),
            Value::Text(text) => ValueRef::Text(text.as_bytes()),
            Value::Blob(bytes) => ValueRef::Blob(bytes),
        }))
    }
}
