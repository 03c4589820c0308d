//! A notes app, the SDK's tour: an HTML page from templates, a form that redirects, a JSON
//! API, a cookie, and notes kept in a database that every worker shares.
//!
//! ```nginx
//! thread_pool notes threads=4;                        # main context
//!
//! location /notes/ {
//!     gateway_app /path/to/libnotes.so;
//!     gateway_thread_pool notes;                      # database calls block
//!     gateway_app_param templates /path/to/examples/notes/templates;
//!     gateway_app_param title "Team notes";          # optional
//!     gateway_app_param database /var/lib/notes/notes.sqlite3;  # or postgres://...;
//! }                                                   # default: notes.sqlite3 under the prefix
//! ```

use gateway::database::{Database, DatabaseError, Transaction};
use gateway::{
    get, Config, ConfigError, Error, Html, Json, Redirect, Request, Router, StatusCode, Templates,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Note {
    pub id: i64,
    pub text: String,
}

#[derive(Deserialize)]
struct NewNote {
    text: String,
}

pub struct Notes {
    title: String,
    templates: Templates,
    db: Database,
}

/// The notes table, made by the first worker that starts.
fn schema(schema: &mut Transaction) -> Result<(), DatabaseError> {
    schema.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS notes (id {}, text TEXT NOT NULL)",
        schema.backend().serial_primary_key()
    ))
}

impl Notes {
    fn add(&self, text: &str) -> Result<Note, Error> {
        let text = text.trim();
        if text.is_empty() || text.len() > 1000 {
            return Err(Error::status(
                StatusCode::UNPROCESSABLE_ENTITY,
                "a note has 1 to 1000 characters",
            ));
        }
        self.db
            .query_opt(
                "INSERT INTO notes (text) VALUES ($1) RETURNING id, text",
                &[&text],
            )?
            .ok_or_else(|| Error::internal("the insert returned no note"))
    }

    /// The notes whose text contains `query`, whatever its case, oldest first.
    fn search(&self, query: &str) -> Result<Vec<Note>, Error> {
        // LIKE's own wildcards in the query are meant literally.
        let mut pattern = String::from("%");
        for c in query.to_lowercase().chars() {
            if matches!(c, '%' | '_' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('%');
        Ok(self.db.query(
            "SELECT id, text FROM notes WHERE lower(text) LIKE $1 ESCAPE '\\' ORDER BY id",
            &[&pattern],
        )?)
    }
}

fn page(request: &Request, notes: &Notes) -> Result<Html<String>, Error> {
    #[derive(Deserialize)]
    struct Search {
        q: Option<String>,
    }
    let search: Search = request.query()?;
    let query = search.q.unwrap_or_default();
    let shown = notes.search(&query)?;
    #[derive(Serialize)]
    struct Page<'a> {
        title: &'a str,
        base: &'a str,
        notes: Vec<Note>,
        query: String,
        visitor: &'a str,
    }
    let page = Page {
        title: &notes.title,
        base: request.script_name(),
        notes: shown,
        query,
        visitor: request.cookie("visitor").unwrap_or("stranger"),
    };
    notes.templates.render("index.html", page)
}

fn submit(request: &Request, notes: &Notes) -> Result<Redirect, Error> {
    let form: NewNote = request.form()?;
    notes.add(&form.text)?;
    Ok(Redirect::to(format!("{}/", request.script_name())))
}

fn list(_: &Request, notes: &Notes) -> Result<Json<Vec<Note>>, Error> {
    Ok(Json(
        notes
            .db
            .query("SELECT id, text FROM notes ORDER BY id", &[])?,
    ))
}

fn create(request: &Request, notes: &Notes) -> Result<(StatusCode, Json<Note>), Error> {
    let new: NewNote = request.json()?;
    Ok((StatusCode::CREATED, Json(notes.add(&new.text)?)))
}

fn id(request: &Request) -> Result<i64, Error> {
    request
        .param("id")
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| Error::status(StatusCode::NOT_FOUND, "no such note"))
}

fn show(request: &Request, notes: &Notes) -> Result<Json<Note>, Error> {
    let id = id(request)?;
    let note = notes
        .db
        .query_opt("SELECT id, text FROM notes WHERE id = $1", &[&id])?;
    note.map(Json)
        .ok_or_else(|| Error::status(StatusCode::NOT_FOUND, "no such note"))
}

fn remove(request: &Request, notes: &Notes) -> Result<StatusCode, Error> {
    let id = id(request)?;
    if notes
        .db
        .execute("DELETE FROM notes WHERE id = $1", &[&id])?
        == 0
    {
        return Err(Error::status(StatusCode::NOT_FOUND, "no such note"));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// A static page by name, from `templates/pages/`: the name comes from the URL, so the
/// template loader must keep it inside the directory.
fn static_page(request: &Request, notes: &Notes) -> Result<Html<String>, Error> {
    let name = request.param("name").unwrap_or_default();
    let context = std::collections::HashMap::from([("title", &notes.title)]);
    notes.templates.render(&format!("pages/{name}"), context)
}

/// Builds the app from its settings, once per nginx worker.
pub fn app(config: &Config) -> Result<Router<Notes>, DatabaseError> {
    let notes = Notes {
        title: config.get("title").unwrap_or("Notes").to_string(),
        templates: Templates::from_config(config)?,
        db: Database::open(config, "notes", schema)?,
    };
    Ok(Router::with_state(notes)
        .route("/", get(page).post(submit))
        .route("/api/notes", get(list).post(create))
        .route("/api/notes/{id}", get(show).delete(remove))
        .route("/pages/{*name}", get(static_page)))
}

/// What `nginx -t` checks: the settings the app cannot start without.
pub fn check(config: &Config) -> Result<(), ConfigError> {
    config.require("templates")?;
    gateway::database::check(config)
}

gateway::app!(init = app, check = check);
