//! What can go wrong with the database, and what the client gets for it.

use crate::config::ConfigError;
use crate::error::Error;

/// A database operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    /// The `database` setting is unusable.
    #[error(transparent)]
    Setting(#[from] ConfigError),
    /// The database cannot be reached or is too busy to answer in time (a server down, a
    /// connection lost, SQLite's write lock held past the busy timeout): the client gets a
    /// 503 and the reason goes to the error log. Another try may succeed: the pool connects
    /// again on the next request.
    #[error("{database} is unavailable: {reason}")]
    Unavailable {
        /// Which database: the SQLite file, or the PostgreSQL server and database name.
        database: String,
        /// Why, as the driver says it.
        reason: String,
    },
    /// The SQLite file cannot be opened or set up (a missing directory, no permission, not a
    /// database).
    #[error("{database} cannot be opened: {reason}")]
    Open {
        /// The SQLite file.
        database: String,
        /// Why, as SQLite says it.
        reason: String,
    },
    /// A statement broke a constraint (`UNIQUE`, `NOT NULL`, `CHECK`, a foreign key): often
    /// the client's doing, for the app to answer (409, 422).
    #[error("constraint violated: {0}")]
    Constraint(String),
    /// A statement failed: invalid SQL, an unknown table, a type the backend refuses.
    #[error("query failed: {0}")]
    Query(String),
    /// The parameters do not match the statement's `$1`, `$2`, ... placeholders.
    #[error("statement parameters: {0}")]
    Parameters(String),
    /// A row does not deserialize into the requested type.
    #[error("a row does not fit the requested type: {0}")]
    Row(#[source] serde_json::Error),
}

impl DatabaseError {
    /// True for [`DatabaseError::Unavailable`]: a 503, worth another try later.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, DatabaseError::Unavailable { .. })
    }
}

/// A handler's `?` on a database call: 503 when the database is unavailable, else a 500;
/// either way the reason goes to the error log, not to the client.
impl From<DatabaseError> for Error {
    fn from(error: DatabaseError) -> Self {
        if error.is_unavailable() {
            Error::Unavailable(error.to_string())
        } else {
            Error::Internal(error.to_string())
        }
    }
}

/// An error and its sources, one after the other: drivers put the reason (connection refused,
/// the server's message) in the source.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
