//! Flask's `flash`: messages for the next page the user sees, kept in the [`Session`] and
//! shown once.

use serde::ser::SerializeStruct;
use serde::Serialize;

use crate::error::Error;
use crate::session::Session;

/// Where the messages wait in the session, as Flask's.
const FLASHES_KEY: &str = "_flashes";

/// One flashed message, with its category ("message" is Flask's default; "error", "info" and
/// the like let a template style it). Serializes as `{category, message}` for templates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash {
    /// What kind of message it is, e.g. "error".
    pub category: String,
    /// The text to show.
    pub message: String,
}

impl Serialize for Flash {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut flash = serializer.serialize_struct("Flash", 2)?;
        flash.serialize_field("category", &self.category)?;
        flash.serialize_field("message", &self.message)?;
        flash.end()
    }
}

impl Session {
    /// Keeps `message` for the next page that takes the flashes, as Flask's
    /// `flash(message, category)`.
    ///
    /// ```
    /// use gateway::{Error, Redirect, Request, Session};
    ///
    /// fn save(request: &Request) -> Result<Redirect, Error> {
    ///     Session::of(request)?.flash("info", "Note saved.")?;
    ///     Ok(Redirect::to("/"))
    /// }
    ///
    /// fn home(request: &Request) -> Result<String, Error> {
    ///     let flashes = Session::of(request)?.take_flashes()?;
    ///     Ok(flashes.iter().map(|f| format!("[{}] {}\n", f.category, f.message)).collect())
    /// }
    /// ```
    pub fn flash(&self, category: &str, message: impl Into<String>) -> Result<(), Error> {
        let mut flashes = self.flashes()?;
        flashes.push((category.to_string(), message.into()));
        self.insert(FLASHES_KEY, flashes)
    }

    /// The flashed messages, oldest first, removed from the session (Flask's
    /// `get_flashed_messages(with_categories=True)`): each is shown once.
    pub fn take_flashes(&self) -> Result<Vec<Flash>, Error> {
        let flashes: Vec<(String, String)> = self.take(FLASHES_KEY)?.unwrap_or_default();
        Ok(flashes
            .into_iter()
            .map(|(category, message)| Flash { category, message })
            .collect())
    }

    fn flashes(&self) -> Result<Vec<(String, String)>, Error> {
        Ok(self.get(FLASHES_KEY)?.unwrap_or_default())
    }
}
