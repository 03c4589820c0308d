//! A small JSON API of jokes, kept in a database that every nginx worker shares.
//!
//! ```nginx
//! thread_pool jokes threads=4;             # main context
//!
//! location /jokes {
//!     gateway_app /path/to/libjokes.so;
//!     gateway_thread_pool jokes;           # database calls block
//!     gateway_app_param max_jokes 100;     # optional, default 1000
//!     gateway_app_param database /var/lib/jokes/jokes.sqlite3;  # or postgres://...;
//! }                                        # default: jokes.sqlite3 under nginx's prefix
//! ```
//!
//! - `GET /jokes`: every joke, as a JSON array.
//! - `GET /jokes/{id}`: one joke, or 404 `{"error": "no joke with id 99"}`.
//! - `POST /jokes` with `{"text": "...", "author": "..."}` (`author` optional): 201 with the
//!   new joke and its `Location`; 422 with the reason for a body that is not such an object,
//!   415 for one that is not `application/json`, 507 once the book holds `max_jokes`.
//!
//! Error answers are JSON, `{"error": "..."}`, except the router's plain-text 405, nginx's
//! own 500 page for a failure of the server, and the SDK's 503 while the database is down.
//! Every worker (every host, on PostgreSQL) sees the same jokes, and they survive reloads.

use gateway::database::{Database, DatabaseError, Transaction};
use gateway::http::header::{HeaderValue, LOCATION};
use gateway::serde_json;
use gateway::{
    get, Config, ConfigError, Error, IntoResponse, Json, ReasonPhrase, Request, Response, Router,
    StatusCode,
};
use serde::{Deserialize, Serialize};

/// What a POST must send, for error messages.
const NEW_JOKE: &str = "a JSON object with \"text\" and optionally \"author\"";

/// The most characters a joke's text may have.
pub const MAX_TEXT: usize = 500;

/// The most characters an author's name may have.
pub const MAX_AUTHOR: usize = 100;

/// How many jokes the book keeps unless `gateway_app_param max_jokes` says otherwise: POSTs
/// must not grow the database without bound.
pub const DEFAULT_MAX_JOKES: usize = 1000;

/// The author of a joke posted without one.
pub const ANONYMOUS: &str = "anonymous";

/// A joke, as the API sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Joke {
    /// Its id, from 1, never reused.
    pub id: i64,
    /// The joke itself.
    pub text: String,
    /// Who told it.
    pub author: String,
}

/// A joke as POSTed: unknown fields are refused so that a typo (`"txt"`) is reported instead
/// of read as a missing field.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewJoke {
    text: String,
    #[serde(default)]
    author: Option<String>,
}

/// The jokes the book starts with, so that the API has something to show.
const SEED: [&str; 3] = [
    "Why do programmers prefer dark mode? Because light attracts bugs.",
    "There are 10 kinds of people: those who understand binary and those who don't.",
    "A SQL query walks into a bar, goes up to two tables and asks: may I join you?",
];

/// The app's state, one per nginx worker: its connections to the shared book.
pub struct Jokes {
    db: Database,
    max_jokes: i64,
}

/// The jokes table, seeded when empty; run by each worker in turn, so seeded once.
fn schema(schema: &mut Transaction) -> Result<(), DatabaseError> {
    schema.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS jokes (id {}, text TEXT NOT NULL, author TEXT NOT NULL)",
        schema.backend().serial_primary_key()
    ))?;
    if schema
        .query_opt::<Joke>("SELECT id, text, author FROM jokes LIMIT 1", &[])?
        .is_none()
    {
        for text in SEED {
            schema.execute(
                "INSERT INTO jokes (text, author) VALUES ($1, $2)",
                &[&text, &ANONYMOUS],
            )?;
        }
    }
    Ok(())
}

impl Jokes {
    /// The book the location's `database` setting names, with room for `max_jokes` in all.
    pub fn open(config: &Config, max_jokes: usize) -> Result<Self, DatabaseError> {
        Ok(Jokes {
            db: Database::open(config, "jokes", schema)?,
            max_jokes: i64::try_from(max_jokes).unwrap_or(i64::MAX),
        })
    }

    /// Every joke, oldest first.
    pub fn all(&self) -> Result<Vec<Joke>, DatabaseError> {
        self.db
            .query("SELECT id, text, author FROM jokes ORDER BY id", &[])
    }

    /// The joke with this id.
    pub fn find(&self, id: i64) -> Result<Option<Joke>, DatabaseError> {
        self.db
            .query_opt("SELECT id, text, author FROM jokes WHERE id = $1", &[&id])
    }

    /// Checks and stores a new joke.
    fn add(&self, new: NewJoke) -> Result<Joke, ApiError> {
        let text = new.text.trim();
        if text.is_empty() || text.chars().count() > MAX_TEXT {
            return Err(ApiError::unprocessable(format!(
                "invalid joke: \"text\" must have 1 to {MAX_TEXT} characters"
            )));
        }
        let author = new.author.as_deref().map(str::trim).unwrap_or("");
        if author.chars().count() > MAX_AUTHOR {
            return Err(ApiError::unprocessable(format!(
                "invalid joke: \"author\" must have at most {MAX_AUTHOR} characters"
            )));
        }
        let author = if author.is_empty() { ANONYMOUS } else { author };
        // Counted and inserted in one statement. On PostgreSQL, posts racing from several
        // workers may each see room for one more and overshoot the limit by a few: it bounds
        // growth, it is no quota.
        let added = self.db.query_opt(
            "INSERT INTO jokes (text, author) SELECT $1, $2 \
             WHERE (SELECT count(*) FROM jokes) < $3 RETURNING id, text, author",
            &[&text, &author, &self.max_jokes],
        )?;
        added.ok_or_else(|| {
            ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                format!("the joke book is full ({} jokes)", self.max_jokes),
            )
        })
    }
}

/// An error answer of the API: the status and `{"error": message}`; or an SDK error that is
/// the server's fault, left to the SDK so that nginx logs it and sends its own 500 page.
#[derive(Debug)]
pub enum ApiError {
    /// An answer to send as JSON.
    Answer(StatusCode, String),
    /// A server-side failure, answered and logged by the SDK.
    Server(Error),
}

impl ApiError {
    /// An answer with this status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError::Answer(status, message.into())
    }

    fn unprocessable(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }
}

impl From<DatabaseError> for ApiError {
    fn from(error: DatabaseError) -> Self {
        ApiError::Server(error.into())
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        let status = error.status_code();
        if status.is_server_error() {
            ApiError::Server(error)
        } else {
            ApiError::Answer(status, error.to_string())
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        #[derive(Serialize)]
        struct Body {
            error: String,
        }
        match self {
            ApiError::Answer(status, error) => {
                let mut response = (status, Json(Body { error })).into_response();
                // nginx knows no reason phrase for some statuses (422 among them) and would
                // send a bare "HTTP/1.1 422 "; the standard phrase reads better.
                if let Some(reason) = status.canonical_reason() {
                    response.extensions_mut().insert(ReasonPhrase::new(reason));
                }
                response
            }
            ApiError::Server(error) => error.into_response(),
        }
    }
}

fn list(_: &Request, jokes: &Jokes) -> Result<Json<Vec<Joke>>, ApiError> {
    Ok(Json(jokes.all()?))
}

fn show(request: &Request, jokes: &Jokes) -> Result<Json<Joke>, ApiError> {
    let id = request.param("id").unwrap_or_default();
    let joke = match id.parse() {
        Ok(number) => jokes.find(number)?,
        Err(_) => None,
    };
    joke.map(Json)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no joke with id {id}")))
}

fn create(request: &Request, jokes: &Jokes) -> Result<Response, ApiError> {
    // The SDK answers malformed JSON with 400 and JSON of the wrong shape with 422; to a
    // client both mean "this is not a joke", so both are a 422 that says why.
    let value: serde_json::Value = request.json().map_err(|error| match error {
        Error::Json(error) => ApiError::unprocessable(format!("invalid joke: {error}")),
        other => other.into(),
    })?;
    // Checked here because serde would also read a struct from an array, `["text"]`.
    if !value.is_object() {
        return Err(ApiError::unprocessable(format!(
            "invalid joke: expected {NEW_JOKE}, got {}",
            kind(&value)
        )));
    }
    let new: NewJoke = serde_json::from_value(value)
        .map_err(|error| ApiError::unprocessable(format!("invalid joke: {error}")))?;
    let joke = jokes.add(new)?;
    let location = format!("{}/{}", request.script_name(), joke.id);
    let mut response = (StatusCode::CREATED, Json(joke)).into_response();
    // The mount point comes from nginx.conf; should it not make a valid header, the joke
    // is still created and the client still gets it, only without the link.
    if let Ok(location) = HeaderValue::try_from(location) {
        response.headers_mut().insert(LOCATION, location);
    }
    Ok(response)
}

/// What a JSON value is, in words, for error messages.
fn kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

fn not_found(_: &Request) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not found")
}

/// Builds the app, once per nginx worker, from the optional `max_jokes` and `database`
/// settings.
pub fn app(config: &Config) -> Result<Router<Jokes>, DatabaseError> {
    let max_jokes = config.parse("max_jokes")?.unwrap_or(DEFAULT_MAX_JOKES);
    // "/" also answers the bare mount point (`/jokes`): the router reads an empty path as "/".
    Ok(Router::with_state(Jokes::open(config, max_jokes)?)
        .route("/", get(list).post(create))
        .route("/{id}", get(show))
        .fallback(not_found))
}

/// What `nginx -t` checks: the settings, before any worker starts.
pub fn check(config: &Config) -> Result<(), ConfigError> {
    config.parse::<usize>("max_jokes")?;
    gateway::database::check(config)
}

gateway::app!(init = app, check = check);
