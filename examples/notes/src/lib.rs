//! A notes app, the SDK's tour: an HTML page from templates, a form that redirects, a JSON
//! API, a cookie, and state shared by every request of the worker.
//!
//! ```nginx
//! location /notes/ {
//!     gateway_app /path/to/libnotes.so;
//!     gateway_app_param templates /path/to/examples/notes/templates;
//!     gateway_app_param title "Team notes";          # optional
//! }
//! ```

use gateway::parking_lot::RwLock;
use gateway::{
    get, Config, ConfigError, Error, Html, Json, Redirect, Request, Router, StatusCode, Templates,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Note {
    pub id: u64,
    pub text: String,
}

#[derive(Deserialize)]
struct NewNote {
    text: String,
}

pub struct Notes {
    title: String,
    templates: Templates,
    notes: RwLock<Vec<Note>>,
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
        let mut notes = self.notes.write();
        let id = notes.last().map_or(1, |note| note.id + 1);
        let note = Note {
            id,
            text: text.to_string(),
        };
        notes.push(note.clone());
        Ok(note)
    }
}

fn page(request: &Request, notes: &Notes) -> Result<Html<String>, Error> {
    #[derive(Deserialize)]
    struct Search {
        q: Option<String>,
    }
    let search: Search = request.query()?;
    let query = search.q.unwrap_or_default();
    let shown: Vec<Note> = notes
        .notes
        .read()
        .iter()
        .filter(|note| note.text.to_lowercase().contains(&query.to_lowercase()))
        .cloned()
        .collect();
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

fn list(_: &Request, notes: &Notes) -> Json<Vec<Note>> {
    Json(notes.notes.read().clone())
}

fn create(request: &Request, notes: &Notes) -> Result<(StatusCode, Json<Note>), Error> {
    let new: NewNote = request.json()?;
    Ok((StatusCode::CREATED, Json(notes.add(&new.text)?)))
}

fn id(request: &Request) -> Result<u64, Error> {
    request
        .param("id")
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| Error::status(StatusCode::NOT_FOUND, "no such note"))
}

fn show(request: &Request, notes: &Notes) -> Result<Json<Note>, Error> {
    let id = id(request)?;
    let note = notes
        .notes
        .read()
        .iter()
        .find(|note| note.id == id)
        .cloned();
    note.map(Json)
        .ok_or_else(|| Error::status(StatusCode::NOT_FOUND, "no such note"))
}

fn remove(request: &Request, notes: &Notes) -> Result<StatusCode, Error> {
    let id = id(request)?;
    let mut all = notes.notes.write();
    let before = all.len();
    all.retain(|note| note.id != id);
    if all.len() == before {
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
pub fn app(config: &Config) -> Result<Router<Notes>, ConfigError> {
    let notes = Notes {
        title: config.get("title").unwrap_or("Notes").to_string(),
        templates: Templates::from_config(config)?,
        notes: RwLock::new(Vec::new()),
    };
    Ok(Router::with_state(notes)
        .route("/", get(page).post(submit))
        .route("/api/notes", get(list).post(create))
        .route("/api/notes/{id}", get(show).delete(remove))
        .route("/pages/{*name}", get(static_page)))
}

gateway::app!(init = app);
