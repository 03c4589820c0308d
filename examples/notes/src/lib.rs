//! A notes app, the SDK's tour: pages from templates, log in with a session, flashed
//! messages, `url_for` in templates, a JSON API as a blueprint with its own error pages, a
//! custom 404, hooks and a layer, attachments uploaded as multipart forms and sent back by nginx, and
//! notes kept in a database that every worker shares.
//!
//! ```nginx
//! thread_pool notes threads=4;                        # main context
//!
//! location /notes/ {
//!     gateway_app /path/to/libnotes.so;
//!     gateway_thread_pool notes;                      # database calls block
//!     gateway_app_param templates /path/to/examples/notes/templates;
//!     gateway_app_param secret_key "$(head -c 32 /dev/urandom | base64)";  # signs sessions
//!     gateway_app_param title "Team notes";          # optional
//!     gateway_app_param password "let me in";        # optional: asked at log in
//!     gateway_app_param database /var/lib/notes/notes.sqlite3;  # or postgres://...;
//!     gateway_app_param attachments /var/lib/notes/files;  # default: notes-attachments
//!     client_max_body_size 10m;                       # attachments up to 8 MiB
//! }                        # relative paths and the defaults are under nginx's prefix
//! ```

use gateway::database::{Database, DatabaseError, Transaction};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use gateway::header::{
    HeaderName, HeaderValue, CONTENT_DISPOSITION, CONTENT_TYPE, LOCATION, X_CONTENT_TYPE_OPTIONS,
};
use gateway::multipart::{Multipart, MultipartLimits};
use gateway::{
    get, post, Body, Config, ConfigError, Error, Html, IntoResponse, Json, Next, Redirect, Request,
    Response, Router, Session, Sessions, StatusCode, Templates,
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
    /// Asked at log in when set; without it, any name logs in.
    password: Option<String>,
    /// Where attachments are kept, each in a file named by its id (their names and types
    /// are in the database). Several hosts sharing a database must share this directory too.
    attachments: PathBuf,
}

/// A file attached to a note.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Attachment {
    pub id: i64,
    pub note_id: i64,
    pub name: String,
    pub content_type: String,
    pub size: i64,
}

const SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");

/// The largest attachment taken.
const MAX_ATTACHMENT: u64 = 8 << 20;

/// Who is logged in, for this request: set by the `load_user` hook from the session (Flask's
/// `g.user`).
#[derive(Clone)]
struct User(String);

fn load_user(request: &Request) -> Result<(), Error> {
    if let Some(name) = Session::of(request)?.get::<String>("user")? {
        request.extensions().insert(User(name));
    }
    Ok(())
}

fn user(request: &Request) -> Option<String> {
    request
        .extensions()
        .get::<User>()
        .map(|user| user.0.clone())
}

/// Every page and API answer tells browsers not to guess content types.
fn nosniff(_: &Request, response: &mut Response) {
    response
        .headers_mut()
        .insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
}

/// Wraps every answer with the time the app took, for the browser's developer tools.
fn timed(request: &Request, next: Next) -> Response {
    let started = Instant::now();
    let mut response = next.run(request);
    let took = started.elapsed().as_secs_f64() * 1000.0;
    if let Ok(timing) = HeaderValue::try_from(format!("app;dur={took:.3}")) {
        response.headers_mut().insert(SERVER_TIMING, timing);
    }
    response
}

/// A redirect to a named route.
fn to(request: &Request, route: &str) -> Result<Redirect, Error> {
    Ok(Redirect::to(request.url_for(route, &[])?))
}

/// The tables, made by the first worker that starts.
fn schema(schema: &mut Transaction) -> Result<(), DatabaseError> {
    let key = schema.backend().serial_primary_key();
    schema.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS notes (id {key}, text TEXT NOT NULL);
         CREATE TABLE IF NOT EXISTS attachments (id {key}, note_id BIGINT NOT NULL,
             name TEXT NOT NULL, content_type TEXT NOT NULL, size BIGINT NOT NULL)"
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
    #[derive(Serialize)]
    struct Shown {
        #[serde(flatten)]
        note: Note,
        attachments: Vec<Attachment>,
    }
    #[derive(Serialize)]
    struct Page<'a> {
        title: &'a str,
        notes: Vec<Shown>,
        query: String,
        user: Option<String>,
    }
    let listed: Vec<Attachment> = notes.db.query(
        "SELECT id, note_id, name, content_type, size FROM attachments ORDER BY id",
        &[],
    )?;
    // Grouped once by note, instead of a scan of every attachment per note.
    let mut attachments: HashMap<i64, Vec<Attachment>> = HashMap::new();
    for attachment in listed {
        attachments
            .entry(attachment.note_id)
            .or_default()
            .push(attachment);
    }
    let shown = notes
        .search(&query)?
        .into_iter()
        .map(|note| Shown {
            attachments: attachments.remove(&note.id).unwrap_or_default(),
            note,
        })
        .collect();
    let page = Page {
        title: &notes.title,
        notes: shown,
        query,
        user: user(request),
    };
    notes.templates.render_for(request, "index.html", page)
}

fn submit(request: &Request, notes: &Notes) -> Result<Redirect, Error> {
    let session = Session::of(request)?;
    if user(request).is_none() {
        session.flash("error", "Log in to add notes.")?;
        return to(request, "login");
    }
    let form: NewNote = request.form()?;
    notes.add(&form.text)?;
    session.flash("info", "Note saved.")?;
    to(request, "index")
}

fn login_page(request: &Request, notes: &Notes) -> Result<Html<String>, Error> {
    let context = gateway::minijinja::context! {
        title => &notes.title,
        user => user(request),
        asks_password => notes.password.is_some(),
    };
    notes.templates.render_for(request, "login.html", context)
}

fn log_in(request: &Request, notes: &Notes) -> Result<Redirect, Error> {
    #[derive(Deserialize)]
    struct Login {
        name: String,
        #[serde(default)]
        password: String,
    }
    let form: Login = request.form()?;
    let session = Session::of(request)?;
    let name = form.name.trim();
    if name.is_empty() || name.chars().count() > 40 {
        session.flash("error", "A name has 1 to 40 characters.")?;
        return to(request, "login");
    }
    if notes
        .password
        .as_deref()
        .is_some_and(|password| password != form.password)
    {
        session.flash("error", "Wrong password.")?;
        return to(request, "login");
    }
    session.insert("user", name)?;
    session.flash("info", format!("Welcome, {name}."))?;
    to(request, "index")
}

fn log_out(request: &Request) -> Result<Redirect, Error> {
    let session = Session::of(request)?;
    session.clear();
    session.flash("info", "Logged out.")?;
    to(request, "index")
}

/// Takes the `file` field of a multipart form as an attachment of the note in the path.
fn attach(request: &Request, notes: &Notes) -> Result<Redirect, Error> {
    let session = Session::of(request)?;
    if user(request).is_none() {
        session.flash("error", "Log in to attach files.")?;
        return to(request, "login");
    }
    let note_id = id(request)?;
    if notes
        .db
        .query_opt::<Note>("SELECT id, text FROM notes WHERE id = $1", &[&note_id])?
        .is_none()
    {
        return Err(Error::status(StatusCode::NOT_FOUND, "no such note"));
    }
    let limits = MultipartLimits::default()
        .body(MAX_ATTACHMENT + 64 * 1024)
        .field(MAX_ATTACHMENT)
        .fields(4);
    let mut form = Multipart::from_request(request, limits)?;
    while let Some(field) = form.next_field()? {
        if field.name() != Some("file") {
            continue;
        }
        let name = match field.file_name().map(|name| name.trim()) {
            Some(name) if !name.is_empty() => name.to_string(),
            _ => break,
        };
        let content_type = field
            .content_type()
            .unwrap_or("application/octet-stream")
            .to_string();
        // Saved first under a name no other upload has (other workers, other threads), and
        // named by its id once it has one.
        static UPLOADS: AtomicU64 = AtomicU64::new(0);
        let partial = notes.attachments.join(format!(
            "partial-{}-{}",
            std::process::id(),
            UPLOADS.fetch_add(1, Ordering::Relaxed)
        ));
        let size = field.save(&partial)?;
        let attachment: Attachment = notes
            .db
            .query_opt(
                "INSERT INTO attachments (note_id, name, content_type, size) \
                 VALUES ($1, $2, $3, $4) RETURNING id, note_id, name, content_type, size",
                &[&note_id, &name, &content_type, &(size as i64)],
            )?
            .ok_or_else(|| Error::internal("the insert returned no attachment"))?;
        std::fs::rename(&partial, notes.attachments.join(attachment.id.to_string()))
            .map_err(|error| Error::internal(format!("keeping attachment: {error}")))?;
        session.flash("info", format!("Attached {name}."))?;
        return to(request, "index");
    }
    session.flash("error", "Choose a file to attach.")?;
    to(request, "index")
}

/// An attachment, sent by nginx from its file (sendfile, ranges, conditional requests).
fn download(request: &Request, notes: &Notes) -> Result<Response, Error> {
    let attachment: Attachment = notes
        .db
        .query_opt(
            "SELECT id, note_id, name, content_type, size FROM attachments WHERE id = $1",
            &[&id(request)?],
        )?
        .ok_or_else(|| Error::status(StatusCode::NOT_FOUND, "no such attachment"))?;
    let mut response =
        Body::file(notes.attachments.join(attachment.id.to_string())).into_response();
    let headers = response.headers_mut();
    // Shown by the browser only as what it is: a download, of the type it came with.
    if let Ok(content_type) = HeaderValue::try_from(attachment.content_type) {
        headers.insert(CONTENT_TYPE, content_type);
    }
    let file_name: String = attachment
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if let Ok(disposition) = HeaderValue::try_from(format!("attachment; filename=\"{file_name}\""))
    {
        headers.insert(CONTENT_DISPOSITION, disposition);
    }
    Ok(response)
}

/// The app's own 404 page, for every path no route takes (outside the API).
fn not_found(request: &Request, notes: &Notes) -> Result<(StatusCode, Html<String>), Error> {
    let context = gateway::minijinja::context! { title => &notes.title, user => user(request) };
    let page = notes.templates.render_for(request, "404.html", context)?;
    Ok((StatusCode::NOT_FOUND, page))
}

/// The API's errors as JSON, whatever raised them (its handlers, or no route matching):
/// `{"error": "..."}` with the status.
fn api_error(_: &Request, error: &Error) -> Response {
    let status = error.status_code();
    let message = if status.is_server_error() {
        // The reason goes to the error log, not to the client.
        "server error".to_string()
    } else {
        error.to_string()
    };
    (
        status,
        Json(gateway::serde_json::json!({ "error": message })),
    )
        .into_response()
}

fn list(_: &Request, notes: &Notes) -> Result<Json<Vec<Note>>, Error> {
    Ok(Json(
        notes
            .db
            .query("SELECT id, text FROM notes ORDER BY id", &[])?,
    ))
}

fn create(request: &Request, notes: &Notes) -> Result<Response, Error> {
    let new: NewNote = request.json()?;
    let note = notes.add(&new.text)?;
    let location = request.url_for("api.note", &[("id", &note.id)])?;
    let mut response = (StatusCode::CREATED, Json(note)).into_response();
    if let Ok(location) = HeaderValue::try_from(location) {
        response.headers_mut().insert(LOCATION, location);
    }
    Ok(response)
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
    let context = gateway::minijinja::context! { title => &notes.title, user => user(request) };
    notes
        .templates
        .render_for(request, &format!("pages/{name}"), context)
}

/// Builds the app from its settings, once per nginx worker.
pub fn app(config: &Config) -> Result<impl gateway::Handler, DatabaseError> {
    let templates = Templates::from_config(config)?;
    let sessions = Sessions::from_config(config)?;
    let notes = Notes {
        title: config.get("title").unwrap_or("Notes").to_string(),
        templates,
        db: Database::open(config, "notes", schema)?,
        password: config.get("password").map(str::to_string),
        attachments: attachments_dir(config)?,
    };
    // The JSON API, a blueprint: its routes are named `api.*`, its errors are JSON.
    let api = Router::blueprint("api")
        .route_named("notes", "/notes", get(list).post(create))
        .route_named("note", "/notes/{id}", get(show).delete(remove))
        .on_error(api_error);
    let router = Router::with_state(notes)
        .layer(timed)
        .before(load_user)
        .after(nosniff)
        .route_named("index", "/", get(page).post(submit))
        .route_named("login", "/login", get(login_page).post(log_in))
        .route_named("logout", "/logout", post(log_out))
        .route_named("page", "/pages/{*name}", get(static_page))
        .route_named("attach", "/notes/{id}/attachments", post(attach))
        .route_named("attachment", "/attachments/{id}", get(download))
        .nest("/api", api)
        .on_status(StatusCode::NOT_FOUND, not_found);
    Ok(sessions.wrap(router))
}

/// The attachments' directory, made if missing.
fn attachments_dir(config: &Config) -> Result<PathBuf, ConfigError> {
    let dir = config.resolve_path(config.get("attachments").unwrap_or("notes-attachments"));
    std::fs::create_dir_all(&dir).map_err(|error| ConfigError::Invalid {
        name: "attachments".into(),
        value: dir.display().to_string(),
        reason: format!("cannot make the directory: {error}"),
    })?;
    Ok(dir)
}

/// What `nginx -t` checks: the settings the app cannot start without.
pub fn check(config: &Config) -> Result<(), ConfigError> {
    config.require("templates")?;
    Sessions::check(config)?;
    gateway::database::check(config)
}

gateway::app!(init = app, check = check);
