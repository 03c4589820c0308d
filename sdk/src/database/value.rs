//! What crosses between an app and its database: parameters in, rows out. The types SQLite
//! and PostgreSQL have in common; each backend's file converts them.

use serde::de::DeserializeOwned;

use super::DatabaseError;

/// A statement parameter: what both backends store.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL `NULL`.
    Null,
    /// An integer; bound to a PostgreSQL `smallint`, `integer` or `bigint` parameter as the
    /// statement needs (an error if it does not fit), or to a `real` or `double precision`.
    Integer(i64),
    /// A floating-point number.
    Real(f64),
    /// Text.
    Text(String),
    /// Bytes: a SQLite `BLOB`, a PostgreSQL `bytea`.
    Blob(Vec<u8>),
}

/// A Rust value that binds as a statement parameter: integers up to `i64` (not `u64`, which
/// may not fit), `f32` and `f64`, text, bytes and `Option`s of these (`None` is `NULL`).
pub trait ToValue {
    /// The value to bind.
    fn to_value(&self) -> Value;
}

impl ToValue for Value {
    fn to_value(&self) -> Value {
        self.clone()
    }
}

macro_rules! integers {
    ($($type:ty),*) => {$(
        impl ToValue for $type {
            fn to_value(&self) -> Value {
                Value::Integer(i64::from(*self))
            }
        }
    )*};
}
integers!(i8, i16, i32, i64, u8, u16, u32);

impl ToValue for f32 {
    fn to_value(&self) -> Value {
        Value::Real(f64::from(*self))
    }
}

impl ToValue for f64 {
    fn to_value(&self) -> Value {
        Value::Real(*self)
    }
}

impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_string())
    }
}

impl ToValue for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}

impl ToValue for [u8] {
    fn to_value(&self) -> Value {
        Value::Blob(self.to_vec())
    }
}

impl ToValue for Vec<u8> {
    fn to_value(&self) -> Value {
        Value::Blob(self.clone())
    }
}

impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}

impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, ToValue::to_value)
    }
}

/// The parameters of one statement, converted once for whichever backend binds them.
pub(crate) fn values(params: &[&dyn ToValue]) -> Vec<Value> {
    params.iter().map(|param| param.to_value()).collect()
}

/// A row as its columns' names and values, which serde reads as a struct (or a map): the
/// columns are matched to fields by name, so name them in the query (`count(*) AS n`).
pub(crate) type Row = serde_json::Map<String, serde_json::Value>;

/// Reads `rows` as `T`s.
pub(crate) fn deserialize<T: DeserializeOwned>(rows: Vec<Row>) -> Result<Vec<T>, DatabaseError> {
    rows.into_iter()
        .map(|row| {
            serde_json::from_value(serde_json::Value::Object(row)).map_err(DatabaseError::Row)
        })
        .collect()
}

/// A float as JSON: NaN and the infinities, which JSON lacks, become `null`.
pub(crate) fn real(value: f64) -> serde_json::Value {
    serde_json::Number::from_f64(value).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

/// Bytes as JSON: an array of numbers, which serde reads back as a `Vec<u8>`.
pub(crate) fn blob(bytes: &[u8]) -> serde_json::Value {
    serde_json::Value::Array(bytes.iter().map(|byte| (*byte).into()).collect())
}
