//! PostgreSQL, through the synchronous `postgres` crate: how several nginx hosts share one
//! app's data. Without TLS for now: a server on the same host or a private network.

use std::error::Error as StdError;
use std::io;

use bytes::BytesMut;
use postgres::error::SqlState;
use postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};
use postgres::NoTls;

use super::error::chain;
use super::value::{blob, real, Row, Value};
use super::{ConnectError, DatabaseError};

/// Opens connections to the server for the pool.
pub(crate) struct Manager {
    pub config: postgres::Config,
}

impl r2d2::ManageConnection for Manager {
    type Connection = postgres::Client;
    type Error = ConnectError;

    fn connect(&self) -> Result<postgres::Client, ConnectError> {
        self.config
            .connect(NoTls)
            .map_err(|error| ConnectError(chain(&error)))
    }

    fn is_valid(&self, client: &mut postgres::Client) -> Result<(), ConnectError> {
        client
            .simple_query("")
            .map(drop)
            .map_err(|error| ConnectError(chain(&error)))
    }

    fn has_broken(&self, client: &mut postgres::Client) -> bool {
        client.is_closed()
    }
}

/// The first connection, at init.
pub(crate) fn first(
    config: &postgres::Config,
    database: &str,
) -> Result<postgres::Client, DatabaseError> {
    config.connect(NoTls).map_err(|e| error(database, &e))
}

/// The server and database, for messages: never the password.
pub(crate) fn label(config: &postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(host)) => host.clone(),
        Some(postgres::config::Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "PostgreSQL database {} at {host}:{port}",
        config.get_dbname().or(config.get_user()).unwrap_or("?")
    )
}

/// What a driver error means for the app.
pub(crate) fn error(database: &str, error: &postgres::Error) -> DatabaseError {
    let lost = error.is_closed()
        || error
            .source()
            .is_some_and(|source| source.downcast_ref::<io::Error>().is_some());
    let code = error.code();
    // Class 08: connection exceptions; 57P01-03: the server shutting down or starting;
    // 53300: too many connections.
    let down = code.is_some_and(|code| {
        code.code().starts_with("08")
            || [
                SqlState::ADMIN_SHUTDOWN,
                SqlState::CRASH_SHUTDOWN,
                SqlState::CANNOT_CONNECT_NOW,
                SqlState::TOO_MANY_CONNECTIONS,
            ]
            .contains(code)
    });
    let reason = chain(error);
    if lost || down {
        DatabaseError::Unavailable {
            database: database.to_string(),
            reason,
        }
    } else if code.is_some_and(|code| code.code().starts_with("23")) {
        DatabaseError::Constraint(reason)
    } else {
        DatabaseError::Query(reason)
    }
}

/// What runs statements: a client, or a transaction on one.
pub(crate) trait Session {
    fn execute(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, postgres::Error>;
    fn query(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<postgres::Row>, postgres::Error>;
    fn batch_execute(&mut self, sql: &str) -> Result<(), postgres::Error>;
}

macro_rules! session {
    ($type:ty) => {
        impl Session for $type {
            fn execute(
                &mut self,
                sql: &str,
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<u64, postgres::Error> {
                <$type>::execute(self, sql, params)
            }
            fn query(
                &mut self,
                sql: &str,
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<Vec<postgres::Row>, postgres::Error> {
                <$type>::query(self, sql, params)
            }
            fn batch_execute(&mut self, sql: &str) -> Result<(), postgres::Error> {
                <$type>::batch_execute(self, sql)
            }
        }
    };
}
session!(postgres::Client);
session!(postgres::Transaction<'_>);

fn refs(params: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|param| param as &(dyn ToSql + Sync))
        .collect()
}

pub(crate) fn execute(
    session: &mut dyn Session,
    database: &str,
    sql: &str,
    params: &[Value],
) -> Result<u64, DatabaseError> {
    session
        .execute(sql, &refs(params))
        .map_err(|e| error(database, &e))
}

pub(crate) fn query(
    session: &mut dyn Session,
    database: &str,
    sql: &str,
    params: &[Value],
) -> Result<Vec<Row>, DatabaseError> {
    let rows = session
        .query(sql, &refs(params))
        .map_err(|e| error(database, &e))?;
    rows.iter()
        .map(|row| {
            let mut columns = Row::new();
            for (index, column) in row.columns().iter().enumerate() {
                let Cell(value) = row.try_get(index).map_err(|e| error(database, &e))?;
                columns.insert(column.name().to_string(), value);
            }
            Ok(columns)
        })
        .collect()
}

pub(crate) fn batch(
    session: &mut dyn Session,
    database: &str,
    sql: &str,
) -> Result<(), DatabaseError> {
    session.batch_execute(sql).map_err(|e| error(database, &e))
}

type BoxError = Box<dyn StdError + Sync + Send>;

fn mismatch(what: &str, ty: &Type) -> BoxError {
    format!("{what} cannot be bound to a parameter of type {ty}").into()
}

/// Binds to the type the server inferred for the placeholder: an integer to a `smallint`,
/// `integer` or `bigint` alike, as SQLite would take it.
impl ToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Integer(integer) => {
                let narrow = |_| format!("{integer} does not fit a parameter of type {ty}");
                match *ty {
                    Type::INT2 => i16::try_from(*integer).map_err(narrow)?.to_sql(ty, out),
                    Type::INT4 => i32::try_from(*integer).map_err(narrow)?.to_sql(ty, out),
                    Type::INT8 => integer.to_sql(ty, out),
                    Type::FLOAT4 => (*integer as f32).to_sql(ty, out),
                    Type::FLOAT8 => (*integer as f64).to_sql(ty, out),
                    _ => Err(mismatch("an integer", ty)),
                }
            }
            Value::Real(float) => match *ty {
                Type::FLOAT4 => (*float as f32).to_sql(ty, out),
                Type::FLOAT8 => float.to_sql(ty, out),
                _ => Err(mismatch("a float", ty)),
            },
            Value::Text(text) if <&str as ToSql>::accepts(ty) => text.as_str().to_sql(ty, out),
            Value::Text(_) => Err(mismatch("text", ty)),
            Value::Blob(bytes) if *ty == Type::BYTEA => bytes.as_slice().to_sql(ty, out),
            Value::Blob(_) => Err(mismatch("bytes", ty)),
        }
    }

    fn accepts(_: &Type) -> bool {
        // Checked in `to_sql`, which says what did not fit.
        true
    }

    to_sql_checked!();
}

/// A column's value as JSON, for serde to read into the app's type.
struct Cell(serde_json::Value);

impl<'a> FromSql<'a> for Cell {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(Cell(match *ty {
            Type::BOOL => bool::from_sql(ty, raw)?.into(),
            Type::INT2 => i16::from_sql(ty, raw)?.into(),
            Type::INT4 => i32::from_sql(ty, raw)?.into(),
            Type::INT8 => i64::from_sql(ty, raw)?.into(),
            Type::OID => u32::from_sql(ty, raw)?.into(),
            Type::FLOAT4 => real(f32::from_sql(ty, raw)?.into()),
            Type::FLOAT8 => real(f64::from_sql(ty, raw)?),
            Type::BYTEA => blob(<&[u8]>::from_sql(ty, raw)?),
            Type::JSON | Type::JSONB => serde_json::Value::from_sql(ty, raw)?,
            // What `accepts` lets through besides: the text types.
            _ => <&str>::from_sql(ty, raw)?.into(),
        }))
    }

    fn from_sql_null(_: &Type) -> Result<Self, BoxError> {
        Ok(Cell(serde_json::Value::Null))
    }

    fn accepts(ty: &Type) -> bool {
        // Others (numeric, timestamps) are refused with their type's name: cast them in the
        // query (`::text`, `::float8`).
        matches!(
            *ty,
            Type::BOOL
                | Type::INT2
                | Type::INT4
                | Type::INT8
                | Type::OID
                | Type::FLOAT4
                | Type::FLOAT8
                | Type::BYTEA
                | Type::JSON
                | Type::JSONB
        ) || <&str as FromSql>::accepts(ty)
    }
}
